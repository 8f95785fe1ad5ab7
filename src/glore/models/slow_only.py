"""Slow-only 3D ResNets ("SlowFast Networks for Video Recognition", Feichtenhofer et al., arXiv
1812.03982, Table 1: the Slow pathway alone), the video backbone of the "Global Context Networks" paper
(Cao et al., arXiv 2012.13375, Tables 10-11).

The network is ResNet-50 (or -101) with 3D kernels and no temporal downsampling anywhere:

- stem: ``conv1`` 1x7x7, 64 channels, stride (1, 2, 2), BN, ReLU, max-pool (1, 3, 3) stride (1, 2, 2);
- four stages of bottlenecks (widths 64, 128, 256, 512, outputs 4x that): the first conv has temporal
  kernel 1 in res2-res3 and 3 in res4-res5 (``TEMPORAL_KERNELS``), the 1x3x3 conv carries the stage's
  spatial stride (as in torchvision's, timm's and SlowFast's ResNets), and the first block of a stage has
  a ``1x1x1 conv-BN`` projection shortcut;
- head: global average pooling, dropout 0.5, linear.

Parameter names are those of timm's and torchvision's 2D ResNets (``conv1``, ``layer3.0.conv1``,
``layer3.0.downsample.0``, ``fc``), so a 2D ImageNet state dict inflates name by name
(:func:`inflate_state_dict`). Blocks go in with the library's placement vocabulary
(:func:`glore.models.insert_blocks`: ``block=``, ``units=``, ``position=``, ``block_kwargs=``); the GCNet
paper's Kinetics rows are ``units=(2, 3)`` (the NLNet places: res3 after blocks 1, 3, res4 after blocks
1, 3, 5) and ``units="all"`` (every block of res3-res5).
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Mapping, Sequence

import timm
import torch
from torch import nn

from glore.checkpoint import load_checkpoint, read_state_dict
from glore.errors import ArgumentError, ArgumentTypeError
from .placement import parse_placement
from .video_inflation import INFLATION_METHODS, InflationReport, inflate_kernel, inflate_state_dict

__all__ = [
    "Bottleneck3d", "SlowOnlyResNet", "slow_only_r50", "slow_only_r101", "create_slow_only",
    "inflate_state_dict", "SLOW_ONLY_MODELS", "INFLATION_METHODS",
    "InflationReport", "inflate_kernel",            # defined in .video_inflation, importable from here too
]

STAGE_WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
# temporal kernel of every bottleneck's first conv, res2..res5 (SlowFast Table 1, Slow pathway)
TEMPORAL_KERNELS = (1, 1, 3, 3)
DEPTHS = {"slow_only_r50": (3, 4, 6, 3), "slow_only_r101": (3, 4, 23, 3)}
# the 2D timm ResNet each one inflates from
SOURCES_2D = {"slow_only_r50": "resnet50", "slow_only_r101": "resnet101"}


class Bottleneck3d(nn.Module):
    """ResNet bottleneck with a ``kt x 1 x 1`` first conv, a ``1x3x3`` strided conv and a ``1x1x1`` conv.

    The attribute names are torchvision's ``Bottleneck``'s, and it holds the two slots of
    :mod:`glore.models.hosts` (``after_1x1``, ``after_add``; ``nn.Identity`` until a block is inserted).

    Args:
        in_channels: input channels.
        width: bottleneck width; the output has ``4 * width`` channels.
        temporal_kernel: temporal size of the first conv (1 or 3), padded to keep the frame count.
        stride: spatial stride of the block (time is never strided).
        stride_1x1: put the stride in the first conv (the original ResNet's place) instead of the 1x3x3 conv.
        downsample: the projection shortcut, or None for the identity.
    """

    def __init__(self, in_channels: int, width: int, *, temporal_kernel: int = 1, stride: int = 1,
                 stride_1x1: bool = False, downsample: nn.Module | None = None):
        super().__init__()
        kt = temporal_kernel
        stride_a, stride_b = (stride, 1) if stride_1x1 else (1, stride)
        self.conv1 = nn.Conv3d(in_channels, width, (kt, 1, 1), stride=(1, stride_a, stride_a),
                               padding=(kt // 2, 0, 0), bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.conv2 = nn.Conv3d(width, width, (1, 3, 3), stride=(1, stride_b, stride_b), padding=(0, 1, 1),
                               bias=False)
        self.bn2 = nn.BatchNorm3d(width)
        self.conv3 = nn.Conv3d(width, width * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(width * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.after_1x1 = nn.Identity()
        self.after_add = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))               # (B, width, T, H / s, W / s)
        out = self.after_1x1(self.bn3(self.conv3(out)))          # (B, 4 width, T, H / s, W / s)
        return self.after_add(self.relu(out + shortcut))


class SlowOnlyResNet(nn.Module):
    """The Slow pathway of SlowFast as a network of its own (see the module docstring).

    Args:
        depths: blocks per stage, ``(3, 4, 6, 3)`` for ResNet-50, ``(3, 4, 23, 3)`` for ResNet-101.
        num_classes: classifier outputs (400 for Kinetics-400).
        in_channels: input channels (3 for RGB).
        width_mult: multiplies the stem and stage widths (reduced models for tests and small data).
        temporal_kernels: temporal kernel of the first conv of every block of res2..res5.
        stride_1x1: a stage's spatial stride in the first conv of its first block (the original
            ResNet, SlowFast's ``STRIDE_1X1``) instead of in the 1x3x3 conv (timm's, torchvision's and
            SlowFast's default). The parameters are the same; the multiply-adds are fewer.
        dropout: dropout before the classifier (0.5 in SlowFast).
    """

    def __init__(self, depths: Sequence[int], *, num_classes: int = 400, in_channels: int = 3,
                 width_mult: float = 1.0, temporal_kernels: Sequence[int] = TEMPORAL_KERNELS,
                 stride_1x1: bool = False, dropout: float = 0.5):
        super().__init__()
        if len(depths) != 4 or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in depths):
            raise ArgumentError(f"depths must be 4 positive integers, got {depths!r}")
        if len(temporal_kernels) != 4 or any(k not in (1, 3) for k in temporal_kernels):
            raise ArgumentError(f"temporal_kernels must be 4 values among 1 and 3, got {temporal_kernels!r}")
        if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or width_mult <= 0:
            raise ArgumentError(f"width_mult must be a positive number, got {width_mult!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes <= 0:
            raise ArgumentError(f"num_classes must be a positive integer, got {num_classes!r}")
        if not isinstance(stride_1x1, bool):
            raise ArgumentTypeError(f"stride_1x1 must be true or false, got {stride_1x1!r}")
        self.depths, self.num_classes = tuple(depths), num_classes

        def scaled(c: int) -> int:
            return max(1, int(round(c * width_mult)))

        channels = scaled(64)
        self.conv1 = nn.Conv3d(in_channels, channels, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        for s, (depth, base, kt) in enumerate(zip(depths, STAGE_WIDTHS, temporal_kernels)):
            width, stride = scaled(base), 1 if s == 0 else 2
            blocks = []
            for i in range(depth):
                downsample = None
                if i == 0:
                    downsample = nn.Sequential(
                        nn.Conv3d(channels, width * EXPANSION, 1, stride=(1, stride, stride), bias=False),
                        nn.BatchNorm3d(width * EXPANSION))
                blocks.append(Bottleneck3d(channels, width, temporal_kernel=kt, stride=stride if i == 0 else 1,
                                           stride_1x1=stride_1x1, downsample=downsample))
                channels = width * EXPANSION
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features before pooling: ``(B, num_features, T, H / 32, W / 32)``."""
        if not isinstance(x, torch.Tensor) or x.dim() != 5:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ArgumentError(f"{type(self).__name__} expects clips (B, C, T, H, W), got {shape}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))         # (B, 64, T, H / 4, W / 4)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 2048, T, H / 32, W / 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)``."""
        x = self.avgpool(self.forward_features(x)).flatten(1)        # (B, 2048)
        return self.fc(self.dropout(x))


# ----------------------------------------------------------------------------- inflation

def _state_dict_2d(name: str, pretrained) -> tuple[dict[str, torch.Tensor], str]:
    """The 2D ImageNet weights to inflate: timm's ``resnet50`` / ``resnet101`` through timm's pretrained
    mechanism (``pretrained=True``: hub or cache), or a local file (a state dict or a checkpoint)."""
    if pretrained is True:
        return timm.create_model(SOURCES_2D[name], pretrained=True).state_dict(), f"timm {SOURCES_2D[name]}"
    return read_state_dict(pretrained), os.fspath(pretrained)


# ----------------------------------------------------------------------------- builders

def create_slow_only(name: str, *, block: str | None = None, units=None, position: str | None = None,
                     block_kwargs: Mapping | None = None, num_classes: int = 400,
                     pretrained: bool | str | os.PathLike = False, inflation: str = "mean",
                     checkpoint: str | os.PathLike | None = None, **kwargs) -> SlowOnlyResNet:
    """Build ``slow_only_r50`` or ``slow_only_r101`` with ``block`` units, optionally inflated or loaded.

    Args:
        name: ``slow_only_r50`` or ``slow_only_r101``.
        block: ``nl``, ``snl``, ``gc``, ``glore``, ``se`` or None (the baseline); on video NL pools its
            keys and values 2x2 in space and GC has ratio 1/4 unless ``block_kwargs`` say otherwise.
        units: where, as for :func:`glore.models.create_model`: ``(2, 3)`` = the GCNet paper's 5 blocks
            (res3 after blocks 1, 3; res4 after blocks 1, 3, 5), ``"all"`` = every block of res3-res5,
            ``{"res4": [2, 4]}``, ... Required with ``block``.
        position: ``after_add`` or ``after_1x1`` (default: ``after_add`` for NL, SNL and GloRe,
            ``after_1x1`` for GC and SE, as in GCNet).
        block_kwargs: options of every inserted block.
        num_classes: classifier outputs.
        pretrained: inflate 2D ImageNet weights: ``True`` = timm's ``resnet50`` / ``resnet101``
            through timm's pretrained mechanism (hub or cache), or a local 2D state dict file with
            timm's / torchvision's names. The blocks keep their identity initialisation; a classifier of
            another size stays as initialised. What did not map is in ``model.inflation_report``.
        inflation: ``mean`` (default; I3D's inflation as SlowFast's code and NLNet use: a clip of
            identical frames gives the 2D response away from the temporal borders) or ``center``
            (exactly the 2D network on every frame, borders included).
        checkpoint: a full checkpoint of this 3D model (strict, blocks included).
        **kwargs: :class:`SlowOnlyResNet` options (``width_mult``, ``in_channels``, ``dropout``,
            ``stride_1x1``, ``temporal_kernels``).
    """
    from .insert import inserted_blocks, place_blocks  # insert -> hosts -> slow_only: imported on use

    if name not in DEPTHS:
        raise ArgumentError(f"unknown Slow-only model {name!r}; expected one of {sorted(DEPTHS)}")
    if pretrained not in (False, None) and checkpoint is not None:
        raise ArgumentError(f"give pretrained= (2D weights to inflate) or checkpoint= (a 3D model), not both; "
                            f"got pretrained={pretrained!r}, checkpoint={checkpoint!r}")
    if not (pretrained in (False, None, True) or isinstance(pretrained, (str, os.PathLike))):
        raise ArgumentTypeError(f"pretrained must be True, False or a 2D weights file, got {pretrained!r}")
    if inflation not in INFLATION_METHODS:
        raise ArgumentError(f"inflation must be one of {list(INFLATION_METHODS)}, got {inflation!r}")
    placement = parse_placement(block, units, position, block_kwargs, example="units=[2, 3] or 'all'")
    unknown = sorted(set(kwargs) - set(inspect.signature(SlowOnlyResNet).parameters) - {"depths"})
    if unknown:
        accepted = sorted(set(inspect.signature(create_slow_only).parameters) - {"name", "kwargs"}
                          | set(inspect.signature(SlowOnlyResNet).parameters) - {"depths"})
        raise ArgumentTypeError(f"{name} does not take the keyword(s) {unknown}; it takes {accepted}")
    model = SlowOnlyResNet(DEPTHS[name], num_classes=num_classes, **kwargs)
    if placement is not None:
        place_blocks(model, placement, settings=("video",))
    if pretrained not in (False, None):
        state, source = _state_dict_2d(name, pretrained)
        inflated, report = inflate_state_dict(state, model, method=inflation)
        model.load_state_dict(inflated)
        blocks = tuple(f"{n}." for n in inserted_blocks(model))
        if report.unexpected or report.mismatched or any(not n.startswith(blocks) for n in report.missing):
            warnings.warn(f"inflating {source}: names that do not map: {report}", stacklevel=2)
        model.inflation_report = report
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, strict=True)
    return model


def slow_only_r50(**kwargs) -> SlowOnlyResNet:
    """Slow-only ResNet-50 8x8 (SlowFast Table 1; GCNet Table 10); see :func:`create_slow_only`."""
    return create_slow_only("slow_only_r50", **kwargs)


def slow_only_r101(**kwargs) -> SlowOnlyResNet:
    """Slow-only ResNet-101 (the same layout with 23 res4 blocks); see :func:`create_slow_only`."""
    return create_slow_only("slow_only_r101", **kwargs)


SLOW_ONLY_MODELS = {"slow_only_r50": slow_only_r50, "slow_only_r101": slow_only_r101}
