"""Every config with a ``reference:`` section (a paper's table row) builds and matches the paper:
parameters within 1% and GMACs within 3% at the reference's input, or a ``known_deviation`` that is
real (a stale one, whose row now matches, fails)."""

import json

import pytest

from glore import zoo
from glore.cli import main
from glore.engine.config import load_config, yaml_load
from glore.errors import ConfigError

REFERENCED = [path for path in zoo.find_configs() if "reference" in (yaml_load(path.read_text()) or {})]


def test_the_zoo_has_paper_rows():
    assert len(REFERENCED) >= 1


@pytest.mark.parametrize("path", REFERENCED, ids=lambda p: str(p.relative_to(zoo.CONFIG_ROOT)))
def test_config_matches_its_paper_row(path):
    cfg = load_config(path)
    reference = cfg["reference"]
    counts = zoo.count(cfg)
    comparison = zoo.compare(counts, reference)
    if reference.get("params_m") is None and reference.get("gmacs") is None:
        # a row the paper gives only results for (GloRe Tables 3-4): it builds and is counted
        assert counts["params"] > 0 and counts["gmacs"] > 0 and not reference.get("known_deviation")
        return
    if reference.get("known_deviation"):
        assert not comparison["within"], f"known_deviation of a row that matches the paper: {comparison}"
    else:
        assert comparison["within"], comparison


def test_summary_prints_counts_and_the_reference(capsys):
    path = zoo.CONFIG_ROOT / "classification" / "imagenet_resnet50_glore.yaml"
    assert main(["summary", "--config", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out["params"], int) and isinstance(out["gmacs"], float)
    assert out["reference"]["paper"] == "glore" and out["reference"]["table"] == "2"
    assert out["comparison"]["params"]["within"]
    # an override changes the network that is counted: one unit instead of three
    assert main(["summary", "--config", str(path), "model.units=[0,1]", "--json"]) == 0
    fewer = json.loads(capsys.readouterr().out)
    assert fewer["params"] < out["params"] and not fewer["comparison"]["within"]


def test_compare_uses_the_tolerances():
    counts = {"params": 25_800_000, "gmacs": 4.2}
    near = zoo.compare(counts, {"params_m": 25.6, "gmacs": 4.1})          # +0.8%, +2.4%
    far = zoo.compare(counts, {"params_m": 25.4, "gmacs": None})          # +1.6%
    assert near["within"] and near["params"]["relative"] == pytest.approx(0.0078, abs=1e-4)
    assert not far["within"] and "gmacs" not in far


def test_a_reference_must_name_its_row(tmp_path):
    path = tmp_path / "row.yaml"
    path.write_text("task: classification\nmodel: {name: resnet18, num_classes: 10}\n"
                    "reference: {paper: glore, table: '2', params_m: 11.7, input: [3, 224, 224]}\n")
    with pytest.raises(ConfigError, match="reference.row"):
        load_config(path)


def test_summary_without_a_model_or_config_is_one_line(capsys):
    assert main(["summary"]) == 2
    assert "expected a model name" in capsys.readouterr().err


def test_the_mmdet_convention_counts_detectors_only(tmp_path):
    from glore.errors import ArgumentError

    path = tmp_path / "row.yaml"
    path.write_text("task: classification\nmodel: {name: resnet18, num_classes: 10}\n"
                    "reference: {paper: gcnet, table: '8', row: r18, gmacs: 1.8, input: [3, 224, 224], "
                    "convention: mmdet}\n")
    with pytest.raises(ArgumentError, match="detection configs only"):
        zoo.count(load_config(path))
