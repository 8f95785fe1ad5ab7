"""The attention heads GCNet compares with in its Cityscapes table (GCNet Table 13): DANet's dual
attention head and ANN's asymmetric non-local head. (CCNet's head is a
:class:`glore.models.segmentation.ContextHead` with a criss-cross attention block.)"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn import AsymmetricFusion, AsymmetricNonLocal, ChannelAttention, PositionAttention
from ..nn.asymmetric_non_local import PYRAMID_SIZES
from .layers import conv_bn_relu


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
