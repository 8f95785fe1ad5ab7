"""The papers' configurations have the papers' parameter counts and multiply-adds.

Every row is built on the meta device (no memory, no init, no compute) and its multiply-adds are
counted with PyTorch's dispatch-level ``FlopCounterMode`` (2 FLOPs per multiply-add), which runs on
meta tensors in about a second even for ResNet-200 / DPN-131. ``test_summary_matches_an_independent_
counter`` checks that :func:`glore.analysis.summary` (the same counter, on real tensors) gives
exactly the same count for a ResNet and a DPN with GloRe units.

The papers count the GloRe unit's products in the paper's order; by default a unit takes them in
the cheaper order for its input size (``GloRe(reassociate=None)``), which at 224x224 changes the
Res3 units (28x28 positions) and not the Res4 ones. The papers' figures are compared with the
paper's order; ``test_res3_units_take_the_cheaper_order_by_default`` checks the difference.
"""


import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

import glore.models  # noqa: F401  registers the configurations
from glore.analysis.complexity import count_parameters, summary
from glore.models import create_model, inserted_blocks
from glore.models.paper_figures import FIGURES, baseline_figure
from glore.models.registry import CONFIGS
from glore.nn import GloRe

TABLE2 = [n for n in FIGURES if FIGURES[n][0].source == "GloRe Table 2"]
GCNET = [n for n in FIGURES if n in CONFIGS and FIGURES[n][0].source == "GCNet Table 8a"]


def _meta(name, **kwargs):
    with torch.device("meta"):
        if kwargs or name not in timm.list_models():
            return create_model(name, **kwargs).eval()
        return timm.create_model(name, pretrained=False).eval()


def _meta_gmacs(model):
    x = torch.zeros(1, 3, 224, 224, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2 / 1e9


_CACHE = {}


def _row(name, paper_order=True):
    """(params in M, GMACs) of a configuration, cached; GloRe products in the paper's order or in
    the model's default order."""
    if (name, paper_order) not in _CACHE:
        model = _meta(name)
        for unit in model.modules():
            if paper_order and isinstance(unit, GloRe):
                unit.reassociate = False
        _CACHE[name, paper_order] = count_parameters(model) / 1e6, _meta_gmacs(model)
    return _CACHE[name, paper_order]


def test_table2_and_gcnet_lists_are_complete():
    assert len(TABLE2) == 14 and len(GCNET) == 4
    assert all(n in CONFIGS for n in TABLE2 if "_glore_" in n)


@pytest.mark.parametrize("name", TABLE2)
def test_table2_params_within_1_5_percent_and_gmacs_within_6_percent(name):
    fig = FIGURES[name][0]
    params, gmacs = _row(name)
    assert params == pytest.approx(fig.params_m, rel=0.015), (params, fig)
    assert gmacs == pytest.approx(fig.gmacs, rel=0.06), (gmacs, fig)
    base = baseline_figure(fig)
    if base is not None:
        # the units' own cost matches the paper's increment (two numbers rounded to 0.1)
        assert gmacs - _row(fig.baseline)[1] == pytest.approx(fig.gmacs - base.gmacs, abs=0.15)


@pytest.mark.parametrize("name", ["resnet50_glore_2_3", "dpn98_glore_2_3"])
def test_summary_matches_an_independent_counter(name):
    model = timm.create_model(name, pretrained=False)
    result = summary(model)
    assert result["macs"] == round(_row(name, paper_order=False)[1] * 1e9)
    assert result["params"] == round(_row(name, paper_order=False)[0] * 1e6)
    # the units' matrix products are counted beside the convolutions and the classifier
    products = {op: macs for op, macs in result["macs_by_operator"].items() if op != "convolution"}
    assert sum(products.values()) > 2048 * 1000


def test_res3_units_take_the_cheaper_order_by_default():
    # one Res3 unit (C=512, N=128, C_s=256, L=28x28): 2 C_s L (C + N) -> 2 C N (L + C_s) multiply-adds
    c, n, s, length = 512, 128, 256, 28 * 28
    saving = 2 * s * length * (c + n) - 2 * c * n * (length + s)
    assert _row("resnet50_glore_2_3", paper_order=False)[1] == pytest.approx(
        _row("resnet50_glore_2_3")[1] - 2 * saving / 1e9, abs=1e-9)
    assert _row("resnet50_glore_0_3", paper_order=False) == _row("resnet50_glore_0_3")


@pytest.mark.parametrize("name", GCNET)
def test_gcnet_params_within_1_percent(name):
    fig = FIGURES[name][0]
    params, _ = _row(name)
    assert params == pytest.approx(fig.params_m, rel=0.01), (params, fig)


def test_gcnet_nl_sits_before_the_last_block_of_res4():
    model = _meta("resnet50_nl")
    assert list(inserted_blocks(model)) == ["layer3.4.after_add"]
    assert len(model.layer3) == 6
    # one NL in ResNet-50 c4 adds 2.10M parameters (GCNet Table 8a)
    assert count_parameters(inserted_blocks(model)["layer3.4.after_add"]) / 1e6 == \
        pytest.approx(2.10, abs=0.005)


def test_gc_in_all_blocks_adds_about_0_01_gmacs():
    model = _meta("resnet50_gc_all")
    assert len(inserted_blocks(model)) == 4 + 6 + 3
    assert all(name.endswith("after_1x1") for name in inserted_blocks(model))
    inc = _row("resnet50_gc_all")[1] - _row("resnet50")[1]
    assert 0 < inc < 0.02          # paper: 3.86 -> 3.87 G


def test_one_nl_adds_0_25_gmacs():
    # GCNet's 0.25 G for +1 NL is the cost with keys and values 2x2 sub-sampled (NL paper §3.3);
    # without sub-sampling one NL at 14x14 costs about 0.45 G
    model = _meta("resnet50", block="nl", units={"res4": [5]}, block_kwargs={"sub_sample": True})
    inc = _meta_gmacs(model) - _row("resnet50")[1]
    assert inc == pytest.approx(0.25, rel=0.15)
