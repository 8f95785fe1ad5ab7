"""Every block against a direct einsum implementation of its paper equation (GloRe: arXiv 1811.12814;
GCNet: arXiv 2012.13375), on
random weights with the zero-initialised parts made non-zero, in float64, for 1D, 2D and 3D inputs."""

from __future__ import annotations

import pytest
import torch

from glore.nn import (GlobalContext, GloRe, NonLocal, SimplifiedNonLocal, SqueezeExcite,
                      create_block)
from test_nn_reference import (gc_ref, glore_nodes, glore_param_count, glore_ref, nonlocal_ref,
                               pairwise_ref, randomize_, snl_ref)

SHAPES = [(2, 8, 7), (2, 8, 3, 5), (2, 8, 2, 3, 4)]
SHAPE_IDS = ["1d", "2d", "3d"]


def _input(shape):
    return torch.randn(shape, dtype=torch.float64)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("kwargs", [
    dict(mid=3),
    dict(mid=3, normalize=False),
    dict(mid=2, num_nodes=5, num_state=6, gcn_layers=2),
], ids=["default", "unnormalized", "custom_sizes_2layers"])
@pytest.mark.parametrize("reassociate", [False, True], ids=["paper_order", "reassociated"])
def test_glore_matches_equations(shape, training, kwargs, reassociate):
    unit = randomize_(GloRe(shape[1], reassociate=reassociate, **kwargs).double()).train(training)
    x = _input(shape)
    torch.testing.assert_close(unit(x), glore_ref(unit, x, training=training))


def test_glore_default_widths():
    unit = GloRe(64)
    # the authors' widths: mid = C // 4 (the bottleneck width of the host stage), N = mid, C_s = 2 * mid
    assert (unit.num_nodes, unit.num_state) == (16, 32)
    assert unit.gcn[0].node.weight.shape == (16, 16, 1)
    assert unit.gcn[0].state.weight.shape == (32, 32, 1)
    assert unit.norm.eps == 1e-4


@pytest.mark.parametrize("channels,mid", [(1024, 256), (512, 128), (40, 6)])
def test_glore_parameter_count(channels, mid):
    unit = GloRe(channels) if channels // 4 == mid else GloRe(channels, mid=mid)
    assert sum(p.numel() for p in unit.parameters()) == glore_param_count(channels, mid)


def test_glore_1024_has_the_papers_parameter_count():
    assert sum(p.numel() for p in GloRe(1024).parameters()) == 1_641_472


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "gaussian", "dot_product", "concat"])
def test_nonlocal_matches_equation(shape, training, pairwise):
    block = randomize_(NonLocal(shape[1], pairwise=pairwise).double()).train(training)
    x = _input(shape)
    torch.testing.assert_close(block(x), nonlocal_ref(block, x, training=training))


def test_nonlocal_default_is_embedded_gaussian_with_half_width():
    block = NonLocal(16)
    assert block.attention.pairwise == "embedded_gaussian"
    assert block.value.weight.shape == (8, 16, 1)
    assert block.attention.query.weight.shape == (8, 16, 1)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_simplified_nonlocal_matches_equation(shape):
    block = randomize_(SimplifiedNonLocal(shape[1]).double())
    x = _input(shape)
    torch.testing.assert_close(block(x), snl_ref(block, x))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("pooling", ["att", "avg"])
@pytest.mark.parametrize("fusion", ["add", "scale"])
@pytest.mark.parametrize("layer_norm", [True, False], ids=["ln", "no_ln"])
def test_global_context_matches_equation(shape, pooling, fusion, layer_norm):
    block = GlobalContext(shape[1], ratio=1 / 4, pooling=pooling, fusion=fusion, layer_norm=layer_norm)
    block = randomize_(block.double())
    x = _input(shape)
    expected = gc_ref(block, x, pooling=pooling, fusion=fusion, layer_norm=layer_norm, bottleneck=True)
    torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_global_context_without_ratio_matches_equation(shape):
    block = randomize_(GlobalContext(shape[1], ratio=None).double())
    assert block.transform[0].weight.shape == (shape[1], shape[1], 1)
    x = _input(shape)
    expected = gc_ref(block, x, pooling="att", fusion="add", layer_norm=False, bottleneck=False)
    torch.testing.assert_close(block(x), expected)


