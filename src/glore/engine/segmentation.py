"""Semantic segmentation: pixel-wise cross-entropy with an auxiliary loss, mIoU / Cityscapes metrics.

Config (see ``configs/segmentation/*.yaml``)::

    task: segmentation
    model:
      backbone: resnet50      # glore.models.create_segmenter options from here on
      head: glore             # null | glore | nl | snl | gc
      units: 1
      num_classes: 19
      multigrid: [1, 2, 4]
      aux: true
      aux_weight: 0.4         # weight of the auxiliary (res4) loss
      pretrained: false       # ImageNet weights of the backbone: true (timm's) or a local file
      backbone_blocks: null   # blocks in the backbone: {block: gc, units: all, block_kwargs: {ratio: 0.25}}
      checkpoint: null        # a segmenter state dict, or classification weights of the backbone
      inference:              # validation-time inference (glore evaluate options override it)
        mode: whole           # whole | slide
        crop_size: 769
        stride: 513
        flip: false
        scales: [1.0]
    data:
      name: cityscapes        # or seg-digits
      root: /data/cityscapes
      train_split: train
      val_split: val
      batch_size: 2           # per process
      val_batch_size: 1
      num_workers: 4
      crop_size: 769
      scale_range: [0.5, 2.0]
      hflip: true
      options: {}             # seg-digits: keyword options of SegDigits(split, **options)
      train_samples: 8000     # seg-digits: split sizes (override options.num_samples)
      val_samples: 400

Metrics: ``val/loss``, ``val/miou`` (``best.ckpt`` follows it), ``val/pixel_acc``, per-class
``val/iou/<class>``; for Cityscapes also ``val/iiou_class``, ``val/iou_category``, ``val/iiou_category``.
All are fractions in [0, 1].

``evaluate`` options (``glore evaluate --opt name=value``): ``sliding_window`` (bool), ``crop_size``,
``stride``, ``flip`` (bool), ``scales`` (list of floats), ``save_predictions`` (number of colourised
PNGs to write), ``prediction_dir`` (default ``<output_dir>/predictions``), ``limit`` (evaluate only the
first N images), ``device``.
"""

from __future__ import annotations

from ..errors import ArgumentError
import os
from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..data.seg_transforms import pair_size
from .base import TaskModule
from .loaders import EpochSeededDataset, make_loader

DATASETS = ("cityscapes", "seg-digits")
IGNORE_INDEX = 255
# cfg["model"] keys consumed here; the rest go to glore.models.create_segmenter
_MODEL_KEYS = ("name", "backbone", "inference")
INFERENCE_DEFAULTS = {"mode": "whole", "crop_size": 769, "stride": 513, "flip": False, "scales": [1.0]}


# ---- inference ------------------------------------------------------------------------------------

def _logits(model, images: torch.Tensor) -> torch.Tensor:
    out = model(images)
    if isinstance(out, dict):
        out = out["out"]
    return out.float()


def slide_inference(model, images: torch.Tensor, *, crop_size, stride) -> torch.Tensor:
    """Logits of ``images`` averaged over ``crop_size`` windows placed every ``stride`` pixels.

    Windows are clamped to the image (the last one in a row/column is aligned with the border), so a
    window that covers the image gives exactly the whole-image logits.
    """
    ch, cw = pair_size(crop_size, "crop_size")
    sh, sw = pair_size(stride, "stride")
    if sh > ch or sw > cw:
        raise ArgumentError(f"stride {(sh, sw)} must not exceed crop_size {(ch, cw)} (windows would leave gaps)")
    b, _, h, w = images.shape
    rows = max(h - ch + sh - 1, 0) // sh + 1
    cols = max(w - cw + sw - 1, 0) // sw + 1
    total = count = None
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + ch, h), min(c * sw + cw, w)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            out = _logits(model, images[:, :, y1:y2, x1:x2])
            if total is None:
                total = images.new_zeros((b, out.shape[1], h, w), dtype=torch.float32)
                count = images.new_zeros((1, 1, h, w), dtype=torch.float32)
            total[:, :, y1:y2, x1:x2] += out
            count[:, :, y1:y2, x1:x2] += 1
    return total / count


@torch.no_grad()
def inference(model, images: torch.Tensor, *, mode: str = "whole", crop_size=769, stride=513,
              flip: bool = False, scales: Sequence[float] = (1.0,)) -> torch.Tensor:
    """Class scores ``(B, K, H, W)`` of ``images``: logits for a single pass, else softmax averaged.

    ``mode`` ``whole`` runs the network on the full image, ``slide`` on windows (:func:`slide_inference`).
    With ``flip`` and/or several ``scales`` the softmax probabilities of every pass (resized back to
    the input size) are averaged.
    """
    if mode not in ("whole", "slide"):
        raise ArgumentError(f"inference mode must be 'whole' or 'slide', got {mode!r}")
    scales = [float(s) for s in (scales or [1.0])]
    if any(s <= 0 for s in scales):
        raise ArgumentError(f"scales must be positive, got {scales}")
    h, w = images.shape[-2:]

    def run(x):
        if mode == "slide":
            return slide_inference(model, x, crop_size=crop_size, stride=stride)
        return _logits(model, x)

    passes = []
    for s in scales:
        x = images if s == 1.0 else F.interpolate(images, scale_factor=s, mode="bilinear", align_corners=False)
        for flipped in ((False, True) if flip else (False,)):
            out = run(x.flip(-1) if flipped else x)
            if flipped:
                out = out.flip(-1)
            if out.shape[-2:] != (h, w):
                out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
            passes.append(out)
    if len(passes) == 1:
        return passes[0]
    return torch.stack([p.softmax(1) for p in passes]).mean(0)


