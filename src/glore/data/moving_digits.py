"""MovingDigits: a small built-in video set that needs reasoning across space and time.

Every clip shows two handwritten digits (sklearn's ``load_digits``, 8x8 images upscaled) on a black
canvas. Two tasks:

- ``same`` (default): one digit moves (straight line, bouncing off the borders), the other stays in
  place. Label 1 when the moving digit and the still digit are the same number, 0 otherwise. The model
  must find which object moves (time), then compare two distant objects (space).
- ``closer``: both digits move. Label 1 when they end closer together than they started, 0 when they end
  farther apart (the change in distance is at least ``margin`` pixels).

Samples are a pure function of ``(seed, split, index)``: the set needs no files and no download.
Train and test draw digit images from disjoint halves of ``load_digits`` (by index).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits   # ships with scikit-learn, no download
from torch.utils.data import Dataset

from glore.errors import ArgumentError

__all__ = ["MovingDigits"]

_TASKS = ("same", "closer")
_SPLITS = ("train", "val", "test")


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int64)


class MovingDigits(Dataset):
    """Two digits in an ``(C, T, H, W)`` clip; binary label (see the module docstring).

    Args:
        split: ``train`` (digit images with even index) or ``val`` / ``test`` (odd index; the two
            differ by their seeds).
        length: number of clips.
        task: ``same`` or ``closer``.
        num_frames: frames per clip ``T``.
        size: canvas side ``H = W``.
        scale: integer upscaling of the 8x8 digits (2 gives 16x16 digits).
        channels: 1 (grey) or 3 (the grey image repeated, for RGB models).
        speed: ``(min, max)`` speed of a moving digit in pixels per frame.
        margin: ``closer`` only: minimum change of the distance between the digits, in pixels.
        seed: base seed; clip ``i`` is drawn from ``numpy.random.default_rng([seed, split, i])``.
    """

    num_classes = 2
    _CLASS_NAMES = {"same": ["different", "same"], "closer": ["farther", "closer"]}

    def __init__(self, split: str = "train", *, length: int = 4096, task: str = "same",
                 num_frames: int = 8, size: int = 48, scale: int = 2, channels: int = 1,
                 speed: tuple[float, float] = (2.0, 4.0), margin: float = 4.0, seed: int = 0):
        if split not in _SPLITS:
            raise ArgumentError(f"split must be one of {list(_SPLITS)}, got {split!r}")
        if task not in _TASKS:
            raise ArgumentError(f"task must be one of {list(_TASKS)}, got {task!r}")
        for name, value in (("length", length), ("num_frames", num_frames), ("size", size),
                            ("scale", scale)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ArgumentError(f"{name} must be a positive integer, got {value!r}")
        if channels not in (1, 3):
            raise ArgumentError(f"channels must be 1 or 3, got {channels!r}")
        if size < 8 * scale * 2:
            raise ArgumentError(f"size must be at least {16 * scale} to hold two {8 * scale}px digits, "
                             f"got {size}")
        self.split, self.length, self.task = split, length, task
        self.class_names = list(self._CLASS_NAMES[task])
        self.num_frames, self.size, self.scale, self.channels = num_frames, size, scale, channels
        self.speed, self.margin, self.seed = (float(speed[0]), float(speed[1])), float(margin), seed
        images, targets = _load_digits()
        keep = np.arange(len(images)) % 2 == (0 if split == "train" else 1)
        self.images = np.kron(images[keep], np.ones((scale, scale), np.float32))
        self.targets = targets[keep]
        self._by_class = [np.flatnonzero(self.targets == c) for c in range(10)]
        self._split_id = _SPLITS.index(split)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for MovingDigits of length {self.length}")
        index %= self.length
        rng = np.random.default_rng([self.seed, self._split_id, index])
        label = index % 2                                 # balanced classes
        if self.task == "same":
            clip = self._same(rng, label)
        else:
            clip = self._closer(rng, label)
        clip = torch.from_numpy(clip)[None]               # (1, T, H, W)
        if self.channels == 3:
            clip = clip.expand(3, -1, -1, -1).contiguous()
        return clip, label

    # -- geometry ---------------------------------------------------------------------------------

    def _trajectory(self, rng: np.random.Generator, start: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        """Top-left corners ``(T, 2)`` of a digit moving at ``velocity``, reflected at the borders."""
        limit = self.size - 8 * self.scale
        pos = start[None] + velocity[None] * np.arange(self.num_frames)[:, None]
        period = 2 * limit
        pos = np.mod(pos, period)
        return np.where(pos > limit, period - pos, pos)

    def _velocity(self, rng: np.random.Generator) -> np.ndarray:
        angle = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(*self.speed)
        return speed * np.array([np.cos(angle), np.sin(angle)])

    def _render(self, digits: list[np.ndarray], paths: list[np.ndarray]) -> np.ndarray:
        side = 8 * self.scale
        clip = np.zeros((self.num_frames, self.size, self.size), np.float32)
        for image, path in zip(digits, paths):
            for t, (y, x) in enumerate(np.rint(path).astype(int)):
                region = clip[t, y:y + side, x:x + side]
                np.maximum(region, image, out=region)
        return clip

    def _same(self, rng: np.random.Generator, label: int) -> np.ndarray:
        first = int(rng.integers(10))
        second = first if label else int((first + rng.integers(1, 10)) % 10)
        a = self.images[rng.choice(self._by_class[first])]
        b = self.images[rng.choice(self._by_class[second])]
        limit = self.size - 8 * self.scale
        side = 8 * self.scale
        for _ in range(100):   # keep the digits apart in every frame (no occlusion)
            still = rng.uniform(0, limit, size=2)
            moving = self._trajectory(rng, rng.uniform(0, limit, size=2), self._velocity(rng))
            if np.all(np.abs(moving - still[None]).max(axis=1) >= side):
                break
        # the label is symmetric in the two digits: ``a`` always stays, ``b`` always moves
        paths = [np.repeat(still[None], self.num_frames, axis=0), moving]
        digits = [a, b]
        return self._render(digits, paths)

    def _closer(self, rng: np.random.Generator, label: int) -> np.ndarray:
        limit = self.size - 8 * self.scale
        idx = rng.integers(len(self.images), size=2)
        for _ in range(1000):
            paths = [self._trajectory(rng, rng.uniform(0, limit, size=2), self._velocity(rng))
                     for _ in range(2)]
            dist = np.linalg.norm(paths[0] - paths[1], axis=1)
            change = dist[-1] - dist[0]
            if abs(change) >= self.margin and (change < 0) == bool(label):
                break
        return self._render([self.images[i] for i in idx], paths)
