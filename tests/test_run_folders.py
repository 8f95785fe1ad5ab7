"""Run folders through ``glore train``: an earlier run is never replaced, a refused resume writes
nothing, a folder in use is locked, stale checkpoint temporaries are removed."""

import hashlib
import os

import filelock
import pytest

from glore.cli import main as glore_main
from glore.engine.run_folder import LOCK_NAME

DEMO = os.path.join(os.path.dirname(__file__), "..", "configs", "demo", "glore.yaml")


def demo_args(out, *extra, flags=()):
    return ["train", *flags, "--config", DEMO, "--output-dir", str(out), "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false", "data.batch_size=32", "data.val_batch_size=64",
            "data.options={canvas: 48, min_distance: 14, seed: 0, num_samples: 64}", *extra]


def checksums(folder):
    sums = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            if name == LOCK_NAME:
                continue
            path = os.path.join(dirpath, name)
            with open(path, "rb") as handle:
                sums[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return sums


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    assert glore_main(demo_args(out)) == 0
    return out


def test_fresh_run_into_an_earlier_run_is_refused_and_changes_nothing(earlier_run, tmp_path, capsys):
    before = checksums(earlier_run)
    assert {"checkpoints/best.ckpt", "checkpoints/last.ckpt", "config.yaml"} <= set(before)
    assert glore_main(demo_args(earlier_run, "optim.lr=0.01")) == 2
    err = capsys.readouterr().err
    assert "holds an earlier run" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert checksums(earlier_run) == before


def test_failed_resume_with_another_block_writes_nothing(earlier_run, capsys):
    before = checksums(earlier_run)
    assert glore_main(demo_args(earlier_run, "model.block=gc", flags=("--resume", "last"))) == 2
    err = capsys.readouterr().err
    assert "model.block='glore'" in err and "model.block='gc'" in err
    assert checksums(earlier_run) == before
    assert sorted(os.listdir(earlier_run / "csv")) == ["version_0"]
    assert sorted(os.listdir(earlier_run / "tensorboard")) == ["version_0"]


def test_resume_below_the_finished_epochs_is_refused(earlier_run, capsys):
    before = checksums(earlier_run)
    assert glore_main(demo_args(earlier_run, "trainer.max_epochs=0", flags=("--resume", "last"))) == 2
    assert "finished 1 epochs" in capsys.readouterr().err
    assert checksums(earlier_run) == before


def test_resume_of_another_task_is_refused(earlier_run, capsys):
    assert glore_main(demo_args(earlier_run, "task=segmentation", flags=("--resume", "last"))) == 2
    assert "it is a 'classification' run" in capsys.readouterr().err


def test_folder_in_use_is_locked(earlier_run, capsys):
    with filelock.FileLock(os.path.join(earlier_run, LOCK_NAME)):
        assert glore_main(demo_args(earlier_run, flags=("--overwrite",))) == 2
    assert "in use by another glore run" in capsys.readouterr().err


def test_overwrite_replaces_and_removes_stale_temporaries(tmp_path, capsys):
    out = tmp_path / "run"
    assert glore_main(demo_args(out)) == 0
    stale = out / "checkpoints" / ".last.ckpt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert glore_main(demo_args(out, flags=("--overwrite",))) == 0
    assert not stale.exists()
    assert (out / "checkpoints" / "last.ckpt").is_file()
