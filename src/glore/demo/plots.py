"""The demo's table and its validation-accuracy curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  after the backend is chosen

__all__ = ["format_table", "plot_curves"]


def format_table(results: dict) -> str:
    rows = [f"{'variant':<10} {'val_acc':>8} {'params':>9} {'GMACs':>7} {'s/epoch':>8}"]
    for name, r in results.items():
        rows.append(f"{name:<10} {r['val_acc']:>8.4f} {r['params']:>9,d} {r['gmacs']:>7.4f} "
                    f"{r['sec_per_epoch']:>8.1f}")
    return "\n".join(rows)


def plot_curves(results: dict, path: Path, *, title: str = "distant-digits / select") -> None:
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