# ---- model and metrics ----------------------------------------------------------------------------

def build_segmenter(model_cfg: dict) -> torch.nn.Module:
    """``glore.models.create_segmenter`` from ``cfg["model"]``."""
    from glore.models.segmentation import create_segmenter

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
    opts = {**INFERENCE_DEFAULTS, **dict(model_cfg.get("inference") or {})}
    unknown = sorted(set(opts) - set(INFERENCE_DEFAULTS))
    if unknown:
        raise ArgumentError(f"unknown model.inference option(s) {unknown}; expected some of {sorted(INFERENCE_DEFAULTS)}")
    opts.update({k: v for k, v in overrides.items() if v is not None})
    return opts


def _dataset_name(cfg: dict) -> str:
    name = cfg["data"].get("name")
    if name not in DATASETS:
        raise ArgumentError(f"unknown segmentation dataset data.name={name!r}; expected one of {', '.join(DATASETS)}")
    return name


def build_metric(cfg: dict, num_classes: int):
    from glore.metrics.cityscapes import CityscapesMetrics, SegmentationIoU

    if _dataset_name(cfg) == "cityscapes":
        if num_classes != 19:
            raise ArgumentError(f"Cityscapes evaluation needs model.num_classes=19, got {num_classes}")
        return CityscapesMetrics()
    from glore.data.seg_digits import CLASS_NAMES

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
    """Cross-entropy (ignore 255) on the head plus ``aux_weight`` times that of the auxiliary head."""

    monitor = "val/miou"
    monitor_mode = "max"

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        _dataset_name(self.cfg)
        self.model = build_segmenter(self.cfg["model"])
        self.num_classes = self.model.num_classes
        self.aux_weight = float(self.model.aux_weight)
        self.inference_opts = inference_options(self.cfg["model"])
        self.val_metric = build_metric(self.cfg, self.num_classes)

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
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=n)
        for key, value in parts.items():
            self.log(f"train/{key}", value, on_step=False, on_epoch=True, batch_size=n)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx):
        images, target = batch[0], batch[1]
        instance = batch[2] if len(batch) > 2 else None
        opts = self.inference_opts
        scores = inference(self.model, images, mode=opts["mode"], crop_size=opts["crop_size"],
                           stride=opts["stride"], flip=bool(opts["flip"]), scales=opts["scales"])
        if opts["mode"] == "whole" and not opts["flip"] and len(opts["scales"]) == 1:
            loss = F.cross_entropy(scores, target, ignore_index=IGNORE_INDEX)
            self.log("val/loss", loss, on_epoch=True, sync_dist=True, batch_size=images.shape[0], prog_bar=True)
        pred = scores.argmax(1)
        if instance is not None:
            self.val_metric.update(pred, target, instance)
        else:
            self.val_metric.update(pred, target)

    def on_validation_epoch_end(self) -> None:
        values = metric_values(self.val_metric.compute(), self.val_metric.class_names)
        self.val_metric.reset()
        for key, value in values.items():   # already reduced over processes by torchmetrics
            self.log(key, value, prog_bar=key == "val/miou", sync_dist=True)


# ---- data ------------------------------------------------------------------------------------------

def _data_root(data: dict) -> str:
    root = data.get("root")
    if not root:
        raise ArgumentError("data.root is required for data.name='cityscapes' (a folder with leftImg8bit/ and gtFine/)")
    return os.path.expanduser(str(root))


