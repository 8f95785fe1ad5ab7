"""The segmentation task module: configs, loss with the auxiliary head, metrics, data module."""

import os

import pytest
import torch
import torch.nn.functional as F

from glore.engine.config import load_config
from glore.engine.segmentation import build_datamodule, build_module, metric_values

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs", "segmentation")
SMALL = ["model.backbone=resnet18", "model.channels=16", "model.aux_channels=8",
         "data.options.num_samples=4", "data.batch_size=2"]


def test_configs_load_and_build():
    cfg = load_config(os.path.join(CONFIGS, "cityscapes_resnet50_glore.yaml"))
    assert cfg["task"] == "segmentation" and cfg["optim"]["schedule"] == "poly" and cfg["optim"]["power"] == 0.9
    assert cfg["data"]["crop_size"] == 769 and cfg["data"]["scale_range"] == [0.5, 2.0]
    digits = load_config(os.path.join(CONFIGS, "seg_digits_glore.yaml"), SMALL)
    module = build_module(digits)
    assert module.monitor == "val/miou" and module.monitor_mode == "max"
    assert module.model.head.block_name == "glore"
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


def test_unknown_dataset_is_named():
    cfg = load_config(os.path.join(CONFIGS, "seg_digits_glore.yaml"), SMALL + ["data.name=ade20k"])
    with pytest.raises(ValueError, match="ade20k"):
        build_datamodule(cfg)
