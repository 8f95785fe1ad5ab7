"""The small ConvNeXt-style network of configs/demo/convnext_*.yaml (glore.models.small_convnext)."""

import pytest
import torch
from torch import nn

from glore.engine.classification import build_model
from glore.engine.config import load_config
from glore.errors import GloreError
from glore.models import inserted_blocks
from glore.models.small import SMALL_MODELS
from glore.nn import GloRe


def test_layout_stem_batchnorm_and_output_stride_8():
    model = SMALL_MODELS["distant_digits_convnext"]()
    x = torch.rand(2, 1, 48, 48)
    shapes = [tuple(model.stem(x).shape[1:])]
    h = model.stem(x)
    for stage in model.stages:
        h = stage(h)
        shapes.append(tuple(h.shape[1:]))
    assert shapes == [(32, 12, 12), (32, 12, 12), (48, 6, 6), (64, 6, 6), (96, 6, 6)]
    assert not any(isinstance(m, nn.LayerNorm) or "LayerNorm" in type(m).__name__ for m in model.modules())
    assert model(x).shape == (2, 10)


def test_configs_place_the_demo_unit_at_identity():
    cfgs = {v: load_config(f"configs/demo/convnext_{v}.yaml") for v in ("baseline", "glore")}
    baseline, glore = (build_model(cfgs[v]["model"]).eval() for v in ("baseline", "glore"))
    units = inserted_blocks(glore)
    assert list(units) == ["stages.0.blocks.1.after_add"] and not inserted_blocks(baseline)
    unit = units["stages.0.blocks.1.after_add"]
    assert isinstance(unit, GloRe) and (unit.num_nodes, unit.num_state) == (32, 64)
    state = {k: v for k, v in glore.state_dict().items() if ".after_add." not in k}
    baseline.load_state_dict(state)
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(glore(x), baseline(x))
    assert cfgs["glore"]["optim"] == cfgs["baseline"]["optim"] and cfgs["glore"]["trainer"] == cfgs["baseline"]["trainer"]


def test_units_without_a_block_are_refused():
    with pytest.raises(GloreError, match="need a block"):
        SMALL_MODELS["distant_digits_convnext"](units={"stages.0": [2]})
