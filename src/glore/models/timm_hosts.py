"""Blocks by stage and block index in timm's other CNN families and in vision transformers.

The ResNet family and DPN have hand-written hosts (:mod:`glore.models.hosts`); every family below
keeps its own forward. A block that receives a unit becomes a subclass of its own class,
``<module>_<Class>`` of this module, whose forward is the class's forward followed by the slot::

    after_add(<Class>.forward(x))

so ``after_add`` acts on the block's output wherever the block runs (the stage's forward, timm's
``forward_intermediates``, gradient checkpointing, the feature wrappers). ``after_1x1``, inside the
residual branch, is the family's last module before the shortcut is added, the block's
``drop_path``: it becomes a :class:`BranchEnd` that runs the unit, then the drop path. Where a block
has no shortcut (the first block of an EfficientNet or MobileNetV3 stage) or no such module
(transformers, RepVGG, MobileOne) only ``after_add`` is offered.

Stages are the containers of the blocks, named as in timm's ``feature_info``: ``stages.2``
(ConvNeXt, ResNetV2, CSPNet, ByobNet), ``s3`` (RegNet), ``blocks.4`` (EfficientNet, MobileNetV3),
``layers.2`` (Swin); a ViT's blocks are one stage, ``blocks``. Transformer tokens reach the unit as
a feature map: a ViT's patch tokens as a sequence ``(B, C, L)`` with the class and register tokens
set aside and put back (:class:`PatchTokens`), a Swin stage's ``(B, H, W, C)`` tokens as the image
``(B, C, H, W)`` they tile (:class:`TokenImage`).
"""

from __future__ import annotations

import re
import types
from typing import Optional

import torch
from timm.models import byobnet, convnext, cspnet, regnet, resnetv2, swin_transformer, vision_transformer
from torch import nn

from glore._internals import timm_blocks as efficientnet_blocks
from glore.errors import ArgumentError

# block class -> family, as the docs name it
FAMILIES: dict[type, str] = {
    convnext.ConvNeXtBlock: "ConvNeXt",
    regnet.Bottleneck: "RegNet", regnet.PreBottleneck: "RegNet",
    resnetv2.PreActBasic: "ResNetV2", resnetv2.PreActBottleneck: "ResNetV2", resnetv2.Bottleneck: "ResNetV2",
    efficientnet_blocks.ConvBnAct: "EfficientNet", efficientnet_blocks.DepthwiseSeparableConv: "EfficientNet",
    efficientnet_blocks.InvertedResidual: "EfficientNet", efficientnet_blocks.CondConvResidual: "EfficientNet",
    efficientnet_blocks.EdgeResidual: "EfficientNet", efficientnet_blocks.UniversalInvertedResidual: "EfficientNet",
    cspnet.BottleneckBlock: "CSPNet", cspnet.DarkBlock: "CSPNet", cspnet.EdgeBlock: "CSPNet",
    byobnet.BasicBlock: "ByobNet", byobnet.BottleneckBlock: "ByobNet", byobnet.DarkBlock: "ByobNet",
    byobnet.EdgeBlock: "ByobNet", byobnet.SelfAttnBlock: "ByobNet", byobnet.RepVggBlock: "ByobNet",
    byobnet.MobileOneBlock: "ByobNet",
    vision_transformer.Block: "ViT", vision_transformer.ResPostBlock: "ViT",
    swin_transformer.SwinTransformerBlock: "Swin",
}
# blocks whose forward is `drop_path(branch) + shortcut`: after_1x1 acts before drop_path
_BRANCH_BEFORE_DROP_PATH = frozenset(FAMILIES) - {
    byobnet.RepVggBlock, byobnet.MobileOneBlock, vision_transformer.Block, vision_transformer.ResPostBlock,
    swin_transformer.SwinTransformerBlock}
_SEQUENCE_TOKENS = frozenset({vision_transformer.Block, vision_transformer.ResPostBlock})
_NHWC_TOKENS = frozenset({swin_transformer.SwinTransformerBlock})


class _AfterAdd:
    """Mixed in before a timm block class: the class's own forward, then the ``after_add`` slot."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.after_add(self.block_forward(x))


class _AfterAddMasked(_AfterAdd):
    """The same for ViT blocks, whose forward also takes an attention mask."""

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                is_causal: bool = False) -> torch.Tensor:
        return self.after_add(self.block_forward(x, attn_mask=attn_mask, is_causal=is_causal))


def _renamed(fn, name: str):
    """``fn`` under another name: TorchScript compiles each method under its function's name, and
    the class's ``forward`` must not clash with the subclass's."""
    code = fn.__code__.replace(co_name=name, co_qualname=name)
    new = types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__, new.__annotations__, new.__qualname__ = fn.__kwdefaults__, fn.__annotations__, name
    return new


def _class_name(cls: type) -> str:
    return f"{cls.__module__.rsplit('.', 1)[-1]}_{cls.__name__}"


_BY_NAME = {_class_name(cls): cls for cls in FAMILIES}


def slotted_class(cls: type) -> type:
    """The subclass of timm block class ``cls`` with the ``after_add`` slot (made once; importable
    from this module by name, so models holding it pickle)."""
    name = _class_name(cls)
    if name not in globals():
        mixin = _AfterAddMasked if cls in _SEQUENCE_TOKENS else _AfterAdd
        globals()[name] = type(name, (mixin, cls), {
            "block_forward": _renamed(cls.forward, "block_forward"), "__module__": __name__,
            "__qualname__": name, "__doc__": f"timm's {cls.__name__} with an ``after_add`` slot."})
    return globals()[name]


def __getattr__(name: str):
    if name in _BY_NAME:                  # unpickling a model saved in another process
        return slotted_class(_BY_NAME[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def base_class(block: nn.Module) -> type:
    """The timm class of ``block`` (its own class until it hosts a unit)."""
    cls = type(block)
    return next(c for c in cls.__mro__ if not issubclass(c, _AfterAdd)) if issubclass(cls, _AfterAdd) else cls


def is_timm_block(block: nn.Module) -> bool:
    return base_class(block) in FAMILIES


class BranchEnd(nn.Module):
    """The end of a residual branch: the unit in ``after_1x1``, then the block's own drop path."""

    def __init__(self, after_1x1: nn.Module, drop_path: nn.Module):
        super().__init__()
        self.after_1x1 = after_1x1
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.after_1x1(x))


