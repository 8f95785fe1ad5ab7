"""CityscapesMetrics: hand-computed cases, and agreement with the benchmark's official evaluation."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from glore.data.cityscapes import CATEGORIES, CLASS_NAMES, ID_TO_LABEL, train_id_to_id_lut
from glore.metrics import CityscapesMetrics
from glore.metrics.cityscapes import AVG_CLASS_SIZE, SegmentationIoU

ROAD, SIDEWALK, CAR, PERSON = (CLASS_NAMES.index(n) for n in ("road", "sidewalk", "car", "person"))


def test_iou_by_hand_with_ignored_pixels():
    # target: 3 road, 2 sidewalk, 1 ignored; prediction right on 2 road and 1 sidewalk
    target = torch.tensor([[ROAD, ROAD, ROAD, SIDEWALK, SIDEWALK, 255]])
    pred = torch.tensor([[ROAD, ROAD, SIDEWALK, SIDEWALK, ROAD, SIDEWALK]])  # last pixel is ignored
    m = SegmentationIoU(19)
    m.update(pred, target)
    out = m.compute()
    # road: TP 2, FP 1 (pixel 4), FN 1 (pixel 2) -> 2/4; sidewalk: TP 1, FP 1, FN 1 -> 1/3
    assert out["iou"][ROAD].item() == pytest.approx(2 / 4)
    assert out["iou"][SIDEWALK].item() == pytest.approx(1 / 3)
    assert torch.isnan(out["iou"][CAR])                       # absent everywhere: excluded from the mean
    assert out["miou"].item() == pytest.approx((2 / 4 + 1 / 3) / 2)
    assert out["pixel_acc"].item() == pytest.approx(3 / 5)


def test_categories_merge_classes():
    # road and sidewalk are both "flat": confusing them costs class IoU, not category IoU
    target = torch.tensor([[ROAD, ROAD, SIDEWALK, SIDEWALK]])
    pred = torch.tensor([[SIDEWALK, ROAD, ROAD, SIDEWALK]])
    m = CityscapesMetrics()
    m.update(pred, target)
    out = m.compute()
    assert out["iou_class"].item() == pytest.approx(1 / 3)
    assert out["iou_category"].item() == pytest.approx(1.0)
    assert out["iou_per_category"][CATEGORIES.index("flat")].item() == pytest.approx(1.0)
    assert torch.isnan(out["iiou_class"])                     # no instance ids given


def test_iiou_by_hand():
    # two cars: a small one (2 px, both found) and a large one (6 px, 3 found); 1 px of road predicted car
    target = torch.full((1, 3, 4), ROAD)
    inst = torch.full((1, 3, 4), 7, dtype=torch.int32)        # label id 7 = road, no instance
    target[0, 0, :2] = CAR
    inst[0, 0, :2] = 26000
    target[0, 1:, :3] = CAR
    inst[0, 1:, :3] = 26001
    pred = target.clone()
    pred[0, 1, :3] = ROAD                                     # misses 3 px of the large car
    pred[0, 0, 3] = CAR                                       # one false positive
    m = CityscapesMetrics()
    m.update(pred, target, inst)
    out = m.compute()
    avg = AVG_CLASS_SIZE["car"]
    w_small, w_large = avg / 2, avg / 6
    itp = 2 * w_small + 3 * w_large
    ifn = 3 * w_large
    assert out["iiou"][CAR].item() == pytest.approx(itp / (itp + 1 + ifn))
    assert out["iiou_class"].item() == pytest.approx(itp / (itp + 1 + ifn))
    # pixel IoU of car: TP 5, FP 1, FN 3
    assert out["iou"][CAR].item() == pytest.approx(5 / 9)
    vehicle = CATEGORIES.index("vehicle")
    assert out["iiou_per_category"][vehicle].item() == pytest.approx(itp / (itp + 1 + ifn))
    assert out["iiou_category"].item() == pytest.approx(itp / (itp + 1 + ifn))


def test_predictions_outside_classes_are_false_negatives():
    target = torch.tensor([[ROAD, ROAD]])
    pred = torch.tensor([[ROAD, 255]])
    m = CityscapesMetrics()
    m.update(pred, target)
    assert m.compute()["iou"][ROAD].item() == pytest.approx(1 / 2)


def test_logits_and_state_accumulate():
    target = torch.randint(0, 19, (2, 5, 6))
    logits = torch.randn(2, 19, 5, 6)
    a, b = CityscapesMetrics(), CityscapesMetrics()
    a.update(logits, target)
    b.update(logits[:1].argmax(1), target[:1])
    b.update(logits[1:].argmax(1), target[1:])
    assert torch.equal(a.confmat, b.confmat)
    assert a.confmat.sum().item() == target.numel()


def test_bad_inputs_name_the_problem():
    m = CityscapesMetrics()
    with pytest.raises(ValueError, match="same shape"):
        m.update(torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[19\]"):
        m.update(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 19]]))
    with pytest.raises(ValueError, match="outside the Cityscapes table"):
        m.update(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long),
                 torch.tensor([[40001, 0]]))


# ---- agreement with cityscapesscripts' evalPixelLevelSemanticLabeling -------------------------------

def _make_fixture(rng, h=48, w=64):
    """Random label-id map with rectangles of many labels (ignored ones included) and instances."""
    label_ids = np.full((h, w), 7, dtype=np.uint8)
    instance = label_ids.astype(np.int32)
    for _ in range(14):
        lid = int(rng.choice(sorted(ID_TO_LABEL)))
        y0, x0 = rng.integers(0, h - 4), rng.integers(0, w - 4)
        y1, x1 = y0 + rng.integers(3, 20), x0 + rng.integers(3, 24)
        label_ids[y0:y1, x0:x1] = lid
        instance[y0:y1, x0:x1] = lid
    counter = {}
    for _ in range(8):   # instances of classes with instances (caravan, trailer: ignored in eval)
        lid = int(rng.choice([24, 25, 26, 27, 28, 29, 31, 32, 33]))
        k = counter.setdefault(lid, 0)
        counter[lid] += 1
        y0, x0 = rng.integers(0, h - 3), rng.integers(0, w - 3)
        y1, x1 = y0 + rng.integers(2, 16), x0 + rng.integers(2, 16)
        label_ids[y0:y1, x0:x1] = lid
        instance[y0:y1, x0:x1] = lid * 1000 + k
    return label_ids, instance


def _make_prediction(rng, target_train):
    pred = target_train.astype(np.int64).copy()
    pred[pred == 255] = rng.integers(0, 19, size=int((pred == 255).sum()))
    noise = rng.random(pred.shape)
    pred[noise < 0.25] = rng.integers(0, 19, size=int((noise < 0.25).sum()))
    pred[noise > 0.97] = 255                      # "no class": official label id 0 (unlabeled)
    return pred


def test_agrees_with_official_evaluation(tmp_path, monkeypatch):
    ev = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    from glore.data.cityscapes import label_ids_to_train_ids

    if not hasattr(np, "in1d"):   # removed in NumPy 2.4; the official script still calls it
        monkeypatch.setattr(np, "in1d", lambda a, b: np.isin(a, b).ravel(), raising=False)
    monkeypatch.setattr(ev.args, "quiet", True)
    monkeypatch.setattr(ev.args, "JSONOutput", False)
    monkeypatch.setattr(ev.args, "evalInstLevelScore", True)
    rng = np.random.default_rng(0)
    to_id = train_id_to_id_lut()
    metric = CityscapesMetrics()
    preds, gts = [], []
    for i in range(4):
        label_ids, instance = _make_fixture(rng)
        target = label_ids_to_train_ids(label_ids)
        pred = _make_prediction(rng, target)
        stem = f"city_{i:06d}_000019"
        gt_path = tmp_path / f"{stem}_gtFine_labelIds.png"
        Image.fromarray(label_ids).save(gt_path)
        Image.fromarray(instance.astype(np.uint16)).save(tmp_path / f"{stem}_gtFine_instanceIds.png")
        pred_path = tmp_path / f"{stem}_pred.png"
        Image.fromarray(to_id[np.clip(pred, 0, 255)]).save(pred_path)
        preds.append(str(pred_path))
        gts.append(str(gt_path))
        metric.update(torch.from_numpy(pred)[None], torch.from_numpy(target.astype(np.int64))[None],
                      torch.from_numpy(instance)[None])
    official = ev.evaluateImgLists(preds, gts, ev.args)
    ours = metric.compute()
    assert ours["iou_class"].item() == pytest.approx(official["averageScoreClasses"], abs=1e-6)
    assert ours["iiou_class"].item() == pytest.approx(official["averageScoreInstClasses"], abs=1e-6)
    assert ours["iou_category"].item() == pytest.approx(official["averageScoreCategories"], abs=1e-6)
    assert ours["iiou_category"].item() == pytest.approx(official["averageScoreInstCategories"], abs=1e-6)
    for c, name in enumerate(CLASS_NAMES):
        for key, off_key in (("iou", "classScores"), ("iiou", "classInstScores")):
            ref, got = official[off_key][name], ours[key][c].item()
            assert (math.isnan(ref) and math.isnan(got)) or got == pytest.approx(ref, abs=1e-6), (key, name)
    for k, cat in enumerate(CATEGORIES):
        ref, got = official["categoryScores"][cat], ours["iou_per_category"][k].item()
        assert got == pytest.approx(ref, abs=1e-6), cat
    # the fixtures exercise every instance class that is evaluated
    assert int((~torch.isnan(ours["iiou"])).sum()) >= 5
