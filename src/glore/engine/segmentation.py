"""Semantic segmentation: pixel-wise cross-entropy with an auxiliary loss, mIoU / Cityscapes metrics.

Config (see ``configs/segmentation/*.yaml``)::

    task: segmentation
    model:
      backbone: resnet50      # glore.models.create_segmenter options from here on
      head: glore             # null | glore | nl | snl | gc | ccnet | danet | ann
      head_depth: 1           # context blocks in the head; head_kwargs: their options
      num_classes: 19
      multigrid: [1, 2, 4]
      aux: true
      aux_weight: 0.4         # weight of the auxiliary (res4) loss
      pretrained: false       # ImageNet weights of the backbone: true (timm's) or a local file
      block: null             # blocks in the backbone, e.g. block: gc, units: all, block_kwargs: {ratio: 0.25}
      checkpoint: null        # a segmenter state dict, or classification weights of the backbone
      inference:              # validation-time inference, Segmenter.predict options (glore evaluate options override it)
        mode: whole           # whole | slide
        crop_size: 769
        stride: 513
        flip: false
        scales: [1.0]
    data:                     # glore.engine.segmentation_data.SegmentationData
      name: cityscapes        # or seg-digits
      root: /data/cityscapes
      train_split: train
      val_split: val          # evaluate on the Cityscapes test split: data.val_split=test
      batch_size: 2           # per process
      val_batch_size: 1
      num_workers: 4
      crop_size: 769
      scale_range: [0.5, 2.0]
      hflip: true
      options: {}             # seg-digits: keyword options of SegDigits(split, **options)
      train_samples: 8000     # seg-digits: split sizes (override options.num_samples)
      val_samples: 400

Metrics: ``val/loss`` (single-pass inference only), ``val/miou`` (``best.ckpt`` follows it),
``val/pixel_acc``, per-class ``val/iou/<class>``; for Cityscapes also ``val/iiou_class``,
``val/iou_category``, ``val/iiou_category``. All are fractions in [0, 1].

:func:`evaluate` options (``glore evaluate --opt name=value``), applied to the module's
``validation_step`` and run with ``Trainer.validate``: ``sliding_window`` (bool), ``crop_size``,
``stride``, ``flip`` (bool), ``scales`` (list of floats); ``save_predictions`` (a folder: Cityscapes
benchmark PNGs of label ids, :class:`~glore.engine.segmentation_writers.CityscapesResultWriter`);
``save_coloured`` (number of colourised PNGs to write) and ``coloured_dir`` (default
``<output_dir>/predictions``); ``limit`` (evaluate only the first N images); ``device`` (``cpu``,
``cuda``, ``cuda:N``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from glore.data.seg_digits import CLASS_NAMES
from glore.data.seg_palette import palette
from glore.errors import ArgumentError
from glore.metrics.cityscapes import CityscapesMetrics, SegmentationIoU
from glore.models.segmentation import create_segmenter
from ..models.segmentation_inference import INFERENCE_DEFAULTS, check_options, is_single_pass
from .base import TaskModule
from .runner import run_validation
from .segmentation_data import SegmentationData, build_datamodule, dataset_name
from .segmentation_writers import CityscapesResultWriter, ColouredPredictionWriter

__all__ = ["SegmentationModule", "build_module", "build_datamodule", "build_segmenter", "build_metric",
           "inference_options", "metric_values", "evaluate"]

IGNORE_INDEX = 255
# cfg["model"] keys consumed here; the rest go to glore.models.create_segmenter
_MODEL_KEYS = ("name", "backbone", "inference")


def build_segmenter(model_cfg: dict) -> torch.nn.Module:
    """``glore.models.create_segmenter`` from ``cfg["model"]``."""

    model_cfg = dict(model_cfg)
    backbone = model_cfg.get("backbone") or model_cfg.get("name") or "resnet50"
    kwargs = {k: v for k, v in model_cfg.items() if k not in _MODEL_KEYS}
    for key in ("multigrid",):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    try:
        return create_segmenter(backbone, **kwargs)
    except TypeError as exc:
        raise ArgumentError(f"bad model options for create_segmenter: {exc}") from None


def inference_options(model_cfg: dict, **overrides) -> dict:
    """``Segmenter.predict`` options: the defaults, ``model_cfg["inference"]``, then non-None ``overrides``."""
    opts = {**INFERENCE_DEFAULTS, **dict(model_cfg.get("inference") or {})}
    unknown = sorted(set(opts) - set(INFERENCE_DEFAULTS))
    if unknown:
        raise ArgumentError(f"unknown model.inference option(s) {unknown}; expected some of {sorted(INFERENCE_DEFAULTS)}")
    opts.update({k: v for k, v in overrides.items() if v is not None})
    return check_options(**opts)


def build_metric(cfg: dict, num_classes: int):
    if dataset_name(cfg["data"]) == "cityscapes":
        if num_classes != 19:
            raise ArgumentError(f"Cityscapes evaluation needs model.num_classes=19, got {num_classes}")
        return CityscapesMetrics()

    names = CLASS_NAMES if num_classes == len(CLASS_NAMES) else None
    return SegmentationIoU(num_classes, ignore_index=IGNORE_INDEX, class_names=names)


def metric_values(result: dict, class_names: Sequence[str], prefix: str = "val/") -> dict[str, float]:
    """Flatten a metric's ``compute()`` into ``{prefix + name: float}`` (per class: ``iou/<name>``)."""
    out = {f"{prefix}miou": float(result["miou"]), f"{prefix}pixel_acc": float(result["pixel_acc"])}
    for key in ("iiou_class", "iou_category", "iiou_category"):
        if key in result:
            out[f"{prefix}{key}"] = float(result[key])
    for name, value in zip(class_names, result["iou"].tolist()):
        out[f"{prefix}iou/{name.replace(' ', '_')}"] = float(value)
    return out


