"""The glore command's listings and conveniences: --version, models, configs, train --print-config,
overrides anywhere on the line, one --output-dir spelling, help text for every option."""

import argparse
import os

import pytest
import yaml

import glore
from glore.cli import build_parser, main, parse

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


def _parsers(parser, name="glore"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"glore {glore.__version__}"


def test_every_option_has_help_and_no_markup():
    for name, parser in _parsers(build_parser()):
        assert "``" not in (parser.description or "") and ":func:" not in (parser.description or ""), name
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
            assert "``" not in action.help, f"{name} {action.option_strings}: {action.help}"


def test_models_lists_registered_names_backbones_and_blocks(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "resnet50_glore_0_3" in out and "tv_resnet50" in out and "distant_digits_net" in out
    blocks = out.split("blocks (block=, create_block): 5\n", 1)[1].splitlines()[:5]
    assert [b.strip() for b in blocks] == ["gc", "glore", "nl", "se", "snl"]
    assert main(["models", "--filter", "dpn98_glore"]) == 0
    assert "resnet50" not in capsys.readouterr().out


def test_configs_lists_every_yaml_with_its_task_and_reference(tmp_path, capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    shipped = [os.path.join(d, f) for d, _, files in os.walk(CONFIGS) for f in files if f.endswith(".yaml")]
    assert len(shipped) > 10 and all(os.path.basename(p) in out for p in shipped)
    assert "seg_digits_glore.yaml" in out and " segmentation" in out
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "row.yaml").write_text(
        "task: detection\nreference: {paper: GCNet arXiv 2012.13375, table: 5(e), row: GC r16}\n")
    (tmp_path / "configs" / "broken.yaml").write_text("task: [unclosed\n")
    assert main(["configs", "--root", str(tmp_path / "configs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("row.yaml" in line and "detection" in line and "GCNet arXiv 2012.13375, 5(e), GC r16" in line
               for line in lines)
    assert any("broken.yaml" in line and "unreadable" in line for line in lines)


def test_print_config_prints_the_merged_config_and_trains_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", os.path.join(CONFIGS, "demo", "glore.yaml"), "trainer.max_epochs=2",
                 "--print-config", "--output-dir", str(run), "seed=7", "optim.lr=0.5"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["trainer"]["max_epochs"] == 2 and cfg["seed"] == 7 and cfg["optim"]["lr"] == 0.5
    assert cfg["output_dir"] == str(run) and cfg["model"]["block"] == "glore"
    assert cfg["trainer"]["log_every_n_steps"] == 20          # from the file
    assert cfg["optim"]["momentum"] == 0.9                    # a default
    assert not run.exists()


def test_overrides_anywhere_and_unknown_options_named_by_the_subcommand(capsys):
    parser = build_parser()
    args = parse(parser, ["evaluate", "a.b=1", "--checkpoint", "x.ckpt", "data.root=/d", "--clips", "3", "c=2"])
    assert args.overrides == ["a.b=1", "data.root=/d", "c=2"] and args.clips == 3
    with pytest.raises(SystemExit) as info:
        parse(build_parser(), ["train", "--config", "x.yaml", "seed=1", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "glore train: error: unrecognized arguments: --bogus" in err


def test_output_dir_is_the_one_spelling_and_output_warns(capsys):
    args = parse(build_parser(), ["analyze", "graph", "--checkpoint", "c.ckpt", "--output-dir", "figs"])
    assert str(args.output) == "figs" and capsys.readouterr().err == ""
    args = parse(build_parser(), ["analyze", "graph", "--checkpoint", "c.ckpt", "--output", "old"])
    assert str(args.output) == "old"
    assert capsys.readouterr().err == "glore analyze graph: warning: --output is deprecated; use --output-dir\n"
    for command in (["train"], ["evaluate", "--checkpoint", "c"], ["predict", "--checkpoint", "c", "i.png"],
                    ["demo"]):
        options = {s for a in dict(_parsers(build_parser()))[f"glore {command[0]}"]._actions
                   for s in a.option_strings}
        assert "--output-dir" in options, command
