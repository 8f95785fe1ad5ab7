import pytest

from glore.engine.config import DEFAULTS, ConfigError, deep_merge, load_config, parse_override, to_plain


def test_defaults_then_file_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: {name: resnet50, units: [0, 3]}\noptim: {lr: 0.5}\n")
    cfg = load_config(path, ["optim.lr=0.1", "model.units=[2,3]", "trainer.precision=bf16-mixed", "data.options.deep=null"])
    assert cfg["optim"]["lr"] == 0.1
    assert cfg["optim"]["momentum"] == DEFAULTS["optim"]["momentum"]  # default kept by the deep merge
    assert cfg["model"] == {"name": "resnet50", "units": [2, 3]}
    assert cfg["trainer"]["precision"] == "bf16-mixed"
    assert cfg["data"] == {"options": {"deep": None}}
    assert DEFAULTS["optim"]["lr"] == 0.1 and "name" not in DEFAULTS["model"]  # DEFAULTS not mutated


def test_override_values_are_typed():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=1e-4")[1] == pytest.approx(1e-4)
    assert parse_override("a=-2.5E+3")[1] == -2500.0 and parse_override("a=1_0")[1] == 10
    assert parse_override("a=true")[1] is True and parse_override("a=1.2.3")[1] == "1.2.3"
    assert parse_override("a=[1, x]")[1] == [1, "x"]
    assert parse_override("a=x=y")[1] == "x=y"


@pytest.mark.parametrize("bad", ["novalue", "=3", "a..b=1"])
def test_malformed_override(bad):
    with pytest.raises(ConfigError, match="override"):
        parse_override(bad)


def test_unknown_top_level_key_names_the_allowed_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"'optimizer'.*task, seed, output_dir, model, data, optim, trainer"):
        load_config(None, ["optimizer.lr=0.1"])
    path = tmp_path / "bad.yaml"
    path.write_text("modle: {name: x}\n")
    with pytest.raises(ConfigError, match="'modle'"):
        load_config(path)


def test_override_into_a_scalar_is_an_error():
    with pytest.raises(ConfigError, match=r"optim.lr is a float"):
        load_config(None, ["optim.lr.x=1"])


def test_unknown_task_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"task='retrieval': Input should be 'classification'"):
        load_config(None, ["task=retrieval"])
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_deep_merge_and_to_plain():
    merged = deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": (1, 2)})
    assert merged == {"a": {"b": 1, "c": 3}, "d": (1, 2)}
    assert to_plain(merged) == {"a": {"b": 1, "c": 3}, "d": [1, 2]}
    with pytest.raises(ConfigError, match="plain YAML types"):
        to_plain({"x": object()})
