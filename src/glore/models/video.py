"""3D ResNet "lite" video models with GloRe / NL / GC units ("Graph-Based Global Reasoning Networks",
arXiv 1811.12814, §4.4).

The backbone is the pre-activation 3D ResNet of the GloRe authors' video release:

- stem: ``conv1`` 3x5x5, 32 channels, stride (1, 2, 2), BN, ReLU, max-pool (1, 3, 3) stride (1, 2, 2);
- four stages of pre-activation bottlenecks ``BN-ReLU-conv`` x 3 (widths 64, 128, 256, 512, outputs
  4x that); the first conv of a block has temporal kernel 3 in every block of res2, in blocks 1, 3 of
  res3, in blocks 1, 3, 5, ... of res4 and in block 2 of res5 (temporal kernel 1 elsewhere); res3
  downsamples by (2, 2, 2), res4 and res5 by (1, 2, 2), in the 3x3 conv and in the shortcut;
- the first block of a stage has a ``BN-ReLU-1x1x1 conv`` projection shortcut;
- head: BN, ReLU, global average pooling, dropout 0.5, linear.

Context units (``block=``) sit after the residual addition of blocks 1 and 3 of res3 and blocks 1, 3, 5
of res4 (5 units); in ResNet-101 the res4 units sit after blocks 6, 12 and 18 of 23, as in the
authors' release. With 400 classes the baseline ResNet-50-3D lite has 27,985,264 parameters and
33,731,952 with 5 GloRe units; ResNet-101-3D lite 51,695,984 and 57,442,672 (either placement). Every
BatchNorm has eps 1e-4, as in the release.

The authors' released Kinetics models and ImageNet 2D "lite" seeds load by their own parameter names
(:mod:`glore.models.video_official`): ``create_video_model(name, checkpoint=path)`` and
``create_video_model(name, inflate_from=path)``.

The same class builds the 2D "lite" twin (``dims=2``: every kernel and stride without its temporal
entry); :func:`inflate_state_dict` turns its weights into the 3D model's (kernels repeated over time
and divided by the temporal size).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from glore.errors import ArgumentError
from ..nn import create_block

__all__ = [
    "VideoResNet", "PreActBottleneck", "InflationReport", "create_video_model", "inflate_state_dict", "inflate_model",
    "resnet50_3d", "resnet101_3d", "resnet50_2d_lite", "resnet101_2d_lite",
    "VIDEO_MODELS",
]

STAGE_WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
# (stage, 0-based block indices) after which a context unit sits: res3 blocks 1, 3; res4 blocks 1, 3, 5
DEFAULT_POSITIONS = {"layer2": (0, 2), "layer3": (0, 2, 4)}
# the authors' ResNet-101-3D (GloRe paper, Table 5): res4 units after blocks 6, 12 and 18 of 23
RESNET101_POSITIONS = {"layer2": (0, 2), "layer3": (5, 11, 17)}
BN_EPS = 1e-4                    # every BatchNorm of the authors' release


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


def _default_block_kwargs(block: str, width: int) -> dict:
    if block == "glore":
        return {"mid": width}            # mid = the host stage's bottleneck width (128 in res3, 256 in res4)
    if block == "gc":
        return {"ratio": 1 / 4}          # GCNet uses r = 4 for video
    if block == "nl":
        return {"sub_sample": True}      # NLNet's video blocks pool keys and values 2x2 in space
    return {}


class VideoResNet(nn.Module):
    """Pre-activation ResNet "lite" (3D for video, or its 2D twin) with optional context units.

    Args:
        depths: blocks per stage, e.g. ``(3, 4, 6, 3)`` for ResNet-50.
        block: context unit name for :func:`glore.nn.create_block` (``glore``, ``nl``, ``gc``, ``snl``,
            ``se``) or ``None`` for the baseline.
        num_classes: output classes.
        positions: ``{"layerK": (0-based block indices,)}`` after which a unit is inserted; defaults
            to res3 blocks 1, 3 and res4 blocks 1, 3, 5.
        block_kwargs: extra keyword arguments for every unit (defaults: GloRe ``mid`` = the stage's
            bottleneck width, GC ``ratio=1/4``, NL ``sub_sample=True``).
        width_mult: multiplies the stem and stage widths (reduced models for tests and small data).
        stem_channels: channels of ``conv1`` before ``width_mult``.
        in_channels: input channels (3 for RGB).
        dropout: dropout before the classifier.
        dims: 3 (video, input ``(B, C, T, H, W)``) or 2 (the 2D twin, input ``(B, C, H, W)``).
    """

    def __init__(self, depths: Sequence[int], *, block: str | None = "glore", num_classes: int = 400,
                 positions: Mapping[str, Sequence[int]] | None = None, block_kwargs: Mapping | None = None,
                 width_mult: float = 1.0, stem_channels: int = 32, in_channels: int = 3,
                 dropout: float = 0.5, dims: int = 3):
        super().__init__()
        if dims not in (2, 3):
            raise ArgumentError(f"dims must be 2 or 3, got {dims!r}")
        if len(depths) != 4 or any(not isinstance(d, int) or d <= 0 for d in depths):
            raise ArgumentError(f"depths must be 4 positive integers, got {depths!r}")
        if not (isinstance(width_mult, (int, float)) and width_mult > 0):
            raise ArgumentError(f"width_mult must be a positive number, got {width_mult!r}")
        if not isinstance(num_classes, int) or num_classes <= 0:
            raise ArgumentError(f"num_classes must be a positive integer, got {num_classes!r}")
        if block is not None and not isinstance(block, str):
            raise ArgumentError(f"block must be a block name or None, got {block!r}")
        block = block.lower() if isinstance(block, str) else None
        if block in ("none", ""):
            block = None
        positions = dict(DEFAULT_POSITIONS if positions is None else positions)
        unknown = sorted(set(positions) - {f"layer{i}" for i in range(1, 5)})
        if unknown:
            raise ArgumentError(f"positions keys must be among layer1..layer4, got {unknown}")
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
            units = {}
            if block is not None:
                for i in positions.get(name, ()):
                    if not 0 <= i < depth:
                        raise ArgumentError(f"positions[{name!r}] has block index {i}, expected 0..{depth - 1}")
                    kwargs = {**_default_block_kwargs(block, width), **dict(block_kwargs or {})}
                    units[i] = create_block(block, channels, **kwargs)
            self.add_module(name, ResStage(blocks, units))
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


# ----------------------------------------------------------------------------- builders

def resnet50_3d(*, block: str | None = "glore", num_classes: int = 400, **kwargs) -> VideoResNet:
    """3D ResNet-50 lite; 5 GloRe units by default (27,985,264 / 33,731,952 params at 400 classes)."""
    return VideoResNet((3, 4, 6, 3), block=block, num_classes=num_classes, **kwargs)


def resnet101_3d(*, block: str | None = "glore", num_classes: int = 400,
                 positions: Mapping[str, Sequence[int]] | None = None, **kwargs) -> VideoResNet:
    """3D ResNet-101 lite with the authors' unit placement (GloRe paper, Table 5): res3 after blocks
    1, 3, res4 after blocks 6, 12, 18 of 23. ``positions=DEFAULT_POSITIONS`` gives the ResNet-50
    placement (res4 after 1, 3, 5). 51,695,984 parameters without units, 57,442,672 with 5 GloRe units
    (400 classes), whichever the placement."""
    positions = RESNET101_POSITIONS if positions is None else positions
    return VideoResNet((3, 4, 23, 3), block=block, num_classes=num_classes, positions=positions, **kwargs)


def resnet50_2d_lite(*, block: str | None = "glore", num_classes: int = 1000, **kwargs) -> VideoResNet:
    """2D twin of :func:`resnet50_3d` (same layout and names, 2D kernels); the source of inflation."""
    return VideoResNet((3, 4, 6, 3), block=block, num_classes=num_classes, dims=2, **kwargs)


def resnet101_2d_lite(*, block: str | None = "glore", num_classes: int = 1000,
                      positions: Mapping[str, Sequence[int]] | None = None, **kwargs) -> VideoResNet:
    """2D twin of :func:`resnet101_3d` (the same unit placement by default)."""
    positions = RESNET101_POSITIONS if positions is None else positions
    return VideoResNet((3, 4, 23, 3), block=block, num_classes=num_classes, positions=positions, dims=2,
                       **kwargs)


VIDEO_MODELS = {
    "resnet50_3d": resnet50_3d,
    "resnet101_3d": resnet101_3d,
    "resnet50_2d_lite": resnet50_2d_lite,
    "resnet101_2d_lite": resnet101_2d_lite,
}


# ----------------------------------------------------------------------------- checkpoints, inflation

@dataclass
class InflationReport:
    """Names that did not map when inflating a 2D state dict into a 3D model."""

    inflated: list[str] = field(default_factory=list)     # 2D kernels repeated over time
    copied: list[str] = field(default_factory=list)       # same shape in 2D and 3D
    missing: list[str] = field(default_factory=list)      # in the 3D model, absent from the checkpoint
    unexpected: list[str] = field(default_factory=list)   # in the checkpoint, absent from the 3D model
    mismatched: list[str] = field(default_factory=list)   # present in both, shapes that do not inflate

    @property
    def unmapped(self) -> list[str]:
        return self.missing + self.unexpected + self.mismatched

    def __str__(self) -> str:
        parts = [f"inflated {len(self.inflated)}, copied {len(self.copied)}"]
        for name in ("missing", "unexpected", "mismatched"):
            names = getattr(self, name)
            if names:
                shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
                parts.append(f"{name}: {shown}")
        return "; ".join(parts)


def _read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    from glore.checkpoint import read_state_dict

    return read_state_dict(path)


def _strip_prefix(state: Mapping[str, torch.Tensor], names: set[str]) -> dict[str, torch.Tensor]:
    """Strip a ``model.`` / ``module.`` prefix (Lightning, DataParallel) when that makes names match."""
    state = dict(state)
    for prefix in ("model.", "module."):
        if set(state) & names:
            break
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if set(stripped) & names:
            state = stripped
    return state


def inflate_state_dict(state_2d: Mapping[str, torch.Tensor], model: nn.Module
                       ) -> tuple[dict[str, torch.Tensor], InflationReport]:
    """Inflate the 2D twin's weights into ``model`` (3D): returns ``(state_dict, report)``.

    A 2D kernel ``(out, in, k, k)`` becomes ``(out, in, t, k, k)``: repeated ``t`` times over time and
    divided by ``t``, so that a clip of identical frames gives the 2D response (the kernel sums over
    time to the 2D kernel). Tensors of equal shape (BN, GloRe's pointwise weights, the classifier) are
    copied. Entries of the model with no counterpart keep the model's current value and are listed in
    ``report.missing``; checkpoint names the model lacks go to ``report.unexpected``, shape conflicts to
    ``report.mismatched``.
    """
    target = model.state_dict()
    state_2d = _strip_prefix(state_2d, set(target))
    report = InflationReport()
    result = {}
    for name, value in target.items():
        if name not in state_2d:
            report.missing.append(name)
            result[name] = value
            continue
        src = state_2d[name]
        if src.shape == value.shape:
            result[name] = src.detach().clone().to(value.dtype)
            report.copied.append(name)
        elif (src.dim() == 4 and value.dim() == 5 and src.shape[:2] == value.shape[:2]
              and src.shape[2:] == value.shape[3:]):
            t = value.shape[2]
            result[name] = (src.unsqueeze(2).repeat(1, 1, t, 1, 1) / t).to(value.dtype)
            report.inflated.append(name)
        else:
            report.mismatched.append(f"{name} (2D {tuple(src.shape)} -> 3D {tuple(value.shape)})")
            result[name] = value
    report.unexpected = sorted(set(state_2d) - set(target))
    return result, report


def _ours(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' names (Kinetics release, 2D lite seeds) converted to ours; other state dicts as given."""
    from .video_official import convert_official_video_state_dict, is_official_video_state_dict

    return convert_official_video_state_dict(state) if is_official_video_state_dict(state) else dict(state)


def inflate_model(model: nn.Module, path_or_state: str | Path | Mapping[str, torch.Tensor]) -> InflationReport:
    """Load a 2D lite checkpoint (a file or a state dict) into ``model`` by inflation; warn on unmapped names.

    Reads our 2D twin's names and the authors' ImageNet "lite" seeds (``resnet50-lite.pth``: their
    names, 2D kernels, 1000 classes). As in the authors' ``init_3d_from_2d_dict`` (method
    ``inflation``), a classifier of another shape is skipped (listed in ``report.mismatched``) and
    units absent from the seed keep their identity initialisation (``report.missing``).
    """
    state = (_read_state_dict(path_or_state) if isinstance(path_or_state, (str, Path))
             else dict(path_or_state))
    inflated, report = inflate_state_dict(_ours(state), model)
    model.load_state_dict(inflated)
    if report.unmapped:
        warnings.warn(f"inflating {path_or_state if isinstance(path_or_state, (str, Path)) else 'state dict'}: "
                      f"names that do not map: {report}", stacklevel=2)
    return report


def _official_model_kwargs(state: Mapping[str, torch.Tensor], block: str | None, kwargs: dict) -> dict:
    """Settings of the authors' network read from its checkpoint: unit placement and ``normalize=False``."""
    from .video_official import official_unit_positions

    positions = official_unit_positions(state)
    name = block.lower() if isinstance(block, str) else None
    if positions and name != "glore":
        raise ArgumentError(f"the checkpoint holds GloRe units at {positions}; expected block='glore', got {block!r}")
    if not positions and name not in (None, "none", ""):
        raise ArgumentError(f"the checkpoint holds no context unit; expected block=None, got {block!r}")
    kwargs = dict(kwargs)
    if positions:
        kwargs.setdefault("positions", positions)
        kwargs["block_kwargs"] = {"normalize": False, **dict(kwargs.get("block_kwargs") or {})}
    return kwargs


def create_video_model(name: str, *, block: str | None = "glore", num_classes: int = 400,
                       checkpoint: str | Path | None = None, inflate_from: str | Path | None = None,
                       **kwargs) -> VideoResNet:
    """Build a video model by name: ``resnet50_3d``, ``resnet101_3d`` (or the 2D twins ``*_2d_lite``).

    Args:
        name: model name, one of ``VIDEO_MODELS``.
        block: ``glore`` (5 GloRe units), ``nl``, ``gc`` (the same places), or ``None`` (baseline).
        num_classes: classifier outputs.
        checkpoint: a 3D checkpoint of this model to load (strict): ours, or the authors' Kinetics
            release (recognised by its names; the units are then built as in the release, at the
            checkpoint's places with ``normalize=False``).
        inflate_from: a 2D lite checkpoint to inflate into the 3D weights, ours or the authors' ImageNet
            seed (names that do not map are warned about and stored in ``model.inflation_report``).
        **kwargs: passed to :class:`VideoResNet` (``width_mult``, ``dropout``, ``positions``, ...).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in VIDEO_MODELS:
        raise ArgumentError(f"unknown video model {name!r}; expected one of {sorted(VIDEO_MODELS)}")
    if checkpoint is not None and inflate_from is not None:
        raise ArgumentError("pass checkpoint= or inflate_from=, not both")
    from .video_official import is_official_video_state_dict, official_depths

    state = _read_state_dict(checkpoint) if checkpoint is not None else None
    official = state is not None and is_official_video_state_dict(state)
    if official:
        kwargs = _official_model_kwargs(state, block, kwargs)
    model = VIDEO_MODELS[key](block=block, num_classes=num_classes, **kwargs)
    if inflate_from is not None:
        if model.dims != 3:
            raise ArgumentError(f"inflate_from needs a 3D model, got {name!r}")
        model.inflation_report = inflate_model(model, inflate_from)
    if state is not None:
        if official and official_depths(state) != model.depths:
            raise ArgumentError(f"{checkpoint}: the checkpoint has {official_depths(state)} blocks per stage "
                             f"(res2..res5), {name!r} has {model.depths}")
        from glore.checkpoint import load_checkpoint as load_weights

        load_weights(model, state, strict=True, rename=_ours, source=checkpoint)
    return model


# ----------------------------------------------------------------------------- the video demo network

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
                 width: int = 16, **block_kwargs):
        super().__init__()
        from .small import block_slot, check_arguments

        check_arguments(num_classes=num_classes, in_chans=in_chans, width=width, block=block,
                        block_kwargs=block_kwargs)
        half = width // 2
        # (frames, pixels) receptive fields: (3, 5) stride (2, 2, 2), (3, 9), (3, 13) spatial stride 4
        self.stem = nn.Sequential(
            _conv3d_bn_relu(in_chans, half, (3, 5, 5), (2, 2, 2)),
            _conv3d_bn_relu(half, width, (1, 3, 3), (1, 1, 1)),
            _conv3d_bn_relu(width, width, (1, 3, 3), (1, 2, 2)),
        )
        video = {"sub_sample": True} if block and block.lower() == "nl" else {}   # NLNet's video blocks
        self.block, self.block_kwargs = block_slot(block, width, block_kwargs, **video)
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
                      width: int = 16, **block_kwargs) -> DistantClipsNet:
    """The video demo network; ``block=None`` is the baseline (see :class:`DistantClipsNet`)."""
    return DistantClipsNet(block=block, num_classes=num_classes, in_chans=in_chans, width=width,
                           **block_kwargs)
