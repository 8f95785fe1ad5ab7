"""The Global Reasoning unit of "Graph-Based Global Reasoning Networks" (Chen et al., CVPR 2019,
arXiv 1811.12814), for 1D, 2D and 3D features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glore.errors import ArgumentError, ArgumentTypeError
from ._layout import as_image, as_input_shape, matmul_in_layout_of
from ._validate import ZeroInitBlock, _parameter_dtype, check_block_input, check_parameter_count, check_positive_int
from .pointwise import Pointwise

for _name in ("check_block_input", "matmul_in_layout_of", "as_image", "as_input_shape"):
    torch.fx.wrap(_name)                    # one call each in an FX graph


class GraphConv(nn.Module):
    """One graph convolution in interaction space (GloRe paper, Eq. 2).

    On node features ``V`` held as ``(B, C_s, N)`` (states x nodes), it computes::

        Z = W_g ReLU(V (I + A_g)^T + b 1^T)

    the paper's ``Z = ((I - A_g) V) W_g`` written for ``V`` transposed, with the minus sign
    absorbed into the learned ``A_g``. ``node`` is the node-wise 1-D conv (``A_g``, ``N x N``, with
    bias ``b``) applied along the nodes; its output is added to ``V`` (the identity). ``state`` is
    the state-wise 1-D conv (``W_g``, ``C_s x C_s``, no bias). Both run as modules, so that hooks
    and module-level counters see them.
    """

    def __init__(self, num_nodes: int, num_state: int):
        super().__init__()
        self.node = Pointwise(num_nodes, num_nodes)
        self.state = Pointwise(num_state, num_state, bias=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """``Z`` for the node features ``V`` ``(B, C_s, N)``: ``(I + A_g)`` along the nodes, then ``W_g`` along the states."""
        h = v + self.node(v.mT).mT          # (I + A_g) V, along the nodes
        return self.state(F.relu(h))        # then W_g, along the states


class GloRe(ZeroInitBlock):
    """Global Reasoning unit (GloRe paper, §3, Eq. 1-4).

    For ``x`` of shape ``(B, C, *S)``, as ``X`` ``(B, C, L)`` with ``L = prod(S)`` positions:

    1. state reduction ``phi(X)``: 1x1 conv ``C -> C_s`` with bias;
    2. projection ``B = theta(X)``: 1x1 conv ``C -> N`` with bias, ``(B, N, L)``;
    3. ``V = phi(X) B^T`` ``(B, C_s, N)`` (Eq. 1), divided by ``L`` when ``normalize``;
    4. ``gcn_layers`` graph convolutions ``Z = GCN(V)`` (Eq. 2, :class:`GraphConv`);
    5. reverse projection ``Y = Z B`` ``(B, C_s, L)`` with the same ``B`` (Eq. 3-4);
    6. extension ``W_ext Y`` (1x1 conv ``C_s -> C``, no bias), BatchNorm (eps 1e-4), residual:
       ``out = x + BN(W_ext Y)``.

    With ``zero_init`` the BatchNorm weight starts at zero, so the unit is the identity at
    initialisation (and again after :meth:`reset_parameters`).

    The one performance choice is the order of the products: ``phi(X) B^T = W_phi (X B^T) +
    b_phi (B 1)^T`` and ``W_ext (Z B) = (W_ext Z) B``. The paper's order costs ``2 C_s L (C + N)``
    multiply-adds per sample, the other ``2 C N (L + C_s)``, less for many positions. With
    ``reassociate=None`` the unit takes the cheaper order for each input's size (same result up to
    float rounding); in the reassociated order ``reduce``'s weights are used directly, so hooks on
    ``reduce`` do not run. Where the size is unknown when the graph is built (``torch.fx`` tracing,
    ``torch.export``) it keeps the paper's order unless ``reassociate`` is set. The products with
    ``B`` are oriented so that, with a channels_last input, ``Y``, the gradients of ``X`` and ``B``
    and BatchNorm (on ``Y`` as an image) stay channels_last (``glore.nn._layout``).

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
        defaulted = mid is None
        mid = channels // 4 if defaulted else check_positive_int("mid", mid)
        if defaulted and mid < 2 and num_nodes is None:
            raise ArgumentError(f"mid defaults to channels // 4, which is {mid} for channels={channels}; "
                                f"pass mid= or num_nodes= explicitly (it would be a {mid}-node graph)")
        num_nodes = mid if num_nodes is None else check_positive_int("num_nodes", num_nodes)
        num_state = 2 * mid if num_state is None else check_positive_int("num_state", num_state)
        check_positive_int("gcn_layers", gcn_layers)
        if reassociate is not None and not isinstance(reassociate, bool):
            raise ArgumentTypeError(f"reassociate must be None (choose by cost), True or False, got {reassociate!r}")
        weights = channels * (2 * num_state + num_nodes) + gcn_layers * (num_nodes ** 2 + num_state ** 2)
        check_parameter_count("GloRe", weights, f"channels={channels}, mid={mid}, num_nodes={num_nodes}, "
                                                f"num_state={num_state}")
        self.channels, self.num_nodes, self.num_state = channels, num_nodes, num_state
        self.normalize, self.zero_init, self.reassociate = normalize, zero_init, reassociate

        self.reduce = Pointwise(channels, num_state)       # phi
        self.project = Pointwise(channels, num_nodes)      # theta: its output is the projection B
        self.gcn = nn.Sequential(*[GraphConv(num_nodes, num_state) for _ in range(gcn_layers)])
        self.extend = Pointwise(num_state, channels, bias=False)
        self.norm = nn.BatchNorm2d(channels, eps=1e-4)          # on Y as an image, in x's layout
        self.zero_init_last()

    def zero_init_last(self) -> None:
        """With ``zero_init``, zero the last layer (the block's residual branch starts at zero)."""
        if self.zero_init:
            nn.init.zeros_(self.norm.weight)

    def reassociates(self, length: int) -> bool:
        """Whether the unit takes the reassociated order for ``length`` positions (see above)."""
        if self.reassociate is not None:
            return self.reassociate
        if not torch.jit.is_scripting():
            if isinstance(length, torch.fx.Proxy) or torch.compiler.is_exporting():
                return False    # a choice by size would fix, or guard, the graph's sizes
        c, n, s = self.channels, self.num_nodes, self.num_state
        return c * n * (length + s) < s * length * (c + n)

    def project_to_nodes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 1-3: ``(V, B)``, node features ``(B, C_s, N)`` and projection ``(B, N, L)``."""
        flat = x.flatten(2)                                     # X: (B, C, L)
        proj = self.project(flat)                               # B = theta(X)
        # V / L = phi(X) (B / L)^T: with B divided first, the sums over the L positions stay in
        # float16's range (their terms are already divided), where V itself can exceed it
        weights = proj / flat.shape[-1] if self.normalize else proj     # (B, N, L)
        if self.reassociates(flat.shape[-1]):                   # W_phi (X B^T) + b_phi (B 1)^T
            weight, bias = self.reduce.weight, self.reduce.bias
            assert bias is not None                             # (for TorchScript: Optional)
            v = F.conv1d(matmul_in_layout_of(flat, weights.mT, flat), weight)   # (B, C_s, N)
            v = v.addcmul_(bias[:, None], weights.sum(-1)[:, None, :])  # in place: in v's dtype
        else:
            v = torch.matmul(self.reduce(flat), weights.mT)     # V = phi(X) B^T: (B, C_s, N)
        return v, proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The unit's output ``x + BN(W_ext Z B)`` for ``x`` ``(B, C, *S)``, of the same shape (Eq. 1-4)."""
        if not torch.jit.is_scripting():    # (TorchScript cannot compile the check)
            check_block_input(type(self).__name__, x, self.channels, _parameter_dtype(self))
        v, proj = self.project_to_nodes(x)                      # V (Eq. 1), B
        z = self.gcn(v)                                         # Z: (B, C_s, N) (Eq. 2)
        if self.reassociates(proj.shape[-1]):
            y = matmul_in_layout_of(self.extend(z), proj, proj)     # (W_ext Z) B
        else:
            y = self.extend(matmul_in_layout_of(z, proj, proj))     # W_ext Y, Y = Z B (Eq. 3-4)
        return x + as_input_shape(self.norm(as_image(y, x)), x)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_nodes={self.num_nodes}, num_state={self.num_state}, "
                f"normalize={self.normalize}, reassociate={self.reassociate}")
