"""Clip transforms: the GloRe video recipe (random short-side scaling, 224 crop, flip; center crop).

Every transform takes and returns a clip tensor. Readers give ``uint8`` frames ``(T, H, W, C)``;
:class:`ToFloatClip` turns them into ``float32`` ``(C, T, H, W)`` in ``[0, 1]``, and the spatial
transforms below work on that layout (the last two dims are ``H, W``). The random ones take a
``torch.Generator`` (or use the global one), so a seeded pipeline is reproducible.
"""

from __future__ import annotations

from ..errors import ArgumentError
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "ToFloatClip", "ShortSideScale", "RandomShortSideScale", "CenterCrop", "RandomCrop", "MultiCrop",
    "RandomHorizontalFlip", "Normalize", "Compose", "train_transform", "eval_transform",
    "KINETICS_MEAN", "KINETICS_STD",
]

KINETICS_MEAN = (0.485, 0.456, 0.406)   # the ImageNet statistics the inflated 2D weights expect
KINETICS_STD = (0.229, 0.224, 0.225)


def _check_clip(name: str, clip: torch.Tensor) -> None:
    if not isinstance(clip, torch.Tensor) or clip.dim() != 4:
        shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise ArgumentError(f"{name} expects a clip (C, T, H, W), got {shape}")


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in ``[low, high]``."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


class Compose:
    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, clip):
        for t in self.transforms:
            clip = t(clip)
        return clip

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class ToFloatClip:
    """``uint8`` ``(T, H, W, C)`` frames -> ``float32`` ``(C, T, H, W)`` in ``[0, 1]``."""

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor) or frames.dim() != 4:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ArgumentError(f"ToFloatClip expects frames (T, H, W, C), got {shape}")
        clip = frames.permute(3, 0, 1, 2).float()
        return clip / 255.0 if frames.dtype == torch.uint8 else clip

    def __repr__(self) -> str:
        return "ToFloatClip()"


class ShortSideScale:
    """Resize so that the shorter side is ``size`` (bilinear, aspect ratio kept)."""

    def __init__(self, size: int):
        if not isinstance(size, int) or size <= 0:
            raise ArgumentError(f"size must be a positive integer, got {size!r}")
        self.size = size

    @staticmethod
    def resize(clip: torch.Tensor, size: int) -> torch.Tensor:
        _check_clip("ShortSideScale", clip)
        h, w = clip.shape[-2:]
        if min(h, w) == size:
            return clip
        if h <= w:
            new = (size, max(1, round(w * size / h)))
        else:
            new = (max(1, round(h * size / w)), size)
        # (C, T, H, W): the T frames are the batch of a 2D resize
        out = F.interpolate(clip.transpose(0, 1), size=new, mode="bilinear", align_corners=False,
                            antialias=True)
        return out.transpose(0, 1)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        return self.resize(clip, self.size)

    def __repr__(self) -> str:
        return f"ShortSideScale({self.size})"


class RandomShortSideScale:
    """Resize the shorter side to a random integer in ``[min_size, max_size]`` (one per clip)."""

    def __init__(self, min_size: int, max_size: int, *, generator: torch.Generator | None = None):
        if not (isinstance(min_size, int) and isinstance(max_size, int) and 0 < min_size <= max_size):
            raise ArgumentError(f"need integers 0 < min_size <= max_size, got {min_size!r}, {max_size!r}")
        self.min_size, self.max_size, self.generator = min_size, max_size, generator

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        return ShortSideScale.resize(clip, _randint(self.min_size, self.max_size, self.generator))

    def __repr__(self) -> str:
        return f"RandomShortSideScale({self.min_size}, {self.max_size})"


def _crop_size(size) -> tuple[int, int]:
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2 or any(not isinstance(s, int) or s <= 0 for s in size):
        raise ArgumentError(f"crop size must be a positive int or (h, w), got {size!r}")
    return size


def _check_fits(name: str, clip: torch.Tensor, size: tuple[int, int]) -> None:
    _check_clip(name, clip)
    if clip.shape[-2] < size[0] or clip.shape[-1] < size[1]:
        raise ArgumentError(f"{name}: crop {size} larger than the clip's frames {tuple(clip.shape[-2:])}; "
                         f"scale the short side to at least the crop size first")


