"""Atomic checkpoint files read back with ``torch.load(weights_only=True)``.

:class:`AtomicCheckpointIO` is a Lightning ``CheckpointIO`` plugin: it serialises the checkpoint to a
temporary file in the target directory, flushes it to disk, then ``os.replace``-s it over the target,
so a write that fails (full disk, crash, interrupt) leaves the previous checkpoint intact. Loading
always uses ``weights_only=True`` (no arbitrary code runs from a checkpoint file); a truncated or
corrupt file raises :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch
from lightning.fabric.plugins import CheckpointIO

from ..errors import ArgumentError, ArgumentTypeError, GloreError, MissingFileError


class CheckpointError(GloreError, ValueError):
    """A checkpoint file that cannot be read."""


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` through a temporary file and ``os.replace``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; errors name the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"checkpoint file not found: {path!r}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, disallowed global
        raise CheckpointError(
            f"cannot read checkpoint {path!r} (truncated, corrupt, or holding objects other than tensors and "
            f"plain Python values): {_reason(exc)}"
        ) from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path!r} holds a {type(checkpoint).__name__}, expected a dict")
    return checkpoint


def _reason(exc: BaseException) -> str:
    """The informative part of a ``torch.load`` error (its weights-only preamble dropped)."""
    text = str(exc).strip()
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
        return " ".join(detail.split()) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


class AtomicCheckpointIO(CheckpointIO):
    """Lightning checkpoint plugin: atomic writes, ``weights_only=True`` reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise ArgumentTypeError(f"AtomicCheckpointIO takes no storage_options, got {storage_options!r}")
        save_atomic(checkpoint, path)

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        if weights_only is False:
            raise ArgumentError("AtomicCheckpointIO only loads with weights_only=True, got weights_only=False")
        return load_checkpoint_file(path, map_location=map_location if map_location is not None else "cpu")

    def remove_checkpoint(self, path) -> None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
