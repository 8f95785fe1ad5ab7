"""Reading checkpoints, for every task: one file reader and one ``load_checkpoint``.

:func:`read_checkpoint` reads a whole file (``.safetensors``, or a ``torch.save`` file with
``weights_only=True``: no code runs from it); a missing, truncated or corrupt file raises an error
naming it. :func:`read_state_dict` takes the weights out of a file or a mapping: the ``state_dict``
(Lightning), ``model`` or ``model_state`` entry when there is one, with the ``module.`` / ``_orig_mod.``
prefixes of DDP and ``torch.compile`` removed (``timm.models.clean_state_dict``) and a Lightning
``model.`` prefix removed when that makes the names match. :func:`load_checkpoint` loads it, naming
every missing, unexpected or mis-shaped tensor. :func:`checkpoint_class_names` gives the labels' names
a ``glore train`` checkpoint stores. This module imports nothing of ``glore.engine``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from safetensors.torch import load_file
from timm.models import clean_state_dict

from glore.errors import GloreError, MissingFileError

__all__ = ["CheckpointError", "read_checkpoint", "read_state_dict", "load_checkpoint", "checkpoint_class_names"]

_WEIGHT_ENTRIES = ("state_dict", "model", "model_state")
_WRAPPER_PREFIXES = ("model.", "net.")


class CheckpointError(GloreError, ValueError):
    """A checkpoint file that cannot be read, or weights that do not fit the model."""


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """The content of a checkpoint file as a dict; errors name the file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path!r} is a folder; expected a checkpoint file (e.g. "
                              f"{os.path.join(path, 'last.ckpt')!r})")
    if not os.path.isfile(path):
        raise MissingFileError(f"checkpoint file not found: {path!r}")
    try:
        if path.endswith(".safetensors"):
            checkpoint = load_file(path, device=str(map_location))
        else:
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, disallowed global
        raise CheckpointError(
            f"cannot read checkpoint {path!r} (truncated, corrupt, or holding objects other than tensors and "
            f"plain Python values): {_reason(exc)}"
        ) from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path!r} holds a {type(checkpoint).__name__}, expected a dict")
    return checkpoint


def checkpoint_class_names(checkpoint: Mapping, num_classes: int | None = None) -> list[str]:
    """The name of every label ``0 .. num_classes - 1``: the ``class_names`` entry of a ``glore train``
    checkpoint; a label it does not name (a checkpoint written before names were stored, a label id
    no category uses) is named by its number."""
    stored = checkpoint.get("class_names")
    names = list(stored) if isinstance(stored, (list, tuple)) else []
    count = len(names) if num_classes is None else int(num_classes)
    return [names[i] if i < len(names) and isinstance(names[i], str) and names[i] else str(i)
            for i in range(count)]


def _reason(exc: BaseException) -> str:
    """The informative part of a ``torch.load`` error (its weights-only preamble dropped)."""
    text = str(exc).strip()
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
        return " ".join(detail.split()) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def read_state_dict(path_or_state: str | os.PathLike | Mapping, expected: Iterable[str] | None = None
                    ) -> dict[str, torch.Tensor]:
    """The weights (name -> tensor) of a checkpoint file or mapping, wrapper prefixes removed; with
    ``expected`` (the model's names) a ``model.`` / ``net.`` prefix shared by all names is removed
    when that makes them match, else always."""

    source = os.fspath(path_or_state) if isinstance(path_or_state, (str, os.PathLike)) else "state dict"
    state = read_checkpoint(path_or_state) if source != "state dict" else dict(path_or_state)
    for key in _WEIGHT_ENTRIES:
        if isinstance(state.get(key), Mapping):
            state = dict(state[key])
            break
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: expected a state dict (name -> tensor) or a dict with one under "
                              f"{' / '.join(_WEIGHT_ENTRIES)}, got keys {sorted(state)[:5]}")
    state = clean_state_dict(state)
    names = set(expected) if expected is not None else None
    for prefix in _WRAPPER_PREFIXES:
        if names is not None and set(state) & names:
            break
        if state and all(k.startswith(prefix) for k in state):
            stripped = {k[len(prefix):]: v for k, v in state.items()}
            if names is None or set(stripped) & names:
                state = stripped
    return state


def _names(names: list[str], limit: int = 20) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def load_checkpoint(model: torch.nn.Module, path_or_state: str | os.PathLike | Mapping, *, strict: bool = True,
                    optional: Iterable[str] = (), rename: Callable[[dict], dict] | None = None,
                    source: str | os.PathLike | None = None) -> torch.nn.Module:
    """Load the weights of a checkpoint file or state dict (see :func:`read_state_dict`) into ``model``.

    ``strict``: any missing (other than a BatchNorm's ``num_batches_tracked``), unexpected or mis-shaped
    tensor raises a :class:`CheckpointError` naming them all; names under the ``optional`` prefixes may
    be missing (they keep their values; a warning names them). Not ``strict``: the matching tensors are
    loaded, the others named in a warning. ``rename`` maps the checkpoint's names first (legacy layouts,
    the authors' release). ``source`` names a state dict's file in the messages.
    """
    if source is None:
        source = os.fspath(path_or_state) if isinstance(path_or_state, (str, os.PathLike)) else "state dict"
    own = model.state_dict()
    state = read_state_dict(path_or_state, expected=own)
    if rename is not None:
        state = rename(state)
    optional = tuple(optional)
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    missing_optional = [k for k in missing if optional and k.startswith(optional)]
    missing = [k for k in missing if k not in missing_optional]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
                  for k in state if k in own and state[k].shape != own[k].shape]
    problems = [f"{label} {len(names)}: {_names(names)}" for label, names in
                (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched)) if names]
    if problems and strict:
        raise CheckpointError(f"{source}: checkpoint does not match the model: " + "; ".join(problems))
    if problems:
        warnings.warn(f"{source}: loaded the matching tensors only; " + "; ".join(problems), stacklevel=2)
    if missing_optional:
        warnings.warn(f"{source}: no weights for {len(missing_optional)} tensors under {list(optional)}; they "
                      f"keep their initialisation", stacklevel=2)
    fitting = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict({**own, **fitting})
    return model
