"""Train and evaluate any task of ``glore.engine.TASKS`` with PyTorch Lightning.

- :func:`train` builds the task's module and data module from the config, seeds everything, and runs a
  ``lightning.Trainer`` that writes under ``cfg["output_dir"]``::

      config.yaml                       the merged config of the run
      checkpoints/last.ckpt             every epoch (atomic write)
      checkpoints/best.ckpt             best epoch by the module's ``monitor`` metric
      csv/version_N/metrics.csv         CSVLogger (with time/train_epoch_s: seconds per training epoch)
      tensorboard/version_N/            TensorBoardLogger
      metrics.json                      final validation metrics

  DDP: set ``trainer.strategy=ddp`` and ``trainer.devices`` (and ``trainer.num_nodes``) and start the
  command under ``torchrun`` (one process per device); Lightning picks up torchrun's environment.
- :func:`evaluate` rebuilds the run from the config stored in a checkpoint (plus overrides) and
  returns the validation metrics, through the task's ``evaluate(module, datamodule, cfg, **options)``
  when it defines one.
- :func:`load_model` returns the trained network and its config, for the analysis tools;
  :func:`restore` the whole task module (``glore predict`` and ``glore export`` use it).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import logging
import math
import os
import warnings
from types import ModuleType

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from glore.errors import ArgumentError, ConfigError, MissingFileError, ResumeError
from . import TASKS
from ..checkpoint import CheckpointError, read_checkpoint
from .atomic_checkpoint import AtomicCheckpointIO
from .config import DEFAULTS, apply_overrides, deep_merge, dump_config, to_plain, validate_config
from .precision import warn_if_bf16_is_emulated
from .run_folder import (check_resumable, check_weights_fit, refuse_earlier_run, remove_stale_temporaries,
                         run_folder_lock)
from .timing import EpochTimer

CHECKPOINT_DIR = "checkpoints"
# keys of cfg["model"] naming pretrained weights; cleared when a trained checkpoint supplies the weights
_PRETRAINED_KEYS = ("checkpoint", "pretrained", "inflate_from")  # weights the checkpoint already holds


def task_module(cfg: dict) -> ModuleType:
    """The ``glore.engine.<task>`` module of ``cfg["task"]``."""
    task = cfg.get("task")
    if task not in TASKS:
        raise ArgumentError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return importlib.import_module(TASKS[task])


# options of the ``trainer`` section that the engine itself carries out, not lightning.Trainer
_ENGINE_TRAINER_OPTIONS = ("compile", "channels_last")


def _trainer_kwargs(trainer_cfg: dict) -> dict:
    trainer_cfg = {k: v for k, v in trainer_cfg.items() if k not in _ENGINE_TRAINER_OPTIONS}
    # keys and types are checked by the config schema (glore.engine.schema.Trainer)
    return {k: v for k, v in trainer_cfg.items() if v is not None}


def _metrics(values: dict, prefix: str | None = None) -> dict:
    out = {}
    for key, value in values.items():
        if prefix and not key.startswith(prefix):
            continue
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)):
            out[key] = float(value)
    return dict(sorted(out.items()))


def _is_global_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _resolve_resume(resume: str | None, output_dir: str) -> str | None:
    if resume is None:
        return None
    if resume == "last":
        resume = os.path.join(output_dir, CHECKPOINT_DIR, "last.ckpt")
    if os.path.isdir(resume):
        raise ArgumentError(f"--resume {resume!r} is a folder; expected a checkpoint file or 'last'")
    if not os.path.isfile(resume):
        raise MissingFileError(f"checkpoint to resume from not found: {resume!r}")
    return resume


def config_writer(cfg: dict, path: str):
    """A Lightning callback writing ``cfg`` to ``path`` when training starts: after the optimizer, the
    schedule and a resumed checkpoint's state have been set up without error."""
    class WriteConfig(Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            if trainer.is_global_zero:
                dump_config(cfg, path)

    return WriteConfig()


@contextlib.contextmanager
def user_errors_of_training(cfg: dict, datamodule):
    """Errors of torch that a config value causes during training, as one-line :class:`ArgumentError`."""
    try:
        yield
    except ValueError as exc:
        if "Expected more than 1 value per channel when training" in str(exc):
            size = len(datamodule.train_set) if datamodule.train_set is not None else "?"
            batch = cfg["data"].get("batch_size")
            raise ArgumentError(
                f"a training batch of 1 sample reached a BatchNorm layer with 1x1 features ({size} training "
                f"samples, data.batch_size={batch}); use data.batch_size >= 2 and data.drop_last=true, or larger "
                "images") from exc
        raise


class _DropLightningTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_lightning() -> None:
    """Keep out of a run's output what Lightning prints that a glore user cannot act on: its tip to
    install a cloud logger, a deprecation inside Lightning's own pytree helper, and the note that an
    epoch has fewer batches than ``log_every_n_steps`` (the loggers count steps across epochs, so
    they still write at that interval)."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLightningTips) for f in logger.filters):
        logger.addFilter(_DropLightningTips())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging "
                                              r"interval")


def _accelerator_available(name: str) -> bool:
    if name in ("gpu", "cuda"):
        return torch.cuda.is_available() or (name == "gpu" and torch.backends.mps.is_available())
    if name == "mps":
        return torch.backends.mps.is_available()
    return True


def _make_trainer(**kwargs):
    """``lightning.Trainer(**kwargs)``; the accelerator, strategy, device and precision options it refuses
    raise one-line :class:`ConfigError` naming them."""
    quiet_lightning()
    accelerator = kwargs.get("accelerator", "auto")
    if isinstance(accelerator, str) and not _accelerator_available(accelerator):
        raise ConfigError(f"trainer.accelerator={accelerator!r}, but this machine has no such device; use "
                          "trainer.accelerator=cpu or auto")
    try:
        return L.Trainer(**kwargs)
    except (MisconfigurationException, ValueError) as exc:
        given = ", ".join(f"trainer.{k}={kwargs[k]!r}" for k in ("accelerator", "strategy", "devices", "num_nodes",
                                                               "precision") if k in kwargs)
        reason = " ".join(str(exc).split(". ")[0].split())
        raise ConfigError(f"lightning.Trainer refuses {given or 'the trainer options'}: {reason}") from None


def build_trainer(cfg: dict, *, monitor: str | None, mode: str = "max", for_eval: bool = False):
    """The ``lightning.Trainer`` of a run (checkpoints and loggers only when training)."""
    kwargs = _trainer_kwargs(dict(cfg["trainer"]))
    output_dir = os.fspath(cfg["output_dir"])
    if for_eval:
        for key in ("max_epochs", "max_steps", "accumulate_grad_batches", "gradient_clip_val",
                    "limit_train_batches", "check_val_every_n_epoch", "val_check_interval", "num_sanity_val_steps"):
            kwargs.pop(key, None)
        return _checked(_make_trainer(logger=False, enable_checkpointing=False, default_root_dir=output_dir,
                                     plugins=[AtomicCheckpointIO()], **kwargs))
    validating = kwargs.get("limit_val_batches", 1.0) not in (0, 0.0)
    ckpt_dir = os.path.join(output_dir, CHECKPOINT_DIR)
    common = dict(dirpath=ckpt_dir, save_top_k=1, every_n_epochs=1, auto_insert_metric_name=False,
                  enable_version_counter=False, save_last=False)
    # last.ckpt: every epoch (Lightning's save_last only follows a top-k save, so it is its own callback),
    # at the epoch's end where no validation follows (with check_val_every_n_epoch > 1 Lightning saves
    # after validation only, and the epochs after the last validation would be lost)
    # the learning rate is written at the loggers' interval only (a ``self.log`` per step cost about
    # 2 ms of Lightning's bookkeeping, 4% of a demo step)
    every_epoch = kwargs.get("check_val_every_n_epoch", 1) not in (1, None) or not validating
    interval, max_epochs = kwargs.get("check_val_every_n_epoch"), kwargs.get("max_epochs")
    if validating and interval and max_epochs and max_epochs != -1 and interval > max_epochs:
        warnings.warn(f"trainer.check_val_every_n_epoch={interval} exceeds trainer.max_epochs={max_epochs}: the run "
                      "is never validated (no best.ckpt, no metrics in metrics.json)", UserWarning, stacklevel=2)
    callbacks = [ModelCheckpoint(filename="last", monitor=None, save_on_train_epoch_end=every_epoch or None,
                                 **common), EpochTimer(),
                 LearningRateMonitor(logging_interval="step")]
    if validating and monitor:
        callbacks.append(ModelCheckpoint(filename="best", monitor=monitor, mode=mode, **common))
    if kwargs.get("enable_progress_bar", True):
        callbacks.append(TQDMProgressBar(refresh_rate=max(int(kwargs.get("log_every_n_steps", 10)), 1)))
    loggers = [
        CSVLogger(output_dir, name="csv"),
        TensorBoardLogger(output_dir, name="tensorboard", default_hp_metric=False),
    ]
    return _checked(_make_trainer(default_root_dir=output_dir, callbacks=callbacks, logger=loggers,
                                  plugins=[AtomicCheckpointIO()], **kwargs))


def _checked(trainer):
    """The trainer, after the one warning of a run that computes in bf16 the CPU only emulates."""
    if trainer.is_global_zero:
        warn_if_bf16_is_emulated(trainer.precision, isinstance(trainer.accelerator, CPUAccelerator))
    return trainer


def train(cfg: dict, *, resume: str | None = None, overwrite: bool = False) -> dict:
    """Train the run described by ``cfg``; return the final validation metrics.

    ``resume`` is a checkpoint path, or ``"last"`` for ``<output_dir>/checkpoints/last.ckpt``: the
    weights, optimizer, scheduler, epoch and step counters continue from it. Raises
    ``glore.engine.base.NonFiniteLossError`` when the loss becomes NaN/inf (the checkpoints of the
    last finished epoch are kept).

    Run folders (see :mod:`glore.engine.run_folder`): without ``resume``, a folder that already holds
    checkpoints is refused unless ``overwrite``; a lock file keeps a second run out of a folder in use;
    a resume is checked against the checkpoint (task, network, ``max_epochs``) before anything is written.
    """
    cfg = validate_config(to_plain(cfg))
    task = task_module(cfg)
    output_dir = os.fspath(cfg["output_dir"])
    resume = _resolve_resume(resume, output_dir)
    # every check that can refuse the run comes before anything is written to the run folder
    checkpoint = read_checkpoint(resume) if resume is not None else None
    if checkpoint is not None:
        check_resumable(checkpoint, resume, cfg)
    if not overwrite:
        refuse_earlier_run(output_dir, resume=resume)
    L.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    module = task.build_module(cfg)
    if checkpoint is not None:
        check_weights_fit(checkpoint, resume, module)
        del checkpoint
    compile_network(module, cfg["trainer"].get("compile", False))
    datamodule = task.build_datamodule(cfg)
    datamodule.setup("fit")          # the datasets and their options are checked before any write
    with run_folder_lock(output_dir, rank_zero=_is_global_zero()):
        trainer = build_trainer(cfg, monitor=getattr(module, "monitor", None),
                                mode=getattr(module, "monitor_mode", "max"))
        if trainer.is_global_zero:
            remove_stale_temporaries(os.path.join(output_dir, CHECKPOINT_DIR))
            trainer.callbacks.append(config_writer(cfg, os.path.join(output_dir, "config.yaml")))
        with user_errors_of_training(cfg, datamodule):
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
        metrics = _metrics(trainer.callback_metrics, prefix="val/")
        if trainer.is_global_zero:
            write_metrics(metrics, os.path.join(output_dir, "metrics.json"))
    return metrics


def compile_network(module, enabled) -> None:
    """``trainer.compile``: compile the task's network (``module.model``) in place with
    ``torch.compile``, so that checkpoints keep the same parameter names."""
    if not isinstance(enabled, bool):
        raise ArgumentError(f"trainer.compile must be true or false, got {enabled!r}")
    if enabled:
        network = getattr(module, "model", None)
        if not isinstance(network, torch.nn.Module):
            raise ArgumentError(f"trainer.compile: {type(module).__name__} keeps no network at .model to compile")
        network.compile()


def write_metrics(metrics: dict, path: str) -> None:
    """Write ``metrics`` as JSON (non-finite numbers as strings)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in metrics.items()}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(clean, handle, indent=2)
        handle.write("\n")


