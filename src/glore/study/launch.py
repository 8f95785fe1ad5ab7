"""Running a study's runs: local worker processes (``concurrent.futures``), or a cluster through
submitit (SLURM, or its local executor). Each run is a ``glore train`` process of its own, writing
its log to ``<run folder>.log``; a run whose folder holds final metrics is not run again, and one that
was stopped resumes from its last checkpoint, so a killed study picks up where it stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

import submitit

from .spec import Launcher, Run

Finished = Callable[[Run, int], None]   # called with a run and its exit code when it ends


def auto_workers(launcher: Launcher) -> tuple[int, int]:
    """``(workers, threads per run)``: as many runs at once as the cores and the available memory
    hold (each ``threads_per_run`` threads and ``memory_per_run_gb``)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = launcher.threads_per_run or 1
    if launcher.workers != "auto":
        return launcher.workers, launcher.threads_per_run or max(1, cores // launcher.workers)
    try:
        available_gb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError):
        available_gb = float("inf")
    return max(1, min(cores // threads, int(available_gb // launcher.memory_per_run_gb))), threads


def command(run: Run, launcher: Launcher) -> list[str]:
    """The process a run is: ``python -m glore train ...``, or under torchrun when the launcher
    names it (one process per device)."""
    if launcher.torchrun:
        options = [f"--{key}={value}" for key, value in launcher.torchrun.items()]
        return [sys.executable, "-m", "torch.distributed.run", *options, "-m", "glore", *run.train_args()]
    return [sys.executable, "-m", "glore", *run.train_args()]


def execute(cmd: Sequence[str], log_path: str, threads: int | None = None) -> int:
    """Run ``cmd`` with its output appended to ``log_path``; its exit code. (The function that
    submitit's jobs run, so it is importable and takes plain values.)"""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = env["GLORE_TEST_THREADS"] = str(threads)
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        return subprocess.run(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode


def run_local(runs: Sequence[Run], launcher: Launcher, on_finish: Finished) -> dict[Run, int]:
    """Run ``runs`` on local worker processes; ``{run: exit code}``."""
    workers, threads = auto_workers(launcher)
    codes = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {}
        for run in runs:
            futures[pool.submit(execute, command(run, launcher), str(run.log_path), threads)] = run
        for future in as_completed(futures):
            run = futures[future]
            codes[run] = future.result()
            on_finish(run, codes[run])
    return codes


def run_submitit(runs: Sequence[Run], launcher: Launcher, folder: str, on_finish: Finished) -> dict[Run, int]:
    """Submit ``runs`` as jobs through submitit (``launcher.submitit.cluster``: ``slurm``, ``local``,
    ``debug``, or ``None`` for submitit's choice) and wait for them; ``{run: exit code}``."""

    options = launcher.submitit.model_dump()
    cluster = options.pop("cluster")
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(**options)
    jobs = {}
    for run in runs:
        jobs[run] = executor.submit(execute, command(run, launcher), str(run.log_path), launcher.threads_per_run)
    codes = {}
    for run, job in jobs.items():
        try:
            codes[run] = job.result()
        except Exception:  # the job itself failed (cancelled, timed out): its log holds why
            codes[run] = -1
        on_finish(run, codes[run])
    return codes
