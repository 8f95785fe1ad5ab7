"""What glore takes from timm's and torchvision's private modules (glore._internals) against the installed
libraries: a failure here names what an upgrade moved."""

import timm
import torch
from torch import nn

from glore._internals import timm_blocks
from glore._internals.torchvision_detection import BoxCoder, Matcher
from glore.models.timm_hosts import FAMILIES


def test_timm_efficientnet_blocks_are_the_classes_timm_builds():
    built = {type(m) for name in ("efficientnet_b0", "mobilenetv3_small_050")
             for m in timm.create_model(name, pretrained=False).modules()}
    assert {timm_blocks.DepthwiseSeparableConv, timm_blocks.InvertedResidual} <= built
    for name in timm_blocks.__all__:
        cls = getattr(timm_blocks, name)
        assert issubclass(cls, nn.Module) and FAMILIES[cls] == "EfficientNet"


def test_torchvision_box_coder_and_matcher_behave_as_cascade_uses_them():
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    proposals = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 25.0, 15.0]])
    targets = torch.tensor([[1.0, 2.0, 11.0, 13.0], [4.0, 5.0, 26.0, 16.0]])
    deltas = coder.encode_single(targets, proposals)
    assert torch.allclose(coder.decode_single(deltas, proposals), targets, atol=1e-4)
    matcher = Matcher(0.5, 0.5, allow_low_quality_matches=False)
    quality = torch.tensor([[0.9, 0.2, 0.55], [0.1, 0.3, 0.4]])       # (ground truths, proposals)
    assert matcher(quality).tolist() == [0, Matcher.BELOW_LOW_THRESHOLD, 0]
