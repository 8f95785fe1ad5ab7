"""The former name of :mod:`glore.engine.atomic_checkpoint` (atomic checkpoint writes); its public
names stay importable from here. Reading checkpoints is :mod:`glore.checkpoint`'s job."""

from .atomic_checkpoint import AtomicCheckpointIO, CheckpointError, save_atomic

__all__ = ["AtomicCheckpointIO", "CheckpointError", "save_atomic"]
