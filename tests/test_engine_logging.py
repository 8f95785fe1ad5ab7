"""What a training run logs per step and per epoch, and what it does not cost."""

import csv

import pytest
import torch

from glore import demo
from glore.engine import runner
from glore.engine.config import apply_overrides
from glore.engine.loaders import EpochSeededDataset


def _rows(run_dir):
    with open(next((run_dir / "csv").glob("version_*")) / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _tiny_run(tmp_path, *overrides):
    cfg = demo.variant_config("image", "baseline", tmp_path, progress=False, epochs=2,
                              train_samples=256, val_samples=64)
    cfg = apply_overrides(cfg, ["data.batch_size=32", *overrides])
    runner.train(cfg)
    return _rows(tmp_path)


def test_epoch_loss_is_the_mean_of_the_step_losses_and_lr_is_logged_per_group(tmp_path):
    rows = _tiny_run(tmp_path, "trainer.log_every_n_steps=1")
    steps = [row for row in rows if row.get("train/loss_step")]
    epochs = [row for row in rows if row.get("train/loss_epoch")]
    assert len(steps) == 2 * 8 and len(epochs) == 2
    for epoch, row in enumerate(epochs):
        losses = [float(r["train/loss_step"]) for r in steps if int(r["epoch"]) == epoch]
        assert len(losses) == 8        # equal batches (drop_last): the weighted mean is the plain mean
        assert float(row["train/loss_epoch"]) == pytest.approx(sum(losses) / len(losses), rel=1e-5)
    lrs = [float(r["lr/pg1"]) for r in rows if r.get("lr/pg1")]
    assert len(lrs) == 16 and lrs[0] < max(lrs)         # one-cycle: rises from lr / 25
    assert all(r["lr/pg1"] == r["lr/pg2"] for r in rows if r.get("lr/pg1"))


def test_step_values_are_logged_only_where_the_loggers_write(tmp_path):
    rows = _tiny_run(tmp_path, "trainer.log_every_n_steps=4")
    assert len([row for row in rows if row.get("train/loss_step")]) == 4      # 16 steps / 4
    assert len([row for row in rows if row.get("train/loss_epoch")]) == 2


def test_per_step_seeding_seeds_the_cpu_generator_only(tmp_path, monkeypatch):
    """torch.manual_seed would also queue a seeding of every accelerator backend (with a stack
    trace each), a measurable cost per step and per item on a CPU machine."""
    calls = []
    for module in (torch.cuda, torch.xpu):
        monkeypatch.setattr(module, "manual_seed_all", lambda seed: calls.append(seed))
    _tiny_run(tmp_path, "seed=0")

    class RandomItems(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return torch.rand(())

    data = EpochSeededDataset(RandomItems(), seed=1)
    first = data[5]
    torch.rand(3)
    assert data[5] == first and data[6] != first        # an item's draw depends on its key only
    assert calls == [0, 0]      # the run's start only (seed_everything), not each of its 16 steps
