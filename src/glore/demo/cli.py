"""The demo's command line: ``python -m glore.demo`` and ``glore demo [image|video]``.

Imported by the ``glore`` command to register ``glore demo``, so it imports nothing of the engine:
the variants are trained by :func:`glore.demo.run`, looked up when the command runs.
"""

from __future__ import annotations

import argparse

import glore.demo
from glore.cli.options import add_output_dir

__all__ = ["DESCRIPTION", "main", "register"]

VARIANTS = {"baseline": None, "glore": "glore", "gc": "gc", "nl": "nl"}     # variant -> its block
TASKS = ("image", "video")
DEFAULT_OUTPUT = {"image": "results/demo", "video": "results/demo_video"}

DESCRIPTION = ("make demo: baseline vs + GloRe / + GC / + NL on distant-digits (or, for video, distant-clips), "
               "trained through glore train with one budget and one seed.")


def _add_arguments(parser: argparse.ArgumentParser, *, task_positional: bool = False) -> None:
    if task_positional:       # glore demo [image|video]
        parser.add_argument("task", nargs="?", choices=TASKS, default="image",
                            help="image: distant-digits (make demo); video: distant-clips")
    else:
        parser.add_argument("--task", choices=TASKS, default="image",
                            help="image: distant-digits (make demo); video: distant-clips")
    add_output_dir(parser, help="folder of the runs, table and figures (default results/demo, for video "
                                "results/demo_video)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of every variant's run and data (default 0)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per variant (default: the demo's budget)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated variants to train (default {','.join(VARIANTS)})")
    parser.add_argument("--train-samples", type=int, default=None, help="training images (default: the budget's)")
    parser.add_argument("--val-samples", type=int, default=None, help="validation images (default: the budget's)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _run_args(args: argparse.Namespace) -> int:
    defaults = glore.demo.budget(args.task)
    budget = {key: defaults[key] if value is None else value
              for key, value in (("epochs", args.epochs), ("train_samples", args.train_samples),
                                 ("val_samples", args.val_samples))}
    glore.demo.run(args.output or DEFAULT_OUTPUT[args.task], seed=args.seed,
        variants=[v.strip() for v in args.variants.split(",") if v.strip()],
        progress=not args.no_progress, threads=args.threads, task=args.task, **budget)
    return 0


def register(subparsers) -> None:
    """``glore demo [image|video]``: the same as ``python -m glore.demo [--task video]``."""
    p = subparsers.add_parser("demo", help="baseline vs + GloRe / GC / NL on a built-in relational task",
                              description=DESCRIPTION)
    _add_arguments(p, task_positional=True)
    p.set_defaults(func=_run_args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m glore.demo", description=DESCRIPTION)
    _add_arguments(parser)
    return _run_args(parser.parse_args(argv))
