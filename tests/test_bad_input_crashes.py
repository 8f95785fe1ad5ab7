"""Bad input that used to crash with a library's traceback (IndexError, TypeError, KeyError, ...):
each is now one line naming the value, exit 2."""

import json

import lightning  # noqa: F401 - imported before a test captures stderr: its log handler keeps the stream it finds
import pytest
import torch

from glore.cli import main as glore_main
from glore.data.coco import CocoDetectionSet, CocoFormatError
from glore.data.det_digits import DetDigits, write_coco_tree
from glore.engine.config import load_config
from test_engine_tinynet import make_image_folder, tiny_overrides
from test_run_folders import DEMO, demo_args


def one_line_error(capsys, argv) -> str:
    assert glore_main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def coco_tree(tmp_path):
    return write_coco_tree(DetDigits("val", num_samples=2, canvas=64, num_digits=2, digit_size=12, key_size=8,
                                     min_distance=16), tmp_path)


def edit(ann, change):
    with open(ann) as handle:
        data = json.load(handle)
    change(data)
    with open(ann, "w") as handle:
        json.dump(data, handle)


def test_adam_betas_of_one_value(tmp_path, capsys):
    err = one_line_error(capsys, demo_args(tmp_path / "run", "optim.betas=[0.9]"))
    assert "optim.betas=[0.9]" in err and "at least 2 items" in err
    assert not (tmp_path / "run").exists()


def test_random_resized_crop_scale_reversed(tmp_path, capsys):
    root = make_image_folder(tmp_path / "data", per_class=1, size=16)
    err = one_line_error(capsys, ["train", *tiny_overrides(root, tmp_path / "run", "data.scale=[1.0, 0.08]")])
    assert "data.scale must be [min, max]" in err and "[1.0, 0.08]" in err


@pytest.mark.parametrize("change, words", [
    (lambda d: d["annotations"][0].update(bbox=["1", "2", "3", "4"]), ("annotation id 1", "bbox must be", "'1'")),
    (lambda d: d["annotations"][0].pop("image_id"), ("annotations id 1 lacks 'image_id'",)),
    (lambda d: d["images"][0].pop("width"), ("images id 1 lacks 'width'",)),
], ids=["bbox-strings", "annotation-without-image_id", "image-without-width"])
def test_coco_files_with_wrong_fields(coco_tree, change, words):
    images, ann = coco_tree
    edit(ann, change)
    with pytest.raises(CocoFormatError) as caught:
        CocoDetectionSet(images, ann)
    message = str(caught.value)
    assert message.startswith(ann) and "\n" not in message
    for word in words:
        assert word in message, message


def test_evaluate_a_checkpoint_whose_config_lacks_model(tmp_path, capsys):
    path = tmp_path / "edited.ckpt"
    torch.save({"hyper_parameters": {"cfg": {"task": "classification", "data": {"name": "distant-digits"}}},
                "state_dict": {}}, path)
    err = one_line_error(capsys, ["evaluate", "--checkpoint", str(path)])
    assert "its run config lacks model" in err and str(path) in err


def test_resume_with_another_optimizer(tmp_path, capsys):
    """``--resume last optim.name=sgd`` on an AdamW run: refused before Lightning loads AdamW's state
    into SGD (which failed at the first step with KeyError 'momentum')."""
    cfg = load_config(DEMO, ["trainer.max_epochs=2"])
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"hyper_parameters": {"cfg": cfg}, "state_dict": {}, "epoch": 0, "global_step": 2,
                "loops": {"fit_loop": {"epoch_progress": {"current": {"processed": 1}}}}},
               run / "checkpoints" / "last.ckpt")
    err = one_line_error(capsys, demo_args(run, "trainer.max_epochs=2", "optim.name=sgd", flags=("--resume", "last")))
    assert "optim.name='adamw'" in err and "optim.name='sgd'" in err
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints"]
