"""``create_model``: a ResNet-family / DPN backbone with GloRe or global-context blocks, in one line.

>>> model = create_model("resnet50", block="glore", units=(0, 3))   # GloRe paper's R50 + Ours(0, 3)
"""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path

import torch
from torch import nn

from .insert import inserted_blocks, insert_blocks

# torchvision builders reachable as "tv_<name>"
TORCHVISION_BACKBONES = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
    "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
)
# timm modules whose models find_stages understands
_TIMM_MODULES = ("resnet", "dpn")


def available_backbones() -> list[str]:
    """Names accepted by :func:`create_model`: timm ResNet-family and DPN models, ``tv_*`` ResNets,
    and the paper configurations registered by :mod:`glore.models.registry`."""
    import timm

    from . import registry

    names = set(registry.CONFIGS) | {f"tv_{n}" for n in TORCHVISION_BACKBONES}
    for module in _TIMM_MODULES:
        names.update(timm.list_models(module=module))
    return sorted(names)


def build_backbone(name: str, *, num_classes: int = 1000) -> nn.Module:
    """Build backbone ``name`` with random weights (``pretrained=False``; nothing is downloaded)."""
    import timm
    import torchvision

    if not isinstance(name, str):
        raise TypeError(f"backbone must be a model name (str), got {type(name).__name__}")
    if name.startswith("tv_") and name[3:] in TORCHVISION_BACKBONES:
        return getattr(torchvision.models, name[3:])(weights=None, num_classes=num_classes)
    names = available_backbones()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
        hint = f"; close matches: {close}" if close else ""
        raise ValueError(f"unknown backbone {name!r}: expected a timm ResNet-family or DPN name, "
                         f"tv_<torchvision resnet> or a registered configuration{hint}")
    return timm.create_model(name, pretrained=False, num_classes=num_classes)


def create_model(backbone: str, *, block: str | None = None, units=None, position: str | None = None,
                 num_classes: int = 1000, checkpoint: str | Path | None = None,
                 **block_kwargs) -> nn.Module:
    """Build ``backbone`` with ``block`` units inserted (GloRe paper §4.2, GCNet §4).

    Args:
        backbone: a timm name (``resnet50``, ``seresnet50``, ``resnext101_32x4d``,
            ``wide_resnet50_2``, ``dpn98``, ...), a torchvision ResNet as ``tv_resnet50``, or a
            registered configuration (``resnet50_glore_0_3``, see :mod:`glore.models.registry`).
        block: ``glore``, ``nl``, ``snl``, ``gc`` or ``se``; ``None`` builds the plain backbone.
        units: where to insert: ``(n, m)`` = n units in Res3 and m in Res4 after blocks 1, 3, 5, ...;
            ``{"res4": 3}`` or ``{"res4": [5]}`` (1-based block indices); ``"all"`` = every
            residual block of res3-res5. Required with ``block``.
        position: ``after_add`` or ``after_1x1``; default per block (see
            :func:`glore.models.insert_blocks`).
        num_classes: classifier outputs.
        checkpoint: a local ``.safetensors`` or torch file (read with ``weights_only=True``) with the
            state dict of this model or of its backbone; see :func:`load_checkpoint`.
        **block_kwargs: passed to every block (``mid=``, ``ratio=``, ``pairwise=``, ...).

    Raises:
        ValueError: unknown backbone (with close matches), block, stage or position; too many units.
        FileNotFoundError: ``checkpoint`` does not exist.
    """
    if block is None and (units is not None or position is not None or block_kwargs):
        raise ValueError(f"units, position and block options need a block; got block=None with "
                         f"units={units!r}, position={position!r}, options {sorted(block_kwargs)}")
    if block is not None and units is None:
        raise ValueError(f"block={block!r} needs units, e.g. units=(0, 3) or {{'res4': [5]}}; got None")
    model = build_backbone(backbone, num_classes=num_classes)
    if block is not None:
        insert_blocks(model, block=block, units=units, position=position, **block_kwargs)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):           # Lightning and common training-script layouts
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    return obj


def _strip_prefix(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Remove a wrapper prefix (``module.``, ``model.``) shared by all keys if that makes them match."""
    if not state or set(state) & expected:
        return state
    prefix = next(iter(state)).split(".", 1)[0] + "."
    if all(k.startswith(prefix) for k in state):
        stripped = {k[len(prefix):]: v for k, v in state.items()}
        if set(stripped) & expected:
            return stripped
    return state


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a local state dict into ``model`` (no downloads).

    Keys of inserted blocks that the file lacks (a backbone checkpoint, as when fine-tuning from
    ImageNet weights) keep their initialisation, the identity for zero-initialised blocks, and are
    named in a warning. Any other missing key, any unexpected key and any shape mismatch raises a
    ``ValueError`` naming them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {str(path)!r}")
    own = model.state_dict()
    state = _strip_prefix(_read_state_dict(path), set(own))
    block_prefixes = tuple(f"{name}." for name in inserted_blocks(model))
    missing = [k for k in own if k not in state]
    missing_blocks = [k for k in missing if k.startswith(block_prefixes)]
    missing_other = [k for k in missing if not k.startswith(block_prefixes)]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
              for k in state if k in own and state[k].shape != own[k].shape]
    if missing_other or unexpected or shapes:
        raise ValueError(f"checkpoint {str(path)!r} does not match the model: missing keys "
                         f"{missing_other}, unexpected keys {unexpected}, shape mismatches {shapes}")
    if missing_blocks:
        blocks = [p[:-1] for p in block_prefixes if any(k.startswith(p) for k in missing_blocks)]
        warnings.warn(f"checkpoint {str(path)!r} has no weights for the inserted blocks {blocks}; "
                      f"they keep their initialisation ({len(missing_blocks)} keys)", stacklevel=2)
    model.load_state_dict(state, strict=False)
    return model