class CenterCrop:
    def __init__(self, size):
        self.size = _crop_size(size)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        _check_fits("CenterCrop", clip, self.size)
        h, w = clip.shape[-2:]
        top, left = (h - self.size[0]) // 2, (w - self.size[1]) // 2
        return clip[..., top:top + self.size[0], left:left + self.size[1]]

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class MultiCrop:
    """``num`` crops spaced evenly along the longer side, centred on the shorter: ``(num, C, T, h, w)``.

    The multi-crop test of the video literature: at short side 256, three 256 x 256 crops (left,
    center and right of a landscape frame) cover it whole. ``num=1`` is the center crop.
    """

    def __init__(self, size, num: int = 3):
        if isinstance(num, bool) or not isinstance(num, int) or num <= 0:
            raise ArgumentError(f"num must be a positive integer, got {num!r}")
        self.size, self.num = _crop_size(size), num

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        _check_fits("MultiCrop", clip, self.size)
        h, w = clip.shape[-2:]
        ch, cw = self.size
        portrait = h > w                    # the crops move along the longer side
        room = (h - ch) if portrait else (w - cw)
        offsets = [round(i * room / (self.num - 1)) for i in range(self.num)] if self.num > 1 else [room // 2]
        crops = []
        for offset in offsets:
            top, left = (offset, (w - cw) // 2) if portrait else ((h - ch) // 2, offset)
            crops.append(clip[..., top:top + ch, left:left + cw])
        return torch.stack(crops)

    def __repr__(self) -> str:
        return f"MultiCrop({self.size}, num={self.num})"


class RandomCrop:
    """The same random crop for every frame of the clip."""

    def __init__(self, size, *, generator: torch.Generator | None = None):
        self.size, self.generator = _crop_size(size), generator

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        _check_fits("RandomCrop", clip, self.size)
        h, w = clip.shape[-2:]
        top = _randint(0, h - self.size[0], self.generator)
        left = _randint(0, w - self.size[1], self.generator)
        return clip[..., top:top + self.size[0], left:left + self.size[1]]

    def __repr__(self) -> str:
        return f"RandomCrop({self.size})"


class RandomHorizontalFlip:
    """Flip every frame of the clip left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, *, generator: torch.Generator | None = None):
        if not 0 <= p <= 1:
            raise ArgumentError(f"p must be in [0, 1], got {p!r}")
        self.p, self.generator = p, generator

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        _check_clip("RandomHorizontalFlip", clip)
        if float(torch.rand((), generator=self.generator)) < self.p:
            return clip.flip(-1)
        return clip

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """Per-channel ``(x - mean) / std`` on ``(C, T, H, W)``."""

    def __init__(self, mean: Sequence[float] = KINETICS_MEAN, std: Sequence[float] = KINETICS_STD):
        if len(mean) != len(std):
            raise ArgumentError(f"mean and std must have the same length, got {len(mean)} and {len(std)}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1, 1)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        _check_clip("Normalize", clip)
        if clip.shape[0] != self.mean.shape[0]:
            raise ArgumentError(f"Normalize has {self.mean.shape[0]} channels, got a clip with {clip.shape[0]}")
        return (clip - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


def train_transform(*, crop: int = 224, scale: tuple[int, int] = (256, 320), flip: bool = True,
                    mean: Sequence[float] | None = KINETICS_MEAN, std: Sequence[float] | None = KINETICS_STD,
                    generator: torch.Generator | None = None) -> Compose:
    """Training: random short side in ``scale``, random ``crop`` x ``crop``, horizontal flip."""
    steps = [ToFloatClip(), RandomShortSideScale(*scale, generator=generator),
             RandomCrop(crop, generator=generator)]
    if flip:
        steps.append(RandomHorizontalFlip(generator=generator))
    if mean is not None:
        steps.append(Normalize(mean, std))
    return Compose(steps)


def eval_transform(*, crop: int = 224, short_side: int = 256, mean: Sequence[float] | None = KINETICS_MEAN,
                   std: Sequence[float] | None = KINETICS_STD, num_crops: int = 1) -> Compose:
    """Evaluation: short side ``short_side``, center ``crop`` x ``crop``; with ``num_crops > 1``,
    :class:`MultiCrop` (the clip becomes ``(num_crops, C, T, crop, crop)``)."""
    if num_crops == 1:
        steps = [ToFloatClip(), ShortSideScale(short_side), CenterCrop(crop)]
        if mean is not None:
            steps.append(Normalize(mean, std))
        return Compose(steps)
    steps = [ToFloatClip(), ShortSideScale(short_side)]
    if mean is not None:
        steps.append(Normalize(mean, std))
    return Compose(steps + [MultiCrop(crop, num_crops)])
