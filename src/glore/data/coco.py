"""COCO-format detection data: ``instances_*.json`` + an image folder, checked, with v2 transforms.

:class:`CocoDetectionSet` reads the layout through ``torchvision.datasets.CocoDetection`` and
``wrap_dataset_for_transforms_v2`` (boxes as ``tv_tensors.BoundingBoxes``, masks as
``tv_tensors.Mask``, so ``torchvision.transforms.v2`` moves them with the image). On construction
every annotation is checked: an unknown ``category_id``, a box that is empty or extends outside its
image, or an image file that does not exist raises :class:`CocoFormatError` naming the annotation file,
the image file and the annotation id.

Targets are those of torchvision's detectors: ``boxes`` float ``(N, 4)`` XYXY, ``labels`` = the COCO
category ids (so ``num_classes`` must exceed the largest id: 91 for COCO), ``masks`` uint8
``(N, H, W)`` (with ``masks=True``) and ``image_id``. Crowd annotations (``iscrowd=1``) are left out
of the training targets; COCO evaluation reads them from the annotation file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import torch
from PIL import Image
from pycocotools.coco import COCO
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.datasets import CocoDetection, VisionDataset, wrap_dataset_for_transforms_v2
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from glore.errors import ArgumentError, GloreError, MissingFileError

BOX_TOLERANCE = 1.0   # pixels a box may pass the image border by (rounding in converted annotations)


class CocoFormatError(GloreError, ValueError):
    """An annotation file or image folder that does not hold valid COCO detection data."""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_coco_json(data, ann_file: str) -> None:
    """Raise :class:`CocoFormatError` for the first structural fault of a loaded COCO ``instances`` file
    (what ``pycocotools`` would fail on with a bare ``KeyError`` or ``TypeError``)."""
    if not isinstance(data, dict):
        raise CocoFormatError(f"{ann_file}: expected a JSON object with 'images', 'annotations' and 'categories', "
                              f"got a {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise CocoFormatError(f"{ann_file}: no {key!r} list; a COCO instances file has 'images', 'annotations' "
                                  "and 'categories'")
        if not isinstance(data[key], list):
            raise CocoFormatError(f"{ann_file}: {key!r} must be a list, got a {type(data[key]).__name__}")
    required = {"images": ("id", "file_name", "width", "height"),
                "annotations": ("id", "image_id", "category_id", "bbox"), "categories": ("id", "name")}
    for key, fields in required.items():
        for index, entry in enumerate(data[key]):
            missing = [f for f in fields if not isinstance(entry, dict) or f not in entry]
            if missing:
                name = f"id {entry.get('id')!r}" if isinstance(entry, dict) and "id" in entry else f"entry {index}"
                raise CocoFormatError(f"{ann_file}: {key} {name} lacks {', '.join(map(repr, missing))}; "
                                      f"expected {', '.join(fields)}")
    for info in data["images"]:
        for field in ("width", "height"):
            if isinstance(info[field], bool) or not isinstance(info[field], int) or info[field] < 1:
                raise CocoFormatError(f"{ann_file}: image id {info['id']!r} ({info['file_name']!r}): {field} must be "
                                      f"a positive integer, got {info[field]!r}")
    for category in data["categories"]:
        if category["id"] == 0:
            raise CocoFormatError(f"{ann_file}: category {category['name']!r} has id 0, the detectors' background "
                                  "label; number the categories from 1 (COCO: 1..90)")
    if not data["annotations"]:
        raise CocoFormatError(f"{ann_file}: 'annotations' is empty; there is nothing to train or evaluate on")


def load_coco_json(ann_file: str):
    """The checked content of a COCO ``instances`` file as a ``pycocotools`` ``COCO``; errors name the file."""

    try:
        with open(ann_file, encoding="utf-8") as handle:
            data = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CocoFormatError(f"{ann_file}: not a valid JSON file ({exc}); truncated or not an annotation "
                              "file?") from None
    check_coco_json(data, ann_file)
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):      # pycocotools prints progress
        coco.createIndex()
    return coco


def check_coco(coco, image_dir: str, ann_file: str) -> None:
    """Raise :class:`CocoFormatError` for the first bad image or annotation of ``coco`` (a ``COCO``)."""
    categories = set(coco.cats)
    for image_id, info in coco.imgs.items():
        path = os.path.join(image_dir, info.get("file_name", ""))
        ann_ids = [a["id"] for a in coco.imgToAnns.get(image_id, [])]
        if not os.path.isfile(path):
            raise CocoFormatError(f"{ann_file}: image id {image_id}: file {path!r} not found "
                                  f"(annotation ids {ann_ids})")
    for ann in coco.anns.values():
        info = coco.imgs.get(ann.get("image_id"))
        where = f"{ann_file}: annotation id {ann.get('id')}"
        if info is None:
            raise CocoFormatError(f"{where}: image id {ann.get('image_id')!r} is not in 'images'")
        where += f" (image {info.get('file_name')!r})"
        if ann.get("category_id") not in categories:
            raise CocoFormatError(f"{where}: unknown category_id {ann.get('category_id')!r}; "
                                  f"expected one of {sorted(categories)}")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise CocoFormatError(f"{where}: bbox must be [x, y, width, height] (numbers), got {bbox!r}")
        x, y, w, h = bbox
        width, height = info["width"], info["height"]
        if w <= 0 or h <= 0:
            raise CocoFormatError(f"{where}: bbox {bbox} has no area (width and height must be > 0)")
        if x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or x + w > width + BOX_TOLERANCE or y + h > height + BOX_TOLERANCE:
            raise CocoFormatError(f"{where}: bbox {bbox} (x, y, w, h) extends outside the {width}x{height} image")


def detection_transforms(*, train: bool, hflip: bool = True):
    """v2 transforms: (training) horizontal flip, then float images in [0, 1] and boxes cleaned of
    degenerate ones. Resizing to the detector's ``min_size`` / ``max_size`` is the model's job."""

    steps = [v2.ToImage()]
    if train and hflip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.SanitizeBoundingBoxes(min_size=1)]
    return v2.Compose(steps)


def checked_coco_detection(image_dir: str, coco):
    """``torchvision.datasets.CocoDetection`` over an already loaded and checked ``COCO`` (its own
    constructor would read the file again, unchecked)."""

    dataset = CocoDetection.__new__(CocoDetection)
    VisionDataset.__init__(dataset, image_dir)
    dataset.coco = coco
    dataset.ids = sorted(coco.imgs)
    return dataset


class CocoDetectionSet(Dataset):
    """COCO detection / instance segmentation images and targets.

    Args:
        image_dir: folder of the images (``file_name`` of the annotation file is relative to it).
        ann_file: the ``instances_*.json`` file.
        transforms: v2 transforms taking and returning ``(image, target)``; default
            :func:`detection_transforms` (``train`` picks the training version).
        masks: include instance masks (Mask R-CNN).
        train: drop crowd annotations from the targets and flip at random (default transforms).
    """

    def __init__(self, image_dir: str | os.PathLike, ann_file: str | os.PathLike, *, transforms=None,
                 masks: bool = True, train: bool = False):
        self.image_dir, self.ann_file = os.fspath(image_dir), os.fspath(ann_file)
        if not os.path.isfile(self.ann_file):
            raise MissingFileError(f"COCO annotation file not found: {self.ann_file!r}")
        if not os.path.isdir(self.image_dir):
            raise MissingFileError(f"COCO image folder not found: {self.image_dir!r}")
        base = checked_coco_detection(self.image_dir, load_coco_json(self.ann_file))
        check_coco(base.coco, self.image_dir, self.ann_file)
        self.coco = base.coco
        self.masks, self.train = bool(masks), bool(train)
        keys = ("image_id", "boxes", "labels", "iscrowd") + (("masks",) if self.masks else ())
        self.transforms = detection_transforms(train=train) if transforms is None else transforms
        self._data = wrap_dataset_for_transforms_v2(base, target_keys=keys)
        self.ids = list(base.ids)
        # names by label (the category id); ids no category uses stay None
        categories = {int(c["id"]): str(c.get("name", c["id"])) for c in self.coco.dataset.get("categories", [])}
        self.class_names = [None] * (max(categories, default=0) + 1)
        self.class_names[0] = "__background__"
        for category_id, name in categories.items():
            self.class_names[category_id] = name

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: int):
        image, target = self._data[index]
        height, width = image.height, image.width
        info = self.coco.imgs[self.ids[index]]
        if (width, height) != (info["width"], info["height"]):
            raise CocoFormatError(f"{self.ann_file}: image id {self.ids[index]} ({info['file_name']!r}) is "
                                  f"{width}x{height} but the annotation file declares width={info['width']}, "
                                  f"height={info['height']}; its boxes would not fit the image")
        if "boxes" not in target:                             # an image without annotations
            target["boxes"] = tv_tensors.BoundingBoxes(torch.zeros((0, 4)), format="XYXY",
                                                       canvas_size=(height, width))
            target["labels"] = torch.zeros((0,), dtype=torch.int64)
            target["iscrowd"] = torch.zeros((0,), dtype=torch.int64)
            if self.masks:
                target["masks"] = tv_tensors.Mask(torch.zeros((0, height, width), dtype=torch.uint8))
        if self.train:
            keep = torch.as_tensor(target["iscrowd"], dtype=torch.int64).reshape(-1) == 0
            for key in ("boxes", "labels", "masks"):
                if key in target:                            # (indexing drops the tv_tensor type)
                    kept = target[key][keep]
                    target[key] = tv_tensors.wrap(kept, like=target[key]) if key in ("boxes", "masks") else kept
        image, target = self.transforms(image, target)
        target.pop("iscrowd", None)
        target["image_id"] = int(target["image_id"])
        return image, target


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class UnannotatedImages(Dataset):
    """The images of a folder without annotations (COCO test-dev), with their COCO image ids.

    The ids come from ``image_info`` (the official ``image_info_test-dev2017.json``: its ``images``
    list, ``file_name`` -> ``id``) or, without it, from the file names (COCO's ``000000123456.jpg``).
    Items are ``(image, {"image_id": id})`` with the image a float ``(3, H, W)`` tensor in [0, 1].
    """

    def __init__(self, image_dir: str | os.PathLike, image_info: str | os.PathLike | None = None):
        self.image_dir = os.fspath(image_dir)
        if not os.path.isdir(self.image_dir):
            raise MissingFileError(f"image folder not found: {self.image_dir!r}")
        if image_info is not None:
            image_info = os.fspath(image_info)
            if not os.path.isfile(image_info):
                raise MissingFileError(f"image info file not found: {image_info!r}")
            with open(image_info, encoding="utf-8") as handle:
                images = json.load(handle).get("images")
            if not isinstance(images, list):
                raise CocoFormatError(f"{image_info}: expected a COCO file with an 'images' list, got none")
            self.items = [(int(info["id"]), os.path.join(self.image_dir, info["file_name"])) for info in images]
            missing = [path for _, path in self.items if not os.path.isfile(path)]
            if missing:
                raise CocoFormatError(f"{image_info}: {len(missing)} listed images are not in {self.image_dir!r}, "
                                      f"e.g. {os.path.basename(missing[0])!r}")
        else:
            names = sorted(n for n in os.listdir(self.image_dir) if n.lower().endswith(IMAGE_SUFFIXES))
            unnumbered = [n for n in names if not os.path.splitext(n)[0].isdigit()]
            if unnumbered:
                raise ArgumentError(f"image ids come from the file names (COCO's 000000123456.jpg) unless an "
                                    f"image_info file lists them; got {unnumbered[0]!r} in {self.image_dir!r}")
            self.items = [(int(os.path.splitext(n)[0]), os.path.join(self.image_dir, n)) for n in names]
        if not self.items:
            raise ArgumentError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.image_dir!r}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        image_id, path = self.items[index]
        with Image.open(path) as handle:
            image = TF.pil_to_tensor(handle.convert("RGB"))                   # (3, H, W) uint8
        return TF.to_dtype(image, torch.float32, scale=True), {"image_id": image_id}
