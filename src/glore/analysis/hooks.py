"""Forward hooks that record what the library's blocks compute, without changing the model.

:class:`BlockRecorder` attaches to every GloRe / NL / SNL / GC / SE / CBAM block of any ``nn.Module`` and
keeps, for the latest forward call of each block (by module name):

- ``input`` and ``output``: the block's input ``x`` and output ``z``, ``(B, C, *S)``;
- ``projection`` (GloRe): the projection ``B`` of Eq. 1, ``(B, N, L)`` with ``L = prod(S)``;
- ``nodes`` (GloRe): the node features ``V`` entering the graph convolution, ``(B, C_s, N)``;
- ``attention`` (NL, SNL, GC): ``(B, L, L')`` for NL (row = query; ``L' = L``, or the 2x2-pooled
  key positions with ``sub_sample``), ``(B, 1, L)`` for SNL and GC with attention pooling; ``None``
  for GC with average pooling, SE and CBAM;
- ``query`` and ``key`` (NL with embeddings, only when asked for): ``W_q x`` ``(B, C', *S)`` and
  ``W_k x`` ``(B, C', *S')``.

All blocks flatten their positions, so the same hooks serve 1D, 2D and 3D models;
:meth:`BlockRecord.as_maps` puts the spatial shape back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn

from glore.errors import ArgumentError, ArgumentTypeError
from ..nn import CBAM, GlobalContext, GloRe, NonLocal, SimplifiedNonLocal, SqueezeExcite
from ..nn.non_local import subsample_keys  # the key grid of a sub-sampled NonLocal

# most specific class first: SqueezeExcite is a GlobalContext
BLOCK_TYPES: dict[str, type[nn.Module]] = {
    "glore": GloRe,
    "nl": NonLocal,
    "snl": SimplifiedNonLocal,
    "se": SqueezeExcite,
    "gc": GlobalContext,
    "cbam": CBAM,
}
FIELDS = ("input", "output", "projection", "nodes", "attention", "query", "key")
DEFAULT_FIELDS = FIELDS[:5]


def block_kind(module: nn.Module) -> str | None:
    """The short name (``glore``, ``nl``, ``snl``, ``gc``, ``se``, ``cbam``) of a library block, else ``None``."""
    for kind, cls in BLOCK_TYPES.items():
        if isinstance(module, cls):
            return kind
    return None


def _check_kinds(kinds) -> tuple[str, ...] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = (kinds,)
    kinds = tuple(k.lower() if isinstance(k, str) else k for k in kinds)
    unknown = [k for k in kinds if k not in BLOCK_TYPES]
    if unknown or not kinds:
        raise ArgumentError(f"block types must be among {sorted(BLOCK_TYPES)}, got {list(kinds)}")
    return kinds


def describe_blocks(model: nn.Module) -> str:
    """``"glore x2, gc x1"``: the library blocks a model contains, or ``"none"``."""
    counts = Counter(block_kind(m) for m in model.modules())
    counts.pop(None, None)
    return ", ".join(f"{kind} x{counts[kind]}" for kind in BLOCK_TYPES if kind in counts) or "none"


def find_blocks(model: nn.Module, kinds=None) -> dict[str, nn.Module]:
    """Blocks of ``model`` of the given types (all library blocks when ``None``), by module name.

    Raises ``ValueError`` naming the block types the model does have when none matches.
    """
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"expected an nn.Module, got {type(model).__name__}")
    kinds = _check_kinds(kinds)
    found = {name or "<model>": m for name, m in model.named_modules()
             if block_kind(m) is not None and (kinds is None or block_kind(m) in kinds)}
    if not found:
        wanted = "/".join(kinds) if kinds else "/".join(BLOCK_TYPES)
        raise ArgumentError(f"model has no {wanted} block; the block types it has: {describe_blocks(model)}")
    return found


@dataclass
class BlockRecord:
    """What one block computed in its latest forward call (tensors detached)."""

    name: str
    kind: str
    module: nn.Module = field(repr=False)
    input: torch.Tensor | None = None
    output: torch.Tensor | None = None
    projection: torch.Tensor | None = None
    nodes: torch.Tensor | None = None
    attention: torch.Tensor | None = None
    query: torch.Tensor | None = None
    key: torch.Tensor | None = None
    spatial_shape: tuple[int, ...] = ()
    key_shape: tuple[int, ...] = ()

    def as_maps(self, flat: torch.Tensor) -> torch.Tensor:
        """Reshape ``(B, K, L)`` (a projection or attention tensor) to ``(B, K, *S)``; over key
        positions ``(B, K, L')`` to ``(B, K, *S')`` when an NL block sub-samples its keys."""
        shape = self.spatial_shape if flat.shape[-1] == _numel(self.spatial_shape) else self.key_shape
        return flat.reshape(*flat.shape[:2], *shape)


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def key_shape(block: nn.Module, spatial_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Spatial shape of the positions a block attends over: the input's, or the 2x2-pooled one of
    an NL block with ``sub_sample``."""
    if not getattr(block, "sub_sample", False):
        return tuple(spatial_shape)
    return tuple(subsample_keys(torch.empty(1, 1, *spatial_shape, device="meta")).shape[2:])


