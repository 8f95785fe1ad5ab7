"""The Global Reasoning unit (Chen et al., CVPR 2019), for 1D, 2D and 3D features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import check_block_input, check_positive_int
from .pointwise import Pointwise


class GraphConv(nn.Module):
    """One graph convolution in interaction space, Eq. 2: ``Z = ((I - A_g) V) W_g``.

    ``V`` is held as ``(B, C_s, N)`` (states x nodes). The node-wise 1-D conv (``N x N`` weights with
    bias) diffuses information between nodes and is added to ``V``, the identity of ``I - A_g`` (the
    minus sign is absorbed into the learned ``A_g``). After a ReLU, the state-wise conv (``C_s x C_s``,
    no bias) updates every node's state.
    """

    def __init__(self, num_nodes: int, num_state: int):
        super().__init__()
        self.node = Pointwise(num_nodes, num_nodes)
        self.state = Pointwise(num_state, num_state, bias=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        h = self.node(v.transpose(1, 2)).transpose(1, 2)    # conv over the node axis
        # node-major copy (B*N rows of C_s states), rectified in place (ReLU and the state conv then
        # share one saved tensor): the state conv is one matrix product, and its output is laid
        # out the way the reverse projection reads it
        h = F.relu((h + v).transpose(1, 2).contiguous(), inplace=True)
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

    Args:
        channels: input and output channels ``C``.
        mid: bottleneck width; defaults to ``channels // 4``.
        num_nodes: graph nodes ``N``; defaults to ``mid``.
        num_state: node state size ``C_s``; defaults to ``2 * mid``.
        gcn_layers: number of stacked graph convolutions.
        normalize: divide ``V`` by the number of positions ``L``.
        zero_init: start the output BatchNorm's weight at zero.
    """

    def __init__(self, channels: int, *, mid: int | None = None, num_nodes: int | None = None,
                 num_state: int | None = None, gcn_layers: int = 1, normalize: bool = True,
                 zero_init: bool = True):
        super().__init__()
        check_positive_int("channels", channels)
        mid = channels // 4 if mid is None else check_positive_int("mid", mid)
        if mid <= 0:
            raise ValueError(f"mid defaults to channels // 4, which is 0 for channels={channels}; "
                             f"pass mid= explicitly")
        num_nodes = mid if num_nodes is None else check_positive_int("num_nodes", num_nodes)
        num_state = 2 * mid if num_state is None else check_positive_int("num_state", num_state)
        check_positive_int("gcn_layers", gcn_layers)
        self.channels, self.num_nodes, self.num_state = channels, num_nodes, num_state
        self.normalize = normalize

        self.reduce = Pointwise(channels, num_state)       # phi
        self.project = Pointwise(channels, num_nodes)      # theta: its output is the projection B
        self.gcn = nn.Sequential(*[GraphConv(num_nodes, num_state) for _ in range(gcn_layers)])
        self.extend = Pointwise(num_state, channels, bias=False)
        self.norm = nn.BatchNorm1d(channels, eps=1e-4)
        if zero_init:
            nn.init.zeros_(self.norm.weight)

    def project_to_nodes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(V, B)``: node features ``(B, C_s, N)`` and projection ``(B, N, L)``."""
        return self._project(x.flatten(2))

    def _project(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state, proj = self.reduce(flat), self.project(flat)         # (B, C_s, L), (B, N, L)
        v = torch.matmul(state, proj.transpose(1, 2))               # (B, C_s, N)
        if self.normalize:
            v = v.mul_(1.0 / flat.shape[-1])                        # fresh tensor: in place
        return v, proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_block_input(type(self).__name__, x, self.channels)
        flat = x.flatten(2)
        v, proj = self._project(flat)
        z = self.gcn(v)
        # The unit keeps the input's layout throughout, so that no activation or gradient is
        # ever copied to another layout. (A layout test rather than comparing data pointers:
        # torch.compile and torch.export cannot trace data_ptr().)
        if not flat.mT.is_contiguous():
            # channel-major (contiguous) input: per-sample products, channel-major BatchNorm
            y = self.extend(torch.matmul(z, proj))                  # Y = Z B: (B, C, L)
            return x + self.norm(y).view(x.shape)
        # position-major (channels_last) input: the reverse projection as Y^T = B^T Z^T, so that
        # the extension is one matrix product over all B * L positions, and BatchNorm over the
        # (B * L, C) view (the statistics of (B, C, L))
        b, c = x.shape[:2]
        y = self.extend(torch.matmul(proj.mT, z.mT).mT)
        y = self.norm(y.mT.reshape(-1, c))
        if y.dtype != x.dtype:      # autocast: BatchNorm kept float32
            return x + y.view(b, -1, c).mT.view(x.shape)
        # the residual is added in place into the fresh BatchNorm output, which is returned with
        # the input's layout
        return y.add_(flat.mT.reshape(-1, c)).view(b, -1, c).mT.view(x.shape)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_nodes={self.num_nodes}, num_state={self.num_state}, "
                f"normalize={self.normalize}")

