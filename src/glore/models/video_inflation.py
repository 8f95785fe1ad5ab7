"""Inflating the 2D "lite" twin's weights (ours, or the authors' ImageNet seeds) into a 3D video model."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from glore.checkpoint import read_state_dict
from .video_official import convert_official_video_state_dict, is_official_video_state_dict

__all__ = ["InflationReport", "inflate_state_dict", "inflate_model"]


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
    state_2d = read_state_dict(state_2d, expected=target)
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
