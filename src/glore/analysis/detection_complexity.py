"""Parameters and multiply-adds of a detector from :func:`glore.models.create_detector`.

A detector's work depends on how many proposals and detections its image gives, and torchvision's
detectors take lists of images, where :func:`glore.analysis.complexity.summary` gives one tensor. :class:`DenseDetector` runs the same layers on fixed sizes instead: the image padded as
the detector pads it (to a multiple of 32), backbone + FPN + RPN head on it, the box head on
``proposals`` regions (torchvision's 1000 at test time; each of Cascade R-CNN's three box heads on
them) and the mask head on ``detections`` regions (100). It holds the detector, so its parameters are the detector's.

:data:`FIGURES` are the GCNet paper's (arXiv 2012.13375) Table 5(e) parameter counts of Mask R-CNN
R50-FPN with GC blocks (``after_1x1``) in every residual block of c3-c5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glore.models.paper_figures import PaperFigure

_T5E = "GCNet Table 5(e)"
# (block, ratio) -> figure, for maskrcnn / resnet50 / units "all" / after_1x1 / 91 classes
FIGURES = {
    (None, None): PaperFigure(_T5E, "Mask R-CNN R50-FPN baseline", 44.4, None),
    ("gc", 1 / 32): PaperFigure(_T5E, "+ GC c3-c5, r32", 45.7, None),
    ("gc", 1 / 16): PaperFigure(_T5E, "+ GC c3-c5, r16", 46.9, None),
    ("gc", 1 / 8): PaperFigure(_T5E, "+ GC c3-c5, r8", 49.4, None),
}


def paper_figures(arch, backbone, *, block=None, units=None, position=None, block_kwargs=None,
                  num_classes=None) -> list[PaperFigure]:
    """The paper's rows for this detector configuration (empty when it is not in the tables)."""
    if arch != "maskrcnn" or backbone != "resnet50" or num_classes not in (None, 91):
        return []
    if block in (None, "none"):
        return [FIGURES[(None, None)]] if units is None else []
    kwargs = dict(block_kwargs or {})
    ratio = kwargs.pop("ratio", 1 / 16)
    if block != "gc" or units != "all" or position not in (None, "after_1x1") or kwargs:
        return []
    return [fig for (b, r), fig in FIGURES.items() if b == "gc" and abs(r - float(ratio)) < 1e-9]


class DenseDetector(nn.Module):
    """A detector's layers on fixed-size inputs (see the module docstring); ``forward(images)``."""

    def __init__(self, detector: nn.Module, *, proposals: int = 1000, detections: int = 100):
        super().__init__()
        self.detector, self.proposals, self.detections = detector, int(proposals), int(detections)

    def forward(self, images: torch.Tensor):
        """The detector's layers on ``images`` ``(B, 3, H, W)``: padded image, backbone + FPN + RPN head, then the box head on
        ``proposals`` and the mask head on ``detections`` regions."""
        det = self.detector
        h, w = images.shape[-2:]
        images = F.pad(images, (0, -w % 32, 0, -h % 32))           # GeneralizedRCNNTransform's padding
        features = list(det.backbone(images).values())
        objectness, deltas = det.rpn.head(features)
        channels = features[0].shape[1]
        heads = det.roi_heads
        regions = images.new_zeros((self.proposals, channels, 7, 7))
        outputs = [*objectness, *deltas]
        stages = (zip(heads.box_heads, heads.box_predictors) if hasattr(heads, "box_heads")    # Cascade R-CNN
                  else [(heads.box_head, heads.box_predictor)])
        for box_head, box_predictor in stages:
            outputs.extend(box_predictor(box_head(regions)))
        if getattr(heads, "mask_head", None) is not None:
            masks = images.new_zeros((self.detections, channels, 14, 14))
            outputs.append(heads.mask_predictor(heads.mask_head(masks)))
        return tuple(outputs)
