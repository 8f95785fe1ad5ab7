"""Object detection and instance segmentation: torchvision Faster / Mask R-CNN, COCO metrics.

Config (see ``configs/detection/*.yaml``)::

    task: detection
    model:                    # glore.models.create_detector options
      arch: maskrcnn          # or fasterrcnn, cascade_maskrcnn, cascade_rcnn
      backbone: resnet50
      block: gc               # null | glore | nl | snl | gc | se
      units: all              # GC in every block of c3-c5; {res4: [5]}: "+1" before c4's last block
      block_kwargs: {ratio: 0.0625}
      pretrained_backbone: true   # torchvision's ImageNet weights (trainable_layers 3)
      frozen_bn: false        # SyncBN with trainer.sync_batchnorm (GCNet's default); true: frozen BN
      num_classes: 91         # > the largest category id (labels are COCO category ids)
      min_size: 800           # ... and any other create_detector / torchvision option
      max_size: 1333
    data:
      name: coco              # or det-digits
      root: /data/coco
      train_images: train2017
      train_annotations: annotations/instances_train2017.json
      val_images: val2017
      val_annotations: annotations/instances_val2017.json
      batch_size: 2           # per process (16 = 8 GPUs x 2 in the paper)
      val_batch_size: 1
      num_workers: 4
      hflip: true
      options: {}             # det-digits: keyword options of DetDigits(split, **options)
      train_samples: 512      # det-digits split sizes
      val_samples: 128

Metrics: the 12 COCOeval numbers for ``bbox`` (and ``segm`` with Mask R-CNN) as fractions,
``val/bbox/ap`` (AP at IoU 0.50:0.95, ``best.ckpt`` follows it), ``val/bbox/ap50``, ``ap75``,
``ap_s``, ``ap_m``, ``ap_l``, ``ar1``, ``ar10``, ``ar100``, ``ar_s``, ``ar_m``, ``ar_l``; the same under
``val/segm/``. Training logs ``train/loss`` and each of torchvision's losses (``train/loss_classifier``...).

``evaluate`` options (``glore evaluate --opt name=value``): ``detections`` (the COCO results file to
write, default ``<output_dir>/detections.json``), ``limit`` (the first N images), ``device``,
``class_agnostic`` (also ``val/bbox_agnostic/...``: the boxes scored whatever their class),
``images`` (a folder without annotations, e.g. COCO test-dev: its detections are written for
submission, ``<stem>_bbox.json`` and ``<stem>_segm.json``, and no metrics computed) with
``image_info`` (the file listing its images' ids, e.g. ``image_info_test-dev2017.json``; default:
the ids are the file names' numbers).
"""

from __future__ import annotations

import os

import torch

from glore.data.coco import CocoDetectionSet, UnannotatedImages, detection_transforms
from glore.data.det_digits import DetDigits
from glore.errors import ArgumentError
from glore.metrics.coco import coco_evaluate, load_coco, to_coco_results, write_results
from glore.models.detection import create_detector
from .base import TaskModule, check_finite_input
from .datamodule import TaskData, data_root
from .schema import DetectionDataSection, model_section

DATASETS = ("coco", "det-digits")
_LIST_OPTIONS = ("returned_layers", "anchor_sizes", "min_size")   # create_detector options given as tuples


def build_detector(model_cfg: dict) -> torch.nn.Module:
    """``glore.models.create_detector`` from ``cfg["model"]``."""

    kwargs = dict(model_cfg)
    arch = model_section("detection", model_cfg).arch
    kwargs.pop("arch", None)
    backbone = kwargs.pop("backbone", None) or kwargs.pop("name", None) or "resnet50"
    kwargs.pop("name", None)
    for key in _LIST_OPTIONS:
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    try:
        return create_detector(arch, backbone, **kwargs)
    except TypeError as exc:
        raise ArgumentError(f"bad model options for create_detector: {exc}") from None


def _dataset_name(cfg: dict) -> str:
    name = cfg["data"].get("name")
    if name not in DATASETS:
        raise ArgumentError(f"unknown detection dataset data.name={name!r}; expected one of {', '.join(DATASETS)}")
    return name


def collate(batch):
    """Detection batches are lists: images of different sizes, one target dict each."""
    return tuple(zip(*batch))


