"""Global context block of "Global Context Networks" (Cao et al., arXiv 2012.13375, Eq. 5) and its
ablation variants, squeeze-excitation among them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glore.errors import ArgumentError
from ._layout import at_every_position
from ._validate import ZeroInitBlock, _parameter_dtype, check_block_input, check_choice, check_positive_int
from .non_local import ContextAttention, attention_pool
from .pointwise import Pointwise

for _name in ("check_block_input", "at_every_position"):
    torch.fx.wrap(_name)                    # one call each in an FX graph


def _hidden_width(channels: int, ratio: float) -> int:
    if isinstance(ratio, bool) or not (isinstance(ratio, (int, float)) and 0 < ratio <= 1):
        raise ArgumentError(f"ratio must be a number in (0, 1] or None, got {ratio!r}")
    return max(1, round(channels * ratio))


class GlobalContext(ZeroInitBlock):
    """Global context block, GCNet Eq. 5: ``z_i = x_i + W_v2 ReLU(LN(W_v1 sum_j a_j x_j))``.

    Args:
        channels: input and output channels ``C``.
        ratio: bottleneck ratio ``1/r`` (1/16 for classification, 1/4 for segmentation and video);
            ``None`` is the ablation "w/o ratio": one ``C x C`` conv, no LayerNorm, no ReLU.
        pooling: ``att`` (``a_j = softmax_j(W_k x_j)``) or ``avg`` (``a_j = 1/L``).
        fusion: ``add`` (``x + t``) or ``scale`` (``x * sigmoid(t)``).
        layer_norm: LayerNorm over the ``C/r`` bottleneck vector.
        zero_init: start the last conv at zero (with ``add`` fusion: identity at initialisation).
    """

    def __init__(self, channels: int, *, ratio: float | None = 1 / 16, pooling: str = "att",
                 fusion: str = "add", layer_norm: bool = True, zero_init: bool = True):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.pooling = check_choice("pooling", pooling, ("att", "avg"))
        self.fusion = check_choice("fusion", fusion, ("add", "scale"))
        self.attention = ContextAttention(channels) if pooling == "att" else None
        if ratio is None:
            self.transform = nn.Sequential(Pointwise(channels, channels))
        else:
            hidden = _hidden_width(channels, ratio)
            self.transform = nn.Sequential(
                Pointwise(channels, hidden),
                _ChannelLayerNorm(hidden) if layer_norm else nn.Identity(),
                nn.ReLU(inplace=True),
                Pointwise(hidden, channels),
            )
        self.zero_init = zero_init
        self.gate_scale = 1.0           # scale fusion: x * gate_scale * sigmoid(t)
        self.zero_init_last()


    def zero_init_last(self) -> None:
        """With ``zero_init``, zero the last layer (the block's residual branch starts at zero)."""
        if self.zero_init:
            nn.init.zeros_(self.transform[-1].weight)
            nn.init.zeros_(self.transform[-1].bias)

    def pool(self, flat: torch.Tensor) -> torch.Tensor:
        """Context vector ``(B, C, 1)`` of ``flat`` ``(B, C, L)``."""
        if self.attention is None:
            return flat.mean(dim=-1, keepdim=True)
        return attention_pool(flat, self.attention(flat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 5 for ``x`` ``(B, C, *S)``: the transformed context added to (or gating) every position."""
        if not torch.jit.is_scripting():    # (TorchScript cannot compile the check)
            check_block_input(type(self).__name__, x, self.channels, _parameter_dtype(self))
        flat = x.flatten(2)
        t = at_every_position(self.transform(self.pool(flat)), x)     # (B, C, 1, ...): the same everywhere
        return x + t if self.fusion == "add" else x * (torch.sigmoid(t) * self.gate_scale)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, pooling={self.pooling!r}, fusion={self.fusion!r}"


class _ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a ``(B, C, 1)`` tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, 2), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.transpose(1, 2)


class SqueezeExcite(GlobalContext):
    """Squeeze-and-excitation (Hu et al.): average pooling, conv-ReLU-conv, sigmoid scaling.

    GCNet §4 shows SE as a global context block with ``avg`` pooling, ``scale`` fusion and no
    LayerNorm; this class is exactly that configuration. By default the last conv is not
    zero-initialised, so that the scale starts near the standard SE's rather than at sigmoid(0)
    everywhere. With ``zero_init`` the gate is ``2 sigmoid(t)`` and the last conv starts at zero:
    the gate is then 1 everywhere and the block starts as the identity, which is how
    :func:`glore.models.insert_blocks` puts SE into a (pretrained) backbone. (The standard gate
    ``sigmoid(t)`` cannot start at 1; the factor 2 only widens its range to ``(0, 2)``.)
    """

    def __init__(self, channels: int, *, ratio: float = 1 / 16, zero_init: bool = False):
        super().__init__(channels, ratio=ratio, pooling="avg", fusion="scale", layer_norm=False,
                         zero_init=zero_init)
        self.gate_scale = 2.0 if zero_init else 1.0
