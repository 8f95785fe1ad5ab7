"""A 1x1 convolution for 1D, 2D and 3D features alike."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._layout import is_position_major


class Pointwise(nn.Conv1d):
    """A 1x1 convolution ``(B, C_in, *S) -> (B, C_out, *S)``, run in the input's layout without copying it.

    A 1x1 conv is a linear map over channels, so every block shares this module across 1D, 2D and
    3D inputs. The weight keeps ``nn.Conv1d``'s shape ``(out, in, 1)`` and initialisation. It runs as
    the convolution (oneDNN on the CPU, the kernels ``nn.Conv2d`` uses):

    - a 2-D image ``(B, C, H, W)``, either layout: ``F.conv2d`` on it. Its input gradient is then a
      tensor of its own, which autograd adds the block's other gradients to in place; through a
      flattened view it would be a view, which autograd adds out of place into a fresh buffer;
    - otherwise on its positions flattened, ``(B, C, L)``, and reshaped back:

      - channel-major (contiguous): ``F.conv1d``, a channel-major output;
      - position-major (strides ``(L*C, 1, C)``: a flattened channels_last tensor, or the
        ``transpose(1, 2)`` of a contiguous ``(B, L, C)``): ``F.conv2d`` on it as a channels_last
        ``(B, C, 1, L)``, a position-major output (as a ``(B, C, L, 1)`` image, oneDNN's AVX2
        kernels run 1.5-4x slower: ``benchmarks/pointwise.py``);
      - one output channel (GC's attention key): a matrix-vector product in either layout, where
        oneDNN's convolution is 1.5-8x slower (``benchmarks/pointwise.py``).
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pointwise(x, self.weight, self.bias)


@torch.fx.wrap          # its layout test is Python control flow: one call in an FX graph
def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The 1x1 convolution of :class:`Pointwise` with a conv weight ``(out, in, 1)``, in ``x``'s layout."""
    if x.dim() == 4 and weight.shape[0] > 1:
        return F.conv2d(x, weight.unsqueeze(3), bias)
    if x.dim() <= 3:                    # (an unbatched (C, L) too, as nn.Conv1d takes it)
        return pointwise_flat(x, weight, bias)
    return pointwise_flat(x.flatten(2), weight, bias).unflatten(2, x.shape[2:])


def pointwise_flat(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`pointwise` on positions flattened: ``x`` ``(B, C, L)``."""
    position_major = is_position_major(x)
    if weight.shape[0] == 1:
        if position_major:
            return F.linear(x.mT, weight.squeeze(2), bias).mT         # squeeze: no copy in backward
        row = weight.mT.expand(x.shape[0], 1, x.shape[1])          # w^T for every sample: no copy
        return torch.bmm(row, x) if bias is None else torch.baddbmm(bias[None, :, None], row, x)
    if position_major:
        # view() first gives a batch of one the batch stride L*C that the convolution's layout test reads
        rows = x.mT.view(x.shape[0], x.shape[2], x.shape[1])
        return F.conv2d(rows.unsqueeze(1).permute(0, 3, 1, 2), weight.unsqueeze(3), bias).squeeze(2)
    return F.conv1d(x, weight, bias)
