"""User errors are GloreErrors printed as one line (exit 2); other exceptions keep their traceback;
16-bit images are scaled, too-small GloRe widths and oversized NL attentions are refused."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from glore import cli
from glore.data.imagefolder import ImageReadError, load_rgb
from glore.data.video import VideoReadError
from glore.engine.checkpoint import CheckpointError
from glore.engine.config import ConfigError
from glore.errors import GloreError
from glore.nn import non_local
from glore.nn.glore_unit import GloRe
from glore.nn.non_local import NonLocal


@pytest.mark.parametrize("kind", [ConfigError, CheckpointError, ImageReadError, VideoReadError])
def test_user_facing_errors_share_the_base_class(kind):
    assert issubclass(kind, GloreError)


def _command(monkeypatch, run):
    """``glore summary`` runs ``run(args)`` instead of its own function."""
    original = cli.build_parser

    def parser():
        p = original()
        p._subparsers._group_actions[0].choices["summary"].set_defaults(func=run)
        return p
    monkeypatch.setattr(cli, "build_parser", parser)


def _raising(exc):
    def fail(args):
        raise exc
    return fail


def test_user_error_is_one_line_and_exit_2(monkeypatch, capsys):
    _command(monkeypatch, _raising(ConfigError("optim.lr='abc': Input should be a valid number")))
    assert cli.main(["summary", "resnet18"]) == 2
    assert capsys.readouterr().err == "glore summary: error: optim.lr='abc': Input should be a valid number\n"


def test_library_bug_keeps_its_traceback(monkeypatch):
    _command(monkeypatch, _raising(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["summary", "resnet18"])


class _Corrupt(Dataset):
    def __init__(self, path):
        self.path = path

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return torch.from_numpy(np.asarray(load_rgb(self.path)).copy())


def test_corrupt_image_in_a_worker_names_the_file_first(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")

    def read(args):
        next(iter(DataLoader(_Corrupt(str(bad)), num_workers=1)))
    _command(monkeypatch, read)
    assert cli.main(["summary", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"glore summary: error: cannot read image file '{bad}'") and err.count("\n") == 1


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    gradient = np.linspace(0, 65535, 256, dtype=np.uint16).reshape(16, 16)
    path = tmp_path / "deep.png"
    Image.fromarray(gradient).save(path)
    rgb = np.asarray(load_rgb(str(path)))
    assert rgb.shape == (16, 16, 3)
    assert (rgb == 255).mean() < 0.01                                   # PIL's convert: 99.6% at 255
    np.testing.assert_allclose(rgb[..., 0].astype(float), gradient / 65535 * 255, atol=0.51)


def test_glore_width_too_small_for_a_graph_is_refused():
    with pytest.raises(GloreError, match=r"which is 1 for channels=7; pass mid= or num_nodes="):
        GloRe(7)
    assert GloRe(7, mid=2).num_nodes == 2


def test_non_local_refuses_an_oversized_attention_naming_it(monkeypatch):
    monkeypatch.setattr(non_local, "MAX_ATTENTION_BYTES", 1000)
    block = NonLocal(4)
    with pytest.raises(GloreError, match=r"takes 0.0 GiB .*sub_sample=True or a smaller feature map"):
        block(torch.randn(1, 4, 8, 8))
    assert NonLocal(4, sub_sample=False)(torch.randn(1, 4, 3, 3)).shape == (1, 4, 3, 3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_block_refuses_another_float_dtype_clearly(dtype):
    with pytest.raises(TypeError, match=rf"GloRe has torch.float32 parameters, got a {dtype} input"):
        GloRe(16)(torch.randn(1, 16, 4, 4, dtype=dtype))
    assert GloRe(16).to(dtype)(torch.randn(1, 16, 4, 4, dtype=dtype)).dtype == dtype


def test_unknown_evaluation_option_lists_the_valid_ones():
    from glore.engine import segmentation
    from glore.engine.runner import check_evaluation_options

    with pytest.raises(GloreError, match=r"unknown evaluation option\(s\) \['sliding'\] .*sliding_window, crop_size"):
        check_evaluation_options(segmentation.evaluate, {"sliding": True}, "segmentation")
    check_evaluation_options(segmentation.evaluate, {"sliding_window": True}, "segmentation")


def test_non_finite_validation_input_is_reported_with_the_sample():
    from glore.engine.base import NonFiniteInputError, TaskModule, check_finite_input

    images = torch.zeros(4, 3, 2, 2)
    images[2, 1, 0, 0] = float("nan")
    module = TaskModule({"task": "classification"})
    with pytest.raises(NonFiniteInputError, match=r"validation batch 5, sample 2: the input holds NaN"):
        module.on_validation_batch_start((images, torch.zeros(4)), 5)
    module.on_validation_batch_start((torch.zeros(4, 3, 2, 2), torch.zeros(4)), 0)
    assert issubclass(NonFiniteInputError, GloreError)
    # segmentation batches are dicts; detection (and its own evaluation loop) lists of images
    with pytest.raises(NonFiniteInputError, match=r"validation batch 1, sample 2"):
        module.on_validation_batch_start({"image": images, "target": torch.zeros(4, 2, 2)}, 1)
    with pytest.raises(NonFiniteInputError, match=r"validation batch 3, sample 1"):
        check_finite_input(([torch.zeros(3, 2, 2), torch.full((3, 2, 2), float("inf"))], [{}, {}]), 3)


@pytest.mark.parametrize("override, expected", [
    ("model.blok=1", r"block 'glore' does not take the option\(s\) \['blok'\]; it takes \[.*'mid'"),
    ("model.name=distant_digit_net", r"unknown model 'distant_digit_net'.*small models: \['distant_digits_convnext', 'distant_digits_net'\]"),
])
def test_misspelt_model_keys_and_names_are_named(tmp_path, capsys, override, expected):
    import re

    code = cli.main(["train", "--config", "configs/demo/glore.yaml", "--output-dir", str(tmp_path / "run"),
                     "trainer.max_epochs=1", override])
    err = capsys.readouterr().err
    assert code == 2 and re.search(expected, err), err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run" / "checkpoints").exists()
