"""COCO-format reading with checks, the det-digits set, COCO results and COCOeval."""

import json

import numpy as np
import pytest
import torch

from glore.data.coco import CocoDetectionSet, CocoFormatError
from glore.data.det_digits import DetDigits, write_coco_tree
from glore.metrics.coco import STAT_NAMES, coco_evaluate, to_coco_results

SMALL = dict(canvas=64, num_digits=2, digit_size=12, key_size=8, min_distance=16)


@pytest.fixture
def tree(tmp_path):
    images, ann = write_coco_tree(DetDigits("val", num_samples=3, **SMALL), tmp_path)
    return images, ann


def _edit(ann, change):
    with open(ann) as handle:
        data = json.load(handle)
    change(data)
    with open(ann, "w") as handle:
        json.dump(data, handle)


def test_coco_tree_loads_as_the_generated_set(tree):
    images, ann = tree
    source = DetDigits("val", num_samples=3, **SMALL)
    data = CocoDetectionSet(images, ann, masks=True)
    assert len(data) == 3
    image, target = data[1]
    _, expected = source[1]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and image.max() <= 1
    torch.testing.assert_close(target["boxes"].as_subclass(torch.Tensor), expected["boxes"])
    assert target["labels"].tolist() == expected["labels"].tolist() and target["image_id"] == 2
    assert torch.equal(target["masks"].as_subclass(torch.Tensor), expected["masks"])


def test_training_flip_moves_boxes_and_masks_and_drops_crowds(tree):
    images, ann = tree
    _edit(ann, lambda d: d["annotations"][0].update(iscrowd=1))
    flips = []
    data = CocoDetectionSet(images, ann, masks=True, train=True)
    for seed in range(6):
        torch.manual_seed(seed)
        image, target = data[0]
        assert len(target["boxes"]) == 1                       # the crowd annotation is dropped
        box, mask = target["boxes"][0], target["masks"][0]
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert (xs.min(), xs.max() + 1) == (box[0], box[2])   # the mask moved with the box
        flips.append(float(box[0]))
    assert len(set(flips)) == 2


@pytest.mark.parametrize("change, message", [
    (lambda d: d["annotations"][1].update(bbox=[60.0, 3.0, 10.0, 10.0]),
     r"instances_val.json: annotation id 2 \(image 'val_00000.png'\): bbox .* extends outside the 64x64 image"),
    (lambda d: d["annotations"][2].update(category_id=7),
     r"annotation id 3 \(image 'val_00001.png'\): unknown category_id 7; expected one of \[1, 2\]"),
    (lambda d: d["images"][2].update(file_name="missing.png"),
     r"image id 3: file '.*missing.png' not found \(annotation ids \[5, 6\]\)"),
    (lambda d: d["annotations"][0].update(bbox=[3.0, 3.0, 0.0, 5.0]), r"annotation id 1 .* has no area"),
])
def test_bad_annotations_name_the_file_and_the_annotation(tree, change, message):
    images, ann = tree
    _edit(ann, change)
    with pytest.raises(CocoFormatError, match=message):
        CocoDetectionSet(images, ann)


def test_det_digits_classes_follow_the_far_key():
    data = DetDigits("train", num_samples=40, **SMALL)
    labels = []
    for index in range(len(data)):
        image, objects = data.sample(index)
        bright_frame = image.max()
        for obj in objects:
            x1, y1, x2, y2 = (int(v) for v in obj["box"])
            assert obj["mask"][y1:y2, x1:x2].any() and not obj["mask"][:y1].any()
            labels.append(obj["label"])
        # every digit is min_distance away from the key: the key's pixels lie outside each grown box
        key = image.copy()
        for obj in objects:
            x1, y1, x2, y2 = (int(v) for v in obj["box"])
            key[max(y1 - 16, 0):y2 + 16, max(x1 - 16, 0):x2 + 16] = 0
        assert key.max() > 0 and bright_frame > 0
    assert set(labels) == {1, 2} and 0.3 < np.mean(np.array(labels) == 1) < 0.7
    train, val = DetDigits("train", num_samples=2, **SMALL), DetDigits("val", num_samples=2, **SMALL)
    assert not np.array_equal(train.sample(0)[0], val.sample(0)[0])
    with pytest.raises(ValueError, match="does not fit"):
        DetDigits(canvas=32, min_distance=30)


def test_coco_evaluate_scores_perfect_and_shifted_detections(tree):
    images, ann = tree
    data = CocoDetectionSet(images, ann, masks=True)
    perfect, shifted = [], []
    for index in range(len(data)):
        _, target = data[index]
        boxes = target["boxes"].as_subclass(torch.Tensor)
        out = {"boxes": boxes, "labels": target["labels"], "scores": torch.ones(len(boxes)),
               "masks": target["masks"].as_subclass(torch.Tensor)[:, None].float()}
        perfect.append(out)
        shifted.append({**out, "boxes": boxes + torch.tensor([4.0, 0.0, 4.0, 0.0])})
    ids = [data[i][1]["image_id"] for i in range(len(data))]
    results = to_coco_results(perfect, ids)
    assert set(results[0]) == {"image_id", "category_id", "bbox", "score", "segmentation"}
    for iou_type in ("bbox", "segm"):
        stats = coco_evaluate(ann, results, iou_type)
        assert tuple(stats) == STAT_NAMES and stats["ap"] == pytest.approx(1.0) and stats["ar100"] == pytest.approx(1.0)
    swapped = [{**r, "category_id": 3 - r["category_id"]} for r in results]   # every class wrong
    assert coco_evaluate(ann, swapped, "bbox")["ap"] == 0.0
    assert coco_evaluate(ann, swapped, "bbox", class_agnostic=True)["ap"] == pytest.approx(1.0)
    worse = coco_evaluate(ann, to_coco_results(shifted, ids), "bbox")
    assert worse["ap"] < 0.5 and worse["ap50"] < 1.0
    assert coco_evaluate(ann, [], "bbox") == {name: 0.0 for name in STAT_NAMES}
