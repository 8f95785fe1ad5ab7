import pytest
import torch
from torch import nn

from glore.analysis.attention import attention_maps, default_queries, query_positions
from glore.analysis.cosine import average_cosine_distance
from glore.analysis.graph import graph_adjacency, node_feature_norms
from glore.analysis.projections import projection_maps, select_nodes
from glore.analysis.query_independence import (block_statistics, query_independence_statistics,
                                               query_independence_table)
from glore.nn import GlobalContext, GloRe, NonLocal, SimplifiedNonLocal

from test_analysis_hooks import tiny_model


def test_projection_maps_first_and_variance():
    model = tiny_model()
    unit = model[1]
    with torch.no_grad():          # node 2 constant over space, node 0 the most varying
        unit.project.weight[2].zero_()
        unit.project.weight[0].mul_(10)
    x = torch.randn(3, 1, 6, 5)
    first = projection_maps(model, x, k=2, select="first")["1"]
    assert first["nodes"].tolist() == [0, 1]
    assert first["maps"].shape == (3, 2, 6, 5)
    var = projection_maps(model, x, k=4, select="variance")["1"]
    assert var["nodes"][0].item() == 0 and var["nodes"][-1].item() == 2
    assert var["variance"][2].item() == pytest.approx(0.0, abs=1e-10)
    # the maps are the projection rows of the chosen nodes
    with torch.no_grad():
        h = model[0](x).flatten(2)
        proj = (unit.project.weight[:, :, 0] @ h + unit.project.bias[:, None]).view(3, 4, 6, 5)
    torch.testing.assert_close(var["maps"], proj[:, var["nodes"]])
    resized = projection_maps(model, x, k=1, size=(12, 10))["1"]["maps"]
    assert resized.shape == (3, 1, 12, 10)


def test_projection_maps_3d_and_errors():
    out = projection_maps(tiny_model(3), torch.randn(1, 1, 2, 4, 4), k=3, size=(4, 8, 8))["1"]
    assert out["maps"].shape == (1, 3, 4, 8, 8)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 4\].*got 5"):
        select_nodes(torch.zeros(1, 4, 2, 2), k=5)
    with pytest.raises(ValueError, match=r"select must be one of.*'random'"):
        projection_maps(tiny_model(), torch.randn(1, 1, 4, 4), select="random")
    with pytest.raises(ValueError, match=r"no glore block.*nl x1"):
        projection_maps(nn.Sequential(NonLocal(1)), torch.randn(1, 1, 4, 4))


def test_query_positions():
    pos = query_positions(torch.tensor([[0.0, 0.0], [0.5, 0.99], [1.0, 1.0]]), (4, 6))
    assert pos.tolist() == [[0, 0], [2, 5], [3, 5]]
    assert default_queries(3).shape == (4, 3)
    with pytest.raises(ValueError, match=r"shape \(Q, 2\).*got \(1, 3\)"):
        query_positions(torch.zeros(1, 3), (4, 4))
    with pytest.raises(ValueError, match=r"fractions in \[0, 1\]"):
        query_positions(torch.tensor([[1.5, 0.0]]), (4, 4))


@pytest.mark.parametrize("dim,shape", [(2, (2, 1, 4, 6)), (3, (2, 1, 2, 4, 6))])
def test_attention_maps_are_the_query_rows(dim, shape):
    model = tiny_model(dim)
    x = torch.randn(*shape)
    queries = [[0.0] * (dim - 2) + [0.0, 0.0], [0.5] * (dim - 2) + [0.6, 0.9]]
    maps = attention_maps(model, x, queries=queries)
    assert set(maps) == {"2", "3", "4"}                    # SE has no attention
    nl = maps["2"]
    with torch.no_grad():
        h1 = model[1](model[0](x)).flatten(2)
        att = model[2].attention(h1).view(2, -1, *shape[2:])
    first, second = nl["positions"].tolist()
    assert first == [0] * dim
    torch.testing.assert_close(nl["maps"][:, 0], att[:, 0].reshape(2, *shape[2:]))
    flat = 0
    for c, s in zip(second, shape[2:]):
        flat = flat * s + c
    torch.testing.assert_close(nl["maps"][:, 1], att[:, flat].reshape(2, *shape[2:]))
    assert maps["3"]["query_independent"] and maps["3"]["maps"].shape == (2, 1, *shape[2:])
    assert maps["3"]["maps"].flatten(2).sum(-1).allclose(torch.ones(2, 1))


