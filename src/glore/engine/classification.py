"""Image classification: cross-entropy training, top-1 / top-5 evaluation.

Config (see ``configs/classification/*.yaml``)::

    model:
      name: resnet50          # a glore.models.small.SMALL_MODELS name, a backbone for
                              # glore.models.create_model, or "package.module:function"
      num_classes: 1000       # the count of training class folders when left out (another count is refused)
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
      val_split: val          # its labels follow the training split's class folders
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
      # timm's recipe components (image layouts): any of these builds the transforms with
      # timm.data.create_transform
      auto_augment: null      # rand-m9-mstd0.5-inc1 (RandAugment 9/0.5), original (AutoAugment), ...
      re_prob: 0.0            # random erasing; re_mode: pixel, re_count: 1
      interpolation: null     # bicubic, bilinear (the default)
      # timm.data.Mixup on the training batches (any data), with timm's SoftTargetCrossEntropy and
      # model.label_smoothing; needs an even batch_size (drop_last is then on)
      mixup: 0.0              # mixup alpha
      cutmix: 0.0             # cutmix alpha
      mixup_prob: 1.0         # probability of mixing a batch
      mixup_switch_prob: 0.5  # probability of cutmix rather than mixup when both are on
      mixup_mode: batch       # batch, pair or elem
    optim:
      ema_decay: null         # EMA of the weights (timm ModelEmaV3); validation runs the EMA network
      layer_decay: null       # layer-wise lr decay (timm create_optimizer_v2)

Metrics: ``val/loss``, ``val/acc1`` and, with at least 5 classes, ``val/acc5`` (fractions in [0, 1]). ``best.ckpt``
follows ``val/acc1``. With ``optim.ema_decay`` the metrics are the EMA network's, and the checkpoints
hold both networks (``model.*`` and ``model_ema.module.*``).
"""

from __future__ import annotations

import importlib
import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.utils import ModelEmaV3
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from glore.data.distant_clips import DistantClips
from glore.data.distant_digits import DistantDigits
from glore.data.imagefolder import RECIPE_KEYS, build_image_dataset, class_folders, count_classes
from glore.errors import ArgumentError, ConfigError
from glore.models import create_model
from glore.models.small import SMALL_MODELS
from .base import TaskModule
from .datamodule import TaskData, data_root
from .schema import ClassificationDataSection, Data, data_section, model_section

DATASETS = ("distant-digits", "distant-clips", "imagefolder")
IN_MEMORY_SETS = {"distant-digits": DistantDigits, "distant-clips": DistantClips}
# model keys consumed here; the rest of cfg["model"] go to the model builder
_MODEL_KEYS = ("name", "label_smoothing")


def _small_models() -> dict:
    return SMALL_MODELS


def build_model(model_cfg: dict) -> torch.nn.Module:
    """Build the network described by ``cfg["model"]`` (see the module docstring)."""
    model_cfg = dict(model_cfg)
    name = model_cfg.get("name")
    if not name or not isinstance(name, str):
        raise ArgumentError(f"model.name must name a model, got {name!r}")
    kwargs = {k: v for k, v in model_cfg.items() if k not in _MODEL_KEYS and v is not None}
    small = _small_models()
    if name in small or ":" in name:
        kwargs = {k: v for k, v in kwargs.items() if not (k == "pretrained" and v is False)}
    if name in small:
        weights = [k for k in ("checkpoint", "pretrained", "checkpoint_path") if k in kwargs]
        if weights:
            raise ArgumentError(f"model.{weights[0]}={kwargs[weights[0]]!r}: model.name={name!r} is a small network "
                                "built from scratch and loads no weights file (its options: width, in_chans, "
                                "num_classes, block and the block's options)")
        return small[name](**kwargs)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            builder = getattr(importlib.import_module(module_name), attr)
        except (ModuleNotFoundError, AttributeError) as exc:
            raise ArgumentError(f"unknown model {name!r}: cannot import {attr!r} from {module_name!r} ({exc})") from None
        return builder(**kwargs)

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
    """``model.num_classes``, or the number of class folders of an image dataset; at least 2."""
    num = cfg["model"].get("num_classes")
    data = data_section("classification", cfg["data"])
    if num is not None:
        if isinstance(num, bool) or not isinstance(num, int) or num < 2:
            raise ArgumentError(f"model.num_classes must be an integer >= 2 for classification, got {num!r}")
        return num
    if data.name not in DATASETS:
        raise ArgumentError(unknown_dataset(data.name))
    if data.name == "imagefolder":
        split = data.train_split
        root = data_root(cfg["data"], "a folder with train/ and val/")
        num = count_classes(root, split, layout=data.layout)
        if num < 2:
            raise ArgumentError(f"{os.path.join(root, split)!r} holds {num} class folder; classification needs "
                                "at least 2 (one folder per class)")
        return num
    raise ArgumentError(f"model.num_classes is required for data.name={data.name!r}")


