"""glore study: the statistics against hand-computed cases, a grid that is killed and resumed
without redoing a finished run, and the submitit launcher through its local executor."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from glore.cli import main
from glore.errors import ConfigError
from glore.study import stats
from glore.study.spec import check_settings, expand, load_study

REPO = Path(__file__).resolve().parents[1]
TINY = {"trainer.max_epochs": 1, "data.options.num_samples": 128, "data.val_options.num_samples": 64,
        "data.batch_size": 64, "model.width": 8, "trainer.channels_last": False}


def write_study(tmp_path, **changes) -> Path:
    study = {"name": "tiny", "output_dir": str(tmp_path / "out"), "config": str(REPO / "configs/demo/baseline.yaml"),
             "overrides": TINY, "seeds": [0, 1], "seed_keys": ["seed", "data.options.seed"],
             "variants": {"baseline": {}, "glore": {"model.block": "glore"}},
             "compare": {"metric": "val/acc1", "baseline": "baseline"},
             "launcher": {"name": "local", "workers": 1, "threads_per_run": 1}}
    study.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_describe_matches_a_hand_computed_t_interval():
    d = stats.describe([1, 2, 3, 4, 5])
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)     # t_{0.975, 4} * s / sqrt(n)
    assert d["mean"] == 3 and d["std"] == pytest.approx(math.sqrt(2.5))
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((3 - half, 3 + half))
    assert math.isnan(stats.describe([0.5])["std"])


def test_paired_difference_interval_covers_the_known_shift_and_tests_agree():
    baseline = [0.50, 0.62, 0.55, 0.70, 0.58]
    shift = [0.10, 0.20, 0.30, 0.10, 0.20]                     # known differences, mean 0.18
    p = stats.paired([b + s for b, s in zip(baseline, shift)], baseline)
    assert p["mean_diff"] == pytest.approx(0.18)
    assert p["ci_low"] <= 0.18 <= p["ci_high"] and p["ci_low"] > 0
    t = 0.18 / (math.sqrt(sum((s - 0.18) ** 2 for s in shift) / 4) / math.sqrt(5))
    from scipy.stats import t as student
    assert p["t_p"] == pytest.approx(2 * student.sf(t, 4))
    assert p["wilcoxon_p"] == pytest.approx(2 / 2 ** 5)          # all five positive: the exact minimum
    none = stats.paired([0.5, 0.6], [0.5, 0.6])
    assert none["mean_diff"] == 0 and none["t_p"] == 1.0


def test_a_study_file_is_checked_as_a_whole(tmp_path):
    with pytest.raises(ConfigError, match="compare.baseline must name a variant"):
        load_study(write_study(tmp_path, compare={"baseline": "missing"}))
    with pytest.raises(ConfigError, match="seeds"):
        load_study(write_study(tmp_path, seeds=[]))
    runs = expand(load_study(write_study(tmp_path)))
    assert [(r.variant, r.seed) for r in runs] == [("baseline", 0), ("baseline", 1), ("glore", 0), ("glore", 1)]
    assert "model.block=glore" in runs[2].overrides and "data.options.seed=1" in runs[3].overrides


def test_a_study_whose_runs_were_made_with_other_settings_is_refused(tmp_path, capsys):
    runs = expand(load_study(write_study(tmp_path)))
    for run in runs[:2]:                         # the baseline's runs started under the study file as it was
        run.record_settings()
        run.output_dir.mkdir(parents=True)
        run.metrics_path.write_text('{"val/acc1": 0.5}')
    assert main(["study", "--config", str(write_study(tmp_path)), "--status"]) == 0      # same settings
    path = write_study(tmp_path, overrides={**TINY, "trainer.max_epochs": 3})
    with pytest.raises(ConfigError, match=r"2 started run\(s\).*baseline/seed0.*trainer.max_epochs: 1 then, 3 now"):
        check_settings(expand(load_study(path)))
    assert main(["study", "--config", str(path), "--status"]) == 2
    assert "trainer.max_epochs: 1 then, 3 now" in capsys.readouterr().err
    assert runs[0].metrics_path.read_text() == '{"val/acc1": 0.5}'            # nothing lost
    changed_config = write_study(tmp_path, config=str(REPO / "configs/demo/glore.yaml"))
    assert any(c.startswith("config: ") for c in expand(load_study(changed_config))[0].settings_changes())
    for run in runs[:2]:                         # the runs' folders deleted: they run afresh, no refusal
        shutil.rmtree(run.output_dir)
    check_settings(expand(load_study(path)))


@pytest.mark.slow
def test_a_killed_study_resumes_without_redoing_finished_runs(tmp_path):
    path = write_study(tmp_path)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "glore", "study", "--config", str(path)], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = out / "baseline" / "seed0" / "metrics.json"
    deadline = time.time() + 300
    while not first.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)                       # the study and the run it is in
    proc.wait()
    assert first.is_file()
    finished_at = first.stat().st_mtime_ns
    assert not (out / "glore" / "seed1" / "metrics.json").is_file()

    assert main(["study", "--config", str(path)]) == 0
    assert first.stat().st_mtime_ns == finished_at            # not run again
    results = json.loads((out / "results.json").read_text())
    assert [r["state"] for r in results["runs"]] == ["done"] * 4
    assert results["paired"]["glore"]["seeds"] == [0, 1]
    for name in ("summary.md", "summary.csv", "runs.csv", "points.png", "curves.png"):
        assert (out / name).stat().st_size > 0


@pytest.mark.slow
def test_submitit_local_executor_runs_a_study(tmp_path):
    pytest.importorskip("submitit")
    path = write_study(tmp_path, seeds=[0], variants={"baseline": {}},
                       launcher={"name": "submitit", "submitit": {"cluster": "local", "timeout_min": 10}})
    assert main(["study", "--config", str(path)]) == 0
    assert (tmp_path / "out" / "baseline" / "seed0" / "metrics.json").is_file()
    assert list((tmp_path / "out" / "submitit").glob("*_log.out"))   # submitit's own job logs


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "studies").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_studies_expand_to_valid_run_configs(path, monkeypatch):
    from glore.engine.config import load_config

    monkeypatch.chdir(REPO)
    spec = load_study(path)
    runs = expand(spec)
    assert len(spec.seeds) >= 5 and len(runs) == len(spec.seeds) * len(spec.variants)
    for run in runs[:: len(spec.seeds)]:
        cfg = load_config(run.config, list(run.overrides))
        assert cfg["seed"] == spec.seeds[0]
