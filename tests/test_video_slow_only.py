"""The Slow-only 3D ResNets (SlowFast's Slow pathway; GCNet Table 10): layout, block places, inflation
from a 2D ResNet-50 state dict, a tiny run through `glore train`, and query-independence statistics per
stage on its checkpoint."""

import json
import warnings
from pathlib import Path

import pytest
import timm
import torch
from torch import nn

from glore.analysis import summary
from glore.analysis.query_independence import block_stage, stage_statistics
from glore.cli import main
from glore.engine import runner
from glore.engine.runner import load_model
from glore.errors import GloreError
from glore.models import create_slow_only
from glore.models.insert import inserted_blocks
from glore.models.slow_only import SlowOnlyResNet
from glore.nn import GlobalContext, NonLocal
from test_video_engine import kinetics, video_cfg  # noqa: F401  (a PyAV-written Kinetics tree)


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine weights, so that inflation is checked on every tensor."""
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=generator) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=generator) * 0.4 - 0.2)
    return model


@pytest.fixture(scope="module")
def resnet50_2d(tmp_path_factory):
    """A 2D timm ResNet-50 (10 classes, random weights and BN statistics) and its state dict file."""
    torch.manual_seed(0)
    model = randomise_batchnorm(timm.create_model("resnet50", num_classes=10)).eval()
    path = tmp_path_factory.mktemp("weights") / "resnet50_2d.pth"
    torch.save(model.state_dict(), path)
    return model, path


def constant_clip(frame: torch.Tensor, frames: int) -> torch.Tensor:
    return frame[:, :, None].expand(-1, -1, frames, -1, -1).contiguous()     # (B, C, T, H, W)


def test_layout_of_the_slow_pathway():
    with torch.device("meta"):
        model = create_slow_only("slow_only_r50")
    assert model.conv1.kernel_size == (1, 7, 7) and model.conv1.stride == (1, 2, 2)
    assert model.maxpool.kernel_size == (1, 3, 3)
    kernels = [[b.conv1.kernel_size[0] for b in getattr(model, f"layer{s}")] for s in range(1, 5)]
    assert kernels == [[1] * 3, [1] * 4, [3] * 6, [3] * 3]
    strides = [b.conv2.stride for s in range(1, 5) for b in getattr(model, f"layer{s}")]
    assert all(s[0] == 1 for s in strides)                               # no temporal downsampling
    assert model.layer2[0].conv2.stride == (1, 2, 2) and model.layer2[0].conv1.stride == (1, 1, 1)
    out = summary(model, (3, 8, 64, 64))
    assert out["params"] == 32_454_096                                   # GCNet Table 10: 32.45 M
    with torch.device("meta"):
        r101 = create_slow_only("slow_only_r101", stride_1x1=True)
        features = r101.forward_features(torch.empty(1, 3, 8, 64, 64))
    assert tuple(features.shape) == (1, 2048, 8, 2, 2) and len(r101.layer3) == 23
    assert r101.layer3[0].conv1.stride == (1, 2, 2) and r101.layer3[0].conv2.stride == (1, 1, 1)


def test_blocks_sit_at_the_gcnet_places():
    with torch.device("meta"):
        nl = create_slow_only("slow_only_r50", block="nl", units=(2, 3))
        gc = create_slow_only("slow_only_r50", block="gc", units="all")
    blocks = inserted_blocks(nl)
    assert sorted(blocks) == ["layer2.0.after_add", "layer2.2.after_add", "layer3.0.after_add",
                              "layer3.2.after_add", "layer3.4.after_add"]
    assert all(isinstance(b, NonLocal) and b.sub_sample for b in blocks.values())
    blocks = inserted_blocks(gc)
    assert len(blocks) == 4 + 6 + 3 and all(name.endswith("after_1x1") for name in blocks)
    assert all(isinstance(b, GlobalContext) and b.transform[0].out_channels * 4 == b.channels
               for b in blocks.values())                                    # GC ratio 1/4 on Kinetics
    assert not any(name.startswith("layer1") for name in blocks)


def test_stride_in_the_first_1x1_gives_the_papers_nl_row():
    """docs/video.md: with the stride in the first 1x1 conv the +5 NL row counts 59.66 GMACs (paper 59.60)."""
    with torch.device("meta"):
        model = create_slow_only("slow_only_r50", block="nl", units=(2, 3), stride_1x1=True)
    assert summary(model, (3, 8, 224, 224))["gmacs"] == pytest.approx(59.60, rel=0.003)


def test_center_inflation_gives_the_2d_logits_on_a_constant_clip(resnet50_2d):
    model_2d, path = resnet50_2d
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # the blocks' missing weights are expected: no warning
        model = create_slow_only("slow_only_r50", block="nl", units=(2, 3), num_classes=10, pretrained=path,
                                 inflation="center").eval()
    report = model.inflation_report
    assert len(report.inflated) == 53                                   # every conv: 1 + 16 x 3 + 4 shortcuts
    assert not report.unexpected and not report.mismatched
    assert report.missing and all(".after_add." in name for name in report.missing)   # the NL blocks only
    frame = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model_2d(frame)
        logits = model(constant_clip(frame, 4))
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_mean_inflation_gives_the_2d_features_away_from_the_temporal_borders(resnet50_2d):
    """Mean inflation (each tap = the 2D kernel / 3) sums to the 2D kernel over time, but the zero
    padding at the clip's ends takes a third away there; the 9 temporal convs of res4-res5 spread that
    9 frames inwards, so only the middle frame of a 19-frame clip is untouched."""
    model_2d, path = resnet50_2d
    model = create_slow_only("slow_only_r50", block="gc", units="all", num_classes=10, pretrained=path).eval()
    assert model.layer3[0].conv1.weight.shape[2] == 3
    torch.testing.assert_close(model.layer3[0].conv1.weight.sum(2), model_2d.layer3[0].conv1.weight)
    frame = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = model_2d.forward_features(frame)
        features = model.forward_features(constant_clip(frame, 19))
    scale = expected.abs().max().item()
    torch.testing.assert_close(features[:, :, 9], expected, rtol=1e-4, atol=1e-4 * scale)
    assert (features[:, :, 0] - expected).abs().max() > 1e-2 * scale          # the borders differ


def test_a_3d_checkpoint_loads_back(tmp_path):
    model = create_slow_only("slow_only_r50", block="snl", units={"res4": [2]}, width_mult=0.125, num_classes=3)
    path = tmp_path / "slow.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    again = create_slow_only("slow_only_r50", block="snl", units={"res4": [2]}, width_mult=0.125, num_classes=3,
                             checkpoint=path)
    for name, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], value), name
    with pytest.raises(GloreError, match="missing"):
        create_slow_only("slow_only_r50", block="nl", units=(1, 1), width_mult=0.125, num_classes=3,
                         checkpoint=path)


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "slow_only_r18"}, "expected one of"),
    ({"inflation": "edge"}, "inflation must be one of"),
    ({"pretrained": "a.pth", "checkpoint": "b.pth"}, "not both"),
    ({"block": "nl"}, "needs units"),
    ({"units": (2, 3)}, "need a block"),
    ({"block": "nl", "units": (5, 3)}, "res3 has 4 blocks"),
    ({"pretrained": "/nonexistent/r50.pth"}, "not found"),
    ({"positions": {"layer2": (0,)}}, r"does not take the keyword\(s\) \['positions'\]"),
])
def test_user_errors_are_one_line(kwargs, match):
    kwargs = {"name": "slow_only_r50", "width_mult": 0.125, **kwargs}
    with pytest.raises(GloreError, match=match) as info:
        create_slow_only(kwargs.pop("name"), **kwargs)
    assert "\n" not in str(info.value)


def test_stage_statistics_average_the_blocks_of_a_stage():
    stats = {"layer2.0.after_add": {"kind": "nl", "images": 4, "input": 0.2, "output": 0.01, "att": 0.03},
             "layer2.2.after_add": {"kind": "nl", "images": 4, "input": 0.4, "output": 0.03, "att": 0.05},
             "layer3.0.after_add": {"kind": "gc", "images": 4, "input": 0.5, "output": 0.0, "att": None},
             "head": {"kind": "nl", "images": 4, "input": 0.9, "output": 0.9, "att": 0.9}}
    stages = stage_statistics(stats)
    assert list(stages) == ["c3", "c4"]
    assert stages["c3"] == pytest.approx({"blocks": 2, "images": 4, "input": 0.3, "output": 0.02, "att": 0.04})
    assert stages["c4"]["att"] is None and stages["c4"]["blocks"] == 1
    assert block_stage("backbone.body.layer4.1.after_1x1") == "c5"
    assert block_stage("features.conv3_2.after_add") == "c3" and block_stage("layer2.units.0") == "c3"


def test_tiny_slow_only_trains_through_glore_train_then_query_independence_per_stage(tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "qi"
    config = Path(__file__).resolve().parents[1] / "configs" / "video" / "moving_digits_slow_only_nl.yaml"
    overrides = ["data.options.length=8", "data.val_options.length=8", "data.batch_size=4", "optim.lr=0.01",
                 "trainer.max_epochs=1", "trainer.accelerator=cpu"]
    assert main(["train", "--config", str(config), "--output-dir", str(run), *overrides]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["val/acc1"] <= 1
    capsys.readouterr()
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert main(["analyze", "query-independence", "--checkpoint", str(checkpoint), "--output", str(out),
                 "--num-images", "3"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "query_independence.json").read_text())
    assert set(result["blocks"]) == {"layer2.0.after_add", "layer2.2.after_add", "layer3.0.after_add",
                                     "layer3.2.after_add", "layer3.4.after_add"}
    assert set(result["stages"]) == {"c3", "c4"}
    assert result["stages"]["c3"]["blocks"] == 2 and result["stages"]["c4"]["blocks"] == 3
    for stage in result["stages"].values():
        assert stage["images"] == 3
        assert 0 < stage["input"] <= 1 and 0 <= stage["att"] <= 1 and 0 <= stage["output"] <= 1
    c3 = result["stages"]["c3"]
    blocks = [result["blocks"][n] for n in ("layer2.0.after_add", "layer2.2.after_add")]
    assert c3["input"] == pytest.approx(sum(b["input"] for b in blocks) / 2)
    assert f"{c3['input']:.3f}" in printed and "stage" in printed


def test_slow_only_trains_and_evaluates_10_clips_x_3_crops_on_a_kinetics_layout(tmp_path, kinetics):
    cfg = video_cfg(tmp_path, kinetics, name="slow_only_r50", block="gc", units="all", width_mult=0.0625)
    runner.train(cfg)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    result = runner.evaluate(str(checkpoint), num_clips=10)
    assert result["num_clips"] == 10 and result["num_crops"] == 3 and result["val/videos"] == 3
    for key in ("val/acc1", "val/video_acc1"):
        assert result[key] * 3 == pytest.approx(round(result[key] * 3))      # k of 3 videos
    model, _ = load_model(str(checkpoint))
    assert isinstance(model, SlowOnlyResNet) and len(inserted_blocks(model)) == 13


def test_glore_summary_names_a_slow_only_network_with_the_2d_placement_options(capsys):
    assert main(["summary", "slow_only_r50", "--kind", "video", "--block", "gc", "--units", "all",
                 "--input-size", "3,4,32,32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 42_455_005                      # GCNet Table 10, "+all GC": 42.45 M
    assert main(["summary", "slow_only_r50", "--kind", "video", "--units", "2,3"]) == 2
    assert "need --block" in capsys.readouterr().err
