"""Models: blocks inserted into backbones; classification, segmentation and video models."""

from .._lazy import lazy_exports
from . import registry as _registry  # noqa: F401  registers the papers' configurations with timm

# name -> module defining it. Owners add their public names here.
_EXPORTS = {
    "create_model": "glore.models.factory",
    "insert_blocks": "glore.models.insert",
    "create_segmenter": "glore.models.segmentation",
    "create_video_model": "glore.models.video",
    "create_slow_only": "glore.models.slow_only",
    "create_detector": "glore.models.detection",
    "available_backbones": "glore.models.factory",
    "load_checkpoint": "glore.models.factory",
    "inserted_blocks": "glore.models.insert",
    "find_stages": "glore.models.insert",
    "distant_digits_net": "glore.models.small",
    "SMALL_MODELS": "glore.models.small",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