def test_attention_error_names_the_blocks():
    model = nn.Sequential(GloRe(4, mid=2), GlobalContext(4, ratio=0.5, pooling="avg"))
    with pytest.raises(ValueError, match=r"no block with attention maps.*glore x1, gc x1"):
        attention_maps(model, torch.randn(1, 4, 3, 3))


def test_graph_adjacency_and_node_norms():
    model = tiny_model()
    adj = graph_adjacency(model)["1"]
    assert adj.shape == (2, 4, 4)
    torch.testing.assert_close(adj[1], model[1].gcn[1].node.weight[:, :, 0].detach())
    x = torch.randn(3, 1, 5, 5)
    norms = node_feature_norms(model, x)["1"]
    with torch.no_grad():
        v, _ = model[1].project_to_nodes(model[0](x))
    torch.testing.assert_close(norms, v.norm(dim=1))
    with pytest.raises(ValueError, match=r"no glore block.*snl x1"):
        graph_adjacency(nn.Sequential(SimplifiedNonLocal(3)))


def test_block_statistics_direct():
    x = torch.randn(4, 3, 5)
    z = x + torch.randn(4, 3, 5)
    att = torch.softmax(torch.randn(15, 15), dim=-1)
    s = block_statistics(x, z, att)
    assert s["input"] == pytest.approx(average_cosine_distance(x.reshape(4, 15).T))
    assert s["output"] == pytest.approx(average_cosine_distance((z - x).reshape(4, 15).T))
    assert s["att"] == pytest.approx(average_cosine_distance(att))
    # a query-independent map (one row, shared) has distance 0; constant outputs too
    s = block_statistics(x, x + torch.ones(4, 1, 1), torch.softmax(torch.randn(1, 15), -1))
    assert s["att"] == pytest.approx(0.0, abs=1e-12) and s["output"] == pytest.approx(0.0, abs=1e-12)


def test_query_independence_averages_over_images():
    model = tiny_model()
    images = torch.randn(5, 1, 4, 4)
    batches = [(images[:2], torch.zeros(2)), (images[2:], torch.zeros(3))]
    stats = query_independence_statistics(model, batches, kinds=("nl", "snl", "gc", "se"), max_images=4)
    assert set(stats) == {"2", "3", "4", "5"} and stats["2"]["images"] == 4
    with torch.no_grad():
        h1 = model[1](model[0](images[:4]))
        h2 = model[2](h1)
        att = model[2].attention(h1.flatten(2))
    per_image = [block_statistics(h1[b], h2[b], att[b]) for b in range(4)]
    for key in ("input", "output", "att"):
        assert stats["2"][key] == pytest.approx(sum(p[key] for p in per_image) / 4)
    assert stats["3"]["att"] == pytest.approx(0.0, abs=1e-12)
    assert stats["5"]["att"] is None
    table = query_independence_table(stats)
    assert table.splitlines()[0].split() == ["block", "type", "images", "input", "output", "att"]
    assert f"{stats['2']['input']:.3f}" in table.splitlines()[2]
    with pytest.raises(ValueError, match=r"no nl block.*glore x1"):
        query_independence_statistics(nn.Sequential(GloRe(4, mid=2)), [torch.randn(1, 4, 3, 3)])


@pytest.mark.parametrize("shape,keys", [((1, 4, 5, 7), (3, 4)), ((1, 4, 2, 5, 6), (2, 3, 3))])
def test_attention_maps_of_a_sub_sampled_nl(shape, keys):
    nl = NonLocal(4, sub_sample=True).eval()
    x = torch.randn(*shape)
    res = attention_maps(nl, x, queries=[[0.0] * (len(shape) - 2)])["<model>"]
    assert res["shape"] == shape[2:] and res["key_shape"] == keys
    assert res["maps"].shape == (1, 1, *keys)
    with torch.no_grad():
        pooled = (torch.nn.functional.max_pool2d(x, 2, ceil_mode=True) if len(shape) == 4
                  else torch.nn.functional.max_pool3d(x, (1, 2, 2), ceil_mode=True))
        att = nl.attention(x.flatten(2), pooled.flatten(2))
    torch.testing.assert_close(res["maps"].flatten(2), att[:, :1])
    assert attention_maps(nl, x, size=(8,) * (len(shape) - 2))["<model>"]["maps"].shape[2:] == \
        (8,) * (len(shape) - 2)
    stats = query_independence_statistics(nl, [x])["<model>"]
    assert 0.0 <= stats["att"] <= 1.0
