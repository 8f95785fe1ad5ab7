"""3D ResNet lite video models: layout, parameter counts, the 3D GloRe unit, inflation from the 2D twin."""

import pytest
import torch
from torch import nn

from glore.models import create_video_model
from glore.models.video import (DEFAULT_UNITS, PreActBottleneck, VideoResNet, inflate_model,
                                inflate_state_dict)
from glore.nn import GlobalContext, GloRe, NonLocal


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny(name="resnet50_3d", **kw):
    kw.setdefault("width_mult", 0.125)
    kw.setdefault("num_classes", 5)
    return create_video_model(name, **kw)


# ----------------------------------------------------------------------------- layout and counts

def test_parameter_counts_match_the_released_layout():
    baseline = create_video_model("resnet50_3d", block=None)
    with_glore = create_video_model("resnet50_3d", block="glore")
    assert n_params(baseline) == 27_985_264
    assert n_params(with_glore) == 33_731_952
    # the difference is exactly 2 units at (C=512, mid=128) and 3 at (C=1024, mid=256)
    expected_units = 2 * n_params(GloRe(512, mid=128)) + 3 * n_params(GloRe(1024, mid=256))
    assert n_params(with_glore) - n_params(baseline) == expected_units == 5_746_688


def test_units_sit_after_blocks_1_3_of_res3_and_1_3_5_of_res4():
    for name, depth3, res4 in (("resnet50_3d", 6, ["0", "2", "4"]),
                               ("resnet101_3d", 23, ["5", "11", "17"]),   # the authors' R101 placement
                               ("resnet101_3d_old", 23, ["0", "2", "4"])):
        kw = {"units": DEFAULT_UNITS} if name.endswith("_old") else {}
        model = tiny(name.removesuffix("_old"), **kw)
        assert len(model.layer3.blocks) == depth3
        assert sorted(model.layer2.units) == ["0", "2"]
        assert sorted(model.layer3.units, key=int) == res4
        assert not model.layer1.units and not model.layer4.units
        units = [m for m in model.modules() if isinstance(m, GloRe)]
        assert len(units) == 5
        # mid = host stage width: res3 128, res4 256 (scaled by width_mult 1/8)
        assert [u.num_nodes for u in units] == [16, 16, 32, 32, 32]


def test_resnet101_parameter_counts_for_both_placements():
    baseline = n_params(create_video_model("resnet101_3d", block=None))
    authors = create_video_model("resnet101_3d")
    old = create_video_model("resnet101_3d", units=DEFAULT_UNITS)
    assert baseline == 51_695_984
    assert n_params(authors) == n_params(old) == 57_442_672
    assert sorted(authors.layer3.units, key=int) == ["5", "11", "17"]


def test_batchnorm_eps_is_the_releases():
    model = tiny(block="glore")
    eps = {m.eps for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    assert eps == {1e-4}


@pytest.mark.parametrize("block, cls", [("nl", NonLocal), ("gc", GlobalContext)])
def test_comparison_blocks_at_the_same_places(block, cls):
    model = tiny(block=block)
    assert sorted(model.layer2.units) == ["0", "2"] and sorted(model.layer3.units) == ["0", "2", "4"]
    assert all(isinstance(u, cls) for stage in (model.layer2, model.layer3) for u in stage.units.values())
    if block == "nl":   # NLNet's video blocks sub-sample keys and values
        assert all(u.sub_sample for u in model.layer3.units.values())
    if block == "gc":   # GCNet's video setting r = 4
        unit = model.layer3.units["0"]
        assert unit.transform[0].out_channels == unit.channels // 4


def test_baseline_has_no_units():
    model = tiny(block=None)
    assert all(len(getattr(model, f"layer{i}").units) == 0 for i in range(1, 5))


def test_temporal_kernels_and_strides_follow_the_layout():
    model = create_video_model("resnet50_3d", block=None)
    kts = [[b.conv1.kernel_size[0] for b in getattr(model, f"layer{i}").blocks] for i in range(1, 5)]
    assert kts == [[3, 3, 3], [3, 1, 3, 1], [3, 1, 3, 1, 3, 1], [1, 3, 1]]
    assert model.conv1.kernel_size == (3, 5, 5) and model.conv1.out_channels == 32
    assert [getattr(model, f"layer{i}").blocks[0].conv2.stride for i in range(1, 5)] == [
        (1, 1, 1), (2, 2, 2), (1, 2, 2), (1, 2, 2)]
    # pre-activation: a block starts with BN, and only the first block of a stage projects
    block = model.layer2.blocks[0]
    assert isinstance(block, PreActBottleneck) and isinstance(block.bn1, nn.BatchNorm3d)
    assert block.downsample is not None and model.layer2.blocks[1].downsample is None
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv3d))


@pytest.mark.parametrize("frames", [8, 16])
def test_forward_8_and_16_frames(frames):
    model = tiny(block="glore").eval()
    x = torch.randn(2, 3, frames, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
    assert logits.shape == (2, 5)
    assert features.shape == (2, model.num_features, frames // 2, 2, 2)   # res3 halves time
    assert torch.isfinite(logits).all()


def test_full_size_forward_small_input():
    model = create_video_model("resnet50_3d", block="glore", num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 32, 32)).shape == (1, 7)


def test_eval_forward_returns_logits_for_flop_counting():
    model = tiny().eval()
    out = model(torch.randn(1, 3, 8, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 5)


def test_the_3d_unit_is_the_nd_unit():
    model = tiny(block="glore").eval()
    seen = {}
    unit = model.layer3.units["2"]
    unit.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0].detach(), y=out.detach()))
    for p in unit.parameters():      # away from the identity initialisation
        nn.init.normal_(p, std=0.1)
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 64, 64))
    assert seen["x"].dim() == 5     # (B, C, T, H, W): the unit runs on spatio-temporal features
    reference = GloRe(unit.channels, mid=unit.num_nodes).eval()
    reference.load_state_dict(unit.state_dict())
    with torch.no_grad():
        expected = reference(seen["x"])
    torch.testing.assert_close(seen["y"], expected)
    assert not torch.allclose(seen["y"], seen["x"])