class SegmentationModule(TaskModule):
    """Cross-entropy (ignore 255) on the head plus ``aux_weight`` times that of the auxiliary head.

    ``validation_step`` predicts with ``self.model.predict(images, **self.inference_opts)`` and
    returns ``{"pred": train ids (B, H, W), "names": sample names}`` for prediction writers.
    """

    monitor = "val/miou"
    monitor_mode = "max"

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        dataset_name(self.cfg["data"])
        self.model = build_segmenter(self.cfg["model"])
        self.num_classes = self.model.num_classes
        self.aux_weight = float(self.model.aux_weight)
        self.inference_opts = inference_options(self.cfg["model"])
        self.val_metric = build_metric(self.cfg, self.num_classes)
        # synced as a sum and a count (exact for shards of different lengths, as in classification)
        self.val_loss = MeanMetric()

    def forward(self, images: torch.Tensor):
        return self.model(images)

    def loss(self, out, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if isinstance(out, dict):
            main = F.cross_entropy(out["out"].float(), target, ignore_index=IGNORE_INDEX)
            aux = F.cross_entropy(out["aux"].float(), target, ignore_index=IGNORE_INDEX)
            return main + self.aux_weight * aux, {"loss_main": main, "loss_aux": aux}
        main = F.cross_entropy(out.float(), target, ignore_index=IGNORE_INDEX)
        return main, {"loss_main": main}

    def training_step(self, batch, batch_idx):
        images, target = batch[0], batch[1]
        loss, parts = self.loss(self.model(images), target)
        n = images.shape[0]
        self.log_train_loss(loss, n)
        for key, value in parts.items():
            self.log(f"train/{key}", value, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def validation_step(self, batch: dict, batch_idx):
        images, target = batch["image"], batch["target"]
        scores = self.model.predict(images, **self.inference_opts)
        if is_single_pass(self.inference_opts):       # logits: the loss is defined
            self.val_loss.update(F.cross_entropy(scores, target, ignore_index=IGNORE_INDEX), weight=images.shape[0])
            self.log("val/loss", self.val_loss, on_epoch=True, batch_size=images.shape[0], prog_bar=True)
        pred = scores.argmax(1)
        if "instance" in batch:
            self.val_metric.update(pred, target, batch["instance"])
        else:
            self.val_metric.update(pred, target)
        return {"pred": pred, "names": list(batch["name"])}

    def on_validation_epoch_end(self) -> None:
        values = metric_values(self.val_metric.compute(), self.val_metric.class_names)
        self.val_metric.reset()
        for key, value in values.items():   # already reduced over processes by torchmetrics
            self.log(key, value, prog_bar=key == "val/miou", sync_dist=True)


def build_module(cfg: dict) -> SegmentationModule:
    return SegmentationModule(cfg)


# ---- evaluation: options -> module / data module / callbacks -> Trainer.validate --------------------

def _device_trainer_options(device: str | None) -> dict:
    if device is None:
        return {}
    device = str(device)
    if device == "cpu":
        return {"accelerator": "cpu", "devices": 1}
    if device in ("cuda", "gpu"):
        return {"accelerator": "gpu", "devices": 1}
    if device.startswith("cuda:") and device[5:].isdigit():
        return {"accelerator": "gpu", "devices": [int(device[5:])]}
    raise ArgumentError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def _prediction_writers(cfg: dict, num_classes: int, *, save_predictions, save_coloured, coloured_dir) -> list:
    writers = []
    if save_predictions is not None:
        if not isinstance(save_predictions, (str, os.PathLike)) or not os.fspath(save_predictions):
            raise ArgumentError(f"save_predictions must be a folder for the label-id PNGs, got {save_predictions!r} "
                             "(colourised previews: save_coloured=N)")
        if dataset_name(cfg["data"]) != "cityscapes":
            raise ArgumentError("save_predictions writes Cityscapes benchmark PNGs; it needs data.name=cityscapes, "
                             f"got {cfg['data']['name']!r} (colourised previews: save_coloured=N)")
        writers.append(CityscapesResultWriter(save_predictions))
    if isinstance(save_coloured, bool) or not isinstance(save_coloured, int) or save_coloured < 0:
        raise ArgumentError(f"save_coloured must be a non-negative integer (images), got {save_coloured!r}")
    if save_coloured:
        directory = coloured_dir or os.path.join(os.fspath(cfg["output_dir"]), "predictions")
        writers.append(ColouredPredictionWriter(directory, palette(dataset_name(cfg["data"]), num_classes),
                                                save_coloured))
    return writers


def evaluate(module: SegmentationModule, datamodule: SegmentationData, cfg: dict, *,
             sliding_window: bool | None = None, crop_size=None, stride=None, flip: bool | None = None,
             scales: Sequence[float] | None = None, save_predictions: str | os.PathLike | None = None,
             save_coloured: int = 0, coloured_dir: str | None = None, limit: int | None = None,
             device: str | None = None) -> dict:
    """Validate ``module`` with ``Trainer.validate`` under the evaluation options of the module
    docstring; the metrics plus ``val/images`` (images evaluated)."""

    mode = None if sliding_window is None else ("slide" if sliding_window else "whole")
    module.inference_opts = inference_options(cfg["model"], mode=mode, crop_size=crop_size, stride=stride,
                                              flip=flip, scales=scales)
    writers = _prediction_writers(cfg, module.num_classes, save_predictions=save_predictions,
                                  save_coloured=save_coloured, coloured_dir=coloured_dir)
    datamodule.val_limit = limit
    trainer_cfg = {k: v for k, v in cfg["trainer"].items() if k != "limit_val_batches"}   # the whole split
    trainer_cfg.update(_device_trainer_options(device))
    values = run_validation(module, datamodule, {**cfg, "trainer": trainer_cfg}, callbacks=writers)
    values["val/images"] = float(len(datamodule.val_set))
    return values
