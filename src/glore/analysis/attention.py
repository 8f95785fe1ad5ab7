"""Attention maps of NL, SNL and GC blocks over the input ("Global Context Networks", arXiv 2012.13375, Figures 2 and 5)."""

from __future__ import annotations

import torch
from torch import nn

from glore.errors import ArgumentError
from .hooks import block_kind, describe_blocks, record_blocks
from .projections import resize_maps

ATTENTION_KINDS = ("nl", "snl", "gc")


def default_queries(ndim: int) -> torch.Tensor:
    """Four query points, at the centres of the four quadrants (middle of any leading dims).

    Returned as fractions of the extent of each spatial dim, shape ``(4, ndim)``.
    """
    if ndim < 1:
        raise ArgumentError(f"ndim must be >= 1, got {ndim}")
    corners = [(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)]
    if ndim == 1:
        return torch.tensor([[0.125], [0.375], [0.625], [0.875]])
    return torch.tensor([[0.5] * (ndim - 2) + list(c) for c in corners])


def query_positions(queries: torch.Tensor, shape) -> torch.Tensor:
    """Grid coordinates ``(Q, d)`` of fractional ``queries`` ``(Q, d)`` in ``[0, 1]`` on a grid of
    ``shape``: ``min(floor(f * size), size - 1)`` per dim."""
    queries = torch.as_tensor(queries, dtype=torch.float64)
    shape = tuple(shape)
    if queries.dim() != 2 or queries.shape[1] != len(shape):
        raise ArgumentError(f"queries must have shape (Q, {len(shape)}) for a {len(shape)}-D block, "
                         f"got {tuple(queries.shape)}")
    if queries.numel() and (queries.min() < 0 or queries.max() > 1):
        raise ArgumentError(f"query coordinates must be fractions in [0, 1], got {queries.tolist()}")
    sizes = torch.tensor(shape, dtype=torch.float64)
    return torch.minimum((queries * sizes).floor(), sizes - 1).long()


def attention_maps(model: nn.Module, images: torch.Tensor, *, queries=None, size=None,
                   kinds=ATTENTION_KINDS) -> dict[str, dict]:
    """Attention maps of the NL, SNL and GC blocks of ``model`` for a batch of ``images``.

    For an NL block the map of a query ``i`` is row ``i`` of its ``(L, L')`` attention (normalised
    over ``j``; over the 2x2-pooled key grid ``S'`` when the block sub-samples); ``queries`` are fractions of each spatial dim (``(Q, d)``, default
    :func:`default_queries`), mapped to the block's grid by :func:`query_positions`. SNL and GC
    blocks have one query-independent map. Returns ``{block name: {"kind", "maps": (B, Q or 1,
    *K), "positions": (Q, d) query coordinates on the grid ``S`` or None, "shape": S,
    "key_shape": K, "query_independent": bool}}``, with maps on the key grid ``K`` (the input's
    grid ``S`` unless sub-sampled) or resized to ``size``. GC blocks with average
    pooling have no attention and are left out; a model with no attention at all raises
    ``ValueError`` naming its blocks.
    """
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    bad = [k for k in kinds if k not in ATTENTION_KINDS]
    if bad or not kinds:
        raise ArgumentError(f"kinds must be among {ATTENTION_KINDS}, got {list(kinds)}")
    if not any(block_kind(m) in kinds and getattr(m, "attention", None) is not None
               for m in model.modules()):
        raise ArgumentError(f"model has no block with attention maps ({'/'.join(kinds)}; GC with "
                         f"pooling='att'); the block types it has: {describe_blocks(model)}")
    records = record_blocks(model, images, kinds=kinds, keep=("input", "attention"))
    records = {name: rec for name, rec in records.items() if rec.attention is not None}
    result = {}
    for name, rec in records.items():
        shape = rec.spatial_shape
        if rec.kind == "nl":
            q = default_queries(len(shape)) if queries is None else torch.as_tensor(queries)
            positions = query_positions(q, shape)
            flat = torch.tensor([_ravel(p, shape) for p in positions.tolist()], dtype=torch.long)
            maps = rec.as_maps(rec.attention[:, flat.to(rec.attention.device)])
        else:
            positions, maps = None, rec.as_maps(rec.attention)
        result[name] = {
            "kind": rec.kind,
            "maps": maps.float() if size is None else resize_maps(maps, size),
            "positions": positions,
            "shape": shape,
            "key_shape": rec.key_shape,
            "query_independent": rec.kind != "nl",
        }
    return result


def _ravel(coords, shape) -> int:
    index = 0
    for c, s in zip(coords, shape):
        index = index * s + c
    return index
