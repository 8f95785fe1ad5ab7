"""A 1x1 convolution over flattened positions, usable for 1D, 2D and 3D features alike."""

from __future__ import annotations

import torch
from torch import nn


class Pointwise(nn.Conv1d):
    """``nn.Conv1d(in, out, 1)`` applied as a matrix product over ``(B, C, L)``.

    A 1x1 conv is a linear map over channels, so every block flattens its positions and shares this
    module across 1D, 2D and 3D inputs. ``torch.matmul`` accepts strided views (a flattened
    channels_last tensor is one) without the copy that the convolution kernel would make. The weight
    keeps ``nn.Conv1d``'s shape ``(out, in, 1)`` and initialisation.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.matmul(self.weight[:, :, 0], x)
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y
