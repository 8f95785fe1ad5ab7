"""GCNet Table 3 (fine-grained NL statistics) and Figures 6-7 (class means, class selectivity), on small
models: the statistics against hand computations, the CLI end to end."""

from __future__ import annotations

import functools
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from glore.analysis.cosine import average_cosine_distance
from glore.analysis.fine_grained import nonlocal_statistics, nonlocal_statistics_table
from glore.analysis.selectivity import class_means, class_selectivity_index, stage_blocks, transform_modules
from glore.cli import analyze as analyze_commands
from glore.cli import main
from glore.errors import GloreError
from glore.nn import NonLocal

from test_analysis_figures import png_size
from test_analysis_hooks import tiny_model
from test_nn_reference import randomize_


def _by_hand(block: NonLocal, x: torch.Tensor) -> dict:
    """Table 3's six distances of one image ``x`` (C, H, W), from the block's weights."""
    w = lambda conv: conv.weight[:, :, 0]                                    # noqa: E731
    flat = x.flatten(1)                                                      # (C, L)
    out = {"input": average_cosine_distance(flat.T)}
    if block.attention.pairwise == "gaussian":
        context = F.max_pool2d(x[None], 2, ceil_mode=True)[0].flatten(1) if block.sub_sample else flat
        scores = flat.T @ context
        att = torch.softmax(scores, dim=-1)
    else:
        q = w(block.attention.query) @ flat + block.attention.query.bias[:, None]
        k = w(block.attention.key) @ flat + block.attention.key.bias[:, None]
        scores = q.T @ k
        att = torch.softmax(scores, dim=-1)
        out.update(query=average_cosine_distance(q.T), key=average_cosine_distance(k.T))
    z = block(x[None])[0]
    out.update(prod=average_cosine_distance(scores), att=average_cosine_distance(att),
               output=average_cosine_distance((z - x).flatten(1).T))
    return out


@pytest.mark.parametrize("pairwise, sub_sample", [("embedded_gaussian", False), ("gaussian", False),
                                                  ("gaussian", True)])
def test_nonlocal_statistics_are_the_distances_of_each_step(pairwise, sub_sample):
    torch.manual_seed(0)
    block = randomize_(NonLocal(6, pairwise=pairwise, sub_sample=sub_sample)).eval()
    model = nn.Sequential(nn.Identity(), block).eval()
    x = torch.randn(3, 6, 4, 5)
    stats = nonlocal_statistics(model, [(x[:2], torch.zeros(2)), (x[2:], torch.zeros(1))])["1"]
    assert stats["images"] == 3 and stats["pairwise"] == pairwise and stats["stage"] is None
    with torch.no_grad():
        hand = [_by_hand(block, image) for image in x]
    for step in ("input", "prod", "att", "output", "key", "query"):
        if pairwise == "gaussian" and step in ("key", "query"):
            assert stats[step] is None
        else:
            assert stats[step] == pytest.approx(sum(h[step] for h in hand) / 3, rel=1e-6), step
    table = nonlocal_statistics_table({"layer3.5.after_add": stats})
    assert table.splitlines()[0].split() == ["block", "stage", "pairwise", "images", "input", "key",
                                             "query", "prod", "att", "output"]


def test_query_independent_attention_gives_zero_prod_and_att_distances():
    # W_q = 0 with a positive bias: every query row of the scores is the same vector
    block = randomize_(NonLocal(4)).eval()
    with torch.no_grad():
        block.attention.query.weight.zero_()
        block.attention.query.bias.fill_(1.0)
    stats = nonlocal_statistics(nn.Sequential(block).eval(), [torch.randn(2, 4, 3, 3)])["0"]
    assert stats["query"] == pytest.approx(0.0, abs=1e-9)
    assert stats["prod"] == pytest.approx(0.0, abs=1e-9) and stats["att"] == pytest.approx(0.0, abs=1e-9)
    assert stats["input"] > 0.05


def test_class_selectivity_index_by_hand():
    means = torch.tensor([[1.0, 2.0, 0.0, 3.0],
                          [0.0, 2.0, 0.0, 1.0],
                          [0.0, 2.0, 0.0, 1.0]])
    # one class only: 1; all alike: 0; never active: 0; (3 - 1) / (3 + 1) = 0.5
    torch.testing.assert_close(class_selectivity_index(means), torch.tensor([1.0, 0.0, 0.0, 0.5],
                                                                            dtype=torch.float64))
    with pytest.raises(GloreError, match=r"K >= 2 classes"):
        class_selectivity_index(torch.ones(1, 3))


