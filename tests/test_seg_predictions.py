"""Evaluation through Trainer.validate and the Cityscapes benchmark output (save_predictions):
label-id PNGs named after the input images, for the unlabelled test split and for val (checked with
cityscapesscripts' own matching and evaluation)."""

import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from glore.data.cityscapes import CityscapesSegmentation
from glore.data.seg_transforms import build_seg_transforms
from glore.engine import segmentation
from glore.engine.config import load_config

from test_cityscapes_data import H, W, write_cityscapes

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "segmentation", "cityscapes_resnet50_glore.yaml")
CITIES = {"val": ["frankfurt"], "test": ["berlin", "bielefeld"]}


@pytest.fixture()
def cityscapes_with_test_split(tmp_path):
    """val with annotations; test with images only (no gtFine/test, as the benchmark ships it)."""
    root = write_cityscapes(tmp_path / "cityscapes", CITIES)
    shutil.rmtree(root / "gtFine" / "test")
    return root


def _cfg(root, tmp_path, *extra):
    return load_config(CONFIG, [
        f"output_dir={tmp_path / 'run'}", f"data.root={root}", "model.backbone=resnet18", "model.pretrained=false",
        "model.channels=16", "model.aux_channels=8", "data.num_workers=0", "data.val_batch_size=2",
        "trainer.accelerator=cpu", "trainer.devices=1", "trainer.strategy=auto", "trainer.sync_batchnorm=false",
        "trainer.precision=32-true", "trainer.enable_progress_bar=false", *extra])


def _expected_train_ids(module, root, split):
    """The model's argmax on every image of ``split``, by sample name."""
    ds = CityscapesSegmentation(root, split, transform=build_seg_transforms(train=False))
    model = module.model.eval()
    return {ds.sample_name(i): model.predict(ds[i][0][None], **module.inference_opts).argmax(1)[0].numpy()
            for i in range(len(ds))}


def test_test_split_reads_without_annotations(cityscapes_with_test_split):
    ds = CityscapesSegmentation(cityscapes_with_test_split, "test", return_instances=True)
    assert not ds.labelled and len(ds) == 4
    assert [ds.sample_name(i).split("_")[0] for i in range(4)] == ["berlin", "berlin", "bielefeld", "bielefeld"]
    image, target, instance = ds[0]
    assert image.shape == (3, H, W)
    assert torch.all(target == 255) and target.shape == (H, W) and torch.all(instance == 0)
    assert CityscapesSegmentation(cityscapes_with_test_split, "val").labelled


def test_save_predictions_on_the_test_split_writes_label_ids(cityscapes_with_test_split, tmp_path):
    from cityscapesscripts.helpers.labels import id2label

    root = cityscapes_with_test_split
    cfg = _cfg(root, tmp_path, "data.val_split=test")
    module, datamodule = segmentation.build_module(cfg), segmentation.build_datamodule(cfg)
    out = tmp_path / "results"
    values = segmentation.evaluate(module, datamodule, cfg, sliding_window=True, crop_size=32, stride=24,
                                   save_predictions=str(out), device="cpu")
    assert values["val/images"] == 4
    written = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
    inputs = sorted(os.path.relpath(p, root / "leftImg8bit" / "test") for p in datamodule.val_set.dataset.images)
    assert written == inputs                      # <city>/<city>_<seq>_<frame>_leftImg8bit.png, one per image
    expected = _expected_train_ids(module, root, "test")
    evaluated_ids = {label.id for label in id2label.values() if 0 <= label.trainId < 19}
    for rel in written:
        with Image.open(out / rel) as png:
            assert png.mode == "L" and png.size == (W, H)
            label_ids = np.asarray(png)
        assert set(np.unique(label_ids).tolist()) <= evaluated_ids
        train_ids = np.vectorize(lambda i: id2label[int(i)].trainId)(label_ids)
        name = os.path.basename(rel).replace("_leftImg8bit.png", "")
        np.testing.assert_array_equal(train_ids, expected[name])


def test_saved_val_predictions_score_as_the_official_evaluation(cityscapes_with_test_split, tmp_path, monkeypatch):
    ev = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")

    if not hasattr(np, "in1d"):   # removed in NumPy 2.4; the official script still calls it
        monkeypatch.setattr(np, "in1d", lambda a, b: np.isin(a, b).ravel(), raising=False)
    monkeypatch.setattr(ev.args, "quiet", True)
    monkeypatch.setattr(ev.args, "JSONOutput", False)
    root = cityscapes_with_test_split
    cfg = _cfg(root, tmp_path)
    module, datamodule = segmentation.build_module(cfg), segmentation.build_datamodule(cfg)
    out = tmp_path / "results"
    values = segmentation.evaluate(module, datamodule, cfg, save_predictions=str(out), device="cpu")
    # the official script finds each prediction by its <city>_<seq>_<frame> below the folder
    monkeypatch.setattr(ev.args, "predictionPath", str(out))
    monkeypatch.setattr(ev.args, "predictionWalk", None)
    gts = [targets[0] for targets in datamodule.val_set.dataset.targets]
    preds = [ev.getPrediction(ev.args, gt) for gt in gts]
    assert [os.path.dirname(p) for p in preds] == [str(out / "frankfurt")] * 2
    official = ev.evaluateImgLists(preds, gts, ev.args)
    assert values["val/miou"] == pytest.approx(official["averageScoreClasses"], abs=1e-6)
    assert values["val/iou_category"] == pytest.approx(official["averageScoreCategories"], abs=1e-6)


def test_evaluation_runs_trainer_validate_with_the_options(cityscapes_with_test_split, tmp_path, monkeypatch):
    import lightning as L

    calls = []
    validate = L.Trainer.validate

    def spy(self, model, *args, **kwargs):
        calls.append(dict(model.inference_opts))
        return validate(self, model, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "validate", spy)
    cfg = _cfg(cityscapes_with_test_split, tmp_path)
    module, datamodule = segmentation.build_module(cfg), segmentation.build_datamodule(cfg)
    values = segmentation.evaluate(module, datamodule, cfg, flip=True, scales=[0.5, 1.0], limit=1, device="cpu")
    assert calls == [{"mode": "whole", "crop_size": (769, 769), "stride": (513, 513), "flip": True,
                      "scales": [0.5, 1.0]}]
    assert values["val/images"] == 1 and 0.0 <= values["val/miou"] <= 1.0
    assert "val/loss" not in values                # averaged probabilities: no cross-entropy


def test_bad_prediction_options_are_named(cityscapes_with_test_split, tmp_path):
    cfg = _cfg(cityscapes_with_test_split, tmp_path)
    module, datamodule = segmentation.build_module(cfg), segmentation.build_datamodule(cfg)
    with pytest.raises(ValueError, match=r"save_predictions must be a folder.*save_coloured"):
        segmentation.evaluate(module, datamodule, cfg, save_predictions=1)
    with pytest.raises(ValueError, match="device must be"):
        segmentation.evaluate(module, datamodule, cfg, device="tpu")
    digits = load_config(os.path.join(os.path.dirname(CONFIG), "seg_digits_glore.yaml"),
                         ["model.channels=16", "model.aux_channels=8", "model.head_kwargs.mid=8"])
    digits_module = segmentation.build_module(digits)
    with pytest.raises(ValueError, match="needs data.name=cityscapes"):
        segmentation.evaluate(digits_module, segmentation.build_datamodule(digits), digits,
                              save_predictions=str(tmp_path / "x"))
