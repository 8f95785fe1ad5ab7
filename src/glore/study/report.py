"""A study's results: what each run reached, the statistics per variant and against the baseline,
written as ``results.json``, ``runs.csv``, ``summary.csv``, ``summary.md``, ``points.png`` (each
variant's seeds with the mean and its interval) and ``curves.png`` (mean learning curve with the
interval band over seeds)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from . import stats
from .spec import Run, StudySpec

DIVERGED_MARK = "training loss is nan"   # glore.engine.base.NonFiniteLossError's message


def run_state(run: Run) -> str:
    """``done``, ``diverged`` (stopped on a NaN/inf loss), ``failed``, ``started`` or ``pending``."""
    if run.finished():
        return "done"
    if run.status_path.is_file():
        return json.loads(run.status_path.read_text())["state"]
    return "started" if run.output_dir.exists() else "pending"


def record_exit(run: Run, code: int) -> str:
    """Remember how a run process ended (next to its folder); a diverged run is not run again."""
    log = run.log_path
    text = log.read_text(encoding="utf-8", errors="replace").lower() if log.is_file() else ""
    state = "done" if code == 0 and run.finished() else (
        "diverged" if DIVERGED_MARK in text or "training loss is inf" in text else "failed")
    run.status_path.parent.mkdir(parents=True, exist_ok=True)
    run.status_path.write_text(json.dumps({"state": state, "exit_code": code}))
    return state


def curve(run: Run, metric: str) -> dict[int, float]:
    """``{epoch: value}`` of ``metric`` from the newest ``csv/version_N/metrics.csv`` of the run."""
    versions = sorted(run.output_dir.glob("csv/version_*/metrics.csv"),
                      key=lambda p: int(p.parent.name.split("_")[-1]))
    values = {}
    for path in versions:            # a resumed run continues in a newer version
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get(metric):
                    values[int(row["epoch"])] = float(row[metric])
    return dict(sorted(values.items()))


def run_value(run: Run, spec: StudySpec) -> float | None:
    """The compared value of a finished run: ``metrics.json``'s final one, or the epoch's from the CSV log."""
    if not run.finished():
        return None
    metric, epoch = spec.compare.metric, spec.compare.epoch
    if epoch == "final":
        value = json.loads(run.metrics_path.read_text()).get(metric)
    else:
        value = curve(run, metric).get(int(epoch))
    return float(value) if isinstance(value, (int, float)) else None


def collect(spec: StudySpec, runs: list[Run]) -> dict:
    """Per-run values and states, per-variant statistics, and paired differences against the baseline."""
    rows = [{"variant": r.variant, "seed": r.seed, "state": run_state(r), "value": run_value(r, spec),
             "folder": str(r.output_dir)} for r in runs]
    by_variant: dict[str, dict[int, float]] = {name: {} for name in spec.variants}
    states: dict[str, list[str]] = {name: [] for name in spec.variants}
    for row in rows:
        states[row["variant"]].append(row["state"])
        if row["value"] is not None and math.isfinite(row["value"]):
            by_variant[row["variant"]][row["seed"]] = row["value"]
    confidence = spec.compare.confidence
    variants = {}
    for name, values in by_variant.items():
        variants[name] = {**stats.describe(list(values.values()), confidence),
                          "diverged": states[name].count("diverged"), "runs": len(states[name])}
    base = spec.compare.baseline
    pairs = {}
    if base is not None:
        for name, values in by_variant.items():
            if name == base:
                continue
            seeds = sorted(set(values) & set(by_variant[base]))
            pairs[name] = {"seeds": seeds, **stats.paired([values[s] for s in seeds],
                                                            [by_variant[base][s] for s in seeds], confidence)}
    return {"study": spec.name, "metric": spec.compare.metric, "epoch": spec.compare.epoch,
            "confidence": confidence, "baseline": base, "runs": rows, "variants": variants, "paired": pairs}


def _fmt(value, digits=4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def markdown(results: dict) -> str:
    """The per-variant and paired tables as Markdown."""
    pct = int(round(100 * results["confidence"]))
    lines = [f"{results['study']}: {results['metric']} at epoch {results['epoch']}", "",
             f"| variant | seeds | mean | std | {pct}% CI | diverged |", "| --- | --- | --- | --- | --- | --- |"]
    for name, v in results["variants"].items():
        lines.append(f"| {name} | {v['n']} | {_fmt(v['mean'])} | {_fmt(v['std'])} | "
                     f"[{_fmt(v['ci_low'])}, {_fmt(v['ci_high'])}] | {v['diverged']}/{v['runs']} |")
    if results["paired"]:
        lines += ["", f"| variant - {results['baseline']} | pairs | mean difference | {pct}% bootstrap CI | "
                  "paired t p | Wilcoxon p |", "| --- | --- | --- | --- | --- | --- |"]
        for name, p in results["paired"].items():
            lines.append(f"| {name} | {p['n']} | {_fmt(p['mean_diff'])} | [{_fmt(p['ci_low'])}, "
                         f"{_fmt(p['ci_high'])}] | {_fmt(p['t_p'], 3)} | {_fmt(p['wilcoxon_p'], 3)} |")
    return "\n".join(lines) + "\n"


def write(results: dict, spec: StudySpec, runs: list[Run], folder: str | Path) -> None:
    """Write the tables and plots of ``results`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (folder / "summary.md").write_text(markdown(results))
    with open(folder / "runs.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["variant", "seed", "state", "value", "folder"])
        writer.writeheader()
        writer.writerows(results["runs"])
    with open(folder / "summary.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "n", "mean", "std", "ci_low", "ci_high", "diverged", "mean_diff",
                         "diff_ci_low", "diff_ci_high", "t_p", "wilcoxon_p"])
        for name, v in results["variants"].items():
            p = results["paired"].get(name, {})
            writer.writerow([name, v["n"], v["mean"], v["std"], v["ci_low"], v["ci_high"], v["diverged"],
                             p.get("mean_diff"), p.get("ci_low"), p.get("ci_high"), p.get("t_p"),
                             p.get("wilcoxon_p")])
    plot_points(results, folder / "points.png")
    plot_curves(spec, runs, folder / "curves.png")


def plot_points(results: dict, path: Path) -> None:
    """Write a figure of every run's value per variant, with the mean and its confidence interval, to ``path``."""
    names = list(results["variants"])
    fig = Figure(figsize=(1.2 * len(names) + 2, 3.5))
    ax = fig.subplots()
    for i, name in enumerate(names):
        values = [r["value"] for r in results["runs"] if r["variant"] == name and r["value"] is not None]
        ax.scatter([i] * len(values), values, alpha=0.6, color="tab:gray", zorder=2)
        v = results["variants"][name]
        if v["n"] and math.isfinite(v["mean"]):
            low = v["ci_low"] if math.isfinite(v["ci_low"]) else v["mean"]
            high = v["ci_high"] if math.isfinite(v["ci_high"]) else v["mean"]
            ax.errorbar([i + 0.15], [v["mean"]], yerr=[[v["mean"] - low], [high - v["mean"]]], fmt="o",
                        color="tab:blue", capsize=4, zorder=3)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(results["metric"])
    ax.set_title(f"{results['study']} ({int(round(100 * results['confidence']))}% CI of the mean)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_curves(spec: StudySpec, runs: list[Run], path: Path) -> None:
    """Write a figure of the compared metric per epoch, the mean over seeds of each variant, to ``path``."""
    fig = Figure(figsize=(5.5, 3.5))
    ax = fig.subplots()
    for name in spec.variants:
        curves = [curve(r, spec.compare.metric) for r in runs if r.variant == name and r.finished()]
        epochs = sorted(set().union(*curves)) if curves else []
        if not epochs:
            continue
        means, lows, highs = [], [], []
        for e in epochs:
            d = stats.describe([c[e] for c in curves if e in c], spec.compare.confidence)
            means.append(d["mean"])
            lows.append(d["ci_low"] if math.isfinite(d["ci_low"]) else d["mean"])
            highs.append(d["ci_high"] if math.isfinite(d["ci_high"]) else d["mean"])
        x = np.asarray(epochs) + 1
        ax.plot(x, means, marker="o", label=name)
        ax.fill_between(x, lows, highs, alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(spec.compare.metric)
    ax.set_title(spec.name)
    ax.grid(alpha=0.3)
    if ax.lines:                    # no finished run with a learning curve yet: an empty plot, no legend
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
