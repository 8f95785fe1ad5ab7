import json

import pytest
import torch

from glore import demo
from glore.models.small import distant_digits_net


def test_demo_tiny_budget_writes_summary_curves_and_checkpoints(tmp_path, capsys):
    summary = demo.run(tmp_path, seed=3, variants=("baseline", "glore"), progress=False, threads=None,
                       epochs=2, train_samples=192, val_samples=64)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written == json.loads(json.dumps(summary))
    for name in ("baseline", "glore"):
        r = written[name]
        assert 0.0 <= r["val_acc"] <= 1.0 and len(r["curve"]) == 2 and r["curve"][-1] == r["val_acc"]
        assert r["params"] > 0 and r["gmacs"] > 0 and r["sec_per_epoch"] > 0
    assert written["glore"]["params"] > written["baseline"]["params"]
    assert written["glore"]["gmacs"] > written["baseline"]["gmacs"]
    assert (tmp_path / "curves.png").stat().st_size > 1000
    table = capsys.readouterr().out
    assert "baseline" in table and "glore" in table and "val_acc" in table

    ckpt = torch.load(tmp_path / "glore" / "model.pt", weights_only=True)
    # the block's resolved options are saved, so later changes of the defaults cannot break a reload
    assert ckpt["model_kwargs"]["mid"] == ckpt["state_dict"]["block.project.weight"].shape[0]
    model = distant_digits_net(**ckpt["model_kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    x = torch.rand(2, 1, 48, 48)
    assert model.eval()(x).shape == (2, 10)


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


def test_video_demo_tiny_budget_writes_summary_curves_and_checkpoints(tmp_path, capsys):
    from glore.models.video import distant_clips_net

    summary = demo.run(tmp_path, seed=1, task="video", variants=("baseline", "glore"), progress=False,
                       threads=None, epochs=1, train_samples=64, val_samples=32, batch_size=32)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written == json.loads(json.dumps(summary))
    assert written["_config"]["task"] == "distant-clips/select" and written["_config"]["num_frames"] == 8
    for name in ("baseline", "glore"):
        r = written[name]
        assert 0.0 <= r["val_acc"] <= 1.0 and r["curve"] == [r["val_acc"]]
        assert r["params"] > 0 and r["gmacs"] > 0
    assert written["glore"]["params"] > written["baseline"]["params"]
    assert (tmp_path / "curves.png").stat().st_size > 1000
    table = capsys.readouterr().out
    assert "baseline" in table and "glore" in table and "val_acc" in table
    ckpt = torch.load(tmp_path / "glore" / "model.pt", weights_only=True)
    assert ckpt["model"] == "distant_clips_net"
    model = distant_clips_net(**ckpt["model_kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    assert model.eval()(torch.rand(2, 1, 8, 36, 36)).shape == (2, 10)


def test_demo_command_line_task_and_glore_demo_entry(tmp_path, monkeypatch):
    from glore import cli

    calls = []
    monkeypatch.setattr(demo, "run", lambda output, **kw: calls.append((str(output), kw)))
    assert cli.main(["demo", "video", "--epochs", "2", "--variants", "glore"]) == 0
    assert demo.main(["--task", "video", "--output", str(tmp_path)]) == 0
    assert demo.main([]) == 0
    (out1, kw1), (out2, kw2), (out3, kw3) = calls
    assert out1 == "results/demo_video" and kw1["task"] == "video" and kw1["epochs"] == 2
    assert kw1["variants"] == ["glore"] and kw1["train_samples"] == demo.VIDEO_DEFAULTS["train_samples"]
    assert out2 == str(tmp_path) and kw2["epochs"] == demo.VIDEO_DEFAULTS["epochs"]
    assert out3 == "results/demo" and kw3["task"] == "image" and kw3["epochs"] == demo.DEFAULTS["epochs"]
