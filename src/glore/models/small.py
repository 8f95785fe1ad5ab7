"""Small networks for the built-in relational datasets (the ``make demo`` network).

``distant_digits_net`` is a three-conv stem whose receptive field is 13 pixels, one optional global
block (``glore``, ``gc``, ``nl``, ...; built with :func:`glore.nn.create_block`) on the stride-4
feature map, two 1x1 conv layers, global average pooling and a linear classifier. Without a block
(the baseline) nothing after the stem mixes positions before the pooling, so every pooled feature is
a function of one 13x13 window of the input; ``docs/demo.md`` shows why that cannot solve
``distant-digits``/``select``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from glore.errors import ArgumentError
from ..nn import create_block
from .layers import conv_bn_relu
from .placement import block_name, block_options, check_block_kwargs, deprecated
from .small_convnext import distant_digits_convnext

def check_arguments(*, num_classes, in_chans, width) -> None:
    """The checks of the demo networks' arguments (the image net here, the clip net in distant_clips.py)."""
    for name, value in (("num_classes", num_classes), ("in_chans", in_chans), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ArgumentError(f"{name} must be a positive integer, got {value!r}")
    if width % 4:
        raise ArgumentError(f"width must be a multiple of 4, got {width}")


def block_slot(block: str | None, width: int, block_kwargs: Mapping | None, old_block_kwargs: Mapping,
               settings: Sequence[str] = ("demo",), builder: str = "distant_digits_net") -> tuple[nn.Module, dict]:
    """The one block of a demo network and its options: ``nn.Identity`` for the baseline, else
    ``block`` at ``width`` with the options of ``settings`` (:func:`glore.models.placement.block_options`),
    then ``block_kwargs``. Options given as keywords (``old_block_kwargs``) still work for one release."""
    name = block_name(block)
    if old_block_kwargs:
        if name is None:
            raise ArgumentError(f"block options {sorted(old_block_kwargs)} given without a block")
        check_block_kwargs(name, old_block_kwargs)      # a misspelt keyword is named, with no warning first
        deprecated(f"{builder}(..., {', '.join(f'{k}=' for k in old_block_kwargs)})",
                   f"block_kwargs={dict(old_block_kwargs)!r}", stacklevel=5)
        if block_kwargs:
            raise ArgumentError(f"give the block options in block_kwargs only, got block_kwargs={dict(block_kwargs)!r} "
                                f"and the keywords {sorted(old_block_kwargs)}")
        block_kwargs = old_block_kwargs
    block_kwargs = dict(block_kwargs or {})
    if name is None:
        if block_kwargs:
            raise ArgumentError(f"block options {sorted(block_kwargs)} given without a block")
        return nn.Identity(), {}
    check_block_kwargs(name, block_kwargs)       # a misspelt option is named, with the accepted ones
    kwargs = block_options(name, width, block_kwargs, settings)
    return create_block(name, width, **kwargs), kwargs


class DistantDigitsNet(nn.Module):
    """Stem (RF 13, stride 4) -> optional block -> two 1x1 conv layers -> pool -> linear.

    Attributes:
        receptive_field: side of the input window seen by one stem output (13).
        stride: total stride of the stem (4).
    """

    receptive_field = 13
    stride = 4

    def __init__(self, *, block: str | None = None, num_classes: int = 10, in_chans: int = 1,
                 width: int = 32, block_kwargs: Mapping | None = None, **old_block_kwargs):
        super().__init__()
        check_arguments(num_classes=num_classes, in_chans=in_chans, width=width)
        half = width // 2
        # receptive fields 5 (stride 2), 9, 13 (stride 4); the 5x5 stride-2 first conv gives the
        # receptive field of two 3x3 convs (one at stride 2) without a full-resolution feature map
        self.stem = nn.Sequential(
            conv_bn_relu(in_chans, half, 5, stride=2),
            conv_bn_relu(half, width, 3),
            conv_bn_relu(width, width, 3, stride=2),
        )
        self.block, self.block_kwargs = block_slot(block, width, block_kwargs, old_block_kwargs)
        self.block_name = block
        self.head = nn.Sequential(conv_bn_relu(width, 2 * width, 1), conv_bn_relu(2 * width, 2 * width, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward_features(self, x):
        """Features before pooling, ``(B, 2 * width, H / 4, W / 4)``."""
        return self.head(self.block(self.stem(x)))

    def forward(self, x):
        return self.fc(self.pool(self.forward_features(x)).flatten(1))


def distant_digits_net(*, block: str | None = None, num_classes: int = 10, in_chans: int = 1,
                       width: int = 32, block_kwargs: Mapping | None = None, **old_block_kwargs) -> DistantDigitsNet:
    """The demo network; ``block=None`` is the baseline (see :class:`DistantDigitsNet`). ``block_kwargs``
    are the block's options; given as keywords (``mid=16``) they still work for one release."""
    return DistantDigitsNet(block=block, num_classes=num_classes, in_chans=in_chans, width=width,
                            block_kwargs=block_kwargs, **old_block_kwargs)


SMALL_MODELS = {"distant_digits_net": distant_digits_net, "distant_digits_convnext": distant_digits_convnext}
