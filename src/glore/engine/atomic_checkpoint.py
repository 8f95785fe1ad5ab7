"""Atomic checkpoint files read back with ``torch.load(weights_only=True)``.

:class:`AtomicCheckpointIO` is a Lightning ``CheckpointIO`` plugin: it serialises the checkpoint to a
temporary file in the target directory, flushes it to disk, then ``os.replace``-s it over the target,
so a write that fails (full disk, crash, interrupt) leaves the previous checkpoint intact. Loading
goes through :func:`glore.checkpoint.read_checkpoint` (``weights_only=True``: no arbitrary code runs
from a checkpoint file; a truncated or corrupt file raises :class:`CheckpointError` naming the file).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch
from lightning.fabric.plugins import CheckpointIO

from glore.checkpoint import CheckpointError, read_checkpoint
from glore.errors import ArgumentError, ArgumentTypeError

__all__ = ["AtomicCheckpointIO", "CheckpointError", "save_atomic"]


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


class AtomicCheckpointIO(CheckpointIO):
    """Lightning checkpoint plugin: atomic writes, ``weights_only=True`` reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise ArgumentTypeError(f"AtomicCheckpointIO takes no storage_options, got {storage_options!r}")
        save_atomic(checkpoint, path)

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        if weights_only is False:
            raise ArgumentError("AtomicCheckpointIO only loads with weights_only=True, got weights_only=False")
        return read_checkpoint(path, map_location=map_location if map_location is not None else "cpu")

    def remove_checkpoint(self, path) -> None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