def _gather(per_image: dict) -> dict:
    """``{image_id: results}`` of every process, merged (the same on all of them). The validation
    loader gives each image to one process (``glore.engine.loaders.evaluation_sampler``); merging by
    image id would count an image seen twice once anyway."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return per_image
    parts = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, per_image)
    merged = {}
    for part in parts:
        merged.update(part)
    return merged


def add_results(per_image: dict, outputs, targets) -> None:
    """Put each image's detections, in the COCO results format, in ``per_image`` under its id."""

    for output, target in zip(outputs, targets):
        image_id = int(target["image_id"])
        per_image[image_id] = to_coco_results([output], [image_id])


def merged_results(per_image: dict) -> tuple[list, list]:
    """``(image ids, COCO results)`` of every process (:func:`_gather`), in image-id order."""
    per_image = _gather(per_image)
    ids = sorted(per_image)
    return ids, [r for image_id in ids for r in per_image[image_id]]


def coco_metrics(ground_truth, results: list, image_ids, *, segm: bool, prefix: str = "val/",
                 class_agnostic: bool = False) -> dict:
    """``{prefix + "bbox/ap": ...}``: COCOeval's 12 numbers per IoU type over ``image_ids``; with
    ``class_agnostic`` also those of the boxes regardless of category (``bbox_agnostic/...``)."""

    out = {}
    for iou_type in ("bbox", "segm") if segm else ("bbox",):
        stats = coco_evaluate(ground_truth, results, iou_type, image_ids=image_ids)
        out.update({f"{prefix}{iou_type}/{name}": value for name, value in stats.items()})
    if class_agnostic:
        stats = coco_evaluate(ground_truth, results, "bbox", image_ids=image_ids, class_agnostic=True)
        out.update({f"{prefix}bbox_agnostic/{name}": value for name, value in stats.items()})
    return out


class DetectionModule(TaskModule):
    """torchvision's detection losses (summed) for training; COCO AP on the validation split."""

    monitor = "val/bbox/ap"
    monitor_mode = "max"

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        _dataset_name(self.cfg)
        self.model = build_detector(self.cfg["model"])
        self.segm = hasattr(self.model.roi_heads, "mask_predictor") and self.model.roi_heads.mask_predictor is not None
        self._val_results: dict = {}       # image id -> its COCO results

    def forward(self, images, targets=None):
        return self.model(list(images), None if targets is None else list(targets))

    def training_step(self, batch, batch_idx):
        images, targets = batch
        losses = self.model(list(images), list(targets))
        loss = sum(losses.values())
        n = len(images)
        self.log_train_loss(loss, n)
        for key, value in losses.items():
            self.log(f"train/{key}", value, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx):
        images, targets = batch
        add_results(self._val_results, self.model(list(images)), targets)

    def on_validation_epoch_end(self) -> None:
        ids, results = merged_results(self._val_results)
        self._val_results = {}
        values = coco_metrics(self.trainer.datamodule.val_ground_truth(), results, ids, segm=self.segm)
        for key, value in values.items():     # every process computed the same numbers
            self.log(key, value, prog_bar=key == self.monitor, sync_dist=False, rank_zero_only=False)


class DetectionData(TaskData):
    """Train / val loaders for ``cfg["data"]`` (a COCO folder or det-digits); batches are lists."""

    collate_fn = staticmethod(collate)
    section = DetectionDataSection

    def __init__(self, data_cfg: dict, *, masks: bool, seed: int = 0, num_classes: int | None = None):
        super().__init__(data_cfg, seed=seed)
        self.masks = bool(masks)
        self.num_classes = num_classes   # model.num_classes: the category ids must be below it
        self.name = _dataset_name({"data": self.data_cfg})
        self._val_gt = None

    def _coco_paths(self, split: str) -> tuple[str, str]:
        root = data_root(self.data_cfg, "a folder with the images and annotations/")
        images, annotations = getattr(self.data, f"{split}_images"), getattr(self.data, f"{split}_annotations")
        return os.path.join(root, images), os.path.join(root, annotations)

    def dataset(self, split: str, *, train: bool):
        if self.name == "det-digits":
            return self.builtin_set(DetDigits, split, train=train)

        images, annotations = self._coco_paths(split)
        transforms = detection_transforms(train=train, hflip=self.data.hflip)
        return CocoDetectionSet(images, annotations, transforms=transforms, masks=self.masks, train=train)

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        for dataset in (self.train_set, self.val_set):
            coco = getattr(dataset, "coco", None)
            if coco is None or not coco.cats or not self.num_classes:
                continue
            largest = max(coco.cats)
            if largest >= self.num_classes:
                raise ArgumentError(f"{dataset.ann_file}: category id {largest} ({coco.cats[largest].get('name')!r}) "
                                    f"needs model.num_classes > {largest}, got model.num_classes={self.num_classes} "
                                    "(labels are the category ids; 0 is the background)")

    def train_dataset(self):
        return self.dataset("train", train=True)

    def val_dataset(self):
        return self.dataset("val", train=False)

    def val_ground_truth(self):
        """The validation split's ground truth as a ``pycocotools`` ``COCO`` object."""

        if self._val_gt is None:
            self.setup("validate")
            source = self.val_set.to_coco() if self.name == "det-digits" else self.val_set.coco
            self._val_gt = load_coco(source)
        return self._val_gt


