"""Each task's data section of the schema declares the defaults the task reads: a config that leaves a key out
gets the schema's default in the datasets the task builds, and ``--print-config`` shows it."""

import os
import shutil

import pytest
import yaml

from glore.cli import main
from glore.engine import schema
from glore.engine.config import filled_config, load_config
from glore.engine.schema import SchemaError, data_section
from test_cityscapes_data import write_cityscapes
from test_engine_tinynet import make_image_folder
from test_video_data import write_video


def _default(task: str, key: str):
    return schema.DATA_SECTIONS[task].model_fields[key].default


def _config(task: str, **data) -> dict:
    return load_config(None, [f"task={task}"] + [f"data.{key}={value}" for key, value in data.items()])


def test_classification_reads_image_size_and_the_batch_sizes_from_its_section(tmp_path):
    from glore.engine.classification import build_datamodule

    cfg = _config("classification", name="imagefolder", root=make_image_folder(tmp_path / "images", size=40))
    assert "image_size" not in cfg["data"] and _default("classification", "image_size") == 224
    datamodule = build_datamodule(cfg)
    image, _ = datamodule.val_dataset()[0]
    assert tuple(image.shape) == (3, 224, 224)
    assert datamodule.eval_batch_size() == datamodule.batch_size == _default("classification", "batch_size") == 32
    assert filled_config(cfg)["data"]["image_size"] == 224


def test_segmentation_reads_crop_size_from_its_section(tmp_path):
    from glore.engine.segmentation_data import build_datamodule

    root = write_cityscapes(tmp_path / "cityscapes", {"train": ["aachen"]})
    cfg = _config("segmentation", name="cityscapes", root=str(root))
    assert "crop_size" not in cfg["data"] and _default("segmentation", "crop_size") == 769
    datamodule = build_datamodule(cfg)
    image, target = datamodule.train_dataset()[0][:2]
    assert tuple(image.shape) == (3, 769, 769) and tuple(target.shape[-2:]) == (769, 769)
    assert datamodule.eval_batch_size() == _default("segmentation", "val_batch_size") == 1
    assert datamodule.drop_last is _default("segmentation", "drop_last") is True


def test_video_reads_crop_and_num_frames_from_its_section(tmp_path):
    from glore.engine.video import build_datamodule

    (tmp_path / "val" / "jump").mkdir(parents=True)
    write_video(tmp_path / "val" / "jump" / "a.mp4", 20)
    cfg = _config("video", name="kinetics", root=str(tmp_path))
    assert not {"crop", "num_frames"} & set(cfg["data"])
    clip, label = build_datamodule(cfg).val_dataset()[0]
    crop, frames = _default("video", "crop"), _default("video", "num_frames")
    assert (crop, frames) == (224, 8) and tuple(clip.shape) == (3, frames, crop, crop) and label == 0


def test_detection_reads_the_coco_folder_names_from_its_section(tmp_path):
    from glore.data.det_digits import DetDigits, write_coco_tree
    from glore.engine.detection import build_datamodule

    write_coco_tree(DetDigits("val", num_samples=2, canvas=64, num_digits=2, digit_size=12, key_size=8,
                              min_distance=16), tmp_path)
    os.rename(tmp_path / "val", tmp_path / "val2017")
    shutil.move(tmp_path / "annotations" / "instances_val.json", tmp_path / "annotations" / "instances_val2017.json")
    cfg = _config("detection", name="coco", root=str(tmp_path))
    assert "val_images" not in cfg["data"] and _default("detection", "val_images") == "val2017"
    dataset = build_datamodule(cfg).val_dataset()
    assert dataset.image_dir == str(tmp_path / "val2017") and len(dataset) == 2


@pytest.mark.parametrize("task, key, value", [("classification", "resize_size", 256), ("video", "short_side", 256),
                                              ("segmentation", "scale_range", [0.5, 2.0]),
                                              ("detection", "hflip", True)])
def test_print_config_shows_the_sections_defaults(tmp_path, capsys, task, key, value):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"task": task, "data": {"name": "somewhere", "root": "/data"}}))
    assert main(["train", "--config", str(config), "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"][key] == value == _default(task, key)


def test_print_config_leaves_out_the_keys_a_built_in_set_does_not_read(tmp_path, capsys):
    assert main(["train", "--config", os.path.join(os.path.dirname(__file__), "..", "configs", "demo", "glore.yaml"),
                 "--print-config"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)["data"]
    assert data["name"] == "distant-digits" and "image_size" not in data and data["shuffle"] is True
    # the printed section is a config that loads again as it is
    again = load_config(None, [f"data={yaml.safe_dump(data, default_flow_style=True, width=10**6).strip()}"])
    assert filled_config(again)["data"] == data


def test_a_value_that_does_not_fit_the_section_is_named_with_the_task():
    with pytest.raises(SchemaError, match=r"unknown key 'data.crop' for task 'classification'; data accepts .*image_size"):
        _config("classification", name="imagefolder", crop=5)
    with pytest.raises(SchemaError, match=r"data.image_size=0: Input should be greater than 0"):
        data_section("classification", {"image_size": 0})


def test_each_task_reads_its_model_keys_from_its_model_section():
    from glore.engine.detection import build_datamodule as detection_data

    data = {"name": "det-digits", "train_samples": 2, "val_samples": 2}
    plain = detection_data({"model": {}, "data": data, "seed": 0})
    assert plain.masks is True and plain.num_classes == schema.DetectionModelSection.model_fields["num_classes"].default
    assert detection_data({"model": {"arch": "cascade_maskrcnn"}, "data": data}).masks is True
    assert detection_data({"model": {"arch": "fasterrcnn", "num_classes": 3}, "data": data}).masks is False
    assert schema.model_section("detection", {"min_size": [640, 800]}).test_size == 800
    section = schema.model_section("classification", {"name": "resnet18", "block": "glore"})
    assert section.label_smoothing == 0.0 and section.model_extra == {"name": "resnet18", "block": "glore"}


def test_a_model_key_of_the_wrong_kind_is_one_line_naming_it():
    with pytest.raises(SchemaError, match=r"^invalid config: model\.label_smoothing=1\.5: ") as info:
        load_config(None, ["model.name=resnet18", "model.label_smoothing=1.5"])
    assert "\n" not in str(info.value)
    with pytest.raises(SchemaError, match=r"model\.arch='yolo'"):
        load_config(None, ["task=detection", "model.arch=yolo"])
