"""The backbone of a segmenter: a dilated timm ResNet (output stride 8, multi-grid in res5) returning
``[c4, c5]``, timm's HRNet (the HRNetV2 representation at stride 4 as both maps,
:mod:`glore.models.hrnet`), or one of :data:`LOCAL_BACKBONES`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from torch import nn

from glore.errors import ArgumentError
from .factory import create_model
from .hrnet import as_hrnetv2
from .tiny_segnet import TinySegNet

__all__ = ["LOCAL_BACKBONES", "apply_multigrid", "create_backbone", "feature_channels"]


def apply_multigrid(stage: nn.Module, multigrid: Sequence[int], base_dilation: int) -> None:
    """Set the dilation of the 3x3 convs of block ``i`` of ``stage`` to ``base_dilation * multigrid[i]``.

    For bottleneck blocks that is the middle conv; for basic blocks both 3x3 convs. A stage with
    more blocks than grid entries cycles through the grid (a 2-block ResNet-18 res5 gets ``(1, 2)``).
    """
    blocks = list(stage.children())
    grid = tuple(multigrid)
    if not grid or not all(isinstance(g, int) and not isinstance(g, bool) and g > 0 for g in grid):
        raise ArgumentError(f"multigrid must be a non-empty sequence of positive integers, got {multigrid!r}")
    for i, block in enumerate(blocks):
        g = grid[i % len(grid)]
        for conv in block.modules():
            if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
                conv.dilation = (base_dilation * g,) * 2
                conv.padding = (base_dilation * g,) * 2


LOCAL_BACKBONES = {"tiny_segnet": TinySegNet}


def feature_channels(backbone: nn.Module) -> tuple[int, int]:
    """Channels of the ``[c4, c5]`` maps a segmentation backbone returns."""
    if hasattr(backbone, "out_channels"):
        return tuple(backbone.out_channels)
    if hasattr(backbone, "feature_info"):
        return tuple(backbone.feature_info.channels())
    raise ArgumentError(f"cannot tell the channels of the maps of a {type(backbone).__name__} backbone")


def create_backbone(name: str = "resnet50", *, multigrid: Sequence[int] | None = (1, 2, 4),
                    output_stride: int | None = None, pretrained: bool | str | os.PathLike = False,
                    blocks: Mapping | None = None, **kwargs) -> nn.Module:
    """Backbone returning ``[c4, c5]``.

    A timm ResNet at ``output_stride`` 8 by default (dilations 2, 4; 16 and 32 also accepted), with
    multi-grid in res5, built by :func:`glore.models.create_model` (so ``pretrained`` and
    ``blocks``, its ``block``/``units``/``position``/``block_kwargs``, e.g. GCNet's GC in c3-c5:
    ``dict(block="gc", units="all", block_kwargs={"ratio": 1/4})``); or a backbone of
    :data:`LOCAL_BACKBONES` (fixed stride, no multi-grid, no pretrained weights or blocks). An
    HRNet (``hrnet_w18_small``, ``hrnet_w48``, ...) gives the HRNetV2 representation as both maps,
    at its fixed stride 4 (no multi-grid), and takes ``pretrained`` and ``blocks`` (stages
    ``layer1`` and ``stage<s>.<module>.branches.<branch>``, :mod:`glore.models.hrnet`).
    """
    if name.startswith("hrnet_"):
        if output_stride not in (None, 4):
            raise ArgumentError(f"backbone {name!r} gives the HRNetV2 representation at output_stride 4, "
                                f"got output_stride={output_stride!r}")
        if multigrid is not None:
            raise ArgumentError(f"backbone {name!r} has no res5 stage for multi-grid; pass multigrid=None, "
                                f"got {multigrid!r}")
        backbone = create_model(name, pretrained=pretrained, **dict(blocks or {}), features_only=True,
                                feature_location="", out_indices=(1, 2, 3, 4), **kwargs)
        return as_hrnetv2(backbone)
    if name in LOCAL_BACKBONES:
        cls = LOCAL_BACKBONES[name]
        if output_stride not in (None, cls.output_stride):
            raise ArgumentError(f"backbone {name!r} has a fixed output_stride of {cls.output_stride}, "
                             f"got output_stride={output_stride!r}")
        if multigrid is not None:
            raise ArgumentError(f"backbone {name!r} has no res5 stage for multi-grid; pass multigrid=None, "
                             f"got {multigrid!r}")
        if pretrained or blocks:
            raise ArgumentError(f"backbone {name!r} takes no pretrained weights or blocks, got "
                             f"pretrained={pretrained!r}, blocks={blocks!r}")
        return cls(**kwargs)
    output_stride = 8 if output_stride is None else output_stride
    if output_stride not in (8, 16, 32):
        raise ArgumentError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    backbone = create_model(name, pretrained=pretrained, **dict(blocks or {}), features_only=True,
                            out_indices=(3, 4), output_stride=output_stride, **kwargs)
    if multigrid is not None:
        stage = getattr(backbone, "layer4", None)
        if stage is None:
            raise ArgumentError(f"multigrid needs a ResNet-style backbone with a layer4, got {name!r}")
        apply_multigrid(stage, multigrid, {8: 4, 16: 2, 32: 1}[output_stride])
    return backbone
