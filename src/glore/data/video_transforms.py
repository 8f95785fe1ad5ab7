"""Clip transforms: the GloRe video recipe (random short-side scaling, 224 crop, flip; center crop),
built from ``torchvision.transforms.v2`` on ``tv_tensors.Video``.

Readers give ``uint8`` frames ``(T, H, W, C)``; :class:`ToVideo` makes them a ``tv_tensors.Video``
``(T, C, H, W)`` in ``[0, 1]``, the v2 steps scale, crop, flip and normalise it, and
:class:`ToClip` gives the ``float32`` ``(C, T, H, W)`` clip the 3D networks take. Randomness comes
from ``torch``'s global generator (seeded per sample by the engine).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision import tv_tensors
from torchvision.transforms import v2

from glore.errors import ArgumentError

__all__ = ["ToVideo", "ToClip", "MultiCrop", "train_transform", "eval_transform"]


class ToVideo(v2.Transform):
    """``uint8`` frames ``(T, H, W, C)`` -> ``tv_tensors.Video`` ``(T, C, H, W)``, float in ``[0, 1]``."""

    def forward(self, frames: torch.Tensor) -> tv_tensors.Video:
        if not isinstance(frames, torch.Tensor) or frames.dim() != 4:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ArgumentError(f"ToVideo expects frames (T, H, W, C), got {shape}")
        video = frames.permute(0, 3, 1, 2).float()
        return tv_tensors.Video(video / 255.0 if frames.dtype == torch.uint8 else video)


class ToClip(v2.Transform):
    """``(T, C, H, W)`` video -> plain ``(C, T, H, W)`` clip tensor."""

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return video.as_subclass(torch.Tensor).transpose(0, 1)


def _crop_size(size) -> tuple[int, int]:
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2 or any(not isinstance(s, int) or s <= 0 for s in size):
        raise ArgumentError(f"crop size must be a positive int or (h, w), got {size!r}")
    return size


class MultiCrop:
    """``num`` crops of a ``(C, T, H, W)`` clip spaced evenly along the longer side, centred on the
    shorter: ``(num, C, T, h, w)``. v2 has five- and ten-crops, not this one.

    The multi-crop test of the video literature: at short side 256, three 256 x 256 crops (left,
    center and right of a landscape frame) cover it whole. ``num=1`` is the center crop.
    """

    def __init__(self, size, num: int = 3):
        if isinstance(num, bool) or not isinstance(num, int) or num <= 0:
            raise ArgumentError(f"num must be a positive integer, got {num!r}")
        self.size, self.num = _crop_size(size), num

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        h, w = clip.shape[-2:]
        ch, cw = self.size
        if h < ch or w < cw:
            raise ArgumentError(f"MultiCrop: crop {self.size} larger than the clip's frames {(h, w)}; "
                             f"scale the short side to at least the crop size first")
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


def _normalize(mean, std) -> list:
    return [] if mean is None else [v2.Normalize(list(mean), list(std))]


def train_transform(*, crop: int = 224, scale: tuple[int, int] = (256, 320), flip: bool = True,
                    mean: Sequence[float] | None = IMAGENET_DEFAULT_MEAN,
                    std: Sequence[float] | None = IMAGENET_DEFAULT_STD) -> v2.Compose:
    """Training: random short side in ``scale`` (integers, inclusive), random ``crop`` x ``crop``,
    horizontal flip; the ImageNet statistics the inflated 2D weights expect."""
    lo, hi = scale
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 < lo <= hi):
        raise ArgumentError(f"scale must be integers 0 < low <= high, got {scale!r}")
    steps = [ToVideo(), v2.RandomShortestSize(list(range(lo, hi + 1))), v2.RandomCrop(_crop_size(crop))]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps + _normalize(mean, std) + [ToClip()])


def eval_transform(*, crop: int = 224, short_side: int = 256,
                   mean: Sequence[float] | None = IMAGENET_DEFAULT_MEAN,
                   std: Sequence[float] | None = IMAGENET_DEFAULT_STD, num_crops: int = 1) -> v2.Compose:
    """Evaluation: short side ``short_side``, center ``crop`` x ``crop``; with ``num_crops > 1``,
    :class:`MultiCrop` (the clip becomes ``(num_crops, C, T, crop, crop)``)."""
    size = _crop_size(crop)
    if max(size) > short_side:
        raise ArgumentError(f"crop {size} larger than the short side {short_side}: the center crop would pad")
    steps = [ToVideo(), v2.Resize(short_side)]
    if num_crops == 1:
        return v2.Compose(steps + [v2.CenterCrop(size)] + _normalize(mean, std) + [ToClip()])
    return v2.Compose(steps + _normalize(mean, std) + [ToClip(), MultiCrop(size, num_crops)])
