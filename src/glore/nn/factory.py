"""``create_block``: build any block of the library by its short name."""

from __future__ import annotations

from torch import nn

from glore.errors import ArgumentError
from .cbam import CBAM
from .global_context import GlobalContext, SqueezeExcite
from .glore_unit import GloRe
from .non_local import NonLocal, SimplifiedNonLocal

BLOCKS: dict[str, type[nn.Module]] = {
    "glore": GloRe,
    "nl": NonLocal,
    "snl": SimplifiedNonLocal,
    "gc": GlobalContext,
    "se": SqueezeExcite,
    "cbam": CBAM,
}


def create_block(name: str, channels: int, **kwargs) -> nn.Module:
    """Build block ``name`` (one of ``glore``, ``nl``, ``snl``, ``gc``, ``se``, ``cbam``) for ``channels``."""
    if not isinstance(name, str) or name.lower() not in BLOCKS:
        raise ArgumentError(f"unknown block {name!r}; expected one of {sorted(BLOCKS)}")
    return BLOCKS[name.lower()](channels, **kwargs)
