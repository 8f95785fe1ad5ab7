"""Bad input that used to pass silently (and train or report something else than asked): each is now
refused with one line (exit 2), or warned about once with the numbers."""

import json
import os
import shutil
import warnings

import pytest
import torch

from glore.cli import main as glore_main
from glore.data.coco import CocoDetectionSet, CocoFormatError
from glore.engine.config import load_config
from glore.engine.run_folder import check_resumable
from glore.errors import GloreError
from test_bad_input_crashes import coco_tree, edit, one_line_error  # noqa: F401 - a fixture
from test_engine_tinynet import make_image_folder, tiny_overrides
from test_run_folders import DEMO, demo_args


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("img") / "data", classes=("a", "b", "c"), per_class=1, size=16)


def tiny(root, out, *extra):
    return ["train", *tiny_overrides(root, out, *extra)]


@pytest.mark.parametrize("num_classes", [10, 200])
def test_num_classes_above_the_class_folders(three_classes, tmp_path, capsys, num_classes):
    err = one_line_error(capsys, tiny(three_classes, tmp_path / "run", f"model.num_classes={num_classes}"))
    assert f"model.num_classes={num_classes} but the training data has 3 classes (a, b, c)" in err
    assert f"{num_classes - 3} outputs would never be trained" in err


def test_val_split_missing_a_class_keeps_the_training_labels(tmp_path):
    from glore.engine.classification import ClassificationData

    root = make_image_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=1, size=16)
    shutil.rmtree(os.path.join(root, "val", "b"))
    cfg = load_config(None, tiny_overrides(root, tmp_path / "run"))
    with pytest.warns(UserWarning, match=r"has 2 of the 3 training classes \(missing: b\)"):
        val = ClassificationData(cfg["data"]).val_dataset()
    assert val.class_to_idx == {"a": 0, "b": 1, "c": 2}
    assert sorted(label for _, label in val.samples) == [0, 2]          # 'c' keeps label 2, was 1


def test_val_split_with_a_class_training_lacks(tmp_path, capsys):
    root = make_image_folder(tmp_path / "data", classes=("a", "b"), per_class=1, size=16)
    make_image_folder(tmp_path / "data", classes=("z",), per_class=1, size=16, splits=("val",))
    err = one_line_error(capsys, tiny(root, tmp_path / "run"))
    assert "has class folders that" in err and "['z']" in err


def test_image_size_on_a_built_in_set(tmp_path, capsys):
    err = one_line_error(capsys, demo_args(tmp_path / "run", "data.image_size=7"))
    assert "data.name='distant-digits' does not read data.image_size" in err and "data.options" in err


@pytest.mark.parametrize("task, config, override, words", [
    ("segmentation", "configs/segmentation/seg_digits_glore.yaml", "data.crop_size=33", "data.crop_size"),
    ("detection", "configs/detection/det_digits_glore.yaml", "data.hflip=false", "data.hflip"),
    ("video", "configs/video/moving_digits_glore.yaml", "data.num_frames=4", "data.num_frames"),
])
def test_keys_of_data_on_disk_given_to_a_built_in_set(task, config, override, words):
    import importlib

    cfg = load_config(config, [override])
    datamodule = importlib.import_module(f"glore.engine.{task}").build_datamodule(cfg)
    with pytest.raises(GloreError, match=rf"does not read {words}: the built-in set's settings go in data.options"):
        datamodule.setup("fit")


def test_built_in_set_options_for_data_on_disk_are_warned_about(three_classes):
    from glore.engine.classification import ClassificationData

    cfg = load_config(None, tiny_overrides(three_classes, "unused", "data.options={canvas: 48}"))
    with pytest.warns(UserWarning, match=r"data.name='imagefolder' does not read data.options"):
        ClassificationData(cfg["data"]).setup("validate")


def test_image_crops_below_the_network_stride(three_classes, tmp_path, capsys):
    err = one_line_error(capsys, tiny(three_classes, tmp_path / "run", "model.name=resnet18", "data.image_size=3",
                                      "data.resize_size=3"))
    assert "data.image_size=3 is smaller than the output stride 32 of model.name='resnet18'" in err


