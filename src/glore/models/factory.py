"""``create_model``: a timm or torchvision ResNet-family / DPN backbone with blocks, in one line.

>>> model = create_model("resnet50", block="glore", units=(0, 3))   # GloRe paper's R50 + Ours(0, 3)
>>> model = create_model("resnet50", pretrained=True, block="gc", units="all", num_classes=200)

timm backbones are built through timm's own builder (``build_model_with_cfg``), so timm's keywords
(``pretrained_cfg_overlay=dict(file=...)``, ``features_only``, ``out_indices``, ``in_chans``,
``drop_path_rate``, ``num_classes``, ``device``, ...) mean what they mean in ``timm.create_model``.
Pretrained weights are the backbone's; the inserted blocks keep their initialisation, the identity
for zero-initialised blocks, so the model starts with the pretrained backbone's outputs.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from glore.checkpoint import CheckpointError
from glore.errors import ArgumentError, ArgumentTypeError, GloreError, MissingFileError
from .hosts import rename_legacy_keys
from .insert import check_block_kwargs, find_stages, inserted_blocks, insert_blocks
from .weights import WeightsUnavailableError, check_hub_weights, check_url_weights, weights_mismatch

# torchvision builders reachable as "tv_<name>"
TORCHVISION_BACKBONES = (
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
    "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2",
)
# timm modules whose models find_stages understands: the ResNet family and DPN through
# glore.models.hosts, the others through glore.models.timm_hosts
_TIMM_MODULES = ("resnet", "dpn")
_TIMM_GENERIC_MODULES = ("convnext", "regnet", "resnetv2", "efficientnet", "mobilenetv3", "cspnet", "byobnet",
                         "vision_transformer", "deit", "swin_transformer", "hrnet")
# timm's features_only wrapper settings of these families (as their own builders set them)
_FEATURE_CFGS = {"resnet": {}, "dpn": {"feature_concat": True, "flatten_sequential": True}}
# keywords that timm.create_model / build_model_with_cfg take besides the model class's own
_TIMM_BUILD_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir",
                      "scriptable", "exportable", "no_jit", "features_only", "out_indices",
                      "feature_cls", "output_stride")


def available_backbones() -> list[str]:
    """Names accepted by :func:`create_model`: timm ResNet-family and DPN models, ``tv_*`` ResNets,
    and the paper configurations registered by :mod:`glore.models.registry`."""
    import timm

    from . import registry

    names = set(registry.CONFIGS) | {f"tv_{n}" for n in TORCHVISION_BACKBONES}
    for module in _TIMM_MODULES + _TIMM_GENERIC_MODULES:
        names.update(timm.list_models(module=module))
    return sorted(names)


def _timm_family(name: str) -> str | None:
    import timm

    return next((m for m in _TIMM_MODULES + _TIMM_GENERIC_MODULES if name in timm.list_models(module=m)), None)


def _check_name(name: str) -> None:
    if not isinstance(name, str):
        raise ArgumentTypeError(f"model name must be a str, got {type(name).__name__}")
    names = available_backbones()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
        hint = f"; close matches: {close}" if close else ""
        raise ArgumentError(f"unknown backbone {name!r}: expected a timm ResNet-family, DPN, ConvNeXt, RegNet, "
                         f"ResNetV2, EfficientNet, MobileNetV3, CSPNet, ByobNet, ViT/DeiT, Swin or HRNet name, "
                         f"tv_<torchvision resnet> or a registered configuration{hint}")


def keep_inserted_blocks(state_dict: dict, model: nn.Module) -> dict:
    """timm ``pretrained_filter_fn``: a backbone's state dict, plus ``model``'s own tensors of the
    inserted blocks that it lacks, so that timm's strict load leaves the blocks as initialised."""
    prefixes = tuple(f"{name}." for name in inserted_blocks(model))
    own = {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)} if prefixes else {}
    return {**own, **state_dict}


