"""Small networks for the built-in relational datasets (the ``make demo`` network).

``distant_digits_net`` is a three-conv stem whose receptive field is 13 pixels, one optional global
block (``glore``, ``gc``, ``nl``, ...; built with :func:`glore.nn.create_block`) on the stride-4
feature map, two 1x1 conv layers, global average pooling and a linear classifier. Without a block
(the baseline) nothing after the stem mixes positions before the pooling, so every pooled feature is
a function of one 13x13 window of the input; ``docs/demo.md`` shows why that cannot solve
``distant-digits``/``select``.
"""

from __future__ import annotations

from torch import nn

from glore.errors import ArgumentError
from ..nn import BLOCKS, create_block
from .insert import check_block_kwargs
from .layers import conv_bn_relu

# per-block defaults for the demo network, as a function of its width (overridable by kwargs)
_BLOCK_DEFAULTS = {
    "glore": lambda width: {"mid": width},                # N = width nodes, C_s = 2 * width states
    "gc": lambda width: {"ratio": 1 / 4},                  # GCNet's r = 4 (an 8-wide bottleneck at 32)
    "nl": lambda width: {},                                # inner C/2, embedded gaussian
}


def default_block_kwargs(block: str, width: int) -> dict:
    """The demo network's options for ``block`` at ``width`` (saved with checkpoints so that a later
    change of these defaults cannot silently change what a checkpoint rebuilds)."""
    key = block.lower() if isinstance(block, str) else block
    return _BLOCK_DEFAULTS.get(key, lambda w: {})(width)


def check_arguments(*, num_classes, in_chans, width, block, block_kwargs) -> None:
    """The checks of the demo networks' arguments (the image net here, the clip net in video.py)."""
    for name, value in (("num_classes", num_classes), ("in_chans", in_chans), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ArgumentError(f"{name} must be a positive integer, got {value!r}")
    if width % 4:
        raise ArgumentError(f"width must be a multiple of 4, got {width}")
    if block is None and block_kwargs:
        raise ArgumentError(f"block options {sorted(block_kwargs)} given without a block")


def block_slot(block: str | None, width: int, block_kwargs: dict, **defaults) -> tuple[nn.Module, dict]:
    """The one block of a demo network and its options: ``nn.Identity`` for the baseline, else
    ``block`` at ``width`` with the demo defaults, then ``defaults``, then ``block_kwargs``."""
    if block is None:
        return nn.Identity(), {}
    if isinstance(block, str) and block.lower() in BLOCKS:   # a misspelt option is named, with the accepted ones
        check_block_kwargs(block.lower(), block_kwargs)
    kwargs = {**default_block_kwargs(block, width), **defaults, **block_kwargs}
    return create_block(block, width, **kwargs), kwargs


class DistantDigitsNet(nn.Module):
    """Stem (RF 13, stride 4) -> optional block -> two 1x1 conv layers -> pool -> linear.

    Attributes:
        receptive_field: side of the input window seen by one stem output (13).
        stride: total stride of the stem (4).
    """

    receptive_field = 13
    stride = 4

    def __init__(self, *, block: str | None = None, num_classes: int = 10, in_chans: int = 1,
                 width: int = 32, **block_kwargs):
        super().__init__()
        check_arguments(num_classes=num_classes, in_chans=in_chans, width=width, block=block,
                        block_kwargs=block_kwargs)
        half = width // 2
        # receptive fields 5 (stride 2), 9, 13 (stride 4); the 5x5 stride-2 first conv gives the
        # receptive field of two 3x3 convs (one at stride 2) without a full-resolution feature map
        self.stem = nn.Sequential(
            conv_bn_relu(in_chans, half, 5, stride=2),
            conv_bn_relu(half, width, 3),
            conv_bn_relu(width, width, 3, stride=2),
        )
        self.block, self.block_kwargs = block_slot(block, width, block_kwargs)
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
                       width: int = 32, **block_kwargs) -> DistantDigitsNet:
    """The demo network; ``block=None`` is the baseline (see :class:`DistantDigitsNet`)."""
    return DistantDigitsNet(block=block, num_classes=num_classes, in_chans=in_chans, width=width,
                            **block_kwargs)


def distant_digits_convnext(**kwargs) -> nn.Module:
    """The small ConvNeXt-style network of :mod:`glore.models.small_convnext` (imports timm)."""
    from .small_convnext import distant_digits_convnext as build

    return build(**kwargs)


SMALL_MODELS = {"distant_digits_net": distant_digits_net, "distant_digits_convnext": distant_digits_convnext}
