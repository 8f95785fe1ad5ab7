"""FX tracing (torch.fx, torchvision's and timm's feature extractors), TorchScript, and
re-initialisation (meta device, ``reset_parameters``) of every block."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from glore.nn import BLOCKS, create_block
from test_nn_reference import randomize_

# every code path of every block: the pairwise functions and sub-sampling of NL, GC's variants,
# the unit in both orders of products
VARIANTS = {
    "glore": dict(mid=2),
    "glore_reassociated": dict(mid=2, reassociate=True),
    "glore_2layers": dict(mid=2, gcn_layers=2, normalize=False),
    "nl": {},
    "nl_gaussian": dict(pairwise="gaussian"),
    "nl_dot_product": dict(pairwise="dot_product"),
    "nl_concat": dict(pairwise="concat"),
    "nl_sub_sample": dict(sub_sample=True),
    "snl": {},
    "gc": dict(ratio=1 / 4),
    "gc_avg_scale": dict(ratio=1 / 4, pooling="avg", fusion="scale"),
    "gc_no_ratio": dict(ratio=None),
    "se": dict(ratio=1 / 4),
    "cbam": dict(ratio=1 / 4),
    "cbam_zero_init": dict(ratio=1 / 4, zero_init=True),
}


def _block(variant: str, channels: int = 8) -> nn.Module:
    return create_block(variant.split("_")[0], channels, **VARIANTS[variant])


@pytest.mark.parametrize("shape", [(2, 8, 5), (2, 8, 3, 4), (2, 8, 2, 3, 3)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_symbolic_trace_matches_eager(variant, shape):
    block = randomize_(_block(variant)).double()
    traced = torch.fx.symbolic_trace(block)
    x = torch.randn(shape, dtype=torch.float64)
    if variant.startswith("cbam") and len(shape) != 4:      # images only, checked in the graph too
        with pytest.raises(ValueError, match=r"expects an image batch \(B, C, H, W\)"):
            traced(x)
        return
    for training in (False, True):              # BatchNorm stays a module: its mode is not baked in
        block.train(training), traced.train(training)
        torch.testing.assert_close(traced(x), block(x))
    # the graph records the input check as one call, so the traced block still validates
    assert any(n.op == "call_function" and n.target.__name__ == "check_block_input"
               for n in traced.graph.nodes)
    with pytest.raises(ValueError, match=r"built for 8 channels, got an input with 6 channels"):
        traced(torch.randn(2, 6, 4, 4))


def test_traced_glore_uses_every_parameter():
    # the 1x1 convs are traced into (one ``pointwise`` call each, reading the conv's weight)
    block = _block("glore_2layers")
    traced = torch.fx.symbolic_trace(block)
    read = {n.target for n in traced.graph.nodes if n.op == "get_attr"}
    called = {n.target for n in traced.graph.nodes if n.op == "call_module"}
    assert {name for name, _ in block.named_parameters()} - read == {"norm.weight", "norm.bias"}
    assert called == {"norm"}


class _Host(nn.Module):
    """A small network with a block between two convolutions."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = block
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.head(torch.relu(self.block(self.stem(x))))


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_torchvision_feature_extractor(name):
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    model = randomize_(_Host(_block(name))).eval()
    train_nodes, eval_nodes = get_graph_node_names(model)
    assert "block.add" in eval_nodes or "block.view_as" in eval_nodes or "block.mul" in eval_nodes, eval_nodes
    extractor = create_feature_extractor(model, {"stem": "stem", "head": "out",
                                                 _last_node(eval_nodes, "block"): "block"})
    seen = {}
    model.block.register_forward_hook(lambda m, i, o: seen.__setitem__("block", o))
    x = torch.randn(2, 3, 6, 5)
    out = model(x)
    features = extractor(x)
    torch.testing.assert_close(features["out"], out)
    torch.testing.assert_close(features["block"], seen["block"])


def _last_node(nodes: list[str], prefix: str) -> str:
    return [n for n in nodes if n.startswith(prefix + ".")][-1]


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_timm_feature_extractor_on_a_resnet_with_a_block(name):
    import timm
    from timm.models import FeatureGraphNet

    model = timm.create_model("resnet18", num_classes=10)
    model.layer3 = nn.Sequential(*model.layer3, randomize_(_block(name, 256)))
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    features = FeatureGraphNet(model, out_indices=(2, 3, 4)).eval()(x)
    assert [tuple(f.shape) for f in features] == [(1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
    seen = []
    model.layer3.register_forward_hook(lambda m, i, o: seen.append(o))
    model(x)
    torch.testing.assert_close(features[1], seen[0])


@pytest.mark.filterwarnings("ignore:`torch.jit.:FutureWarning")    # deprecated in torch 2.10+
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_torchscript_matches_eager_and_saves(variant):
    import io

    block = randomize_(_block(variant)).eval()
    scripted = torch.jit.script(block)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    # the unit (C = 8, mid = 2) takes the paper's order of products for up to 2 positions
    shapes = [(2, 8, 2), (2, 8, 5), (2, 8, 3, 4), (1, 8, 6, 6), (2, 8, 2, 3, 3)]
    for shape in [s for s in shapes if len(s) == 4] if variant.startswith("cbam") else shapes:
        x = torch.randn(shape)
        torch.testing.assert_close(scripted(x), block(x))
        torch.testing.assert_close(loaded(x), block(x))


# --- re-initialisation: the meta device, reset_parameters -----------------------------------------

ZERO_INIT = ["glore", "glore_2layers", "nl", "nl_concat", "snl", "gc", "gc_no_ratio", "cbam_zero_init"]


@pytest.mark.parametrize("variant", ZERO_INIT)
def test_reset_parameters_restores_the_identity(variant):
    block = randomize_(_block(variant)).train()
    x = torch.randn(2, 8, 3, 4)
    assert not torch.allclose(block(x), x)
    block.reset_parameters()
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_built_on_meta_then_reset_is_initialised_as_on_the_cpu(variant):
    reference = _block(variant)
    torch.manual_seed(0)
    reference.reset_parameters()
    with torch.device("meta"):
        block = _block(variant)
    assert all(p.is_meta for p in block.parameters())
    block.to_empty(device="cpu")
    torch.manual_seed(0)
    block.reset_parameters()
    for (name, p), q in zip(block.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(p, q), name
    x = torch.randn(2, 8, 3, 4)
    torch.testing.assert_close(block.train()(x), reference.train()(x))
    if variant in ZERO_INIT:
        assert torch.equal(block(x), x)


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_model_on_meta_reset_children_first_has_identity_blocks(name):
    # Module.apply visits children before their parent, so a block's zero-initialisation comes
    # after its BatchNorm's or conv's own reset
    with torch.device("meta"):
        model = _Host(_block(name))
    model.to_empty(device="cpu")
    model.apply(lambda m: m.reset_parameters() if hasattr(m, "reset_parameters") else None)
    assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())
    x = torch.randn(2, 8, 3, 4)
    if name not in ("se", "cbam"):         # (their standard sigmoid gates: no zero_init by default)
        assert torch.equal(model.block.train()(x), x)
