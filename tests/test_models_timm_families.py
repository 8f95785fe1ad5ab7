"""Blocks by stage and block index in timm's other CNN families and in vision transformers
(glore.models.timm_hosts): identity at initialisation from a pretrained file, the units act where
they are placed, FX, TorchScript, features_only, pickling, stage names and defaults."""

import json
import pickle

import pytest
import timm
import torch
from safetensors.torch import save_file
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from glore.models import create_model, find_stages, insert_blocks, inserted_blocks
from glore.models.insert import gc_ratio
from glore.models.timm_hosts import BranchEnd, PatchTokens, TokenImage
from glore.nn import GloRe

pytestmark = pytest.mark.xdist_group("timm_families")

# family -> (timm name, small-model keywords, input size, a placement for GloRe)
SWIN = dict(embed_dim=24, depths=(1, 1, 2, 1), num_heads=(1, 1, 1, 1))
FAMILIES = {
    "convnext": ("convnext_atto", {}, 64, {"stages.2": 3}),
    "convnextv2": ("convnextv2_atto", {}, 64, {"stages.2": [2]}),
    "regnet": ("regnety_002", {}, 64, {"s3": 2}),
    "resnetv2": ("resnetv2_18", {}, 64, {"stages.2": 1}),
    "efficientnet": ("efficientnet_b0", {}, 64, {"blocks.4": 3}),
    "mobilenetv3": ("mobilenetv3_small_050", {}, 64, {"blocks.3": [2]}),
    "cspnet": ("cs3darknet_s", {}, 64, {"stages.2": 1}),
    "byobnet": ("gernet_s", {}, 64, {"stages.2": [1, 3]}),
    "vit": ("vit_tiny_patch16_224", dict(img_size=64, depth=4), 64, {"blocks": [2, 4]}),
    "deit": ("deit_tiny_distilled_patch16_224", dict(img_size=64, depth=2), 64, {"blocks": [1]}),
    "swin": ("swin_tiny_patch4_window7_224", SWIN, 224, {"layers.2": 1}),
}


