"""The readers of Lightning's private state (glore._internals.lightning_state) against the installed
Lightning: a failure here names the reader a Lightning upgrade moved."""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from glore._internals.lightning_state import (attached_trainer, checkpoint_next_epoch, next_epoch, optimizer_steps,
                                               should_update_logs)
from glore.engine.loaders import ShardSampler, evaluation_sampler


class Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.logs, self.epochs, self.attached = [], [], []

    def training_step(self, batch, batch_idx):
        self.logs.append(should_update_logs(self.trainer))
        self.attached.append(attached_trainer(self) is self.trainer)
        return self.layer(batch[0]).pow(2).mean()

    def on_train_epoch_start(self):
        self.epochs.append(next_epoch(self.trainer))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_readers_follow_lightning(tmp_path):
    model = Recorder()
    assert attached_trainer(model) is None
    trainer = L.Trainer(max_epochs=2, log_every_n_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, DataLoader(TensorDataset(torch.randn(10, 2)), batch_size=2))
    assert model.logs == [False, True] * 5                  # steps 2, 4, ..., 10 of the run are logged
    assert model.epochs == [0, 1] and model.attached == [True] * 10
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    assert checkpoint_next_epoch(torch.load(tmp_path / "last.ckpt", weights_only=True)) == 2
    assert checkpoint_next_epoch({"epoch": 4}) == 4         # no loop state


def test_shard_sampler_gives_each_index_to_one_process_in_order():
    shards = [ShardSampler(range(7), num_replicas=3, rank=rank) for rank in range(3)]
    assert [list(s) for s in shards] == [[0, 3, 6], [1, 4], [2, 5]]
    assert [len(s) for s in shards] == [3, 2, 2]
    assert isinstance(evaluation_sampler(range(7), num_replicas=3, rank=1), DistributedSampler)  # Lightning keeps it


class Counter(Recorder):
    """Counts the schedule's steps in configure_optimizers and keeps Lightning's count from training."""

    def configure_optimizers(self):
        self.counted = optimizer_steps(self.trainer)
        return super().configure_optimizers()

    def on_train_start(self):
        self.lightning = (self.trainer.num_training_batches, self.trainer.estimated_stepping_batches)


class Batches(L.LightningDataModule):
    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(10, 2)), batch_size=3)


@pytest.mark.parametrize("options", [{}, {"limit_train_batches": 2}, {"limit_train_batches": 0.5},
                                     {"accumulate_grad_batches": 3}, {"max_steps": 5, "max_epochs": -1},
                                     {"max_steps": 3}])
def test_the_step_count_is_lightnings(tmp_path, options):
    model = Counter()
    options = {"max_epochs": 2, **options}
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, **options)
    trainer.fit(model, datamodule=Batches())
    batches, total = model.lightning
    per_epoch = -(-batches // options.get("accumulate_grad_batches", 1))
    assert model.counted == (per_epoch, total)