def test_batch_larger_than_the_data_with_drop_last(tmp_path, capsys):
    err = one_line_error(capsys, demo_args(tmp_path / "run", "data.batch_size=1000"))
    assert "data.batch_size=1000 with data.drop_last=true leaves no training batch" in err and "64 samples" in err
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_validation_interval_beyond_max_epochs_still_keeps_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match=r"check_val_every_n_epoch=5 exceeds trainer.max_epochs=1: the run is never "
                                         r"validated"):
        assert glore_main(demo_args(out, "trainer.check_val_every_n_epoch=5")) == 0
    assert os.listdir(out / "checkpoints") == ["last.ckpt"]
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


def test_clips_option_on_a_single_clip_set(tmp_path, capsys):
    from glore.engine import video

    cfg = load_config("configs/video/moving_digits_glore.yaml", ["data.options.length=8", "data.val_options.length=8"])
    path = tmp_path / "moving_digits.ckpt"
    torch.save({"hyper_parameters": {"cfg": cfg}, "state_dict": video.build_module(cfg).state_dict()}, path)
    err = one_line_error(capsys, ["evaluate", "--checkpoint", str(path), "--clips", "10"])
    assert "['clips'] need videos to draw clips from; data.name='moving-digits' holds single clips" in err


def test_duplicate_yaml_keys(tmp_path, capsys):
    config = tmp_path / "dup.yaml"
    config.write_text("task: classification\nseed: 1\nseed: 2\n")
    err = one_line_error(capsys, ["train", "--config", str(config)])
    assert "duplicate key 'seed' (first on line 2)" in err and "line 3" in err


def test_empty_output_dir(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = one_line_error(capsys, ["train", "--config", os.path.abspath(DEMO), "--output-dir", ""])
    assert "--output-dir is empty" in err and not os.listdir(tmp_path)


def test_warm_up_longer_than_the_run():
    from glore.engine.optim import build_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.warns(UserWarning, match=r"warmup_epochs=1000.*2000 steps\) is not shorter than the run \(2 steps\)"):
        build_scheduler(optimizer, {"schedule": "cosine", "lr": 0.1, "warmup_epochs": 1000}, 2, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_scheduler(optimizer, {"schedule": "cosine", "lr": 0.1, "warmup_epochs": 0.5}, 2, 1)


def test_hflip_that_is_not_a_boolean(three_classes, tmp_path, capsys):
    err = one_line_error(capsys, tiny(three_classes, tmp_path / "run", "data.hflip=maybe"))
    assert "data.hflip='maybe': Input should be a valid boolean" in err


@pytest.mark.parametrize("change, words", [
    (lambda d: d.pop("annotations"), "no 'annotations' list"),
    (lambda d: d.update(annotations=[]), "'annotations' is empty"),
    (lambda d: d["categories"][0].update(id=0), "has id 0, the detectors' background label"),
], ids=["no-annotations-key", "empty-annotations", "category-id-0"])
def test_coco_files_that_would_train_on_nothing_or_the_background(coco_tree, change, words):
    images, ann = coco_tree
    edit(ann, change)
    with pytest.raises(CocoFormatError, match=words):
        CocoDetectionSet(images, ann)


def test_coco_image_whose_declared_size_differs_from_the_file(coco_tree):
    images, ann = coco_tree
    edit(ann, lambda d: d["images"][0].update(width=80))
    data = CocoDetectionSet(images, ann)
    with pytest.raises(CocoFormatError, match=r"is 64x64 but the annotation file declares width=80, height=64"):
        data[0]
    assert data[1][0].shape == (3, 64, 64)


def test_create_model_with_negative_classes():
    from glore.models import create_model

    with pytest.raises(GloreError, match=r"num_classes must be an integer >= 0 .*got -3"):
        create_model("resnet18", num_classes=-3)


def test_resuming_a_finished_one_cycle_run_with_more_epochs():
    cfg = load_config(DEMO, ["trainer.max_epochs=1"])
    checkpoint = {"hyper_parameters": {"cfg": cfg}, "global_step": 2,
                  "loops": {"fit_loop": {"epoch_progress": {"current": {"processed": 1}}}}}
    longer = load_config(DEMO, ["trainer.max_epochs=3"])
    with pytest.raises(GloreError, match=r"trainer.max_epochs=3: its onecycle schedule spans trainer.max_epochs=1"):
        check_resumable(checkpoint, "last.ckpt", longer)
    constant = {"hyper_parameters": {"cfg": load_config(DEMO, ["trainer.max_epochs=1", "optim.schedule=constant"])},
                **{k: v for k, v in checkpoint.items() if k != "hyper_parameters"}}
    check_resumable(constant, "last.ckpt", load_config(DEMO, ["trainer.max_epochs=3", "optim.schedule=constant"]))
