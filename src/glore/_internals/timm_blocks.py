"""timm's EfficientNet / MobileNetV3 residual block classes, which timm defines in its private
``timm.models._efficientnet_blocks`` and exports nowhere else."""

from __future__ import annotations

from timm.models._efficientnet_blocks import (CondConvResidual, ConvBnAct, DepthwiseSeparableConv, EdgeResidual,
                                              InvertedResidual, UniversalInvertedResidual)

__all__ = ["CondConvResidual", "ConvBnAct", "DepthwiseSeparableConv", "EdgeResidual", "InvertedResidual",
           "UniversalInvertedResidual"]
