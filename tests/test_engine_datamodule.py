"""The tasks' data modules share one base (glore.engine.datamodule.TaskData): defaults, options, loaders."""

import pytest
import torch

from glore.engine.classification import ClassificationData
from glore.engine.datamodule import TaskData
from glore.engine.detection import DetectionData
from glore.engine.segmentation_data import SegmentationData
from glore.engine.video import VideoData
from glore.errors import ArgumentError


def test_every_task_data_module_is_a_task_data():
    for cls in (ClassificationData, SegmentationData, VideoData, DetectionData):
        assert issubclass(cls, TaskData)


@pytest.mark.parametrize("make, train_batch, val_batch, drop_last", [
    (lambda: ClassificationData({"name": "distant-digits"}), 32, 32, False),
    (lambda: SegmentationData({"name": "seg-digits"}), 8, 1, True),
    (lambda: VideoData({"name": "moving-digits"}), 8, 8, False),
    (lambda: DetectionData({"name": "det-digits"}, masks=False), 2, 1, False),
])
def test_task_defaults_for_keys_the_config_leaves_out(make, train_batch, val_batch, drop_last):
    data = make()
    assert data.data_cfg.get("batch_size", data.batch_size) == train_batch
    assert data.eval_batch_size() == val_batch
    assert data.drop_last is drop_last


def test_val_batch_size_of_the_config_wins_and_defaults_to_the_training_batch():
    assert ClassificationData({"name": "distant-digits", "batch_size": 7}).eval_batch_size() == 7
    assert ClassificationData({"name": "distant-digits", "batch_size": 7, "val_batch_size": 3}).eval_batch_size() == 3
    assert SegmentationData({"name": "seg-digits", "val_batch_size": 4}).eval_batch_size() == 4


def test_val_options_and_split_sizes_reach_the_built_in_sets():
    # seg-digits ignored data.val_options before the shared base
    data = SegmentationData({"name": "seg-digits", "options": {"num_samples": 6, "canvas": 32, "digit_size": 8,
                                                                 "num_digits": 2},
                             "val_options": {"num_samples": 3}})
    data.setup("fit")
    assert len(data.train_set) == 6 and len(data.val_set) == 3
    data = DetectionData({"name": "det-digits", "options": {"num_samples": 5}, "val_samples": 2}, masks=False)
    assert data.builtin_options(train=True) == {"num_samples": 5}
    assert data.builtin_options(train=False) == {"num_samples": 2}


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "4"])
def test_a_bad_split_size_is_named(size):
    data = DetectionData({"name": "det-digits", "train_samples": size}, masks=False)
    with pytest.raises(ArgumentError, match=r"data\.train_samples must be a positive integer.*got"):
        data.builtin_options(train=True)


def test_training_loader_is_epoch_seeded_and_the_validation_loader_keeps_order():
    data = ClassificationData({"name": "distant-digits", "batch_size": 4, "drop_last": True,
                               "options": {"num_samples": 10}, "val_options": {"num_samples": 6}}, seed=3)
    data.setup("fit")
    val = torch.cat([labels for _, labels in data.val_dataloader()])
    assert torch.equal(val, data.val_set.labels)
    first = [labels for _, labels in data.train_dataloader()]
    assert len(first) == 2                      # 10 samples, batches of 4, the last dropped
    again = [labels for _, labels in data.train_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, again))   # the same epoch, the same order
