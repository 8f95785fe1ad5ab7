"""The LightningModule base class shared by the tasks (classification, segmentation, video).

Interface for a task module (subclass :class:`TaskModule`):

- ``__init__(self, cfg)``: call ``super().__init__(cfg)`` first; ``self.cfg`` is then the plain run
  config (saved as the ``cfg`` hyper-parameter, so the checkpoint holds it). Build the network and
  the torchmetrics objects there; keep the network (without loss and metrics) at ``self.model`` so
  ``glore.engine.runner.load_model`` can hand it to the analysis tools.
- implement ``forward``, ``training_step`` (return the loss; pass it to ``log_train_loss``) and
  ``validation_step`` (update metrics; log ``val/...`` with ``sync_dist=True`` or via torchmetrics
  objects so DDP runs reduce them).
- class attributes ``monitor`` (the metric that picks ``best.ckpt``, e.g. ``"val/acc1"``) and
  ``monitor_mode`` (``"max"`` or ``"min"``).
- optionally override ``optimizer_param_groups()`` (e.g. a larger LR for a head); the default is the
  whole module, split by ``optim.no_weight_decay_on_norm_and_bias``.

What the base class does:

- ``configure_optimizers`` builds the optimizer and a per-step LR schedule from ``cfg["optim"]`` via
  :mod:`glore.engine.optim`, with the steps per epoch Lightning reports for the current run (so
  DDP and gradient accumulation are accounted for).
- ``on_train_batch_start`` seeds torch's global RNG (dropout, stochastic depth) from ``(seed,
  epoch, batch, rank)``: a run resumed from ``last.ckpt`` then draws what an uninterrupted one
  would have. Subclasses that override the hook call ``super().on_train_batch_start(...)``.
- ``on_save_checkpoint`` stores the labels' names (``class_names`` of the data module, see
  :meth:`glore.engine.datamodule.TaskData.class_names`) as the checkpoint's ``class_names`` entry;
  :func:`glore.checkpoint.checkpoint_class_names` reads them back.
- ``on_before_backward`` stops the run with :class:`NonFiniteLossError` (naming the global step,
  epoch and batch) as soon as the training loss is NaN or infinite, before the bad gradients touch
  the weights. Checkpoints are written only at epoch ends, so ``last.ckpt`` and ``best.ckpt`` still
  hold the last good state. Under DDP the decision is taken jointly by all processes so none hangs.
"""

from __future__ import annotations

import lightning as L
import torch
import torchmetrics

from glore.errors import GloreError
from glore._internals.lightning_state import attached_trainer, optimizer_steps, should_update_logs
from .config import to_plain
from .loaders import seed_generators
from .optim import build_optimizer, build_scheduler


class NonFiniteLossError(GloreError, FloatingPointError):
    """The training loss became NaN or infinite; the message names the step."""


class NonFiniteInputError(GloreError, FloatingPointError):
    """An input sample holds NaN or infinite values; the message names the batch and the sample."""


def first_non_finite_sample(inputs) -> int | None:
    """Index of the first sample of ``inputs`` (a batched tensor or a list of per-sample tensors)
    holding NaN or infinity; ``None`` when all are finite."""
    if isinstance(inputs, torch.Tensor) and inputs.is_floating_point() and inputs.dim() > 0:
        bad = ~torch.isfinite(inputs.detach()).flatten(1).all(dim=1) if inputs.dim() > 1 else ~torch.isfinite(inputs)
        return int(bad.nonzero()[0, 0]) if bool(bad.any()) else None
    if isinstance(inputs, (list, tuple)):
        for index, item in enumerate(inputs):
            if isinstance(item, torch.Tensor) and item.is_floating_point() and not bool(torch.isfinite(item).all()):
                return index
    return None


