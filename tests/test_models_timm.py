"""Models with blocks fit timm's and torchvision's workflows: pretrained weights, feature wrappers,
FX, TorchScript, meta-device building, and errors that name the keyword.

Pretrained weights come from files these tests write, read through timm's own mechanism
(``pretrained_cfg_overlay=dict(file=...)``) or torchvision's cache: nothing is downloaded.
"""

import pytest
import timm
import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

import glore.models  # noqa: F401  registers the configurations with timm
from glore.models import create_model, create_segmenter, inserted_blocks

BLOCKS = ("glore", "gc", "nl", "snl", "se")
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def _pretrained(name, path, **kwargs):
    """timm backbone ``name`` with random but non-trivial weights (BatchNorm statistics and scales
    too, so that a residual branch is not zero), saved to ``path``."""
    model = timm.create_model(name, **kwargs).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if t.is_floating_point() and ("bn" in key or "downsample.1" in key):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    torch.save(model.state_dict(), path)
    return model


@pytest.fixture(scope="module")
def r18(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    return _pretrained("resnet18", path), path


@pytest.mark.parametrize("block", BLOCKS)
def test_pretrained_backbone_with_blocks_gives_the_backbones_logits(r18, block):
    base, path = r18
    model = create_model("resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                         block=block, units=(1, 1)).eval()
    assert len(inserted_blocks(model)) == 2
    with torch.no_grad():
        torch.testing.assert_close(model(X), base(X), rtol=0, atol=1e-5)
    assert model.pretrained_cfg["file"] == str(path)


def test_a_path_as_pretrained_is_short_for_the_file_overlay(r18):
    base, path = r18
    model = create_model("resnet18", pretrained=path, block="glore", units=(0, 1)).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(X), base(X), rtol=0, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        create_model("resnet18", pretrained=path.parent / "nothere.pth")


@pytest.mark.parametrize("name", ["resnet50_glore_0_3", "resnet50_gc", "resnet50_nl", "resnet50_snl"])
def test_registered_configurations_load_the_backbones_weights_through_timm(tmp_path, name):
    base = _pretrained("resnet50", tmp_path / "resnet50.pth")
    model = timm.create_model(name, pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(tmp_path / "resnet50.pth"))).eval()
    assert inserted_blocks(model)
    with torch.no_grad():
        torch.testing.assert_close(model(X), base(X), rtol=0, atol=1e-5)


def test_new_head_and_input_channels_adapt_the_pretrained_weights(r18):
    _, path = r18
    model = create_model("resnet18", pretrained=path, block="gc", units="all", num_classes=5, in_chans=1)
    assert model.fc.out_features == 5 and model.conv1.in_channels == 1
    assert model.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 5)


@pytest.mark.parametrize("block", ["glore", "gc"])
def test_features_only_gives_the_backbones_features(r18, block):
    _, path = r18
    overlay = dict(file=str(path))
    plain = timm.create_model("resnet18", pretrained=True, pretrained_cfg_overlay=overlay,
                              features_only=True, out_indices=(2, 3, 4)).eval()
    model = create_model("resnet18", pretrained=True, pretrained_cfg_overlay=overlay, block=block,
                         units=(1, 1), features_only=True, out_indices=(2, 3, 4)).eval()
    assert model.feature_info.channels() == [128, 256, 512]
    assert inserted_blocks(model)
    with torch.no_grad():
        for ours, theirs in zip(model(X), plain(X), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_features_only_of_registered_configurations_runs_the_blocks():
    model = timm.create_model("resnet50_glore_0_3", features_only=True, out_indices=(3,)).eval()
    assert len(inserted_blocks(model)) == 3
    for unit in inserted_blocks(model).values():
        torch.nn.init.ones_(unit.norm.weight)          # away from the identity
    plain = timm.create_model("resnet50", features_only=True, out_indices=(3,)).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".after_" not in k})
    with torch.no_grad():
        assert not torch.allclose(model(X)[0], plain(X)[0], atol=1e-3)


def test_forward_intermediates_include_the_blocks():
    model = create_model("resnet18", block="gc", units={"res4": [1]}).eval()
    gc = inserted_blocks(model)["layer3.0.after_1x1"]
    torch.nn.init.normal_(gc.transform[-1].weight)
    final, inter = model.forward_intermediates(X)
    torch.testing.assert_close(final, model.forward_features(X))
    seen = []
    gc.register_forward_hook(lambda m, a, out: seen.append(out))
    model.forward_intermediates(X)
    assert len(seen) == 1 and len(inter) == 5


