"""HRNet (timm's ``hrnet_w18_small`` ... ``hrnet_w64``) as a host of blocks and as a segmentation backbone.

HRNet ("Deep High-Resolution Representation Learning for Visual Recognition", Wang et al., arXiv
1908.07919) keeps one branch per resolution (strides 4, 8, 16, 32) from its second stage on; each of
timm's ``stage2``-``stage4`` is a sequence of modules, and a module runs each branch's residual
blocks (timm's ResNet ``BasicBlock``), then exchanges information between the branches.

Blocks: the containers of residual blocks are the stages of :func:`glore.models.find_stages`, named by
their path in the model, ``layer1`` (the stride-4 bottlenecks before the branches split) and
``stage<s>.<module>.branches.<branch>`` (``stage4.0.branches.0``: the stride-4 branch of stage 4's
first module). timm's ``feature_info`` names the branches' outputs ``stage1``-``stage4``
(``stage<branch + 1>``); those are not modules, so the containers' own paths name the stages here.
The blocks are ResNet blocks and take units as ResNets do (:mod:`glore.models.hosts`): ``after_add``
on the residual block's output (after the addition and its ReLU, inside the branch, before the
module's fusion), ``after_1x1`` in the residual branch after its last BN.

Segmentation: :class:`HRNetV2Features` returns the HRNetV2 representation, the four branches' outputs
upsampled (bilinear) to the stride-4 branch's size and concatenated (``18 + 36 + 72 + 144 = 270``
channels for W18), as both maps of a segmentation backbone's ``[c4, c5]``. An input whose sides are not
multiples of 32 is zero-padded at the bottom and right to the next multiples (HRNet's fusions
upsample by exact powers of 2) and the maps cropped back to ``ceil(H / 4) x ceil(W / 4)``.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from timm.models import hrnet as timm_hrnet
from timm.models import resnet as timm_resnet
from torch import nn

__all__ = ["HRNetV2Features", "find_hrnet_stages", "is_hrnet", "as_hrnetv2"]

# the containers of HRNet's residual blocks (not the classification head's incre_modules)
_STAGE = re.compile(r"^(layer1|stage\d+\.\d+\.branches\.\d+)$")


def is_hrnet(model: nn.Module) -> bool:
    return isinstance(model, timm_hrnet.HighResolutionNet)


def find_hrnet_stages(model: nn.Module) -> dict[str, list[tuple[str, nn.Module]]]:
    """``{stage: [(qualified name, block), ...]}`` of an HRNet (empty for any other model)."""
    if not is_hrnet(model):
        return {}
    stages: dict[str, list[tuple[str, nn.Module]]] = {}
    for name, module in model.named_modules():
        if isinstance(module, (timm_resnet.BasicBlock, timm_resnet.Bottleneck)) and "." in name:
            container = name.rsplit(".", 1)[0]
            if _STAGE.match(container):
                stages.setdefault(container, []).append((name, module))
    return stages


class HRNetV2Features(timm_hrnet.HighResolutionNetFeatures):
    """timm's HRNet feature extractor (``feature_location=""``, the four branches) returning the
    HRNetV2 representation twice, ``[c, c]``, as a segmentation backbone's ``[c4, c5]``."""

    @property
    def out_channels(self) -> tuple[int, int]:
        total = sum(self.feature_info.channels())
        return total, total

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        height, width = x.shape[-2:]
        # HRNet's fusions upsample by exact powers of 2: pad the bottom and right to multiples of 32
        x = F.pad(x, (0, -width % 32, 0, -height % 32))  # (B, 3, H', W'), H' and W' multiples of 32
        branches = super().forward(x)                     # [(B, C_b, H' / 2^(b+2), W' / 2^(b+2))], b = 0..3
        size = branches[0].shape[-2:]
        upsampled = [branches[0]] + [F.interpolate(b, size=size, mode="bilinear", align_corners=False)
                                     for b in branches[1:]]   # each (B, C_b, H' / 4, W' / 4)
        representation = torch.cat(upsampled, dim=1)     # (B, sum C_b, H' / 4, W' / 4)
        representation = representation[..., :(height + 3) // 4, :(width + 3) // 4]   # (B, sum C_b, ceil(H / 4), ceil(W / 4))
        return [representation, representation]


def as_hrnetv2(model: nn.Module) -> HRNetV2Features:
    """Turn timm's HRNet feature extractor of the four branches (``features_only=True,
    feature_location="", out_indices=(1, 2, 3, 4)``) into :class:`HRNetV2Features`, in place (it
    keeps its modules and state-dict keys)."""
    if type(model) is not timm_hrnet.HighResolutionNetFeatures or model.incre_modules is not None \
            or tuple(model.feature_info.out_indices) != (1, 2, 3, 4):
        raise TypeError(f"as_hrnetv2 needs timm's HRNet features of the four branches, got {type(model).__name__}")
    model.__class__ = HRNetV2Features
    return model
