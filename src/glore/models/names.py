"""The backbone names :func:`glore.models.create_model` takes, and the check of a name."""

from __future__ import annotations

import difflib

import timm

from glore.errors import ArgumentError, ArgumentTypeError
from .registry import CONFIGS
from .timm_build import TIMM_GENERIC_MODULES, TIMM_MODULES
from .torchvision_build import TORCHVISION_BACKBONES

__all__ = ["available_backbones", "check_name"]


def available_backbones() -> list[str]:
    """Names accepted by :func:`create_model`: timm ResNet-family and DPN models, ``tv_*`` ResNets,
    the timm families of :mod:`glore.models.timm_hosts`, and the paper configurations registered by
    :mod:`glore.models.registry`."""
    names = set(CONFIGS) | {f"tv_{n}" for n in TORCHVISION_BACKBONES}
    for module in TIMM_MODULES + TIMM_GENERIC_MODULES:
        names.update(timm.list_models(module=module))
    return sorted(names)


def check_name(name: str) -> None:
    """Refuse a name :func:`create_model` does not build, with the close matches."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"model name must be a str, got {type(name).__name__}")
    names = available_backbones()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
        hint = f"; close matches: {close}" if close else ""
        raise ArgumentError(f"unknown backbone {name!r}: expected a timm ResNet-family, DPN, ConvNeXt, RegNet, "
                            f"ResNetV2, EfficientNet, MobileNetV3, CSPNet, ByobNet, ViT/DeiT, Swin or HRNet name, "
                            f"tv_<torchvision resnet> or a registered configuration{hint}")
