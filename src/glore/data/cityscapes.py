"""Cityscapes (Cordts et al., CVPR 2016): the label table and a reader of the fine annotations.

The on-disk layout is the official one, listed through :class:`torchvision.datasets.Cityscapes`::

    root/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    root/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
    root/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png

(``gtFine/test`` may be absent: the test split is then read without labels.)

Label maps hold the 34 label ids of the table below; training uses the 19 train ids (255 = ignore).
Instance maps hold ``label_id * 1000 + k`` for instances of the classes that have instances and the
plain label id elsewhere.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import Cityscapes

from glore.errors import ArgumentError, MissingFileError
from .imagefolder import load_rgb

IGNORE_INDEX = 255


class CityscapesLabel(NamedTuple):
    name: str
    id: int
    train_id: int
    category: str
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


# The benchmark's label definitions (cityscapesScripts, helpers/labels.py).
LABELS: tuple[CityscapesLabel, ...] = tuple(CityscapesLabel(*row) for row in (
    ("unlabeled", 0, 255, "void", False, True, (0, 0, 0)),
    ("ego vehicle", 1, 255, "void", False, True, (0, 0, 0)),
    ("rectification border", 2, 255, "void", False, True, (0, 0, 0)),
    ("out of roi", 3, 255, "void", False, True, (0, 0, 0)),
    ("static", 4, 255, "void", False, True, (0, 0, 0)),
    ("dynamic", 5, 255, "void", False, True, (111, 74, 0)),
    ("ground", 6, 255, "void", False, True, (81, 0, 81)),
    ("road", 7, 0, "flat", False, False, (128, 64, 128)),
    ("sidewalk", 8, 1, "flat", False, False, (244, 35, 232)),
    ("parking", 9, 255, "flat", False, True, (250, 170, 160)),
    ("rail track", 10, 255, "flat", False, True, (230, 150, 140)),
    ("building", 11, 2, "construction", False, False, (70, 70, 70)),
    ("wall", 12, 3, "construction", False, False, (102, 102, 156)),
    ("fence", 13, 4, "construction", False, False, (190, 153, 153)),
    ("guard rail", 14, 255, "construction", False, True, (180, 165, 180)),
    ("bridge", 15, 255, "construction", False, True, (150, 100, 100)),
    ("tunnel", 16, 255, "construction", False, True, (150, 120, 90)),
    ("pole", 17, 5, "object", False, False, (153, 153, 153)),
    ("polegroup", 18, 255, "object", False, True, (153, 153, 153)),
    ("traffic light", 19, 6, "object", False, False, (250, 170, 30)),
    ("traffic sign", 20, 7, "object", False, False, (220, 220, 0)),
    ("vegetation", 21, 8, "nature", False, False, (107, 142, 35)),
    ("terrain", 22, 9, "nature", False, False, (152, 251, 152)),
    ("sky", 23, 10, "sky", False, False, (70, 130, 180)),
    ("person", 24, 11, "human", True, False, (220, 20, 60)),
    ("rider", 25, 12, "human", True, False, (255, 0, 0)),
    ("car", 26, 13, "vehicle", True, False, (0, 0, 142)),
    ("truck", 27, 14, "vehicle", True, False, (0, 0, 70)),
    ("bus", 28, 15, "vehicle", True, False, (0, 60, 100)),
    ("caravan", 29, 255, "vehicle", True, True, (0, 0, 90)),
    ("trailer", 30, 255, "vehicle", True, True, (0, 0, 110)),
    ("train", 31, 16, "vehicle", True, False, (0, 80, 100)),
    ("motorcycle", 32, 17, "vehicle", True, False, (0, 0, 230)),
    ("bicycle", 33, 18, "vehicle", True, False, (119, 11, 32)),
    ("license plate", -1, -1, "vehicle", False, True, (0, 0, 142)),
))

ID_TO_LABEL = {label.id: label for label in LABELS if label.id >= 0}
# the 19 evaluated classes, in train-id order
TRAIN_LABELS: tuple[CityscapesLabel, ...] = tuple(
    sorted((label for label in LABELS if not label.ignore_in_eval), key=lambda label: label.train_id))
CLASS_NAMES: tuple[str, ...] = tuple(label.name for label in TRAIN_LABELS)
NUM_CLASSES = len(TRAIN_LABELS)
# the 7 evaluated categories (those with at least one evaluated class), in table order
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(label.category for label in TRAIN_LABELS))
# palette of train ids (index 255 -> black)
TRAIN_ID_COLORS = np.zeros((256, 3), dtype=np.uint8)
for _label in TRAIN_LABELS:
    TRAIN_ID_COLORS[_label.train_id] = _label.color


def id_to_train_id_lut() -> np.ndarray:
    """A 256-entry lookup table: label id -> train id (255 = ignore), -1 for ids not in the table."""
    lut = np.full(256, -1, dtype=np.int16)
    for label in ID_TO_LABEL.values():
        lut[label.id] = label.train_id if label.train_id >= 0 else IGNORE_INDEX
    return lut


def train_id_to_id_lut() -> np.ndarray:
    """A 256-entry lookup table: train id -> label id (0, "unlabeled", for 255 and unused ids)."""
    lut = np.zeros(256, dtype=np.uint8)
    for label in TRAIN_LABELS:
        lut[label.train_id] = label.id
    return lut


def label_ids_to_train_ids(label_ids: np.ndarray, *, source: str = "label map") -> np.ndarray:
    """Map a label-id array to train ids; ids outside the table raise an error naming ``source``."""
    label_ids = np.asarray(label_ids)
    lut = id_to_train_id_lut()
    if label_ids.size and (label_ids.min() < 0 or label_ids.max() > 255):
        bad = sorted({int(v) for v in np.unique(label_ids) if v < 0 or v > 255})[:10]
        raise ArgumentError(f"{source}: label ids {bad} are outside the Cityscapes table (ids 0-33)")
    out = lut[label_ids]
    if (out < 0).any():
        bad = sorted(int(v) for v in np.unique(label_ids[out < 0]))[:10]
        raise ArgumentError(f"{source}: label ids {bad} are outside the Cityscapes table "
                         f"(expected ids 0-{max(ID_TO_LABEL)})")
    return out.astype(np.uint8)


def colorize(train_ids: np.ndarray | torch.Tensor) -> Image.Image:
    """An RGB image of a train-id map in the benchmark's colours (ignore -> black)."""
    if isinstance(train_ids, torch.Tensor):
        train_ids = train_ids.detach().cpu().numpy()
    arr = np.asarray(train_ids).astype(np.int64)
    return Image.fromarray(TRAIN_ID_COLORS[np.clip(arr, 0, 255)])