def check_finite_input(batch, batch_idx: int) -> None:
    """Raise :class:`NonFiniteInputError` naming the batch and sample when the inputs of an evaluation
    ``batch`` (``(inputs, targets, ...)`` or ``{"image": inputs, ...}``) hold NaN or infinity."""
    if isinstance(batch, dict):
        inputs = batch.get("image")
    else:
        inputs = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
    sample = first_non_finite_sample(inputs)
    if sample is not None:
        raise NonFiniteInputError(f"validation batch {batch_idx}, sample {sample}: the input holds NaN or "
                                  "infinite values; check the data (or its normalisation)")


class TaskModule(L.LightningModule):
    """Base class of the task modules; see the module docstring for the interface."""

    monitor: str = "val/loss"
    monitor_mode: str = "min"

    def __init__(self, cfg: dict):
        super().__init__()
        cfg = to_plain(cfg)
        self.save_hyperparameters({"cfg": cfg})
        self.cfg = cfg
        self.train_loss = torchmetrics.MeanMetric()      # the epoch's train/loss, batch-weighted
        self.class_names: list | None = None             # from the data module at the first save
        self.batch_index = -1                            # of the epoch's current training batch

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.class_names is None:
            datamodule = getattr(attached_trainer(self), "datamodule", None)
            names = getattr(datamodule, "class_names", None)
            self.class_names = names() if callable(names) else None
        if self.class_names is not None:
            checkpoint["class_names"] = list(self.class_names)

    # -- the training loss: train/loss_step, train/loss_epoch ----------------------------------
    def log_train_loss(self, loss: torch.Tensor, batch_size: int) -> None:
        """Call from ``training_step``: ``train/loss_step`` where the loggers write (every
        ``log_every_n_steps``), ``train/loss_epoch`` (mean over the epoch's samples and processes)
        at the end of the epoch. A ``self.log`` call costs Lightning about 2 ms of bookkeeping, 4%
        of a ``make demo`` step, so the step value is not logged where no logger would write it
        (the test Lightning's own ``LearningRateMonitor`` uses)."""
        self.train_loss.update(loss.detach(), weight=batch_size)
        if should_update_logs(self.trainer):
            self.log("train/loss_step", loss.detach(), prog_bar=True, on_step=True, on_epoch=False,
                     batch_size=batch_size)

    def on_train_epoch_end(self) -> None:
        self.log("train/loss_epoch", self.train_loss.compute(), on_step=False, on_epoch=True)
        self.train_loss.reset()

    # -- optimisation -------------------------------------------------------------------------
    def optimizer_param_groups(self):
        """What the optimizer updates: a module (default ``self``), an iterable of parameters or of
        param-group dicts."""
        return self

    def configure_optimizers(self):
        optim_cfg = self.cfg["optim"]
        optimizer = build_optimizer(self.optimizer_param_groups(), optim_cfg)
        steps_per_epoch, total = optimizer_steps(self.trainer)
        max_epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        scheduler = build_scheduler(optimizer, optim_cfg, steps_per_epoch, max_epochs, total_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "lr"}}

    # -- reproducible resume ------------------------------------------------------------------
    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self.batch_index = batch_idx
        seed = int(self.cfg.get("seed") or 0)
        key = ((seed * 1_000_003 + self.current_epoch) * 1_000_033 + batch_idx) * 1_009 + self.global_rank
        seed_generators(key, self.device)

    # -- non-finite input guard (evaluation has no loss check; a NaN would also poison BatchNorm) --
    def on_validation_batch_start(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        check_finite_input(batch, batch_idx)

    # -- non-finite loss guard ---------------------------------------------------------------
    def on_before_backward(self, loss: torch.Tensor) -> None:
        finite = bool(torch.isfinite(loss.detach()).all())
        trainer = attached_trainer(self)
        if trainer is not None and trainer.world_size > 1:
            finite = bool(trainer.strategy.reduce_boolean_decision(finite, all=True))
        if not finite:
            epoch = self.current_epoch
            batch = self.batch_index
            value = loss.detach().float().cpu().item() if loss.numel() == 1 else "non-finite"
            raise NonFiniteLossError(
                f"training loss is {value} at global step {self.global_step} (epoch {epoch}, batch {batch}); "
                "stopping. The last good checkpoint (last.ckpt / best.ckpt from the previous epoch) is kept."
            )
