"""Whole-image, sliding-window, flip and multi-scale inference."""

import pytest
import torch

from glore.models.segmentation_inference import inference, slide_inference
from glore.models import create_segmenter


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_segmenter("resnet18", head="glore", num_classes=4, channels=32, aux=False).eval()


def test_sliding_window_covering_the_image_equals_whole_image(model):
    x = torch.randn(1, 3, 40, 56)
    whole = inference(model, x, mode="whole")
    for crop, stride in ((64, 32), ((40, 56), (20, 28))):
        slide = inference(model, x, mode="slide", crop_size=crop, stride=stride)
        assert torch.equal(slide, whole)


def test_sliding_windows_average_overlaps(model):
    x = torch.randn(1, 3, 40, 56)
    out = slide_inference(model, x, crop_size=32, stride=16)
    assert out.shape == (1, 4, 40, 56)
    # the top-left corner is seen by one window only: its scores are that window's
    with torch.no_grad():
        corner = model(x[:, :, :32, :32])
    assert torch.allclose(out[:, :, :8, :8], corner[:, :, :8, :8], atol=1e-5)
    # a pixel covered by several windows differs from any single window's scores in general
    assert not torch.allclose(out[:, :, 20:24, 20:24], corner[:, :, 20:24, 20:24])


def test_flip_and_scales_average_probabilities(model):
    x = torch.randn(1, 3, 32, 48)
    probs = inference(model, x, flip=True, scales=[0.75, 1.0, 1.25])
    assert probs.shape == (1, 4, 32, 48)
    assert torch.allclose(probs.sum(1), torch.ones(1, 32, 48), atol=1e-5)
    # flip averaging is symmetric: the flipped input gives the flipped result
    flipped = inference(model, x.flip(-1), flip=True, scales=[1.0])
    assert torch.allclose(flipped.flip(-1), inference(model, x, flip=True, scales=[1.0]), atol=1e-5)


def test_bad_options_are_named(model):
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError, match="'whole' or 'slide'"):
        inference(model, x, mode="tiles")
    with pytest.raises(ValueError, match="stride"):
        inference(model, x, mode="slide", crop_size=8, stride=16)
    with pytest.raises(ValueError, match="scales"):
        inference(model, x, scales=[0.0])


def test_segmenter_predict_runs_the_inference_options(model):
    x = torch.randn(1, 3, 40, 56)
    assert torch.equal(model.predict(x), inference(model, x))
    slide = model.predict(x, mode="slide", crop_size=32, stride=16)
    assert torch.equal(slide, slide_inference(model, x, crop_size=32, stride=16))
    assert not torch.allclose(slide, model.predict(x))
    probs = model.predict(x, flip=True, scales=[0.5, 1.0])
    assert torch.allclose(probs, inference(model, x, flip=True, scales=[0.5, 1.0]))
    assert torch.allclose(probs.sum(1), torch.ones(1, 40, 56), atol=1e-5)
