"""A five-conv segmentation backbone for CPU-sized runs (the built-in ``seg-digits`` set)."""

from __future__ import annotations

import torch
from torch import nn

from .layers import conv_bn_relu

__all__ = ["TinySegNet"]


class TinySegNet(nn.Module):
    """A five-conv backbone for CPU-sized segmentation runs (the built-in ``seg-digits`` set).

    Returns ``[c4, c5]`` at strides 2 and 4 with ``width`` channels each. It has no res5 stage, so no
    multi-grid, and its output stride is fixed at 4. Its receptive field (23 px at c5) is smaller
    than a 64 px seg-digits canvas, so any long-range comparison must come from the context head.
    """

    output_stride = 4

    def __init__(self, width: int = 32, in_chans: int = 3):
        super().__init__()
        half = max(width // 2, 1)
        self.stem = nn.Sequential(conv_bn_relu(in_chans, half),
                                  conv_bn_relu(half, half, stride=2),
                                  conv_bn_relu(half, width))
        self.down = conv_bn_relu(width, width, stride=2)
        self.out_channels = (width, width)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c4 = self.stem(x)
        return [c4, self.down(c4)]


# backbones defined here rather than in timm: name -> constructor(**backbone_kwargs)