class CityscapesSegmentation(torch.utils.data.Dataset):
    """Cityscapes fine annotations as ``(image, target)`` or ``(image, target, instance_ids)``.

    ``image`` is a float tensor ``(3, H, W)`` in [0, 1] (before ``transform``), ``target`` a long tensor
    of train ids (255 = ignore), ``instance_ids`` an int32 tensor of the ``*_instanceIds.png`` values.
    ``transform(image, target, instance_ids)`` (see :mod:`glore.data.seg_transforms`) returns the
    three, ``instance_ids`` possibly None.

    The ``test`` split may come without ``gtFine/test`` (the benchmark withholds its annotations): its
    images are then read unlabelled, every target pixel 255 and every instance id 0.

    Args:
        root: the dataset folder holding ``leftImg8bit/`` and ``gtFine/``.
        split: ``train``, ``val`` or ``test``.
        transform: a joint transform.
        return_instances: also return the instance ids (for iIoU).
    """

    SPLITS = ("train", "val", "test")

    def __init__(self, root: str | os.PathLike, split: str = "train", *, transform: Callable | None = None,
                 return_instances: bool = False):
        if split not in self.SPLITS:
            raise ArgumentError(f"split must be one of {list(self.SPLITS)}, got {split!r}")
        root = os.fspath(root)
        self.root, self.split = root, split
        self.class_names = list(CLASS_NAMES)
        # the test split's annotations are withheld by the benchmark: without gtFine/test it is read unlabelled
        self.labelled = not (split == "test" and not os.path.isdir(os.path.join(root, "gtFine", split)))
        for sub in ("leftImg8bit", "gtFine") if self.labelled else ("leftImg8bit",):
            path = os.path.join(root, sub, split)
            if not os.path.isdir(path):
                raise MissingFileError(f"Cityscapes split {split!r} is missing: no directory {path} "
                                        f"(expected root/leftImg8bit/{split} and root/gtFine/{split})")
        if self.labelled:
            target_type = ["semantic", "instance"] if return_instances else ["semantic"]
            base = Cityscapes(root, split=split, mode="fine", target_type=target_type)
            pairs = sorted(zip(base.images, base.targets))              # listdir order is not portable
        else:
            pattern = os.path.join(root, "leftImg8bit", split, "*", "*_leftImg8bit.png")
            pairs = [(image, []) for image in sorted(glob.glob(pattern))]
        self.images: list[str] = [image for image, _ in pairs]
        self.targets: list[list[str]] = [list(t) for _, t in pairs]
        if not self.images:
            raise MissingFileError(f"Cityscapes split {split!r} has no *_leftImg8bit.png images under "
                                    f"{os.path.join(root, 'leftImg8bit', split)}")
        for image, targets in zip(self.images, self.targets):
            for path in targets:
                if not os.path.isfile(path):
                    raise MissingFileError(f"annotation missing for {image}: expected {path}")
        self.transform = transform
        self.return_instances = return_instances
        self._lut = id_to_train_id_lut()

    def __len__(self) -> int:
        return len(self.images)

    def sample_name(self, index: int) -> str:
        """``<city>_<seq>_<frame>`` of sample ``index``."""
        return os.path.basename(self.images[index]).replace("_leftImg8bit.png", "")

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Read sample ``index`` without the transform, validating the files."""
        image_path = self.images[index]
        image = np.asarray(load_rgb(image_path))   # ImageReadError naming a corrupt file
        if self.labelled:
            target, instance = self._read_annotations(index, image.shape[:2])
        else:                                   # unlabelled test image: every pixel ignored
            target = np.full(image.shape[:2], IGNORE_INDEX, dtype=np.uint8)
            instance = torch.zeros(image.shape[:2], dtype=torch.int32) if self.return_instances else None
        image_t = torch.from_numpy(image.copy()).permute(2, 0, 1).float().div_(255)
        return image_t, torch.from_numpy(target.astype(np.int64)), instance

    def _read_annotations(self, index: int, image_size) -> tuple[np.ndarray, torch.Tensor | None]:
        """Train ids (and instance ids when ``return_instances``) of sample ``index``, validated."""
        image_path = self.images[index]
        label_path = self.targets[index][0]
        with Image.open(label_path) as lbl:
            label_ids = np.asarray(lbl)
        if label_ids.ndim != 2:
            raise ArgumentError(f"{label_path}: expected a single-channel label-id map, got shape {label_ids.shape}")
        if label_ids.shape != tuple(image_size):
            raise ArgumentError(f"{label_path}: label size {label_ids.shape[1]}x{label_ids.shape[0]} differs "
                             f"from image {image_path} size {image_size[1]}x{image_size[0]}")
        target = label_ids_to_train_ids(label_ids, source=label_path)
        instance = None
        if self.return_instances:
            inst_path = self.targets[index][1]
            with Image.open(inst_path) as inst:
                instance = np.asarray(inst).astype(np.int32)
            if instance.shape != label_ids.shape:
                raise ArgumentError(f"{inst_path}: instance map size {instance.shape[1]}x{instance.shape[0]} "
                                 f"differs from label map {label_path} size "
                                 f"{label_ids.shape[1]}x{label_ids.shape[0]}")
            instance = torch.from_numpy(instance)
        return target, instance

    def __getitem__(self, index: int):
        image, target, instance = self.load(index)
        if self.transform is not None:
            image, target, instance = self.transform(image, target, instance)
        if self.return_instances:
            return image, target, instance
        return image, target
