"""Bad input that used to lose files: each case is refused with one line (exit 2) and every file of
the earlier run is byte-identical afterwards."""

import os
import shutil

import pytest

from glore.cli import main as glore_main
from test_run_folders import checksums, demo_args


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished one-epoch demo run under a constant schedule (which a resume may lengthen)."""
    out = tmp_path_factory.mktemp("loss") / "run"
    assert glore_main(demo_args(out, "optim.schedule=constant")) == 0
    return out


def _refused(capsys, argv, folder, *words):
    before = checksums(folder)
    assert glore_main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err
    assert checksums(folder) == before
    return err


def test_resume_of_a_finished_run_says_so_and_changes_nothing(finished_run, capsys):
    _refused(capsys, demo_args(finished_run, "optim.schedule=constant", flags=("--resume", "last")), finished_run,
             "its run has finished (1 epochs", "nothing was changed", "raise trainer.max_epochs")
    assert (finished_run / "metrics.json").read_text() != "{}\n"


@pytest.mark.parametrize("override, words", [
    ("data.options={canvs: 48}", ("data.options", "'canvs'", "DistantDigits")),
    ("optim.name=sgd", ("optim.name='adamw'", "optim.name='sgd'")),
])
def test_a_resume_that_fails_keeps_config_yaml_and_the_checkpoints(finished_run, capsys, override, words):
    argv = demo_args(finished_run, "optim.schedule=constant", "trainer.max_epochs=2", override,
                     flags=("--resume", "last"))
    _refused(capsys, argv, finished_run, *words)


def test_resume_into_a_folder_of_another_run_needs_overwrite(finished_run, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(finished_run, other)
    argv = demo_args(other, "optim.schedule=constant", "trainer.max_epochs=2",
                     flags=("--resume", str(finished_run / "checkpoints" / "last.ckpt")))
    _refused(capsys, argv, other, "holds another run", "--overwrite")


def test_a_folder_with_results_but_no_checkpoints_is_an_earlier_run(finished_run, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(finished_run, other)
    shutil.rmtree(other / "checkpoints")
    assert {"config.yaml", "metrics.json"} <= set(os.listdir(other))
    _refused(capsys, demo_args(other, "optim.schedule=constant"), other,
             "holds an earlier run (config.yaml, metrics.json)", "--overwrite")
