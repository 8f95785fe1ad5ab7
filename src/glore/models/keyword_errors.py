"""A backbone builder's ``TypeError`` for an unexpected keyword, rewritten to name the keyword and
every keyword the backbone takes."""

from __future__ import annotations

import inspect
import re

import torchvision
from timm.models.dpn import DPN
from timm.models.resnet import ResNet

from glore.errors import ArgumentTypeError

__all__ = ["TIMM_BUILD_KWARGS", "explain_timm_keyword", "explain_torchvision_keyword"]

# keywords that timm.create_model / build_model_with_cfg take besides the model class's own
TIMM_BUILD_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir",
                     "scriptable", "exportable", "no_jit", "features_only", "out_indices",
                     "feature_cls", "output_stride")
_TIMM_CLASSES = {"resnet": ResNet, "dpn": DPN}
_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def explain_timm_keyword(exc: TypeError, backbone: str, family: str | None) -> TypeError:
    """A ``TypeError`` naming the keyword the timm backbone does not take, and those it takes;
    ``exc`` itself when it is about something else."""
    found = _UNEXPECTED.search(str(exc))
    if not found or family not in _TIMM_CLASSES:
        return exc
    cls = _TIMM_CLASSES[family]
    own = [n for n in inspect.signature(cls).parameters if n not in ("self", "kwargs")]
    return TypeError(f"{backbone} does not take the keyword {found.group(1)!r}: timm's {cls.__name__} "
                     f"takes {sorted(own)}, and timm.create_model also takes {list(TIMM_BUILD_KWARGS)}")


def explain_torchvision_keyword(exc: TypeError, name: str) -> TypeError:
    """The same for torchvision's ResNet builder ``name``."""
    found = _UNEXPECTED.search(str(exc))
    if not found:
        return exc
    own = [n for n in inspect.signature(torchvision.models.ResNet).parameters if n != "self"]
    return ArgumentTypeError(f"tv_{name} does not take the keyword {found.group(1)!r}: torchvision's ResNet takes "
                             f"{sorted(own)}, and its builder takes ['progress', 'weights']")
