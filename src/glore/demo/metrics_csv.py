"""The per-epoch metrics of a ``glore train`` run folder, read from its CSV log."""

from __future__ import annotations

import csv
from pathlib import Path

from glore.errors import MissingFileError

__all__ = ["epoch_metrics"]


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
