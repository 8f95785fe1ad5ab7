"""Image classification: cross-entropy training, top-1 / top-5 evaluation.

Config (see ``configs/classification/*.yaml``)::

    model:
      name: resnet50          # a glore.models.small.SMALL_MODELS name, a backbone for
                              # glore.models.create_model, or "package.module:function"
      num_classes: 1000       # inferred from the class folders for image layouts when left out
      pretrained: false       # true (timm's weights: hub or cache) or a local weights file
      block: glore            # create_model options: block, units, position, block_kwargs
      units: [0, 3]
      block_kwargs: {}        # options of the blocks
      # any other key goes to create_model, and from there to timm.create_model (drop_path_rate, ...)
      label_smoothing: 0.0
    data:
      name: imagefolder       # or distant-digits, distant-clips (in-memory clips for 3D networks)
      root: /data/imagenet
      layout: imagefolder     # or cub200
      train_split: train
      val_split: val
      batch_size: 32          # per process
      val_batch_size: null    # defaults to batch_size
      num_workers: 4
      augment: true           # RandomResizedCrop + flip on the training split
      image_size: 224
      resize_size: 256
      scale: [0.08, 1.0]
      ratio: [0.75, 1.3333]   # aspect ratios of the crop
      rotation: 0             # GCNet's recipe: 10 (degrees), color_jitter 0.4, lighting 0.1
      color_jitter: 0         # brightness/contrast/saturation factor in [1 - j, 1 + j]: j or [jb, jc, js]
      lighting: 0             # std of AlexNet's PCA lighting noise
      shuffle: true
      drop_last: false
      options: {}             # keyword options of DistantDigits / DistantClips(split, **options)
      val_options: {}         # overrides of options for the validation split (e.g. num_samples)

Metrics: ``val/loss``, ``val/acc1`` and, with at least 5 classes, ``val/acc5`` (fractions in [0, 1]). ``best.ckpt``
follows ``val/acc1``.
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from glore.errors import ArgumentError
from .base import TaskModule
from .datamodule import TaskData, data_root

DATASETS = ("distant-digits", "distant-clips", "imagefolder")
# model keys consumed here; the rest of cfg["model"] go to the model builder
_MODEL_KEYS = ("name", "label_smoothing")


def _small_models() -> dict:
    from glore.models.small import SMALL_MODELS

    return SMALL_MODELS


def build_model(model_cfg: dict) -> torch.nn.Module:
    """Build the network described by ``cfg["model"]`` (see the module docstring)."""
    model_cfg = dict(model_cfg)
    name = model_cfg.get("name")
    if not name or not isinstance(name, str):
        raise ArgumentError(f"model.name must name a model, got {name!r}")
    kwargs = {k: v for k, v in model_cfg.items() if k not in _MODEL_KEYS and v is not None}
    small = _small_models()
    if name in small or ":" in name:    # these builders take the block options as keywords
        kwargs.update(kwargs.pop("block_kwargs", None) or {})
        kwargs = {k: v for k, v in kwargs.items() if not (k == "pretrained" and v is False)}
    if name in small:
        return small[name](**kwargs)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            builder = getattr(importlib.import_module(module_name), attr)
        except (ModuleNotFoundError, AttributeError) as exc:
            raise ArgumentError(f"unknown model {name!r}: cannot import {attr!r} from {module_name!r} ({exc})") from None
        return builder(**kwargs)
    from glore.models import create_model

    try:
        return create_model(name, **kwargs)
    except (ValueError, KeyError, RuntimeError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        if "unknown" in str(message).lower() or "not found" in str(message).lower() or isinstance(exc, KeyError):
            raise ArgumentError(
                f"unknown model {name!r}: {message} (small models: {sorted(small)})"
            ) from None
        raise


def resolve_num_classes(cfg: dict) -> int:
    """``model.num_classes``, or the number of class folders of an image dataset."""
    num = cfg["model"].get("num_classes")
    if num is not None:
        return int(num)
    data = cfg["data"]
    if data.get("name") == "imagefolder":
        from glore.data.imagefolder import count_classes

        return count_classes(data_root(data, "a folder with train/ and val/"), data.get("train_split", "train"), layout=data.get("layout", "imagefolder"))
    raise ArgumentError(f"model.num_classes is required for data.name={data.get('name')!r}")


class ClassificationModule(TaskModule):
    """Cross-entropy (with optional label smoothing), top-1 / top-5 accuracy via torchmetrics."""

    monitor = "val/acc1"
    monitor_mode = "max"

    # how the network and the class count come from the config; the video task swaps these
    network_builder = staticmethod(build_model)
    class_counter = staticmethod(resolve_num_classes)

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        model_cfg = dict(self.cfg["model"])
        model_cfg["num_classes"] = self.num_classes = self.class_counter(self.cfg)
        self.model = self.network_builder(model_cfg)
        self.label_smoothing = float(model_cfg.get("label_smoothing", 0.0) or 0.0)
        # a torchmetrics mean (sum and count synced over processes): with ``self.log(sync_dist=True)``
        # Lightning averages the per-process sample counts as integers, which is wrong for shards of
        # different lengths (see glore.engine.loaders.evaluation_sampler)
        self.val_loss = MeanMetric()
        self.val_acc1 = MulticlassAccuracy(num_classes=self.num_classes, top_k=1, average="micro")
        self.val_acc5 = (
            MulticlassAccuracy(num_classes=self.num_classes, top_k=5, average="micro") if self.num_classes >= 5 else None
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """``trainer.channels_last``: images (4-d) and clips (5-d) in the channels-last layout, the
        faster convolution layout on CPU; the network's weights follow at the first batch."""
        if not self.cfg["trainer"].get("channels_last"):
            return batch
        images, *rest = batch
        layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(images.dim())
        if layout is None:
            return batch
        if getattr(self, "_weights_layout", None) is not layout:
            self.model.to(memory_format=layout)
            self._weights_layout = layout
        return (images.contiguous(memory_format=layout), *rest)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        self.log_train_loss(loss, labels.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        logits = self(images).float()
        n = labels.shape[0]
        self.val_loss.update(F.cross_entropy(logits, labels, reduction="none"))
        self.log("val/loss", self.val_loss, on_epoch=True, batch_size=n, prog_bar=True)
        self.val_acc1.update(logits, labels)
        self.log("val/acc1", self.val_acc1, on_epoch=True, batch_size=n, prog_bar=True)
        if self.val_acc5 is not None:
            self.val_acc5.update(logits, labels)
            self.log("val/acc5", self.val_acc5, on_epoch=True, batch_size=n)



class ClassificationData(TaskData):
    """Train / val loaders for ``cfg["data"]`` (distant-digits, distant-clips or an image layout)."""

    def __init__(self, data_cfg: dict, *, seed: int = 0, num_classes: int | None = None):
        super().__init__(data_cfg, seed=seed)
        self.num_classes = num_classes  # model.num_classes, checked against the folder's classes
        name = self.data_cfg.get("name")
        if name not in DATASETS:
            raise ArgumentError(f"unknown classification dataset data.name={name!r}; expected one of {', '.join(DATASETS)}")

    def train_dataset(self):
        return self._dataset("train_split", "train", train=True)

    def val_dataset(self):
        return self._dataset("val_split", "val", train=False)

    def _dataset(self, split_key: str, default: str, *, train: bool):
        data = self.data_cfg
        split = data.get(split_key, default)
        if data["name"] in ("distant-digits", "distant-clips"):
            if data["name"] == "distant-digits":
                from glore.data.distant_digits import DistantDigits as in_memory_set
            else:
                from glore.data.distant_clips import DistantClips as in_memory_set
            return in_memory_set(split, **self.builtin_options(train=train))
        from glore.data.imagefolder import build_image_dataset

        return build_image_dataset(
            data_root(data, "a folder with train/ and val/"), split, train=train,
            layout=data.get("layout", "imagefolder"),
            augment=bool(data.get("augment", True)),
            image_size=int(data.get("image_size", 224)),
            resize_size=int(data.get("resize_size", 256)),
            scale=tuple(data.get("scale", (0.08, 1.0))),
            ratio=tuple(data.get("ratio", (3 / 4, 4 / 3))),
            hflip=bool(data.get("hflip", True)),
            rotation=float(data.get("rotation", 0.0)),
            color_jitter=data.get("color_jitter", 0.0),
            lighting=float(data.get("lighting", 0.0)),
        )

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        self._check_num_classes()

    def _check_num_classes(self) -> None:
        for dataset in (self.train_set, self.val_set):
            classes = getattr(dataset, "classes", None)
            if self.num_classes is not None and classes is not None and len(classes) > self.num_classes:
                raise ArgumentError(f"model.num_classes={self.num_classes} but the data has {len(classes)} classes "
                                    f"({', '.join(map(str, list(classes)[:5]))}{', ...' if len(classes) > 5 else ''}); "
                                    "raise model.num_classes or leave it out to count the class folders")


def build_module(cfg: dict) -> ClassificationModule:
    return ClassificationModule(cfg)


def build_datamodule(cfg: dict) -> ClassificationData:
    return ClassificationData(cfg["data"], seed=int(cfg.get("seed", 0)), num_classes=cfg["model"].get("num_classes"))
