"""Inserting blocks into ResNet-family / DPN backbones: placement, positions, errors, training."""

import copy
import io

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from glore.errors import GloreError
from glore.models import create_model, insert_blocks
from glore.models.insert import find_stages, inserted_blocks, resolve_units

R50 = {"res2": 3, "res3": 4, "res4": 6, "res5": 3}


# ---------------------------------------------------------------- placement rules
def test_n_m_units_go_after_blocks_1_3_5():
    assert resolve_units((2, 3), R50) == {"res3": (1, 3), "res4": (1, 3, 5)}
    assert resolve_units((0, 3), R50) == {"res4": (1, 3, 5)}
    r200 = {"res2": 3, "res3": 24, "res4": 36, "res5": 3}
    assert resolve_units((2, 3), r200) == {"res3": (1, 3), "res4": (1, 3, 5)}


def test_units_spread_evenly_when_every_other_block_does_not_fit():
    assert resolve_units({"res4": 4}, R50) == {"res4": (1, 2, 4, 5)}
    assert resolve_units({"res3": 3}, R50) == {"res3": (1, 2, 3)}
    assert resolve_units({"res5": 3}, R50) == {"res5": (1, 2, 3)}
    for n in range(1, 7):
        placed = resolve_units({"res4": n}, R50)["res4"]
        assert len(set(placed)) == n and placed[0] == 1 and placed[-1] <= 6


def test_explicit_indices_and_all():
    assert resolve_units({"res4": [5]}, R50) == {"res4": (5,)}
    assert resolve_units({"res4": [5, 2]}, R50) == {"res4": (2, 5)}
    assert resolve_units("all", R50) == {"res3": (1, 2, 3, 4), "res4": tuple(range(1, 7)),
                                          "res5": (1, 2, 3)}


def test_glore_units_in_resnet50_sit_where_the_paper_puts_them():
    model = create_model("resnet50", block="glore", units=(2, 3))
    blocks = inserted_blocks(model)
    assert sorted(blocks) == sorted(["layer2.0.after_add", "layer2.2.after_add",
                                     "layer3.0.after_add", "layer3.2.after_add",
                                     "layer3.4.after_add"])
    # mid = the stage's bottleneck width: 128 in Res3, 256 in Res4 (GloRe paper §4.2)
    assert blocks["layer2.0.after_add"].num_nodes == 128
    assert blocks["layer3.4.after_add"].num_nodes == 256
    assert blocks["layer3.4.after_add"].channels == 1024


def test_basic_block_resnet_uses_c_over_4_and_block_kwargs_pass_through():
    model = create_model("resnet18", block="glore", units=(1, 1), block_kwargs=dict(num_nodes=32))
    unit = inserted_blocks(model)["layer3.0.after_add"]
    assert unit.channels == 256 and unit.num_state == 2 * 64 and unit.num_nodes == 32
    model = create_model("resnet18", block="nl", units={"res4": [2]}, block_kwargs={"pairwise": "gaussian"})
    assert inserted_blocks(model)["layer3.1.after_add"].attention.pairwise == "gaussian"


def test_backbone_state_dict_keys_are_unchanged():
    base = timm.create_model("resnet18", pretrained=False)
    model = create_model("resnet18", block="gc", units="all")
    extra = set(model.state_dict()) - set(base.state_dict())
    assert set(base.state_dict()) <= set(model.state_dict())
    assert extra and all(".after_1x1." in k for k in extra)


def test_blocks_are_submodules_where_they_act_and_no_hooks_run_them():
    model = create_model("resnet50", block="glore", units=(0, 1))
    host = model.layer3[0]
    assert list(host._modules)[-2:] == ["after_1x1", "after_add"]
    assert isinstance(host.after_1x1, torch.nn.Identity) and type(host.after_add).__name__ == "GloRe"
    assert "(after_add): GloRe(" in repr(host)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert type(model.layer3[1]).__name__ == "Bottleneck"     # blocks without units are untouched
    assert torch._dynamo.config.skip_nnmodule_hook_guards is True    # dynamo's default, untouched


# ---------------------------------------------------------------- positions
def _eval_pair(name, **kw):
    base = timm.create_model(name, pretrained=False).eval()
    model = create_model(name, **kw).eval()
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected
    return base, model


def _randomise(block):
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if p.dim() == 1 else 0.0))


def test_after_add_applies_the_block_to_the_residual_blocks_output():
    base, model = _eval_pair("resnet18", block="snl", units={"res4": [2]})
    blk = inserted_blocks(model)["layer3.1.after_add"]
    _randomise(blk)
    x = torch.randn(2, 256, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model.layer3[1](x), blk(base.layer3[1](x)), atol=1e-5)