class PatchTokens(nn.Module):
    """A unit on a ViT's patch tokens as a sequence; the class and register tokens pass unchanged."""

    def __init__(self, block: nn.Module, num_prefix_tokens: int):
        super().__init__()
        self.block = block
        self.num_prefix_tokens = int(num_prefix_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # (B, P + L, C)
        prefix = x[:, :self.num_prefix_tokens]                # (B, P, C)
        patches = x[:, self.num_prefix_tokens:].transpose(1, 2)   # (B, C, L)
        patches = self.block(patches).transpose(1, 2)         # (B, L, C)
        return torch.cat([prefix, patches], dim=1)            # (B, P + L, C)


class TokenImage(nn.Module):
    """A unit on a Swin stage's ``(B, H, W, C)`` tokens as the image they tile."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # (B, H, W, C)
        return self.block(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)   # (B, C, H, W) -> (B, H, W, C)


def offered_positions(block: nn.Module) -> tuple[str, ...]:
    """``after_add`` for every block; ``after_1x1`` too where the block adds a shortcut after its
    ``drop_path`` (not EfficientNet blocks without a shortcut)."""
    cls = base_class(block)
    if cls in _BRANCH_BEFORE_DROP_PATH and getattr(block, "has_skip", True) \
            and isinstance(getattr(block, "drop_path", None), nn.Module):
        return ("after_add", "after_1x1")
    return ("after_add",)


def block_channels(block: nn.Module) -> int:
    """Channels of ``block``'s output: those of its last conv or linear layer (the branch's last
    1x1, or a shortcut projection or SE expansion after it, which have as many)."""
    last = [m for m in block.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not last:
        raise ArgumentError(f"cannot tell the output channels of {type(block).__name__}: it has no conv or linear layer")
    return last[-1].out_channels if isinstance(last[-1], nn.Conv2d) else last[-1].out_features


def slot(block: nn.Module, position: str) -> nn.Module:
    """The module now in ``position`` of ``block`` (``nn.Identity`` while empty)."""
    if position == "after_1x1":
        end = block.drop_path
        return end.after_1x1 if isinstance(end, BranchEnd) else nn.Identity()
    return getattr(block, "after_add", nn.Identity())


def attach(block: nn.Module, position: str, unit: nn.Module, *, num_prefix_tokens: int = 0) -> None:
    """Put ``unit`` into ``position`` of ``block`` (in place; the block keeps its keys)."""
    cls = base_class(block)
    if cls in _SEQUENCE_TOKENS:
        unit = PatchTokens(unit, num_prefix_tokens)
    elif cls in _NHWC_TOKENS:
        unit = TokenImage(unit)
    if position == "after_1x1":
        block.drop_path = BranchEnd(unit, block.drop_path)
        return
    if type(block) is cls:
        block.__class__ = slotted_class(cls)
    block.after_add = unit


def num_prefix_tokens(model: nn.Module) -> int:
    """Class and register tokens of a ViT (or of the ViT in timm's feature wrapper), else 0."""
    inner = getattr(model, "model", model)
    return int(getattr(model, "num_prefix_tokens", getattr(inner, "num_prefix_tokens", 0)) or 0)


_FLATTENED = re.compile(r"^([A-Za-z]+)_(\d+)(?=\.|$)")


def stage_name(container: str) -> str:
    """The stage name of a container of blocks: ``stages.2.blocks`` -> ``stages.2``; timm's
    flattened feature wrappers' ``stages_2.blocks`` -> ``stages.2``; a ViT's ``blocks`` stays."""
    name = container.removeprefix("model.")           # timm's FeatureGetterNet holds the model
    name = _FLATTENED.sub(r"\1.\2", name)
    return name.removesuffix(".blocks") if name != "blocks" else name


def find_timm_stages(model: nn.Module) -> dict[str, list[tuple[str, nn.Module]]]:
    """``{stage: [(qualified name, block), ...]}`` for every block of a family in :data:`FAMILIES`."""
    stages: dict[str, list[tuple[str, nn.Module]]] = {}
    for name, module in model.named_modules():
        if "." in name and is_timm_block(module):
            container = name.rsplit(".", 1)[0]
            stages.setdefault(stage_name(container), []).append((name, module))
    return stages
