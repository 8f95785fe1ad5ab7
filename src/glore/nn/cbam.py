"""Convolutional Block Attention Module of "CBAM: Convolutional Block Attention Module" (Woo et al.,
ECCV 2018, arXiv 1807.06521), the channel-then-spatial attention compared with GC in "Global Context
Networks" (arXiv 2012.13375, Table 9)."""

from __future__ import annotations

import torch
from torch import nn

from glore.errors import ArgumentError
from ._layout import at_every_position
from ._validate import ZeroInitBlock, _parameter_dtype, check_block_input, check_positive_int
from .global_context import _hidden_width
from .pointwise import Pointwise

for _name in ("check_block_input", "at_every_position", "check_image_input"):
    torch.fx.wrap(_name)                    # one call each in an FX graph


def check_image_input(block: str, x: torch.Tensor) -> None:
    """CBAM's spatial attention is a 2-D convolution: its input is an image batch ``(B, C, H, W)``."""
    if x.dim() != 4:
        raise ArgumentError(f"{block} expects an image batch (B, C, H, W) (its spatial attention is a 2-D "
                            f"convolution), got {x.dim()} dims with shape {tuple(x.shape)}")


class ChannelGate(nn.Module):
    """CBAM Eq. 2: ``M_c(F) = sigmoid(W_1 ReLU(W_0 F_avg) + W_1 ReLU(W_0 F_max))``, ``(B, C, 1)``.

    ``F_avg`` and ``F_max`` are the average- and max-pooled ``(B, C, 1)`` descriptors of ``F``
    ``(B, C, L)``; the MLP ``W_1 ReLU(W_0 .)`` (``C -> C/r -> C``, no biases, as the equation) is
    shared by both. ``gate_scale`` multiplies the sigmoid (2 for a gate that can start at 1).
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(Pointwise(channels, hidden, bias=False), nn.ReLU(inplace=True),
                                 Pointwise(hidden, channels, bias=False))
        self.gate_scale = 1.0

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        avg, top = flat.mean(-1, keepdim=True), flat.amax(-1, keepdim=True)      # F_avg, F_max: (B, C, 1)
        return torch.sigmoid(self.mlp(avg) + self.mlp(top)) * self.gate_scale


class SpatialGate(nn.Module):
    """CBAM Eq. 3: ``M_s(F) = sigmoid(f^{k x k}([AvgPool_c(F); MaxPool_c(F)]))``, ``(B, 1, H, W)``:
    a ``k x k`` convolution (no bias, as the equation) of the channel-wise average and maximum."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ArgumentError(f"kernel_size must be odd (the map keeps its size), got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.gate_scale = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)   # (B, 2, H, W)
        return torch.sigmoid(self.conv(maps)) * self.gate_scale                      # (B, 1, H, W)


class CBAM(ZeroInitBlock):
    """CBAM, Eq. 1: ``F' = M_c(F) * F``, then ``F'' = M_s(F') * F'`` (channel, then spatial attention).

    Inserted like SE (after the last 1x1 conv and its BatchNorm of a residual block, before the
    addition; CBAM paper Fig. 3). By default the gates are the paper's ``sigmoid``. With ``zero_init``
    each gate is ``2 sigmoid(t)`` and the last layer of each branch (``W_1``, the ``k x k`` conv) starts
    at zero: both gates are then 1 everywhere and the block starts as the identity, which is how
    :func:`glore.models.insert_blocks` puts CBAM into a (pretrained) backbone (as for
    :class:`glore.nn.SqueezeExcite`).

    Args:
        channels: input and output channels ``C``; inputs are images ``(B, C, H, W)``.
        ratio: MLP reduction ``1/r`` (CBAM and SE: 1/16).
        kernel_size: the spatial attention's convolution (7 in the paper).
        zero_init: ``2 sigmoid`` gates with the last layers at zero (the identity at initialisation).
    """

    def __init__(self, channels: int, *, ratio: float = 1 / 16, kernel_size: int = 7,
                 zero_init: bool = False):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("kernel_size", kernel_size)
        self.channel = ChannelGate(channels, _hidden_width(channels, ratio))
        self.spatial = SpatialGate(kernel_size)
        self.zero_init = zero_init
        self.channel.gate_scale = self.spatial.gate_scale = 2.0 if zero_init else 1.0
        self.zero_init_last()

    def zero_init_last(self) -> None:
        """With ``zero_init``, zero ``W_1`` and the spatial conv: both gates start at 1."""
        if self.zero_init:
            nn.init.zeros_(self.channel.mlp[-1].weight)
            nn.init.zeros_(self.spatial.conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():    # (TorchScript cannot compile the checks)
            check_block_input(type(self).__name__, x, self.channels, _parameter_dtype(self))
            check_image_input(type(self).__name__, x)
        x = x * at_every_position(self.channel(x.flatten(2)), x)     # F' = M_c(F) F: (B, C, H, W)
        return x * self.spatial(x)                                    # F'' = M_s(F') F'

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.spatial.conv.kernel_size[0]}"

