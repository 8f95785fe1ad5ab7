"""Metrics."""

from .._lazy import lazy_exports

_EXPORTS = {
    "CityscapesMetrics": "glore.metrics.cityscapes",
    "SegmentationIoU": "glore.metrics.cityscapes",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