def _checkpoint_cfg(checkpoint: dict, path: str) -> dict:
    try:
        cfg = checkpoint["hyper_parameters"]["cfg"]
    except (KeyError, TypeError):
        raise CheckpointError(f"checkpoint {path!r} holds no glore run config (hyper_parameters.cfg); "
                              "expected a checkpoint written by `glore train`") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"checkpoint {path!r}: its run config is a {type(cfg).__name__}, expected a mapping")
    lacking = [key for key in ("task", "model", "data") if not isinstance(cfg.get(key), (str, dict))]
    if lacking:
        raise CheckpointError(f"checkpoint {path!r}: its run config lacks {', '.join(lacking)} (keys: "
                              f"{', '.join(map(str, cfg)) or 'none'}); expected a checkpoint written by `glore train`")
    # keys added to the schema after the checkpoint was written take their defaults
    return deep_merge(DEFAULTS, to_plain(cfg))


def restore(checkpoint_path: str, overrides=()) -> tuple:
    """``(task module, LightningModule, cfg)`` of a training checkpoint: the run rebuilt from its stored
    config (plus ``overrides``) with the trained weights and the stored ``class_names``."""
    checkpoint_path = os.fspath(checkpoint_path)
    checkpoint = read_checkpoint(checkpoint_path)
    cfg = validate_config(apply_overrides(_checkpoint_cfg(checkpoint, checkpoint_path), overrides))
    for key in _PRETRAINED_KEYS:
        if cfg["model"].get(key):
            cfg["model"][key] = None
    model_cfg = cfg["model"]
    if cfg["task"] == "detection" and model_cfg.get("pretrained_backbone"):
        # the layout pretrained weights gave (frozen BatchNorm, 3 trained stages), without downloading them
        model_cfg["frozen_bn"] = True if model_cfg.get("frozen_bn") is None else model_cfg["frozen_bn"]
        model_cfg["trainable_layers"] = 3 if model_cfg.get("trainable_layers") is None else model_cfg["trainable_layers"]
        model_cfg["pretrained_backbone"] = False
    task = task_module(cfg)
    module = task.build_module(cfg)
    if not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"checkpoint {checkpoint_path!r} has no state_dict")
    try:
        check_weights_fit(checkpoint, checkpoint_path, module)
    except ResumeError as exc:
        raise CheckpointError(str(exc).replace("cannot resume from", "cannot load", 1)) from None
    module.load_state_dict(checkpoint["state_dict"])
    if isinstance(checkpoint.get("class_names"), list):
        module.class_names = checkpoint["class_names"]
    return task, module, cfg


