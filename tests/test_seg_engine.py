"""The segmentation task module: configs, loss with the auxiliary head, metrics, data module."""

import os

import pytest
import torch
import torch.nn.functional as F

from glore.engine.config import load_config
from glore.engine.segmentation import build_datamodule, build_module, metric_values

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "segmentation")
SMALL = ["model.channels=16", "model.aux_channels=8", "model.head_kwargs.mid=8",
         "data.train_samples=4", "data.val_samples=4", "data.batch_size=2"]


def test_configs_load_and_build():
    cfg = load_config(os.path.join(CONFIGS, "cityscapes_resnet50_glore.yaml"))
    assert cfg["task"] == "segmentation" and cfg["optim"]["schedule"] == "poly" and cfg["optim"]["power"] == 0.9
    assert cfg["data"]["crop_size"] == 769 and cfg["data"]["scale_range"] == [0.5, 2.0]
    digits = load_config(os.path.join(CONFIGS, "seg_digits_glore.yaml"), SMALL)
    module = build_module(digits)
    assert module.monitor == "val/miou" and module.monitor_mode == "max"
    assert module.model.head.block_name == "glore" and module.model.head.context[0].num_nodes == 8
    assert type(module.model.backbone).__name__ == "TinySegNet"
    resnet = build_module(load_config(os.path.join(CONFIGS, "seg_digits_glore.yaml"),
                                      SMALL + ["model.backbone=resnet18", "model.multigrid=[1,2,4]"]))
    assert resnet.model.backbone.layer4[1].conv1.dilation == (8, 8)
    plain = build_module(load_config(os.path.join(CONFIGS, "seg_digits_glore.yaml"), SMALL + ["model.head=null"]))
    assert len(plain.model.head.context) == 0


def test_loss_adds_the_weighted_auxiliary_loss():
    cfg = load_config(os.path.join(CONFIGS, "seg_digits_glore.yaml"), SMALL + ["model.aux_weight=0.25"])
    module = build_module(cfg).train()
    dm = build_datamodule(cfg)
    dm.setup("fit")
    images, target = next(iter(torch.utils.data.DataLoader(dm.train_set, batch_size=2)))
    out = module.model(images)
    loss, parts = module.loss(out, target)
    main = F.cross_entropy(out["out"], target, ignore_index=255)
    aux = F.cross_entropy(out["aux"], target, ignore_index=255)
    assert torch.allclose(loss, main + 0.25 * aux)
    assert torch.allclose(parts["loss_aux"], aux)
    loss.backward()
    assert module.model.aux_head.classifier.weight.grad is not None


def test_metric_values_are_flat_floats():
    from glore.metrics import CityscapesMetrics

    m = CityscapesMetrics()
    m.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))
    values = metric_values(m.compute(), m.class_names)
    assert values["val/miou"] == pytest.approx(1.0) and values["val/iou/road"] == pytest.approx(1.0)
    assert {"val/iiou_class", "val/iou_category", "val/iiou_category", "val/iou/traffic_light"} <= set(values)
    assert all(isinstance(v, float) for v in values.values())


def test_bad_split_size_is_named():
    cfg = load_config(os.path.join(CONFIGS, "seg_digits_glore.yaml"), SMALL + ["data.val_samples=0"])
    dm = build_datamodule(cfg)
    with pytest.raises(ValueError, match=r"data.val_samples must be a positive integer .* got 0"):
        dm.setup("validate")


def test_unknown_dataset_is_named():
    cfg = load_config(os.path.join(CONFIGS, "seg_digits_glore.yaml"), SMALL + ["data.name=ade20k"])
    with pytest.raises(ValueError, match="ade20k"):
        build_datamodule(cfg)


def test_seg_digits_resumed_run_matches_an_uninterrupted_one(tmp_path, monkeypatch):
    # several epochs over the same split, interrupted, resumed: the same weights as a straight run
    from glore.engine import runner
    from glore.checkpoint import read_checkpoint
    from glore.engine.segmentation import SegmentationModule

    def crash_after_first_epoch(self):
        if self.current_epoch == 1:
            raise RuntimeError("simulated crash")

    def cfg(out, epochs):
        return load_config(os.path.join(CONFIGS, "seg_digits_glore.yaml"), SMALL + [
            f"output_dir={out}", f"trainer.max_epochs={epochs}", "data.train_samples=8", "data.val_samples=8",
            "data.batch_size=4", "data.val_batch_size=8", "optim.warmup_steps=2"])

    metrics = runner.train(cfg(tmp_path / "straight", 3))
    assert 0.0 <= metrics["val/miou"] <= 1.0
    straight = read_checkpoint(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    with monkeypatch.context() as patch:
        patch.setattr(SegmentationModule, "on_train_epoch_start", crash_after_first_epoch, raising=False)
        with pytest.raises(RuntimeError, match="simulated crash"):
            runner.train(cfg(tmp_path / "resumed", 3))
    partial = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    runner.train(cfg(tmp_path / "resumed", 3), resume="last")
    resumed = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert partial["global_step"] == 2 and resumed["global_step"] == straight["global_step"] == 6
    for key, value in straight["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    assert not all(torch.equal(partial["state_dict"][k], v) for k, v in straight["state_dict"].items())
