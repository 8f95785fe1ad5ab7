"""The detection task: a miniature COCO tree trains one step and evaluates; AP = COCOeval on the
written detections.json; configs; summary --kind detection."""

import json
import os

import pytest

from glore.data.det_digits import DetDigits, write_coco_tree
from glore.engine.config import load_config

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "detection")
DIGITS = dict(canvas=64, num_digits=2, digit_size=12, key_size=8, min_distance=16)
TINY = ["model.min_size=64", "model.max_size=64", "model.fpn_channels=16", "model.box_head_channels=32",
        "model.mask_head_channels=8", "model.box_score_thresh=0.0", "model.rpn_post_nms_top_n_test=20",
        "model.anchor_sizes=[16,32]", "data.batch_size=2", "data.val_batch_size=2", "trainer.max_epochs=1",
        "trainer.limit_train_batches=1", "trainer.num_sanity_val_steps=0", "trainer.check_val_every_n_epoch=1",
        "trainer.log_every_n_steps=1"]


def test_configs_load_and_name_the_papers_settings():
    for name in ("coco_maskrcnn_r50_1x", "coco_maskrcnn_r50_gc_r16_1x", "coco_maskrcnn_r50_gc_r4_1x",
                 "coco_maskrcnn_r50_glore_1x"):
        cfg = load_config(os.path.join(CONFIGS, f"{name}.yaml"))
        assert cfg["task"] == "detection" and cfg["model"]["arch"] == "maskrcnn"
        assert cfg["optim"]["lr"] == 0.02 and cfg["optim"]["milestones"] == [8, 11]
        assert cfg["trainer"]["max_epochs"] == 12 and cfg["model"]["trainable_layers"] == 3
    r16 = load_config(os.path.join(CONFIGS, "coco_maskrcnn_r50_gc_r16_1x.yaml"))["model"]
    assert (r16["block"], r16["units"], r16["position"], r16["block_kwargs"]["ratio"]) == ("gc", "all", "after_1x1", 1 / 16)
    for name in ("baseline", "glore", "gc"):
        cfg = load_config(os.path.join(CONFIGS, f"det_digits_{name}.yaml"))
        assert cfg["data"]["name"] == "det-digits" and cfg["model"]["returned_layers"] == [1]


