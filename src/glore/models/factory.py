"""``create_model``: a timm or torchvision ResNet-family / DPN backbone with blocks, in one line.

>>> model = create_model("resnet50", block="glore", units=(0, 3))   # GloRe paper's R50 + Ours(0, 3)
>>> model = create_model("resnet50", pretrained=True, block="gc", units="all", num_classes=200)

timm backbones are built through timm's own builder (``build_model_with_cfg``), so timm's keywords
(``pretrained_cfg_overlay=dict(file=...)``, ``features_only``, ``out_indices``, ``in_chans``,
``drop_path_rate``, ``num_classes``, ``device``, ...) mean what they mean in ``timm.create_model``.
Pretrained weights are the backbone's; the inserted blocks keep their initialisation, the identity
for zero-initialised blocks, so the model starts with the pretrained backbone's outputs.

This module checks the arguments and picks the build; the builds are :mod:`glore.models.timm_build`
and :mod:`glore.models.torchvision_build`, the names :mod:`glore.models.names`, the rewording of a
backbone's ``TypeError`` :mod:`glore.models.keyword_errors` and the reading of a checkpoint into a
model :mod:`glore.models.loading`; their public names are importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import timm
from timm.models import get_pretrained_cfg
from torch import nn
from torchvision.models import get_model_weights

from glore.checkpoint import CheckpointError, read_state_dict
from glore.errors import ArgumentError, ArgumentTypeError, GloreError, MissingFileError
from . import registry
from .insert import inserted_blocks, insert_blocks
from .loading import load_checkpoint
from .names import available_backbones, check_name
from .placement import parse_placement
from .timm_build import build_timm, keep_inserted_blocks, move_stride_to_1x1
from .torchvision_build import TORCHVISION_BACKBONES, build_torchvision
from .weights import WeightsUnavailableError, check_hub_weights, check_url_weights, weights_mismatch

__all__ = ["create_model", "available_backbones", "load_checkpoint", "build_timm", "build_torchvision",
           "keep_inserted_blocks", "move_stride_to_1x1", "TORCHVISION_BACKBONES"]


def create_model(name: str, *, pretrained: bool | str | os.PathLike = False, block: str | None = None, units=None,
                 position: str | None = None, block_kwargs: Mapping | None = None,
                 stride_in_1x1: bool = False, **kwargs) -> nn.Module:
    """Build backbone ``name`` with ``block`` units inserted (GloRe paper §4.2, GCNet §4).

    Args:
        name: a timm name (``resnet50``, ``seresnet50``, ``resnext101_32x4d``, ``wide_resnet50_2``,
            ``dpn98``, ...), a torchvision ResNet as ``tv_resnet50``, or a registered configuration
            (``resnet50_glore_0_3``, see :mod:`glore.models.registry`; then no ``block``).
        pretrained: load the backbone's pretrained weights the way timm (or torchvision, for
            ``tv_*``) does: from its hub or cache, or from a local file with
            ``pretrained_cfg_overlay=dict(file="resnet50.safetensors")``; a path here is short
            for that. The blocks keep their initialisation (the identity with ``zero_init``).
            Weights neither cached nor downloadable (``HF_HUB_OFFLINE``, no answer from the hub
            within 3 s) raise :class:`~glore.models.weights.WeightsUnavailableError` at once,
            naming the repository; a file of another architecture a ``CheckpointError`` with the
            counts of missing and unexpected names.
        block: ``glore``, ``nl``, ``snl``, ``gc``, ``se`` or ``cbam``; ``None`` builds the plain backbone.
        units: where to insert: ``(n, m)`` = n units in Res3 and m in Res4 after blocks 1, 3, 5, ...;
            ``{"res4": 3}`` or ``{"res4": [5]}`` (1-based block indices); ``"all"`` = every
            residual block of res3-res5. Required with ``block``.
        position: ``after_add`` or ``after_1x1``; default per block (see :func:`insert_blocks`).
        block_kwargs: options of every inserted block (``mid=``, ``ratio=``, ``pairwise=``, ...).
        stride_in_1x1: the original ResNet: a stage's stride on the first 1x1 conv of its first
            bottleneck, not on the 3x3 conv (GCNet's ResNet-50, 3.86 GMACs; see
            :func:`move_stride_to_1x1`). Bottleneck backbones only.
        **kwargs: go to ``timm.create_model`` (``num_classes``, ``in_chans``, ``drop_path_rate``,
            ``features_only``, ``out_indices``, ``output_stride``, ``pretrained_cfg_overlay``,
            ``checkpoint_path``, ...), or to the torchvision builder for ``tv_*`` (``weights``,
            ``num_classes``, ``norm_layer``, ...). ``checkpoint_path`` is a full checkpoint of this
            model (see :func:`load_checkpoint`).

    Raises:
        ValueError: unknown backbone (with close matches), block, stage or position; too many units.
        TypeError: a keyword the backbone does not take, or an option the block does not take
            (naming it, and what is accepted).
    """
    check_name(name)                    # first: a misspelt name is the likeliest mistake
    num_classes = kwargs.get("num_classes")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0):
        raise ArgumentError(f"num_classes must be an integer >= 0 (0: no classifier, the pooled features), "
                            f"got {num_classes!r}")
    placement = parse_placement(block, units, position, block_kwargs)
    blocks = placement.as_kwargs() if placement else None
    if not isinstance(stride_in_1x1, bool):
        raise ArgumentTypeError(f"stride_in_1x1 must be true or false, got {stride_in_1x1!r}")
    if stride_in_1x1:
        kwargs["stride_in_1x1"] = True
    if name in registry.CONFIGS and blocks:
        raise ArgumentError(f"{name} is a registered configuration with its blocks already in "
                         f"place; pass its backbone {registry.CONFIGS[name].backbone!r} to add "
                         f"other blocks, got block={block!r}")
    if isinstance(pretrained, (str, os.PathLike)):
        path = Path(pretrained)
        if not path.is_file():
            raise MissingFileError(f"pretrained weights file not found: {str(path)!r}")
        state = read_state_dict(path)             # a file that is not a checkpoint is named here
        try:
            if name.startswith("tv_"):
                model = build_torchvision(name[3:], None, **kwargs)
                model.load_state_dict(state)
                return insert_blocks(model, **blocks) if blocks else model
            overlay = {**(kwargs.pop("pretrained_cfg_overlay", None) or {}), "file": str(path)}
            return _build(name, blocks, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
        except RuntimeError as exc:
            if "state_dict" not in str(exc):
                raise
            reference = _build(name, blocks, pretrained=False, **kwargs)   # its names and shapes, for the message
            blocks_prefixes = tuple(f"{n}." for n in inserted_blocks(reference)) or ("\0",)
            own = {k: v for k, v in reference.state_dict().items() if not k.startswith(blocks_prefixes)}
            raise CheckpointError(weights_mismatch(str(path), _describe(name, block), own, state,
                                                   {k: tuple(v.shape) for k, v in own.items()})) from None
    if pretrained is None:
        pretrained = False
    elif not isinstance(pretrained, bool):
        raise ArgumentTypeError(f"pretrained must be True, False (or None) or a weights file, got {pretrained!r}")
    if pretrained:
        kwargs = _locate_weights(name, kwargs)
    try:
        return _build(name, blocks, pretrained=pretrained, **kwargs)
    except GloreError:
        raise
    except OSError as exc:        # a hub or URL error after the check (HTTP errors, time-outs)
        if not pretrained:
            raise
        raise WeightsUnavailableError(f"cannot download the pretrained weights of {name}: {type(exc).__name__}: "
                                      f"{' '.join(str(exc).split())[:300]}; pass a local file instead, "
                                      f"pretrained=/path/{name}.safetensors") from exc


def _build(name: str, blocks: Mapping | None, *, pretrained: bool, **kwargs) -> nn.Module:
    if name.startswith("tv_"):
        return build_torchvision(name[3:], blocks, pretrained=pretrained, **kwargs)
    if name in registry.CONFIGS:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    return build_timm(name, name, blocks, pretrained=pretrained, **kwargs)


def _describe(name: str, block: str | None) -> str:
    return f"{name} + {block}" if block else name


def _locate_weights(name: str, kwargs: dict) -> dict:
    """``kwargs`` for ``pretrained=True``: with a cached hub file as the weights file; failing in
    seconds, with the local-file option, when the weights are neither cached nor downloadable
    (:mod:`glore.models.weights`)."""
    local = f"pretrained=/path/{name}.safetensors"
    if name.startswith("tv_"):
        if kwargs.get("weights") is None:
            check_url_weights(get_model_weights(name[3:]).DEFAULT.url, model=name, local_option=local)
        return kwargs
    cfg = get_pretrained_cfg(name)
    overlay = dict(kwargs.get("pretrained_cfg_overlay") or {})
    settings = {**(cfg.to_dict() if cfg is not None else {}), **overlay}
    if kwargs.get("pretrained_cfg") is not None or settings.get("file") or settings.get("state_dict"):
        return kwargs
    if settings.get("hf_hub_id"):
        filename = settings.get("hf_hub_filename")
        cached = check_hub_weights(settings["hf_hub_id"], [filename] if filename else
                                   ["model.safetensors", "pytorch_model.bin"], model=name, local_option=local)
        if cached is not None:
            return {**kwargs, "pretrained_cfg_overlay": {**overlay, "file": cached}}
    elif settings.get("url"):
        check_url_weights(settings["url"], model=name, local_option=local)
    return kwargs
