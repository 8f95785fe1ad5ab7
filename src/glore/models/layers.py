"""Small building blocks shared by the models of this package."""

from __future__ import annotations

from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
                 ) -> nn.Sequential:
    """Conv (no bias), BatchNorm, ReLU; ``padding`` keeps the spatial size (divided by ``stride``)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )
