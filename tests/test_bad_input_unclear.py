"""Bad input whose message was unclear: good messages raised as raw tracebacks (exit 1), library
tracebacks for a config value, misleading lines, and the four messages of every run that a user cannot
act on. Each is now one line naming the value, exit 2; a run prints none of the four."""

import json
import logging
import os

import pytest
import torch

from glore.cli import main as glore_main
from glore.data.coco import CocoDetectionSet, CocoFormatError
from glore.engine.config import load_config
from glore.errors import GloreError, MissingFileError
from test_bad_input_crashes import coco_tree, one_line_error  # noqa: F401 - a fixture
from test_engine_tinynet import make_image_folder, tiny_overrides
from test_run_folders import DEMO, demo_args


def pooled_bn_net(*, num_classes: int = 2, **_ignored) -> torch.nn.Module:
    """conv -> global pool -> BatchNorm on the 1x1 map -> linear: a batch of one cannot be normalised."""
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.BatchNorm2d(4),
                               torch.nn.Flatten(), torch.nn.Linear(4, num_classes))


@pytest.fixture(scope="module")
def two_classes(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("img") / "data", per_class=1, size=16)


def tiny(root, out, *extra):
    return ["train", *tiny_overrides(root, out, *extra)]


# -- good messages that came as raw tracebacks (FileNotFoundError, exit 1) ----------------------------

@pytest.mark.parametrize("extra, words", [
    (("data.root={missing}",), "data directory '{missing}' does not exist"),
    (("data.val_split=test",), "split directory '{root}/test' does not exist"),
    (("data.train_split=training",), "split directory '{root}/training' does not exist"),
    (("data.layout=cub200",), "wrong layout in '{root}': missing ['images.txt'"),
    (("data.layout=cub200", "data.root={missing}"), "data directory '{missing}' does not exist; expected the CUB"),
    (("data.root={root}/train/cat/0.png",), "data directory '{root}/train/cat/0.png' is a file, not a folder"),
], ids=["data-root", "val-split", "train-split", "cub-files", "cub-root", "root-a-file"])
def test_missing_image_data_is_one_line(two_classes, tmp_path, capsys, extra, words):
    missing = str(tmp_path / "absent")
    extra = [e.format(missing=missing, root=two_classes) for e in extra]
    err = one_line_error(capsys, tiny(two_classes, tmp_path / "run", *extra))
    assert words.format(missing=missing, root=two_classes) in err


@pytest.mark.parametrize("layout", ["no-split", "no-images", "no-annotation"])
def test_missing_cityscapes_files_are_user_errors(tmp_path, layout):
    from PIL import Image

    from glore.data.cityscapes import CityscapesSegmentation

    root = tmp_path / "cityscapes"
    if layout != "no-split":
        for sub in ("leftImg8bit", "gtFine"):
            (root / sub / "val" / "aachen").mkdir(parents=True)
    if layout == "no-annotation":
        Image.new("RGB", (8, 4)).save(root / "leftImg8bit" / "val" / "aachen" / "a_000000_000019_leftImg8bit.png")
    with pytest.raises(MissingFileError) as caught:
        CityscapesSegmentation(root, "val")
    assert isinstance(caught.value, GloreError) and str(root) in str(caught.value)


def test_missing_coco_files_through_the_command(tmp_path, capsys):
    argv = ["train", "--config", "configs/detection/det_digits_glore.yaml", "--output-dir", str(tmp_path / "run"),
            "data.name=coco", f"data.root={tmp_path}", "data.train_samples=null", "data.val_samples=null",
            "data.options=null"]
    assert "COCO annotation file not found" in one_line_error(capsys, argv)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text("{}")
    assert "COCO image folder not found" in one_line_error(capsys, argv)


def test_missing_pretrained_file(tmp_path):
    from glore.models import create_model

    with pytest.raises(MissingFileError, match=r"pretrained weights file not found: .*nothere.pth"):
        create_model("resnet18", pretrained=str(tmp_path / "nothere.pth"))


