"""The proposal matcher and box coder torchvision's own ``RoIHeads`` use, which torchvision defines
only in its private ``torchvision.models.detection._utils``."""

from __future__ import annotations

from torchvision.models.detection._utils import BoxCoder, Matcher

__all__ = ["BoxCoder", "Matcher"]
