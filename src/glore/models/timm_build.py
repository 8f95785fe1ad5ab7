"""Building a timm backbone with blocks: through timm's own ``build_model_with_cfg`` for the ResNet
family and DPN (the blocks in place before timm loads pretrained weights), and for the families of
:mod:`glore.models.timm_hosts` timm's ``create_model`` first, the blocks after."""

from __future__ import annotations

from collections.abc import Mapping

import timm
from timm.models import build_model_with_cfg, get_pretrained_cfg
from torch import nn

from glore.errors import ArgumentError
from .insert import find_stages, inserted_blocks, insert_blocks
from .keyword_errors import explain_timm_keyword
from .loading import load_checkpoint

__all__ = ["TIMM_MODULES", "TIMM_GENERIC_MODULES", "timm_family", "keep_inserted_blocks", "move_stride_to_1x1",
           "build_timm"]

# timm modules whose models find_stages understands: the ResNet family and DPN through
# glore.models.hosts, the others through glore.models.timm_hosts
TIMM_MODULES = ("resnet", "dpn")
TIMM_GENERIC_MODULES = ("convnext", "regnet", "resnetv2", "efficientnet", "mobilenetv3", "cspnet", "byobnet",
                        "vision_transformer", "deit", "swin_transformer", "hrnet")
# timm's features_only wrapper settings of these families (as their own builders set them)
_FEATURE_CFGS = {"resnet": {}, "dpn": {"feature_concat": True, "flatten_sequential": True}}


def timm_family(name: str) -> str | None:
    """The timm module (of :data:`TIMM_MODULES` and :data:`TIMM_GENERIC_MODULES`) defining model ``name``."""
    return next((m for m in TIMM_MODULES + TIMM_GENERIC_MODULES if name in timm.list_models(module=m)), None)


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
    checkpoint_path = kwargs.pop("checkpoint_path", None)
    family = timm_family(backbone)
    if family in TIMM_GENERIC_MODULES:
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
        raise explain_timm_keyword(exc, backbone, family) from exc
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
    pretrained_cfg = kwargs.pop("pretrained_cfg", None)
    if variant != backbone and (pretrained_cfg is None or isinstance(pretrained_cfg, str)):
        pretrained_cfg = get_pretrained_cfg(f"{variant}.{pretrained_cfg}" if pretrained_cfg else variant)
    model = timm.create_model(backbone, pretrained=pretrained, pretrained_cfg=pretrained_cfg, **kwargs)
    if blocks:
        insert_blocks(model, **blocks)
    return model
