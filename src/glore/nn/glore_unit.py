"""The Global Reasoning unit (Chen et al., CVPR 2019), for 1D, 2D and 3D features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ._validate import check_block_input, check_positive_int
from .pointwise import Pointwise, pointwise


class GraphConv(nn.Module):
    """One graph convolution in interaction space, Eq. 2: ``Z = ((I - A_g) V) W_g``.

    ``V`` is held as ``(B, C_s, N)`` (states x nodes). The node-wise 1-D conv (``N x N`` weights with
    bias) diffuses information between nodes and is added to ``V``, the identity of ``I - A_g`` (the
    minus sign is absorbed into the learned ``A_g``). After a ReLU, the state-wise conv (``C_s x C_s``,
    no bias) updates every node's state.

    ``node`` holds ``A_g`` and its bias as a conv's parameters, but its forward is not called: the
    layer computes ``(I + A_g) V`` as one product from them (forward hooks on ``node`` do not run).
    """

    def __init__(self, num_nodes: int, num_state: int):
        super().__init__()
        self.node = Pointwise(num_nodes, num_nodes)
        self.state = Pointwise(num_state, num_state, bias=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        # (I + A_g) V as one product per sample, with the identity added to the (N, N) weight,
        # written node-major (B, N, C_s): no add of V, no transposing copy, and the state conv
        # reads it as one matrix product over all B * N rows
        adjacency = self.node.weight.squeeze(2)
        identity = torch.eye(len(adjacency), dtype=adjacency.dtype, device=adjacency.device)
        h = torch.baddbmm(self.node.bias[:, None], (adjacency + identity).expand(v.shape[0], -1, -1), v.mT)
        if torch.compiler.is_compiling() and not torch.compiler.is_exporting():
            # Left to itself, inductor saves the ReLU's mask as a bool tensor, and its kernel
            # that writes bools can be slow: 10 ms for the 1M elements of the goal unit on an
            # AVX2 AMD EPYC, where eager's comparison takes 0.7 ms (docs/benchmarks.md).
            # Recomputing the mask in backward, from the saved output, costs nothing extra.
            h = checkpoint(F.relu, h, use_reentrant=False)
        else:
            h = F.relu(h, inplace=True)     # in place: ReLU and the state conv share one saved tensor
        return self.state(h.transpose(1, 2))


class GloRe(nn.Module):
    """Global Reasoning unit (GloRe paper §3, Eq. 1-4; DESIGN.md §1).

    For ``x`` of shape ``(B, C, *S)`` with ``L = prod(S)`` positions:

    1. state reduction ``phi(x)``: 1x1 conv ``C -> C_s``;
    2. projection ``B = theta(x)``: 1x1 conv ``C -> N``;
    3. ``V = phi(x) B^T`` (Eq. 1), divided by ``L`` when ``normalize``;
    4. ``gcn_layers`` graph convolutions (Eq. 2, :class:`GraphConv`);
    5. reverse projection ``Y = Z B`` with the same ``B`` (Eq. 3-4);
    6. 1x1 extension ``C_s -> C`` (no bias), BatchNorm (eps 1e-4), residual ``x + BN(ext(Y))``.

    With ``zero_init`` the BatchNorm weight starts at zero, so the unit is the identity at
    initialisation and cannot disturb a pretrained backbone.

    Steps 1 and 3, and 5 and 6, are products of matrices that can be taken in either order:
    ``phi(x) B^T = W_phi (x B^T) + b_phi (B 1)^T`` and ``ext(Z B) = (W_ext Z) B``. The paper's order
    costs ``2 C_s L (C + N)`` multiply-adds per sample, the other ``2 C N (L + C_s)``, which is
    less for many positions (about 40% less at 96x96 with C=512 and the default widths) and keeps
    no ``(C_s, L)`` activation for backward. By default the unit takes the cheaper order for the
    input's size; the result is the same up to float rounding.

    Args:
        channels: input and output channels ``C``.
        mid: bottleneck width; defaults to ``channels // 4``.
        num_nodes: graph nodes ``N``; defaults to ``mid``.
        num_state: node state size ``C_s``; defaults to ``2 * mid``.
        gcn_layers: number of stacked graph convolutions.
        normalize: divide ``V`` by the number of positions ``L``.
        zero_init: start the output BatchNorm's weight at zero.
        reassociate: ``None`` picks the order of the products by cost for each input size;
            ``True`` or ``False`` fixes it (``False`` is the paper's order).
    """

    def __init__(self, channels: int, *, mid: int | None = None, num_nodes: int | None = None,
                 num_state: int | None = None, gcn_layers: int = 1, normalize: bool = True,
                 zero_init: bool = True, reassociate: bool | None = None):
        super().__init__()
        check_positive_int("channels", channels)
        mid = channels // 4 if mid is None else check_positive_int("mid", mid)
        if mid <= 0:
            raise ValueError(f"mid defaults to channels // 4, which is 0 for channels={channels}; "
                             f"pass mid= explicitly")
        num_nodes = mid if num_nodes is None else check_positive_int("num_nodes", num_nodes)
        num_state = 2 * mid if num_state is None else check_positive_int("num_state", num_state)
        check_positive_int("gcn_layers", gcn_layers)
        if reassociate is not None and not isinstance(reassociate, bool):
            raise TypeError(f"reassociate must be None (choose by cost), True or False, got {reassociate!r}")
        self.channels, self.num_nodes, self.num_state = channels, num_nodes, num_state
        self.normalize, self.reassociate = normalize, reassociate

        self.reduce = Pointwise(channels, num_state)       # phi
        self.project = Pointwise(channels, num_nodes)      # theta: its output is the projection B
        self.gcn = nn.Sequential(*[GraphConv(num_nodes, num_state) for _ in range(gcn_layers)])
        self.extend = Pointwise(num_state, channels, bias=False)
        self.norm = nn.BatchNorm1d(channels, eps=1e-4)
        if zero_init:
            nn.init.zeros_(self.norm.weight)

    def reassociates(self, length: int) -> bool:
        """Whether the unit computes ``phi(x) B^T`` as ``W_phi (x B^T)`` and ``ext(Z B)`` as
        ``(W_ext Z) B`` for ``length`` positions: with ``reassociate=None``, when that takes fewer
        multiply-adds (``2 C N (L + C_s)`` against ``2 C_s L (C + N)``), i.e. for many positions.
        ``torch.export`` keeps the paper's order unless ``reassociate`` is set, so that an exported
        program takes any size its dynamic dimensions allow."""
        if self.reassociate is not None:
            return self.reassociate
        if torch.compiler.is_exporting():
            # a choice by size would be a guard on the exported program's dynamic sizes
            return False
        c, n, s = self.channels, self.num_nodes, self.num_state
        return c * n * (length + s) < s * length * (c + n)

    def project_to_nodes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(V, B)``: node features ``(B, C_s, N)`` and projection ``(B, N, L)``."""
        flat = x.flatten(2)
        channel_major = _channel_major(flat)
        v, stored = self._project(x, self.reassociates(flat.shape[-1]), channel_major)
        return v, stored if channel_major else stored.mT

    def _project(self, x: torch.Tensor, reassociate: bool,
                 channel_major: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(V, B as stored)``: the projection in its memory order, ``B`` ``(B, N, L)`` for
        channel-major input, ``B^T`` ``(B, L, N)`` for position-major input.

        Every use of ``x`` and of the stored projection takes its own view of it, so that their
        gradients meet in ``x`` and in that tensor and are summed in their layouts. torch.compile
        lays out a sum that meets in a view of another shape contiguously and copies it back: at
        the goal size with channels_last input that cost 7-10 ms a step (docs/benchmarks.md).
        Eager mode sums either way without a copy.
        """
        proj = self.project(x.flatten(2))                           # (B, N, L)
        stored = proj if channel_major else proj.mT
        if not reassociate:
            proj_t = stored.mT if channel_major else stored         # (B, L, N)
            v = torch.matmul(self.reduce(x.flatten(2)), proj_t)     # (B, C_s, L) (B, L, N)
        else:
            # W_phi (x B^T) + b (B 1)^T; x B^T is formed in x's layout so that x's gradient is too
            if channel_major:
                nodes = torch.matmul(x.flatten(2), stored.mT)       # (B, C, N)
            else:
                nodes = torch.matmul(stored.mT, x.flatten(2).mT).mT
            v = pointwise(nodes, self.reduce.weight)
            bias_weight = stored.sum(2 if channel_major else 1)     # B 1, (B, N)
            v = v.addcmul_(self.reduce.bias[:, None], bias_weight[:, None, :])
        if self.normalize:
            v = v.mul_(1.0 / x.flatten(2).shape[-1])                # fresh tensor: in place
        return v, stored

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_block_input(type(self).__name__, x, self.channels)
        flat = x.flatten(2)
        reassociate = self.reassociates(flat.shape[-1])
        # The unit keeps the input's layout throughout, so that no activation or gradient is
        # ever copied to another layout. (A layout test rather than comparing data pointers:
        # torch.compile and torch.export cannot trace data_ptr().)
        channel_major = _channel_major(flat)
        v, stored = self._project(x, reassociate, channel_major)
        z = self.gcn(v)
        if reassociate:
            y = _reverse_project(self.extend(z), stored, channel_major)    # (W_ext Z) B
        else:
            y = self.extend(_reverse_project(z, stored, channel_major))    # W_ext (Z B)
        b, c = x.shape[:2]
        if channel_major:
            y, residual = self.norm(y), x.flatten(2)
        else:
            # position-major (channels_last): BatchNorm over the (B * L, C) view (the statistics
            # of (B, C, L))
            y, residual = self.norm(y.mT.reshape(-1, c)), x.flatten(2).mT.reshape(-1, c)
        if y.dtype == x.dtype:
            # in place into the fresh BatchNorm output (not a view of it, which would make
            # backward copy): one allocation the size of x fewer
            y = y.add_(residual)
        else:                       # autocast: BatchNorm kept float32
            y = residual + y
        return y.view(x.shape) if channel_major else y.view(b, -1, c).mT.view(x.shape)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_nodes={self.num_nodes}, num_state={self.num_state}, "
                f"normalize={self.normalize}, reassociate={self.reassociate}")


def _channel_major(flat: torch.Tensor) -> bool:
    """Whether ``(B, C, L)`` is laid out channel-major (contiguous), not position-major."""
    return not flat.mT.is_contiguous()


def _reverse_project(m: torch.Tensor, stored: torch.Tensor, channel_major: bool) -> torch.Tensor:
    """``M B`` for ``M`` ``(B, K, N)`` and the projection ``B`` (stored as ``GloRe._project``
    returns it), in the input's layout: channel-major, per-sample products; position-major,
    ``B^T M^T``, so that a following 1x1 conv is one matrix product over all ``B * L`` positions."""
    if channel_major:
        return torch.matmul(m, stored)
    return torch.matmul(stored, m.mT).mT
