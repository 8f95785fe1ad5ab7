"""A miniature Cityscapes tree (the real folder and file names): loading, one training step,
evaluation with sliding windows, colourised and benchmark predictions, and bad inputs."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from glore.data.cityscapes import CityscapesSegmentation, colorize

H, W = 48, 96
CITIES = {"train": ["aachen", "bochum"], "val": ["frankfurt"]}


def _write_sample(root, split, city, k, rng):
    stem = f"{city}_{k:06d}_000019"
    img_dir = root / "leftImg8bit" / split / city
    gt_dir = root / "gtFine" / split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    label = np.full((H, W), 7, dtype=np.uint8)                 # road
    label[: H // 3] = 23                                       # sky
    label[H // 3: H // 2, : W // 2] = 11                       # building
    label[-4:, :] = 1                                          # ego vehicle (ignored)
    inst = label.astype(np.int32)
    y, x = int(rng.integers(H // 2, H - 14)), int(rng.integers(0, W - 20))
    label[y:y + 10, x:x + 16] = 26                             # one car instance
    inst[y:y + 10, x:x + 16] = 26000
    label[y:y + 8, x + 17:x + 20] = 24                         # one person instance
    inst[y:y + 8, x + 17:x + 20] = 24000
    image = np.stack([label * 7 % 255, label * 13 % 255, label * 29 % 255], -1).astype(np.uint8)
    image = np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(img_dir / f"{stem}_leftImg8bit.png")
    Image.fromarray(label).save(gt_dir / f"{stem}_gtFine_labelIds.png")
    Image.fromarray(inst.astype(np.uint16)).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
    return gt_dir / f"{stem}_gtFine_labelIds.png"


def write_cityscapes(root, cities: dict):
    """Two samples per city of ``cities`` (split -> city names) under ``root``; returns ``root``."""
    rng = np.random.default_rng(0)
    for split, names in cities.items():
        for city in names:
            for k in range(2):
                _write_sample(root, split, city, k, rng)
    return root


@pytest.fixture()
def mini_cityscapes(tmp_path):
    return write_cityscapes(tmp_path / "cityscapes", CITIES)


def test_loads_train_ids_and_instances(mini_cityscapes):
    from cityscapesscripts.helpers.labels import id2label

    ds = CityscapesSegmentation(mini_cityscapes, "val", return_instances=True)
    assert len(ds) == 2 and ds.sample_name(0).startswith("frankfurt_")
    image, target, inst = ds[0]
    assert image.shape == (3, H, W) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    label = np.asarray(Image.open(ds.targets[0][0]))
    expected = np.vectorize(lambda i: id2label[int(i)].trainId)(label)
    expected[expected < 0] = 255
    assert torch.equal(target, torch.from_numpy(expected.astype(np.int64)))
    assert set(torch.unique(inst[inst > 1000]).tolist()) == {24000, 26000}
    assert len(CityscapesSegmentation(mini_cityscapes, "train")) == 4


def test_trains_one_step_and_evaluates(mini_cityscapes, tmp_path):
    from glore.engine.config import load_config
    from glore.engine.runner import evaluate, train

    import timm

    out = tmp_path / "run"
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "imagenet_resnet18.pth")
    cfg = load_config(os.path.join(os.path.dirname(__file__), "..", "configs", "segmentation",
                                   "cityscapes_resnet50_glore.yaml"), [
        f"output_dir={out}", f"data.root={mini_cityscapes}", "model.backbone=resnet18", "model.channels=16",
        f"model.pretrained={tmp_path / 'imagenet_resnet18.pth'}",     # the config's ImageNet weights
        "model.aux_channels=8", "data.batch_size=2", "data.num_workers=0", "data.crop_size=40",
        "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "trainer.accelerator=cpu",
        "trainer.devices=1", "trainer.strategy=auto", "trainer.sync_batchnorm=false", "trainer.precision=32-true",
        "trainer.enable_progress_bar=false", "trainer.num_sanity_val_steps=0", "trainer.check_val_every_n_epoch=1",
    ])
    metrics = train(cfg)
    assert 0.0 <= metrics["val/miou"] <= 1.0
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    pred_dir = tmp_path / "pred"
    result = evaluate(str(ckpt), sliding_window=True, crop_size=32, stride=24, flip=True,
                      save_coloured=1, coloured_dir=str(pred_dir), device="cpu")
    for key in ("val/miou", "val/iiou_class", "val/iou_category", "val/iiou_category", "val/iou/road"):
        assert key in result
    assert result["val/images"] == 2
    pngs = sorted(os.listdir(pred_dir))
    assert len(pngs) == 1 and pngs[0].startswith("frankfurt_") and pngs[0].endswith("_pred.png")
    with Image.open(pred_dir / pngs[0]) as png:
        assert png.size == (W, H) and png.mode == "RGB"
    # the command line passes save_predictions=DIR through: benchmark PNGs named after the inputs
    from glore.cli import main

    results = tmp_path / "results"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--opt", f"save_predictions={results}",
                 "--opt", "device=cpu"]) == 0
    assert sorted(os.listdir(results / "frankfurt")) == [f"frankfurt_{k:06d}_000019_leftImg8bit.png" for k in range(2)]
    shortcut = tmp_path / "shortcut"          # --save-predictions DIR is --opt save_predictions=DIR
    assert main(["evaluate", "--checkpoint", str(ckpt), "--save-predictions", str(shortcut),
                 "--opt", "device=cpu"]) == 0
    for name in os.listdir(results / "frankfurt"):
        assert (shortcut / "frankfurt" / name).read_bytes() == (results / "frankfurt" / name).read_bytes()


def test_colorize_uses_the_benchmark_colours():
    from cityscapesscripts.helpers.labels import trainId2label

    rgb = np.asarray(colorize(torch.tensor([[0, 13, 255]])))
    assert tuple(rgb[0, 0]) == trainId2label[0].color and tuple(rgb[0, 1]) == trainId2label[13].color


def test_label_ids_outside_the_table(mini_cityscapes):
    ds = CityscapesSegmentation(mini_cityscapes, "val")
    path = ds.targets[1][0]
    label = np.asarray(Image.open(path)).copy()
    label[0, 0] = 40
    Image.fromarray(label).save(path)
    assert os.path.basename(path) == "frankfurt_000001_000019_gtFine_labelIds.png"    # sorted order
    with pytest.raises(ValueError, match=r"(?s)frankfurt_000001_000019_gtFine_labelIds\.png.*\[40\].*outside"):
        ds[1]


def test_corrupt_image_and_16_bit_image(mini_cityscapes):
    from glore.data.imagefolder import ImageReadError

    ds = CityscapesSegmentation(mini_cityscapes, "val")
    path = ds.images[0]
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG not really")
    with pytest.raises(ImageReadError, match=rf"cannot read image file '{path}'"):
        ds[0]
    ramp = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 65535 // (H * W - 1)).astype(np.uint16)
    Image.fromarray(ramp).save(ds.images[1])                      # a 16-bit grey image (mode I;16)
    image = ds[1][0]
    assert float(image.max()) == 1.0 and 0.4 < float(image.mean()) < 0.6   # scaled, not clipped at 255


def test_image_and_label_of_different_sizes(mini_cityscapes):
    ds = CityscapesSegmentation(mini_cityscapes, "val")
    Image.fromarray(np.full((H, W + 2), 7, dtype=np.uint8)).save(ds.targets[0][0])
    with pytest.raises(ValueError, match=rf"(?s)gtFine_labelIds\.png.*{W + 2}x{H}.*differs.*{W}x{H}"):
        ds[0]


def test_missing_split_and_missing_annotation(mini_cityscapes):
    with pytest.raises(FileNotFoundError, match=r"(?s)split 'test'.*leftImg8bit.test"):
        CityscapesSegmentation(mini_cityscapes, "test")
    with pytest.raises(ValueError, match="split must be one of"):
        CityscapesSegmentation(mini_cityscapes, "training")
    ds = CityscapesSegmentation(mini_cityscapes, "train")
    os.remove(ds.targets[2][0])
    with pytest.raises(FileNotFoundError, match=r"annotation missing .*expected .*_gtFine_labelIds\.png"):
        CityscapesSegmentation(mini_cityscapes, "train")