def test_global_context_defaults():
    block = GlobalContext(64)
    # ratio 1/16: a 64 -> 4 -> 64 bottleneck, LayerNorm over the 4-vector, attention pooling, add
    assert block.transform[0].weight.shape == (4, 64, 1)
    assert block.transform[-1].weight.shape == (64, 4, 1)
    assert isinstance(block.transform[1], torch.nn.LayerNorm)
    assert block.transform[1].normalized_shape == (4,)
    assert (block.pooling, block.fusion) == ("att", "add")
    assert block.attention is not None


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_squeeze_excite_matches_equation(shape):
    block = randomize_(SqueezeExcite(shape[1], ratio=1 / 2).double())
    x = _input(shape)
    expected = gc_ref(block, x, pooling="avg", fusion="scale", layer_norm=False, bottleneck=True)
    torch.testing.assert_close(block(x), expected)


# --- hook points other code relies on ---------------------------------------------------------------


def test_glore_hook_points():
    unit = randomize_(GloRe(8, mid=3).double()).eval()
    x = _input((2, 8, 4, 5))
    seen = {}
    unit.project.register_forward_hook(lambda m, i, o: seen.__setitem__("B", o))
    unit.gcn.register_forward_pre_hook(lambda m, i: seen.__setitem__("V", i[0]))
    unit(x)
    v_ref, proj_ref = glore_nodes(unit, x)
    assert seen["B"].shape == (2, 3, 20)                          # (B, N, L)
    torch.testing.assert_close(seen["B"], proj_ref)
    assert seen["V"].shape == (2, 6, 3)                           # (B, C_s, N)
    torch.testing.assert_close(seen["V"], v_ref.transpose(1, 2))
    assert unit.gcn[0].node.weight.shape == (3, 3, 1)             # learned adjacency A_g


@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "gaussian", "dot_product", "concat"])
def test_nonlocal_attention_hook(pairwise):
    block = randomize_(NonLocal(6, pairwise=pairwise).double()).eval()
    x = _input((2, 6, 3, 4))
    seen = []
    block.attention.register_forward_hook(lambda m, i, o: seen.append(o))
    block(x)
    assert seen[0].shape == (2, 12, 12)                           # (B, L, L)
    torch.testing.assert_close(seen[0], pairwise_ref(block.attention, x.flatten(2)))


@pytest.mark.parametrize("name", ["snl", "gc"])
def test_context_attention_hook(name):
    block = randomize_(create_block(name, 6).double())
    x = _input((2, 6, 3, 4))
    seen = []
    block.attention.register_forward_hook(lambda m, i, o: seen.append(o))
    block(x)
    assert seen[0].shape == (2, 1, 12)                            # (B, 1, L)
    torch.testing.assert_close(seen[0].sum(-1), torch.ones(2, 1, dtype=torch.float64))


def test_avg_pooling_has_no_attention():
    assert GlobalContext(8, pooling="avg").attention is None
    assert SqueezeExcite(8).attention is None


# --- parameter counts against GCNet Tables 8-9 (ResNet-50: one block on 1024 channels in c4) -------


@pytest.mark.parametrize("name,expected_millions", [("nl", 2.10), ("snl", 1.05), ("gc", 0.13)])
def test_gcnet_parameter_counts(name, expected_millions):
    # Table 8-9: baseline 25.56M; +1 NL 27.66M; +1 SNL 26.61M; +1 GC (r16) 25.69M
    block = create_block(name, 1024)
    assert round(sum(p.numel() for p in block.parameters()) / 1e6, 2) == expected_millions


def test_squeeze_excite_with_zero_init_is_the_identity_then_a_gate_in_0_2():
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    block = SqueezeExcite(8, ratio=1 / 2, zero_init=True).double()
    torch.testing.assert_close(block(x), x)
    randomize_(block)
    t = block.transform(x.flatten(2).mean(-1, keepdim=True))        # (B, C, 1)
    torch.testing.assert_close(block(x), x * 2 * torch.sigmoid(t)[..., None])
    block.reset_parameters()
    torch.testing.assert_close(block(x), x)
