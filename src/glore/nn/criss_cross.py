"""Recurrent criss-cross attention (Huang et al., "CCNet: Criss-Cross Attention for Semantic
Segmentation", arXiv 1811.11721), for 2-D feature maps."""

from __future__ import annotations

import torch
from torch import nn

from glore.errors import ArgumentError
from ._validate import _parameter_dtype, check_block_input, check_positive_int


class CrissCrossAttention(nn.Module):
    """Criss-cross attention, CCNet Eq. 1-2, applied ``recurrence`` times with shared weights:

    ``H'_u = H_u + gamma sum_{i in Omega_u} softmax_i(Q_u . K_i) V_i``

    where ``Omega_u`` holds the ``H + W - 1`` positions in the row and the column of ``u`` (``u``
    itself once). One pass links each position to its row and column; two passes (the paper's
    recurrence R = 2) link it to every position.

    Args:
        channels: input and output channels ``C``.
        inner: channels of the query and key ``C'`` (< ``C``); default ``channels // 8``.
        recurrence: passes with the same weights (2 in the paper).
        zero_init: start the learnt scale ``gamma`` at zero, so the block starts as the identity
            (the convention of the library's context blocks; DANet's attention scales start there).
    """

    def __init__(self, channels: int, *, inner: int | None = None, recurrence: int = 2, zero_init: bool = True):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.inner = max(channels // 8, 1) if inner is None else check_positive_int("inner", inner)
        self.recurrence = check_positive_int("recurrence", recurrence)
        self.query = nn.Conv2d(channels, self.inner, 1)
        self.key = nn.Conv2d(channels, self.inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1) if zero_init else torch.ones(1))

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weights of each position over its column ``(B, H, W, H)`` and its row ``(B, H, W, W)``;
        together they sum to one at every position, and ``u`` itself gets its weight in the row."""
        q, k = self.query(x), self.key(x)                              # (B, C', H, W) each
        height, width = x.shape[-2:]
        column = torch.einsum("bchw,bcgw->bhwg", q, k)                 # (B, H, W, H): Q_(h,w) . K_(g,w)
        own_position = torch.eye(height, dtype=torch.bool, device=x.device)[:, None, :]   # (H, 1, H)
        column = column.masked_fill(own_position, float("-inf"))
        row = torch.einsum("bchw,bchv->bhwv", q, k)                    # (B, H, W, W): Q_(h,w) . K_(h,v)
        weights = torch.softmax(torch.cat([column, row], dim=-1), dim=-1)   # (B, H, W, H + W)
        return weights.split([height, width], dim=-1)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """One pass: ``x + gamma sum_i A_i V_i`` over the row and column of every position."""
        column, row = self.attention(x)
        v = self.value(x)                                              # (B, C, H, W)
        context = torch.einsum("bhwg,bcgw->bchw", column, v) + torch.einsum("bhwv,bchv->bchw", row, v)
        return x + self.gamma * context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_block_input(type(self).__name__, x, self.channels, _parameter_dtype(self))
        if x.dim() != 4:
            raise ArgumentError(f"CrissCrossAttention expects a 2-D feature map (B, C, H, W), got shape "
                                f"{tuple(x.shape)}")
        for _ in range(self.recurrence):
            x = self.attend(x)
        return x

    def extra_repr(self) -> str:
        return f"channels={self.channels}, inner={self.inner}, recurrence={self.recurrence}"
