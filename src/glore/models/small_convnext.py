"""A small ConvNeXt-style network for ``distant-digits`` that trains in the demo's recipe.

timm's ConvNeXt stages (two blocks of a 7x7 depthwise conv, a norm and a 4x MLP with layer scale,
widths 32, 48, 64, 96) after the demo network's stem, with three changes from timm's ConvNeXt-Atto
layout, each of which the network needs on this task (``docs/demo.md``, measured with
``benchmarks/convnext_digits.py``):

- the demo network's stem (5x5 / 2, 3x3, 3x3 / 2 conv-BN-ReLU, receptive field 13, stride 4)
  instead of the 4x4 / 4 patchify conv and LayerNorm: on a canvas that is blank almost everywhere a
  LayerNorm over the channels of a blank patch divides by ``sqrt(eps)``;
- BatchNorm in place of every LayerNorm (``norm_layer="batchnorm2d"``, with the MLP as 1x1 convs);
- output stride 8 (``output_stride=8``: the last two stages dilated instead of downsampling), so the
  last stage is 6x6 for a 48x48 canvas, not 1x1 from a 2x2 window of a 3x3 map.

Blocks go in by the placement of :func:`glore.models.create_model` (``units={"stages.0": [2]}``:
after the last block of the 12x12 stage).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from .factory import create_model
from .layers import conv_bn_relu


def distant_digits_convnext(*, block: str | None = None, units=None, position: str | None = None,
                            num_classes: int = 10, in_chans: int = 1, depths: Sequence[int] = (2, 2, 2, 2),
                            dims: Sequence[int] = (32, 48, 64, 96), block_kwargs: Mapping | None = None) -> nn.Module:
    """The network described in this module; ``block=None`` is the baseline. ``block``, ``units``,
    ``position`` and ``block_kwargs`` (the block's options: ``mid``, ``ratio``, ...) as
    :func:`create_model` takes them."""
    model = create_model("convnext_atto", depths=list(depths), dims=list(dims), in_chans=in_chans,
                         num_classes=num_classes, norm_layer="batchnorm2d", conv_mlp=True, output_stride=8,
                         block=block, units=_plain(units), position=position, block_kwargs=dict(block_kwargs or {}))
    width = dims[0]
    model.stem = nn.Sequential(                      # receptive fields 5 (stride 2), 9, 13 (stride 4)
        conv_bn_relu(in_chans, width // 2, 5, stride=2),
        conv_bn_relu(width // 2, width, 3),
        conv_bn_relu(width, width, 3, stride=2),
    )
    return model


def _plain(units):
    """Config files give mappings and lists; ``create_model`` takes them as such."""
    return dict(units) if isinstance(units, Mapping) else units