class SegmentationData(L.LightningDataModule):
    """Train / val loaders for ``cfg["data"]`` (Cityscapes or seg-digits)."""

    def __init__(self, data_cfg: dict, *, seed: int = 0):
        super().__init__()
        self.data_cfg = dict(data_cfg)
        self.seed = seed
        self.name = _dataset_name({"data": self.data_cfg})
        self.train_set = self.val_set = None

    def dataset(self, split_key: str, default: str, *, train: bool):
        data = self.data_cfg
        split = data.get(split_key, default)
        if self.name == "seg-digits":
            from glore.data.seg_digits import SegDigits

            options = dict(data.get("options") or {})
            key = "train_samples" if train else "val_samples"
            size = data.get(key)
            if size is not None:
                if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                    raise ArgumentError(f"data.{key} must be a positive integer (the split size), got {size!r}")
                options["num_samples"] = size
            return SegDigits(split, **options)
        from glore.data.cityscapes import CityscapesSegmentation
        from glore.data.seg_transforms import build_seg_transforms

        crop = data.get("crop_size", 769)
        transform = build_seg_transforms(
            train=train, crop_size=tuple(crop) if isinstance(crop, list) else crop,
            scale_range=data.get("scale_range", (0.5, 2.0)), hflip=bool(data.get("hflip", True)))
        return CityscapesSegmentation(_data_root(data), split, transform=transform, return_instances=not train)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = EpochSeededDataset(self.dataset("train_split", "train", train=True), seed=self.seed)
        if self.val_set is None:
            self.val_set = self.dataset("val_split", "val", train=False)

    def _loader(self, dataset, *, batch_size: int, shuffle: bool, drop_last: bool, train: bool) -> DataLoader:
        return make_loader(dataset, trainer=self.trainer, batch_size=batch_size, shuffle=shuffle,
                           drop_last=drop_last, train=train, seed=self.seed,
                           num_workers=int(self.data_cfg.get("num_workers", 0)))

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, batch_size=int(self.data_cfg.get("batch_size", 8)),
                            shuffle=bool(self.data_cfg.get("shuffle", True)),
                            drop_last=bool(self.data_cfg.get("drop_last", True)), train=True)

    def val_dataloader(self) -> DataLoader:
        batch = self.data_cfg.get("val_batch_size") or 1
        return self._loader(self.val_set, batch_size=int(batch), shuffle=False, drop_last=False, train=False)


def build_module(cfg: dict) -> SegmentationModule:
    return SegmentationModule(cfg)


def build_datamodule(cfg: dict) -> SegmentationData:
    return SegmentationData(cfg["data"], seed=int(cfg.get("seed", 0)))


# ---- evaluation -----------------------------------------------------------------------------------

def palette(cfg: dict, num_classes: int) -> np.ndarray:
    """``(256, 3)`` uint8 colours of the train ids (Cityscapes' own, else a fixed qualitative set)."""
    if _dataset_name(cfg) == "cityscapes":
        from glore.data.cityscapes import TRAIN_ID_COLORS

        return TRAIN_ID_COLORS
    base = np.array([[0, 0, 0], [46, 160, 67], [214, 39, 40], [31, 119, 180], [255, 127, 14],
                     [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34]],
                    dtype=np.uint8)
    colours = np.zeros((256, 3), dtype=np.uint8)
    for i in range(min(num_classes, 255)):
        colours[i] = base[i % len(base)]
    return colours


def _sample_name(dataset, index: int) -> str:
    name = getattr(dataset, "sample_name", None)
    return name(index) if callable(name) else f"{index:05d}"


@torch.no_grad()
def evaluate(module: SegmentationModule, datamodule: SegmentationData, cfg: dict, *,
             sliding_window: bool | None = None, crop_size=None, stride=None, flip: bool | None = None,
             scales: Sequence[float] | None = None, save_predictions: int = 0, prediction_dir: str | None = None,
             limit: int | None = None, device: str | None = None) -> dict:
    """Evaluate ``module`` on the validation split, one image at a time; see the module docstring."""
    from PIL import Image

    opts = inference_options(cfg["model"], crop_size=crop_size, stride=stride, flip=flip, scales=scales)
    if sliding_window is not None:
        opts["mode"] = "slide" if sliding_window else "whole"
    if isinstance(opts["crop_size"], list):
        opts["crop_size"] = tuple(opts["crop_size"])
    if isinstance(opts["stride"], list):
        opts["stride"] = tuple(opts["stride"])
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = module.model.to(dev).eval()
    datamodule.setup("validate")
    dataset = datamodule.val_set
    metric = build_metric(cfg, module.num_classes).to(dev)
    save_predictions = int(save_predictions or 0)
    out_dir = prediction_dir or os.path.join(os.fspath(cfg["output_dir"]), "predictions")
    colours = palette(cfg, module.num_classes)
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    loader = DataLoader(torch.utils.data.Subset(dataset, range(n)), batch_size=1, shuffle=False,
                        num_workers=int(datamodule.data_cfg.get("num_workers", 0)))
    for index, batch in enumerate(loader):
        images, target = batch[0].to(dev), batch[1].to(dev)
        scores = inference(model, images, mode=opts["mode"], crop_size=opts["crop_size"], stride=opts["stride"],
                           flip=bool(opts["flip"]), scales=opts["scales"])
        pred = scores.argmax(1)
        if len(batch) > 2:
            metric.update(pred, target, batch[2].to(dev))
        else:
            metric.update(pred, target)
        if index < save_predictions:
            os.makedirs(out_dir, exist_ok=True)
            rgb = colours[pred[0].cpu().numpy().astype(np.int64).clip(0, 255)]
            Image.fromarray(rgb).save(os.path.join(out_dir, f"{_sample_name(dataset, index)}_pred.png"))
    values = metric_values(metric.compute(), metric.class_names)
    values["val/images"] = float(n)
    return values
