"""The two memory layouts of a flattened feature map ``(B, C, L)``, and products that keep them.

A contiguous ``(B, C, *S)`` flattens to a channel-major ``(B, C, L)``; a channels_last one to a
position-major ``(B, C, L)`` (strides ``(L*C, 1, C)``). The blocks keep every ``(B, C, L)``-sized
tensor, and every gradient of one, in the input's layout: an add, or a BatchNorm backward, whose
operands are in different layouts takes a strided path several times slower than either layout
(``benchmarks/blocks.py``; docs/benchmarks.md, "Design notes").

Each helper reads shapes or strides in Python, so under ``torch.fx`` it must be one call in the graph: every
module that calls one registers its name with ``torch.fx.wrap`` (FX wraps a name in the globals of
the module that calls it, so a registration here would not reach the blocks).
"""

from __future__ import annotations

import torch


def is_position_major(x: torch.Tensor) -> bool:
    """Whether ``x`` ``(B, C, L)`` is position-major (a flattened channels_last tensor)."""
    return x.dim() == 3 and x.shape[1] > 1 and x.mT.is_contiguous()


def matmul_in_layout_of(a: torch.Tensor, b: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for batched matrices, computed as ``(b^T a^T)^T`` where ``like`` is position-major.

    Then a result with positions last comes out position-major, and so does the gradient of an
    operand with positions last (autograd's product for it follows the forward's orientation)."""
    if is_position_major(like):
        return torch.matmul(b.mT, a.mT).mT
    return torch.matmul(a, b)


def in_layout_of(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A position-major ``y`` ``(B, C', L)`` copied channel-major where ``x`` ``(B, C, L)`` is."""
    return y.contiguous() if x.is_contiguous() else y


def as_image(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``y`` ``(B, C, L)`` as a 4-D ``(B, C, L / W, W)`` for ``BatchNorm2d``, ``W`` the last dim of
    ``x`` ``(B, C, *S)``: ``x``'s own shape for a 2-D ``x``. A position-major ``y`` gets the strides of
    a channels_last tensor, batch stride included (any view gives a batch of one the batch stride
    ``C``, which the layout tests of BatchNorm and add read as channel-major)."""
    b, c, w = x.shape[0], x.shape[1], x.shape[-1]
    if is_position_major(y):
        return y.mT.reshape(b, y.shape[-1] // w, w, c).permute(0, 3, 1, 2)
    return y.reshape(b, c, y.shape[-1] // w, w)


def as_input_shape(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``t`` ``(B, C, ...)`` in ``x``'s shape; ``t`` itself where that is its shape (not a view: see
    :func:`as_image`)."""
    return t if t.shape == x.shape else t.view(x.shape)


def at_every_position(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A ``(B, C, 1)`` tensor as ``(B, C, 1, ..., 1)``, to broadcast over the positions of ``x``
    ``(B, C, *S)`` in ``x``'s own shape: the result then takes ``x``'s strides."""
    return t.view([t.shape[0], t.shape[1]] + [1] * (x.dim() - 2))
