import numpy as np
import pytest
import torch

from glore.data import DistantDigits
from glore.data.distant_digits import box_gap, source_digits
from glore.models.small import SMALL_MODELS, distant_digits_net


def _small(split="train", **kw):
    kw.setdefault("num_samples", 64)
    return DistantDigits(split, **kw)


def test_items_shapes_range_and_labels():
    ds = _small(canvas=40, min_distance=10, seed=3)
    assert len(ds) == 64 and ds.num_classes == 10
    x, y = ds[5]
    assert x.shape == (1, 40, 40) and x.dtype == torch.float32
    assert isinstance(y, int) and 0 <= y < 10
    assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) <= 1.0
    assert ds.images.shape == (64, 1, 40, 40) and ds.labels.dtype == torch.int64


def test_deterministic_from_seed_and_different_across_seeds():
    a, b, c = _small(seed=1), _small(seed=1), _small(seed=2)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_train_and_val_use_disjoint_source_scans():
    tr, _ = source_digits("train")
    va, _ = source_digits("val")
    assert len(tr) + len(va) == 1797
    # no val scan equals any train scan (compare raw pixels)
    tr_set = {im.tobytes() for im in tr}
    shared = sum(im.tobytes() in tr_set for im in va)
    # sklearn's digits hold a few exact duplicate scans; allow at most those
    assert shared <= 5


def test_select_geometry_label_and_cue():
    ds = _small(num_samples=200, seed=0)
    for i in range(len(ds)):
        target, other, marker = (tuple(int(v) for v in b) for b in ds.boxes[i])
        assert min(box_gap(target, other), box_gap(target, marker), box_gap(other, marker)) >= ds.min_distance
        assert int(ds.labels[i]) == int(ds.digit_classes[i, 0])
        img = ds.images[i, 0]
        t, l, s = marker
        marker_level = float(img[t:t + s, l:l + s].max())
        t, l, s = target
        target_level = float(img[t:t + s, l:l + s].max())
        t, l, s = other
        other_level = float(img[t:t + s, l:l + s].max())
        # the marker is drawn at the target digit's level (a scan's peak may be a little below it)
        assert marker_level in (pytest.approx(ds.bright), pytest.approx(ds.dim))
        assert target_level <= marker_level + 1e-6
        assert abs(target_level - marker_level) < abs(other_level - marker_level)
        # nothing outside the three boxes
        mask = torch.zeros_like(img, dtype=torch.bool)
        for t, l, s in (target, other, marker):
            mask[t:t + s, l:l + s] = True
        assert float(img[~mask].abs().max()) == 0.0


def test_select_target_is_bright_half_the_time_and_reporting_one_digit_is_near_half():
    ds = _small(num_samples=2000, seed=4)
    marker_bright = []
    for i in range(len(ds)):
        t, l, s = (int(v) for v in ds.boxes[i, 2])
        marker_bright.append(float(ds.images[i, 0, t, l]) == ds.bright)
    frac = float(np.mean(marker_bright))
    assert 0.45 < frac < 0.55
    # "always report the bright digit": right when the marker is bright, or when both classes agree
    bright_class = torch.where(torch.tensor(marker_bright), ds.digit_classes[:, 0], ds.digit_classes[:, 1])
    acc = float((bright_class == ds.labels).float().mean())
    assert 0.48 < acc < 0.62


def test_same_task_balanced_and_correct():
    ds = _small(task="same", num_samples=400, seed=0)
    assert ds.num_classes == 2
    same = (ds.digit_classes[:, 0] == ds.digit_classes[:, 1]).long()
    assert torch.equal(same, ds.labels)
    assert 0.4 < float(ds.labels.float().mean()) < 0.6
    for i in range(20):
        a, b = (tuple(int(v) for v in box) for box in ds.boxes[i, :2])
        assert box_gap(a, b) >= ds.min_distance


def test_digit_size_option_rescales():
    ds = _small(digit_size=12, canvas=56, num_samples=8)
    t, l, s = (int(v) for v in ds.boxes[0, 0])
    assert s == 12 and float(ds.images[0, 0, t:t + s, l:l + s].max()) > 0


@pytest.mark.parametrize("kwargs, match", [
    ({"canvas": 20, "min_distance": 14}, "canvas=20 is too small"),
    ({"task": "count"}, "task must be one of"),
    ({"num_samples": 0}, "num_samples must be an integer >= 1, got 0"),
    ({"dim": 1.0}, "dim must be lower than bright"),
    ({"digit_size": 64}, "too small"),
])
def test_bad_options_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistantDigits("train", **{"num_samples": 4, **kwargs})
    with pytest.raises(ValueError, match="split must be one of"):
        DistantDigits("test", num_samples=4)


def test_box_gap():
    assert box_gap((0, 0, 8), (0, 4, 8)) == 0          # overlapping
    assert box_gap((0, 0, 8), (0, 8, 8)) == 1          # adjacent columns 7 and 8
    assert box_gap((0, 0, 8), (0, 21, 8)) == 14
    assert box_gap((0, 0, 8), (30, 2, 4)) == 23


@pytest.mark.parametrize("block", [None, "glore", "gc", "nl"])
def test_demo_net_builds_and_runs(block):
    model = SMALL_MODELS["distant_digits_net"](block=block, width=16)
    out = model(torch.rand(2, 1, 48, 48))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_baseline_receptive_field_is_declared_and_below_min_distance():
    """Gradient of one pre-pooling unit w.r.t. the input: its support is the receptive field."""
    model = distant_digits_net(block=None, width=8).eval()
    x = torch.rand(1, 1, 48, 48, requires_grad=True)
    feats = model.forward_features(x)
    feats[0, :, 6, 6].sum().backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    cols = torch.nonzero(x.grad[0, 0].abs().sum(0)).flatten()
    rf = int(rows.max() - rows.min() + 1)
    assert rf == int(cols.max() - cols.min() + 1) == model.receptive_field
    assert DistantDigits("train", num_samples=1).min_distance >= rf
    # a global block makes every pre-pooling unit depend on the whole canvas
    model = distant_digits_net(block="glore", width=8).eval()
    torch.nn.init.ones_(model.block.norm.weight)
    x = torch.rand(1, 1, 48, 48, requires_grad=True)
    model.forward_features(x)[0, :, 0, 0].sum().backward()
    assert float(x.grad[0, 0, -1, -1].abs()) > 0


def test_demo_net_rejects_bad_options():
    with pytest.raises(ValueError, match="width must be a multiple of 4, got 30"):
        distant_digits_net(width=30)
    with pytest.raises(ValueError, match="without a block"):
        distant_digits_net(block_kwargs={"mid": 4})
    with pytest.raises(ValueError, match="unknown block"):
        distant_digits_net(block="transformer")


def test_a_split_is_made_once_per_process_and_each_dataset_owns_its_tensors():
    from glore.data.distant_digits import _generate

    _generate.cache_clear()
    a = DistantDigits("val", num_samples=40, seed=5)
    b = DistantDigits("val", num_samples=40, seed=5)
    assert _generate.cache_info().hits == 1 and torch.equal(a.images, b.images)
    a.images.zero_()                                   # changing one dataset leaves the other and the cache
    assert b.images.abs().sum() > 0 and DistantDigits("val", num_samples=40, seed=5).images.abs().sum() > 0