def load_model(checkpoint: str) -> tuple[torch.nn.Module, dict]:
    """Return ``(network, cfg)`` from a training checkpoint: the task module's ``model`` attribute (the
    network without loss/metrics) in eval mode, and the run config."""
    _, module, cfg = restore(checkpoint)
    network = getattr(module, "model", None)
    if not isinstance(network, torch.nn.Module):
        network = module
    return network.eval(), cfg


def check_evaluation_options(custom, options: dict, task: str) -> None:
    """Refuse ``--opt`` names that the task's ``evaluate`` does not take, listing those it does."""
    parameters = list(inspect.signature(custom).parameters.values())[3:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return  # the task checks its own options
    accepted = [p.name for p in parameters]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ArgumentError(f"unknown evaluation option(s) {unknown} for task {task!r}; "
                            f"expected some of {', '.join(accepted) or '(none)'}")


def evaluate(checkpoint: str, *, overrides=(), **options) -> dict:
    """Evaluate a checkpoint on the validation split of its config (with ``overrides`` applied).

    ``options`` go to the task's ``evaluate(module, datamodule, cfg, **options)``; a task without one
    is evaluated with ``Trainer.validate`` and accepts no options.
    """
    task, module, cfg = restore(checkpoint, overrides)
    L.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    datamodule = task.build_datamodule(cfg)
    custom = getattr(task, "evaluate", None)
    if custom is not None:
        check_evaluation_options(custom, options, cfg["task"])
        return custom(module, datamodule, cfg, **options)
    if options:
        raise ArgumentError(f"task {cfg['task']!r} takes no evaluation options, got {sorted(options)}")
    return run_validation(module, datamodule, cfg)


def run_validation(module, datamodule, cfg: dict, *, callbacks=()) -> dict:
    """``Trainer.validate`` of ``module`` on ``datamodule`` (one device, no loggers or checkpoints,
    plus ``callbacks``); the logged metrics as floats."""
    eval_cfg = dict(cfg)
    eval_cfg["trainer"] = {k: v for k, v in cfg["trainer"].items() if k not in ("strategy", "sync_batchnorm")}
    eval_cfg["trainer"]["devices"] = 1
    eval_cfg["trainer"]["num_nodes"] = 1
    trainer = build_trainer(eval_cfg, monitor=None, for_eval=True)
    trainer.callbacks.extend(callbacks)
    results = trainer.validate(module, datamodule=datamodule, verbose=False)
    merged = {}
    for result in results:
        merged.update(result)
    return _metrics(merged)
