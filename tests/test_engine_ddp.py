"""Two gloo processes on CPU (torchrun) reach the weights of one process with the same global batch
(random augmentation included: it is seeded by epoch and sample index)."""

import os
import subprocess
import sys

import pytest
import torch

from glore.engine import runner
from glore.checkpoint import read_checkpoint
from glore.engine.config import load_config
from test_engine_tinynet import make_image_folder, tiny_overrides

TESTS = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path):
    root = make_image_folder(tmp_path / "data", per_class=4)  # 8 images
    common = ("data.shuffle=false", "data.augment=true", "trainer.max_epochs=2", "optim.momentum=0.9", "optim.weight_decay=0.01")

    # one process, batch 4 -> 2 steps per epoch
    runner.train(load_config(None, tiny_overrides(root, tmp_path / "single", *common)))

    # two processes, batch 2 each (global batch 4), gloo, launched by torchrun
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", GLORE_TEST_THREADS="1")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "glore", "train",
        *tiny_overrides(root, tmp_path / "ddp", *common, "data.batch_size=2", "trainer.strategy=ddp",
                        "trainer.devices=2", "trainer.accelerator=cpu"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    single = read_checkpoint(tmp_path / "single" / "checkpoints" / "last.ckpt")
    ddp = read_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.ckpt")
    assert ddp["global_step"] == single["global_step"] == 4
    start = runner.task_module(single["hyper_parameters"]["cfg"]).build_module(single["hyper_parameters"]["cfg"])
    for key, value in single["state_dict"].items():
        torch.testing.assert_close(ddp["state_dict"][key], value, rtol=1e-5, atol=1e-6)
    # training moved the weights away from the seeded initial ones, so the comparison can fail
    moved = max((v - start.state_dict()[k]).abs().max().item() for k, v in single["state_dict"].items())
    assert moved > 1e-3
