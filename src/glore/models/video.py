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

This module holds the named builders and :func:`create_video_model`; the network is
:mod:`glore.models.video_resnet`, inflation :mod:`glore.models.video_inflation`, the demo's
``distant-clips`` network :mod:`glore.models.distant_clips`. Their public names are importable from
here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from glore.checkpoint import load_checkpoint, read_state_dict
from glore.errors import ArgumentError
from .distant_clips import DistantClipsNet, distant_clips_net
from .video_inflation import InflationReport, inflate_model, inflate_state_dict, our_names
from . import video_resnet
from .placement import block_name
from .video_official import is_official_video_state_dict, official_depths, official_units
from .video_resnet import (BN_EPS, DEFAULT_UNITS, EXPANSION, RESNET101_UNITS, STAGE_WIDTHS, PreActBottleneck,
                           PreActProjection, ResStage, VideoResNet, video_units)

__all__ = [
    "VideoResNet", "PreActBottleneck", "InflationReport", "create_video_model", "inflate_state_dict", "inflate_model",
    "resnet50_3d", "resnet101_3d", "resnet50_2d_lite", "resnet101_2d_lite",
    "VIDEO_MODELS", "DistantClipsNet", "distant_clips_net",
    "PreActProjection", "ResStage", "DEFAULT_UNITS", "RESNET101_UNITS", "STAGE_WIDTHS", "EXPANSION", "BN_EPS",
]


def __getattr__(name: str):
    if name in ("DEFAULT_POSITIONS", "RESNET101_POSITIONS"):     # the earlier spellings, with a FutureWarning
        return getattr(video_resnet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resnet50_3d(*, block: str | None = "glore", num_classes: int = 400, **kwargs) -> VideoResNet:
    """3D ResNet-50 lite; 5 GloRe units by default (27,985,264 / 33,731,952 params at 400 classes)."""
    return VideoResNet((3, 4, 6, 3), block=block, num_classes=num_classes, **kwargs)


def resnet101_3d(*, block: str | None = "glore", num_classes: int = 400, units=None,
                 positions: Mapping[str, Sequence[int]] | None = None, **kwargs) -> VideoResNet:
    """3D ResNet-101 lite with the authors' unit placement (GloRe paper, Table 5): res3 after blocks
    1, 3, res4 after blocks 6, 12, 18 of 23 (:data:`RESNET101_UNITS`). ``units=DEFAULT_UNITS`` gives the
    ResNet-50 placement (res4 after 1, 3, 5). 51,695,984 parameters without units, 57,442,672 with 5
    GloRe units (400 classes), whichever the placement."""
    units = video_units(units, positions, block, RESNET101_UNITS)
    return VideoResNet((3, 4, 23, 3), block=block, num_classes=num_classes, units=units, **kwargs)


def resnet50_2d_lite(*, block: str | None = "glore", num_classes: int = 1000, **kwargs) -> VideoResNet:
    """2D twin of :func:`resnet50_3d` (same layout and names, 2D kernels); the source of inflation."""
    return VideoResNet((3, 4, 6, 3), block=block, num_classes=num_classes, dims=2, **kwargs)


def resnet101_2d_lite(*, block: str | None = "glore", num_classes: int = 1000, units=None,
                      positions: Mapping[str, Sequence[int]] | None = None, **kwargs) -> VideoResNet:
    """2D twin of :func:`resnet101_3d` (the same unit placement by default)."""
    units = video_units(units, positions, block, RESNET101_UNITS)
    return VideoResNet((3, 4, 23, 3), block=block, num_classes=num_classes, units=units, dims=2, **kwargs)


VIDEO_MODELS = {
    "resnet50_3d": resnet50_3d,
    "resnet101_3d": resnet101_3d,
    "resnet50_2d_lite": resnet50_2d_lite,
    "resnet101_2d_lite": resnet101_2d_lite,
}


def _official_model_kwargs(state: Mapping[str, torch.Tensor], block: str | None, kwargs: dict) -> dict:
    """Settings of the authors' network read from its checkpoint: unit placement and ``normalize=False``."""
    units = official_units(state)
    name = block_name(block)
    if units and name != "glore":
        raise ArgumentError(f"the checkpoint holds GloRe units at {units}; expected block='glore', got {block!r}")
    if not units and name is not None:
        raise ArgumentError(f"the checkpoint holds no context unit; expected block=None, got {block!r}")
    kwargs = dict(kwargs)
    if units:
        if "units" not in kwargs and "positions" not in kwargs:
            kwargs["units"] = units
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
        **kwargs: passed to :class:`VideoResNet` (``units``, ``position``, ``block_kwargs``,
            ``width_mult``, ``dropout``, ...).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in VIDEO_MODELS:
        raise ArgumentError(f"unknown video model {name!r}; expected one of {sorted(VIDEO_MODELS)}")
    if checkpoint is not None and inflate_from is not None:
        raise ArgumentError("pass checkpoint= or inflate_from=, not both")
    state = read_state_dict(checkpoint) if checkpoint is not None else None
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
        load_checkpoint(model, state, strict=True, rename=our_names, source=checkpoint)
    return model
