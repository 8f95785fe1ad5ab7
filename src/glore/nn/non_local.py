"""Non-local block (Wang et al., "Non-local Neural Networks", CVPR 2018) and the simplified non-local
block of "Global Context Networks" (Cao et al., arXiv 2012.13375)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glore.errors import ArgumentError
from ._layout import as_image, as_input_shape, at_every_position, in_layout_of, matmul_in_layout_of
from ._validate import ZeroInitBlock, _parameter_dtype, check_block_input, check_choice, check_positive_int
from .pointwise import Pointwise

for _name in ("check_block_input", "in_layout_of", "matmul_in_layout_of", "as_image", "as_input_shape",
              "at_every_position"):
    torch.fx.wrap(_name)                    # one call each in an FX graph

# The largest (B, L, L') attention NonLocal builds (bytes); above it, forward refuses with the size
# instead of attempting the allocation. 4 GiB fits any current accelerator with room for the rest.
MAX_ATTENTION_BYTES = 4 * 2**30

PAIRWISE = ("embedded_gaussian", "gaussian", "dot_product", "concat")


class PairwiseAttention(nn.Module):
    """Normalised pairwise function ``w_ij`` of GCNet Eq. 1; returns ``(B, L_query, L_key)``.

    - ``gaussian``: ``softmax_j <x_i, x_j>``
    - ``embedded_gaussian``: ``softmax_j <W_q x_i, W_k x_j>``
    - ``dot_product``: ``<W_q x_i, W_k x_j> / N_p``
    - ``concat``: ``ReLU(w^T [W_q x_i, W_k x_j]) / N_p``
    """

    def __init__(self, channels: int, inner: int, pairwise: str):
        super().__init__()
        self.pairwise = check_choice("pairwise", pairwise, PAIRWISE)
        self.inner, embedded = inner, pairwise != "gaussian"
        # unused convs are None rather than absent, so that TorchScript resolves the branches
        self.query = Pointwise(channels, inner) if embedded else None
        self.key = Pointwise(channels, inner) if embedded else None
        self.concat = Pointwise(2 * inner, 1, bias=False) if pairwise == "concat" else None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Weights of the ``L`` query positions of ``x`` ``(B, C, *S)`` over the ``L'`` key positions
        of ``context`` ``(B, C, *S')`` (default ``x``)."""
        context = x if context is None else context
        if self.query is None or self.key is None:              # gaussian
            return torch.softmax(torch.matmul(x.flatten(2).transpose(1, 2), context.flatten(2)), dim=-1)
        q, k = self.query(x).flatten(2), self.key(context).flatten(2)   # (B, inner, L), (B, inner, L')
        num_keys = k.shape[-1]
        if self.concat is not None:
            # w^T [q_i; k_j] = w_q . q_i + w_k . k_j, without building the (2*inner, L, L) tensor
            w = self.concat.weight[0, :, 0]
            w_q, w_k = w[: self.inner], w[self.inner:]
            scores = torch.matmul(w_q, q)[:, :, None] + torch.matmul(w_k, k)[:, None, :]
            return F.relu(scores) / num_keys
        scores = torch.matmul(q.transpose(1, 2), k)
        if self.pairwise == "embedded_gaussian":
            return torch.softmax(scores, dim=-1)
        return scores / num_keys                                # dot_product