@pytest.mark.parametrize("annotations", [False, True])
def test_missing_video_root_or_annotation_list(tmp_path, annotations):
    from glore.data.video import VideoFolder

    if annotations:
        (tmp_path / "videos").mkdir()
        with pytest.raises(MissingFileError, match="annotation list not found"):
            VideoFolder(tmp_path / "videos", annotations=tmp_path / "train.csv")
    else:
        with pytest.raises(MissingFileError, match="video root not found"):
            VideoFolder(tmp_path / "videos")


# -- output folders that are files or not writable ----------------------------------------------------

def test_output_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("keep")
    assert "output_dir" in one_line_error(capsys, demo_args(tmp_path / "afile"))
    err = one_line_error(capsys, demo_args(tmp_path / "afile" / "sub"))
    assert f"'{tmp_path / 'afile'}' on its path is a file" in err
    assert (tmp_path / "afile").read_text() == "keep"


def test_output_dir_that_cannot_be_written(tmp_path, capsys, monkeypatch):
    from glore.engine import run_folder

    def refuse(path, exist_ok=False):
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr(run_folder.os, "makedirs", refuse)
    assert "permission denied; choose a folder you can write to" in one_line_error(capsys, demo_args(tmp_path / "r"))


# -- Lightning's tracebacks for trainer options ---------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU takes these")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_accelerator_this_machine_lacks(tmp_path, capsys, accelerator):
    err = one_line_error(capsys, demo_args(tmp_path / "run", f"trainer.accelerator={accelerator}"))
    assert f"trainer.accelerator='{accelerator}', but this machine has no such device" in err
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_unknown_strategy(tmp_path, capsys):
    err = one_line_error(capsys, demo_args(tmp_path / "run", "trainer.strategy=foo"))
    assert "lightning.Trainer refuses" in err and "trainer.strategy='foo'" in err and "invalid strategy name" in err


def test_negative_batch_limit(tmp_path, capsys):
    err = one_line_error(capsys, demo_args(tmp_path / "run", "trainer.limit_train_batches=-1"))
    assert "trainer.limit_train_batches=-1: Input should be greater than or equal to 0" in err


# -- keys passed through to other code ----------------------------------------------------------------

def test_misspelt_built_in_set_option(tmp_path, capsys):
    err = one_line_error(capsys, demo_args(tmp_path / "run", "data.options={canvs: 48}"))
    assert "data.options: DistantDigits does not take 'canvs'; it takes" in err and "canvas" in err


@pytest.mark.parametrize("value, words", [
    ("abc", "data.image_size='abc': Input should be a valid integer"),
    ("0", "data.image_size=0: Input should be greater than 0"),
    ("-32", "data.image_size=-32: Input should be greater than 0"),
])
def test_image_size_that_is_no_size(two_classes, tmp_path, capsys, value, words):
    assert words in one_line_error(capsys, tiny(two_classes, tmp_path / "run", f"data.image_size={value}"))


def test_zero_classes(two_classes, tmp_path, capsys):
    err = one_line_error(capsys, tiny(two_classes, tmp_path / "run", "model.num_classes=0"))
    assert "model.num_classes must be an integer >= 2 for classification, got 0" in err


def test_one_class_folder(tmp_path, capsys):
    root = make_image_folder(tmp_path / "data", classes=("only",), per_class=1, size=16)
    err = one_line_error(capsys, tiny(root, tmp_path / "run"))
    assert "holds 1 class folder; classification needs at least 2" in err


def test_batch_of_one_in_train_mode_batchnorm(two_classes, tmp_path, capsys):
    err = one_line_error(capsys, tiny(two_classes, tmp_path / "run", "model.name=test_bad_input_unclear:pooled_bn_net",
                                      "data.batch_size=1"))
    assert "a training batch of 1 sample reached a BatchNorm layer" in err and "data.batch_size=1" in err


# -- checkpoints and files ----------------------------------------------------------------------------

def test_edited_checkpoint_config_is_a_checkpoint_error(tmp_path, capsys):
    from glore.engine.classification import ClassificationModule

    cfg = load_config(DEMO)
    state = ClassificationModule(cfg).state_dict()
    cfg["model"]["width"] = 16
    torch.save({"hyper_parameters": {"cfg": cfg}, "state_dict": state}, tmp_path / "edited.ckpt")
    err = one_line_error(capsys, ["evaluate", "--checkpoint", str(tmp_path / "edited.ckpt")])
    assert "cannot load" in err and "its weights do not fit the network of the config (other shape" in err


