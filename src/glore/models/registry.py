"""The papers' configurations, registered with timm: ``timm.create_model("resnet50_glore_0_3")``.

Importing :mod:`glore.models` registers them, each with a ``pretrained_cfg``: its backbone's default
one (input size, mean/std, crop, and the backbone's ImageNet weights), under the configuration's
name. ``pretrained=True`` loads those backbone weights the way timm loads any model's (hub, cache,
or ``pretrained_cfg_overlay=dict(file=...)``) and leaves the blocks as initialised, the identity.
Every other keyword (``num_classes``, ``features_only``, ``drop_path_rate``, ...) means what it
means for the backbone in ``timm.create_model``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from timm.models import generate_default_cfgs, get_pretrained_cfg, register_model

from glore.errors import ArgumentError
from .placement import BLOCK_TABLE, resolve_units
from .timm_build import build_timm


@dataclass(frozen=True)
class ModelConfig:
    """A backbone with blocks: the arguments of :func:`glore.models.create_model`."""

    backbone: str
    block: str
    units: object
    position: str | None = None
    block_kwargs: Mapping = field(default_factory=dict)
    description: str = ""


_LAST_BUT_ONE_RES4 = {"res4": [5]}   # "right before the last residual block of c4" (ResNet-50: 6 blocks)

CONFIGS: dict[str, ModelConfig] = {
    # GloRe paper Table 2: (n, m) units in Res3 / Res4 after blocks 1, 3, 5
    "resnet50_glore_0_3": ModelConfig("resnet50", "glore", (0, 3), description="R50 + GloRe (0, 3)"),
    "resnet50_glore_2_3": ModelConfig("resnet50", "glore", (2, 3), description="R50 + GloRe (2, 3)"),
    "seresnet50_glore_0_3": ModelConfig("seresnet50", "glore", (0, 3),
                                        description="SE-R50 + GloRe (0, 3)"),
    "resnet200_glore_0_3": ModelConfig("resnet200", "glore", (0, 3), description="R200 + GloRe (0, 3)"),
    "resnet200_glore_2_3": ModelConfig("resnet200", "glore", (2, 3), description="R200 + GloRe (2, 3)"),
    "resnext101_32x4d_glore_2_3": ModelConfig("resnext101_32x4d", "glore", (2, 3),
                                              description="ResNeXt-101 32x4d + GloRe (2, 3)"),
    "dpn98_glore_2_3": ModelConfig("dpn98", "glore", (2, 3), description="DPN-98 + GloRe (2, 3)"),
    "dpn131_glore_2_3": ModelConfig("dpn131", "glore", (2, 3), description="DPN-131 + GloRe (2, 3)"),
    # GCNet paper Table 8a: one block before the last block of res4, or GC (r=16) in every block
    "resnet50_nl": ModelConfig("resnet50", "nl", _LAST_BUT_ONE_RES4, block_kwargs={"sub_sample": True},
                               description="R50 + 1 NL (keys and values 2x2 sub-sampled)"),
    "resnet50_snl": ModelConfig("resnet50", "snl", _LAST_BUT_ONE_RES4, description="R50 + 1 SNL"),
    "resnet50_gc": ModelConfig("resnet50", "gc", _LAST_BUT_ONE_RES4, "after_add",
                               description="R50 + 1 GC (r=16)"),
    "resnet50_gc_all": ModelConfig("resnet50", "gc", "all", description="GC-ResNet-50 (r=16, res3-res5)"),
    # today's families (glore.models.timm_hosts): GloRe as the paper's (0, 3), 3 units in the stride-16
    # stage after blocks 1, 3, 5 (1, 2, 3 in EfficientNet-B0's 3-block stage); GC in every block of
    # every stage but the first, in the branch (after_add where a block has no shortcut)
    "convnext_tiny_glore_0_3": ModelConfig("convnext_tiny", "glore", {"stages.2": 3},
                                           description="ConvNeXt-T + GloRe, 3 units in stages.2"),
    "convnext_tiny_gc_all": ModelConfig("convnext_tiny", "gc", "all",
                                        description="ConvNeXt-T + GC in every block of stages.1-3"),
    "regnety_040_glore_0_3": ModelConfig("regnety_040", "glore", {"s3": 3},
                                         description="RegNetY-4GF + GloRe, 3 units in s3"),
    "regnety_040_gc_all": ModelConfig("regnety_040", "gc", "all", description="RegNetY-4GF + GC in every block of s2-s4"),
    "efficientnet_b0_glore_0_3": ModelConfig("efficientnet_b0", "glore", {"blocks.4": 3},
                                             description="EfficientNet-B0 + GloRe, 3 units in blocks.4"),
    "efficientnet_b0_gc_all": ModelConfig("efficientnet_b0", "gc", "all",
                                          description="EfficientNet-B0 + GC in every block of blocks.1-6"),
    "resnetv2_50_glore_0_3": ModelConfig("resnetv2_50", "glore", {"stages.2": 3},
                                         description="ResNetV2-50 + GloRe, 3 units in stages.2"),
    "resnetv2_50_gc_all": ModelConfig("resnetv2_50", "gc", "all",
                                      description="ResNetV2-50 + GC in every block of stages.1-3"),
    "vit_small_patch16_224_glore": ModelConfig("vit_small_patch16_224", "glore", {"blocks": [3, 6, 9]},
                                               description="ViT-S/16 + GloRe on the patch tokens after blocks 3, 6, 9"),
    "vit_small_patch16_224_gc_all": ModelConfig("vit_small_patch16_224", "gc", "all",
                                                description="ViT-S/16 + GC on the patch tokens after every block"),
}


def blocks_of(cfg: ModelConfig) -> dict:
    """:func:`glore.models.insert_blocks` arguments of configuration ``cfg``."""
    return dict(block=cfg.block, units=cfg.units, position=cfg.position, block_kwargs=dict(cfg.block_kwargs))


def build_config(name: str, pretrained: bool = False, **kwargs):
    """Build registered configuration ``name``; ``kwargs`` as for ``timm.create_model``."""
    if name not in CONFIGS:
        raise ArgumentError(f"unknown configuration {name!r}; expected one of {sorted(CONFIGS)}")
    cfg = CONFIGS[name]
    return build_timm(name, cfg.backbone, blocks_of(cfg), pretrained=pretrained, **kwargs)


def find_config(backbone: str, block: str | None, units, position: str | None, block_kwargs: Mapping,
                depths: Mapping[str, int]) -> str | None:
    """Name of the registered configuration equal to these arguments (same placement), else None.

    A plain backbone (``block=None``) is its own name. ``depths`` are the backbone's stage depths.
    """
    if block is None:
        return backbone
    if backbone in CONFIGS:
        return None
    placement = resolve_units(units, depths)
    position = position or (BLOCK_TABLE[block].position if block in BLOCK_TABLE else None)
    for name, cfg in CONFIGS.items():
        if (cfg.backbone == backbone and cfg.block == block
                and (cfg.position or BLOCK_TABLE[cfg.block].position) == position
                and dict(cfg.block_kwargs) == dict(block_kwargs)
                and resolve_units(cfg.units, depths) == placement):
            return name
    return None


def _entrypoint(name: str):
    def entrypoint(pretrained: bool = False, **kwargs):
        return build_config(name, pretrained=pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"{CONFIGS[name].description}: {CONFIGS[name]}"
    return entrypoint


def _pretrained_cfgs() -> dict:
    """``"<configuration>.<tag>"`` -> the default pretrained cfg of its backbone (same tag)."""
    cfgs = {}
    for name, cfg in CONFIGS.items():
        base = get_pretrained_cfg(cfg.backbone).to_dict()
        tag = base.pop("tag", None)
        base.pop("architecture", None)
        cfgs[f"{name}.{tag}" if tag else name] = base
    return cfgs


# read by timm's register_model: each configuration's pretrained cfg
default_cfgs = generate_default_cfgs(_pretrained_cfgs())

for _name in CONFIGS:
    globals()[_name] = register_model(_entrypoint(_name))
del _name
