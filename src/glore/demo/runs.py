"""Training the demo's variants through the engine and writing their summary."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from glore.analysis import summary as count_summary
from glore.engine.config import load_config
from glore.engine.runner import CHECKPOINT_DIR, load_model, train
from glore.errors import ArgumentError, MissingFileError
from .cli import DEFAULT_OUTPUT, TASKS, VARIANTS
from .metrics_csv import epoch_metrics
from .plots import format_table, plot_curves

__all__ = ["VARIANTS", "TASKS", "DEFAULT_OUTPUT", "CONFIG_DIR", "CONFIG_KEYS", "budget", "config_path",
           "variant_config", "count_gmacs", "train_variant", "run"]

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "demo"

# where each budget option sits in a run config; a task's budget is the options its configs hold
CONFIG_KEYS = {
    "epochs": "trainer.max_epochs",
    "train_samples": "data.options.num_samples",
    "val_samples": "data.val_options.num_samples",
    "batch_size": "data.batch_size",
    "lr": "optim.lr",
    "weight_decay": "optim.weight_decay",
    "width": "model.width",
    "num_frames": "data.options.num_frames",
    "canvas": "data.options.canvas",
    "min_distance": "data.options.min_distance",
    "min_gap": "data.options.min_gap",
}


def config_path(task: str, variant: str) -> Path:
    """``configs/demo/<variant>.yaml`` (image) or ``configs/demo/video_<variant>.yaml``."""
    path = CONFIG_DIR / (f"{variant}.yaml" if task == "image" else f"video_{variant}.yaml")
    if not path.is_file():
        raise MissingFileError(f"demo config not found: {path} (run from a source checkout of glore)")
    return path


def budget(task: str, variant: str = "baseline") -> dict:
    """The budget options (:data:`CONFIG_KEYS`) the config of ``variant`` holds: one budget shared by
    every variant of a task, with no per-variant or per-seed tuning."""
    if task not in TASKS:
        raise ArgumentError(f"task must be one of {list(TASKS)}, got {task!r}")
    cfg = load_config(config_path(task, variant))
    values = {}
    for key, where in CONFIG_KEYS.items():
        node = cfg
        for part in where.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            values[key] = node
    return values


def __getattr__(name: str):
    # the image and video budgets, read from the configs when first asked for, then kept
    if name in ("DEFAULTS", "VIDEO_DEFAULTS"):
        globals()[name] = budget("image" if name == "DEFAULTS" else "video")
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def variant_config(task: str, variant: str, output_dir: str | Path, *, seed: int = 0,
                   progress: bool = True, **options) -> dict:
    """The run config of one demo variant: its YAML file with the seed, output folder and budget."""
    overrides = [f"seed={seed}", f"data.options.seed={seed}", f"output_dir={output_dir}",
                 f"trainer.enable_progress_bar={str(bool(progress)).lower()}"]
    overrides += [f"{CONFIG_KEYS[key]}={value}" for key, value in options.items()]
    return load_config(config_path(task, variant), overrides)


def count_gmacs(model: torch.nn.Module, input_size) -> float:
    """Multiply-adds of one forward pass (batch 1), in G; matrix products inside blocks included."""
    return float(count_summary(model, input_size=tuple(input_size))["gmacs"])


def _input_size(cfg: dict) -> tuple:
    options = cfg["data"]["options"]
    if cfg["data"]["name"] == "distant-clips":
        return (1, options["num_frames"], options["canvas"], options["canvas"])
    return (1, options["canvas"], options["canvas"])


def train_variant(cfg: dict) -> dict:
    """Train one variant with :func:`glore.engine.runner.train`; return its row of the summary.

    The demo's run folders are its own: a new demo run replaces them (``overwrite``), so that
    ``make demo`` can be run again."""
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
        threads: int | None = 2, task: str = "image", **options) -> dict:
    """Train every variant in ``variants`` through the engine and write ``summary.json`` and ``curves.png``.

    ``task="image"`` (``make demo``) uses ``distant-digits``, ``task="video"`` ``distant-clips``, each
    with the budget of its configs (:func:`budget`); ``options`` override some of those values.
    """
    defaults = budget(task)
    unknown = set(options) - set(defaults)
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
        cfg = variant_config(task, name, output / name, seed=seed, progress=progress, **options)
        results[name] = train_variant(cfg)

    summary = {**results, "_config": {**defaults, **options, "seed": seed,
                                      "task": "select" if task == "image" else "distant-clips/select"}}
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    title = "distant-digits / select" if task == "image" else "distant-clips / select"
    plot_curves(results, output / "curves.png", title=title)
    print(format_table(results))
    return summary
