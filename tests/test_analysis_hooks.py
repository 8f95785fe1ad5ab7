import pytest
import torch
from torch import nn

from glore.analysis.hooks import BlockRecorder, describe_blocks, find_blocks, record_blocks
from glore.nn import GlobalContext, GloRe, NonLocal, SimplifiedNonLocal, SqueezeExcite


def randomize(model: nn.Module) -> nn.Module:
    """Give zero-initialised layers random weights, so that blocks are not the identity."""
    with torch.no_grad():
        for p in model.parameters():
            if (p == 0).all() or (p == 1).all():
                p.normal_(0, 0.5)
    return model


def tiny_model(dim: int = 2) -> nn.Sequential:
    conv = nn.Conv2d if dim == 2 else nn.Conv3d
    return randomize(nn.Sequential(
        conv(1, 8, 3, padding=1), GloRe(8, mid=4, gcn_layers=2), NonLocal(8),
        SimplifiedNonLocal(8), GlobalContext(8, ratio=0.5), SqueezeExcite(8, ratio=0.5),
    )).eval()


def manual_pass(model, x):
    """Every block's computation written out by hand from its weights."""
    stem, glore, nl, snl, gc = model[0], model[1], model[2], model[3], model[4]
    w = lambda conv: conv.weight[:, :, 0]
    h = stem(x)
    flat = h.flatten(2)
    proj = w(glore.project) @ flat + glore.project.bias[:, None]
    state = w(glore.reduce) @ flat + glore.reduce.bias[:, None]
    nodes = state @ proj.transpose(1, 2) / flat.shape[-1]
    h1 = glore(h)
    f1 = h1.flatten(2)
    q = w(nl.attention.query) @ f1 + nl.attention.query.bias[:, None]
    k = w(nl.attention.key) @ f1 + nl.attention.key.bias[:, None]
    nl_att = torch.softmax(q.transpose(1, 2) @ k, dim=-1)
    h2 = nl(h1)
    f2 = h2.flatten(2)
    snl_att = torch.softmax(w(snl.attention.key) @ f2 + snl.attention.key.bias[:, None], dim=-1)
    h3 = snl(h2)
    f3 = h3.flatten(2)
    gc_att = torch.softmax(w(gc.attention.key) @ f3 + gc.attention.key.bias[:, None], dim=-1)
    return {"glore_in": h, "projection": proj, "nodes": nodes, "nl_in": h1, "nl_out": h2,
            "nl": nl_att, "snl": snl_att, "gc": gc_att}


@pytest.mark.parametrize("dim,shape", [(2, (2, 1, 6, 5)), (3, (2, 1, 3, 4, 5))])
def test_hooks_capture_what_the_blocks_used(dim, shape):
    model = tiny_model(dim)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = manual_pass(model, x)
        records = record_blocks(model, x)
    assert list(records) == ["1", "2", "3", "4", "5"]
    assert [r.kind for r in records.values()] == ["glore", "nl", "snl", "gc", "se"]
    glore, nl = records["1"], records["2"]
    assert glore.spatial_shape == shape[2:]
    torch.testing.assert_close(glore.input, expected["glore_in"])
    torch.testing.assert_close(glore.projection, expected["projection"])
    torch.testing.assert_close(glore.nodes, expected["nodes"])
    torch.testing.assert_close(nl.input, expected["nl_in"])
    torch.testing.assert_close(nl.output, expected["nl_out"])
    torch.testing.assert_close(nl.attention, expected["nl"])
    torch.testing.assert_close(records["3"].attention, expected["snl"])
    torch.testing.assert_close(records["4"].attention, expected["gc"])
    assert records["5"].attention is None
    # maps come back on the input's grid
    assert glore.as_maps(glore.projection).shape == (2, 4, *shape[2:])


def test_hooks_leave_the_model_unchanged_and_are_removed():
    model = tiny_model()
    x = torch.randn(2, 1, 6, 6)
    with torch.no_grad():
        before = model(x)
        with BlockRecorder(model, kinds=["nl"]) as rec:
            during = model(x)
        assert list(rec.records) == ["2"]
        rec.clear()
        after = model(x)
    torch.testing.assert_close(before, during)
    torch.testing.assert_close(before, after)
    assert rec.records == {}          # nothing recorded once the hooks are gone
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_keep_limits_what_is_stored():
    records = record_blocks(tiny_model(), torch.randn(1, 1, 4, 4), kinds="glore", keep=("projection",))
    rec = records["1"]
    assert rec.projection is not None and rec.input is None and rec.nodes is None


def test_record_blocks_restores_training_mode():
    model = tiny_model().train()
    record_blocks(model, torch.randn(2, 1, 4, 4))
    assert model.training and model[2].training


def test_missing_block_type_names_the_types_present():
    model = nn.Sequential(nn.Conv2d(1, 4, 1), GlobalContext(4, ratio=0.5), GlobalContext(4, ratio=0.5))
    assert describe_blocks(model) == "gc x2"
    with pytest.raises(ValueError, match=r"no glore block.*gc x2"):
        find_blocks(model, "glore")
    with pytest.raises(ValueError, match=r"types it has: none"):
        find_blocks(nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match=r"among .*'glore'.*got \['xx'\]"):
        find_blocks(model, ["xx"])
    with pytest.raises(ValueError, match=r"keep must be among"):
        BlockRecorder(model, keep=("weights",))


@pytest.mark.parametrize("pairwise", ["embedded_gaussian", "gaussian", "dot_product", "concat"])
def test_captured_attention_reproduces_the_nl_output(pairwise):
    nl = randomize(NonLocal(6, pairwise=pairwise)).eval()
    x = torch.randn(2, 6, 3, 4)
    rec = record_blocks(nl, x)["<model>"]
    assert rec.attention.shape == (2, 12, 12)
    with torch.no_grad():
        y = nl.value(x.flatten(2)) @ rec.attention.transpose(1, 2)
        rebuilt = x + nl.norm(nl.out(y).unsqueeze(2)).view(x.shape)     # BatchNorm2d on (B, C, 1, L)
    torch.testing.assert_close(rec.output, rebuilt)


def test_captured_projection_and_nodes_reproduce_the_glore_output():
    unit = randomize(GloRe(8, mid=3, gcn_layers=2)).eval()
    x = torch.randn(2, 8, 2, 3, 4)                       # 3D input
    rec = record_blocks(unit, x)["<model>"]
    with torch.no_grad():
        y = unit.gcn(rec.nodes) @ rec.projection
        rebuilt = x + unit.norm(unit.extend(y).unsqueeze(2)).view(x.shape)     # BatchNorm2d
    torch.testing.assert_close(rec.output, rebuilt)