def move_stride_to_1x1(model: nn.Module) -> nn.Module:
    """The original ResNet's downsampling (He et al., arXiv 1512.03385, and its Caffe release): the
    stride of a stage's first bottleneck on its first 1x1 conv instead of its 3x3 conv (timm's and
    torchvision's "v1.5"), in place. The weights keep their shapes and names, so the same checkpoints
    load; ResNet-50 counts 3.86 GMACs at 224x224 instead of 4.09 (GCNet Tables 8-9)."""
    for stage, hosts in find_stages(model).items():
        for host in hosts:
            block = host.module
            conv1, conv2 = getattr(block, "conv1", None), getattr(block, "conv2", None)
            anti_aliased = not isinstance(getattr(block, "aa", nn.Identity()), nn.Identity)
            if not isinstance(conv1, nn.Conv2d) or conv1.kernel_size != (1, 1) or not hasattr(block, "conv3") \
                    or anti_aliased:
                raise ArgumentError(f"stride_in_1x1 needs ResNet bottleneck blocks (1x1, 3x3, 1x1 convs, no "
                                    f"anti-aliasing), got {type(block).__name__} ({host.name}, {stage})")
            if conv2.stride != (1, 1):
                conv1.stride, conv2.stride = conv2.stride, (1, 1)
    return model


def build_timm(variant: str, backbone: str, blocks: Mapping | None, *, pretrained: bool = False,
               stride_in_1x1: bool = False, **kwargs) -> nn.Module:
    """Build timm ``backbone`` with ``blocks`` (:func:`insert_blocks` arguments) under the pretrained
    config of ``variant`` (``backbone`` itself, or a registered configuration), through timm's
    ``build_model_with_cfg``: pretrained loading, ``features_only`` wrappers and the model's
    ``pretrained_cfg`` are timm's. ``checkpoint_path`` is read after building, as timm does.
    ``stride_in_1x1`` builds the original ResNet (:func:`move_stride_to_1x1`)."""
    import timm
    from timm.models import build_model_with_cfg

    checkpoint_path = kwargs.pop("checkpoint_path", None)
    family = _timm_family(backbone)
    if family in _TIMM_GENERIC_MODULES:
        model = _build_timm_then_insert(variant, backbone, blocks, pretrained=pretrained, **kwargs)
        if checkpoint_path:
            load_checkpoint(model, checkpoint_path)
        return model

    def backbone_with_blocks(**model_kwargs):
        model = timm.create_model(backbone, pretrained=False, **model_kwargs)
        if stride_in_1x1:
            move_stride_to_1x1(model)
        if blocks:
            insert_blocks(model, **blocks)
        return model

    try:
        model = build_model_with_cfg(backbone_with_blocks, variant, pretrained,
                                     feature_cfg=dict(_FEATURE_CFGS.get(family, {})),
                                     pretrained_filter_fn=keep_inserted_blocks, **kwargs)
    except TypeError as exc:
        raise _explain_keyword(exc, backbone, family) from exc
    if checkpoint_path:
        load_checkpoint(model, checkpoint_path)
    return model


def _build_timm_then_insert(variant: str, backbone: str, blocks: Mapping | None, *, pretrained: bool,
                            **kwargs) -> nn.Module:
    """The families of :mod:`glore.models.timm_hosts`: timm builds the plain backbone with all of
    its own machinery (pretrained weights and their filter, ``features_only`` wrapper), then the
    blocks go in at their initialisation, so a pretrained model gives the backbone's outputs.
    ``variant``'s pretrained cfg (a registered configuration's: its backbone's, under its name)
    becomes the model's."""
    import timm
    from timm.models import get_pretrained_cfg

    pretrained_cfg = kwargs.pop("pretrained_cfg", None)
    if variant != backbone and (pretrained_cfg is None or isinstance(pretrained_cfg, str)):
        pretrained_cfg = get_pretrained_cfg(f"{variant}.{pretrained_cfg}" if pretrained_cfg else variant)
    model = timm.create_model(backbone, pretrained=pretrained, pretrained_cfg=pretrained_cfg, **kwargs)
    if blocks:
        insert_blocks(model, **blocks)
    return model


def _explain_keyword(exc: TypeError, backbone: str, family: str | None) -> TypeError:
    """A ``TypeError`` naming the keyword the backbone does not take, and those it takes."""
    found = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    if not found or family not in _TIMM_MODULES:
        return exc
    import timm.models.dpn
    import timm.models.resnet

    cls = {"resnet": timm.models.resnet.ResNet, "dpn": timm.models.dpn.DPN}[family]
    own = [n for n in inspect.signature(cls).parameters if n not in ("self", "kwargs")]
    return TypeError(f"{backbone} does not take the keyword {found.group(1)!r}: timm's {cls.__name__} "
                     f"takes {sorted(own)}, and timm.create_model also takes {list(_TIMM_BUILD_KWARGS)}")


