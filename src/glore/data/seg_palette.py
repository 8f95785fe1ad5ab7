"""Colours of segmentation train ids, for colourised prediction images."""

from __future__ import annotations

import numpy as np

from .cityscapes import TRAIN_ID_COLORS

# a fixed qualitative set (index 0 is black: seg-digits' background)
_QUALITATIVE = np.array([[0, 0, 0], [46, 160, 67], [214, 39, 40], [31, 119, 180], [255, 127, 14],
                         [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34]],
                        dtype=np.uint8)


def palette(dataset: str, num_classes: int) -> np.ndarray:
    """``(256, 3)`` uint8 colours of the train ids: Cityscapes' own for ``"cityscapes"``, else the
    qualitative set repeated over ``num_classes`` (255, ignore, is black)."""
    if dataset == "cityscapes":
        return TRAIN_ID_COLORS
    colours = np.zeros((256, 3), dtype=np.uint8)
    for i in range(min(num_classes, 255)):
        colours[i] = _QUALITATIVE[i % len(_QUALITATIVE)]
    return colours


def colour_image(train_ids: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a train-id map."""
    return colours[np.asarray(train_ids).astype(np.int64).clip(0, 255)]
