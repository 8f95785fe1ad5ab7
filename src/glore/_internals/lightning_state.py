"""What the engine reads of Lightning's state that Lightning has no public API for, in one place.

``tests/test_engine_lightning_internals.py`` runs each reader against the installed Lightning, so an
upgrade that moves one of them fails there, naming it, rather than somewhere inside a training run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # run_folder reads checkpoints without loading Lightning
    import lightning as L

__all__ = ["attached_trainer", "should_update_logs", "next_epoch", "checkpoint_next_epoch", "optimizer_steps"]


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


def optimizer_steps(trainer: L.Trainer) -> tuple[int, int | None]:
    """``(optimizer steps per epoch, steps of the run or None)`` for the schedule, counted from the data
    module's training loader the way Lightning counts them (its sharding, ``limit_train_batches``,
    ``accumulate_grad_batches``, ``max_steps``); Lightning's own ``estimated_stepping_batches`` where the
    loader has no length."""
    # Not trainer.estimated_stepping_batches: it runs fit_loop.setup_data, which starts the training
    # iterator (worker processes prefetch) inside configure_optimizers, before a resumed run restores its
    # epoch, so the first resumed epoch reads epoch 0's order and augmentation (test_engine_resume fails).
    accumulate = max(trainer.accumulate_grad_batches, 1)
    max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
    batches = _train_batches(trainer)
    if batches is None:
        total = trainer.estimated_stepping_batches
        batches = trainer.num_training_batches
        if batches is None or not math.isfinite(batches):
            return (int(total) if math.isfinite(total) else 1), (int(total) if math.isfinite(total) else None)
        return max(math.ceil(batches / accumulate), 1), (int(total) if math.isfinite(total) else None)
    steps_per_epoch = max(math.ceil(batches / accumulate), 1)
    total = steps_per_epoch * max_epochs if max_epochs else None
    if trainer.max_steps is not None and trainer.max_steps > 0:
        total = min(total, trainer.max_steps) if total else trainer.max_steps
    return steps_per_epoch, total


def _train_batches(trainer: L.Trainer) -> int | None:
    """Batches per epoch and process of the data module's training loader, built without iterating it."""
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is None:
        return None
    loader = datamodule.train_dataloader()
    if not isinstance(loader, torch.utils.data.DataLoader) or loader.batch_size is None:
        return None
    try:
        batches = len(loader)
    except TypeError:  # iterable dataset
        return None
    world = trainer.world_size
    if world > 1 and not isinstance(loader.sampler, torch.utils.data.DistributedSampler):
        samples = math.ceil(len(loader.dataset) / world)  # Lightning shards it
        batches = samples // loader.batch_size if loader.drop_last else math.ceil(samples / loader.batch_size)
    limit = trainer.limit_train_batches
    if isinstance(limit, int) and not isinstance(limit, bool):
        batches = min(batches, limit)
    elif limit is not None:
        batches = int(batches * float(limit))
    return batches
