"""Building a torchvision ResNet (``tv_<name>`` in :func:`glore.models.create_model`) with blocks."""

from __future__ import annotations

from collections.abc import Mapping

import torchvision
from torch import nn

from glore.errors import ArgumentError
from .insert import insert_blocks
from .keyword_errors import explain_torchvision_keyword
from .loading import load_checkpoint
from .timm_build import move_stride_to_1x1

__all__ = ["TORCHVISION_BACKBONES", "build_torchvision"]

# torchvision builders reachable as "tv_<name>"
TORCHVISION_BACKBONES = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
    "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
)


def build_torchvision(name: str, blocks: Mapping | None, *, pretrained: bool = False,
                      stride_in_1x1: bool = False, **kwargs) -> nn.Module:
    """torchvision ResNet ``name`` (``weights=`` the torchvision way; ``pretrained=True`` is
    ``weights="DEFAULT"``) with ``blocks`` inserted."""
    if pretrained and kwargs.get("weights") is not None:
        raise ArgumentError(f"tv_{name}: give pretrained=True or weights=, not both (got weights="
                            f"{kwargs['weights']!r})")
    if pretrained:
        kwargs["weights"] = "DEFAULT"
    checkpoint_path = kwargs.pop("checkpoint_path", None)
    builder = getattr(torchvision.models, name)
    try:
        model = builder(**kwargs)
    except TypeError as exc:
        explained = explain_torchvision_keyword(exc, name)
        if explained is exc:
            raise
        raise explained from exc
    if stride_in_1x1:
        move_stride_to_1x1(model)
    if blocks:
        insert_blocks(model, **blocks)
    if checkpoint_path:
        load_checkpoint(model, checkpoint_path)
    return model
