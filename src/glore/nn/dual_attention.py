"""The position and channel attention modules of "Dual Attention Network for Scene Segmentation"
(Fu et al., arXiv 1809.02983, §3.2-3.3), for 2-D feature maps."""

from __future__ import annotations

import torch
from torch import nn

from glore.errors import ArgumentError
from ._validate import _parameter_dtype, check_block_input, check_positive_int


def _check_image(module: nn.Module, x: torch.Tensor, channels: int) -> None:
    check_block_input(type(module).__name__, x, channels, _parameter_dtype(module))
    if x.dim() != 4:
        raise ArgumentError(f"{type(module).__name__} expects a 2-D feature map (B, C, H, W), got shape "
                            f"{tuple(x.shape)}")


class PositionAttention(nn.Module):
    """DANet's position attention, Eq. 1-2: ``E_j = A_j + alpha sum_i s_ji D_i`` with
    ``s_ji = softmax_i(B_i . C_j)`` over all ``N = H W`` positions; ``B``, ``C``, ``D`` are 1x1
    convolutions of ``A``.

    Args:
        channels: input and output channels.
        inner: channels of ``B`` and ``C``; default ``channels // 8`` (DANet's released models; the
            paper writes them at full width).
        zero_init: ``alpha`` starts at zero (as in the paper): the module starts as the identity.
    """

    def __init__(self, channels: int, *, inner: int | None = None, zero_init: bool = True):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.inner = max(channels // 8, 1) if inner is None else check_positive_int("inner", inner)
        self.key = nn.Conv2d(channels, self.inner, 1)            # B
        self.query = nn.Conv2d(channels, self.inner, 1)          # C
        self.value = nn.Conv2d(channels, channels, 1)            # D
        self.alpha = nn.Parameter(torch.zeros(1) if zero_init else torch.ones(1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """``s`` as ``(B, N, N)``: row ``j`` holds ``s_ji`` over the positions ``i``."""
        query, key = self.query(x).flatten(2), self.key(x).flatten(2)    # (B, C', N) each
        return torch.softmax(torch.matmul(query.mT, key), dim=-1)       # (B, N, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(self, x, self.channels)
        value = self.value(x).flatten(2)                                 # (B, C, N)
        context = torch.matmul(value, self.attention(x).mT)              # (B, C, N): sum_i D_i s_ji
        return x + self.alpha * context.view_as(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, inner={self.inner}"


class ChannelAttention(nn.Module):
    """DANet's channel attention, Eq. 3-4: ``E_j = A_j + beta sum_i x_ji A_i`` with
    ``x_ji = softmax_i(A_i . A_j)`` over the ``C`` channels (each a map of ``N`` positions).
    It has no convolution; ``beta`` starts at zero with ``zero_init`` (as in the paper)."""

    def __init__(self, channels: int, *, zero_init: bool = True):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.beta = nn.Parameter(torch.zeros(1) if zero_init else torch.ones(1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """``x_ji`` as ``(B, C, C)``: row ``j`` over the channels ``i``."""
        flat = x.flatten(2)                                              # (B, C, N)
        return torch.softmax(torch.matmul(flat, flat.mT), dim=-1)        # (B, C, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(self, x, self.channels)
        context = torch.matmul(self.attention(x), x.flatten(2))          # (B, C, N)
        return x + self.beta * context.view_as(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