def _plain(name, kwargs, num_classes=1000):
    """The backbone with weights like trained ones: timm starts some branches' last norm at zero
    (zero_init_last), where a unit in the branch would see only zeros."""
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=num_classes, **kwargs).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1 and not p.any():
                p.normal_(0.0, 0.1)
    return model


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A pretrained file of each small backbone, written by the test."""
    folder = tmp_path_factory.mktemp("weights")
    files = {}
    for family, (name, kwargs, _, _) in FAMILIES.items():
        files[family] = folder / f"{family}.safetensors"
        state = _plain(name, kwargs).state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, str(files[family]))
    return files


@pytest.mark.parametrize("family, block", [(f, b) for f in sorted(FAMILIES) for b in ("glore", "gc")]
                         + [("convnext", "nl"), ("vit", "nl"), ("swin", "snl"), ("regnet", "se")])
def test_blocks_at_identity_give_the_pretrained_backbones_logits(family, block, weights):
    name, kwargs, size, glore_units = FAMILIES[family]
    plain = _plain(name, kwargs)
    plain.load_state_dict(timm.models.load_state_dict(str(weights[family])))
    units = "all" if block in ("gc", "se") else glore_units
    # the weights' 1000 classes: with another num_classes timm would start a new classifier
    model = create_model(name, pretrained=str(weights[family]), block=block, units=units, **kwargs).eval()
    assert inserted_blocks(model)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-5)
        for unit in inserted_blocks(model).values():   # away from the identity, the units change the logits
            for p in unit.parameters():
                p.add_(0.1 * torch.randn_like(p))
        assert (model(x) - plain(x)).abs().max() > 1e-6


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fx_feature_extraction_sees_the_units(family):
    name, kwargs, size, units = FAMILIES[family]
    model = insert_blocks(_plain(name, kwargs), block="glore", units=units)
    nodes = [n for n in get_graph_node_names(model)[1] if "after_add" in n]
    assert nodes, "the units are not in the traced graph"
    extractor = create_feature_extractor(model, {nodes[-1]: "unit"})
    with torch.no_grad():
        feature = extractor(torch.randn(1, 3, size, size))["unit"]
    assert feature.shape[0] == 1 and feature.dim() >= 3


def test_stage_names_follow_timms_feature_info():
    expected = {
        "convnext": ["stages.0", "stages.1", "stages.2", "stages.3"],
        "regnet": ["s1", "s2", "s3", "s4"],
        "resnetv2": ["stages.0", "stages.1", "stages.2", "stages.3"],
        "efficientnet": [f"blocks.{i}" for i in range(7)],
        "vit": ["blocks"],
        "swin": ["layers.0", "layers.1", "layers.2", "layers.3"],
    }
    for family, stages in expected.items():
        name, kwargs, _, _ = FAMILIES[family]
        model = _plain(name, kwargs)
        assert list(find_stages(model)) == stages, family
        info = [f["module"] for f in model.feature_info]
        assert set(stages) & set(info) or family == "vit", family


def test_positions_per_family():
    convnext = insert_blocks(_plain("convnext_atto", {}), block="gc", units={"stages.1": [1]})
    end = convnext.stages[1].blocks[0].drop_path          # GC's default: in the branch, before the drop path
    assert isinstance(end, BranchEnd) and "stages.1.blocks.0.drop_path.after_1x1" in inserted_blocks(convnext)
    effnet = _plain("efficientnet_b0", {})
    with pytest.raises(ValueError, match=r"'after_1x1' is not offered.*blocks.1.0.*\['after_add'\]"):
        insert_blocks(effnet, block="gc", units={"blocks.1": [1]}, position="after_1x1")
    insert_blocks(effnet, block="gc", units={"blocks.1": [1, 2]})   # default: after_add where no shortcut
    assert sorted(inserted_blocks(effnet)) == ["blocks.1.0.after_add", "blocks.1.1.drop_path.after_1x1"]
    with pytest.raises(ValueError, match=r"blocks.1.1.after_1x1 already holds a GlobalContext"):
        insert_blocks(effnet, block="se", units={"blocks.1": [2]})
    vit = insert_blocks(_plain(*FAMILIES["vit"][:2]), block="gc", units="all")   # all 4 blocks, after_add
    assert sorted(inserted_blocks(vit)) == [f"blocks.{i}.after_add.block" for i in range(4)]
    with pytest.raises(ValueError, match="unknown stage 'stages.9'; this backbone has stages"):
        insert_blocks(_plain("convnext_atto", {}), block="glore", units={"stages.9": 1})


def test_units_all_skips_the_first_stage():
    model = insert_blocks(_plain("convnext_atto", {}), block="gc", units="all")
    stages = {name.split(".blocks")[0] for name in inserted_blocks(model)}
    assert stages == {"stages.1", "stages.2", "stages.3"}
    assert len(inserted_blocks(model)) == 2 + 6 + 2


def test_defaults_from_the_hosts_channels():
    model = insert_blocks(_plain("convnext_atto", {}), block="glore", units={"stages.2": [1], "stages.3": [1]})
    units = inserted_blocks(model)
    assert units["stages.2.blocks.0.after_add"].channels == 160            # convnext_atto: 40, 80, 160, 320
    assert units["stages.2.blocks.0.after_add"].num_nodes == 40            # mid = C / 4
    assert units["stages.3.blocks.0.after_add"].num_nodes == 80
    model = insert_blocks(_plain("convnext_atto", {}), block="gc", units={"stages.1": [1], "stages.3": [1]})
    hidden = {n: u.transform[0].out_channels for n, u in inserted_blocks(model).items()}
    assert hidden == {"stages.1.blocks.0.drop_path.after_1x1": 16, "stages.3.blocks.0.drop_path.after_1x1": 20}
    assert gc_ratio(96) == 1 / 6 and gc_ratio(1024) == 1 / 16 and gc_ratio(8) == 1.0
    given = insert_blocks(_plain("convnext_atto", {}), block="gc", units={"stages.3": [1]},
                          block_kwargs={"ratio": 1 / 4})
    assert next(iter(inserted_blocks(given).values())).transform[0].out_channels == 80


def test_vit_prefix_tokens_pass_unchanged():
    model = _plain("vit_tiny_patch16_224", dict(img_size=32, depth=1, reg_tokens=4))
    insert_blocks(model, block="glore", units={"blocks": [1]})
    wrapper = model.blocks[0].after_add
    assert isinstance(wrapper, PatchTokens) and wrapper.num_prefix_tokens == 5
    with torch.no_grad():
        wrapper.block.norm.weight.fill_(1.0)
        tokens = torch.randn(2, 5 + 4, 192)
        out = wrapper(tokens)
        expected = wrapper.block(tokens[:, 5:].transpose(1, 2)).transpose(1, 2)
    assert torch.equal(out[:, :5], tokens[:, :5])
    torch.testing.assert_close(out[:, 5:], expected)


def test_swin_tokens_as_the_image():
    model = insert_blocks(_plain(*FAMILIES["swin"][:2]), block="nl", units={"layers.1": [1]})
    wrapper = model.layers[1].blocks[0].after_add
    assert isinstance(wrapper, TokenImage)
    with torch.no_grad():
        for p in wrapper.block.parameters():
            p.add_(0.1)
        tokens = torch.randn(1, 7, 5, 48)
        torch.testing.assert_close(wrapper(tokens), wrapper.block(tokens.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


def test_features_only_includes_the_units(weights):
    name, kwargs, size, units = FAMILIES["convnext"]
    plain = timm.create_model(name, features_only=True, pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(weights["convnext"])), **kwargs).eval()
    model = create_model(name, pretrained=str(weights["convnext"]), block="glore", units=units,
                         features_only=True, **kwargs).eval()
    assert len(inserted_blocks(model)) == 3
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        for ours, theirs in zip(model(x), plain(x)):
            torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("family", ["convnext", "vit"])
def test_torchscript_and_pickle(family):
    name, kwargs, size, units = FAMILIES[family]
    model = insert_blocks(_plain(name, kwargs), block="glore", units=units)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(torch.jit.script(model)(x), expected)
        torch.testing.assert_close(pickle.loads(pickle.dumps(model))(x), expected)


def test_registered_configurations_of_the_new_families():
    from glore.models.registry import CONFIGS

    expected = {"convnext_tiny_glore_0_3": 3, "convnext_tiny_gc_all": 3 + 9 + 3, "regnety_040_glore_0_3": 3,
                "efficientnet_b0_glore_0_3": 3, "efficientnet_b0_gc_all": 2 + 2 + 3 + 3 + 4 + 1,
                "resnetv2_50_gc_all": 4 + 6 + 3, "vit_small_patch16_224_glore": 3,
                "vit_small_patch16_224_gc_all": 12}
    for name, count in expected.items():
        assert name in CONFIGS
        with torch.device("meta"):
            model = timm.create_model(name, num_classes=3)
        assert len(inserted_blocks(model)) == count, name
        assert model.pretrained_cfg["architecture"] == name


def test_glore_summary_of_a_new_family(capsys):
    from glore.cli import main

    counts = {}
    for extra in ([], ["--block", "glore", "--units", "{stages.2: [1]}"]):
        assert main(["summary", "convnext_atto", "--input-size", "3,64,64", "--json", *extra]) == 0
        counts[bool(extra)] = json.loads(capsys.readouterr().out)
    unit = GloRe(160, mid=40)                 # convnext_atto's stages.2: 160 channels at 4x4
    assert counts[True]["params"] - counts[False]["params"] == sum(p.numel() for p in unit.parameters())
    assert counts[True]["macs"] > counts[False]["macs"]
