"""Video action recognition: cross-entropy training on clips; clip top-1 and video top-1 evaluation.

Config (see ``configs/video/*.yaml``)::

    model:
      name: resnet50_3d        # glore.models.video.VIDEO_MODELS (3D ones), or slow_only_r50 / slow_only_r101
      block: glore             # glore | nl | gc | null (baseline); Slow-only: also snl, se, and units: [2, 3] or all
      num_classes: 400         # inferred from the class folders of data.root/train_split when left out
      pretrained: null         # a 2D lite checkpoint inflated into the 3D weights (alias: inflate_from);
                               # Slow-only: a 2D ResNet state dict file, or true for timm's weights
      checkpoint: null         # a 3D checkpoint of the same model
      label_smoothing: 0.0
      # any other key goes to create_video_model: width_mult, dropout, in_channels, block_kwargs, ...
    data:
      name: kinetics           # or moving-digits
      root: /data/kinetics     # holds <train_split>/ and <val_split>/ class folders
      train_split: train
      val_split: val
      train_annotations: null  # optional CSV lists (path,label), paths relative to root/<split>
      val_annotations: null
      num_frames: 8
      stride: 8
      crop: 224
      scale: [256, 320]        # training short side, random in this range
      short_side: 256          # evaluation short side
      flip: true
      num_clips: 10            # clips averaged for video top-1 / top-5
      num_crops: 3             # crops per clip for video top-1 / top-5 (3: left, center, right)
      skip_unreadable: false
      batch_size: 8
      val_batch_size: null
      num_workers: 4
      options: {}              # moving-digits: keyword options of MovingDigits(split, **options)
      val_options: {}          # moving-digits: overrides of options for the validation split

Metrics, fractions in [0, 1]: ``val/loss`` and ``val/acc1`` on the center clip of every validation
video (clip top-1, picks ``best.ckpt``). :func:`evaluate` reports the same two and, for Kinetics
layouts, ``val/video_acc1`` and ``val/video_acc5`` (softmax scores of ``num_clips`` evenly spaced clips
x ``num_crops`` crops averaged: 10 x 3 by default), ``val/videos`` (videos seen) and
``data/unreadable`` (videos skipped).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from glore.data.moving_digits import MovingDigits
from glore.data.video import VideoFolder
from glore.data.video_transforms import eval_transform, train_transform
from glore.errors import ArgumentError
from glore.models.slow_only import SLOW_ONLY_MODELS, create_slow_only
from glore.models.video import VIDEO_MODELS, create_video_model
from .base import check_finite_input
from .classification import ClassificationModule
from .datamodule import TaskData, data_root
from .schema import VideoDataSection, data_section

DATASETS = ("kinetics", "moving-digits")
_MODEL_KEYS = ("name", "label_smoothing", "pretrained", "inflate_from")
_EVAL_OPTIONS = ("num_clips", "clips", "num_crops", "crops", "batch_size", "device", "limit_batches")


def build_model(model_cfg: dict) -> torch.nn.Module:
    """Build ``cfg["model"]`` with :func:`glore.models.create_video_model` (the GloRe paper's "lite"
    networks) or :func:`glore.models.slow_only.create_slow_only` (``slow_only_r50``, ``slow_only_r101``)."""

    model_cfg = dict(model_cfg)
    name = model_cfg.get("name")
    if not name or not isinstance(name, str):
        raise ArgumentError(f"model.name must name a video model, got {name!r}")
    pretrained = model_cfg.get("pretrained") or model_cfg.get("inflate_from")
    kwargs = {k: v for k, v in model_cfg.items() if k not in _MODEL_KEYS}
    if name.lower() in SLOW_ONLY_MODELS:
        return create_slow_only(name.lower(), pretrained=pretrained or False, **kwargs)
    if name.lower() not in VIDEO_MODELS:
        raise ArgumentError(f"unknown video model model.name={name!r}; expected one of "
                            f"{sorted(VIDEO_MODELS) + sorted(SLOW_ONLY_MODELS)}")
    return create_video_model(name, inflate_from=pretrained, **kwargs)


def _split_root(data: dict, split: str) -> str:
    return os.path.join(data_root(data, "a folder with train/ and val/"), str(split))


def resolve_num_classes(cfg: dict) -> int:
    num = cfg["model"].get("num_classes")
    if num is not None:
        return int(num)
    data = data_section("video", cfg["data"])
    if data.name == "moving-digits":
        return 2
    if data.name == "kinetics":
        folder = VideoFolder(_split_root(cfg["data"], data.train_split), annotations=data.train_annotations)
        return len(folder.classes)
    raise ArgumentError(f"model.num_classes is required for data.name={data.name!r}")


class VideoModule(ClassificationModule):
    """A video classifier trained on single clips; validation on the center clip (clip top-1)."""

    network_builder = staticmethod(build_model)
    class_counter = staticmethod(resolve_num_classes)
    section = VideoDataSection
    test_step = ClassificationModule.validation_step

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        # skipped videos, counted across the loader's worker processes (data.skip_unreadable)
        datamodule = getattr(self.trainer, "datamodule", None)
        if isinstance(datamodule, VideoData):
            self.log("data/unreadable", float(len(datamodule.unreadable())), on_epoch=True)


class VideoData(TaskData):
    """Train / val loaders for ``cfg["data"]``; ``multi_clip_dataloader`` for video top-1."""

    section = VideoDataSection

    def __init__(self, data_cfg: dict, *, seed: int = 0):
        super().__init__(data_cfg, seed=seed)
        name = self.data.name
        if name not in DATASETS:
            raise ArgumentError(f"unknown video dataset data.name={name!r}; expected one of {', '.join(DATASETS)}")

    @property
    def has_videos(self) -> bool:
        """Whether the data are videos from which several clips can be drawn (video top-1)."""
        return self.data.name == "kinetics"

    def _dataset(self, split: str, *, mode: str, num_crops: int = 1):
        data = self.data
        if data.name == "moving-digits":
            return self.builtin_set(MovingDigits, split, train=mode == "train")

        crop = int(data.crop)
        if mode == "train":
            transform = train_transform(crop=crop, scale=tuple(int(s) for s in data.scale), flip=data.flip)
        else:
            transform = eval_transform(crop=crop, short_side=int(data.short_side), num_crops=num_crops)
        annotations = data.train_annotations if mode == "train" else data.val_annotations
        classes = None
        if annotations is None and mode != "train":
            # label indices must follow the training classes even when a val folder lacks some
            train_root = _split_root(self.data_cfg, data.train_split)
            if os.path.isdir(train_root):
                classes = VideoFolder(train_root).classes
        return VideoFolder(
            _split_root(self.data_cfg, split), annotations=annotations, classes=classes,
            num_frames=int(data.num_frames), stride=int(data.stride), mode=mode, num_clips=int(data.num_clips),
            transform=transform, skip_unreadable=bool(data.skip_unreadable),
        )

    def train_dataset(self):
        return self._dataset(self.data.train_split, mode="train")

    def val_dataset(self):
        return self._dataset(self.data.val_split, mode="center")

    test_dataloader = TaskData.val_dataloader

    def multi_clip_dataloader(self, *, num_clips: int | None = None, num_crops: int = 1,
                              batch_size: int | None = None) -> DataLoader:
        """Items ``(views (K * num_crops, C, T, H, W), label)``: ``K = num_clips`` evenly spaced clips per
        video, each cut into ``num_crops`` crops (clip-major). The dataset is kept as ``multi_set``."""
        if not self.has_videos:
            raise ArgumentError(f"data.name={self.data.name!r} has single clips; multi-clip "
                             f"evaluation needs data.name='kinetics'")
        dataset = self._dataset(self.data.val_split, mode="multi", num_crops=num_crops)
        if num_clips is not None:
            dataset.num_clips = int(num_clips)
        self.multi_set = dataset
        batch = batch_size or max(1, self.eval_batch_size() // (dataset.num_clips * num_crops))
        return self.loader(dataset, batch_size=batch)

    def unreadable(self) -> set[str]:
        """Videos skipped as unreadable so far (``data.skip_unreadable``), worker processes included."""
        sets = (self.train_set, self.val_set, getattr(self, "multi_set", None))
        return set().union(*(getattr(d, "unreadable", set()) for d in sets if d is not None))


def build_module(cfg: dict) -> VideoModule:
    return VideoModule(cfg)


def build_datamodule(cfg: dict) -> VideoData:
    return VideoData(cfg["data"], seed=int(cfg.get("seed", 0)))


def _accuracy(num_classes: int, top_k: int):
    return MulticlassAccuracy(num_classes=num_classes, top_k=min(top_k, num_classes), average="micro")


@torch.no_grad()
def evaluate(module: VideoModule, datamodule: VideoData, cfg: dict, **options) -> dict:
    """Clip top-1 (center clip, center crop) and video top-1 / top-5 (``num_clips`` clips x
    ``num_crops`` crops, softmax scores averaged) as the GloRe and NLNet papers test, as fractions in
    [0, 1]: ``val/acc1`` (clip top-1, the number training logs), ``val/loss`` (its cross-entropy),
    ``val/video_acc1``, ``val/video_acc5``; ``val/videos`` counts the videos seen. In a process of an
    initialised ``torch.distributed`` group each process scores its own shard of the videos
    (:func:`~glore.engine.loaders.evaluation_sampler`) and the torchmetrics states are summed over the
    processes, so every video counts once.

    Options: ``num_clips`` (alias ``clips``, ``glore evaluate --clips``; default ``data.num_clips``, 10),
    ``num_crops`` (alias ``crops``, ``--opt num_crops=1``; default ``data.num_crops``, 3: left, center
    and right crops of ``data.crop`` at short side ``data.short_side``), ``batch_size`` (clips per
    forward pass), ``device`` (default: CUDA when available), ``limit_batches`` (the first batches only).
    ``data/unreadable`` counts the videos skipped with ``data.skip_unreadable`` (in any worker process
    of this process).
    """

    unknown = sorted(set(options) - set(_EVAL_OPTIONS))
    if unknown:
        raise ArgumentError(f"unknown video evaluation option(s) {unknown}; expected some of {list(_EVAL_OPTIONS)}")
    multi_view = sorted(k for k in ("num_clips", "clips", "num_crops", "crops") if options.get(k) is not None)
    if multi_view and not datamodule.has_videos:
        raise ArgumentError(f"evaluation option(s) {multi_view} need videos to draw clips from; "
                            f"data.name={cfg['data'].get('name')!r} holds single clips (evaluated on each clip)")
    device = torch.device(options.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    limit = options.get("limit_batches")
    batch_size = options.get("batch_size")
    model = module.model.to(device).eval()
    datamodule.setup("validate")

    def batches(loader):
        for i, batch in enumerate(loader):
            if limit is not None and i >= int(limit):
                break
            check_finite_input(batch, i)
            yield batch

    clip_acc1 = _accuracy(module.num_classes, 1).to(device)
    loss = MeanMetric().to(device)
    videos = SumMetric().to(device)
    loader = (datamodule.loader(datamodule.val_set, batch_size=int(batch_size))
              if batch_size else datamodule.val_dataloader())
    for clips, labels in batches(loader):
        logits = model(clips.to(device)).float()
        labels = labels.to(device)
        clip_acc1.update(logits, labels)
        loss.update(F.cross_entropy(logits, labels, reduction="none"))
        videos.update(labels.shape[0])
    total = int(videos.compute())
    if total == 0:
        raise ArgumentError("evaluation saw no validation clip (empty split or limit_batches=0)")
    result = {"val/acc1": float(clip_acc1.compute()), "val/loss": float(loss.compute()), "val/videos": total}

    if datamodule.has_videos:
        data = datamodule.data
        num_clips = int(options.get("num_clips") or options.get("clips") or data.num_clips)
        num_crops = int(options.get("num_crops") or options.get("crops") or data.num_crops)
        views = num_clips * num_crops
        per_video = max(1, int(batch_size) // views) if batch_size else None
        video_acc1 = _accuracy(module.num_classes, 1).to(device)
        video_acc5 = _accuracy(module.num_classes, 5).to(device)
        loader = datamodule.multi_clip_dataloader(num_clips=num_clips, num_crops=num_crops, batch_size=per_video)
        for clips, labels in batches(loader):
            b, k = clips.shape[:2]
            if k != views:
                raise ArgumentError(f"expected {num_clips} clips x {num_crops} crops = {views} views per video, "
                                 f"got {k}")
            scores = torch.softmax(model(clips.flatten(0, 1).to(device)).float(), dim=1)
            scores = scores.view(b, k, -1).mean(1)
            video_acc1.update(scores, labels.to(device))
            video_acc5.update(scores, labels.to(device))
        result.update({"val/video_acc1": float(video_acc1.compute()), "val/video_acc5": float(video_acc5.compute()),
                       "num_clips": num_clips, "num_crops": num_crops})
    result["data/unreadable"] = len(datamodule.unreadable())
    return result
