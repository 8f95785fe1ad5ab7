"""The heads of a segmenter: :class:`ContextHead` (the plain FCN head, or context blocks between two
adaptive convs: GloRe, NL, SNL, GC, CCNet's criss-cross attention), the auxiliary :class:`FCNHead`,
and the attention heads GCNet compares with in its Cityscapes table (GCNet Table 13) that have a
structure of their own: DANet's dual attention head and ANN's asymmetric non-local head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from glore.errors import ArgumentError
from ..nn import (AsymmetricFusion, AsymmetricNonLocal, ChannelAttention, CrissCrossAttention, PositionAttention,
                  create_block)
from ..nn.asymmetric_non_local import PYRAMID_SIZES
from .layers import conv_bn_relu
from .placement import block_name, block_options, deprecated


class DualAttentionHead(nn.Module):
    """DANet's head (Fu et al., arXiv 1809.02983, §3.4): two branches on c5, each a 3x3 conv
    ``C5 -> channels``, an attention module (position; channel) and a 3x3 conv; their sum goes
    through dropout and a 1x1 classifier. No concatenation with c5.

    Args:
        in_channels: channels of c5.
        num_classes: output classes.
        channels: width of the branches (DANet: c5's channels / 4 = 512).
        dropout: dropout before the classifier.
        inner: query/key width of the position attention (default ``channels // 8``).
    """

    uses_c4 = False

    def __init__(self, in_channels: int, num_classes: int, *, channels: int = 512, dropout: float = 0.1,
                 inner: int | None = None):
        super().__init__()
        self.position = nn.Sequential(conv_bn_relu(in_channels, channels),
                                      PositionAttention(channels, inner=inner),
                                      conv_bn_relu(channels, channels))
        self.channel = nn.Sequential(conv_bn_relu(in_channels, channels),
                                     ChannelAttention(channels),
                                     conv_bn_relu(channels, channels))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def features(self, c5: torch.Tensor) -> torch.Tensor:
        """The features fed to the classifier (before dropout): the sum of the two branches."""
        return self.position(c5) + self.channel(c5)                      # (B, channels, H, W)

    def forward(self, c5: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(c5)))


class AsymmetricNonLocalHead(nn.Module):
    """ANN's head (Zhu et al., arXiv 1908.07678): AFNB fuses c4 into c5, a 3x3 conv
    ``C5 -> channels``, APNB, dropout and a 1x1 classifier. No concatenation with c5 after the
    context (AFNB concatenates c5 inside).

    Args:
        in_channels, low_channels: channels of c5 and c4.
        num_classes: output classes.
        channels: width after the 3x3 conv (512).
        dropout: dropout before the classifier.
        key_channels, value_channels: widths inside AFNB and APNB (256 in the paper).
        sizes: pyramid sampling grids (1, 3, 6, 8).
    """

    uses_c4 = True

    def __init__(self, in_channels: int, low_channels: int, num_classes: int, *, channels: int = 512,
                 dropout: float = 0.1, key_channels: int = 256, value_channels: int = 256,
                 sizes: Sequence[int] = PYRAMID_SIZES):
        super().__init__()
        widths = dict(key_channels=key_channels, value_channels=value_channels, sizes=sizes)
        self.fusion = AsymmetricFusion(in_channels, low_channels, **widths)
        self.conv_in = conv_bn_relu(in_channels, channels)
        self.context = AsymmetricNonLocal(channels, **widths)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def features(self, c5: torch.Tensor, c4: torch.Tensor) -> torch.Tensor:
        """The features fed to the classifier (before dropout)."""
        return self.context(self.conv_in(self.fusion(c5, c4)))          # (B, channels, H, W)

    def forward(self, c5: torch.Tensor, c4: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(c5, c4)))


HEADS = (None, "glore", "nl", "snl", "gc", "ccnet", "danet", "ann")
# heads with a structure of their own (GCNet Table 13); the others are a ContextHead
OWN_HEADS = {"danet": DualAttentionHead, "ann": AsymmetricNonLocalHead}

# the earlier table of the heads' block options, now the "segmentation" setting of BLOCK_TABLE
_DEFAULT_BLOCK_KWARGS = {None: {}, "glore": {"mid": None}, "nl": {}, "snl": {}, "gc": {"ratio": 1 / 4},
                         "ccnet": {"recurrence": 2}}


def __getattr__(name: str):
    if name == "DEFAULT_BLOCK_KWARGS":
        deprecated("glore.models.segmentation_heads.DEFAULT_BLOCK_KWARGS",
                   "glore.models.placement.block_options(block, channels, settings=('segmentation',))")
        return _DEFAULT_BLOCK_KWARGS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# GCNet's and CCNet's heads concatenate the context output with c5; the GloRe paper's head does not.
DEFAULT_CONCAT_INPUT = {None: False, "glore": False, "nl": True, "snl": True, "gc": True, "ccnet": True}


class FCNHead(nn.Module):
    """FCN head: 3x3 conv-BN-ReLU, dropout, 1x1 classifier (the auxiliary head on res4)."""

    def __init__(self, in_channels: int, num_classes: int, *, channels: int = 256, dropout: float = 0.1):
        super().__init__()
        self.conv = conv_bn_relu(in_channels, channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.conv(x)))


class ContextHead(nn.Module):
    """Context head: ``conv_in`` -> context blocks -> ``conv_out`` [-> concat c5 -> ``conv_cat``] -> cls.

    Args:
        in_channels: channels of the backbone's last feature map (c5).
        num_classes: output classes.
        block: ``None`` (plain FCN head), ``"glore"``, ``"nl"``, ``"snl"``, ``"gc"`` or ``"ccnet"``
            (:class:`glore.nn.CrissCrossAttention`, recurrence 2).
        depth: number of context blocks stacked between the two adaptive convs (``units=``, its
            earlier name, works for one release with a ``FutureWarning``).
        channels: width of the adaptive convs (512 in both papers).
        concat_input: concatenate c5 with the context output, then a 3x3 conv (GCNet/CCNet head);
            ``None`` picks the paper's choice for ``block`` (on for nl/snl/gc/ccnet, off for glore/None).
        dropout: dropout before the classifier.
        block_kwargs: options of the context blocks, over the ``"segmentation"`` defaults of
            :data:`glore.models.placement.BLOCK_TABLE` (GC: ratio 1/4).
    """

    uses_c4 = False

    def __init__(self, in_channels: int, num_classes: int, *, block: str | None = "glore", depth: int = 1,
                 channels: int = 512, concat_input: bool | None = None, dropout: float = 0.1,
                 block_kwargs: Mapping | None = None, units: int | None = None):
        super().__init__()
        if units is not None:
            deprecated(f"ContextHead(units={units!r})", f"ContextHead(depth={units!r})")
            depth = units
        block = check_head(block)
        if block in OWN_HEADS:
            raise ArgumentError(f"ContextHead takes the blocks {HEADS[:6]}; {block!r} is a head of its own "
                                f"({OWN_HEADS[block].__name__})")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ArgumentError(f"head_depth must be a non-negative integer, got {depth!r}")
        if block is None and depth not in (0, 1):
            raise ArgumentError(f"head=None (plain FCN) takes no context blocks, got head_depth={depth}")
        self.block_name = block
        self.concat_input = DEFAULT_CONCAT_INPUT[block] if concat_input is None else bool(concat_input)
        self.conv_in = conv_bn_relu(in_channels, channels)
        blocks = [] if block is None else [_context_block(block, channels, block_kwargs) for _ in range(depth)]
        self.context = nn.Sequential(*blocks)
        self.conv_out = conv_bn_relu(channels, channels)
        self.conv_cat = conv_bn_relu(in_channels + channels, channels) if self.concat_input else None
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def features(self, c5: torch.Tensor) -> torch.Tensor:
        """The features fed to the classifier (before dropout)."""
        x = self.conv_out(self.context(self.conv_in(c5)))
        if self.conv_cat is not None:
            x = self.conv_cat(torch.cat([c5, x], dim=1))
        return x

    def forward(self, c5: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(c5)))


def _context_block(name: str, channels: int, block_kwargs: Mapping | None) -> nn.Module:
    if name == "ccnet":
        try:
            return CrissCrossAttention(channels, **dict(block_kwargs or {}))
        except TypeError as exc:
            raise ArgumentError(f"bad head_kwargs for CrissCrossAttention (inner, recurrence, zero_init): "
                                f"{exc}") from None
    return create_block(name, channels, **block_options(name, channels, block_kwargs, ("segmentation",)))


def check_head(head):
    """``head`` lower-cased, ``"none"`` / ``"fcn"`` / ``""`` as ``None``; an unknown head is refused."""
    return block_name(head, HEADS, what="head", aliases=("fcn",))


def own_head(name: str, c4_channels: int, c5_channels: int, num_classes: int, *, depth, channels, dropout,
             concat_input, head_kwargs) -> nn.Module:
    if depth != 1 or concat_input:
        raise ArgumentError(f"head={name!r} has one attention module and no c5 concatenation option; got "
                            f"head_depth={depth!r}, concat_input={concat_input!r}")
    cls, kwargs = OWN_HEADS[name], dict(head_kwargs or {})
    low = (c4_channels,) if cls.uses_c4 else ()
    try:
        return cls(c5_channels, *low, num_classes, channels=channels, dropout=dropout, **kwargs)
    except TypeError as exc:
        raise ArgumentError(f"bad head_kwargs for {cls.__name__}: {exc}") from None