@pytest.mark.parametrize("backbone", ["resnet18", "tv_resnet18"])
def test_after_1x1_applies_the_block_before_the_addition(backbone):
    model = create_model(backbone, block="gc", units={"res4": [2]}).eval()
    host = model.layer3[1]
    blk = inserted_blocks(model)["layer3.1.after_1x1"]
    _randomise(blk)
    x = torch.randn(2, 256, 8, 8)
    with torch.no_grad():
        act = (lambda t: F.relu(t))
        raw = torch.nn.functional.batch_norm(
            host.conv2(act(host.bn1(host.conv1(x)))), host.bn2.running_mean, host.bn2.running_var,
            host.bn2.weight, host.bn2.bias, False, 0.0, host.bn2.eps)
        assert torch.allclose(host(x), F.relu(blk(raw) + x), atol=1e-5)
        assert not torch.allclose(host(x), F.relu(raw + x), atol=1e-3)


def test_tv_bottleneck_after_1x1_uses_bn3():
    model = create_model("tv_resnet50", block="se", units={"res5": 1})
    blk = inserted_blocks(model)["layer4.0.after_1x1"]
    assert blk.channels == 2048
    seen = []
    blk.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape))
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 64, 64))
    assert seen == [torch.Size([1, 2048, 2, 2])]


def test_dpn_block_acts_on_the_residual_path_only():
    base, model = _eval_pair("dpn68", block="glore", units={"res4": [2]})
    host = model.features.conv4_2
    blk = inserted_blocks(model)["features.conv4_2.after_add"]
    assert blk.channels == host.num_1x1_c == 256
    _randomise(blk)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = base.features[:9](x)          # stem + conv2_* + conv3_*: input of conv4_1
        assert list(base.features)[8] is base.features.conv3_4
        y_base = base.features.conv4_2(base.features.conv4_1(feats))
        y = model.features.conv4_2(model.features.conv4_1(feats))
    c = host.num_1x1_c
    assert torch.equal(y[:, c:], y_base[:, c:])
    assert torch.allclose(y[:, :c], blk(y_base[:, :c]), atol=1e-5)
    assert not torch.allclose(y[:, :c], y_base[:, :c])


def test_find_stages_names_dpn_and_resnet_stages():
    stages = find_stages(timm.create_model("dpn68", pretrained=False))
    assert [len(stages[s]) for s in ("res2", "res3", "res4", "res5")] == [3, 4, 12, 3]
    stages = find_stages(create_model("tv_resnet50"))
    assert [h.name for h in stages["res4"]][:2] == ["layer3.0", "layer3.1"]


# ---------------------------------------------------------------- errors
def test_unknown_backbone_lists_close_matches():
    with pytest.raises(ValueError, match="close matches.*'resnet50'"):
        create_model("resnet5O")


@pytest.mark.parametrize("units, message", [
    ({"res6": 1}, "unknown stage 'res6'.*res2"),
    ({"layer3": 1}, "unknown stage 'layer3'"),
    ((0, 7), "res4 has 6 blocks, cannot place 7"),
    ({"res3": [0, 2]}, r"res3 has 4 blocks \(indices 1..4\), got indices \[0\]"),
    ({"res3": [2, 2]}, "distinct"),
    ("some", "units must be"),
    ((1, 2, 3), "units must be"),
])
def test_bad_units_raise(units, message):
    with pytest.raises(ValueError, match=message):
        insert_blocks(timm.create_model("resnet50", pretrained=False), block="glore", units=units)


def test_position_that_the_backbone_cannot_offer():
    with pytest.raises(ValueError, match="'after_1x1' is not offered by DualPathBlock"):
        create_model("dpn68", block="gc", units=(1, 1))     # gc defaults to after_1x1
    with pytest.raises(ValueError, match="position must be one of"):
        create_model("resnet18", block="gc", units=(1, 1), position="before")


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="unknown block 'glorey'"):
        create_model("resnet18", block="glorey", units=(1, 1))
    with pytest.raises(ValueError, match="needs units"):
        create_model("resnet18", block="glore")
    with pytest.raises(ValueError, match="need a block"):
        create_model("resnet18", units=(0, 1))
    with pytest.raises(TypeError, match="ResNet/SE-ResNet.*ConvNeXt.*got Sequential"):
        insert_blocks(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)), block="gc", units=(1, 1))
    with pytest.raises(ValueError, match=r"unknown stage 'res3'; this backbone has stages \['blocks'\]"):
        insert_blocks(timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=2), block="gc",
                      units=(1, 1))
    model = create_model("resnet18", block="glore", units=(0, 1))
    with pytest.raises(ValueError, match=r"layer3.0.after_add already holds a GloRe"):
        insert_blocks(model, block="glore", units=(0, 1))


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_and_backbone_checkpoint(tmp_path):
    model = create_model("resnet18", block="glore", units=(0, 1), num_classes=10)
    with torch.no_grad():
        inserted_blocks(model)["layer3.0.after_add"].norm.weight.fill_(0.5)
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    again = create_model("resnet18", block="glore", units=(0, 1), num_classes=10, checkpoint_path=path)
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k

    base = timm.create_model("resnet18", pretrained=False, num_classes=10)
    torch.save({"state_dict": {f"model.{k}": v for k, v in base.state_dict().items()}},
               tmp_path / "base.ckpt")
    with pytest.warns(UserWarning, match=r"layer3.0.after_add"):
        loaded = create_model("resnet18", block="glore", units=(0, 1), num_classes=10,
                              checkpoint_path=tmp_path / "base.ckpt")
    assert torch.equal(loaded.conv1.weight, base.conv1.weight)