def unknown_dataset(name) -> str:
    if name is None:
        return (f"data.name is not set; expected one of {', '.join(DATASETS)} (pass --config configs/... "
                "or data.name=...)")
    return f"unknown classification dataset data.name={name!r}; expected one of {', '.join(DATASETS)}"


def check_scale(scale) -> tuple[float, float]:
    """``data.scale`` as ``(min, max)`` area fractions with ``0 < min <= max <= 1``."""
    ok = (isinstance(scale, (list, tuple)) and len(scale) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale)
          and 0 < scale[0] <= scale[1] <= 1)
    if not ok:
        raise ConfigError(f"data.scale must be [min, max] area fractions with 0 < min <= max <= 1, got {scale!r}")
    return float(scale[0]), float(scale[1])


def recipe_options(data: ClassificationDataSection) -> dict:
    """``data.ratio``, ``rotation``, ``color_jitter`` and ``lighting`` (GCNet's ImageNet recipe), checked."""
    def number(key):
        value = getattr(data, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"data.{key} must be a non-negative number, got {value!r}")
        return float(value)

    ratio = data.ratio
    if not (isinstance(ratio, (list, tuple)) and len(ratio) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in ratio) and 0 < ratio[0] <= ratio[1]):
        raise ConfigError(f"data.ratio must be [min, max] aspect ratios with 0 < min <= max, got {ratio!r}")
    jitter = data.color_jitter
    values = jitter if isinstance(jitter, (list, tuple)) else [jitter]
    if len(values) not in (1, 3) or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1
                                        for v in values):
        raise ConfigError(f"data.color_jitter must be a number in [0, 1) or [brightness, contrast, saturation] "
                          f"of them, got {jitter!r}")
    return {"ratio": (float(ratio[0]), float(ratio[1])), "rotation": number("rotation"),
            "color_jitter": jitter, "lighting": number("lighting")}


def training_classes(root: str, train_split: str, split: str) -> list[str] | None:
    """The class folders of the training split, which the labels of ``split`` follow (None when the
    training split is absent: then ``split``'s own folders). A class of ``split`` that training lacks is
    refused; training classes that ``split`` lacks are named in a warning."""

    train_dir, split_dir = os.path.join(root, train_split), os.path.join(root, split)
    if split == train_split or not os.path.isdir(train_dir) or not os.path.isdir(split_dir):
        return None
    classes, own = class_folders(train_dir), class_folders(split_dir)
    extra = sorted(set(own) - set(classes))
    if extra:
        raise ArgumentError(f"{split_dir!r} has class folders that {train_dir!r} lacks: {extra}; the network has "
                            f"no output for them")
    missing = sorted(set(classes) - set(own))
    if missing:
        warnings.warn(f"{split_dir!r} has {len(own)} of the {len(classes)} training classes (missing: "
                      f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); its labels follow the "
                      "training classes", UserWarning, stacklevel=2)
    return classes


def network_stride(network: torch.nn.Module) -> int | None:
    """The output stride of a timm network's last feature map (``feature_info``), else None."""
    info = getattr(network, "feature_info", None)
    try:
        return int(info[-1]["reduction"])
    except (TypeError, KeyError, IndexError, ValueError):
        return None


MIXUP_KEYS = {"mixup": "mixup_alpha", "cutmix": "cutmix_alpha", "mixup_prob": "prob",
              "mixup_switch_prob": "switch_prob", "mixup_mode": "mode"}


