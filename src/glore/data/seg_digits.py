"""``seg-digits``: a segmentation set where a pixel's label depends on a distant region.

Each canvas holds ``num_digits`` handwritten digits (real scans from :func:`sklearn.datasets.load_digits`,
rescaled to ``digit_size``) at random, well separated places. One of them, the *key*, is framed by a
rectangle (drawn in the key's shade). Every pixel of every digit is labelled

- 1 ("match") if its digit matches the key (the key itself included),
- 2 ("other") otherwise,

and background pixels 0. Faint rim pixels of the digits (scan intensity between ``ignore_low`` and
``ignore_high``) are 255 (ignored), so that the labels do not hinge on an arbitrary threshold.

What "matches" means is the ``rule``:

- ``"shade"`` (default): every digit is drawn bright (1.0) or dim (``dim``); a digit matches when
  it has the key's shade. A digit's own shade is local evidence, the key's is not: without seeing
  the framed key a model can only guess (chance level on "match"/"other"). Learnable in CPU
  minutes; the ``make demo``-sized comparison in ``docs/segmentation.md`` uses it.
- ``"class"``: all digits bright; a digit matches when it is of the key's class (another scan of
  it). This needs recognising both digits and comparing them across the canvas: much slower to
  learn, kept for longer runs.

Samples are generated on the fly, deterministically from ``(seed, split, index)``. The train and val
splits draw their digits from disjoint sets of scans (the fixed partition of
:func:`glore.data.distant_digits.source_digits`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from glore.errors import ArgumentError
from ._options import check_int, check_open_unit, check_split

from .distant_digits import source_digits

CLASS_NAMES = ("background", "match", "other")
NUM_CLASSES = len(CLASS_NAMES)
IGNORE_INDEX = 255
RULES = ("shade", "class")
DEFAULT_NUM_SAMPLES = {"train": 2000, "val": 400}
_SPLIT_CODE = {"train": 1, "val": 2}
_MAX_TRIES = 2000


class SegDigits(Dataset):
    """Digits labelled by whether they match a framed key digit elsewhere on the canvas.

    Returns ``(image, target)``: ``image`` float ``(3, canvas, canvas)`` in [0, 1] (grey, the same in
    the three channels), ``target`` long ``(canvas, canvas)`` with 0 background, 1 match, 2 other,
    255 ignored.

    Args:
        split: ``train`` or ``val`` (disjoint source scans).
        num_samples: length of the split (default 2000 train, 400 val).
        canvas: image side in pixels.
        num_digits: digits per canvas, the key included (at least 2).
        digit_size: side of a rescaled digit.
        min_distance: minimum gap in pixels between two digit boxes (the key's frame included).
        p_match: probability that a non-key digit is of the key's class.
        classes: the digit classes drawn (default all ten; fewer make recognition, not the
            comparison, easier).
        rule: ``"shade"`` (match the key's shade) or ``"class"`` (match the key's digit class).
        dim: intensity of dim digits under the ``shade`` rule (bright ones are 1.0).
        seed: generation seed.
    """

    def __init__(self, split: str = "train", *, num_samples: int | None = None, canvas: int = 64,
                 num_digits: int = 4, digit_size: int = 12, min_distance: int = 4, p_match: float = 0.5,
                 ignore_low: float = 0.15, ignore_high: float = 0.4, classes=None, rule: str = "shade",
                 dim: float = 0.5, seed: int = 0):
        self.split, self.num_samples = check_split(split, num_samples, DEFAULT_NUM_SAMPLES)
        self.canvas = check_int("canvas", canvas, 8)
        self.num_digits = check_int("num_digits", num_digits, 2)
        self.digit_size = check_int("digit_size", digit_size, 4)
        self.min_distance = check_int("min_distance", min_distance, 0)
        if not (isinstance(p_match, (int, float)) and 0 <= p_match <= 1):
            raise ArgumentError(f"p_match must be a number in [0, 1], got {p_match!r}")
        if not 0 <= ignore_low <= ignore_high <= 1:
            raise ArgumentError(f"need 0 <= ignore_low <= ignore_high <= 1, got {ignore_low!r}, {ignore_high!r}")
        if rule not in RULES:
            raise ArgumentError(f"rule must be one of {list(RULES)}, got {rule!r}")
        self.dim = check_open_unit("dim", dim)
        self.rule = rule
        self.p_match = float(p_match)
        self.ignore_low, self.ignore_high = float(ignore_low), float(ignore_high)
        self.seed = check_int("seed", seed, 0)
        classes = tuple(range(10)) if classes is None else tuple(classes)
        if (len(classes) < 2 or len(set(classes)) != len(classes)
                or not all(isinstance(c, int) and 0 <= c <= 9 for c in classes)):
            raise ArgumentError(f"classes must be at least two distinct digits 0-9, got {classes!r}")
        self.classes = classes
        self.class_names = list(CLASS_NAMES)   # the labels' names (``classes`` are the digits drawn)
        box = self.digit_size + 4                                    # digit + frame margin
        if self.num_digits * (box + self.min_distance) ** 2 > 0.6 * self.canvas ** 2:
            raise ArgumentError(f"{self.num_digits} digits of size {self.digit_size} with min_distance "
                             f"{self.min_distance} do not fit on a {self.canvas}x{self.canvas} canvas; "
                             f"use a larger canvas or fewer/smaller digits")
        images, labels = source_digits(split, digit_size=self.digit_size)
        self._images = images
        self._by_class = [np.flatnonzero(labels == c) for c in range(10)]

    def __len__(self) -> int:
        return self.num_samples

    def _place(self, rng) -> list[tuple[int, int]]:
        """Top-left corners of the digit boxes (digit + frame margin), ``min_distance`` apart."""
        box = self.digit_size + 4
        for _ in range(_MAX_TRIES):                                  # restart when a layout jams
            places: list[tuple[int, int]] = []
            for _ in range(50 * self.num_digits):
                y, x = (int(v) for v in rng.integers(0, self.canvas - box + 1, size=2))
                if all(max(abs(y - py), abs(x - px)) >= box + self.min_distance for py, px in places):
                    places.append((y, x))
                    if len(places) == self.num_digits:
                        return places
        raise RuntimeError(f"could not place {self.num_digits} digits of size {self.digit_size} on a "
                           f"{self.canvas}px canvas (min_distance {self.min_distance})")

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """``(image (H, W) float32, target (H, W) int64, info)`` of sample ``index`` (no tensors)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for a split of {self.num_samples} samples")
        rng = np.random.default_rng([self.seed, _SPLIT_CODE[self.split], index])
        k = len(self.classes)
        key = int(rng.integers(k))
        key_class = self.classes[key]
        if self.rule == "class":
            classes, matches = [key_class], [True]
            for _ in range(self.num_digits - 1):
                match = bool(rng.random() < self.p_match)
                classes.append(key_class if match else self.classes[(key + int(rng.integers(1, k))) % k])
                matches.append(match)
            shades = [1.0] * self.num_digits
        else:
            classes = [self.classes[int(c)] for c in rng.integers(k, size=self.num_digits)]
            matches = [True] + [bool(m) for m in rng.random(self.num_digits - 1) < self.p_match]
            key_shade = 1.0 if rng.random() < 0.5 else self.dim
            other_shade = self.dim if key_shade == 1.0 else 1.0
            shades = [key_shade if m else other_shade for m in matches]
        places = self._place(rng)
        image = np.zeros((self.canvas, self.canvas), dtype=np.float32)
        target = np.zeros((self.canvas, self.canvas), dtype=np.int64)
        s = self.digit_size
        for i, (cls, match, shade, (y, x)) in enumerate(zip(classes, matches, shades, places)):
            scan = self._images[rng.choice(self._by_class[cls])]
            scan = scan / max(float(scan.max()), 1e-6)
            y0, x0 = y + 2, x + 2
            image[y0:y0 + s, x0:x0 + s] = shade * scan
            label = 1 if match else 2
            region = target[y0:y0 + s, x0:x0 + s]
            region[scan >= self.ignore_high] = label
            region[(scan > self.ignore_low) & (scan < self.ignore_high)] = IGNORE_INDEX
            if i == 0:                                              # the key's frame, in its shade
                image[y, x:x + s + 4] = image[y + s + 3, x:x + s + 4] = shade
                image[y:y + s + 4, x] = image[y:y + s + 4, x + s + 3] = shade
        info = {"key_class": classes[0], "classes": classes, "matches": matches, "shades": shades,
                "places": places}
        return image, target, info

    def __getitem__(self, index: int):
        image, target, _ = self.sample(index)
        img = torch.from_numpy(image)[None].expand(3, -1, -1).contiguous()
        return img, torch.from_numpy(target)

    def extra_repr(self) -> str:
        return (f"split={self.split!r}, num_samples={self.num_samples}, canvas={self.canvas}, "
                f"num_digits={self.num_digits}, digit_size={self.digit_size}, rule={self.rule!r}, seed={self.seed}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
