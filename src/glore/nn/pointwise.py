"""A 1x1 convolution over flattened positions, usable for 1D, 2D and 3D features alike."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Pointwise(nn.Conv1d):
    """``nn.Conv1d(in, out, 1)`` over ``(B, C, L)``, run in the input's layout without copying it.

    A 1x1 conv is a linear map over channels, so every block flattens its positions and shares this
    module across 1D, 2D and 3D inputs. The weight keeps ``nn.Conv1d``'s shape ``(out, in, 1)`` and
    initialisation.

    The output keeps the layout of the input:

    - position-major input (strides ``(L*C, 1, C)``: a flattened channels_last tensor, or the
      ``transpose(1, 2)`` of a contiguous ``(B, L, C)``): one matrix product over all ``B * L``
      positions with the bias fused (``F.linear``), and a position-major output;
    - channel-major input (a contiguous ``(B, C, L)``), contiguous output: for one sample, one
      matrix product (``addmm``); for a batch, the 1x1 convolution itself (oneDNN on the CPU),
      which reads the samples where they are, where a broadcast ``matmul`` copies the input, the
      output and the gradient between layouts (``benchmarks/pointwise.py``).
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pointwise(x, self.weight, self.bias)


@torch.fx.wrap          # its layout test is Python control flow: one call in an FX graph
def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The 1x1 convolution of :class:`Pointwise` with a conv weight ``(out, in, 1)``, in ``x``'s layout."""
    matrix = weight.squeeze(2)          # a view: its backward allocates nothing
    if x.dim() == 3 and x.mT.is_contiguous():
        return F.linear(x.mT, matrix, bias).mT
    if x.dim() == 3 and x.shape[0] == 1:
        if bias is None:
            return torch.mm(matrix, x.squeeze(0)).unsqueeze(0)
        return torch.addmm(bias[:, None], matrix, x.squeeze(0)).unsqueeze(0)
    return F.conv1d(x, weight, bias)
