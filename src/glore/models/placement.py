"""What block goes where, with which options: the one placement vocabulary of :mod:`glore.models`.

Every builder (``create_model``, the registered configurations, ``create_segmenter``, the video and
Slow-only builders, ``create_detector``, the demo networks) and every config's ``model:`` section
speak it:

- ``block=``: a block name of :data:`glore.nn.BLOCKS` (``glore``, ``nl``, ``snl``, ``gc``, ``se``,
  ``cbam``); ``None``, ``"none"`` and ``""`` mean no block (:func:`block_name`);
- ``units=``: where, as a placement, never a count (:func:`parse_units`): ``(n, m)`` (n units in
  ``res3`` and m in ``res4``, the GloRe paper's notation), ``{"res4": 3}`` (3 units spread over the
  stage), ``{"res4": [5]}`` (after block 5, 1-based), or ``"all"``. Stages are ``res2`` .. ``res5`` in
  the ResNet family and timm's ``feature_info`` names (``stages.2``) in the other timm families;
- ``position=``: the slot in a residual block, ``after_add`` or ``after_1x1`` (default per block);
- ``block_kwargs=``: a dict of the block's options, merged over :data:`BLOCK_TABLE`'s defaults
  (:func:`block_options`).

:class:`Placement` holds one checked set of the four; :func:`parse_placement` builds it.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from glore.errors import ArgumentError, ArgumentTypeError
from ..nn import BLOCKS

__all__ = ["BLOCK_TABLE", "BlockDefaults", "Placement", "POSITIONS", "ALL_STAGES", "block_name", "parse_units",
           "resolve_units", "parse_placement", "block_options", "check_block_kwargs", "gc_ratio", "deprecated",
           "units_from_positions", "upgrade_segmenter_spelling", "upgrade_model_config"]

POSITIONS = ("after_add", "after_1x1")
# units="all": one block in every residual block of these stages (GC-ResNet, GCNet §4)
ALL_STAGES = ("res3", "res4", "res5")

Options = Mapping | Callable[[int], Mapping]


def gc_ratio(channels: int) -> float:
    """GC's bottleneck ratio in the families of :mod:`glore.models.timm_hosts`: the papers' 1/16,
    but at least 16 hidden channels (all of them below 16), for the narrow stages of ConvNeXt,
    EfficientNet and MobileNetV3 (96 channels: 1/6, not 6 hidden channels)."""
    return min(1.0, max(1 / 16, 16 / channels))


@dataclass(frozen=True)
class BlockDefaults:
    """The defaults of one block family.

    Attributes:
        position: its slot in a residual block (GCNet Table 5b).
        start: options every block of the family is built with, so that it starts as the identity.
        host: options read from the channels ``C`` of the place it sits in.
        settings: the papers' options in a setting: ``"timm"`` (the families of
            :mod:`glore.models.timm_hosts`), ``"video"``, ``"segmentation"`` (a segmenter's head),
            ``"demo"`` (the demo networks); each a dict or a function of ``C``.
    """

    position: str
    start: Mapping = field(default_factory=dict)
    host: Callable[[int], Mapping] | None = None
    settings: Mapping[str, Options] = field(default_factory=dict)


# The one table of per-block defaults: a new block family is one line here (and its nn/ file).
BLOCK_TABLE: dict[str, BlockDefaults] = {
    # mid = C / 4, the bottleneck width of the host (GloRe paper §4.2), hence mid nodes with 2 mid states;
    # the demo nets use mid = C
    "glore": BlockDefaults("after_add", host=lambda c: {"mid": max(1, c // 4)},
                           settings={"demo": lambda c: {"mid": c}}),
    # NLNet's video blocks pool keys and values 2x2 in space
    "nl": BlockDefaults("after_add", settings={"video": {"sub_sample": True}}),
    "snl": BlockDefaults("after_add"),
    # GCNet: r = 16 on ImageNet, r = 4 on Kinetics, Cityscapes and the demo
    "gc": BlockDefaults("after_1x1", settings={"timm": lambda c: {"ratio": gc_ratio(c)}, "video": {"ratio": 1 / 4},
                                               "segmentation": {"ratio": 1 / 4}, "demo": {"ratio": 1 / 4}}),
    "se": BlockDefaults("after_1x1", start={"zero_init": True}),
    "cbam": BlockDefaults("after_1x1", start={"zero_init": True}),
}


def deprecated(old: str, new: str, *, stacklevel: int = 3) -> None:
    """A ``FutureWarning`` that ``old`` is deprecated (it works for one more release): write ``new``."""
    warnings.warn(f"{old} is deprecated and goes in the next release; write {new}", FutureWarning,
                  stacklevel=stacklevel)


def block_name(name, choices: Sequence | None = None, *, what: str = "block", aliases: Sequence[str] = ()):
    """``name`` lower-cased; ``None``, ``"none"``, ``""`` (and ``aliases``) as ``None``; a name not
    among ``choices`` (default: the blocks of :data:`glore.nn.BLOCKS`) is refused with the names it
    could be."""
    choices = tuple(BLOCKS) if choices is None else choices
    if name is None:
        return None
    if not isinstance(name, str):
        raise ArgumentTypeError(f"{what} must be a block name or None, got {name!r}")
    key = name.lower()
    if key in ("none", "", *aliases):
        return None
    if key not in choices:
        if what == "block":
            raise ArgumentError(f"unknown block {name!r}; expected one of {sorted(c for c in choices if c)}")
        raise ArgumentError(f"{what} must be one of {', '.join(map(repr, choices))}, got {name!r}")
    return key


def check_block_kwargs(block: str, block_kwargs: Mapping) -> None:
    """Raise a ``TypeError`` naming any option ``block`` does not take, and those it does."""
    if not isinstance(block_kwargs, Mapping):
        raise ArgumentTypeError(f"block_kwargs must be a dict of the block's options, got {block_kwargs!r}")
    params = inspect.signature(BLOCKS[block]).parameters
    accepted = sorted(n for n, p in params.items() if p.kind == p.KEYWORD_ONLY)
    unknown = sorted(set(block_kwargs) - set(accepted))
    if unknown:
        raise ArgumentTypeError(f"block {block!r} does not take the option(s) {unknown}; it takes {accepted}")


def block_options(block: str, channels: int, given: Mapping | None = None, settings: Sequence[str] = ()) -> dict:
    """The options ``block`` is built with at ``channels``: its start options, those read from the
    channels, those of each of ``settings`` in turn, then ``given``."""
    defaults = BLOCK_TABLE[block]
    options = {**defaults.start, **(defaults.host(channels) if defaults.host else {})}
    for setting in settings:
        extra = defaults.settings.get(setting, {})
        options.update(extra(channels) if callable(extra) else extra)
    return {**options, **dict(given or {})}


def _units_error(units) -> ArgumentError:
    return ArgumentError(f"units must be (n, m), a dict {{stage: count or indices}} or 'all', got {units!r}")


def _check_count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgumentError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def parse_units(units):
    """``units`` in its one checked form: ``"all"``, or ``((stage, count or (1-based indices,)), ...)``.

    ``(n, m)`` is ``(("res3", n), ("res4", m))``; a count is spread over its stage when the
    stage's depth is known (:func:`resolve_units`).
    """
    if isinstance(units, str):
        if units != "all":
            raise _units_error(units)
        return "all"
    if isinstance(units, Mapping):
        pairs = list(units.items())
    elif isinstance(units, Sequence) and len(units) == 2:
        pairs = [("res3", units[0]), ("res4", units[1])]
    else:
        raise _units_error(units)
    parsed = []
    for stage, value in pairs:
        if isinstance(value, Sequence) and not isinstance(value, str):
            indices = tuple(_check_count(i, f"block index in {stage}") for i in value)
            if len(set(indices)) != len(indices):
                raise ArgumentError(f"{stage}: block indices must be distinct, got {list(indices)}")
            parsed.append((stage, tuple(sorted(indices))))
        else:
            parsed.append((stage, _check_count(value, f"units in {stage}")))
    return tuple(parsed)


def _spread(count: int, depth: int) -> tuple[int, ...]:
    """1-based block indices for ``count`` units in a stage of ``depth`` blocks.

    After blocks 1, 3, 5, ... (every other block from the first, GloRe paper §4.2) when that fits;
    otherwise spread evenly from block 1: ``1 + floor(i * depth / count)``.
    """
    if 2 * count - 1 <= depth:
        return tuple(range(1, 2 * count, 2))
    return tuple(1 + (i * depth) // count for i in range(count))


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
    return _resolve(parse_units(units), depths)


def _resolve(parsed, depths: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    if parsed == "all":
        every = [s for s in ALL_STAGES if s in depths] or list(depths)[1:] or list(depths)
        parsed = tuple((stage, tuple(range(1, depths[stage] + 1))) for stage in every)
    placement = {}
    for stage, value in parsed:
        if stage not in depths:
            raise ArgumentError(f"unknown stage {stage!r}; this backbone has stages {sorted(depths)}")
        depth = depths[stage]
        if isinstance(value, tuple):
            bad = [i for i in value if not 1 <= i <= depth]
            if bad:
                raise ArgumentError(f"{stage} has {depth} blocks (indices 1..{depth}), got indices {bad}")
            indices = value
        else:
            if value > depth:
                raise ArgumentError(f"{stage} has {depth} blocks, cannot place {value} units in it")
            indices = _spread(value, depth)
        if indices:
            placement[stage] = indices
    return placement


@dataclass(frozen=True)
class Placement:
    """One checked placement: ``block`` (a normalised name), ``units`` (:func:`parse_units`' form),
    ``position`` (a slot, or ``None`` for the block's default) and ``block_kwargs`` (read-only)."""

    block: str
    units: object
    position: str | None = None
    block_kwargs: Mapping = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "block_kwargs", MappingProxyType(dict(self.block_kwargs)))

    @property
    def slot(self) -> str:
        """``position``, or the block's default slot."""
        return self.position or BLOCK_TABLE[self.block].position

    def where(self, depths: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
        """``{stage: 1-based block indices}`` in a backbone of these stage ``depths``."""
        return _resolve(self.units, depths)

    def as_kwargs(self) -> dict:
        """The builders' keywords: ``block``, ``units``, ``position``, ``block_kwargs``."""
        units = self.units if self.units == "all" else {stage: value for stage, value in self.units}
        return dict(block=self.block, units=units, position=self.position, block_kwargs=dict(self.block_kwargs))


def parse_placement(block=None, units=None, position=None, block_kwargs: Mapping | None = None, *,
                    example: str = "units=(0, 3) or {'res4': [5]}") -> Placement | None:
    """Check the four placement keywords together; ``None`` when there is no block.

    ``units``, ``position`` and ``block_kwargs`` need a block, and a block needs ``units``
    (``example`` shows some in the message).
    """
    name = block_name(block)
    if block_kwargs is not None and not isinstance(block_kwargs, Mapping):
        raise ArgumentTypeError(f"block_kwargs must be a dict of the block's options, got {block_kwargs!r}")
    block_kwargs = dict(block_kwargs or {})
    if name is None:
        if units is not None or position is not None or block_kwargs:
            raise ArgumentError(f"units, position and block_kwargs need a block; got block={block!r} with "
                                f"units={units!r}, position={position!r}, block_kwargs {sorted(block_kwargs)}")
        return None
    if units is None:
        raise ArgumentError(f"block={block!r} needs units, e.g. {example}; got None")
    if position is not None and position not in POSITIONS:
        raise ArgumentError(f"position must be one of {list(POSITIONS)}, got {position!r}")
    check_block_kwargs(name, block_kwargs)
    return Placement(name, parse_units(units), position, block_kwargs)


# ----------------------------------------------------------------------------- earlier spellings
# They work for one release, each with a FutureWarning naming today's spelling.

def units_from_positions(positions: Mapping[str, Sequence[int]], *, prefix: str = "",
                         stacklevel: int = 4) -> dict[str, tuple[int, ...]]:
    """The video networks' earlier ``positions={"layerK": (0-based indices,)}`` as
    ``units={"res<K+1>": (1-based indices,)}``."""
    if not isinstance(positions, Mapping):
        raise ArgumentError(f"positions must be a dict {{'layerK': 0-based indices}}, got {positions!r}")
    unknown = sorted(set(positions) - {f"layer{i}" for i in range(1, 5)})
    if unknown:
        raise ArgumentError(f"positions keys must be among layer1..layer4, got {unknown}")
    units = {f"res{int(layer[5:]) + 1}": tuple(int(i) + 1 for i in indices) for layer, indices in positions.items()}
    deprecated(f"{prefix}positions={dict(positions)!r} (0-based indices under layer1..layer4)",
               f"{prefix}units={units!r} (1-based block indices under res2..res5)", stacklevel=stacklevel)
    return units


def upgrade_segmenter_spelling(kwargs: Mapping, *, prefix: str = "", stacklevel: int = 4) -> dict:
    """``create_segmenter``'s earlier keywords (or a segmentation config's ``model`` keys, with
    ``prefix="model."``) in today's spelling:

    - ``units=N``, the head's number of context blocks: ``head_depth=N``;
    - ``block_kwargs`` without a ``block``, the head's block options: ``head_kwargs``;
    - ``backbone_blocks={block, units, position, block_kwargs}``: those four keys themselves.
    """
    kwargs = {k: v for k, v in kwargs.items()}
    units = kwargs.get("units")
    if isinstance(units, int) and not isinstance(units, bool):
        if kwargs.get("head_depth") is not None:
            raise ArgumentError(f"{prefix}units={units} counts the head's blocks, the earlier spelling of "
                                f"{prefix}head_depth; give head_depth only, got both")
        deprecated(f"{prefix}units={units} (the head's number of blocks)", f"{prefix}head_depth={units}",
                   stacklevel=stacklevel)
        kwargs["head_depth"] = kwargs.pop("units")
    if kwargs.get("block") is None and "block_kwargs" in kwargs and kwargs.get("units") is None \
            and kwargs.get("position") is None:
        options = kwargs.pop("block_kwargs")
        if options:
            if kwargs.get("head_kwargs"):
                raise ArgumentError(f"{prefix}block_kwargs without a block are the head's options, the earlier "
                                    f"spelling of {prefix}head_kwargs; give head_kwargs only, got both")
            deprecated(f"{prefix}block_kwargs={dict(options)!r} for the head", f"{prefix}head_kwargs={dict(options)!r}",
                       stacklevel=stacklevel)
            kwargs["head_kwargs"] = options
    backbone_blocks = kwargs.pop("backbone_blocks", None)
    if backbone_blocks:
        if not isinstance(backbone_blocks, Mapping):
            raise ArgumentError(f"{prefix}backbone_blocks must be a dict of block, units, position, block_kwargs; "
                                f"got {backbone_blocks!r}")
        given = [k for k in ("block", "units", "position", "block_kwargs") if kwargs.get(k) is not None]
        if given:
            raise ArgumentError(f"{prefix}backbone_blocks is the earlier spelling of {prefix}block, units, position "
                                f"and block_kwargs; give those only, got both backbone_blocks and {given}")
        new = ", ".join(f"{prefix}{k}={v!r}" for k, v in backbone_blocks.items())
        deprecated(f"{prefix}backbone_blocks={dict(backbone_blocks)!r}", new, stacklevel=stacklevel)
        kwargs.update(backbone_blocks)
    return kwargs


def upgrade_model_config(task: str | None, model: Mapping) -> dict:
    """A config's ``model`` section with every earlier key in today's spelling (a ``FutureWarning``
    for each): a segmenter's ``units`` count, head ``block_kwargs`` and ``backbone_blocks``; a video
    network's ``positions``."""
    model = dict(model)
    if task == "segmentation":
        return upgrade_segmenter_spelling(model, prefix="model.", stacklevel=5)
    if task == "video" and model.get("positions") is not None:
        if model.get("units") is not None:
            raise ArgumentError(f"model.positions is the earlier spelling of model.units; give units only, got both")
        model["units"] = units_from_positions(model.pop("positions"), prefix="model.", stacklevel=5)
    return model
