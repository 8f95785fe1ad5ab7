"""``det-digits``: a detection set where the class of every object is decided far away from it.

Each canvas holds ``num_digits`` handwritten digits (real scans from :func:`sklearn.datasets.load_digits`,
rescaled to ``digit_size``) and one *key*: a square (hollow, or filled with ``key_fill``) drawn bright
(1.0) or dim (``dim``). Every digit is drawn bright or dim at random and is an object of class

- ``rule="match"``: 1 ``match`` when it has the key's shade, 2 ``other`` otherwise;
- ``rule="key"``: 1 ``bright-key`` when the key is bright, 2 ``dim-key`` when it is dim (the class is
  the context's alone: every digit of a canvas has the same one, whatever its own shade).

With ``digit_shade`` every digit is drawn at that one shade instead, so under ``rule="key"`` the
digits carry nothing of the class at all. Its box is the tight box of its scan's pixels above
``mask_threshold``; its mask those pixels. A
digit's own shade is visible locally, the key's is not: every digit box is at least ``min_distance``
pixels (Chebyshev gap) from the key, so a detector whose box features never see the key cannot do
better than guessing between the two classes (``docs/detection.md`` works out the receptive fields).

Samples are generated on the fly, deterministically from ``(seed, split, index)``; train and val draw
their digits from disjoint scans (:func:`glore.data.distant_digits.source_digits`). Targets follow
torchvision's detection models (``boxes`` XYXY in pixels, ``labels``, ``masks``, ``image_id``);
:meth:`DetDigits.to_coco` gives the split as a COCO ``instances`` dict for COCO evaluation and
:func:`write_coco_tree` writes it as a COCO folder (PNG images + ``instances_<split>.json``).
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torch.utils.data import Dataset

from glore.errors import ArgumentError
from ._options import check_int, check_open_unit, check_split
from .distant_digits import source_digits

CATEGORIES = ({"id": 1, "name": "match"}, {"id": 2, "name": "other"})
KEY_CATEGORIES = ({"id": 1, "name": "bright-key"}, {"id": 2, "name": "dim-key"})
RULES = ("match", "key")
NUM_CLASSES = 3                       # background + match + other, for torchvision's detectors
CLASS_NAMES = ("__background__", "match", "other")   # by label id, torchvision's name for label 0
DEFAULT_NUM_SAMPLES = {"train": 512, "val": 128}
_SPLIT_CODE = {"train": 11, "val": 12}
_MAX_TRIES = 2000


def _gap(a, b) -> int:
    """Chebyshev gap between boxes ``(y, x, h, w)``: 0 when they touch or overlap."""
    dy = max(b[0] - (a[0] + a[2]), a[0] - (b[0] + b[2]), 0)
    dx = max(b[1] - (a[1] + a[3]), a[1] - (b[1] + b[3]), 0)
    return max(dy, dx)


class DetDigits(Dataset):
    """Digits classed by whether they share the shade of a far-away key square.

    Returns ``(image, target)``: ``image`` float ``(3, canvas, canvas)`` in [0, 1] (grey), ``target``
    a dict with ``boxes`` float ``(N, 4)`` XYXY, ``labels`` int64 ``(N,)`` (1 match, 2 other),
    ``masks`` uint8 ``(N, canvas, canvas)`` and ``image_id`` (``index + 1``).

    Args:
        split: ``train`` or ``val`` (disjoint source scans).
        num_samples: length of the split (default 512 train, 128 val).
        canvas: image side in pixels.
        num_digits: digits per canvas.
        digit_size: side of a rescaled digit.
        key_size: side of the key square (a 2-pixel outline, or filled with ``key_fill``).
        key_fill: fill the key square.
        rule: ``"match"`` (a digit's class: its shade equals the key's) or ``"key"`` (the key's shade).
        min_distance: minimum gap in pixels between the key and any digit.
        digit_gap: minimum gap between two digits.
        dim: intensity of dim digits and keys (bright ones are 1.0).
        digit_shade: draw every digit at this intensity instead of bright or dim at random.
        mask_threshold: scan intensity from which a pixel belongs to the digit.
        seed: generation seed.
    """

    def __init__(self, split: str = "train", *, num_samples: int | None = None, canvas: int = 96,
                 num_digits: int = 3, digit_size: int = 14, key_size: int = 10, min_distance: int = 32,
                 digit_gap: int = 4, dim: float = 0.5, mask_threshold: float = 0.3, seed: int = 0,
                 key_fill: bool = False, rule: str = "match", digit_shade: float | None = None):
        if rule not in RULES:
            raise ArgumentError(f"rule must be one of {list(RULES)}, got {rule!r}")
        self.rule, self.key_fill = rule, bool(key_fill)
        self.split, self.num_samples = check_split(split, num_samples, DEFAULT_NUM_SAMPLES)
        self.canvas = check_int("canvas", canvas, 16)
        self.num_digits = check_int("num_digits", num_digits, 1)
        self.digit_size = check_int("digit_size", digit_size, 4)
        self.key_size = check_int("key_size", key_size, 4)
        self.min_distance = check_int("min_distance", min_distance, 0)
        self.digit_gap = check_int("digit_gap", digit_gap, 0)
        self.dim, self.mask_threshold = check_open_unit("dim", dim), check_open_unit("mask_threshold", mask_threshold)
        if digit_shade is not None and (isinstance(digit_shade, bool) or digit_shade != 1):
            digit_shade = check_open_unit("digit_shade", digit_shade)     # (0, 1), or 1.0: bright
        self.digit_shade = None if digit_shade is None else float(digit_shade)
        self.seed = check_int("seed", seed, 0)
        # the key in a corner leaves an L-shaped band for the digits; it must hold one digit at least
        if self.key_size + self.min_distance + self.digit_size > self.canvas:
            raise ArgumentError(f"a {self.digit_size}px digit {self.min_distance}px from a {self.key_size}px key does "
                             f"not fit on a {self.canvas}px canvas; use a larger canvas or a smaller min_distance")
        self._images, _ = source_digits(split, digit_size=self.digit_size)
        self.class_names = list(CLASS_NAMES)

    def __len__(self) -> int:
        return self.num_samples

    def _layout(self, rng):
        """Key box and digit boxes ``(y, x, h, w)``; the key sits in a random corner zone."""
        c, k, s = self.canvas, self.key_size, self.digit_size
        zone = max(c // 8, 1)
        for _ in range(_MAX_TRIES):
            ky, kx = (int(v) for v in rng.integers(0, zone, size=2))
            if rng.random() < 0.5:
                ky = c - k - ky
            if rng.random() < 0.5:
                kx = c - k - kx
            key = (ky, kx, k, k)
            digits = []
            for _ in range(100 * self.num_digits):
                y, x = (int(v) for v in rng.integers(0, c - s + 1, size=2))
                box = (y, x, s, s)
                if _gap(box, key) >= self.min_distance and all(_gap(box, d) >= self.digit_gap for d in digits):
                    digits.append(box)
                    if len(digits) == self.num_digits:
                        return key, digits
        raise RuntimeError(f"could not place {self.num_digits} digits {self.min_distance}px from the key on a "
                           f"{c}px canvas; use fewer digits or a larger canvas")

    def sample(self, index: int) -> tuple[np.ndarray, list[dict]]:
        """``(image (H, W) float32, objects)``; each object has ``box`` (x1, y1, x2, y2), ``label``,
        ``mask`` (H, W) bool and ``shade``."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for a split of {self.num_samples} samples")
        rng = np.random.default_rng([self.seed, _SPLIT_CODE[self.split], index])
        key_shade = 1.0 if rng.random() < 0.5 else self.dim
        (ky, kx, k, _), boxes = self._layout(rng)
        image = np.zeros((self.canvas, self.canvas), dtype=np.float32)
        image[ky:ky + k, kx:kx + k] = key_shade
        if not self.key_fill:
            image[ky + 2:ky + k - 2, kx + 2:kx + k - 2] = 0.0
        objects = []
        for y, x, s, _ in boxes:
            shade = 1.0 if rng.random() < 0.5 else self.dim
            if self.digit_shade is not None:
                shade = self.digit_shade       # (the draw above keeps the layouts of the random-shade sets)
            scan = self._images[int(rng.integers(len(self._images)))]
            scan = scan / max(float(scan.max()), 1e-6)
            image[y:y + s, x:x + s] = shade * scan
            mask = np.zeros_like(image, dtype=bool)
            mask[y:y + s, x:x + s] = scan >= self.mask_threshold
            ys, xs = np.nonzero(mask)
            box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            label = (1 if shade == key_shade else 2) if self.rule == "match" else (1 if key_shade == 1.0 else 2)
            objects.append({"box": box, "label": label, "mask": mask, "shade": shade})
        return image, objects

    def __getitem__(self, index: int):
        image, objects = self.sample(index)
        img = torch.from_numpy(image)[None].expand(3, -1, -1).contiguous()
        target = {
            "boxes": torch.tensor([o["box"] for o in objects], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([o["label"] for o in objects], dtype=torch.int64),
            "masks": torch.from_numpy(np.stack([o["mask"] for o in objects])).to(torch.uint8)
            if objects else torch.zeros((0, self.canvas, self.canvas), dtype=torch.uint8),
            "image_id": index + 1,
        }
        return img, target

    def image_info(self, index: int) -> dict:
        return {"id": index + 1, "file_name": f"{self.split}_{index:05d}.png", "width": self.canvas,
                "height": self.canvas}

    def to_coco(self) -> dict:
        """The split as a COCO ``instances`` dict (masks as RLE, ``iscrowd`` 0)."""

        images, annotations = [], []
        for index in range(self.num_samples):
            images.append(self.image_info(index))
            _, objects = self.sample(index)
            for obj in objects:
                x1, y1, x2, y2 = obj["box"]
                rle = mask_utils.encode(np.asfortranarray(obj["mask"].astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")
                annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": obj["label"],
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(obj["mask"].sum()),
                                    "segmentation": rle, "iscrowd": 0})
        categories = CATEGORIES if self.rule == "match" else KEY_CATEGORIES
        return {"images": images, "annotations": annotations, "categories": [dict(c) for c in categories]}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, num_samples={self.num_samples}, canvas={self.canvas}, "
                f"num_digits={self.num_digits}, min_distance={self.min_distance}, rule={self.rule!r}, seed={self.seed})")


def write_coco_tree(dataset: DetDigits, root: str | os.PathLike) -> tuple[str, str]:
    """Write ``dataset`` as a COCO folder: ``<root>/<split>/*.png`` and
    ``<root>/annotations/instances_<split>.json``. Returns ``(image folder, annotation file)``."""

    root = os.fspath(root)
    image_dir = os.path.join(root, dataset.split)
    ann_file = os.path.join(root, "annotations", f"instances_{dataset.split}.json")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(os.path.dirname(ann_file), exist_ok=True)
    coco = dataset.to_coco()
    for index, info in enumerate(coco["images"]):
        image, _ = dataset.sample(index)
        Image.fromarray((image * 255).round().astype(np.uint8)).convert("RGB").save(
            os.path.join(image_dir, info["file_name"]))
    with open(ann_file, "w", encoding="utf-8") as handle:
        json.dump(coco, handle)
    return image_dir, ann_file