def build_module(cfg: dict) -> DetectionModule:
    return DetectionModule(cfg)


def build_datamodule(cfg: dict) -> DetectionData:
    model = model_section("detection", cfg["model"])
    return DetectionData(cfg["data"], masks=model.masks, seed=int(cfg.get("seed", 0)), num_classes=model.num_classes)


@torch.no_grad()
def evaluate(module: DetectionModule, datamodule: DetectionData, cfg: dict, *, detections: str | None = None,
             limit: int | None = None, device: str | None = None, class_agnostic: bool = False,
             images: str | None = None, image_info: str | None = None) -> dict:
    """COCO metrics of ``module`` on the validation split; writes the detections in the COCO results
    format (``segmentation`` as RLE) to ``detections`` (default ``<output_dir>/detections.json``).

    With ``images`` (a folder without annotations, e.g. COCO test-dev), no metrics: the detections of
    its images are written for submission instead (:func:`predict_folder`)."""

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = module.model.to(dev).eval()
    if images is not None:
        return predict_folder(model, datamodule, images, image_info=image_info, segm=module.segm, limit=limit,
                              device=dev, detections=detections or os.path.join(os.fspath(cfg["output_dir"]),
                                                                                "detections.json"))
    if image_info is not None:
        raise ArgumentError(f"image_info names the images of an images= folder; got image_info={image_info!r} "
                            f"without images")
    datamodule.setup("validate")
    dataset = datamodule.val_set
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    loader = datamodule.loader(torch.utils.data.Subset(dataset, range(n)), batch_size=datamodule.eval_batch_size())
    per_image = {}                 # in a process group each process has a shard: merged below
    for index, (images, targets) in enumerate(loader):
        check_finite_input((list(images), targets), index)
        add_results(per_image, model([image.to(dev) for image in images]), targets)
    ids, results = merged_results(per_image)
    path = write_results(results, detections or os.path.join(os.fspath(cfg["output_dir"]), "detections.json"))
    values = coco_metrics(datamodule.val_ground_truth(), results, ids, segm=module.segm,
                          class_agnostic=bool(class_agnostic))
    values["val/images"] = float(n)
    values["val/detections"] = float(len(results))
    print(f"detections written to {path}")
    return values


def predict_folder(model, datamodule: DetectionData, images: str, *, image_info: str | None, segm: bool,
                   detections: str, limit: int | None = None, device=None) -> dict:
    """Detections of every image of the folder ``images`` (ids from ``image_info`` or the file names,
    :class:`glore.data.coco.UnannotatedImages`) in the COCO results format, one file per IoU type as
    the COCO evaluation server takes them: ``<detections stem>_bbox.json`` (boxes) and, for Mask
    R-CNN, ``<detections stem>_segm.json`` (RLE masks, without the boxes)."""

    dataset = UnannotatedImages(images, image_info)
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    loader = datamodule.loader(torch.utils.data.Subset(dataset, range(n)), batch_size=datamodule.eval_batch_size())
    per_image = {}
    for index, (batch, targets) in enumerate(loader):
        check_finite_input((list(batch), targets), index)
        add_results(per_image, model([image.to(device) for image in batch]), targets)
    _, results = merged_results(per_image)
    stem = os.path.splitext(os.fspath(detections))[0]
    paths = {"bbox": write_results([{k: v for k, v in r.items() if k != "segmentation"} for r in results],
                                   f"{stem}_bbox.json")}
    if segm:
        paths["segm"] = write_results([{k: v for k, v in r.items() if k != "bbox"} for r in results],
                                      f"{stem}_segm.json")
    for path in paths.values():
        print(f"detections written to {path}")
    return {"test/images": float(n), "test/detections": float(len(results))}
