"""``glore train`` and ``glore evaluate``.

::

    glore train --config configs/classification/cub200_resnet18_glore.yaml data.root=/data/CUB_200_2011
    glore train --config ... --resume last            # or --resume path/to/last.ckpt
    torchrun --nproc_per_node 4 -m glore train --config ... trainer.strategy=ddp trainer.devices=4
    glore evaluate --checkpoint runs/cub/checkpoints/best.ckpt [key=value ...] [--opt name=value ...]

Positional ``key.sub=value`` arguments override the config (values parsed as YAML). Evaluation options
of a task (``--opt sliding_window=true``, ``--opt clips=10``; shortcuts ``--sliding-window``,
``--clips N`` and ``--save-predictions DIR``) go to the task's ``evaluate``.
"""

from __future__ import annotations

import os

import yaml

from glore.errors import ArgumentError


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def format_metrics(metrics: dict) -> str:
    """A two-column text table of ``metrics``."""
    if not metrics:
        return "(no metrics)"
    width = max(len(k) for k in metrics)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ------"]
    for key, value in metrics.items():
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)


def parse_options(items) -> dict:
    """Parse ``--opt`` items: ``["clips=10", "sliding_window=true"]`` -> ``{"clips": 10, "sliding_window": True}``."""
    from ..engine.config import yaml_load

    options = {}
    for item in items or ():
        if "=" not in item:
            raise ArgumentError(f"--opt expects name=value, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if not key.isidentifier():
            raise ArgumentError(f"--opt name must be an identifier, got {key!r} in {item!r}")
        options[key] = yaml_load(raw) if raw.strip() else None
    return options


def _train(args) -> int:
    from ..engine.config import load_config
    from ..engine.runner import train

    overrides = list(args.overrides)
    if args.output_dir is not None:
        if not args.output_dir.strip():
            raise ArgumentError(f"--output-dir is empty ({args.output_dir!r}); expected a folder path")
        overrides.append(f"output_dir={args.output_dir}")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        from ..engine.config import filled_config, to_plain

        print(yaml.safe_dump(to_plain(filled_config(cfg)), sort_keys=False), end="")
        return 0
    metrics = train(cfg, resume=args.resume, overwrite=args.overwrite)
    if _is_rank_zero():
        print(format_metrics(metrics))
        print(f"outputs in {cfg['output_dir']}")
    return 0


def _default_eval_dir(checkpoint: str) -> str:
    parent = os.path.dirname(os.path.abspath(checkpoint))
    return os.path.dirname(parent) if os.path.basename(parent) == "checkpoints" else parent


def _evaluate(args) -> int:
    from ..engine.runner import evaluate, write_metrics

    options = parse_options(args.opt)
    if args.sliding_window:
        options["sliding_window"] = True
    if args.clips is not None:
        options["clips"] = args.clips
    if args.save_predictions is not None:
        options["save_predictions"] = args.save_predictions
    metrics = evaluate(args.checkpoint, overrides=list(args.overrides), **options)
    if _is_rank_zero():
        out_dir = args.output_dir or _default_eval_dir(args.checkpoint)
        stem = os.path.splitext(os.path.basename(args.checkpoint))[0]
        path = os.path.join(out_dir, f"eval_{stem}.json")
        write_metrics(metrics, path)
        print(format_metrics(metrics))
        print(f"written to {path}")
    return 0


def register(subparsers) -> None:
    """Add the ``train`` and ``evaluate`` subcommands."""
    p = subparsers.add_parser("train", help="train a model from a YAML config",
                              description="Train a model. Positional key.sub=value arguments override the config.")
    p.add_argument("--config", help="YAML run config (configs/...); defaults are used for missing keys")
    p.add_argument("--resume", metavar="CKPT", help="checkpoint to resume from, or 'last' (<output_dir>/checkpoints/last.ckpt)")
    p.add_argument("--output-dir", help="the run folder (shortcut for output_dir=...)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run in output_dir (by default glore train refuses to)")
    p.add_argument("--print-config", action="store_true",
                   help="print the merged config (defaults, file, overrides) as YAML and exit without training")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides, values parsed as YAML")
    p.set_defaults(func=_train)

    p = subparsers.add_parser("evaluate", help="evaluate a training checkpoint",
                              description="Evaluate a checkpoint on the validation split of its stored config.")
    p.add_argument("--checkpoint", required=True, help="a .ckpt written by glore train")
    p.add_argument("--opt", action="append", default=[], metavar="name=value",
                   help="task-specific evaluation option (repeatable), e.g. --opt clips=10")
    p.add_argument("--sliding-window", action="store_true", help="segmentation: sliding-window inference")
    p.add_argument("--clips", type=int, help="video: clips per video to average")
    p.add_argument("--save-predictions", metavar="DIR",
                   help="segmentation: write a label-id PNG per image to DIR (Cityscapes server layout)")
    p.add_argument("--output-dir", help="where eval_<checkpoint>.json goes (default: the run directory)")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides, e.g. data.root=...")
    p.set_defaults(func=_evaluate)

