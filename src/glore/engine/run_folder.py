"""Guards of a run folder (``output_dir``): nothing of an earlier run is lost, and nothing is
written for a run that is refused.

- :func:`refuse_earlier_run`: a fresh run into a folder that holds an earlier run's results
  (checkpoints, ``metrics.json`` or ``config.yaml``) is refused (``glore train --overwrite`` replaces
  them, ``--resume last`` continues them); so is a resume from another folder's checkpoint into it.
- :func:`check_resumable`, :func:`check_weights_fit`: the checkpoint to resume must be of the same
  task, model, block and optimizer, must not have finished its run already, may lengthen the run
  only under a schedule that does not span it, and must hold weights that fit the network the config
  builds.
- :func:`run_folder_lock`: ``<output_dir>/.glore.lock`` (``filelock``) keeps a second run out of a
  folder in use; the lock is not waited for.
- :func:`remove_stale_temporaries`: ``.*.tmp`` files left by a checkpoint write that was killed.
"""

from __future__ import annotations

import contextlib
import glob
import os

import filelock
import torch

from glore.errors import ResumeError, RunFolderError
from glore._internals.lightning_state import checkpoint_next_epoch
from .config import DEFAULTS

LOCK_NAME = ".glore.lock"


# what a run writes that a later run would replace
RESULT_FILES = ("config.yaml", "metrics.json")
# schedules whose length is the run's: a resume cannot lengthen or shorten them
SPANNING_SCHEDULES = ("cosine", "poly", "onecycle")


def earlier_results(output_dir: str) -> list[str]:
    """The results of an earlier run in ``output_dir`` (relative paths): checkpoints, ``config.yaml``,
    ``metrics.json``."""
    found = [os.path.join("checkpoints", os.path.basename(p))
             for p in sorted(glob.glob(os.path.join(output_dir, "checkpoints", "*.ckpt")))]
    return found + [name for name in RESULT_FILES if os.path.exists(os.path.join(output_dir, name))]


def refuse_earlier_run(output_dir: str, *, resume: str | None = None) -> None:
    """Refuse a run into a folder holding an earlier run's results: always for a fresh run, and for a
    resume whose checkpoint lies outside ``<output_dir>/checkpoints``."""
    if resume is not None:
        inside = os.path.realpath(os.path.join(output_dir, "checkpoints"))
        if os.path.dirname(os.path.realpath(resume)) == inside:
            return
    found = earlier_results(output_dir)
    if not found:
        return
    if resume is not None:
        raise RunFolderError(
            f"output_dir {output_dir!r} holds another run ({', '.join(found)}) than the checkpoint {resume!r}; "
            "choose another output_dir, or replace that run with --overwrite"
        )
    raise RunFolderError(
        f"output_dir {output_dir!r} holds an earlier run ({', '.join(found)}); choose another output_dir, "
        "continue it with --resume last, or replace it with --overwrite"
    )


def finished_epochs(checkpoint: dict) -> int:
    return checkpoint_next_epoch(checkpoint)


