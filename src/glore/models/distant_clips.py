"""The video demo network of the ``distant-clips`` task: a 3-frame x 13 x 13-pixel stem, an optional
context block, pooling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .small import block_slot, check_arguments

__all__ = ["DistantClipsNet", "distant_clips_net"]


def _conv3d_bn_relu(cin: int, cout: int, kernel: Sequence[int], stride: Sequence[int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, tuple(kernel), tuple(stride), padding=tuple(k // 2 for k in kernel), bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


class DistantClipsNet(nn.Module):
    """Stem (receptive field 3 frames x 13 x 13 pixels) -> optional block -> two 1x1x1 convs -> pool -> linear.

    The video twin of :class:`glore.models.small.DistantDigitsNet` for ``distant-clips``: a first
    ``3x5x5`` conv with stride 2 in time and space (the only conv that mixes frames), then the image
    network's two spatial ``1x3x3`` convs (strides 1, 2). Without a block nothing after the stem mixes
    positions before the pooling, so every pooled feature is a function of one 3-frame x 13 x 13-pixel
    window of the clip.

    Attributes:
        receptive_field: ``(frames, pixels, pixels)`` seen by one stem output: ``(3, 13, 13)``.
        stride: total ``(t, h, w)`` stride of the stem: ``(2, 4, 4)``.
    """

    receptive_field = (3, 13, 13)
    stride = (2, 4, 4)

    def __init__(self, *, block: str | None = None, num_classes: int = 10, in_chans: int = 1,
                 width: int = 16, block_kwargs: Mapping | None = None, **old_block_kwargs):
        super().__init__()
        check_arguments(num_classes=num_classes, in_chans=in_chans, width=width)
        half = width // 2
        # (frames, pixels) receptive fields: (3, 5) stride (2, 2, 2), (3, 9), (3, 13) spatial stride 4
        self.stem = nn.Sequential(
            _conv3d_bn_relu(in_chans, half, (3, 5, 5), (2, 2, 2)),
            _conv3d_bn_relu(half, width, (1, 3, 3), (1, 1, 1)),
            _conv3d_bn_relu(width, width, (1, 3, 3), (1, 2, 2)),
        )
        self.block, self.block_kwargs = block_slot(block, width, block_kwargs, old_block_kwargs,
                                                   settings=("demo", "video"), builder="distant_clips_net")
        self.block_name = block
        self.head = nn.Sequential(_conv3d_bn_relu(width, 2 * width, (1, 1, 1), (1, 1, 1)),
                                  _conv3d_bn_relu(2 * width, 2 * width, (1, 1, 1), (1, 1, 1)))
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features before pooling, ``(B, 2 * width, T / 2, H / 4, W / 4)``."""
        return self.head(self.block(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.forward_features(x)).flatten(1))


def distant_clips_net(*, block: str | None = None, num_classes: int = 10, in_chans: int = 1,
                      width: int = 16, block_kwargs: Mapping | None = None, **old_block_kwargs) -> DistantClipsNet:
    """The video demo network; ``block=None`` is the baseline (see :class:`DistantClipsNet`). ``block_kwargs``
    are the block's options; given as keywords they still work for one release."""
    return DistantClipsNet(block=block, num_classes=num_classes, in_chans=in_chans, width=width,
                           block_kwargs=block_kwargs, **old_block_kwargs)
