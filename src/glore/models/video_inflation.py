"""Inflating the 2D "lite" twin's weights (ours, or the authors' ImageNet seeds) into a 3D video model."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from glore.checkpoint import read_state_dict
from glore.errors import ArgumentError
from .video_official import convert_official_video_state_dict, is_official_video_state_dict

__all__ = ["InflationReport", "INFLATION_METHODS", "inflate_kernel", "inflate_state_dict", "inflate_model"]

INFLATION_METHODS = ("mean", "center")


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


def inflate_kernel(kernel_2d: torch.Tensor, t: int, method: str = "mean") -> torch.Tensor:
    """A 2D kernel ``(out, in, k, k)`` as a 3D one ``(out, in, t, k, k)``.

    ``mean``: the 2D kernel in every one of the ``t`` taps, divided by ``t`` (I3D's inflation, which
    NLNet and SlowFast use; a clip of identical frames gives the 2D response, the kernel summing over
    time to the 2D kernel); ``center``: the 2D kernel in the centre tap, zeros in the others.
    """
    if method == "mean":
        return kernel_2d.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
    inflated = kernel_2d.new_zeros((*kernel_2d.shape[:2], t, *kernel_2d.shape[2:]))
    inflated[:, :, t // 2] = kernel_2d
    return inflated


def inflate_state_dict(state_2d: Mapping[str, torch.Tensor], model: nn.Module, *, method: str = "mean"
                       ) -> tuple[dict[str, torch.Tensor], InflationReport]:
    """Inflate 2D weights (the 2D twin's, timm's or torchvision's names) into ``model`` (3D): returns
    ``(state_dict, report)``.

    A 2D kernel ``(out, in, k, k)`` becomes ``(out, in, t, k, k)`` by :func:`inflate_kernel` with
    ``method``. Tensors of equal shape (BN, GloRe's pointwise weights, the classifier) are copied.
    Entries of the model with no counterpart (inserted blocks) keep the model's current value and are
    listed in ``report.missing``; checkpoint names the model lacks go to ``report.unexpected``, shape
    conflicts (a 1000-class classifier) to ``report.mismatched``.
    """
    if method not in INFLATION_METHODS:
        raise ArgumentError(f"inflation must be one of {list(INFLATION_METHODS)}, got {method!r}")
    target = model.state_dict()
    state_2d = read_state_dict(state_2d, expected=target)
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


def our_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' names (Kinetics release, 2D lite seeds) converted to ours; other state dicts as given."""
    return convert_official_video_state_dict(state) if is_official_video_state_dict(state) else dict(state)


def inflate_model(model: nn.Module, path_or_state: str | Path | Mapping[str, torch.Tensor]) -> InflationReport:
    """Load a 2D lite checkpoint (a file or a state dict) into ``model`` by inflation; warn on unmapped names.

    Reads our 2D twin's names and the authors' ImageNet "lite" seeds (``resnet50-lite.pth``: their
    names, 2D kernels, 1000 classes). As in the authors' ``init_3d_from_2d_dict`` (method
    ``inflation``), a classifier of another shape is skipped (listed in ``report.mismatched``) and
    units absent from the seed keep their identity initialisation (``report.missing``).
    """
    state = (read_state_dict(path_or_state) if isinstance(path_or_state, (str, Path))
             else dict(path_or_state))
    inflated, report = inflate_state_dict(our_names(state), model)
    model.load_state_dict(inflated)
    if report.unmapped:
        warnings.warn(f"inflating {path_or_state if isinstance(path_or_state, (str, Path)) else 'state dict'}: "
                      f"names that do not map: {report}", stacklevel=2)
    return report
