"""Distributed evaluation counts each sample once: two gloo processes on CPU, an odd number of
samples, and the metrics equal those of one process (classification through ``glore train`` under
torchrun; the video task's multi-clip ``evaluate`` in an initialised process group)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from glore.engine import runner
from glore.engine import video as video_task
from glore.engine.loaders import evaluation_sampler
from test_engine_tinynet import make_image_folder, tiny_overrides
from test_video_engine import kinetics, video_cfg  # noqa: F401 (the fixture)

TESTS = os.path.dirname(os.path.abspath(__file__))


def test_evaluation_sampler_gives_each_index_to_one_process():
    shards = [list(evaluation_sampler(range(7), num_replicas=2, rank=rank)) for rank in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(7))
    assert evaluation_sampler(range(7), num_replicas=1, rank=0) is None
    assert evaluation_sampler(range(7)) is None           # no process group


@pytest.mark.slow
def test_two_process_classification_validation_equals_one_process(tmp_path):
    root = make_image_folder(tmp_path / "data", classes=("a", "b", "c"), per_class=3)   # 9 val images
    overrides = tiny_overrides(root, tmp_path / "ddp", "model.num_classes=3", "data.batch_size=2",
                               "data.val_batch_size=2", "trainer.strategy=ddp", "trainer.devices=2",
                               "trainer.accelerator=cpu", "optim.lr=0.01")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", GLORE_TEST_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "glore", "train", *overrides]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    single = runner.evaluate(str(tmp_path / "ddp" / "checkpoints" / "last.ckpt"))
    print("ddp", {k: ddp[k] for k in ("val/acc1", "val/loss")}, "single", single)
    for key in ("val/acc1", "val/loss"):
        assert ddp[key] == pytest.approx(single[key], abs=1e-6), key
    assert round(single["val/acc1"] * 9, 4) == round(single["val/acc1"] * 9)         # k of 9 images


def _evaluate_in_group(rank: int, world: int, init_file: str, cfg: dict, state: dict, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        module = video_task.build_module(cfg)
        module.load_state_dict(state)
        result = video_task.evaluate(module, video_task.build_datamodule(cfg), cfg, num_clips=2, num_crops=3,
                                     device="cpu")
        if rank == 0:
            with open(out, "w", encoding="utf-8") as handle:
                json.dump(result, handle)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_process_video_evaluation_equals_one_process(tmp_path, kinetics):  # noqa: F811
    cfg = video_cfg(tmp_path, kinetics, num_classes=3)                # 3 validation videos
    torch.manual_seed(0)
    module = video_task.build_module(cfg)
    single = video_task.evaluate(module, video_task.build_datamodule(cfg), cfg, num_clips=2, num_crops=3,
                                 device="cpu")
    out = tmp_path / "ddp.json"
    torch.multiprocessing.spawn(_evaluate_in_group, nprocs=2, join=True,
                                args=(2, str(tmp_path / "init"), cfg, module.state_dict(), str(out)))
    ddp = json.loads(out.read_text())
    print("ddp", ddp, "single", single)
    assert single["val/videos"] == ddp["val/videos"] == 3
    for key in ("val/acc1", "val/loss", "val/video_acc1", "val/video_acc5"):
        assert ddp[key] == pytest.approx(single[key], abs=1e-6), key