def test_coco_tree_trains_one_step_and_evaluates_like_cocoeval(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from glore.engine import runner

    root = tmp_path / "coco"
    write_coco_tree(DetDigits("train", num_samples=4, **DIGITS), root)
    write_coco_tree(DetDigits("val", num_samples=3, **DIGITS), root)
    overrides = TINY + [
        "data.name=coco", f"data.root={root}", "data.train_images=train", "data.val_images=val",
        "data.train_annotations=annotations/instances_train.json",
        "data.val_annotations=annotations/instances_val.json",
        "model.arch=maskrcnn", f"output_dir={tmp_path / 'run'}"]
    cfg = load_config(os.path.join(CONFIGS, "det_digits_baseline.yaml"), overrides)
    metrics = runner.train(cfg)
    assert {"val/bbox/ap", "val/bbox/ap50", "val/segm/ap", "val/segm/ar_l"} <= set(metrics)
    assert len([k for k in metrics if k.startswith("val/bbox/")]) == 12

    out = tmp_path / "detections.json"
    values = runner.evaluate(str(tmp_path / "run" / "checkpoints" / "last.ckpt"), detections=str(out))
    results = json.loads(out.read_text())
    assert values["val/detections"] == len(results) > 0 and values["val/images"] == 3
    assert "counts" in results[0]["segmentation"]                     # RLE
    gt = COCO(str(root / "annotations" / "instances_val.json"))
    for iou_type in ("bbox", "segm"):
        # the official recipe: the file as written (segm scored on the masks, not the boxes)
        dets = [{k: v for k, v in r.items() if not (iou_type == "segm" and k == "bbox")} for r in results]
        evaluator = COCOeval(gt, gt.loadRes(dets), iou_type)
        evaluator.evaluate(), evaluator.accumulate(), evaluator.summarize()
        ours = [values[f"val/{iou_type}/{name}"] for name in
                ("ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l", "ar1", "ar10", "ar100", "ar_s", "ar_m", "ar_l")]
        assert ours == pytest.approx(list(evaluator.stats), abs=1e-12)


def test_det_digits_datamodule_and_module_shapes():
    from glore.engine.detection import build_datamodule, build_module

    cfg = load_config(os.path.join(CONFIGS, "det_digits_glore.yaml"), TINY + ["data.train_samples=2",
                                                                              "data.val_samples=2"])
    module = build_module(cfg)
    assert module.monitor == "val/bbox/ap" and not module.segm
    assert [n for n in dict(module.model.named_modules()) if n.endswith("after_add")] == [
        "backbone.body.layer1.1.after_add"]
    dm = build_datamodule(cfg)
    dm.setup("fit")
    gt = dm.val_ground_truth()
    assert len(gt.imgs) == 2 and {c["name"] for c in gt.cats.values()} == {"match", "other"}
    with pytest.raises(ValueError, match="data.val_samples must be a positive integer"):
        build_datamodule(load_config(os.path.join(CONFIGS, "det_digits_glore.yaml"), ["data.val_samples=0"])).setup()
    with pytest.raises(ValueError, match="unknown detection dataset data.name='voc'"):
        build_datamodule(load_config(os.path.join(CONFIGS, "det_digits_glore.yaml"), ["data.name=voc"]))


def test_summary_of_a_detector_counts_all_its_parameters():
    import torch

    from glore.cli.summary import build
    from glore.analysis.complexity import summary
    from glore.analysis.detection_complexity import DenseDetector, paper_figures

    model = build("detection", "resnet18", block="gc", units="all", arch="fasterrcnn", num_classes=3)
    result = summary(DenseDetector(model, proposals=10, detections=10), (3, 64, 96))
    assert result["params"] == sum(p.numel() for p in model.parameters()) and result["gmacs"] > 0
    plain = summary(DenseDetector(build("detection", "resnet18", arch="fasterrcnn", num_classes=3),
                                  proposals=10, detections=10), (3, 64, 96))
    assert result["macs"] > plain["macs"]
    assert [f.params_m for f in paper_figures("maskrcnn", "resnet50", block="gc", units="all",
                                              block_kwargs={"ratio": 1 / 16})] == [46.9]
    assert paper_figures("maskrcnn", "resnet50", block="gc", units="all", block_kwargs={"ratio": 1 / 4}) == []
    assert paper_figures("fasterrcnn", "resnet50") == []
    assert torch.is_tensor(DenseDetector(model, proposals=2, detections=2)(torch.zeros(1, 3, 40, 50))[0])


def test_det_digits_resumed_run_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    import torch

    from glore.engine import runner
    from glore.checkpoint import read_checkpoint
    from glore.engine.detection import DetectionModule

    def crash_after_first_epoch(self):
        if self.current_epoch == 1:
            raise RuntimeError("simulated crash")

    def cfg(out):
        return load_config(os.path.join(CONFIGS, "det_digits_gc.yaml"), TINY + [
            f"output_dir={out}", "trainer.max_epochs=2", "trainer.limit_train_batches=null", "data.train_samples=4",
            "data.val_samples=2", "optim.warmup_steps=1"])

    runner.train(cfg(tmp_path / "straight"))
    straight = read_checkpoint(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    with monkeypatch.context() as patch:
        patch.setattr(DetectionModule, "on_train_epoch_start", crash_after_first_epoch, raising=False)
        with pytest.raises(RuntimeError, match="simulated crash"):
            runner.train(cfg(tmp_path / "resumed"))
    runner.train(cfg(tmp_path / "resumed"), resume="last")
    resumed = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == straight["global_step"] == 4
    for key, value in straight["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
