"""Joint transforms for segmentation: ``t(image, target, instance) -> (image, target, instance)``.

``image`` is a float tensor ``(3, H, W)``, ``target`` a long tensor ``(H, W)`` of train ids,
``instance`` an optional integer tensor ``(H, W)`` (passed through geometric transforms, or None).
Images are resized bilinearly, label maps with nearest neighbour; padding uses 0 for the image
and the ignore index for the target (0 for instances). Randomness comes from ``torch``'s global
generator (seeded per worker by Lightning).
"""

from __future__ import annotations

from ..errors import ArgumentError
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .cityscapes import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pair_size(size, name: str) -> tuple[int, int]:
    """``size`` (an int or a pair) as ``(height, width)`` of positive ints; errors name ``name``."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, Sequence) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ArgumentError(f"{name} must be a positive int or a pair (height, width), got {size!r}")
    return int(size[0]), int(size[1])


def _resize_labels(x: torch.Tensor | None, size) -> torch.Tensor | None:
    if x is None:
        return None
    out = F.interpolate(x[None, None].float(), size=size, mode="nearest")[0, 0]
    return out.to(x.dtype)


class Compose:
    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, image, target, instance=None):
        for t in self.transforms:
            image, target, instance = t(image, target, instance)
        return image, target, instance

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class RandomScale:
    """Resize by a factor drawn uniformly from ``scale_range`` (``[0.5, 2]`` in both papers)."""

    def __init__(self, scale_range: Sequence[float] = (0.5, 2.0)):
        lo, hi = (float(v) for v in scale_range)
        if not 0 < lo <= hi:
            raise ArgumentError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
        self.scale_range = (lo, hi)

    def __call__(self, image, target, instance=None):
        lo, hi = self.scale_range
        s = lo + (hi - lo) * torch.rand(()).item()
        h, w = image.shape[-2:]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        return image, _resize_labels(target, size), _resize_labels(instance, size)

    def __repr__(self) -> str:
        return f"RandomScale(scale_range={self.scale_range})"


class RandomCrop:
    """Pad (image 0, target ``ignore_index``) to at least ``size``, then crop ``size`` at random."""

    def __init__(self, size: int | Sequence[int], *, ignore_index: int = IGNORE_INDEX):
        self.size = pair_size(size, "crop size")
        self.ignore_index = ignore_index

    def __call__(self, image, target, instance=None):
        ch, cw = self.size
        h, w = image.shape[-2:]
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        if ph or pw:
            image = F.pad(image, (0, pw, 0, ph), value=0.0)
            target = F.pad(target, (0, pw, 0, ph), value=self.ignore_index)
            if instance is not None:
                instance = F.pad(instance, (0, pw, 0, ph), value=0)
            h, w = image.shape[-2:]
        y = int(torch.randint(0, h - ch + 1, ()).item())
        x = int(torch.randint(0, w - cw + 1, ()).item())
        image = image[..., y:y + ch, x:x + cw]
        target = target[y:y + ch, x:x + cw]
        if instance is not None:
            instance = instance[y:y + ch, x:x + cw]
        return image, target, instance

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size})"


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, image, target, instance=None):
        if torch.rand(()).item() < self.p:
            image, target = image.flip(-1), target.flip(-1)
            instance = None if instance is None else instance.flip(-1)
        return image, target, instance

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, image, target, instance=None):
        if image.shape[0] != self.mean.shape[0]:
            raise ArgumentError(f"Normalize has {self.mean.shape[0]} channel statistics, got an image with "
                             f"{image.shape[0]} channels")
        return (image - self.mean) / self.std, target, instance

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


def build_seg_transforms(*, train: bool, crop_size: int | Sequence[int] = 769,
                         scale_range: Sequence[float] | None = (0.5, 2.0), hflip: bool = True,
                         mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                         ignore_index: int = IGNORE_INDEX) -> Compose:
    """Training: random scale, random crop (padded), flip, normalisation. Evaluation: normalisation."""
    steps = []
    if train:
        if scale_range is not None:
            steps.append(RandomScale(scale_range))
        if crop_size is not None:
            steps.append(RandomCrop(crop_size, ignore_index=ignore_index))
        if hflip:
            steps.append(RandomHorizontalFlip())
    steps.append(Normalize(mean, std))
    return Compose(steps)
