"""A run interrupted after epoch 1 and resumed ends with the same weights as an uninterrupted run."""

import pytest
import torch

from glore.engine import runner
from glore.checkpoint import read_checkpoint
from glore.engine.classification import ClassificationModule
from glore.engine.config import load_config
from test_engine_tinynet import make_image_folder, tiny_overrides


class SimulatedCrash(RuntimeError):
    pass


def test_interrupted_and_resumed_run_matches(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "data", per_class=5)  # 10 images, batch 4: 3 steps per epoch
    extra = ("trainer.max_epochs=3", "optim.warmup_steps=2", "optim.momentum=0.9", "data.augment=true")

    runner.train(load_config(None, tiny_overrides(root, tmp_path / "straight", *extra)))
    straight = read_checkpoint(tmp_path / "straight" / "checkpoints" / "last.ckpt")

    def crash_after_first_epoch(self):  # at the start of the second epoch, after the first was saved
        if self.current_epoch == 1:
            raise SimulatedCrash("power cut")

    # the interrupted run reads with two worker processes: the augmentation must not depend on that
    interrupted_cfg = load_config(None, tiny_overrides(root, tmp_path / "interrupted", *extra, "data.num_workers=2"))
    with monkeypatch.context() as patch:
        patch.setattr(ClassificationModule, "on_train_epoch_start", crash_after_first_epoch, raising=False)
        with pytest.raises(SimulatedCrash):
            runner.train(interrupted_cfg)
    partial = read_checkpoint(tmp_path / "interrupted" / "checkpoints" / "last.ckpt")
    assert partial["global_step"] == 3  # one epoch was saved before the crash

    runner.train(interrupted_cfg, resume="last")
    resumed = read_checkpoint(tmp_path / "interrupted" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == straight["global_step"] == 9
    for key, value in straight["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    # the optimizer state (momentum buffers) and the schedule position match too
    for a, b in zip(straight["optimizer_states"][0]["state"].values(), resumed["optimizer_states"][0]["state"].values()):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    assert straight["lr_schedulers"][0]["last_epoch"] == resumed["lr_schedulers"][0]["last_epoch"] == 9
    # and the run differs from one that did not train the last two epochs (the check can fail)
    assert not all(torch.equal(partial["state_dict"][k], v) for k, v in straight["state_dict"].items())