def check_resumable(checkpoint: dict, path: str, cfg: dict) -> None:
    """Raise :class:`ResumeError` when ``checkpoint`` cannot continue the run of ``cfg`` (checked
    before the network is built: another task's config may not even build)."""
    stored = (checkpoint.get("hyper_parameters") or {}).get("cfg")
    if not isinstance(stored, dict):
        raise ResumeError(f"cannot resume from {path!r}: it holds no glore run config; "
                          "expected a checkpoint written by glore train")
    if stored.get("task") != cfg.get("task"):
        raise ResumeError(f"cannot resume from {path!r}: it is a {stored.get('task')!r} run, "
                          f"the config is task={cfg.get('task')!r}")
    # the optimizer's state (its buffers, its parameter groups) only fits the same optimizer
    for section, key in (("model", "name"), ("model", "block"), ("optim", "name"),
                         ("optim", "no_weight_decay_on_norm_and_bias"), ("optim", "schedule")):
        default = DEFAULTS[section].get(key)          # a key the checkpoint's glore did not write yet
        before, now = (stored.get(section) or {}).get(key, default), (cfg.get(section) or {}).get(key, default)
        if before != now:
            raise ResumeError(f"cannot resume from {path!r}: it was trained with {section}.{key}={before!r}, "
                              f"the config has {section}.{key}={now!r}")
    trainer, stored_trainer = cfg["trainer"], stored.get("trainer") or {}
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps")
    done, steps = finished_epochs(checkpoint), int(checkpoint.get("global_step", 0) or 0)
    if max_epochs is not None and max_epochs != -1 and max_epochs < done:
        raise ResumeError(f"cannot resume from {path!r}: it has finished {done} epochs, more than "
                          f"trainer.max_epochs={max_epochs}; raise trainer.max_epochs")
    schedule = (cfg.get("optim") or {}).get("schedule")
    if (max_epochs not in (None, -1) and done >= max_epochs) or (max_steps not in (None, -1) and steps >= max_steps):
        further = (f"its {schedule} schedule has ended; start a new run to train more" if schedule in SPANNING_SCHEDULES
                   else "raise trainer.max_epochs to train on")
        raise ResumeError(f"nothing to resume from {path!r}: its run has finished ({done} epochs, {steps} steps; "
                          f"trainer.max_epochs={max_epochs}, trainer.max_steps={max_steps}) and nothing was "
                          f"changed; {further}")
    for key in ("max_epochs", "max_steps"):
        before, now = stored_trainer.get(key), trainer.get(key)
        if schedule in SPANNING_SCHEDULES and before is not None and before != now:
            raise ResumeError(f"cannot resume from {path!r} with trainer.{key}={now}: its {schedule} schedule "
                              f"spans trainer.{key}={before} (its learning rate has reached the end); resume "
                              f"with trainer.{key}={before}, or start a new run")


def check_weights_fit(checkpoint: dict, path: str, module: torch.nn.Module) -> None:
    """Raise :class:`ResumeError` when the checkpoint's weights do not fit ``module``."""
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise ResumeError(f"cannot resume from {path!r}: it has no state_dict")
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(k for k in set(expected) & set(state)
                       if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or misshapen:
        detail = "; ".join(f"{label} {names[:3]}{' ...' if len(names) > 3 else ''}"
                           for label, names in (("missing", missing), ("unexpected", unexpected),
                                                ("other shape", misshapen)) if names)
        raise ResumeError(f"cannot resume from {path!r}: its weights do not fit the network of the config "
                          f"({detail})")


def make_output_dir(output_dir: str) -> None:
    """Create ``output_dir``; :class:`RunFolderError` when it is a file, lies under a file, or cannot be
    written."""
    if not output_dir:
        raise RunFolderError("output_dir is empty; expected a folder path (--output-dir DIR)")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise RunFolderError(f"output_dir {output_dir!r} is a file; expected a folder")
    try:
        os.makedirs(output_dir, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = os.path.abspath(output_dir)
        while not os.path.exists(blocking) and os.path.dirname(blocking) != blocking:
            blocking = os.path.dirname(blocking)
        raise RunFolderError(f"cannot create output_dir {output_dir!r}: {blocking!r} on its path is a file, "
                             "not a folder") from None
    except PermissionError:
        raise RunFolderError(f"cannot create output_dir {output_dir!r}: permission denied; choose a folder "
                             "you can write to") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise RunFolderError(f"output_dir {output_dir!r} is not writable; choose a folder you can write to")


@contextlib.contextmanager
def run_folder_lock(output_dir: str, *, rank_zero: bool = True):
    """Hold ``<output_dir>/.glore.lock`` (rank zero only: the other DDP ranks share its run)."""
    if not rank_zero:
        yield
        return
    make_output_dir(output_dir)
    lock = filelock.FileLock(os.path.join(output_dir, LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise RunFolderError(f"output_dir {output_dir!r} is in use by another glore run "
                             f"(lock file {LOCK_NAME}); wait for it or choose another output_dir") from None
    try:
        yield
    finally:
        lock.release()


def remove_stale_temporaries(checkpoint_dir: str) -> list[str]:
    """Delete ``.*.tmp`` files of interrupted checkpoint writes; call it while holding the lock."""
    stale = sorted(glob.glob(os.path.join(checkpoint_dir, ".*.tmp")))
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    return stale
