"""Test-time inference of a segmenter: whole image or sliding windows, with flip and multi-scale.

:meth:`glore.models.segmentation.Segmenter.predict` calls :func:`inference`; the functions take any
module that maps ``(B, 3, H, W)`` images to ``(B, K, H, W)`` logits (or ``{"out": logits, ...}``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from glore.errors import ArgumentError
from ..data.seg_transforms import pair_size

MODES = ("whole", "slide")
# options of inference() and their defaults (crop 769 / stride 513: the Cityscapes protocol)
INFERENCE_DEFAULTS = {"mode": "whole", "crop_size": 769, "stride": 513, "flip": False, "scales": [1.0]}


def logits(model, images: torch.Tensor) -> torch.Tensor:
    """``model(images)`` as float32 logits (the ``"out"`` entry of a dict output)."""
    out = model(images)
    if isinstance(out, dict):
        out = out["out"]
    return out.float()


def slide_inference(model, images: torch.Tensor, *, crop_size, stride) -> torch.Tensor:
    """Logits of ``images`` averaged over ``crop_size`` windows placed every ``stride`` pixels.

    Windows are clamped to the image (the last one in a row/column is aligned with the border), so a
    window that covers the image gives exactly the whole-image logits.
    """
    ch, cw = pair_size(crop_size, "crop_size")
    sh, sw = pair_size(stride, "stride")
    if sh > ch or sw > cw:
        raise ArgumentError(f"stride {(sh, sw)} must not exceed crop_size {(ch, cw)} (windows would leave gaps)")
    b, _, h, w = images.shape
    rows = max(h - ch + sh - 1, 0) // sh + 1
    cols = max(w - cw + sw - 1, 0) // sw + 1
    total = count = None
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + ch, h), min(c * sw + cw, w)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            out = logits(model, images[:, :, y1:y2, x1:x2])
            if total is None:
                total = images.new_zeros((b, out.shape[1], h, w), dtype=torch.float32)
                count = images.new_zeros((1, 1, h, w), dtype=torch.float32)
            total[:, :, y1:y2, x1:x2] += out
            count[:, :, y1:y2, x1:x2] += 1
    return total / count


def check_options(*, mode: str = "whole", crop_size=769, stride=513, flip: bool = False,
                  scales: Sequence[float] = (1.0,)) -> dict:
    """The inference options, validated and normalised (pairs as tuples, scales as floats)."""
    if mode not in MODES:
        raise ArgumentError(f"inference mode must be 'whole' or 'slide', got {mode!r}")
    if not isinstance(flip, bool):
        raise ArgumentError(f"flip must be true or false, got {flip!r}")
    scales = [float(s) for s in (scales or [1.0])]
    if any(s <= 0 for s in scales):
        raise ArgumentError(f"scales must be positive, got {scales}")
    crop, step = pair_size(crop_size, "crop_size"), pair_size(stride, "stride")
    if mode == "slide" and (step[0] > crop[0] or step[1] > crop[1]):
        raise ArgumentError(f"stride {step} must not exceed crop_size {crop} (windows would leave gaps)")
    return {"mode": mode, "crop_size": crop, "stride": step, "flip": flip, "scales": scales}


def is_single_pass(options: dict) -> bool:
    """True when :func:`inference` returns plain logits (one whole-image pass, no flip, one scale 1)."""
    return options["mode"] == "whole" and not options["flip"] and [float(s) for s in options["scales"]] == [1.0]


@torch.no_grad()
def inference(model, images: torch.Tensor, *, mode: str = "whole", crop_size=769, stride=513,
              flip: bool = False, scales: Sequence[float] = (1.0,)) -> torch.Tensor:
    """Class scores ``(B, K, H, W)`` of ``images``: logits for a single pass, else softmax averaged.

    ``mode`` ``whole`` runs the network on the full image, ``slide`` on windows (:func:`slide_inference`).
    With ``flip`` and/or several ``scales`` the softmax probabilities of every pass (resized back to
    the input size) are averaged.
    """
    opts = check_options(mode=mode, crop_size=crop_size, stride=stride, flip=bool(flip), scales=scales)
    h, w = images.shape[-2:]

    def run(x):
        if opts["mode"] == "slide":
            return slide_inference(model, x, crop_size=opts["crop_size"], stride=opts["stride"])
        return logits(model, x)

    passes = []
    for s in opts["scales"]:
        x = images if s == 1.0 else F.interpolate(images, scale_factor=s, mode="bilinear", align_corners=False)
        for flipped in ((False, True) if opts["flip"] else (False,)):
            out = run(x.flip(-1) if flipped else x)
            if flipped:
                out = out.flip(-1)
            if out.shape[-2:] != (h, w):
                out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
            passes.append(out)
    if len(passes) == 1:
        return passes[0]
    return torch.stack([p.softmax(1) for p in passes]).mean(0)
