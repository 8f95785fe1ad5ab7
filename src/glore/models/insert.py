"""Insert GloRe / global-context blocks into ResNet-family and DPN backbones, and by stage and
block index into timm's other CNN families and vision transformers (:mod:`glore.models.timm_hosts`).

Stages are named as in the GloRe paper: ``res2`` .. ``res5`` (timm and torchvision ``layer1`` ..
``layer4``, DPN ``conv2_*`` .. ``conv5_*``). Blocks go at one of two positions of a residual block
(GCNet Table 5b): ``after_add``, after the residual addition (the default for ``glore``, ``nl`` and
``snl``), or ``after_1x1``, inside the residual branch after its last conv and norm (the default for
``gc`` and ``se``). An inserted block becomes the submodule of that name of the residual block it
sits in (``layer3.0.after_add``); see :mod:`glore.models.hosts`. The backbone's own state-dict keys
are unchanged, so backbone checkpoints still load, and timm's ``features_only`` wrappers, stage
outputs and ``forward_intermediates`` include the blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torch import nn

from glore.errors import ArgumentError, ArgumentTypeError
from ..nn import BLOCKS, create_block
from . import hrnet, timm_hosts
from .hosts import SLOTS, as_host, host_channels, offered_positions
from .placement import (ALL_STAGES, BLOCK_TABLE, POSITIONS, Placement, block_name, block_options,  # noqa: F401
                        check_block_kwargs, deprecated, gc_ratio, parse_placement, resolve_units)

STAGES = ("res2", "res3", "res4", "res5")


def __getattr__(name: str):
    if name in ("DEFAULT_POSITION", "INSERT_DEFAULTS"):
        new = {"DEFAULT_POSITION": "BLOCK_TABLE[block].position",
               "INSERT_DEFAULTS": "BLOCK_TABLE[block].start"}[name]
        deprecated(f"glore.models.insert.{name}", f"glore.models.placement.{new}")
        return {block: (d.position if name == "DEFAULT_POSITION" else dict(d.start))
                for block, d in BLOCK_TABLE.items() if name == "DEFAULT_POSITION" or d.start}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Host:
    """A residual block that can host inserted blocks: its qualified name and the module."""

    name: str
    module: nn.Module


_RESNET_LAYERS = ("layer1", "layer2", "layer3", "layer4")


def _resnet_hosts(model: nn.Module) -> dict[str, list[Host]]:
    return {stage: [Host(f"{layer}.{i}", blk) for i, blk in enumerate(getattr(model, layer))]
            for stage, layer in zip(STAGES, _RESNET_LAYERS)}


def _dpn_hosts(model: nn.Module) -> dict[str, list[Host]]:
    """DPN blocks ``conv{2..5}_{i}``: in ``model.features``, or at the top level as
    ``features_conv{2..5}_{i}`` in timm's flattened ``features_only`` wrapper."""
    stages = {stage: [] for stage in STAGES}
    children = ([(f"features.{n}", m) for n, m in model.features.named_children()]
                if isinstance(getattr(model, "features", None), nn.Sequential)
                else [(n, m) for n, m in model.named_children()])
    for name, blk in children:
        head, _, index = name.rsplit(".", 1)[-1].removeprefix("features_").partition("_")
        if head in ("conv2", "conv3", "conv4", "conv5") and index.isdigit():
            stages[f"res{head[4:]}"].append(Host(name, blk))
    return stages


def find_stages(model: nn.Module) -> dict[str, list[Host]]:
    """Return ``{"res2": [Host, ...], ...}``: the residual blocks of each stage, in order.

    Supports timm ``ResNet`` (ResNet, SE-ResNet, ResNeXt, wide ResNet, ECA-ResNet, ...), timm ``DPN``,
    torchvision ``ResNet`` (detection backbones with frozen BatchNorm too), the Slow-only 3D ResNets of
    :mod:`glore.models.slow_only`, timm's HRNet (:mod:`glore.models.hrnet`: ``layer1`` and
    ``stage<s>.<module>.branches.<branch>``), the timm families of :mod:`glore.models.timm_hosts` (ConvNeXt,
    RegNet, ResNetV2, EfficientNet, MobileNetV3, CSPNet, ByobNet, ViT, Swin; their stages named as in
    timm's ``feature_info``, ``stages.2``) and timm's ``features_only`` wrappers of them.
    """
    if all(isinstance(getattr(model, layer, None), nn.Sequential) for layer in _RESNET_LAYERS):
        stages = _resnet_hosts(model)
    else:
        stages = _dpn_hosts(model)
    if not any(stages.values()):
        stages = {stage: [Host(name, blk) for name, blk in hosts]
                  for stage, hosts in hrnet.find_hrnet_stages(model).items()}
    if not any(stages.values()):
        stages = {stage: [Host(name, blk) for name, blk in hosts]
                  for stage, hosts in timm_hosts.find_timm_stages(model).items()}
    if not any(stages.values()):
        raise ArgumentTypeError(f"blocks can be inserted into timm ResNet/SE-ResNet/ResNeXt/wide ResNet, DPN, HRNet, "
                                f"{', '.join(sorted(set(timm_hosts.FAMILIES.values())))} and torchvision ResNet "
                                f"models, got {type(model).__name__}")
    for hosts in stages.values():
        if hosts and timm_hosts.is_timm_block(hosts[0].module):
            continue
        for host in hosts:
            offered_positions(host.module)     # raises for an unsupported block, naming its type
    return stages


