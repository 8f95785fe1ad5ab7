"""Blocks: the GloRe unit and the global-context family, for ``(B, C, *S)`` inputs."""

from .asymmetric_non_local import AsymmetricFusion, AsymmetricNonLocal
from .cbam import CBAM, ChannelGate, SpatialGate
from .criss_cross import CrissCrossAttention
from .dual_attention import ChannelAttention, PositionAttention
from .factory import BLOCKS, create_block
from .global_context import GlobalContext, SqueezeExcite
from .glore_unit import GloRe, GraphConv
from .non_local import ContextAttention, NonLocal, PairwiseAttention, SimplifiedNonLocal
from .official import convert_official_state_dict
from .pointwise import Pointwise

__all__ = [
    "AsymmetricFusion", "AsymmetricNonLocal", "BLOCKS", "CBAM", "ChannelAttention", "ChannelGate",
    "ContextAttention", "CrissCrossAttention", "PositionAttention", "GlobalContext", "GloRe", "GraphConv",
    "NonLocal", "PairwiseAttention", "Pointwise", "SimplifiedNonLocal", "SpatialGate", "SqueezeExcite",
    "convert_official_state_dict", "create_block",
]