class NonLocal(ZeroInitBlock):
    """Non-local block, GCNet Eq. 1: ``z_i = x_i + W_z sum_j w_ij (W_v x_j)``.

    ``W_z`` is followed by a BatchNorm whose weight starts at zero (identity at initialisation).

    Args:
        channels: input and output channels ``C``.
        inner: width of the embeddings; defaults to ``channels // 2``.
        pairwise: ``embedded_gaussian`` (default), ``gaussian``, ``dot_product`` or ``concat``.
        zero_init: start the output BatchNorm's weight at zero.
        sub_sample: compute keys and values on a 2x2 max-pooled input (spatial dims only; time is
            kept), as in the non-local paper. Same parameters, about a quarter of the pairwise cost;
            this is the form whose cost matches GCNet's "+1 NL: +0.25 GFLOPs".
    """

    def __init__(self, channels: int, *, inner: int | None = None, pairwise: str = "embedded_gaussian",
                 zero_init: bool = True, sub_sample: bool = False):
        super().__init__()
        check_positive_int("channels", channels)
        inner = max(channels // 2, 1) if inner is None else check_positive_int("inner", inner)
        self.channels, self.inner, self.sub_sample = channels, inner, sub_sample
        self.attention = PairwiseAttention(channels, inner, pairwise)
        self.value = Pointwise(channels, inner)
        self.out = Pointwise(inner, channels, bias=False)
        self.norm = nn.BatchNorm2d(channels)   # on W_z's output as an image, in x's layout
        self.zero_init = zero_init
        self.zero_init_last()


    def zero_init_last(self) -> None:
        """With ``zero_init``, zero the last layer (the block's residual branch starts at zero)."""
        if self.zero_init:
            nn.init.zeros_(self.norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 1 for ``x`` ``(B, C, *S)``: ``x + BN(W_z sum_j w_ij W_v x_j)``, of the same shape."""
        if not torch.jit.is_scripting():    # (TorchScript cannot compile the check)
            check_block_input(type(self).__name__, x, self.channels, _parameter_dtype(self))
        flat = x.flatten(2)
        context = subsample_keys(x) if self.sub_sample else x
        if not torch.jit.is_scripting():
            check_attention_size(flat, context.flatten(2))
        attn = self.attention(x, context)                             # (B, L, L')
        # sum_j w_ij W_v x_j as (B, L, inner), attention on the left: the softmax's backward then
        # gets its (B, L, L') gradient contiguous (benchmarks/blocks.py, docs/benchmarks.md)
        y = in_layout_of(torch.matmul(attn, self.value(context).flatten(2).mT).mT, flat)   # (B, inner, L)
        return x + as_input_shape(self.norm(as_image(self.out(y), x)), x)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, inner={self.inner}, pairwise={self.attention.pairwise!r}, "
                f"sub_sample={self.sub_sample}")


@torch.fx.wrap
def check_attention_size(flat: torch.Tensor, context: torch.Tensor) -> None:
    """Refuse an attention matrix above :data:`MAX_ATTENTION_BYTES`, naming its size."""
    size = flat.shape[0] * flat.shape[-1] * context.shape[-1] * flat.element_size()
    if size > MAX_ATTENTION_BYTES:
        raise ArgumentError(
            f"NonLocal: the attention of a {tuple(flat.shape)} input over {context.shape[-1]} keys takes "
            f"{size / 2**30:.1f} GiB (limit {MAX_ATTENTION_BYTES / 2**30:.0f} GiB, "
            "glore.nn.non_local.MAX_ATTENTION_BYTES); use sub_sample=True or a smaller feature map")


@torch.fx.wrap          # chooses the pooling by x.dim(): one call in an FX graph
def subsample_keys(x: torch.Tensor) -> torch.Tensor:
    """The key/value positions of ``NonLocal(sub_sample=True)``: 2x2 max pooling over the last two
    dims (the last one only for 1-D inputs; time is kept in 3-D); ceil mode keeps odd sizes covered."""
    if x.dim() == 3:
        return F.max_pool1d(x, 2, ceil_mode=True)
    if x.dim() == 4:
        return F.max_pool2d(x, 2, ceil_mode=True)
    return F.max_pool3d(x, (1, 2, 2), ceil_mode=True)


class ContextAttention(nn.Module):
    """Query-independent attention ``softmax_j(W_k x_j)``, returned as ``(B, 1, L)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.key = Pointwise(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The query-independent weights ``softmax_j(W_k x_j)`` for ``x`` ``(B, C, L)``: ``(B, 1, L)``."""
        return torch.softmax(self.key(x), dim=-1)


def attention_pool(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_j w_j x_j`` for ``x`` of shape ``(B, C, L)`` and weights ``(B, 1, L)``: ``(B, C, 1)``,
    with ``x``'s gradient in ``x``'s layout, where its other gradients are."""
    return matmul_in_layout_of(x, weights.mT, x)


class SimplifiedNonLocal(ZeroInitBlock):
    """Simplified non-local block, GCNet Eq. 2-3: ``z_i = x_i + W_v sum_j softmax_j(W_k x_j) x_j``.

    The same global context is added at every position. ``W_v`` (``C x C``) starts at zero when
    ``zero_init``, so the block is the identity at initialisation.
    """

    def __init__(self, channels: int, *, zero_init: bool = True):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.attention = ContextAttention(channels)
        self.value = Pointwise(channels, channels)
        self.zero_init = zero_init
        self.zero_init_last()


    def zero_init_last(self) -> None:
        """With ``zero_init``, zero the last layer (the block's residual branch starts at zero)."""
        if self.zero_init:
            nn.init.zeros_(self.value.weight)
            nn.init.zeros_(self.value.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 2-3 for ``x`` ``(B, C, *S)``: ``x`` plus ``W_v`` of the attention-pooled context, at every position."""
        if not torch.jit.is_scripting():    # (TorchScript cannot compile the check)
            check_block_input(type(self).__name__, x, self.channels, _parameter_dtype(self))
        flat = x.flatten(2)
        context = self.value(attention_pool(flat, self.attention(flat)))   # (B, C, 1)
        return x + at_every_position(context, x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
