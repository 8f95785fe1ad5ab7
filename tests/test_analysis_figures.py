import json
import struct

import pytest
import torch
from matplotlib.image import imread
from torch import nn

from glore.cli import analyze as analyze_commands
from glore.analysis.figures import (graph_figure_size, grid_size, save_graph_figure,
                                    save_map_grid)
from glore.cli import main
from glore.nn import GlobalContext

from test_analysis_hooks import tiny_model


def png_size(path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature; decodes the file too."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    return width, height


def test_map_grid_size(tmp_path):
    images, maps = torch.randn(3, 1, 20, 30), torch.rand(3, 2, 20, 30)
    path = save_map_grid(tmp_path / "g.png", images, maps, labels=["a", "b"],
                         markers=[(3.0, 4.0), None], cell=60)
    assert png_size(path) == grid_size(3, 3, (20, 30), 60) == (180, 120)
    with pytest.raises(ValueError, match=r"expected 2 labels.*got 1"):
        save_map_grid(tmp_path / "x.png", images, maps, labels=["a"])
    with pytest.raises(ValueError, match=r"same B, H, W.*\(3, 2, 10, 30\)"):
        save_map_grid(tmp_path / "x.png", images, maps[:, :, :10], labels=["a", "b"])


def test_graph_figure_size(tmp_path):
    path = save_graph_figure(tmp_path / "g.png", torch.randn(2, 5, 5), torch.rand(4, 5), cell=100)
    assert png_size(path) == graph_figure_size(2, 100) == (300, 100)
    with pytest.raises(ValueError, match=r"norms of shape \(B, 5\).*\(4, 6\)"):
        save_graph_figure(tmp_path / "x.png", torch.randn(1, 5, 5), torch.rand(4, 6))


@pytest.fixture
def fake_checkpoint(monkeypatch):
    """Replace checkpoint loading by a tiny model and a loader of (image, label) batches."""
    state = {"model": tiny_model(), "shape": (1, 12, 16)}

    def load(args):
        x = torch.randn(6, *state["shape"])
        return state["model"], [(x[:4], torch.zeros(4)), (x[4:], torch.zeros(2))]

    monkeypatch.setattr(analyze_commands, "load_model_and_loader", load)
    return state


def test_cli_projections_and_attention(fake_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", "projections", "--checkpoint", "x.ckpt", "--output-dir", str(out),
                 "--num-images", "5", "--nodes", "3", "--cell", "48"]) == 0
    assert png_size(out / "projections_1.png") == grid_size(5, 4, (12, 16), 48)
    summary = json.loads((out / "projections.json").read_text())
    assert len(summary["units"]["1"]["nodes"]) == 3 and summary["images"] == 5
    assert main(["analyze", "attention", "--checkpoint", "x.ckpt", "--output-dir", str(out),
                 "--num-images", "2", "--queries", "0.1,0.1;0.5,0.5;0.9,0.2", "--cell", "48"]) == 0
    assert png_size(out / "attention_2.png") == grid_size(2, 4, (12, 16), 48)    # NL: 3 queries
    assert png_size(out / "attention_3.png") == grid_size(2, 2, (12, 16), 48)    # SNL: one map
    assert json.loads((out / "attention.json").read_text())["blocks"]["2"]["queries"][1] == [6, 8]


def test_cli_3d(fake_checkpoint, tmp_path):
    fake_checkpoint.update(model=tiny_model(3), shape=(1, 3, 8, 8))
    out = tmp_path / "out3"
    assert main(["analyze", "projections", "--checkpoint", "x", "--output-dir", str(out),
                 "--num-images", "2", "--nodes", "2", "--cell", "32"]) == 0
    assert png_size(out / "projections_1.png") == grid_size(2, 3, (8, 8), 32)
    assert main(["analyze", "attention", "--checkpoint", "x", "--output-dir", str(out),
                 "--num-images", "1", "--cell", "32", "--frame", "0"]) == 0
    assert png_size(out / "attention_2.png") == grid_size(1, 5, (8, 8), 32)


def test_cli_query_independence_and_graph(fake_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", "query-independence", "--checkpoint", "x", "--output-dir", str(out),
                 "--kinds", "nl", "snl"]) == 0
    printed = capsys.readouterr().out
    stats = json.loads((out / "query_independence.json").read_text())["blocks"]
    assert set(stats) == {"2", "3"} and stats["2"]["images"] == 6
    assert f"{stats['2']['input']:.3f}" in printed
    assert main(["analyze", "graph", "--checkpoint", "x", "--output-dir", str(out), "--cell", "100"]) == 0
    assert png_size(out / "graph_1.png") == graph_figure_size(2, 100)
    assert len(json.loads((out / "graph.json").read_text())["units"]["1"]["node_norm_mean"]) == 4


@pytest.mark.parametrize("analysis", ["projections", "attention", "query-independence", "graph"])
def test_cli_missing_block_type_is_a_clear_error(fake_checkpoint, tmp_path, capsys, analysis):
    fake_checkpoint["model"] = nn.Sequential(nn.Conv2d(1, 4, 1), GlobalContext(4, ratio=0.5, pooling="avg"))
    assert main(["analyze", analysis, "--checkpoint", "x", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "types it has: gc x1" in err
    assert not list(tmp_path.glob("*.png"))


