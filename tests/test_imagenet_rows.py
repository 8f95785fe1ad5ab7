"""The ImageNet and CUB-200 paper rows beyond their counts (tests/test_paper_configs.py compares those):
GCNet's recipe and its augmentations, GloRe Table 1's graph-conv layers, Figure 7's and the CUB-200
reproduction's units."""

from __future__ import annotations

import os

import pytest
import torch
from PIL import Image

from glore import zoo
from glore.data.imagefolder import IMAGENET_EIGENVALUES, IMAGENET_EIGENVECTORS, PCALighting, build_transform
from glore.engine.classification import ClassificationData
from glore.engine.config import load_config
from glore.errors import GloreError
from glore.models import inserted_blocks

IMAGENET = zoo.CONFIG_ROOT / "classification" / "imagenet"
GCNET_ROWS = sorted(IMAGENET.glob("gcnet_*.yaml"))


def test_every_gcnet_imagenet_row_is_the_original_resnet50_with_the_recipe():
    assert len(GCNET_ROWS) == 14            # Table 8a: 5 rows, 8b: 5, 9: 4
    for path in GCNET_ROWS:
        cfg = load_config(path)
        assert cfg["model"]["name"] == "resnet50" and cfg["model"]["stride_in_1x1"] is True
        data, optim = cfg["data"], cfg["optim"]
        assert (data["rotation"], data["color_jitter"], data["lighting"]) == (10, 0.4, 0.1)
        assert data["scale"] == [0.08, 1.0] and data["ratio"] == pytest.approx([3 / 4, 4 / 3], abs=1e-4)
        assert (optim["schedule"], optim["lr"], cfg["trainer"]["max_epochs"]) == ("cosine", 0.1, 120)
        assert data["batch_size"] * cfg["trainer"]["devices"] == 256


def _image_folder(root):
    for split in ("train", "val"):
        for name in ("a", "b"):
            os.makedirs(root / split / name)
            Image.new("RGB", (48, 40), (200, 90, 30)).save(root / split / name / "0.png")


def test_the_recipe_data_section_builds_the_papers_augmentations(tmp_path):
    _image_folder(tmp_path)
    cfg = load_config(IMAGENET / "gcnet_t9_gcnet.yaml",
                      [f"data.root={tmp_path}", "data.image_size=32", "data.num_workers=0"])
    train = ClassificationData(cfg["data"]).train_dataset()
    steps = {type(t).__name__: t for t in train.transform.transforms}
    assert list(steps) == ["RandomRotation", "RandomResizedCrop", "RandomHorizontalFlip", "ColorJitter",
                           "ToImage", "ToDtype", "PCALighting", "Normalize"]
    assert list(steps["RandomRotation"].degrees) == [-10.0, 10.0]
    assert steps["RandomResizedCrop"].scale == (0.08, 1.0)
    jitter = steps["ColorJitter"]
    assert jitter.brightness == jitter.contrast == jitter.saturation == (0.6, 1.4) and jitter.hue is None
    assert steps["PCALighting"].std == 0.1
    assert train[0][0].shape == (3, 32, 32)
    val = ClassificationData(cfg["data"]).val_dataset()
    assert [type(t).__name__ for t in val.transform.transforms][:2] == ["Resize", "CenterCrop"]


def test_pca_lighting_adds_one_rgb_offset_along_the_eigenvectors():
    image = torch.rand(3, 5, 4)
    torch.manual_seed(3)
    out = PCALighting(0.1)(image)
    torch.manual_seed(3)
    alpha = torch.randn(3) * 0.1
    offset = torch.tensor(IMAGENET_EIGENVECTORS) @ (alpha * torch.tensor(IMAGENET_EIGENVALUES))
    torch.testing.assert_close(out - image, offset[:, None, None].expand(3, 5, 4))
    assert torch.equal(PCALighting(0.0)(image), image)
    with pytest.raises(GloreError, match="lighting must be a non-negative number"):
        PCALighting(-0.1)


def test_recipe_keys_are_checked():
    with pytest.raises(GloreError, match=r"color_jitter must be one number or \[brightness, contrast, saturation\]"):
        build_transform(train=True, color_jitter=[0.4, 0.4])


def _network(path, overrides=()):
    cfg = load_config(path, list(overrides))
    with torch.device("meta"):
        return zoo.build_network(cfg)


def test_glore_table1_rows_stack_graph_convolutions():
    params = {}
    for layers in (1, 2, 3):
        name = "glore_t1_1_layer.yaml" if layers == 1 else f"glore_t1_{layers}_layers.yaml"
        model = _network(IMAGENET / name)
        (where, unit), = inserted_blocks(model).items()
        assert where == "layer3.0.after_add" and len(unit.gcn) == layers
        params[layers] = sum(p.numel() for p in model.parameters())
    # each layer: the N x N node conv with its bias and the C_s x C_s state conv (N = 256, C_s = 512)
    assert params[2] - params[1] == params[3] - params[2] == 256 * 256 + 256 + 512 * 512
    assert not inserted_blocks(_network(IMAGENET / "glore_t1_plain.yaml"))


def test_glore_figure7_and_cub200_units():
    (where, unit), = inserted_blocks(_network(IMAGENET / "glore_fig7_resnet18.yaml")).items()
    assert where == "layer3.0.after_add"                     # the middle of Res4 (2 blocks)
    assert (unit.channels, unit.num_nodes, unit.num_state) == (256, 128, 256)
    cub = zoo.CONFIG_ROOT / "classification" / "cub200_resnet18_glore.yaml"
    (where, unit), = inserted_blocks(_network(cub)).items()
    assert where == "layer3.1.after_add"                     # after Res4
    assert (unit.channels, unit.num_nodes, unit.num_state) == (256, 16, 256)   # "256 -> 256"
    cfg = load_config(cub)
    assert (cfg["data"]["batch_size"], cfg["optim"]["lr"], cfg["optim"]["momentum"],
            cfg["optim"]["weight_decay"], cfg["trainer"]["max_epochs"]) == (32, 0.04, 0.9, 5e-4, 10)


@pytest.mark.parametrize("key, value, message", [
    ("ratio", [1.5, 0.5], r"data.ratio must be \[min, max\] aspect ratios"),
    ("rotation", -10, r"data.rotation must be a non-negative number, got -10"),
    ("lighting", "strong", r"data.lighting must be a non-negative number, got 'strong'"),
    ("color_jitter", 1.4, r"data.color_jitter must be a number in \[0, 1\)"),
])
def test_bad_recipe_values_are_one_line_errors(tmp_path, key, value, message):
    _image_folder(tmp_path)
    cfg = load_config(IMAGENET / "gcnet_t9_gcnet.yaml", [f"data.root={tmp_path}", f"data.{key}={value}"])
    with pytest.raises(GloreError, match=message):
        ClassificationData(cfg["data"]).train_dataset()