def mixup_enabled(data: Data) -> bool:
    """Whether ``data.mixup`` or ``data.cutmix`` is on (only classification's section has them)."""
    return bool(getattr(data, "mixup", 0) or getattr(data, "cutmix", 0))


def build_mixup(data: ClassificationDataSection, num_classes: int, label_smoothing: float):
    """``timm.data.Mixup`` from ``data.mixup`` / ``data.cutmix`` (and ``mixup_prob``,
    ``mixup_switch_prob``, ``mixup_mode``), or ``None`` when both alphas are 0."""
    if not mixup_enabled(data):
        return None

    if data.batch_size % 2:
        raise ConfigError(f"data.mixup / data.cutmix mix pairs of samples: data.batch_size must be even, got "
                          f"{data.batch_size}")
    if "drop_last" in data.model_fields_set and not data.drop_last:
        raise ConfigError("data.mixup / data.cutmix need every batch even: data.drop_last must be true (or left "
                          "out), got false")
    kwargs = {ours: getattr(data, key) for key, ours in MIXUP_KEYS.items() if getattr(data, key) is not None}
    try:
        return Mixup(**kwargs, label_smoothing=label_smoothing, num_classes=num_classes)
    except AssertionError as exc:
        raise ConfigError(f"timm's Mixup refuses {kwargs}: {exc}") from None


def build_ema(model: torch.nn.Module, optim_cfg: dict):
    """timm's ``ModelEmaV3`` of ``model`` with ``optim.ema_decay`` (and ``optim.ema_warmup``), or ``None``."""
    decay = optim_cfg.get("ema_decay")
    if decay is None:
        return None

    ema = ModelEmaV3(model, decay=float(decay), use_warmup=bool(optim_cfg.get("ema_warmup", False)))
    return ema.requires_grad_(False)