def test_errors_name_the_values():
    with pytest.raises(ValueError, match="resnet18_3d"):
        create_video_model("resnet18_3d")
    with pytest.raises(ValueError, match=r"5-d input.*\(2, 3, 32, 32\)"):
        tiny()(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"indices \[8\]"):
        tiny(units={"res3": [8]})
    with pytest.raises(ValueError, match="'foo'"):
        tiny(block="foo")


# ----------------------------------------------------------------------------- inflation

def _randomize_norms(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def test_inflated_kernels_sum_over_time_to_the_2d_kernels():
    model_2d = tiny("resnet50_2d_lite", block="glore")
    model_3d = tiny("resnet50_3d", block="glore")
    state, report = inflate_state_dict(model_2d.state_dict(), model_3d)
    assert report.unmapped == []
    assert "conv1.weight" in report.inflated and "layer1.blocks.0.conv1.weight" in report.inflated
    assert "layer2.units.0.reduce.weight" in report.copied
    src = model_2d.state_dict()
    temporal = 0
    for name in report.inflated:
        assert state[name].dim() == 5
        temporal += state[name].shape[2] > 1
        torch.testing.assert_close(state[name].sum(dim=2), src[name])
    assert temporal == 3 + 2 + 3 + 1 + 1    # res2 x3, res3 x2, res4 x3, res5 x1, conv1
    model_3d.load_state_dict(state)
    torch.testing.assert_close(model_3d.fc.weight, model_2d.fc.weight)


def test_unmapped_names_are_reported(tmp_path):
    model_2d = tiny("resnet50_2d_lite", block=None)
    state = dict(model_2d.state_dict())
    state["extra.weight"] = torch.zeros(3)
    state["fc.weight"] = torch.zeros(9, state["fc.weight"].shape[1])   # wrong class count
    path = tmp_path / "r50_2d.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}}, path)   # Lightning-style
    with pytest.warns(UserWarning, match="do not map") as record:
        model = tiny("resnet50_3d", block="glore", inflate_from=path)
    message = str(record[0].message)
    assert "layer2.units.0.reduce.weight" in message or "missing" in message
    report = model.inflation_report
    assert "extra.weight" in report.unexpected
    assert any(m.startswith("fc.weight") for m in report.mismatched)
    assert sum(k.startswith("layer3.units.") for k in report.missing) > 0
    # the mapped weights were loaded
    torch.testing.assert_close(model.layer1.blocks[0].conv3.weight[..., 0, :, :],
                               model_2d.layer1.blocks[0].conv3.weight)


def test_2d_twin_and_inflated_3d_agree_on_static_clips_away_from_borders():
    torch.manual_seed(0)
    model_2d = tiny("resnet50_2d_lite", block=None).eval()
    _randomize_norms(model_2d)
    model_3d = tiny("resnet50_3d", block=None).eval()
    report = inflate_model(model_3d, model_2d.state_dict())
    assert report.unmapped == []
    image = torch.randn(1, 3, 64, 64)
    frames = 32              # the temporal receptive field is +-15 input frames
    clip = image[:, :, None].expand(-1, -1, frames, -1, -1).contiguous()
    with torch.no_grad():
        f2 = model_2d.forward_features(image)
        f3 = model_3d.forward_features(clip)
    assert f3.shape[2] == frames // 2
    center = f3[:, :, frames // 4]
    torch.testing.assert_close(center, f2, rtol=1e-3, atol=1e-3)   # float32 sums of 3 taps over 16 blocks
    # the borders see the zero temporal padding: the check above is not vacuous
    assert not torch.allclose(f3[:, :, 0], f2, rtol=1e-3, atol=1e-3)


def test_inflated_glore_units_act_framewise_on_static_clips():
    model_2d = tiny("resnet50_2d_lite", block="glore").eval()
    for unit in model_2d.modules():
        if isinstance(unit, GloRe):
            for p in unit.parameters():
                nn.init.normal_(p, std=0.1)
    model_3d = tiny("resnet50_3d", block="glore").eval()
    inflate_model(model_3d, model_2d.state_dict())
    unit_2d, unit_3d = model_2d.layer3.units["4"], model_3d.layer3.units["4"]
    x = torch.randn(2, unit_2d.channels, 4, 4)
    with torch.no_grad():
        y2 = unit_2d(x)
        y3 = unit_3d(x[:, :, None].expand(-1, -1, 4, -1, -1))
    for t in range(4):
        torch.testing.assert_close(y3[:, :, t], y2)


def test_checkpoint_round_trip(tmp_path):
    model = tiny(block="glore")
    _randomize_norms(model, seed=3)
    path = tmp_path / "r50_3d.pt"
    torch.save(model.state_dict(), path)
    loaded = tiny(block="glore", checkpoint=path)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="does not match"):
        tiny(block=None, checkpoint=path)


def test_video_resnet_validates_depths():
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        VideoResNet((3, 4))
