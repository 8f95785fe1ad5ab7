"""glore export: ONNX (dynamo exporter, checked in ONNX Runtime) and torch.export programs of the demo
network, a ResNet with every block, the seg-digits segmenter; the detector's refusal."""

import numpy as np
import pytest
import torch

from glore import demo
from glore.cli import main
from glore.engine import runner
from glore.engine.config import apply_overrides
from glore.engine.export import ExportError, check_export, export_network, trace_detector

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("demo_run")
    cfg = demo.variant_config("image", "glore", run, progress=False, epochs=1, train_samples=64, val_samples=32)
    runner.train(apply_overrides(cfg, ["data.batch_size=32", "model.width=8", "trainer.enable_progress_bar=false"]))
    return run / "checkpoints" / "last.ckpt"


def test_demo_network_exports_to_onnx_and_matches_onnxruntime(demo_checkpoint, tmp_path, capsys):
    import onnxruntime

    path = tmp_path / "demo.onnx"
    assert main(["export", "--checkpoint", str(demo_checkpoint), "--format", "onnx", "--output", str(path),
                 "--check"]) == 0
    assert "check passed" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    network, _ = runner.load_model(str(demo_checkpoint))
    x = torch.rand(5, 1, 48, 48)                          # a batch size the export was not traced on
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, network(x).detach().numpy(), rtol=1e-3, atol=1e-4)
    # an existing file is kept without --overwrite
    before = path.read_bytes()
    assert main(["export", "--checkpoint", str(demo_checkpoint), "--format", "onnx", "--output", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err and path.read_bytes() == before


def test_demo_network_exports_as_a_torch_export_program(demo_checkpoint, tmp_path):
    path = tmp_path / "demo.pt2"
    assert main(["export", "--checkpoint", str(demo_checkpoint), "--format", "pt2", "--output", str(path),
                 "--check"]) == 0
    program = torch.export.load(str(path)).module()
    network, _ = runner.load_model(str(demo_checkpoint))
    x = torch.rand(3, 1, 48, 48)
    torch.testing.assert_close(program(x), network(x).detach())


def test_resnet_with_every_block_exports_to_onnx(tmp_path):
    from glore.models import create_model
    from glore.models.insert import insert_blocks

    model = create_model("resnet18", num_classes=7, block="glore", units={"res2": [1]})
    insert_blocks(model, block="nl", units={"res3": [1]})
    insert_blocks(model, block="snl", units={"res3": [2]})
    insert_blocks(model, block="gc", units={"res4": [1]})
    insert_blocks(model, block="se", units={"res5": [1]})
    for _, param in model.named_parameters():           # no block is the identity (zero-initialised)
        param.data.normal_(0, 0.05)
    model.eval()
    example = torch.rand(2, 3, 64, 64)
    result = export_network(model, example, tmp_path / "r18.onnx", "onnx", check=True)
    assert result["max_abs_diff"] < 1e-4
    # a file that does not match is refused (the check can fail)
    with torch.no_grad():
        model.fc.bias.add_(1.0)
    with pytest.raises(ExportError, match="differs from PyTorch"):
        check_export(model, tmp_path / "r18.onnx", "onnx", example)


def test_seg_digits_segmenter_exports_with_dynamic_size(tmp_path):
    from glore.models.segmentation import create_segmenter

    model = create_segmenter("tiny_segnet", head="glore", num_classes=3, multigrid=None, channels=16,
                             aux_channels=8, block_kwargs={"mid": 8}).eval()
    result = export_network(model, torch.rand(2, 3, 64, 64), tmp_path / "seg.onnx", "onnx",
                            task="segmentation", check=True)       # checks batch 1, 3 and an 80 x 96 input
    assert result["max_abs_diff"] < 1e-4


def test_detector_export_is_refused_with_the_reason():
    from glore.models.detection import create_detector

    model = create_detector("fasterrcnn", "resnet18", num_classes=3, returned_layers=(1,), anchor_sizes=(16, 32),
                            fpn_channels=16, box_head_channels=32, min_size=64, max_size=64).eval()
    with pytest.raises(ExportError, match="batched_nms") as info:
        trace_detector(model, {"model": {"min_size": 64}})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name, dataset, shape", [
    ("distant-digits", "DistantDigits", lambda d: (1, d["canvas"], d["canvas"])),
    ("distant-clips", "DistantClips", lambda d: (1, d["num_frames"], d["canvas"], d["canvas"])),
    ("moving-digits", "MovingDigits", lambda d: (d["channels"], d["num_frames"], d["size"], d["size"])),
])
def test_the_example_input_of_a_built_in_set_is_the_sets_own_default_shape(name, dataset, shape):
    import inspect

    import glore.data
    from glore.engine.export import example_input

    defaults = {k: p.default for k, p in inspect.signature(getattr(glore.data, dataset)).parameters.items()}
    task = "video" if name == "moving-digits" else "classification"
    x = example_input({"task": task, "data": {"name": name}, "model": {}}, batch=1)
    assert tuple(x.shape[1:]) == shape(defaults)
    given = example_input({"task": task, "data": {"name": name, "options": {"num_frames": 4}}, "model": {}}, batch=1)
    assert name == "distant-digits" or given.shape[2] == 4