class ClassificationModule(TaskModule):
    """Cross-entropy (with optional label smoothing), top-1 / top-5 accuracy via torchmetrics."""

    monitor = "val/acc1"
    monitor_mode = "max"

    # how the network, the class count and the data keys come from the config; the video task swaps these
    network_builder = staticmethod(build_model)
    class_counter = staticmethod(resolve_num_classes)
    section = ClassificationDataSection

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        model_cfg = dict(self.cfg["model"])
        model_cfg["num_classes"] = self.num_classes = self.class_counter(self.cfg)
        # the checkpoint's config keeps the count, so that it rebuilds without the class folders
        self.hparams["cfg"]["model"]["num_classes"] = self.num_classes
        self.model = self.network_builder(model_cfg)
        data = data_section(self.section, self.cfg["data"])
        stride = network_stride(self.model)
        size = getattr(data, "image_size", None)
        if data.name == "imagefolder" and stride and size is not None and size < stride:
            raise ConfigError(f"data.image_size={size} is smaller than the output stride {stride} of "
                              f"model.name={model_cfg.get('name')!r}: its last stage would see a 1x1 map of mostly "
                              f"padding; use data.image_size >= {stride}")
        self.label_smoothing = float(model_section("classification", model_cfg).label_smoothing or 0.0)
        self.mixup = build_mixup(data, self.num_classes, self.label_smoothing) if mixup_enabled(data) else None
        self.model_ema = build_ema(self.model, self.cfg["optim"])
        # a torchmetrics mean (sum and count synced over processes): with ``self.log(sync_dist=True)``
        # Lightning averages the per-process sample counts as integers, which is wrong for shards of
        # different lengths (see glore.engine.loaders.evaluation_sampler)
        self.val_loss = MeanMetric()
        self.val_acc1 = MulticlassAccuracy(num_classes=self.num_classes, top_k=1, average="micro")
        self.val_acc5 = (
            MulticlassAccuracy(num_classes=self.num_classes, top_k=5, average="micro") if self.num_classes >= 5 else None
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.in_memory_layout(images))

    def optimizer_param_groups(self):
        return self.model       # the EMA copy is not trained; timm's group_matcher is the network's

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.model_ema is not None:
            self.model_ema.update(self.model, step=self.global_step)

    def evaluated_network(self) -> torch.nn.Module:
        """The network validation runs: the EMA of the weights when ``optim.ema_decay`` is set."""
        return self.model if self.model_ema is None else self.model_ema.module

    def in_memory_layout(self, images: torch.Tensor) -> torch.Tensor:
        """``trainer.channels_last``: images (4-d) and clips (5-d) in the channels-last layout, the
        faster convolution layout on CPU; the network's weights follow at the first batch. (Here
        rather than in ``on_after_batch_transfer``, which Lightning warns about beside a data module.)"""
        if not self.cfg["trainer"].get("channels_last"):
            return images
        layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(images.dim())
        if layout is None:
            return images
        if getattr(self, "_weights_layout", None) is not layout:
            self.model.to(memory_format=layout)
            if self.model_ema is not None:
                self.model_ema.to(memory_format=layout)
            self._weights_layout = layout
        return images.contiguous(memory_format=layout)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        if self.mixup is not None:
            # timm's Mixup draws from numpy: seeded from torch's per-batch generator, so a resumed run
            # mixes as an uninterrupted one would
            np.random.seed(int(torch.randint(2**31 - 1, ())))
            images, targets = self.mixup(images, labels)
            loss = SoftTargetCrossEntropy()(self(images).float(), targets)
        else:
            loss = F.cross_entropy(self(images).float(), labels, label_smoothing=self.label_smoothing)
        self.log_train_loss(loss, labels.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        logits = self.evaluated_network()(self.in_memory_layout(images)).float()
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

    section = ClassificationDataSection

    def __init__(self, data_cfg: dict, *, seed: int = 0, num_classes: int | None = None):
        super().__init__(data_cfg, seed=seed)
        self.num_classes = num_classes  # model.num_classes, checked against the folder's classes
        if mixup_enabled(self.data):    # mixup pairs the samples of a batch: no odd last batch
            self.data = self.data.model_copy(update={"drop_last": True})
        if self.data.name not in DATASETS:
            raise ArgumentError(unknown_dataset(self.data.name))

    def train_dataset(self):
        return self._dataset(self.data.train_split, train=True)

    def val_dataset(self):
        return self._dataset(self.data.val_split, train=False)

    def _dataset(self, split: str, *, train: bool):
        data = self.data
        if data.name in IN_MEMORY_SETS:
            return self.builtin_set(IN_MEMORY_SETS[data.name], split, train=train)

        root = data_root(self.data_cfg, "a folder with train/ and val/")
        classes = None
        if data.layout == "imagefolder" and not train:      # labels follow the training split's class folders
            classes = training_classes(root, data.train_split, split)
        return build_image_dataset(
            root, split, train=train, layout=data.layout, augment=data.augment, image_size=data.image_size,
            resize_size=data.resize_size, scale=check_scale(data.scale), hflip=data.hflip, classes=classes,
            **recipe_options(data),
            recipe={k: getattr(data, k) for k in RECIPE_KEYS if getattr(data, k) is not None},
        )

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        self._check_num_classes()

    def _check_num_classes(self) -> None:
        for dataset in (self.train_set, self.val_set):
            classes = getattr(dataset, "classes", None)
            if self.num_classes is None or classes is None:
                continue
            named = f"({', '.join(map(str, list(classes)[:5]))}{', ...' if len(classes) > 5 else ''})"
            if len(classes) > self.num_classes:
                raise ArgumentError(f"model.num_classes={self.num_classes} but the data has {len(classes)} classes "
                                    f"{named}; raise model.num_classes or leave it out to count the class folders")
            if dataset is self.train_set and len(classes) < self.num_classes:
                raise ArgumentError(f"model.num_classes={self.num_classes} but the training data has {len(classes)} "
                                    f"classes {named}: {self.num_classes - len(classes)} outputs would never be "
                                    f"trained and would count in val/acc5; set model.num_classes={len(classes)} or "
                                    "leave it out to count the class folders")


def build_module(cfg: dict) -> ClassificationModule:
    return ClassificationModule(cfg)


def build_datamodule(cfg: dict) -> ClassificationData:
    return ClassificationData(cfg["data"], seed=int(cfg.get("seed", 0)), num_classes=cfg["model"].get("num_classes"))
