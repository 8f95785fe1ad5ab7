"""Read the GloRe authors' released video weights (facebookresearch/GloRe) into :class:`VideoResNet`.

Two kinds of files, both with the authors' parameter names:

- Kinetics models ``resnet{50,101}-lite_3d_8x8_w-glore_2-3_ep-0000.pth``: ``{'epoch', 'state_dict'}``
  saved from ``DataParallel`` (names prefixed ``module.``), with GloRe units built with
  ``normalize=False``;
- ImageNet 2D "lite" seeds ``resnet{50,101}-lite.pth``: a plain state dict, 2D kernels, no units,
  1000 classes; the 3D model is inflated from them (:func:`glore.models.video.inflate_state_dict`).

Names (authors' -> ours)::

    conv1.conv.weight, conv1.bn.*                  -> conv1.weight, bn1.*
    conv{2..5}.B{ii}.conv_m{1,2,3}.{bn.*,conv.weight} -> layer{1..4}.blocks.{ii-1}.{bn,conv}{1,2,3}.*
    conv{2..5}.B01.conv_w1.{bn.*,conv.weight}       -> layer{1..4}.blocks.0.downsample.{norm,conv}.*
    conv{3,4}.B{ii}_extra.<GloRe_Unit keys>         -> layer{2,3}.units.{ii-1}.* (glore.nn.convert_official_state_dict)
    tail.bn.*, classifier.*                         -> norm.*, fc.*
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping

import torch

from glore.errors import ArgumentError, ArgumentTypeError
from ..nn import convert_official_state_dict
from .placement import deprecated

__all__ = ["convert_official_video_state_dict", "is_official_video_state_dict", "official_units",
           "official_unit_positions",
           "strip_module_prefix"]

_STEM = {"conv1.conv.weight": "conv1.weight"}
_CONV_M = {"conv_m1": ("bn1", "conv1"), "conv_m2": ("bn2", "conv2"), "conv_m3": ("bn3", "conv3"),
           "conv_w1": ("downsample.norm", "downsample.conv")}
_BLOCK = re.compile(r"^conv([2-5])\.B(\d+)\.(conv_m1|conv_m2|conv_m3|conv_w1)\.(bn|conv)\.(\w+)$")
_UNIT = re.compile(r"^conv([2-5])\.B(\d+)_extra\.(.+)$")
_BN = re.compile(r"^(conv1\.bn|tail\.bn)\.(\w+)$")


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that ``DataParallel`` adds (only when every name has it)."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def is_official_video_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state_dict`` (``module.`` prefix or not) has the authors' video key names."""
    keys = strip_module_prefix(state_dict).keys()
    return "conv1.conv.weight" in keys and any(_BLOCK.match(k) for k in keys)


def official_units(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """``{"resK": 1-based block indices}`` of the units in an authors' state dict (``conv4`` ``B06_extra``
    -> ``res4`` 6): the ``units=`` of the network that loads it."""
    units = defaultdict(set)
    for key in strip_module_prefix(state_dict):
        m = _UNIT.match(key)
        if m:
            units[f"res{int(m.group(1))}"].add(int(m.group(2)))
    return {stage: tuple(sorted(idx)) for stage, idx in sorted(units.items())}


def official_unit_positions(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """The earlier spelling of :func:`official_units`: ``{"layerK": 0-based block indices}``."""
    deprecated("official_unit_positions (0-based indices under layer1..layer4)",
               "official_units (1-based indices under res2..res5)")
    return {f"layer{int(stage[3:]) - 1}": tuple(i - 1 for i in indices)
            for stage, indices in official_units(state_dict).items()}


def official_depths(state_dict: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    """Residual blocks per stage ``(res2, res3, res4, res5)`` of an authors' state dict."""
    blocks = defaultdict(set)
    for key in strip_module_prefix(state_dict):
        m = _BLOCK.match(key)
        if m:
            blocks[int(m.group(1))].add(int(m.group(2)))
    return tuple(max(blocks[s], default=0) for s in (2, 3, 4, 5))


def convert_official_video_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the authors' 3D (or 2D "lite") ResNet state dict to :class:`VideoResNet`'s names.

    Accepts the names with or without ``module.``; tensors keep their shapes (2D seeds stay 2D, see
    :func:`glore.models.video.inflate_state_dict`). Each GloRe unit goes through
    :func:`glore.nn.convert_official_state_dict`; a unit saved without ``blocker.num_batches_tracked``
    (older PyTorch) gets 0. Raises ``ValueError`` naming every key that does not map.
    """
    if not isinstance(state_dict, Mapping):
        raise ArgumentTypeError(f"expected a state dict (name -> tensor), got {type(state_dict).__name__}")
    state = strip_module_prefix(state_dict)
    out: dict[str, torch.Tensor] = {}
    units: dict[tuple[int, int], dict[str, torch.Tensor]] = defaultdict(dict)
    unmapped = []
    for key, value in state.items():
        if key in _STEM:
            out[_STEM[key]] = value
        elif m := _BN.match(key):
            out[f"{'bn1' if m.group(1) == 'conv1.bn' else 'norm'}.{m.group(2)}"] = value
        elif key.startswith("classifier.") and key.count(".") == 1:
            out["fc." + key.split(".", 1)[1]] = value
        elif m := _BLOCK.match(key):
            stage, index, part, kind, leaf = m.groups()
            bn, conv = _CONV_M[part]
            if kind == "conv" and leaf != "weight":
                unmapped.append(key)          # the convs of the release have no bias
                continue
            out[f"layer{int(stage) - 1}.blocks.{int(index) - 1}.{bn if kind == 'bn' else conv}.{leaf}"] = value
        elif m := _UNIT.match(key):
            units[(int(m.group(1)), int(m.group(2)))][m.group(3)] = value
        else:
            unmapped.append(key)
    if unmapped:
        raise ArgumentError(f"{len(unmapped)} key(s) of the state dict do not map to the authors' video ResNet "
                         f"layout (conv1.*, conv2..5.BNN.conv_m1/2/3/w1.*, conv3/4.BNN_extra.*, tail.bn.*, "
                         f"classifier.*): {sorted(unmapped)}")
    for (stage, index), unit in sorted(units.items()):
        unit.setdefault("blocker.num_batches_tracked", torch.tensor(0))
        try:
            converted = convert_official_state_dict(unit)
        except (ValueError, TypeError) as exc:
            raise ArgumentError(f"conv{stage}.B{index:02d}_extra: {exc}") from exc
        for name, value in converted.items():
            out[f"layer{stage - 1}.units.{index - 1}.{name}"] = value
    return out
