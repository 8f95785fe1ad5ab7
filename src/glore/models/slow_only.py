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

import torch
from torch import nn

from glore.errors import ArgumentError, ArgumentTypeError
from .video import InflationReport

__all__ = [
    "Bottleneck3d", "SlowOnlyResNet", "slow_only_r50", "slow_only_r101", "create_slow_only",
    "inflate_state_dict", "SLOW_ONLY_MODELS", "INFLATION_METHODS",
]

STAGE_WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
# temporal kernel of every bottleneck's first conv, res2..res5 (SlowFast Table 1, Slow pathway)
TEMPORAL_KERNELS = (1, 1, 3, 3)
DEPTHS = {"slow_only_r50": (3, 4, 6, 3), "slow_only_r101": (3, 4, 23, 3)}
# the 2D timm ResNet each one inflates from
SOURCES_2D = {"slow_only_r50": "resnet50", "slow_only_r101": "resnet101"}
# block options on video (GCNet §5.3: GC ratio 1/4 on Kinetics; NLNet's video blocks pool keys and
# values 2x2 in space)
VIDEO_BLOCK_DEFAULTS = {"gc": {"ratio": 1 / 4}, "nl": {"sub_sample": True}}
INFLATION_METHODS = ("mean", "center")


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

def inflate_kernel(kernel_2d: torch.Tensor, t: int, method: str) -> torch.Tensor:
    """A 2D kernel ``(out, in, k, k)`` as a 3D one ``(out, in, t, k, k)``.

    ``mean``: the 2D kernel in every one of the ``t`` taps, divided by ``t`` (I3D's inflation, which
    NLNet and SlowFast use); ``center``: the 2D kernel in the centre tap, zeros in the others.
    """
    if method == "mean":
        return kernel_2d.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
    inflated = kernel_2d.new_zeros((*kernel_2d.shape[:2], t, *kernel_2d.shape[2:]))
    inflated[:, :, t // 2] = kernel_2d
    return inflated


def inflate_state_dict(state_2d: Mapping[str, torch.Tensor], model: nn.Module, *, method: str = "mean"
                       ) -> tuple[dict[str, torch.Tensor], InflationReport]:
    """The weights of a 2D ResNet state dict (timm's or torchvision's names) inflated into ``model``.

    Kernels ``(out, in, k, k)`` become ``(out, in, t, k, k)`` by :func:`inflate_kernel`; tensors of
    equal shape (BN, the classifier when the class counts agree) are copied. The model's entries
    without a counterpart (inserted blocks) keep their values and are listed in ``report.missing``;
    names the model lacks go to ``report.unexpected``, other shapes (a 1000-class classifier) to
    ``report.mismatched``.
    """
    if method not in INFLATION_METHODS:
        raise ArgumentError(f"inflation must be one of {list(INFLATION_METHODS)}, got {method!r}")
    target = model.state_dict()
    report, result = InflationReport(), {}
    for name, value in target.items():
        source = state_2d.get(name)
        if source is None:
            report.missing.append(name)
            result[name] = value
        elif source.shape == value.shape:
            result[name] = source.detach().clone().to(value.dtype)
            report.copied.append(name)
        elif (source.dim() == 4 and value.dim() == 5 and source.shape[:2] == value.shape[:2]
              and source.shape[2:] == value.shape[3:]):
            result[name] = inflate_kernel(source.detach(), value.shape[2], method).to(value.dtype)
            report.inflated.append(name)
        else:
            report.mismatched.append(f"{name} (2D {tuple(source.shape)} -> 3D {tuple(value.shape)})")
            result[name] = value
    report.unexpected = sorted(set(state_2d) - set(target))
    return result, report


def _state_dict_2d(name: str, pretrained) -> tuple[dict[str, torch.Tensor], str]:
    """The 2D ImageNet weights to inflate: timm's ``resnet50`` / ``resnet101`` through timm's pretrained
    mechanism (``pretrained=True``: hub or cache), or a local file (a state dict or a checkpoint)."""
    if pretrained is True:
        import timm

        return timm.create_model(SOURCES_2D[name], pretrained=True).state_dict(), f"timm {SOURCES_2D[name]}"
    from glore.checkpoint import read_state_dict

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
    from .insert import insert_blocks, inserted_blocks

    if name not in DEPTHS:
        raise ArgumentError(f"unknown Slow-only model {name!r}; expected one of {sorted(DEPTHS)}")
    if pretrained not in (False, None) and checkpoint is not None:
        raise ArgumentError(f"give pretrained= (2D weights to inflate) or checkpoint= (a 3D model), not both; "
                            f"got pretrained={pretrained!r}, checkpoint={checkpoint!r}")
    if not (pretrained in (False, None, True) or isinstance(pretrained, (str, os.PathLike))):
        raise ArgumentTypeError(f"pretrained must be True, False or a 2D weights file, got {pretrained!r}")
    if inflation not in INFLATION_METHODS:
        raise ArgumentError(f"inflation must be one of {list(INFLATION_METHODS)}, got {inflation!r}")
    block_kwargs = dict(block_kwargs or {})
    if block is None and (units is not None or position is not None or block_kwargs):
        raise ArgumentError(f"units, position and block_kwargs need a block; got block=None with units={units!r}, "
                            f"position={position!r}, block_kwargs {sorted(block_kwargs)}")
    if block is not None and units is None:
        raise ArgumentError(f"block={block!r} needs units, e.g. units=[2, 3] or 'all'; got None")
    unknown = sorted(set(kwargs) - set(inspect.signature(SlowOnlyResNet).parameters) - {"depths"})
    if unknown:
        accepted = sorted(set(inspect.signature(create_slow_only).parameters) - {"name", "kwargs"}
                          | set(inspect.signature(SlowOnlyResNet).parameters) - {"depths"})
        raise ArgumentTypeError(f"{name} does not take the keyword(s) {unknown}; it takes {accepted}")
    model = SlowOnlyResNet(DEPTHS[name], num_classes=num_classes, **kwargs)
    if block is not None:
        if not isinstance(block, str):
            raise ArgumentTypeError(f"block must be a block name or None, got {block!r}")
        block_kwargs = {**VIDEO_BLOCK_DEFAULTS.get(block.lower(), {}), **block_kwargs}
        insert_blocks(model, block=block, units=units, position=position, **block_kwargs)
    if pretrained not in (False, None):
        state, source = _state_dict_2d(name, pretrained)
        inflated, report = inflate_state_dict(state, model, method=inflation)
        model.load_state_dict(inflated)
        blocks = tuple(f"{n}." for n in inserted_blocks(model))
        if report.unexpected or report.mismatched or any(not n.startswith(blocks) for n in report.missing):
            warnings.warn(f"inflating {source}: names that do not map: {report}", stacklevel=2)
        model.inflation_report = report
    if checkpoint is not None:
        from glore.checkpoint import load_checkpoint

        load_checkpoint(model, checkpoint, strict=True)
    return model


def slow_only_r50(**kwargs) -> SlowOnlyResNet:
    """Slow-only ResNet-50 8x8 (SlowFast Table 1; GCNet Table 10); see :func:`create_slow_only`."""
    return create_slow_only("slow_only_r50", **kwargs)


def slow_only_r101(**kwargs) -> SlowOnlyResNet:
    """Slow-only ResNet-101 (the same layout with 23 res4 blocks); see :func:`create_slow_only`."""
    return create_slow_only("slow_only_r101", **kwargs)


SLOW_ONLY_MODELS = {"slow_only_r50": slow_only_r50, "slow_only_r101": slow_only_r101}