def test_class_means_average_spatially_then_over_each_class():
    model = nn.Sequential(nn.Identity(), nn.ReLU())
    x = torch.rand(5, 3, 2, 2)
    labels = torch.tensor([0, 1, 0, 2, 2])
    # the second batch brings a new class: the table grows
    out = class_means(model, {"relu": model[1]}, [(x[:2], labels[:2]), (x[2:], labels[2:])])["relu"]
    per_image = x.mean(dim=(2, 3)).double()
    expected = torch.stack([per_image[[0, 2]].mean(0), per_image[1], per_image[[3, 4]].mean(0)])
    torch.testing.assert_close(out["means"], expected)
    assert out["images"].tolist() == [2.0, 1.0, 2.0]
    limited = class_means(model, {"relu": model[1]}, [(x, labels)], max_images=2)["relu"]
    assert limited["images"].tolist() == [1.0, 1.0]


@functools.lru_cache(maxsize=None)
def _resnet(block=None):
    """A small randomised ResNet-18 of 3 classes, with GC in res3-res5 or none (built once: the tests
    only run it)."""
    from glore.models import create_model

    torch.manual_seed(0)
    kwargs = dict(block="gc", units="all", block_kwargs={"ratio": 1 / 4, "zero_init": False}) if block else {}
    return randomize_(create_model("resnet18", num_classes=3, **kwargs)).eval()


def test_stage_blocks_and_transforms_of_a_resnet():
    model = _resnet("gc")
    blocks = stage_blocks(model, "res4")
    assert list(blocks) == ["c4.0", "c4.1"] and blocks["c4.1"] is model.layer3[1]
    transforms = transform_modules(model)
    assert "layer3.1.after_1x1" in transforms and len(transforms) == 6
    with pytest.raises(GloreError, match="no GC or SE block"):
        transform_modules(_resnet())


@pytest.fixture
def labelled(monkeypatch):
    """Checkpoints replaced by small ResNet-18s; a loader of 12 labelled 32x32 images of 3 classes."""
    models = {"gc.ckpt": _resnet("gc"), "base.ckpt": _resnet()}
    x = torch.randn(12, 3, 32, 32)
    loader = [(x[:8], torch.arange(8) % 3), (x[8:], torch.arange(4) % 3)]

    def load(args):
        return models[str(args.checkpoint)], loader

    import glore.engine.runner as runner

    monkeypatch.setattr(analyze_commands, "load_model_and_loader", load)
    monkeypatch.setattr(runner, "load_model", lambda path: (models[path], {}))
    return models, loader


def test_cli_class_selectivity_against_a_baseline(labelled, tmp_path, capsys):
    models, loader = labelled
    out = tmp_path / "csi"
    assert main(["analyze", "class-selectivity", "--checkpoint", "gc.ckpt", "--baseline", "base.ckpt",
                 "--label", "gc", "--output-dir", str(out), "--bins", "10", "--cell", "100"]) == 0
    assert png_size(out / "class_selectivity.png") == (200, 80)          # one panel per c4 block
    summary = json.loads((out / "class_selectivity.json").read_text())
    assert list(summary["layers"]) == ["c4.0", "c4.1"]
    layer = summary["layers"]["c4.1"]
    assert list(layer) == ["baseline", "gc"] and layer["gc"]["units"] == 256
    assert sum(layer["gc"]["histogram"]) == 256
    # the figure's numbers are the index of the block outputs' class means
    means = class_means(models["gc.ckpt"], {"c4.1": models["gc.ckpt"].layer3[1]}, loader)["c4.1"]["means"]
    assert layer["gc"]["mean"] == pytest.approx(float(class_selectivity_index(means).mean()))
    assert "c4.1: baseline mean" in capsys.readouterr().out


def test_cli_channel_activations_and_nl_statistics(labelled, monkeypatch, tmp_path, capsys):
    out = tmp_path / "act"
    assert main(["analyze", "channel-activations", "--checkpoint", "gc.ckpt", "--output-dir", str(out),
                 "--classes", "0,2", "--block", "layer3.1.after_1x1", "--cell", "100"]) == 0
    summary = json.loads((out / "channel_activations.json").read_text())
    assert summary["classes"] == [0, 2] and summary["images_per_class"] == [5, 4, 3]
    assert len(summary["blocks"]["layer3.1.after_1x1"]) == 2 and len(summary["blocks"]["layer3.1.after_1x1"][0]) == 256
    assert png_size(out / "channel_activations.png") == (100, 80)
    assert main(["analyze", "channel-activations", "--checkpoint", "gc.ckpt", "--output-dir", str(out),
                 "--classes", "5"]) == 2
    assert "classes must be in [0, 2], got [5]" in capsys.readouterr().err

    x = torch.randn(3, 1, 12, 16)
    monkeypatch.setattr(analyze_commands, "load_model_and_loader",
                        lambda args: (tiny_model(), [(x, torch.zeros(3))]))
    assert main(["analyze", "nl-statistics", "--checkpoint", "x", "--output-dir", str(out)]) == 0
    stats = json.loads((out / "nl_statistics.json").read_text())["blocks"]["2"]
    assert stats["images"] == 3 and all(0 <= stats[s] <= 1 for s in ("input", "key", "query", "prod", "att"))
    assert "prod" in capsys.readouterr().out
