"""Detection under DDP: two gloo processes (torchrun) validate an odd number of images, and each
image counts exactly once: the metrics equal a one-process evaluation of the same checkpoint."""

import json
import os
import subprocess
import sys

import pytest

from glore.data.det_digits import DetDigits, write_coco_tree
from glore.engine import runner
from test_detection_engine import CONFIGS, DIGITS, TINY


@pytest.mark.slow
def test_two_process_validation_counts_each_image_once(tmp_path):
    root = tmp_path / "coco"
    # 5 images over 2 processes, validated on the images it fits (so that the AP is not 0)
    write_coco_tree(DetDigits("train", num_samples=5, **DIGITS), root)
    run = tmp_path / "run"
    overrides = TINY + [
        "data.name=coco", f"data.root={root}", "data.train_images=train", "data.val_images=train",
        "data.train_annotations=annotations/instances_train.json",
        "data.val_annotations=annotations/instances_train.json", "data.batch_size=1",
        "data.val_batch_size=1", "trainer.max_epochs=12", "trainer.limit_train_batches=3",
        "trainer.check_val_every_n_epoch=12", "optim.lr=3e-3", "optim.milestones=[100]",
        "optim.warmup_steps=0", f"output_dir={run}", "trainer.strategy=ddp", "trainer.devices=2",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"]
    env = dict(os.environ, OMP_NUM_THREADS="1", GLORE_TEST_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "glore", "train", "--config", os.path.join(CONFIGS, "det_digits_baseline.yaml"),
               *overrides]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ddp = json.loads((run / "metrics.json").read_text())
    single = runner.evaluate(str(run / "checkpoints" / "last.ckpt"))
    assert single["val/images"] == 5
    bbox = sorted(k for k in single if k.startswith("val/bbox/"))
    assert len(bbox) == 12 and any(single[k] > 0 for k in bbox)
    for key in bbox:
        assert ddp[key] == pytest.approx(single[key], abs=1e-6), key     # logged as float32
