"""The seg-digits set (labels that depend on a distant key digit) and the joint transforms."""

import numpy as np
import pytest
import torch

from glore.data.seg_digits import IGNORE_INDEX, SegDigits
from torchvision.transforms import v2

from glore.data.seg_transforms import Compose, RandomCrop, RandomScale, build_seg_transforms


def test_deterministic_and_shaped():
    a, b = SegDigits("train", num_samples=8, seed=3), SegDigits("train", num_samples=8, seed=3)
    c = SegDigits("train", num_samples=8, seed=4)
    img, tgt = a[5]
    assert img.shape == (3, 64, 64) and tgt.shape == (64, 64) and tgt.dtype == torch.long
    assert torch.equal(img, b[5][0]) and torch.equal(tgt, b[5][1])
    assert not torch.equal(img, c[5][0])
    assert set(torch.unique(tgt).tolist()) <= {0, 1, 2, IGNORE_INDEX}


def _check_layout(image, target, info, s, frame_value):
    # the key (first digit) is framed; the frame is background
    y, x = info["places"][0]
    assert np.allclose(image[y, x:x + s + 4], frame_value) and (target[y, x:x + s + 4] == 0).all()
    # outside the digit boxes everything is background
    mask = np.ones_like(target, dtype=bool)
    for y, x in info["places"]:
        mask[y:y + s + 4, x:x + s + 4] = False
    assert (target[mask] == 0).all()


def _digit_labels(target, place, s):
    y, x = place
    region = target[y + 2:y + 2 + s, x + 2:x + 2 + s]
    return set(np.unique(region).tolist()) - {0, IGNORE_INDEX}


@pytest.mark.parametrize("rule", ["shade", "class"])
def test_labels_follow_the_key_digit(rule):
    ds = SegDigits("val", num_samples=40, num_digits=4, rule=rule, dim=0.4, seed=0)
    seen = set()
    s = ds.digit_size
    for i in range(len(ds)):
        image, target, info = ds.sample(i)
        assert info["matches"][0] is True
        for cls, match, shade, place in zip(info["classes"], info["matches"], info["shades"], info["places"]):
            expected = 1 if match else 2
            assert _digit_labels(target, place, s) == {expected}
            seen.add(expected)
            if rule == "class":
                assert match == (cls == info["key_class"]) and shade == 1.0
            else:
                assert match == (shade == info["shades"][0]) and shade in (1.0, 0.4)
            y, x = place                                  # the digit is drawn in its shade
            assert image[y + 2:y + 2 + s, x + 2:x + 2 + s].max() == pytest.approx(shade)
        _check_layout(image, target, info, s, frame_value=info["shades"][0])
    assert seen == {1, 2}


def test_shade_rule_needs_the_key():
    # the shade of a digit says nothing about its label without the key: both shades appear with
    # both labels, in about equal numbers
    ds = SegDigits("train", num_samples=400, num_digits=3, seed=1)
    counts = {}
    for i in range(len(ds)):
        info = ds.sample(i)[2]
        for match, shade in list(zip(info["matches"], info["shades"]))[1:]:
            counts[(match, shade)] = counts.get((match, shade), 0) + 1
    assert set(counts) == {(True, 1.0), (True, 0.5), (False, 1.0), (False, 0.5)}
    assert max(counts.values()) < 1.3 * min(counts.values())


def test_classes_option_and_bad_options():
    ds = SegDigits("train", num_samples=20, classes=[3, 8])
    assert {c for i in range(20) for c in ds.sample(i)[2]["classes"]} <= {3, 8}
    with pytest.raises(ValueError, match="split must be one of"):
        SegDigits("test")
    with pytest.raises(ValueError, match="do not fit"):
        SegDigits("train", canvas=32, num_digits=6)
    with pytest.raises(ValueError, match="classes"):
        SegDigits("train", classes=[1])
    with pytest.raises(ValueError, match="rule must be one of"):
        SegDigits("train", rule="colour")
    with pytest.raises(ValueError, match=r"dim must be a number in \(0, 1\), got 1.5"):
        SegDigits("train", dim=1.5)
    with pytest.raises(IndexError, match="out of range"):
        SegDigits("train", num_samples=2).sample(2)


def test_joint_transforms_keep_image_and_labels_aligned():
    torch.manual_seed(1)
    image = torch.zeros(3, 20, 30)
    target = torch.zeros(20, 30, dtype=torch.long)
    image[:, 5:10, 5:15] = 1.0
    target[5:10, 5:15] = 7
    instance = target.int() * 1000
    t = build_seg_transforms(train=True, crop_size=24, scale_range=(0.5, 2.0), mean=(0, 0, 0), std=(1, 1, 1))
    for _ in range(10):
        img, tgt, inst = t(image, target, instance)
        assert img.shape == (3, 24, 24) and tgt.shape == (24, 24) and inst.shape == (24, 24)
        assert set(torch.unique(tgt).tolist()) <= {0, 7, 255}
        labelled = tgt == 7
        if labelled.any():                                            # labels sit on the bright box
            assert img[0][labelled].mean() > 0.75 and img[0][labelled].min() > 0.2
        if (tgt == 0).any():
            assert img[0][tgt == 0].mean() < 0.25
        assert torch.equal(inst == 7000, labelled)


def test_crop_pads_with_ignore_and_flip_flips_both():
    image, target = torch.rand(3, 4, 5), torch.randint(0, 3, (4, 5))
    img, tgt, _ = Compose([RandomCrop(8)])(image, target)
    assert img.shape == (3, 8, 8)
    assert (tgt[4:] == 255).all() and (tgt[:, 5:] == 255).all() and (img[:, 4:] == 0).all()
    assert torch.equal(tgt[:4, :5], target)
    _, tgt, inst = Compose([RandomCrop(8)])(image, target, target.int() * 1000 + 1)
    assert (tgt[4:] == 255).all() and (inst[4:] == 0).all() and (inst[:4, :5] > 0).all()
    img, tgt, _ = Compose([v2.RandomHorizontalFlip(p=1.0)])(image, target)
    assert torch.equal(img, image.flip(-1)) and torch.equal(tgt, target.flip(-1))
    img, tgt, _ = Compose([RandomScale((2.0, 2.0))])(image, target)
    assert img.shape[-2:] == (8, 10) and torch.equal(tgt[::2, ::2], target)
    out, _, _ = Compose([v2.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))])(image, target)
    assert torch.allclose(out, (image - 0.5) / 0.25)
    with pytest.raises(ValueError, match="crop size"):
        RandomCrop(0)
    with pytest.raises(ValueError, match="scale_range"):
        RandomScale((2.0, 1.0))
