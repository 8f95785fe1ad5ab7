"""Guards of a run folder (``output_dir``): nothing of an earlier run is lost, and nothing is
written for a run that is refused.

- :func:`refuse_earlier_run`: a fresh run into a folder that holds checkpoints is refused
  (``glore train --overwrite`` replaces them, ``--resume last`` continues them).
- :func:`check_resumable`, :func:`check_weights_fit`: the checkpoint to resume must be of the same
  task, model and block, have no more finished epochs than ``trainer.max_epochs``, and hold weights
  that fit the network the config builds.
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

LOCK_NAME = ".glore.lock"


def refuse_earlier_run(output_dir: str) -> None:
    checkpoints = sorted(glob.glob(os.path.join(output_dir, "checkpoints", "*.ckpt")))
    if checkpoints:
        names = ", ".join(os.path.basename(p) for p in checkpoints)
        raise RunFolderError(
            f"output_dir {output_dir!r} holds an earlier run ({names}); choose another output_dir, "
            "continue it with --resume last, or replace it with --overwrite"
        )


def finished_epochs(checkpoint: dict) -> int:
    try:
        return int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return int(checkpoint.get("epoch", 0))


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
    for key in ("name", "block"):
        before, now = (stored.get("model") or {}).get(key), cfg["model"].get(key)
        if before != now:
            raise ResumeError(f"cannot resume from {path!r}: it was trained with model.{key}={before!r}, "
                              f"the config has model.{key}={now!r}")
    max_epochs = cfg["trainer"].get("max_epochs")
    done = finished_epochs(checkpoint)
    if max_epochs is not None and max_epochs != -1 and max_epochs < done:
        raise ResumeError(f"cannot resume from {path!r}: it has finished {done} epochs, more than "
                          f"trainer.max_epochs={max_epochs}; raise trainer.max_epochs")


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


@contextlib.contextmanager
def run_folder_lock(output_dir: str, *, rank_zero: bool = True):
    """Hold ``<output_dir>/.glore.lock`` (rank zero only: the other DDP ranks share its run)."""
    if not rank_zero:
        yield
        return
    os.makedirs(output_dir, exist_ok=True)
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