class BlockRecorder:
    """Context manager recording the blocks of ``model`` during forward passes.

    Example::

        with BlockRecorder(model, kinds="glore") as rec:
            model(images)
        B = rec.records["layer3.1.glore"].projection      # (B, N, L)

    Args:
        model: any module containing library blocks.
        kinds: block types to record (``glore``, ``nl``, ``snl``, ``gc``, ``se``, ``cbam``); all when ``None``.
        keep: which of ``input``, ``output``, ``projection``, ``nodes``, ``attention`` (the default
            ones), ``query`` and ``key`` to keep (dropping the rest saves memory, e.g. NL attention is
            ``L x L`` per image).
    """

    def __init__(self, model: nn.Module, *, kinds=None, keep=DEFAULT_FIELDS):
        keep = (keep,) if isinstance(keep, str) else tuple(keep)
        bad = [k for k in keep if k not in FIELDS]
        if bad:
            raise ArgumentError(f"keep must be among {list(FIELDS)}, got {list(keep)}")
        self.blocks = find_blocks(model, kinds)
        self.keep = frozenset(keep)
        self.records: dict[str, BlockRecord] = {}
        self._handles: list = []

    def _store(self, name: str, key: str, value: torch.Tensor | None) -> None:
        if key in self.keep:
            setattr(self.records[name], key, None if value is None else value.detach())

    def _attach(self, name: str, block: nn.Module) -> None:
        kind = block_kind(block)

        def pre(module, args):
            x = args[0]
            shape = tuple(x.shape[2:])
            self.records[name] = BlockRecord(name, kind, module, spatial_shape=shape,
                                             key_shape=key_shape(module, shape))
            self._store(name, "input", x)

        def post(module, args, out):
            self._store(name, "output", out)

        hooks = [block.register_forward_pre_hook(pre), block.register_forward_hook(post)]
        if kind == "glore":
            hooks.append(block.project.register_forward_hook(
                lambda m, a, out: self._store(name, "projection", out)))
            hooks.append(block.gcn.register_forward_pre_hook(
                lambda m, a: self._store(name, "nodes", a[0])))
        attention = getattr(block, "attention", None)
        if attention is not None:
            hooks.append(attention.register_forward_hook(
                lambda m, a, out: self._store(name, "attention", out)))
            for field in ("query", "key"):
                embedding = getattr(attention, field, None)
                if field in self.keep and isinstance(embedding, nn.Module):
                    hooks.append(embedding.register_forward_hook(
                        lambda m, a, out, field=field: self._store(name, field, out)))
        self._handles.extend(hooks)

    def __enter__(self) -> "BlockRecorder":
        for name, block in self.blocks.items():
            self._attach(name, block)
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Detach all hooks (the records stay)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def clear(self) -> None:
        self.records.clear()


def record_blocks(model: nn.Module, inputs: torch.Tensor, *, kinds=None, keep=DEFAULT_FIELDS
                  ) -> dict[str, BlockRecord]:
    """Run ``model(inputs)`` in eval mode without gradients and return the blocks' records.

    Blocks that did not run (e.g. in a training-only branch) are left out. The model's training
    flag is restored afterwards.
    """
    recorder = BlockRecorder(model, kinds=kinds, keep=keep)
    was_training = model.training
    model.eval()
    try:
        with recorder, torch.no_grad():
            model(inputs)
    finally:
        model.train(was_training)
    if not recorder.records:
        raise ArgumentError(f"none of the blocks {list(recorder.blocks)} ran in the model's forward pass")
    return {name: recorder.records[name] for name in recorder.blocks if name in recorder.records}
