import json

import pytest
import torch

from glore import demo
from glore.engine import runner
from glore.models.small import distant_digits_net


def test_demo_tiny_budget_writes_summary_and_glore_train_run_folders(tmp_path, capsys):
    summary = demo.run(tmp_path, seed=3, variants=("baseline", "glore"), progress=False, threads=None,
                       epochs=1, train_samples=128, val_samples=64)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written == json.loads(json.dumps(summary))
    for name in ("baseline", "glore"):
        r = written[name]
        assert 0.0 <= r["val_acc"] <= 1.0 and r["curve"] == [r["val_acc"]]
        assert r["params"] > 0 and r["gmacs"] > 0 and r["sec_per_epoch"] > 0 and len(r["train_loss"]) == 1
    assert written["glore"]["params"] > written["baseline"]["params"]
    assert written["glore"]["gmacs"] > written["baseline"]["gmacs"]
    assert written["_config"]["epochs"] == 1 and written["_config"]["seed"] == 3
    assert (tmp_path / "curves.png").stat().st_size > 1000
    table = capsys.readouterr().out
    assert "baseline" in table and "glore" in table and "val_acc" in table

    # each variant's folder is a `glore train` run: config, checkpoints, metrics; no demo format
    run_dir = tmp_path / "glore"
    for name in ("config.yaml", "metrics.json", "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "model.pt").exists()
    network, cfg = runner.load_model(str(run_dir / "checkpoints" / "last.ckpt"))
    assert cfg["model"]["block"] == "glore" and cfg["seed"] == 3 and cfg["data"]["options"]["seed"] == 3
    assert cfg["data"]["options"]["num_samples"] == 128 and cfg["data"]["val_options"]["num_samples"] == 64
    assert network(torch.rand(2, 1, 48, 48)).shape == (2, 10)
    metrics = runner.evaluate(str(run_dir / "checkpoints" / "last.ckpt"))
    assert metrics["val/acc1"] == pytest.approx(written["glore"]["val_acc"])
    # glore analyze reads it as any training checkpoint
    from glore.cli import main

    figures = tmp_path / "figures"
    assert main(["analyze", "projections", "--checkpoint", str(run_dir / "checkpoints" / "last.ckpt"),
                 "--output-dir", str(figures), "--num-images", "2", "--nodes", "2"]) == 0
    assert any(figures.glob("projections_*.png"))
    # the demo's folders are its own: a second demo run replaces them
    again = demo.run(tmp_path, seed=4, variants=("baseline",), progress=False, threads=None,
                     epochs=1, train_samples=128, val_samples=64)
    assert runner.load_model(str(tmp_path / "baseline" / "checkpoints" / "last.ckpt"))[1]["seed"] == 4
    assert set(again) == {"baseline", "_config"}


def test_demo_configs_hold_the_demo_recipe(tmp_path):
    # configs/demo/*.yaml are the only place the recipe lives for the engine; DEFAULTS documents it
    for task, defaults in (("image", demo.DEFAULTS), ("video", demo.VIDEO_DEFAULTS)):
        for variant, block in demo.VARIANTS.items():
            cfg = demo.variant_config(task, variant, tmp_path / variant, seed=0)
            assert cfg["model"]["block"] == block
            for key, value in defaults.items():
                node = cfg
                for part in demo._CONFIG_KEYS[key].split("."):
                    node = node[part]
                assert node == value, (task, variant, key)
            optim = cfg["optim"]
            assert optim["name"] == "adamw" and optim["no_weight_decay_on_norm_and_bias"] is True
            assert optim["schedule"] == "onecycle" and optim["pct_start"] == 0.25
            assert cfg["trainer"]["channels_last"] is True and cfg["data"]["drop_last"] is True


def test_demo_overrides_reach_the_config(tmp_path):
    cfg = demo.variant_config("image", "gc", tmp_path / "gc", seed=2, progress=False, epochs=3, lr=1e-3)
    assert cfg["seed"] == 2 and cfg["data"]["options"]["seed"] == 2 and cfg["output_dir"] == str(tmp_path / "gc")
    assert cfg["trainer"]["max_epochs"] == 3 and cfg["optim"]["lr"] == 1e-3
    assert cfg["trainer"]["enable_progress_bar"] is False


def test_demo_counts_every_variant_with_the_library_counter():
    # each variant is counted by glore.analysis.summary, also after the first one (the counter's
    # module was once named like the function, so the second import got the module)
    from glore.analysis.complexity import summary

    for name in ("baseline", "glore", "gc"):
        model = distant_digits_net(block=demo.VARIANTS[name], width=8)
        assert demo.count_gmacs(model, (1, 48, 48)) == summary(model, (1, 48, 48))["gmacs"]


def test_demo_rejects_unknown_variant_and_option(tmp_path):
    with pytest.raises(ValueError, match="variants must be a non-empty subset"):
        demo.run(tmp_path, variants=("resnet",), progress=False, threads=None)
    with pytest.raises(ValueError, match="unknown budget options"):
        demo.run(tmp_path, variants=("glore",), progress=False, threads=None, learning_rate=1.0)


def test_video_demo_tiny_budget_trains_through_the_engine(tmp_path, capsys):
    summary = demo.run(tmp_path, seed=1, task="video", variants=("glore",), progress=False,
                       threads=None, epochs=1, train_samples=64, val_samples=32)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written == json.loads(json.dumps(summary))
    assert written["_config"]["task"] == "distant-clips/select" and written["_config"]["num_frames"] == demo.VIDEO_DEFAULTS["num_frames"] == 6
    r = written["glore"]
    assert 0.0 <= r["val_acc"] <= 1.0 and r["curve"] == [r["val_acc"]] and r["gmacs"] > 0
    assert "glore" in capsys.readouterr().out
    network, cfg = runner.load_model(str(tmp_path / "glore" / "checkpoints" / "last.ckpt"))
    assert cfg["data"]["name"] == "distant-clips" and cfg["model"]["name"] == "glore.models.video:distant_clips_net"
    assert sum(p.numel() for p in network.parameters()) == r["params"]
    assert network(torch.rand(2, 1, 6, 36, 36)).shape == (2, 10) and network.fc.in_features == 2 * 32


def test_demo_command_line_task_and_glore_demo_entry(tmp_path, monkeypatch):
    from glore import cli

    calls = []
    monkeypatch.setattr(demo, "run", lambda output, **kw: calls.append((str(output), kw)))
    assert cli.main(["demo", "video", "--epochs", "2", "--variants", "glore"]) == 0
    assert demo.main(["--task", "video", "--output-dir", str(tmp_path)]) == 0
    assert demo.main(["--seed", "2", "--no-progress", "--threads", "1"]) == 0
    (out1, kw1), (out2, kw2), (out3, kw3) = calls
    assert out1 == "results/demo_video" and kw1["task"] == "video" and kw1["epochs"] == 2
    assert kw1["variants"] == ["glore"] and kw1["train_samples"] == demo.VIDEO_DEFAULTS["train_samples"]
    assert out2 == str(tmp_path) and kw2["epochs"] == demo.VIDEO_DEFAULTS["epochs"]
    assert out3 == "results/demo" and kw3["task"] == "image" and kw3["epochs"] == demo.DEFAULTS["epochs"]
    assert kw3["seed"] == 2 and kw3["progress"] is False and kw3["threads"] == 1
