"""det-digits needs global context: the plain demo detector's box features never see the key."""

import os

import torch

from glore.data.det_digits import DetDigits
from glore.engine.config import load_config
from glore.engine.detection import build_detector

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "detection")


def _box_features(model, image, boxes):
    model.eval()
    with torch.no_grad():
        x = (image - 0.5) / 0.25
        features = model.backbone(x[None])
        return model.roi_heads.box_roi_pool(features, [boxes], [tuple(image.shape[-2:])])


def _recoloured_key(data, index):
    image, objects = data.sample(index)
    key = image.copy()
    grow = data.digit_size                                # a digit's faint rim lies within its square
    for obj in objects:                                   # everything but the digits: the key
        x1, y1, x2, y2 = (int(v) for v in obj["box"])
        key[max(y1 - grow, 0):y2 + grow, max(x1 - grow, 0):x2 + grow] = 0
    other = image.copy()
    other[key > 0] = 1.0 if key.max() < 1.0 else data.dim  # the key in the other shade
    boxes = torch.tensor([o["box"] for o in objects])
    as_tensor = lambda a: torch.from_numpy(a)[None].expand(3, -1, -1).contiguous()  # noqa: E731
    return as_tensor(image), as_tensor(other), boxes


def _assert_only_the_context_detector_sees_the_key(plain, context, data):
    """Recolouring the key leaves the plain detector's box features unchanged and changes ``context``'s."""
    for index in range(4):
        image, other, boxes = _recoloured_key(data, index)
        assert not torch.equal(image, other)
        torch.testing.assert_close(_box_features(plain, image, boxes), _box_features(plain, other, boxes),
                                   rtol=0, atol=0)
        assert not torch.allclose(_box_features(context, image, boxes), _box_features(context, other, boxes))


def test_plain_detector_cannot_see_the_key_and_glore_can():
    torch.manual_seed(0)
    cfg = load_config(os.path.join(CONFIGS, "det_digits_baseline.yaml"))
    data = DetDigits("val", num_samples=4, **cfg["data"]["options"])
    plain = build_detector(cfg["model"])
    glore = build_detector(load_config(os.path.join(CONFIGS, "det_digits_glore.yaml"))["model"])
    unit = glore.backbone.body.layer1[1].after_add
    torch.nn.init.ones_(unit.norm.weight)                   # leave the identity initialisation
    _assert_only_the_context_detector_sees_the_key(plain, glore, data)


def test_rule_key_the_keys_shade_is_every_digits_class_and_out_of_the_plain_detectors_reach():
    torch.manual_seed(0)
    cfg = load_config(os.path.join(CONFIGS, "det_digits_key_baseline.yaml"))
    data = DetDigits("val", num_samples=8, **cfg["data"]["options"])
    assert data.to_coco()["categories"][0]["name"] == "bright-key"
    labels, digit_shades = set(), set()
    for index in range(8):
        image, objects = data.sample(index)
        key = image.copy()
        for obj in objects:                                                # the digits' squares out: the key
            x1, y1, x2, y2 = (int(v) for v in obj["box"])
            key[max(y1 - data.digit_size, 0):y2 + data.digit_size, max(x1 - data.digit_size, 0):x2 + data.digit_size] = 0
        assert (key > 0).sum() == 24 * 24                                  # a filled key
        assert {o["label"] for o in objects} == {1 if key.max() == 1.0 else 2}   # the key's shade decides
        labels |= {o["label"] for o in objects}
        digit_shades |= {o["shade"] for o in objects}
    assert labels == {1, 2} and digit_shades == {0.75}                     # the digits all look alike
    plain = build_detector(cfg["model"])
    gc = build_detector(load_config(os.path.join(CONFIGS, "det_digits_key_gc.yaml"))["model"])
    for block in (gc.backbone.body.layer1[0].after_add, gc.backbone.body.layer1[1].after_add):
        torch.nn.init.normal_(block.transform[-1].weight)                  # leave the identity initialisation
    _assert_only_the_context_detector_sees_the_key(plain, gc, data)


def test_digit_shade_draws_every_digit_alike_and_keeps_the_layouts():
    import pytest

    from glore.errors import ArgumentError

    options = dict(num_samples=6, key_size=24, key_fill=True, rule="key")
    random_shades, one_shade = DetDigits("val", **options), DetDigits("val", digit_shade=0.75, **options)
    for index in range(6):
        (image, objects), (alike, alike_objects) = random_shades.sample(index), one_shade.sample(index)
        assert [o["box"] for o in objects] == [o["box"] for o in alike_objects]
        assert [o["label"] for o in objects] == [o["label"] for o in alike_objects]
        for obj, same in zip(objects, alike_objects):
            x1, y1, x2, y2 = (int(v) for v in obj["box"])
            assert same["shade"] == 0.75
            assert alike[y1:y2, x1:x2].max() == pytest.approx(0.75)
            assert image[y1:y2, x1:x2].max() == pytest.approx(obj["shade"])
    with pytest.raises(ArgumentError, match="digit_shade must be a number in"):
        DetDigits("val", digit_shade=1.5)