def build_torchvision(name: str, blocks: Mapping | None, *, pretrained: bool = False,
                      stride_in_1x1: bool = False, **kwargs) -> nn.Module:
    """torchvision ResNet ``name`` (``weights=`` the torchvision way; ``pretrained=True`` is
    ``weights="DEFAULT"``) with ``blocks`` inserted."""
    import torchvision

    if pretrained and kwargs.get("weights") is not None:
        raise ArgumentError(f"tv_{name}: give pretrained=True or weights=, not both (got weights="
                         f"{kwargs['weights']!r})")
    if pretrained:
        kwargs["weights"] = "DEFAULT"
    checkpoint_path = kwargs.pop("checkpoint_path", None)
    builder = getattr(torchvision.models, name)
    try:
        model = builder(**kwargs)
    except TypeError as exc:
        found = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if not found:
            raise
        own = [n for n in inspect.signature(torchvision.models.ResNet).parameters if n != "self"]
        raise ArgumentTypeError(f"tv_{name} does not take the keyword {found.group(1)!r}: torchvision's "
                        f"ResNet takes {sorted(own)}, and its builder takes ['progress', 'weights']"
                        ) from exc
    if stride_in_1x1:
        move_stride_to_1x1(model)
    if blocks:
        insert_blocks(model, **blocks)
    if checkpoint_path:
        load_checkpoint(model, checkpoint_path)
    return model


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
    _check_name(name)                   # first: a misspelt name is the likeliest mistake
    num_classes = kwargs.get("num_classes")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0):
        raise ArgumentError(f"num_classes must be an integer >= 0 (0: no classifier, the pooled features), "
                            f"got {num_classes!r}")
    block_kwargs = dict(block_kwargs or {})
    if block is None and (units is not None or position is not None or block_kwargs):
        raise ArgumentError(f"units, position and block_kwargs need a block; got block=None with "
                         f"units={units!r}, position={position!r}, block_kwargs {sorted(block_kwargs)}")
    if block is not None and units is None:
        raise ArgumentError(f"block={block!r} needs units, e.g. units=(0, 3) or {{'res4': [5]}}; got None")
    blocks = None
    if block is not None:
        if not isinstance(block, str):
            raise ArgumentError(f"block must be a block name, got {block!r}")
        from ..nn import BLOCKS

        if block.lower() not in BLOCKS:
            raise ArgumentError(f"unknown block {block!r}; expected one of {sorted(BLOCKS)}")
        check_block_kwargs(block.lower(), block_kwargs)
        blocks = dict(block=block, units=units, position=position, **block_kwargs)
    if not isinstance(stride_in_1x1, bool):
        raise ArgumentTypeError(f"stride_in_1x1 must be true or false, got {stride_in_1x1!r}")
    if stride_in_1x1:
        kwargs["stride_in_1x1"] = True
    from . import registry

    if name in registry.CONFIGS and blocks:
        raise ArgumentError(f"{name} is a registered configuration with its blocks already in "
                         f"place; pass its backbone {registry.CONFIGS[name].backbone!r} to add "
                         f"other blocks, got block={block!r}")
    if isinstance(pretrained, (str, os.PathLike)):
        path = Path(pretrained)
        if not path.is_file():
            raise MissingFileError(f"pretrained weights file not found: {str(path)!r}")
        state = _read_state_dict(path)            # a file that is not a checkpoint is named here
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
    from . import registry

    if name in registry.CONFIGS:
        import timm

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
            from torchvision.models import get_model_weights

            check_url_weights(get_model_weights(name[3:]).DEFAULT.url, model=name, local_option=local)
        return kwargs
    from timm.models import get_pretrained_cfg

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


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    from glore.checkpoint import read_state_dict

    return read_state_dict(path)


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a local state dict into any glore model (no downloads): image, segmentation or 3D.

    Keys of inserted blocks that the file lacks (a backbone checkpoint, as when fine-tuning from
    ImageNet weights) keep their initialisation, the identity for zero-initialised blocks, and are
    named in a warning. Any other missing key, any unexpected key and any shape mismatch raises a
    ``ValueError`` naming them. Names of earlier layouts are renamed first: the hook-era
    ``<block>_<position>`` blocks, and the authors' released 3D networks (``conv2.B01.conv_m1...``).
    """
    from glore.checkpoint import load_checkpoint as load_weights

    blocks = tuple(f"{name}." for name in inserted_blocks(model))
    return load_weights(model, path, strict=True, optional=blocks, rename=_rename_earlier_layouts)


def _rename_earlier_layouts(state: dict) -> dict:
    from .video_official import convert_official_video_state_dict, is_official_video_state_dict

    if is_official_video_state_dict(state):
        return convert_official_video_state_dict(state)
    return rename_legacy_keys(state)
