"""What the engine reads of Lightning's state that Lightning has no public API for, in one place.

``tests/test_engine_lightning_internals.py`` runs each reader against the installed Lightning, so an
upgrade that moves one of them fails there, naming it, rather than somewhere inside a training run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # run_folder reads checkpoints without loading Lightning
    import lightning as L

__all__ = ["attached_trainer", "should_update_logs", "next_epoch", "checkpoint_next_epoch"]


def attached_trainer(module: L.LightningModule) -> L.Trainer | None:
    """The trainer ``module`` is attached to, ``None`` when there is none (``module.trainer`` raises then)."""
    return module._trainer


def should_update_logs(trainer: L.Trainer) -> bool:
    """Whether the loggers write at the current training step (every ``log_every_n_steps``, and at a
    stop): the test Lightning's own ``LearningRateMonitor`` makes before logging."""
    return trainer._logger_connector.should_update_logs


def next_epoch(trainer: L.Trainer) -> int:
    """The epoch the run trains next, already right for a resumed run when its train loader is built
    (``trainer.current_epoch`` counts completed epochs, one less when the checkpoint was written at
    the end of an epoch)."""
    return trainer.fit_loop.epoch_progress.current.processed


def checkpoint_next_epoch(checkpoint: Mapping) -> int:
    """:func:`next_epoch` of the run a Lightning checkpoint continues; its ``epoch`` entry for a
    checkpoint without loop state."""
    try:
        return int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return int(checkpoint.get("epoch", 0))
