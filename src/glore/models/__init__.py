"""Models: blocks inserted into backbones; classification, segmentation and video models."""

from .._lazy import lazy_exports

# name -> module defining it. Owners add their public names here.
_EXPORTS = {
    "create_model": "glore.models.factory",
    "insert_blocks": "glore.models.insert",
    "create_segmenter": "glore.models.segmentation",
    "create_video_model": "glore.models.video",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
