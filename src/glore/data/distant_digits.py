"""``distant-digits``: a relational task built from scikit-learn's handwritten digits.

Every image is one canvas holding two handwritten digits far apart (real 8x8 scans from
:func:`sklearn.datasets.load_digits`, optionally rescaled) and, for the ``select`` task, a square
marker far from both.

- ``select`` (default, 10 classes): one digit is drawn bright, the other dim; the marker is drawn
  bright or dim and says which of the two digits to report. The label is that digit's class. The
  cue is a property of the digit (its intensity), not its place, so a model blind to absolute
  position (GloRe, NL, GC) can use it. A network whose units never see the marker and a digit
  together before a global average pooling and a linear classifier can only add up per-region
  evidence; it cannot make the choice and reports one of the two digits (about 55% accuracy).
- ``same`` (2 classes, balanced): are the two digits of the same class? Both are drawn bright and
  there is no marker. Much slower to learn; kept for research.

The whole split is generated once, deterministically from ``seed``, and held as one tensor. The
train and validation splits draw their digits from disjoint sets of source images (a fixed,
class-stratified partition of the 1,797 scans that does not depend on ``seed``).

Distances are Chebyshev gaps between pixel boxes: two boxes are ``d`` apart when the nearest two of
their pixels differ by ``d`` along at least one axis. A ``k x k`` window (a receptive field of size
``k``) covers pixels of both boxes only if ``d <= k - 1``, so ``min_distance >= k`` keeps any such
unit from seeing both.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch.utils.data import Dataset

from glore.errors import ArgumentError
from ._options import check_digit_options, check_int, check_split

TASKS = ("select", "same")
SPLITS = ("train", "val")
DEFAULT_NUM_SAMPLES = {"train": 12000, "val": 3000}
_SPLIT_SEED = 20190616          # fixes the train/val partition of the source scans, whatever ``seed``
_MAX_TRIES = 1000


def source_digits(split: str, *, digit_size: int = 8, val_fraction: float = 0.25):
    """Return ``(images (n, s, s) float32 in [0, 1], labels (n,) int64)`` of one split's source scans.

    The partition is class-stratified and fixed: train and val never share a scan.
    """

    if split not in SPLITS:
        raise ArgumentError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if not (isinstance(val_fraction, float) and 0 < val_fraction < 1):
        raise ArgumentError(f"val_fraction must be a float in (0, 1), got {val_fraction!r}")
    raw = load_digits()
    images = raw.images.astype(np.float32) / 16.0
    labels = raw.target.astype(np.int64)
    rng = np.random.default_rng(_SPLIT_SEED)
    chosen = []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * val_fraction))
        chosen.append(idx[:n_val] if split == "val" else idx[n_val:])
    chosen = np.sort(np.concatenate(chosen))
    images, labels = images[chosen], labels[chosen]
    if digit_size != 8:
        t = torch.nn.functional.interpolate(torch.from_numpy(images)[:, None], size=(digit_size,) * 2,
                                            mode="bilinear", align_corners=False, antialias=True)
        images = t[:, 0].clamp_(0, 1).numpy()
    return images, labels


def box_gap(a, b) -> int:
    """Chebyshev gap between boxes ``(top, left, size)``: pixels apart along the farther axis."""
    gaps = []
    for axis in (0, 1):
        lo_a, hi_a = a[axis], a[axis] + a[2] - 1
        lo_b, hi_b = b[axis], b[axis] + b[2] - 1
        gaps.append(max(0, lo_b - hi_a, lo_a - hi_b))
    return max(gaps)


def _place(rng, sizes, canvas: int, min_distance: int):
    """Random top-left corners for boxes of ``sizes``, pairwise at least ``min_distance`` apart."""
    for _ in range(_MAX_TRIES):
        boxes = [(int(rng.integers(0, canvas - s + 1)), int(rng.integers(0, canvas - s + 1)), s)
                 for s in sizes]
        if all(box_gap(boxes[i], boxes[j]) >= min_distance
               for i in range(len(boxes)) for j in range(i + 1, len(boxes))):
            return boxes
    return None


def _check_feasible(sizes, canvas: int, min_distance: int) -> None:
    """Fail early, naming the numbers, when the boxes cannot fit ``min_distance`` apart."""
    rng = np.random.default_rng(0)
    if any(s > canvas for s in sizes) or _place(rng, sizes, canvas, min_distance) is None:
        # the tightest layout is along a diagonal/axis: sizes + gaps must fit in the canvas
        need = sum(sorted(sizes)[-2:]) + min_distance if len(sizes) == 2 else None
        hint = f" (two boxes need at least {need})" if need else ""
        raise ArgumentError(
            f"canvas={canvas} is too small for boxes of sizes {list(sizes)} kept min_distance="
            f"{min_distance} apart{hint}; enlarge canvas or lower min_distance/digit_size")


@functools.lru_cache(maxsize=4)
def _generate(split, task, num_samples, canvas, digit_size, marker_size, min_distance, bright, dim,
              val_fraction, seed):
    """The arrays ``(images, labels, boxes, digit_classes)`` of a split, made once per process for the
    same options (``make demo`` builds the same data for each of its four variants)."""
    sizes = [digit_size, digit_size] + ([marker_size] if task == "select" else [])
    _check_feasible(sizes, canvas, min_distance)
    src_images, src_labels = source_digits(split, digit_size=digit_size, val_fraction=val_fraction)
    by_class = [np.flatnonzero(src_labels == c) for c in range(10)]

    rng = np.random.default_rng([seed, SPLITS.index(split), TASKS.index(task)])
    images = np.zeros((num_samples, 1, canvas, canvas), dtype=np.float32)
    labels = np.zeros(num_samples, dtype=np.int64)
    boxes = np.zeros((num_samples, 3, 3), dtype=np.int64)
    classes = np.zeros((num_samples, 2), dtype=np.int64)
    for i in range(num_samples):
        placed = _place(rng, sizes, canvas, min_distance)
        if placed is None:      # feasible but unlucky for this many tries: very unlikely
            raise RuntimeError(f"could not place objects on sample {i}; lower min_distance")
        if task == "select":
            a, b = rng.integers(0, len(src_labels), size=2)
            target_bright = bool(rng.integers(0, 2))
            levels = (bright, dim) if target_bright else (dim, bright)
            for k, (src, level) in enumerate(zip((a, b), levels)):
                t, l, s = placed[k]
                images[i, 0, t:t + s, l:l + s] = src_images[src] * level
            t, l, s = placed[2]
            images[i, 0, t:t + s, l:l + s] = bright if target_bright else dim
            classes[i] = src_labels[a], src_labels[b]
            labels[i] = src_labels[a]
            boxes[i] = placed
        else:
            same = bool(rng.integers(0, 2))
            c1 = int(rng.integers(0, 10))
            c2 = c1 if same else int((c1 + rng.integers(1, 10)) % 10)
            a = rng.choice(by_class[c1])
            b = rng.choice(by_class[c2][by_class[c2] != a])
            for k, src in enumerate((a, b)):
                t, l, s = placed[k]
                images[i, 0, t:t + s, l:l + s] = src_images[src] * bright
            classes[i] = c1, c2
            labels[i] = int(same)
            boxes[i, :2] = placed
    return images, labels, boxes, classes


class DistantDigits(Dataset):
    """Handwritten digits placed far apart on one canvas (see the module docstring).

    Items are ``(image, label)``: a float32 tensor ``(1, canvas, canvas)`` in ``[0, 1]`` and an int.
    The whole split is also available as :attr:`images` ``(N, 1, H, W)`` and :attr:`labels` ``(N,)``.

    Args:
        split: ``"train"`` or ``"val"``; they use disjoint source scans and different draws.
        task: ``"select"`` (10 classes) or ``"same"`` (2 classes).
        num_samples: images to generate; default 12000 for train, 3000 for val.
        canvas: canvas side in pixels.
        digit_size: side of each digit in pixels (the scans are 8x8; other sizes are resampled).
        marker_size: side of the square marker (``select`` only).
        min_distance: minimum Chebyshev gap, in pixels, between any two objects on a canvas.
        bright, dim: intensities of the bright and the dim digit (and of the marker's two states).
        val_fraction: share of the source scans reserved for ``val``.
        seed: generation seed; the same arguments always give the same tensors.

    Attributes:
        images, labels: the generated split.
        boxes: ``(N, 3, 3)`` int64 ``(top, left, size)`` of the target digit, the other digit and the
            marker (``select``; for ``same`` the first two are the digits and the third is zeros).
        digit_classes: ``(N, 2)`` classes of the two digits, in the order of ``boxes``.
        num_classes: 10 for ``select``, 2 for ``same``.
        class_names: the labels' names: the digits ``"0"`` .. ``"9"`` (``select``), ``"different"``
            and ``"same"`` (``same``).
    """

    def __init__(self, split: str = "train", *, task: str = "select", num_samples: int | None = None,
                 canvas: int = 48, digit_size: int = 8, marker_size: int = 4, min_distance: int = 14,
                 bright: float = 1.0, dim: float = 0.45, val_fraction: float = 0.25, seed: int = 0):
        if task not in TASKS:
            raise ArgumentError(f"task must be one of {list(TASKS)}, got {task!r}")
        _, self.num_samples = check_split(split, num_samples, DEFAULT_NUM_SAMPLES)
        self.canvas = check_int("canvas", canvas, 1)
        vars(self).update(check_digit_options(digit_size=digit_size, marker_size=marker_size,
                                              min_distance=min_distance, bright=bright, dim=dim))
        self.seed = check_int("seed", seed, 0)
        self.split, self.task = split, task
        self.num_classes = 10 if task == "select" else 2
        self.class_names = [str(d) for d in range(10)] if task == "select" else ["different", "same"]

        arrays = _generate(split, task, self.num_samples, self.canvas, self.digit_size, self.marker_size,
                           self.min_distance, self.bright, self.dim, float(val_fraction), self.seed)
        # copies: a caller may change a dataset's tensors in place without reaching the cache
        self.images, self.labels, self.boxes, self.digit_classes = (torch.from_numpy(x.copy()) for x in arrays)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int):
        return self.images[index], int(self.labels[index])

    def get_batch(self, indices: torch.Tensor):
        """``(images, labels)`` of ``indices`` in one read: what ``DataLoader`` collates from the items
        (the engine's loaders use it, see ``glore.engine.loaders``)."""
        return self.images[indices], self.labels[indices]

    def extra_repr(self) -> str:
        return (f"split={self.split!r}, task={self.task!r}, num_samples={self.num_samples}, "
                f"canvas={self.canvas}, digit_size={self.digit_size}, min_distance={self.min_distance}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
