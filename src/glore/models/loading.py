"""``load_checkpoint``: a local state dict into any glore model, the inserted blocks optional."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from glore import checkpoint
from .insert import inserted_blocks
from .video_official import convert_official_video_state_dict, is_official_video_state_dict

__all__ = ["load_checkpoint"]


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a local state dict into any glore model (no downloads): image, segmentation or 3D.

    Keys of inserted blocks that the file lacks (a backbone checkpoint, as when fine-tuning from
    ImageNet weights) keep their initialisation, the identity for zero-initialised blocks, and are
    named in a warning. Any other missing key, any unexpected key and any shape mismatch raises a
    ``ValueError`` naming them. The authors' released 3D networks (``conv2.B01.conv_m1...``) are
    read by their own names.
    """
    blocks = tuple(f"{name}." for name in inserted_blocks(model))
    return checkpoint.load_checkpoint(model, path, strict=True, optional=blocks, rename=_official_names)


def _official_names(state: dict) -> dict:
    return convert_official_video_state_dict(state) if is_official_video_state_dict(state) else state
