"""Insert GloRe / global-context blocks into ResNet-family and DPN backbones.

Stages are named as in the GloRe paper: ``res2`` .. ``res5`` (timm and torchvision ``layer1`` ..
``layer4``, DPN ``conv2_*`` .. ``conv5_*``). Blocks go at one of two positions of a residual block
(GCNet Table 5b):

- ``after_add``: after the residual addition (on the block's output); the default for ``glore``,
  ``nl`` and ``snl``;
- ``after_1x1``: inside the residual branch, after its last conv and that conv's BatchNorm, before
  the addition; the default for ``gc`` and ``se``.

An inserted block becomes a child of the residual block it follows, named ``<block>_<position>``
(e.g. ``layer3.0.glore_after_add``), and runs from a forward hook on the residual block
(``after_add``) or on its last BatchNorm (``after_1x1``). The backbone's own modules and state-dict
keys are left untouched, so backbone checkpoints still load and ``features_only`` / stage outputs
include the inserted blocks.

DPN blocks carry one concatenated tensor ``[residual path, dense path]`` (a tuple of the two in
older timm releases; both are handled). A block inserted after a
DPN block acts on the residual path only (its first ``num_1x1_c`` channels; 1024 in DPN-98's and
DPN-131's Res4, like ResNet-50's) and the dense path passes through unchanged. This reproduces the
GloRe paper's Table 2 (+6.0M parameters for (2, 3), as for ResNet-50); acting on the concatenation
would make every unit larger than in the paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from ..nn import BLOCKS, create_block

STAGES = ("res2", "res3", "res4", "res5")
# what may end a residual branch: BatchNorm, or torchvision's frozen BatchNorm of detection backbones
_NORMS = (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d)
POSITIONS = ("after_add", "after_1x1")
DEFAULT_POSITION = {"glore": "after_add", "nl": "after_add", "snl": "after_add",
                    "gc": "after_1x1", "se": "after_1x1"}
# units="all": one block in every residual block of these stages (GC-ResNet, GCNet §4)
ALL_STAGES = ("res3", "res4", "res5")


@dataclass(frozen=True)
class Host:
    """A residual block that can host inserted blocks.

    Attributes:
        name: qualified module name (``layer3.0``, ``features.conv4_1``).
        module: the residual block.
        channels: channels a block inserted after it sees (the residual path's for DPN).
        norm: the residual branch's last BatchNorm (``after_1x1``); ``None`` if not offered.
        split: DPN only: the block acts on the first ``split`` channels of the output.
    """

    name: str
    module: nn.Module
    channels: int
    norm: nn.Module | None
    split: int | None = None


class _ApplyBlock:
    """Forward hook passing a module's output through an inserted block (picklable, copyable)."""

    def __init__(self, block: nn.Module, split: int | None = None):
        self.block, self.split = block, split

    def __call__(self, module: nn.Module, args, output):
        if self.split is None:
            return self.block(output)
        if isinstance(output, tuple):       # DPN blocks of older timm: (residual path, dense path)
            return (self.block(output[0]), *output[1:])
        return torch.cat([self.block(output[:, :self.split]), output[:, self.split:]], dim=1)


def _resnet_hosts(model: nn.Module) -> dict[str, list[Host]]:
    stages = {}
    for stage, layer in zip(STAGES, ("layer1", "layer2", "layer3", "layer4")):
        hosts = []
        for i, blk in enumerate(getattr(model, layer)):
            norm = getattr(blk, "bn3", None)
            if norm is None:
                norm = getattr(blk, "bn2", None)
            if not isinstance(norm, _NORMS):
                raise TypeError(f"{layer}.{i}: expected a ResNet bottleneck or basic block with a "
                                f"BatchNorm bn3 or bn2, got {type(blk).__name__}")
            hosts.append(Host(f"{layer}.{i}", blk, norm.weight.shape[0], norm))
        stages[stage] = hosts
    return stages


def _dpn_hosts(model: nn.Module) -> dict[str, list[Host]]:
    stages = {stage: [] for stage in STAGES}
    for name, blk in model.features.named_children():
        head, _, index = name.partition("_")
        if head in ("conv2", "conv3", "conv4", "conv5") and index.isdigit():
            stages[f"res{head[4:]}"].append(
                Host(f"features.{name}", blk, blk.num_1x1_c, None, split=blk.num_1x1_c))
    return stages


def find_stages(model: nn.Module) -> dict[str, list[Host]]:
    """Return ``{"res2": [Host, ...], ...}``: the residual blocks of each stage, in order.

    Supports timm ``ResNet`` (ResNet, SE-ResNet, ResNeXt, wide ResNet, ECA-ResNet, ...), timm ``DPN``
    and torchvision ``ResNet``.
    """
    from timm.models.dpn import DPN
    from timm.models.resnet import ResNet as TimmResNet
    from torchvision.models import ResNet as TvResNet

    if isinstance(model, (TimmResNet, TvResNet)):
        return _resnet_hosts(model)
    if isinstance(model, DPN):
        return _dpn_hosts(model)
    raise TypeError(f"blocks can be inserted into timm ResNet/SE-ResNet/ResNeXt/wide ResNet, timm DPN "
                    f"and torchvision ResNet models, got {type(model).__name__}")


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
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def resolve_units(units, depths: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """Turn ``units`` into ``{stage: (1-based block indices after which to insert)}``.

    Args:
        units: ``(n, m)`` (n in ``res3``, m in ``res4``, the GloRe paper's notation); a dict from
            stage name to a count or to a list of 1-based block indices; or ``"all"`` (every block
            of ``res3``-``res5``).
        depths: number of blocks of each stage of the backbone.

    Stages without units are left out of the result.
    """
    if isinstance(units, str):
        if units != "all":
            raise ValueError(f"units must be (n, m), a dict {{stage: count or indices}} or 'all', "
                             f"got {units!r}")
        spec = {stage: list(range(1, depths[stage] + 1)) for stage in ALL_STAGES if stage in depths}
    elif isinstance(units, Mapping):
        spec = dict(units)
    elif isinstance(units, Sequence) and len(units) == 2:
        spec = {"res3": units[0], "res4": units[1]}
    else:
        raise ValueError(f"units must be (n, m), a dict {{stage: count or indices}} or 'all', "
                         f"got {units!r}")

    placement = {}
    for stage, value in spec.items():
        if stage not in depths:
            raise ValueError(f"unknown stage {stage!r}; this backbone has stages {sorted(depths)}")
        depth = depths[stage]
        if isinstance(value, Sequence) and not isinstance(value, str):
            indices = tuple(_check_count(i, f"block index in {stage}") for i in value)
            bad = [i for i in indices if not 1 <= i <= depth]
            if bad:
                raise ValueError(f"{stage} has {depth} blocks (indices 1..{depth}), got indices {bad}")
            if len(set(indices)) != len(indices):
                raise ValueError(f"{stage}: block indices must be distinct, got {list(indices)}")
            indices = tuple(sorted(indices))
        else:
            count = _check_count(value, f"units in {stage}")
            if count > depth:
                raise ValueError(f"{stage} has {depth} blocks, cannot place {count} units in it")
            indices = _spread(count, depth)
        if indices:
            placement[stage] = indices
    return placement


def insert_blocks(model: nn.Module, *, block: str, units, position: str | None = None,
                  **block_kwargs) -> nn.Module:
    """Insert ``block`` units into ``model`` (in place) and return it.

    Args:
        model: a timm ResNet-family or DPN model, or a torchvision ResNet.
        block: ``glore``, ``nl``, ``snl``, ``gc`` or ``se`` (see :func:`glore.nn.create_block`).
        units: where to insert, see :func:`resolve_units`: ``(n, m)``, ``{"res4": 3}``,
            ``{"res4": [5]}`` (after block 5), or ``"all"``.
        position: ``after_add`` or ``after_1x1``; defaults to ``after_add`` for ``glore``, ``nl``
            and ``snl``, ``after_1x1`` for ``gc`` and ``se``.
        **block_kwargs: passed to the block (``ratio=1/4``, ``pairwise="gaussian"``, ...). GloRe's
            ``mid`` defaults to the hosting stage's bottleneck width ``C/4`` (``planes`` of the
            stage; also ``C/4`` for basic-block ResNets and DPN's residual path).

    Raises:
        ValueError: unknown block, stage or position, too many units, or a position the backbone
            does not offer (DPN offers ``after_add`` only).
        TypeError: unsupported model.
    """
    if not isinstance(block, str) or block.lower() not in BLOCKS:
        raise ValueError(f"unknown block {block!r}; expected one of {sorted(BLOCKS)}")
    block = block.lower()
    position = DEFAULT_POSITION[block] if position is None else position
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {list(POSITIONS)}, got {position!r}")
    stages = find_stages(model)
    placement = resolve_units(units, {s: len(h) for s, h in stages.items() if h})
    attr = f"{block}_{position}"

    todo = []
    for stage, indices in placement.items():
        for index in indices:
            host = stages[stage][index - 1]
            if position == "after_1x1" and host.norm is None:
                raise ValueError(f"position 'after_1x1' is not offered by {type(host.module).__name__} "
                                 f"({host.name}, {stage} block {index}); use position='after_add'")
            if hasattr(host.module, attr):
                raise ValueError(f"{host.name} already has a block {attr!r}")
            todo.append(host)

    for host in todo:
        kwargs = dict(block_kwargs)
        if block == "glore" and "mid" not in kwargs:
            kwargs["mid"] = max(1, host.channels // 4)
        new = create_block(block, host.channels, **kwargs)
        param = next(host.module.parameters(), None)
        if param is not None:
            new = new.to(device=param.device, dtype=param.dtype)
        host.module.add_module(attr, new)
        target = host.module if position == "after_add" else host.norm
        target.register_forward_hook(_ApplyBlock(new, host.split))
    if todo:
        _guard_hooks_under_compile()
    return model


def _guard_hooks_under_compile() -> None:
    """Make torch.compile check modules' hooks before it reuses a compiled graph.

    By default dynamo does not (``torch._dynamo.config.skip_nnmodule_hook_guards``), so a model that
    differs from an already compiled one only by its forward hooks, as a backbone with inserted
    blocks differs from the plain backbone, reuses the plain backbone's graph and silently skips
    the blocks: compiling ``resnet18`` and then ``resnet18`` + GloRe in one process gave the plain
    network's output (tests/test_models_insert.py). The guards this adds are checked on each call
    of a compiled module; they cost next to nothing against a network's forward.
    """
    torch._dynamo.config.skip_nnmodule_hook_guards = False


def inserted_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """Qualified name -> block for every block inserted by :func:`insert_blocks`."""
    suffixes = tuple(f"{b}_{p}" for b in BLOCKS for p in POSITIONS)
    return {name: m for name, m in model.named_modules() if name.rsplit(".", 1)[-1] in suffixes}
