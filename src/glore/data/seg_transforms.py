"""Joint transforms for segmentation, on ``torchvision.transforms.v2``.

:func:`build_seg_transforms` returns ``t(image, target, instance) -> (image, target, instance)`` on
plain tensors: ``image`` float ``(3, H, W)``, ``target`` long ``(H, W)`` of train ids, ``instance``
an optional integer ``(H, W)`` map (or None). Inside, they travel as ``tv_tensors.Image``,
``tv_tensors.Mask`` and :class:`InstanceIds`, so v2 resizes images bilinearly and label maps with
nearest neighbour. Padding uses 0 for the image and the instance map and the ignore index for the
target. Randomness comes from ``torch``'s global generator (seeded per sample by the engine).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from glore.errors import ArgumentError
from .cityscapes import IGNORE_INDEX


class InstanceIds(tv_tensors.Mask):
    """An instance-id map: transformed as a mask, padded with 0 (no instance)."""


def pair_size(size, name: str) -> tuple[int, int]:
    """``size`` (an int or a pair) as ``(height, width)`` of positive ints; errors name ``name``."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, Sequence) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ArgumentError(f"{name} must be a positive int or a pair (height, width), got {size!r}")
    return int(size[0]), int(size[1])


def _image_size(flat_inputs) -> tuple[int, int]:
    image = next(x for x in flat_inputs if isinstance(x, tv_tensors.Image))
    return tuple(TF.get_size(image))


class RandomScale(v2.Transform):
    """Resize by a factor drawn uniformly from ``scale_range`` (``[0.5, 2]`` in both papers)."""

    def __init__(self, scale_range: Sequence[float] = (0.5, 2.0)):
        super().__init__()
        lo, hi = (float(v) for v in scale_range)
        if not 0 < lo <= hi:
            raise ArgumentError(f"scale_range must be (low, high) with 0 < low <= high, got {scale_range!r}")
        self.scale_range = (lo, hi)

    def make_params(self, flat_inputs) -> dict:
        lo, hi = self.scale_range
        s = lo + (hi - lo) * torch.rand(()).item()
        h, w = _image_size(flat_inputs)
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt, params):
        return TF.resize(inpt, params["size"], antialias=False)


class RandomCrop(v2.Transform):
    """Pad at the bottom and right to at least ``size`` (image and instances 0, target
    ``ignore_index``), then crop ``size`` at random. ``v2.RandomCrop(pad_if_needed=True)`` pads by
    the whole shortfall on both sides instead, which puts more padding into the crops."""

    def __init__(self, size: int | Sequence[int], *, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.size = pair_size(size, "crop size")
        self.ignore_index = ignore_index

    def make_params(self, flat_inputs) -> dict:
        (ch, cw), (h, w) = self.size, _image_size(flat_inputs)
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        top = int(torch.randint(0, h + ph - ch + 1, ()).item())
        left = int(torch.randint(0, w + pw - cw + 1, ()).item())
        return {"padding": [0, 0, pw, ph], "top": top, "left": left}

    def transform(self, inpt, params):
        if any(params["padding"]):
            is_target = isinstance(inpt, tv_tensors.Mask) and not isinstance(inpt, InstanceIds)
            inpt = TF.pad(inpt, params["padding"], fill=self.ignore_index if is_target else 0)
        return TF.crop(inpt, params["top"], params["left"], *self.size)


class Compose(v2.Compose):
    """``v2.Compose`` on ``(image, target, instance)`` plain tensors (``instance`` may be None)."""

    def __call__(self, image, target, instance=None):
        image, target, instance = super().__call__(
            tv_tensors.Image(image), tv_tensors.Mask(target),
            None if instance is None else InstanceIds(instance))
        plain = (lambda x: None if x is None else x.as_subclass(torch.Tensor))
        return plain(image), plain(target), plain(instance)


def build_seg_transforms(*, train: bool, crop_size: int | Sequence[int] = 769,
                         scale_range: Sequence[float] | None = (0.5, 2.0), hflip: bool = True,
                         mean: Sequence[float] = IMAGENET_DEFAULT_MEAN, std: Sequence[float] = IMAGENET_DEFAULT_STD,
                         ignore_index: int = IGNORE_INDEX) -> Compose:
    """Training: random scale, random crop (padded), flip, normalisation. Evaluation: normalisation."""
    steps = []
    if train:
        if scale_range is not None:
            steps.append(RandomScale(scale_range))
        if crop_size is not None:
            steps.append(RandomCrop(crop_size, ignore_index=ignore_index))
        if hflip:
            steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.Normalize(list(mean), list(std)))
    return Compose(steps)
