"""Load the authors' released PyTorch ``GloRe_Unit`` weights into :class:`glore.nn.GloRe`."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from glore.errors import ArgumentError, ArgumentTypeError

# authors' key -> our key
_KEY_MAP = {
    "conv_state.weight": "reduce.weight",
    "conv_state.bias": "reduce.bias",
    "conv_proj.weight": "project.weight",
    "conv_proj.bias": "project.bias",
    "gcn.conv1.weight": "gcn.0.node.weight",
    "gcn.conv1.bias": "gcn.0.node.bias",
    "gcn.conv2.weight": "gcn.0.state.weight",
    "conv_extend.weight": "extend.weight",
    "blocker.weight": "norm.weight",
    "blocker.bias": "norm.bias",
    "blocker.running_mean": "norm.running_mean",
    "blocker.running_var": "norm.running_var",
    "blocker.num_batches_tracked": "norm.num_batches_tracked",
}


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert a state dict of the authors' ``GloRe_Unit`` (1D, 2D or 3D) for :class:`GloRe`.

    Conv weights shaped ``(out, in, 1)``, ``(out, in, 1, 1)`` or ``(out, in, 1, 1, 1)`` become
    ``(out, in, 1)``. The result loads with ``GloRe(C, mid=m).load_state_dict``. The authors' unit
    divides ``V`` by ``L`` only when built with ``normalize=True`` (its default is ``False``): build
    ``GloRe(C, mid=m, normalize=False)`` to reproduce a unit created with their defaults.
    """
    if not isinstance(state_dict, Mapping):
        raise ArgumentTypeError(f"expected a mapping of parameter names to tensors (a state dict), "
                        f"got {type(state_dict).__name__}")
    missing = sorted(set(_KEY_MAP) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(_KEY_MAP))
    if missing or unexpected:
        raise ArgumentError(
            f"not a GloRe_Unit state dict: expected keys {sorted(_KEY_MAP)}; "
            f"missing {missing}, unexpected {unexpected}"
        )
    converted = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ArgumentTypeError(f"{key}: expected a torch.Tensor, got {type(value).__name__}")
        if key.endswith(".weight") and not key.startswith("blocker."):
            if value.dim() < 3 or any(s != 1 for s in value.shape[2:]):
                raise ArgumentError(f"{key}: expected a 1x1 conv weight (out, in, 1[, 1[, 1]]), "
                                 f"got shape {tuple(value.shape)}")
            value = value.reshape(*value.shape[:2], 1)
        converted[_KEY_MAP[key]] = value
    return converted
