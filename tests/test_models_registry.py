"""Every registered configuration builds with timm.create_model and runs."""

import pytest
import timm
import torch

import glore.models  # noqa: F401  registers the configurations
from glore.models import create_model, inserted_blocks
from glore.models.registry import CONFIGS, find_config

SMALL = {"resnet50_gc", "resnet50_nl", "resnet50_snl", "resnet50_gc_all", "resnet50_glore_0_3"}


def test_importing_glore_models_registers_every_configuration():
    assert set(CONFIGS) <= set(timm.list_models())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_build(name):
    cfg = CONFIGS[name]
    if name in SMALL:
        model = timm.create_model(name, pretrained=False, num_classes=7).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, 64, 64))
        assert out.shape == (1, 7)
    else:   # big backbones: built and run on the meta device (shapes only, no compute), at their input size
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False, num_classes=7).eval()
            out = model(torch.zeros(1, *timm.get_pretrained_cfg(name).input_size))
        assert out.shape == (1, 7)
    same = create_model(cfg.backbone, block=cfg.block, units=cfg.units, position=cfg.position,
                        num_classes=7, block_kwargs=cfg.block_kwargs) if name in SMALL else None
    assert inserted_blocks(model), name
    if same is not None:
        assert list(inserted_blocks(model)) == list(inserted_blocks(same))


def test_registered_names_also_go_through_create_model():
    model = create_model("resnet50_glore_0_3", num_classes=3)
    assert len(inserted_blocks(model)) == 3 and model.fc.out_features == 3


def test_registered_configurations_carry_their_backbones_pretrained_cfg():
    for name, cfg in CONFIGS.items():
        ours, base = timm.get_pretrained_cfg(name).to_dict(), timm.get_pretrained_cfg(cfg.backbone).to_dict()
        assert ours.pop("architecture") == name and base.pop("architecture") == cfg.backbone
        assert ours == base, name
    model = timm.create_model("resnet50_gc", num_classes=3)
    assert model.pretrained_cfg["architecture"] == "resnet50_gc"
    assert model.pretrained_cfg["mean"] == timm.get_pretrained_cfg("resnet50").mean


def test_find_config_matches_equivalent_unit_specs():
    depths = {"res2": 3, "res3": 4, "res4": 6, "res5": 3}
    assert find_config("resnet50", "glore", (0, 3), None, {}, depths) == "resnet50_glore_0_3"
    assert find_config("resnet50", "glore", {"res4": [1, 3, 5]}, "after_add", {}, depths) == \
        "resnet50_glore_0_3"
    assert find_config("resnet50", "nl", {"res4": [5]}, None, {"sub_sample": True}, depths) == "resnet50_nl"
    assert find_config("resnet50", "nl", {"res4": [5]}, None, {}, depths) is None   # not sub-sampled
    assert find_config("resnet50", "gc", {"res4": [5]}, None, {}, depths) is None   # after_1x1
    assert find_config("resnet50", "gc", "all", None, {"ratio": 0.25}, depths) is None
    assert find_config("resnet50", None, None, None, {}, depths) == "resnet50"
