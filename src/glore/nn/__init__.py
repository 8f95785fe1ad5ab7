"""Blocks: the GloRe unit and the global-context family, for ``(B, C, *S)`` inputs."""

from .cbam import CBAM, ChannelAttention, SpatialAttention
from .factory import BLOCKS, create_block
from .global_context import GlobalContext, SqueezeExcite
from .glore_unit import GloRe, GraphConv
from .non_local import ContextAttention, NonLocal, PairwiseAttention, SimplifiedNonLocal
from .official import convert_official_state_dict
from .pointwise import Pointwise

__all__ = [
    "BLOCKS", "CBAM", "ChannelAttention", "ContextAttention", "GlobalContext", "GloRe", "GraphConv", "NonLocal",
    "PairwiseAttention", "Pointwise", "SimplifiedNonLocal", "SpatialAttention", "SqueezeExcite",
    "convert_official_state_dict", "create_block",
]
