"""Datasets: the built-in relational sets and readers of standard on-disk layouts."""

from .._lazy import lazy_exports

# name -> module defining it. Owners add their public names here.
_EXPORTS = {
    "ImageFolderDataset": "glore.data.imagefolder",
    "CUB200Dataset": "glore.data.imagefolder",
    "build_image_dataset": "glore.data.imagefolder",
    "DistantDigits": "glore.data.distant_digits",
    "CityscapesSegmentation": "glore.data.cityscapes",
    "SegDigits": "glore.data.seg_digits",
    "MovingDigits": "glore.data.moving_digits",
    "DistantClips": "glore.data.distant_clips",
    "VideoFolder": "glore.data.video",
    "VideoReadError": "glore.data.video",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