def insert_blocks(model: nn.Module, *, block: str, units, position: str | None = None,
                  block_kwargs: Mapping | None = None, **old_block_kwargs) -> nn.Module:
    """Insert ``block`` units into ``model`` (in place) and return it.

    Args:
        model: a timm ResNet-family or DPN model, a torchvision ResNet, or a model of the timm
            families of :mod:`glore.models.timm_hosts` (ConvNeXt, RegNet, ResNetV2, EfficientNet,
            MobileNetV3, CSPNet, ByobNet, ViT/DeiT, Swin).
        block: ``glore``, ``nl``, ``snl``, ``gc``, ``se`` or ``cbam`` (see :func:`glore.nn.create_block`).
        units: where to insert, see :func:`glore.models.placement.resolve_units`: ``(n, m)``,
            ``{"res4": 3}``, ``{"res4": [5]}`` (after block 5), or ``"all"``.
        position: ``after_add`` or ``after_1x1``; defaults to ``after_add`` for ``glore``, ``nl``
            and ``snl``, ``after_1x1`` for ``gc``, ``se`` and ``cbam`` (``after_add`` where a block of the
            families of :mod:`glore.models.timm_hosts` has no branch place).
        block_kwargs: options of the blocks (``{"ratio": 1/4}``, ``{"pairwise": "gaussian"}``, ...),
            over the defaults of :data:`glore.models.placement.BLOCK_TABLE`: GloRe's ``mid`` is the
            hosting stage's bottleneck width ``C/4`` (``planes`` of the stage; also ``C/4`` for
            basic-block ResNets and DPN's residual path, and ``C/4`` of the host's channels in the
            other timm families, where GC's ``ratio`` defaults to :func:`gc_ratio`). SE and CBAM are
            built with ``zero_init=True`` unless given, so that, like every other block, they start
            as the identity (:class:`glore.nn.SqueezeExcite`, :class:`glore.nn.CBAM`). Options given
            as keywords (``ratio=1/4``) still work for one release, with a ``FutureWarning``.

    Raises:
        ValueError: unknown block, stage or position, too many units, a position already taken, or
            a position the backbone does not offer (DPN offers ``after_add`` only).
        TypeError: unsupported model, or a block option the block does not take.
    """
    name = block_name(block)
    if name is None:                        # insert_blocks always inserts something
        raise ArgumentError(f"unknown block {block!r}; expected one of {sorted(BLOCKS)}")
    if old_block_kwargs:
        check_block_kwargs(name, old_block_kwargs)       # a misspelt keyword is named, with no warning first
        deprecated(f"insert_blocks(..., {', '.join(f'{k}=' for k in old_block_kwargs)})",
                   f"block_kwargs={dict(old_block_kwargs)!r}")
        if block_kwargs:
            raise ArgumentError(f"give the block options in block_kwargs only, got block_kwargs={dict(block_kwargs)!r} "
                                f"and the keywords {sorted(old_block_kwargs)}")
        block_kwargs = old_block_kwargs
    return place_blocks(model, parse_placement(block, units, position, block_kwargs))


def place_blocks(model: nn.Module, placement: Placement, settings: Sequence[str] = ()) -> nn.Module:
    """Insert the blocks of ``placement`` into ``model`` (in place), built with the options of
    :func:`glore.models.placement.block_options` in ``settings`` (``"video"``, ...)."""
    block, position = placement.block, placement.slot
    stages = find_stages(model)
    chosen = placement.where({s: len(h) for s, h in stages.items() if h})

    todo = []
    for stage, indices in chosen.items():
        for index in indices:
            host = stages[stage][index - 1]
            generic = timm_hosts.is_timm_block(host.module)
            offered = (timm_hosts.offered_positions if generic else offered_positions)(host.module)
            where = position
            if where not in offered and placement.position is None and generic:
                where = "after_add"     # no branch to act in (a block without a shortcut, a transformer)
            if where not in offered:
                raise ArgumentError(f"position {where!r} is not offered by {type(host.module).__name__} "
                                 f"({host.name}, {stage} block {index}); it offers {list(offered)}")
            held = timm_hosts.slot(host.module, where) if generic else getattr(host.module, where, nn.Identity())
            if not isinstance(held, nn.Identity):
                raise ArgumentError(f"{host.name}.{where} already holds a {type(held).__name__}")
            todo.append((host, where, generic))

    prefix_tokens = timm_hosts.num_prefix_tokens(model)
    for host, where, generic in todo:
        if not generic:
            as_host(host.module)
        channels = timm_hosts.block_channels(host.module) if generic else host_channels(host.module)
        kwargs = block_options(block, channels, placement.block_kwargs, ("timm",) * generic + tuple(settings))
        new = create_block(block, channels, **kwargs)
        param = next(host.module.parameters(), None)
        if param is not None:
            new = new.to(device=param.device, dtype=param.dtype)
        if generic:
            timm_hosts.attach(host.module, where, new, num_prefix_tokens=prefix_tokens)
        else:
            host.module.add_module(where, new)
    return model


def inserted_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """Qualified name -> block for every block inserted by :func:`insert_blocks`."""
    block_types = tuple(BLOCKS.values())
    found = {}
    for name, m in model.named_modules():
        parts = name.split(".")
        in_slot = parts[-1] in SLOTS or (len(parts) > 1 and parts[-2] in SLOTS and parts[-1] == "block")
        if in_slot and isinstance(m, block_types):
            found[name] = m
    return found