def test_torchvision_backbones_take_weights_the_torchvision_way(tmp_path, monkeypatch):
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    base = torchvision.models.resnet18().eval()
    with torch.no_grad():
        for t in base.state_dict().values():
            if t.is_floating_point() and t.dim() == 1:
                t.copy_(torch.rand_like(t) + 0.5)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))     # torchvision's cache, filled by the test
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(base.state_dict(), tmp_path / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1])
    for kwargs in (dict(pretrained=True), dict(weights="IMAGENET1K_V1")):
        model = create_model("tv_resnet18", block="gc", units="all", **kwargs).eval()
        with torch.no_grad():
            torch.testing.assert_close(model(X), base(X), rtol=0, atol=1e-5)


def test_segmenter_with_pretrained_backbone_and_blocks_inside_it(r18):
    _, path = r18
    plain = timm.create_model("resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                              features_only=True, out_indices=(3, 4), output_stride=8).eval()
    seg = create_segmenter("resnet18", pretrained=path, head="glore", num_classes=3, channels=32,
                           multigrid=None, aux=False,
                           block="gc", units="all", block_kwargs={"ratio": 1 / 4})
    assert len(inserted_blocks(seg.backbone)) == 2 + 2 + 2
    with torch.no_grad():
        for ours, theirs in zip(seg.eval().backbone(X), plain(X), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- tracing, scripting, meta device
@pytest.mark.parametrize("block", BLOCKS)
def test_fx_feature_extraction_of_a_model_with_blocks(block):
    model = create_model("resnet18", block=block, units=(1, 1)).eval()
    extractor = create_feature_extractor(model, {"layer3": "c4", "fc": "logits"})
    with torch.no_grad():
        out = extractor(X)
        torch.testing.assert_close(out["logits"], model(X))
    assert out["c4"].shape == (2, 256, 4, 4)


@pytest.mark.parametrize("name, block", [("resnet18", "glore"), ("resnet18", "se"),
                                         ("tv_resnet18", "gc"), ("dpn68", "nl")])
def test_torchscript_of_a_model_with_blocks(name, block):
    kwargs = {} if name.startswith("tv_") else {"scriptable": True}
    model = create_model(name, block=block, units=(1, 1), position="after_add", **kwargs).eval()
    for unit in inserted_blocks(model).values():       # away from the identity
        for p in unit.parameters():
            torch.nn.init.normal_(p, std=0.1)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(X), model(X))
    assert any(isinstance(getattr(m, "after_add", None), torch.jit.RecursiveScriptModule)
               for m in scripted.modules())


@pytest.mark.parametrize("block", BLOCKS)
def test_meta_device_build_then_reset_is_the_identity_again(r18, block):
    base, path = r18
    with torch.device("meta"):
        model = create_model("resnet18", block=block, units=(1, 1))
    assert all(p.is_meta for p in model.parameters())
    model.to_empty(device="cpu")
    model.apply(lambda m: m.reset_parameters() if hasattr(m, "reset_parameters") else None)
    missing, unexpected = model.load_state_dict(torch.load(path), strict=False)
    assert not unexpected and all(".after_" in k for k in missing)
    for name, buf in model.named_buffers():
        assert torch.isfinite(buf).all(), name
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(X), base(X), rtol=0, atol=1e-5)


# ---------------------------------------------------------------- errors
def test_a_keyword_the_backbone_does_not_take_is_named_with_what_it_takes():
    with pytest.raises(TypeError, match=r"resnet18 does not take the keyword 'drop_path'.*"
                                        r"'drop_path_rate'.*features_only"):
        create_model("resnet18", block="gc", units=(1, 1), drop_path=0.1)
    with pytest.raises(TypeError, match=r"tv_resnet18 does not take the keyword 'drop_path_rate'.*norm_layer"):
        create_model("tv_resnet18", drop_path_rate=0.1)


def test_an_option_the_block_does_not_take_is_named_with_what_it_takes():
    with pytest.raises(TypeError, match=r"block 'gc' does not take the option\(s\) \['rato'\]; "
                                        r"it takes \[.*'ratio'"):
        create_model("resnet18", block="gc", units=(1, 1), block_kwargs={"rato": 0.25})
    with pytest.raises(ValueError, match="registered configuration"):
        create_model("resnet50_gc", block="glore", units=(0, 1))


def test_timm_keywords_reach_the_backbone():
    model = create_model("resnet18", block="glore", units=(0, 1), drop_path_rate=0.1, num_classes=4)
    assert model.layer4[1].drop_path is not None and model.fc.out_features == 4
