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

STAGES = ("res2", "res3", "res4", "res5")
POSITIONS = ("after_add", "after_1x1")
DEFAULT_POSITION = {"glore": "after_add", "nl": "after_add", "snl": "after_add",
                    "gc": "after_1x1", "se": "after_1x1", "cbam": "after_1x1"}
# block options insert_blocks sets unless given: every inserted block starts as the identity
INSERT_DEFAULTS = {"se": {"zero_init": True}, "cbam": {"zero_init": True}}
# units="all": one block in every residual block of these stages (GC-ResNet, GCNet §4)
ALL_STAGES = ("res3", "res4", "res5")


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


def _spread(count: int, depth: int) -> tuple[int, ...]:
    """1-based block indices for ``count`` units in a stage of ``depth`` blocks.

    After blocks 1, 3, 5, ... (every other block from the first, GloRe paper §4.2) when that fits;
    otherwise spread evenly from block 1: ``1 + floor(i * depth / count)``.
    """
    if 2 * count - 1 <= depth:
        return tuple(range(1, 2 * count, 2))
    return tuple(1 + (i * depth) // count for i in range(count))


def _check_count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgumentError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def resolve_units(units, depths: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """Turn ``units`` into ``{stage: (1-based block indices after which to insert)}``.

    Args:
        units: ``(n, m)`` (n in ``res3``, m in ``res4``, the GloRe paper's notation); a dict from
            stage name to a count or to a list of 1-based block indices; or ``"all"`` (every block
            of ``res3``-``res5``; in other families every block of every stage but the first, or
            of the one stage of a ViT).
        depths: number of blocks of each stage of the backbone.

    Stages without units are left out of the result.
    """
    if isinstance(units, str):
        if units != "all":
            raise ArgumentError(f"units must be (n, m), a dict {{stage: count or indices}} or 'all', "
                             f"got {units!r}")
        every = [s for s in ALL_STAGES if s in depths] or list(depths)[1:] or list(depths)
        spec = {stage: list(range(1, depths[stage] + 1)) for stage in every}
    elif isinstance(units, Mapping):
        spec = dict(units)
    elif isinstance(units, Sequence) and len(units) == 2:
        spec = {"res3": units[0], "res4": units[1]}
    else:
        raise ArgumentError(f"units must be (n, m), a dict {{stage: count or indices}} or 'all', "
                         f"got {units!r}")

    placement = {}
    for stage, value in spec.items():
        if stage not in depths:
            raise ArgumentError(f"unknown stage {stage!r}; this backbone has stages {sorted(depths)}")
        depth = depths[stage]
        if isinstance(value, Sequence) and not isinstance(value, str):
            indices = tuple(_check_count(i, f"block index in {stage}") for i in value)
            bad = [i for i in indices if not 1 <= i <= depth]
            if bad:
                raise ArgumentError(f"{stage} has {depth} blocks (indices 1..{depth}), got indices {bad}")
            if len(set(indices)) != len(indices):
                raise ArgumentError(f"{stage}: block indices must be distinct, got {list(indices)}")
            indices = tuple(sorted(indices))
        else:
            count = _check_count(value, f"units in {stage}")
            if count > depth:
                raise ArgumentError(f"{stage} has {depth} blocks, cannot place {count} units in it")
            indices = _spread(count, depth)
        if indices:
            placement[stage] = indices
    return placement


def insert_blocks(model: nn.Module, *, block: str, units, position: str | None = None,
                  **block_kwargs) -> nn.Module:
    """Insert ``block`` units into ``model`` (in place) and return it.

    Args:
        model: a timm ResNet-family or DPN model, a torchvision ResNet, or a model of the timm
            families of :mod:`glore.models.timm_hosts` (ConvNeXt, RegNet, ResNetV2, EfficientNet,
            MobileNetV3, CSPNet, ByobNet, ViT/DeiT, Swin).
        block: ``glore``, ``nl``, ``snl``, ``gc``, ``se`` or ``cbam`` (see :func:`glore.nn.create_block`).
        units: where to insert, see :func:`resolve_units`: ``(n, m)``, ``{"res4": 3}``,
            ``{"res4": [5]}`` (after block 5), or ``"all"``.
        position: ``after_add`` or ``after_1x1``; defaults to ``after_add`` for ``glore``, ``nl``
            and ``snl``, ``after_1x1`` for ``gc``, ``se`` and ``cbam`` (``after_add`` where a block of the
            families of :mod:`glore.models.timm_hosts` has no branch place).
        **block_kwargs: passed to the block (``ratio=1/4``, ``pairwise="gaussian"``, ...). GloRe's
            ``mid`` defaults to the hosting stage's bottleneck width ``C/4`` (``planes`` of the
            stage; also ``C/4`` for basic-block ResNets and DPN's residual path, and ``C/4`` of the
            host's channels in the other timm families, where GC's ``ratio`` defaults to
            :func:`gc_ratio`). SE and CBAM are
            built with ``zero_init=True`` unless given, so that, like every other block, they start
            as the identity (:class:`glore.nn.SqueezeExcite`, :class:`glore.nn.CBAM`).

    Raises:
        ValueError: unknown block, stage or position, too many units, a position already taken, or
            a position the backbone does not offer (DPN offers ``after_add`` only).
        TypeError: unsupported model, or a block option the block does not take.
    """
    if not isinstance(block, str) or block.lower() not in BLOCKS:
        raise ArgumentError(f"unknown block {block!r}; expected one of {sorted(BLOCKS)}")
    block = block.lower()
    default_position = position is None
    position = DEFAULT_POSITION[block] if position is None else position
    if position not in POSITIONS:
        raise ArgumentError(f"position must be one of {list(POSITIONS)}, got {position!r}")
    check_block_kwargs(block, block_kwargs)
    stages = find_stages(model)
    placement = resolve_units(units, {s: len(h) for s, h in stages.items() if h})

    todo = []
    for stage, indices in placement.items():
        for index in indices:
            host = stages[stage][index - 1]
            generic = timm_hosts.is_timm_block(host.module)
            offered = (timm_hosts.offered_positions if generic else offered_positions)(host.module)
            where = position
            if where not in offered and default_position and generic:
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
        kwargs = {**INSERT_DEFAULTS.get(block, {}), **block_kwargs}
        if block == "glore" and "mid" not in kwargs:
            kwargs["mid"] = max(1, channels // 4)
        if block == "gc" and generic and "ratio" not in kwargs:
            kwargs["ratio"] = gc_ratio(channels)
        new = create_block(block, channels, **kwargs)
        param = next(host.module.parameters(), None)
        if param is not None:
            new = new.to(device=param.device, dtype=param.dtype)
        if generic:
            timm_hosts.attach(host.module, where, new, num_prefix_tokens=prefix_tokens)
        else:
            host.module.add_module(where, new)
    return model


def gc_ratio(channels: int) -> float:
    """GC's bottleneck ratio in the families of :mod:`glore.models.timm_hosts`: the papers' 1/16,
    but at least 16 hidden channels (all of them below 16), for the narrow stages of ConvNeXt,
    EfficientNet and MobileNetV3 (96 channels: 1/6, not 6 hidden channels)."""
    return min(1.0, max(1 / 16, 16 / channels))


def check_block_kwargs(block: str, block_kwargs: Mapping) -> None:
    """Raise a ``TypeError`` naming any option ``block`` does not take, and those it does."""
    import inspect

    params = inspect.signature(BLOCKS[block]).parameters
    accepted = sorted(n for n, p in params.items() if p.kind == p.KEYWORD_ONLY)
    unknown = sorted(set(block_kwargs) - set(accepted))
    if unknown:
        raise ArgumentTypeError(f"block {block!r} does not take the option(s) {unknown}; it takes {accepted}")


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
