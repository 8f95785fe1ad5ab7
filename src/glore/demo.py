"""``make demo``: baseline vs + GloRe / + GC / + NL on ``distant-digits`` (task ``select``).

Trains each variant through the engine of ``glore train`` (:func:`glore.engine.runner.train`) from its
config in ``configs/demo/<variant>.yaml``, with one budget and one seed, prints a table (validation
accuracy, parameters, GMACs, seconds per epoch) and writes ``<output>/summary.json`` and
``<output>/curves.png``. Each variant's folder ``<output>/<variant>/`` is a ``glore train`` run folder
(``config.yaml``, ``checkpoints/last.ckpt``, ``checkpoints/best.ckpt``, ``metrics.json``, ``csv/``), so
``glore evaluate`` and ``glore analyze`` read it.

    python -m glore.demo --output results/demo [--seed 0] [--epochs 5] [--variants baseline,glore,gc,nl]

``--task video`` does the same on the video set ``distant-clips`` with
:func:`glore.models.video.distant_clips_net` from ``configs/demo/video_<variant>.yaml`` (default
output ``results/demo_video``; see ``docs/video.md``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

from glore.errors import ArgumentError, MissingFileError

VARIANTS = {"baseline": None, "glore": "glore", "gc": "gc", "nl": "nl"}

# the one budget shared by every variant (no per-variant or per-seed tuning); configs/demo/<variant>.yaml
# hold the same values (tests/test_demo.py checks it)
DEFAULTS = {
    "epochs": 8,
    "train_samples": 12000,
    "val_samples": 3000,
    "batch_size": 64,
    "lr": 3e-3,
    "weight_decay": 0.05,
    "width": 32,
    "canvas": 48,
    "min_distance": 14,
}

# the video task's budget (``--task video``, configs/demo/video_<variant>.yaml): distant-clips, 6 frames
# of 36x36 (the fewest that hold two 2-frame flashes 3 frames apart), width 32 as in the image demo (the
# width-16 net left chance late and missed 0.90 on seeds 1 and 2), batch 64, lr 4e-3, 9 epochs of 8,000
# clips (with the three-conv stem, lr 6e-3 left seed 1 at 0.875 after 8 epochs and 0.889 after 9);
# docs/video.md has the seeds' results
VIDEO_DEFAULTS = {
    "epochs": 9,
    "train_samples": 8000,
    "val_samples": 2000,
    "batch_size": 64,
    "lr": 4e-3,
    "weight_decay": 0.05,
    "width": 32,
    "num_frames": 6,
    "canvas": 36,
    "min_distance": 13,
    "min_gap": 3,
}
TASKS = ("image", "video")
DEFAULT_OUTPUT = {"image": "results/demo", "video": "results/demo_video"}
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "demo"

# where each budget option goes in a run config
_CONFIG_KEYS = {
    "epochs": "trainer.max_epochs",
    "train_samples": "data.options.num_samples",
    "val_samples": "data.val_options.num_samples",
    "batch_size": "data.batch_size",
    "lr": "optim.lr",
    "weight_decay": "optim.weight_decay",
    "width": "model.width",
    "canvas": "data.options.canvas",
    "min_distance": "data.options.min_distance",
    "num_frames": "data.options.num_frames",
    "min_gap": "data.options.min_gap",
}


def config_path(task: str, variant: str) -> Path:
    """``configs/demo/<variant>.yaml`` (image) or ``configs/demo/video_<variant>.yaml``."""
    path = CONFIG_DIR / (f"{variant}.yaml" if task == "image" else f"video_{variant}.yaml")
    if not path.is_file():
        raise MissingFileError(f"demo config not found: {path} (run from a source checkout of glore)")
    return path


def variant_config(task: str, variant: str, output_dir: str | Path, *, seed: int = 0,
                   progress: bool = True, **budget) -> dict:
    """The run config of one demo variant: its YAML file with the seed, output folder and budget."""
    from glore.engine.config import load_config

    overrides = [f"seed={seed}", f"data.options.seed={seed}", f"output_dir={output_dir}",
                 f"trainer.enable_progress_bar={str(bool(progress)).lower()}"]
    overrides += [f"{_CONFIG_KEYS[key]}={value}" for key, value in budget.items()]
    return load_config(config_path(task, variant), overrides)


def count_gmacs(model: torch.nn.Module, input_size) -> float:
    """Multiply-adds of one forward pass (batch 1), in G; matrix products inside blocks included."""
    from glore.analysis import summary
    return float(summary(model, input_size=tuple(input_size))["gmacs"])


def _input_size(cfg: dict) -> tuple:
    options = cfg["data"]["options"]
    if cfg["data"]["name"] == "distant-clips":
        return (1, options["num_frames"], options["canvas"], options["canvas"])
    return (1, options["canvas"], options["canvas"])


def epoch_metrics(run_dir: str | Path) -> dict:
    """``{"curve": val/acc1 per epoch, "sec_per_epoch": [...], "train_loss": [...]}`` from the newest
    ``csv/version_N/metrics.csv`` of a run folder."""
    versions = sorted(Path(run_dir, "csv").glob("version_*"), key=lambda p: int(p.name.split("_")[-1]))
    if not versions:
        raise MissingFileError(f"no csv/version_N/metrics.csv in {run_dir}")
    columns = {"curve": "val/acc1", "sec_per_epoch": "time/train_epoch_s", "train_loss": "train/loss_epoch"}
    per_epoch = {key: {} for key in columns}
    with open(versions[-1] / "metrics.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for key, column in columns.items():
                if row.get(column):
                    per_epoch[key][int(row["epoch"])] = float(row[column])
    return {key: [values[e] for e in sorted(values)] for key, values in per_epoch.items()}


def train_variant(cfg: dict) -> dict:
    """Train one variant with :func:`glore.engine.runner.train`; return its row of the summary.

    The demo's run folders are its own: a new demo run replaces them (``overwrite``), so that
    ``make demo`` can be run again."""
    from glore.engine.runner import CHECKPOINT_DIR, load_model, train

    metrics = train(cfg, overwrite=True)
    run_dir = Path(cfg["output_dir"])
    network, _ = load_model(str(run_dir / CHECKPOINT_DIR / "last.ckpt"))
    per_epoch = epoch_metrics(run_dir)
    seconds = per_epoch["sec_per_epoch"]
    return {"val_acc": metrics["val/acc1"], "params": sum(p.numel() for p in network.parameters()),
            "gmacs": count_gmacs(network, _input_size(cfg)),
            "sec_per_epoch": sum(seconds) / max(len(seconds), 1),
            "curve": per_epoch["curve"], "train_loss": per_epoch["train_loss"]}


def run(output: str | Path, *, seed: int = 0, variants=tuple(VARIANTS), progress: bool = True,
        threads: int | None = 2, task: str = "image", **budget) -> dict:
    """Train every variant in ``variants`` through the engine and write ``summary.json`` and ``curves.png``.

    ``task="image"`` (``make demo``) uses ``distant-digits`` and :data:`DEFAULTS`; ``task="video"``
    uses ``distant-clips`` and :data:`VIDEO_DEFAULTS`. ``budget`` overrides some of those values.
    """
    if task not in TASKS:
        raise ArgumentError(f"task must be one of {list(TASKS)}, got {task!r}")
    defaults = DEFAULTS if task == "image" else VIDEO_DEFAULTS
    unknown = set(budget) - set(defaults)
    if unknown:
        raise ArgumentError(f"unknown budget options {sorted(unknown)}; expected some of {sorted(defaults)}")
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise ArgumentError(f"variants must be a non-empty subset of {list(VARIANTS)}, got {list(variants)}")
    if threads:
        torch.set_num_threads(threads)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)

    results = {}
    for name in variants:
        cfg = variant_config(task, name, output / name, seed=seed, progress=progress, **budget)
        results[name] = train_variant(cfg)

    summary = {**results, "_config": {**defaults, **budget, "seed": seed,
                                      "task": "select" if task == "image" else "distant-clips/select"}}
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    title = "distant-digits / select" if task == "image" else "distant-clips / select"
    plot_curves(results, output / "curves.png", title=title)
    print(format_table(results))
    return summary


def format_table(results: dict) -> str:
    rows = [f"{'variant':<10} {'val_acc':>8} {'params':>9} {'GMACs':>7} {'s/epoch':>8}"]
    for name, r in results.items():
        rows.append(f"{name:<10} {r['val_acc']:>8.4f} {r['params']:>9,d} {r['gmacs']:>7.4f} "
                    f"{r['sec_per_epoch']:>8.1f}")
    return "\n".join(rows)


def plot_curves(results: dict, path: Path, *, title: str = "distant-digits / select") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, r in results.items():
        ax.plot(range(1, len(r["curve"]) + 1), r["curve"], marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


DESCRIPTION = ("make demo: baseline vs + GloRe / + GC / + NL on distant-digits (or, for video, distant-clips), "
               "trained through glore train with one budget and one seed.")


def _add_arguments(parser: argparse.ArgumentParser, *, task_positional: bool = False) -> None:
    if task_positional:       # glore demo [image|video]
        parser.add_argument("task", nargs="?", choices=TASKS, default="image",
                            help="image: distant-digits (make demo); video: distant-clips")
    else:
        parser.add_argument("--task", choices=TASKS, default="image",
                            help="image: distant-digits (make demo); video: distant-clips")
    from glore.cli.options import add_output_dir

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
    defaults = DEFAULTS if args.task == "image" else VIDEO_DEFAULTS
    budget = {key: defaults[key] if value is None else value
              for key, value in (("epochs", args.epochs), ("train_samples", args.train_samples),
                                 ("val_samples", args.val_samples))}
    run(args.output or DEFAULT_OUTPUT[args.task], seed=args.seed,
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


if __name__ == "__main__":
    sys.exit(main())
