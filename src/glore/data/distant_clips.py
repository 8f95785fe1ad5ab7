"""``distant-clips``: the video analogue of ``distant-digits``/``select``, far apart in space *and* time.

Every clip is ``(1, T, canvas, canvas)``, black except for three flashes, each ``on_frames`` frames long:

- two handwritten digits (real 8x8 scans of scikit-learn's ``load_digits``, the same fixed
  train/val partition as :class:`glore.data.DistantDigits`), shown together, one at intensity
  ``bright`` and the other at ``dim``;
- a square marker, shown at another time, drawn at ``bright`` or ``dim``: it says which digit to report.

The label is the class of the digit whose intensity the marker shows (10 classes). Which digit is the
target, the marker's state, and whether the marker comes before or after the digits are fair coin flips;
flashes start on even frames, at random among those that keep the gap.

Distances. In space, every pair of objects is at least ``min_distance`` pixels apart (Chebyshev gap
between their boxes, as in ``distant-digits``). In time, the frames of the marker and those of the
digits are at least ``min_gap`` frames apart: the nearest marker frame and the nearest digit frame
differ by ``min_gap`` or more. A unit whose receptive field spans ``r`` frames sees frames that differ
by at most ``r - 1``, so ``min_gap >= r`` keeps it from seeing the marker and a digit together, and so
does ``min_distance >= k`` for a ``k x k`` spatial receptive field; here both hold.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import Dataset

from glore.errors import ArgumentError
from ._options import check_digit_options, check_int, check_split
from .distant_digits import SPLITS, _check_feasible, _place, source_digits

__all__ = ["DistantClips"]

DEFAULT_NUM_SAMPLES = {"train": 8000, "val": 2000}


@functools.lru_cache(maxsize=4)
def _generate(split, num_samples, num_frames, canvas, on_frames, min_gap, digit_size, marker_size,
          min_distance, bright, dim, seed):
    """The arrays ``(clips, labels, boxes, frames, digit_classes)`` of a split, made once per process
    for the same options (the video demo builds the same data for each of its four variants)."""
    sizes = [digit_size, digit_size, marker_size]
    _check_feasible(sizes, canvas, min_distance)
    src_images, src_labels = source_digits(split, digit_size=digit_size)

    rng = np.random.default_rng([seed, SPLITS.index(split), 7])
    clips = np.zeros((num_samples, 1, num_frames, canvas, canvas), dtype=np.float32)
    labels = np.zeros(num_samples, dtype=np.int64)
    boxes = np.zeros((num_samples, 3, 3), dtype=np.int64)
    frames = np.zeros((num_samples, 2), dtype=np.int64)
    classes = np.zeros((num_samples, 2), dtype=np.int64)
    latest = num_frames - on_frames          # last possible first frame of a flash
    for i in range(num_samples):
        for _ in range(20):      # far-apart layouts can be rare: up to 20 x 1000 draws
            placed = _place(rng, sizes, canvas, min_distance)
            if placed is not None:
                break
        if placed is None:
            raise RuntimeError(f"could not place objects on sample {i}; lower min_distance")
        # flashes start on even frames: the demo network's first conv (3 frames, stride 2) then
        # sees every flash through the same taps
        early = 2 * int(rng.integers(0, (latest - (on_frames - 1 + min_gap)) // 2 + 1))
        late = 2 * int(rng.integers(-(-(early + on_frames - 1 + min_gap) // 2), latest // 2 + 1))
        marker_first = bool(rng.integers(0, 2))
        t_marker, t_digits = (early, late) if marker_first else (late, early)
        a, b = rng.integers(0, len(src_labels), size=2)
        target_bright = bool(rng.integers(0, 2))
        levels = (bright, dim) if target_bright else (dim, bright)
        span = slice(t_digits, t_digits + on_frames)
        for k, (src, level) in enumerate(zip((a, b), levels)):
            t, l, s = placed[k]
            clips[i, 0, span, t:t + s, l:l + s] = src_images[src] * level
        t, l, s = placed[2]
        clips[i, 0, t_marker:t_marker + on_frames, t:t + s, l:l + s] = bright if target_bright else dim
        labels[i] = src_labels[a]
        classes[i] = src_labels[a], src_labels[b]
        boxes[i] = placed
        frames[i] = t_digits, t_marker
    return clips, labels, boxes, frames, classes


class DistantClips(Dataset):
    """Digits and a marker flashed far apart in space and time (see the module docstring).

    Items are ``(clip, label)``: a float32 tensor ``(1, num_frames, canvas, canvas)`` in ``[0, 1]`` and
    an int. The whole split is also :attr:`clips` ``(N, 1, T, H, W)`` and :attr:`labels` ``(N,)``
    (``images`` is an alias of ``clips``, so the demo's training loop reads both datasets alike).

    Args:
        split: ``"train"`` or ``"val"``; disjoint source scans and different draws.
        num_samples: clips to generate; default 8000 for train, 2000 for val.
        num_frames: frames per clip ``T``.
        canvas: frame side in pixels.
        on_frames: how many consecutive frames each flash lasts.
        min_gap: minimum difference, in frames, between a marker frame and a digit frame.
        digit_size, marker_size, min_distance, bright, dim: as in :class:`glore.data.DistantDigits`.
        seed: generation seed; the same arguments always give the same tensors.

    Attributes:
        clips, labels: the generated split.
        boxes: ``(N, 3, 3)`` ``(top, left, size)`` of the target digit, the other digit and the marker.
        frames: ``(N, 2)`` first frame of the digits' flash and of the marker's flash.
        digit_classes: ``(N, 2)`` classes of the target and the other digit.
    """

    num_classes = 10
    class_names = [str(d) for d in range(10)]     # the digit the marker points to

    def __init__(self, split: str = "train", *, num_samples: int | None = None, num_frames: int = 8,
                 canvas: int = 36, on_frames: int = 2, min_gap: int = 3, digit_size: int = 8,
                 marker_size: int = 4, min_distance: int = 13, bright: float = 1.0, dim: float = 0.45,
                 seed: int = 0):
        _, self.num_samples = check_split(split, num_samples, DEFAULT_NUM_SAMPLES)
        self.num_frames = check_int("num_frames", num_frames, 1)
        self.canvas = check_int("canvas", canvas, 1)
        self.on_frames = check_int("on_frames", on_frames, 1)
        self.min_gap = check_int("min_gap", min_gap, 1)
        vars(self).update(check_digit_options(digit_size=digit_size, marker_size=marker_size,
                                              min_distance=min_distance, bright=bright, dim=dim))
        self.seed = check_int("seed", seed, 0)
        self.split = split
        # two flashes min_gap apart, starting on even frames: the later one starts at or after
        # on_frames - 1 + min_gap rounded up to even
        need = 2 * -(-(on_frames - 1 + min_gap) // 2) + on_frames
        if need > num_frames:
            raise ArgumentError(f"num_frames={num_frames} is too short for two flashes of {on_frames} frames "
                             f"{min_gap} frames apart (need at least {need})")
        arrays = _generate(split, self.num_samples, self.num_frames, self.canvas, self.on_frames, self.min_gap,
                           self.digit_size, self.marker_size, self.min_distance, self.bright, self.dim, self.seed)
        # copies: a caller may change a dataset's tensors in place without reaching the cache
        self.clips, self.labels, self.boxes, self.frames, self.digit_classes = (
            torch.from_numpy(x.copy()) for x in arrays)

    @property
    def images(self) -> torch.Tensor:
        return self.clips

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int):
        return self.clips[index], int(self.labels[index])

    def get_batch(self, indices: torch.Tensor):
        """``(images, labels)`` of ``indices`` in one read: what ``DataLoader`` collates from the items
        (the engine's loaders use it, see ``glore.engine.loaders``)."""
        return self.clips[indices], self.labels[indices]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, num_samples={self.num_samples}, "
                f"num_frames={self.num_frames}, canvas={self.canvas}, min_gap={self.min_gap}, "
                f"min_distance={self.min_distance})")
