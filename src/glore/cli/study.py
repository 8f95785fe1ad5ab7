"""``glore study``: a grid of config variants x seeds, each a ``glore train`` run, with statistics.

    glore study --config configs/studies/significance_digits.yaml
    glore study --config configs/studies/significance_digits.yaml --status
    glore study --config STUDY.yaml --launcher submitit      # SLURM through submitit

Runs go to local worker processes (as many as the cores and memory hold) or through submitit; a run
that finished is not run again and a stopped one resumes from its last checkpoint, so the same
command continues a killed study. The tables and plots go to the study's output_dir.
"""

from __future__ import annotations

import argparse
import sys

from glore.errors import GloreError


class StudyError(GloreError):
    """Some runs of a study did not finish; the message names their logs."""


def grid(spec, runs) -> str:
    """The study's progress: one row per variant, one column per seed."""
    from glore.study.report import run_state, run_value

    width = max(len(v) for v in spec.variants) + 2
    lines = [" " * width + "".join(f"seed {s:<6}" for s in spec.seeds)]
    for name in spec.variants:
        cells = []
        for run in (r for r in runs if r.variant == name):
            state, value = run_state(run), run_value(run, spec)
            cells.append(f"{value:<11.4f}" if value is not None else f"{state:<11}")
        lines.append(f"{name:<{width}}" + "".join(cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from glore.study import launch, report
    from glore.study.spec import check_settings, expand, load_study

    spec = load_study(args.config)
    if args.launcher:
        spec.launcher.name = args.launcher
    if args.workers:
        spec.launcher.workers = args.workers
    runs = expand(spec)
    check_settings(runs)
    todo = [r for r in runs if report.run_state(r) not in ("done", "diverged")]
    print(f"study {spec.name!r}: {len(runs)} runs, {len(runs) - len(todo)} finished, {len(todo)} to run")
    print(grid(spec, runs), flush=True)
    if todo and not args.status:
        def on_finish(run, code):
            print(f"{run.variant} seed {run.seed}: {report.record_exit(run, code)}", flush=True)

        for r in todo:
            r.record_settings()
        if spec.launcher.name == "submitit":
            launch.run_submitit(todo, spec.launcher, f"{spec.output_dir}/submitit", on_finish)
        else:
            launch.run_local(todo, spec.launcher, on_finish)
        print(grid(spec, runs))
    results = report.collect(spec, runs)
    report.write(results, spec, runs, spec.output_dir)
    print(report.markdown(results), end="")
    print(f"written: {spec.output_dir}/summary.md, summary.csv, runs.csv, results.json, points.png, curves.png")
    failed = [r for r in runs if report.run_state(r) == "failed"]
    if failed and not args.status:
        logs = ", ".join(str(r.log_path) for r in failed[:3])
        raise StudyError(f"{len(failed)} of {len(runs)} runs failed; see {logs}"
                         + (" ..." if len(failed) > 3 else ""))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("study", help="variants x seeds of glore train runs, with statistics",
                              description="A grid of config variants x seeds, each a glore train run, with statistics.")
    p.add_argument("--config", required=True, metavar="STUDY.yaml", help="the study file (configs/studies/...)")
    p.add_argument("--status", action="store_true", help="show the grid and the statistics so far; run nothing")
    p.add_argument("--launcher", choices=("local", "submitit"), default=None,
                   help="override the study file's launcher.name")
    p.add_argument("--workers", type=int, default=None, help="local: runs at once (default: the study file's)")
    p.set_defaults(func=run)


