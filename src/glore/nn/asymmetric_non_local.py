"""The asymmetric non-local blocks of "Asymmetric Non-local Neural Networks for Semantic
Segmentation" (Zhu et al., arXiv 1908.07678): APNB and AFNB, for 2-D feature maps.

Both attend from every position to ``S`` anchors instead of all ``N`` positions: the key and the
value maps are pyramid-pooled to ``n x n`` grids for ``n`` in ``sizes`` (1, 3, 6, 8: S = 110), so the
attention is ``N x S`` rather than ``N x N``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from glore.errors import ArgumentError
from ._validate import _parameter_dtype, check_block_input, check_positive_int

PYRAMID_SIZES = (1, 3, 6, 8)


def pyramid_sample(x: torch.Tensor, sizes: Sequence[int] = PYRAMID_SIZES) -> torch.Tensor:
    """The anchors of ``x`` ``(B, C, H, W)``: average-pooled to ``n x n`` for each ``n`` in ``sizes``,
    concatenated as ``(B, C, S)`` with ``S = sum n^2``."""
    return torch.cat([F.adaptive_avg_pool2d(x, n).flatten(2) for n in sizes], dim=-1)


def asymmetric_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                         sizes: Sequence[int] = PYRAMID_SIZES) -> torch.Tensor:
    """``O = softmax(phi^T P(theta)) P(gamma)^T``: each position of ``query``
    ``(B, C', H, W)`` attends to the pyramid anchors of ``key`` ``(B, C', H', W')``; returns the
    weighted anchors of ``value`` ``(B, C_v, H', W')`` at the query's positions, ``(B, C_v, H, W)``."""
    key_anchors, value_anchors = pyramid_sample(key, sizes), pyramid_sample(value, sizes)  # (B, C', S), (B, C_v, S)
    weights = torch.softmax(torch.matmul(query.flatten(2).mT, key_anchors), dim=-1)      # (B, N, S)
    context = torch.matmul(value_anchors, weights.mT)                                     # (B, C_v, N)
    return context.unflatten(2, query.shape[-2:])                                         # (B, C_v, H, W)


def _embedding(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv, BN, ReLU: the key and query transforms."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
                         nn.ReLU(inplace=True))


def _check_sizes(sizes) -> tuple[int, ...]:
    sizes = tuple(sizes) if isinstance(sizes, (list, tuple)) else sizes
    if not isinstance(sizes, tuple) or not sizes or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
        raise ArgumentError(f"sizes must be a non-empty sequence of positive integers, got {sizes!r}")
    return sizes


def _check_image(name: str, x: torch.Tensor, channels: int, dtype) -> None:
    check_block_input(name, x, channels, dtype)
    if x.dim() != 4:
        raise ArgumentError(f"{name} expects a 2-D feature map (B, C, H, W), got shape {tuple(x.shape)}")


def _output_and_fuse(value_channels: int, channels: int, zero_init: bool) -> tuple[nn.Conv2d, nn.Sequential]:
    """``W_o`` (1x1 conv, at zero with ``zero_init``) and ``fuse`` (1x1 conv, BN, ReLU on the
    concatenation of the attended map with the query-side map) of APNB and AFNB."""
    out = nn.Conv2d(value_channels, channels, 1)
    if zero_init:
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
    fuse = nn.Sequential(nn.Conv2d(2 * channels, channels, 1, bias=False), nn.BatchNorm2d(channels),
                         nn.ReLU(inplace=True))
    return out, fuse


class AsymmetricNonLocal(nn.Module):
    """Asymmetric pyramid non-local block (APNB) of ANN:
    ``Y = fuse([W_o(softmax(phi^T P(phi)) P(gamma)^T), X])``.

    The query and the key share one transform ``phi`` (ANN's APNB does, saving a 1x1 conv), the
    value ``gamma`` and the output ``W_o`` are 1x1 convs, and ``fuse`` (1x1 conv, BN, ReLU) maps the
    concatenation with ``X`` back to ``channels``.

    Args:
        channels: input and output channels.
        key_channels, value_channels: widths of ``phi`` and ``gamma`` (256 in the paper).
        sizes: pyramid pooling grids (1, 3, 6, 8).
        zero_init: start ``W_o`` at zero (as the non-local block's last transform), so the attended
            half of the concatenation starts at zero.
    """

    def __init__(self, channels: int, *, key_channels: int = 256, value_channels: int = 256,
                 sizes: Sequence[int] = PYRAMID_SIZES, zero_init: bool = True):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.sizes = _check_sizes(sizes)
        self.key = _embedding(channels, check_positive_int("key_channels", key_channels))
        self.value = nn.Conv2d(channels, check_positive_int("value_channels", value_channels), 1)
        self.out, self.fuse = _output_and_fuse(value_channels, channels, zero_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output for a 2-D feature map ``x`` ``(B, C, H, W)``, of the same shape."""
        _check_image(type(self).__name__, x, self.channels, _parameter_dtype(self))
        key = self.key(x)                                                  # (B, C_k, H, W): query too
        context = self.out(asymmetric_attention(key, key, self.value(x), self.sizes))   # (B, C, H, W)
        return self.fuse(torch.cat([context, x], dim=1))                   # (B, C, H, W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, sizes={self.sizes}"


class AsymmetricFusion(nn.Module):
    """Asymmetric fusion non-local block (AFNB) of ANN: the high-level map ``Y_h`` queries the
    anchors of the low-level ``Y_l``:
    ``Y_F = fuse([W_o(softmax(phi(Y_h)^T P(theta(Y_l))) P(gamma(Y_l))^T), Y_h])``.

    Args:
        channels: channels of ``Y_h`` (c5) and of the output.
        low_channels: channels of ``Y_l`` (c4).
        key_channels, value_channels: widths of ``phi``/``theta`` and ``gamma`` (256 in the paper).
        sizes: pyramid pooling grids (1, 3, 6, 8).
        zero_init: start ``W_o`` at zero.
    """

    def __init__(self, channels: int, low_channels: int, *, key_channels: int = 256, value_channels: int = 256,
                 sizes: Sequence[int] = PYRAMID_SIZES, zero_init: bool = True):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.low_channels = check_positive_int("low_channels", low_channels)
        self.sizes = _check_sizes(sizes)
        check_positive_int("key_channels", key_channels)
        self.query = _embedding(channels, key_channels)
        self.key = _embedding(low_channels, key_channels)
        self.value = nn.Conv2d(low_channels, check_positive_int("value_channels", value_channels), 1)
        self.out, self.fuse = _output_and_fuse(value_channels, channels, zero_init)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """``Y_F`` for the high-level map ``high`` ``(B, C, H, W)`` and the low-level ``low`` ``(B, C_low, H, W)``: ``(B, C, H, W)``."""
        _check_image(type(self).__name__, high, self.channels, _parameter_dtype(self))
        _check_image(type(self).__name__, low, self.low_channels, _parameter_dtype(self))
        context = asymmetric_attention(self.query(high), self.key(low), self.value(low), self.sizes)  # (B, C_v, H, W)
        return self.fuse(torch.cat([self.out(context), high], dim=1))    # (B, C, H, W)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, low_channels={self.low_channels}, sizes={self.sizes}"
