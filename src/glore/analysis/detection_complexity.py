"""Parameters and multiply-adds of a detector from :func:`glore.models.create_detector`.

A detector's work depends on how many proposals and detections its image gives, and torchvision's
detectors take lists of images, where :func:`glore.analysis.complexity.summary` gives one tensor. :class:`DenseDetector` runs the same layers on fixed sizes instead: the image padded as
the detector pads it (to a multiple of 32), backbone + FPN + RPN head on it, the box head on
``proposals`` regions (torchvision's 1000 at test time; each of Cascade R-CNN's three box heads on
them) and the mask head on ``detections`` regions (100). It holds the detector, so its parameters are the detector's.

:data:`FIGURES` are the GCNet paper's (arXiv 2012.13375) Table 5(e) parameter counts of Mask R-CNN
R50-FPN with GC blocks (``after_1x1``) in every residual block of c3-c5.

Two conventions (:data:`CONVENTIONS`), chosen by :func:`count_detector`'s ``convention``:

- ``torch`` (the default): :func:`glore.analysis.complexity.summary` on :class:`DenseDetector`, the
  multiply-adds of the convolutions and matrix products (the papers' convention for the blocks),
  on the image padded to a multiple of 32.
- ``mmdet``: what mmdetection v1's ``tools/get_flops.py`` counts, the counter the GCNet paper's
  detection FLOPs come from (:func:`mmdet_macs`): module hooks on the detector's dummy forward. The
  image is not padded (the counter feeds a tensor of the given shape to ``forward_dummy``); the box
  head runs on 1000 regions and the mask head on the first 100 of them, as here; and it counts per
  module call: a convolution's multiply-adds plus one add per output element for its bias, a
  ``ConvTranspose2d`` as a convolution over its *output* positions (its counter's hook table matches
  ``_ConvNd`` before the transposed-conv entry, so the mask head's 2x2 deconv counts 4x its
  multiply-adds), a deformable convolution as a convolution, a linear layer's products (no bias),
  two operations per element for a BatchNorm (frozen or not), one per element for a ReLU module, a
  pooling layer's input elements and an ``nn.Upsample``'s output elements. Matrix products
  (``matmul``, ``bmm``), softmax, LayerNorm and functional calls (``F.relu``, ``F.interpolate``)
  are not modules and count nothing; so a non-local block counts its four 1x1 convs but not its
  attention, a GC block its key conv and transform but not the attention pooling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d
from torchvision.ops.misc import FrozenBatchNorm2d

from glore.analysis.complexity import count_parameters, summary
from glore.errors import ArgumentError
from glore.models.paper_figures import PaperFigure

CONVENTIONS = ("torch", "mmdet")

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
    """A detector's layers on fixed-size inputs (see the module docstring); ``forward(images)``. With
    ``pad=False`` the image is used as given (mmdetection's dummy forward), not padded to a multiple of 32."""

    def __init__(self, detector: nn.Module, *, proposals: int = 1000, detections: int = 100, pad: bool = True):
        super().__init__()
        self.detector, self.proposals, self.detections = detector, int(proposals), int(detections)
        self.pad = pad

    def forward(self, images: torch.Tensor):
        """The detector's layers on ``images`` ``(B, 3, H, W)``: padded image, backbone + FPN + RPN head, then the box head on
        ``proposals`` and the mask head on ``detections`` regions."""
        det = self.detector
        h, w = images.shape[-2:]
        if self.pad:
            images = F.pad(images, (0, -w % 32, 0, -h % 32))       # GeneralizedRCNNTransform's padding
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


def _conv_macs(module, inputs, output) -> int:
    """A convolution (transposed ones too) over its output positions, plus its bias adds."""
    per_position = module.weight.numel()     # (out, in/groups, *k); transposed (in, out/groups, *k): the same product
    positions = output.numel() // output.shape[1]            # batch x output positions
    bias = output.shape[1] * positions if getattr(module, "bias", None) is not None else 0
    return per_position * positions + bias


def _linear_macs(module, inputs, output) -> int:
    return inputs[0].numel() // inputs[0].shape[-1] * module.in_features * module.out_features


def _norm_ops(module, inputs, output) -> int:
    affine = isinstance(module, FrozenBatchNorm2d) or getattr(module, "affine", False)
    return inputs[0].numel() * (2 if affine else 1)


def _group_norm_ops(module, inputs, output) -> int:
    return inputs[0].numel() * (4 if module.affine else 3)


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOLS = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
          nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
          nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)

# module type -> operations of one call, in the order mmdetection's counter matches them
_MMDET_HOOKS = (
    ((*_CONVS, DeformConv2d), _conv_macs),
    ((nn.Linear,), _linear_macs),
    (_POOLS, lambda m, i, o: i[0].numel()),
    ((nn.ReLU, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.ReLU6), lambda m, i, o: o.numel()),
    ((*_BATCH_NORMS, FrozenBatchNorm2d), _norm_ops),
    ((nn.GroupNorm,), _group_norm_ops),
    ((nn.Upsample,), lambda m, i, o: o.numel()),
)


def mmdet_macs(model: nn.Module, images: torch.Tensor) -> int:
    """Operations of ``model(images)`` as mmdetection v1's FLOP counter counts them (the module
    docstring lists its rules), per image."""
    total = 0

    def hook(count):
        def add(module, inputs, output):
            nonlocal total
            total += int(count(module, inputs, output))
        return add

    handles = []
    for module in model.modules():
        for types, count in _MMDET_HOOKS:
            if isinstance(module, types):
                handles.append(module.register_forward_hook(hook(count)))
                break
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total // images.shape[0]


def count_detector(detector: nn.Module, input_size, *, convention: str = "torch") -> dict:
    """Parameters and GMACs of ``detector`` for one image of ``input_size`` ``(3, H, W)`` in
    ``convention`` (:data:`CONVENTIONS`, see the module docstring)."""
    if convention not in CONVENTIONS:
        raise ArgumentError(f"convention must be one of {list(CONVENTIONS)}, got {convention!r}")
    if convention == "torch":
        return summary(DenseDetector(detector), input_size)
    param = next(detector.parameters())
    images = torch.zeros((1, *input_size), device=param.device, dtype=param.dtype)
    macs = mmdet_macs(DenseDetector(detector, pad=False), images)
    return {"params": count_parameters(detector), "macs": macs, "gmacs": macs / 1e9,
            "input_size": tuple(input_size)}
