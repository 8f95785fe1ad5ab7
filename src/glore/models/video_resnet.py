"""The pre-activation 3D ResNet "lite" of the GloRe authors' video release, and its 2D twin
("Graph-Based Global Reasoning Networks", arXiv 1811.12814, §4.4); :mod:`glore.models.video` builds
the named models from it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from glore.errors import ArgumentError
from ..nn import create_block
from .placement import block_name, block_options, deprecated, parse_placement, units_from_positions

__all__ = ["VideoResNet", "PreActBottleneck", "PreActProjection", "ResStage", "DEFAULT_UNITS",
           "RESNET101_UNITS", "STAGE_WIDTHS", "EXPANSION", "BN_EPS", "video_units"]

STAGE_WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
STAGES = ("res2", "res3", "res4", "res5")
# the blocks after which a context unit sits (1-based): res3 blocks 1, 3; res4 blocks 1, 3, 5
DEFAULT_UNITS = {"res3": (1, 3), "res4": (1, 3, 5)}
# the authors' ResNet-101-3D (GloRe paper, Table 5): res4 units after blocks 6, 12 and 18 of 23
RESNET101_UNITS = {"res3": (1, 3), "res4": (6, 12, 18)}
BN_EPS = 1e-4                    # every BatchNorm of the authors' release

# the earlier spelling: {"layerK": 0-based block indices}
_OLD_NAMES = {"DEFAULT_POSITIONS": ("DEFAULT_UNITS", {"layer2": (0, 2), "layer3": (0, 2, 4)}),
              "RESNET101_POSITIONS": ("RESNET101_UNITS", {"layer2": (0, 2), "layer3": (5, 11, 17)})}


def __getattr__(name: str):
    if name in _OLD_NAMES:
        new, value = _OLD_NAMES[name]
        deprecated(f"{name} (0-based indices under layer1..layer4)", f"{new} (1-based indices under res2..res5)")
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def video_units(units, positions, block, default):
    """``units`` for a video network: the earlier ``positions`` translated, else ``default`` when a
    block is asked for and no units are given."""
    if positions is not None:
        if units is not None:
            raise ArgumentError(f"give units= or the earlier positions=, not both; got units={units!r}, "
                                f"positions={positions!r}")
        units = units_from_positions(positions)
        return units if block_name(block) is not None else None     # ignored without a block, as before
    return default if units is None and block_name(block) is not None else units


def _temporal_kernel(stage: int, index: int) -> int:
    """Temporal kernel of the first conv of block ``index`` (0-based) of stage ``stage`` (0 = res2)."""
    if stage == 0:
        return 3
    if stage == 1:
        return 3 if index in (0, 2) else 1
    if stage == 2:
        return 3 if index % 2 == 0 else 1
    return 3 if index == 1 else 1


def _conv(dims: int, cin: int, cout: int, kernel: Sequence[int], stride: Sequence[int] = (1, 1, 1),
          padding: Sequence[int] = (0, 0, 0)) -> nn.Module:
    """A bias-free conv given 3D ``(t, h, w)`` geometry; ``dims=2`` drops the temporal entries."""
    if dims == 3:
        return nn.Conv3d(cin, cout, tuple(kernel), stride=tuple(stride), padding=tuple(padding), bias=False)
    return nn.Conv2d(cin, cout, tuple(kernel[1:]), stride=tuple(stride[1:]), padding=tuple(padding[1:]),
                     bias=False)


def _norm(dims: int, channels: int) -> nn.Module:
    return nn.BatchNorm3d(channels, eps=BN_EPS) if dims == 3 else nn.BatchNorm2d(channels, eps=BN_EPS)


class PreActProjection(nn.Module):
    """Projection shortcut ``BN-ReLU-1x1x1 conv`` with the stage's stride."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: Sequence[int], dims: int = 3):
        super().__init__()
        self.norm = _norm(dims, in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = _conv(dims, in_channels, out_channels, (1, 1, 1), stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.relu(self.norm(x)))


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: ``(BN-ReLU-conv)`` kt x1x1, 1x3x3 (strided), 1x1x1, plus a shortcut.

    Args:
        in_channels: input channels.
        width: bottleneck width; the output has ``4 * width`` channels.
        temporal_kernel: temporal size of the first conv (1 or 3); ignored when ``dims=2``.
        stride: ``(t, h, w)`` stride of the 3x3 conv and of the projection shortcut.
        projection: use a ``BN-ReLU-1x1x1 conv`` projection shortcut (first block of a stage).
        dims: 3 for video, 2 for the 2D twin.
    """

    def __init__(self, in_channels: int, width: int, *, temporal_kernel: int = 1,
                 stride: Sequence[int] = (1, 1, 1), projection: bool = False, dims: int = 3):
        super().__init__()
        out_channels = width * EXPANSION
        kt = temporal_kernel
        self.bn1 = _norm(dims, in_channels)
        self.conv1 = _conv(dims, in_channels, width, (kt, 1, 1), padding=(kt // 2, 0, 0))
        self.bn2 = _norm(dims, width)
        self.conv2 = _conv(dims, width, width, (1, 3, 3), stride, padding=(0, 1, 1))
        self.bn3 = _norm(dims, width)
        self.conv3 = _conv(dims, width, out_channels, (1, 1, 1))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (PreActProjection(in_channels, out_channels, stride=stride, dims=dims)
                           if projection else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + shortcut


class ResStage(nn.Module):
    """A residual stage: ``blocks[i]``, each optionally followed by ``units[str(i)]``."""

    def __init__(self, blocks: Sequence[nn.Module], units: Mapping[int, nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.units = nn.ModuleDict({str(i): unit for i, unit in sorted(units.items())})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            key = str(i)
            if key in self.units:
                x = self.units[key](x)
        return x


class VideoResNet(nn.Module):
    """Pre-activation ResNet "lite" (3D for video, or its 2D twin) with optional context units.

    Args:
        depths: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        block: context unit name for :func:`glore.nn.create_block` (``glore``, ``nl``, ``gc``, ``snl``,
            ``se``) or ``None`` for the baseline.
        num_classes: output classes.
        units: after which blocks a unit sits, as for :func:`glore.models.create_model`
            (``{"res3": [1, 3], "res4": [1, 3, 5]}``, 1-based; ``(n, m)``; ``"all"``); defaults to
            :data:`DEFAULT_UNITS`, res3 blocks 1, 3 and res4 blocks 1, 3, 5. The earlier
            ``positions={"layerK": (0-based indices,)}`` works for one release, with a ``FutureWarning``.
        position: ``after_add`` (the units sit after a block; the only slot here) or ``None``.
        block_kwargs: options of every unit, over :data:`glore.models.placement.BLOCK_TABLE`'s video
            defaults (GloRe ``mid`` = the stage's bottleneck width, GC ``ratio=1/4``, NL ``sub_sample=True``).
        width_mult: multiplies the stem and stage widths (reduced models for tests and small data).
        stem_channels: channels of ``conv1`` before ``width_mult``.
        in_channels: input channels (3 for RGB).
        dropout: dropout before the classifier.
        dims: 3 (video, input ``(B, C, T, H, W)``) or 2 (the 2D twin, input ``(B, C, H, W)``).
    """

    def __init__(self, depths: Sequence[int], *, block: str | None = "glore", num_classes: int = 400,
                 units=None, position: str | None = None, block_kwargs: Mapping | None = None,
                 width_mult: float = 1.0, stem_channels: int = 32, in_channels: int = 3,
                 dropout: float = 0.5, dims: int = 3, positions: Mapping[str, Sequence[int]] | None = None):
        super().__init__()
        if dims not in (2, 3):
            raise ArgumentError(f"dims must be 2 or 3, got {dims!r}")
        if len(depths) != 4 or any(not isinstance(d, int) or d <= 0 for d in depths):
            raise ArgumentError(f"depths must be 4 positive integers, got {depths!r}")
        if not (isinstance(width_mult, (int, float)) and width_mult > 0):
            raise ArgumentError(f"width_mult must be a positive number, got {width_mult!r}")
        if not isinstance(num_classes, int) or num_classes <= 0:
            raise ArgumentError(f"num_classes must be a positive integer, got {num_classes!r}")
        placement = parse_placement(block, video_units(units, positions, block, DEFAULT_UNITS), position,
                                    block_kwargs)
        if placement is not None and placement.position not in (None, "after_add"):
            raise ArgumentError(f"VideoResNet's units sit after a block (position='after_add'), got {position!r}")
        chosen = placement.where(dict(zip(STAGES, depths))) if placement else {}
        block = placement.block if placement else None
        self.dims, self.depths, self.block = dims, tuple(depths), block
        self.num_classes = num_classes

        def scaled(c: int) -> int:
            return max(1, int(round(c * width_mult)))

        stem = scaled(stem_channels)
        self.conv1 = _conv(dims, in_channels, stem, (3, 5, 5), (1, 2, 2), (1, 2, 2))
        self.bn1 = _norm(dims, stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = (nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)) if dims == 3
                        else nn.MaxPool2d(3, 2, 1))
        channels = stem
        strides = ((1, 1, 1), (2, 2, 2), (1, 2, 2), (1, 2, 2))
        for s, (depth, base) in enumerate(zip(depths, STAGE_WIDTHS)):
            name = f"layer{s + 1}"
            width = scaled(base)
            blocks = []
            for i in range(depth):
                blocks.append(PreActBottleneck(
                    channels, width, temporal_kernel=_temporal_kernel(s, i),
                    stride=strides[s] if i == 0 else (1, 1, 1), projection=(i == 0), dims=dims))
                channels = width * EXPANSION
            stage_units = {}
            for index in chosen.get(STAGES[s], ()):
                options = block_options(block, channels, placement.block_kwargs, ("video",))
                stage_units[index - 1] = create_block(block, channels, **options)
            self.add_module(name, ResStage(blocks, stage_units))
        self.num_features = channels
        self.norm = _norm(dims, channels)
        self.pool = nn.AdaptiveAvgPool3d(1) if dims == 3 else nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features after the final BN-ReLU: ``(B, num_features, T', H', W')`` (or ``(B, C, H', W')``)."""
        expected = self.dims + 2
        if not isinstance(x, torch.Tensor) or x.dim() != expected:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            layout = "(B, C, T, H, W)" if self.dims == 3 else "(B, C, H, W)"
            raise ArgumentError(f"{type(self).__name__} (dims={self.dims}) expects a {expected}-d input "
                             f"{layout}, got {shape}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.relu(self.norm(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)``."""
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.fc(self.dropout(x))