def test_checkpoint_errors_name_the_keys(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        create_model("resnet18", checkpoint_path=tmp_path / "nothere.pt")
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["layer1.0.conv1.weight"]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad.pt.*missing 1: layer1.0.conv1.weight; "
                                         r"unexpected 1: extra.weight"):
        create_model("resnet18", checkpoint_path=tmp_path / "bad.pt")
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "c.pt")
    with pytest.raises(ValueError, match=r"fc.weight \(checkpoint \(1000, 512\), model \(10, 512\)\)"):
        create_model("resnet18", num_classes=10, checkpoint_path=tmp_path / "c.pt")


# ---------------------------------------------------------------- training
ZERO_INIT = {  # the parts each block zero-initialises (identity at initialisation)
    "glore": ("norm.weight", "norm.bias"),
    "nl": ("norm.weight", "norm.bias"),
    "snl": ("value.weight", "value.bias"),
    "gc": ("transform.3.weight", "transform.3.bias"),
}


@pytest.mark.parametrize("block", sorted(ZERO_INIT))
def test_one_training_step_moves_the_zero_initialised_parts(block):
    base = timm.create_model("resnet18", pretrained=False, num_classes=5)
    model = create_model("resnet18", block=block, units=(1, 1), num_classes=5)
    model.load_state_dict(base.state_dict(), strict=False)
    x, target = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        assert torch.equal(model.eval()(x), base.eval()(x))   # identity at initialisation

    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = F.cross_entropy(model.train()(x), target)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)

    blocks = inserted_blocks(model)
    assert len(blocks) == 2
    moved = [(n, p) for b in blocks.values() for n, p in b.named_parameters() if n in ZERO_INIT[block]]
    assert len(moved) == 4 and any(p.abs().sum() > 0 for _, p in moved)

    backbone = {k: v for k, v in model.state_dict().items()
                if not any(k.startswith(f"{b}.") for b in blocks)}
    base.load_state_dict(backbone)
    with torch.no_grad():
        assert not torch.allclose(model.eval()(x), base.eval()(x), atol=1e-6)
        for _, p in moved:                       # put the zero-initialised parts back to zero
            p.zero_()
        assert torch.allclose(model(x), base(x), atol=1e-6)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_run_their_own_blocks(how):
    model = create_model("resnet18", block="glore", units=(0, 1)).eval()
    if how == "deepcopy":
        clone = copy.deepcopy(model)
    else:
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        clone = torch.load(buffer, weights_only=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))
        _randomise(inserted_blocks(clone)["layer3.0.after_add"])
        assert not torch.allclose(model(x), clone(x))
        assert torch.equal(model(x), model(x))


def test_checkpoints_of_the_hook_layout_are_refused_as_another_architecture(tmp_path):
    # the hook-era layout (layer3.0.gc_after_1x1.*) of a version no user has: no renaming layer reads it
    model = create_model("resnet18", block="gc", units=(1, 1), num_classes=10)
    old = {k.replace(".after_1x1.", ".gc_after_1x1."): v for k, v in model.state_dict().items()}
    assert any(".gc_after_1x1." in k for k in old)
    torch.save({"state_dict": {f"model.{k}": v for k, v in old.items()}}, tmp_path / "old.ckpt")
    with pytest.raises(GloreError, match=r"old.ckpt: checkpoint does not match the model: unexpected 16: "
                                         r"layer2.0.gc_after_1x1.attention.key.bias") as info:
        create_model("resnet18", block="gc", units=(1, 1), num_classes=10, checkpoint_path=tmp_path / "old.ckpt")
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_compiling_the_plain_backbone_first_does_not_hide_the_blocks():
    # dynamo reuses a compiled graph for another module whose guards pass: the blocks, being
    # submodules of the residual blocks (whose class changes), must make the guards differ
    torch._dynamo.reset()
    torch.manual_seed(0)
    plain = create_model("resnet18").eval()
    with_glore = create_model("resnet18", block="glore", units=(0, 1)).eval()
    with_glore.load_state_dict(plain.state_dict(), strict=False)
    for block in inserted_blocks(with_glore).values():
        torch.nn.init.ones_(block.norm.weight)          # so that the blocks change the output
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        eager = with_glore(x)
        assert (eager - plain(x)).abs().max() > 1e-3
        torch.compile(plain)(x)
        torch.testing.assert_close(torch.compile(with_glore)(x), eager, rtol=1e-4, atol=1e-4)