@pytest.mark.parametrize("content, words", [
    (bytes(range(256)), "is not UTF-8 text (byte 0x80 at offset 128)"),
    ("seed: 1 # caf\xe9\n".encode("latin-1"), "is not UTF-8 text (byte 0xe9"),
], ids=["binary", "latin-1"])
def test_config_file_that_is_not_utf8(tmp_path, capsys, content, words):
    (tmp_path / "c.yaml").write_bytes(content)
    err = one_line_error(capsys, ["train", "--config", str(tmp_path / "c.yaml")])
    assert str(tmp_path / "c.yaml") in err and words in err


def test_truncated_coco_json_names_the_file(coco_tree):
    images, ann = coco_tree
    with open(ann) as handle:
        text = handle.read()
    with open(ann, "w") as handle:
        handle.write(text[: len(text) // 2])
    with pytest.raises(CocoFormatError, match=rf"^{ann}: not a valid JSON file .*truncated"):
        CocoDetectionSet(images, ann)


def test_category_id_beyond_num_classes(coco_tree, tmp_path):
    from glore.engine import detection

    images, ann = coco_tree
    with open(ann) as handle:
        data = json.load(handle)
    data["categories"][-1]["id"] = 500
    for entry in data["annotations"]:
        entry["category_id"] = 500
    with open(ann, "w") as handle:
        json.dump(data, handle)
    root = os.path.dirname(images)
    cfg = load_config("configs/detection/det_digits_glore.yaml", [
        "data.name=coco", f"data.root={root}", "data.train_images=val", "data.val_images=val",
        f"data.train_annotations={ann}", f"data.val_annotations={ann}", "data.train_samples=null",
        "data.val_samples=null", "data.options=null"])
    with pytest.raises(GloreError, match=r"category id 500 .*needs model.num_classes > 500, got model.num_classes=3"):
        detection.build_datamodule(cfg).setup("fit")


# -- misleading lines ---------------------------------------------------------------------------------

def test_empty_config_or_none_names_data_name(tmp_path, capsys):
    (tmp_path / "empty.yaml").write_text("")
    for argv in (["train", "--output-dir", str(tmp_path / "a")],
                 ["train", "--config", str(tmp_path / "empty.yaml"), "--output-dir", str(tmp_path / "b")]):
        err = one_line_error(capsys, argv)
        assert "data.name is not set; expected one of distant-digits, distant-clips, imagefolder" in err
        assert "num_classes" not in err


def test_folder_given_as_a_file(tmp_path, capsys):
    assert f"config '{tmp_path}' is a folder; expected a YAML file" in one_line_error(
        capsys, ["train", "--config", str(tmp_path)])
    assert f"checkpoint '{tmp_path}' is a folder; expected a checkpoint file" in one_line_error(
        capsys, ["evaluate", "--checkpoint", str(tmp_path)])
    assert "is a folder; expected a checkpoint file or 'last'" in one_line_error(
        capsys, demo_args(tmp_path / "run", flags=("--resume", str(tmp_path))))


def test_weights_file_on_the_demo_network(tmp_path, capsys):
    err = one_line_error(capsys, demo_args(tmp_path / "run", "model.checkpoint=foo.pth"))
    assert "model.name='distant_digits_net' is a small network built from scratch and loads no weights file" in err
    assert "block" not in err.split("(")[0]


def test_glore_unit_of_absurd_width():
    from glore.nn import GloRe

    with pytest.raises(GloreError, match=r"GloRe\(channels=1000000000, .*would hold 1.56e\+18 parameters"):
        GloRe(10**9)


# -- the four messages of every run -------------------------------------------------------------------

def test_a_run_prints_none_of_the_four_messages(tmp_path, recwarn):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("lightning.pytorch")
    logger.addHandler(handler)
    try:
        assert glore_main(demo_args(tmp_path / "run")) == 0
    finally:
        logger.removeHandler(handler)
    printed = [r.getMessage() for r in records] + [str(w.message) for w in recwarn]
    assert any("GPU available" in line for line in printed)        # the capture sees Lightning's lines
    for message in ("on_after_batch_transfer", "LeafSpec", "Tip:", "smaller than the logging interval"):
        assert not [line for line in printed if message in line], message
