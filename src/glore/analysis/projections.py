"""Projection weights ``B`` of GloRe units (GloRe paper §5, Figure 7), as spatial maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from glore.errors import ArgumentError
from .hooks import record_blocks

SELECT = ("first", "variance")


def node_variance(maps: torch.Tensor) -> torch.Tensor:
    """Spatial variance of each node's map, averaged over images: ``(B, N, *S) -> (N,)``."""
    return maps.flatten(2).float().var(dim=-1, unbiased=False).mean(dim=0)


def select_nodes(maps: torch.Tensor, *, k: int, select: str = "first") -> torch.Tensor:
    """Indices of ``k`` nodes of ``maps`` ``(B, N, *S)``: the ``first`` k, or the k with the largest
    spatial ``variance`` (averaged over images), largest first."""
    num_nodes = maps.shape[1]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= num_nodes:
        raise ArgumentError(f"k must be an int in [1, {num_nodes}] (the unit's nodes), got {k!r}")
    if select == "first":
        return torch.arange(k)
    if select == "variance":
        return torch.argsort(node_variance(maps), descending=True)[:k]
    raise ArgumentError(f"select must be one of {SELECT}, got {select!r}")


def resize_maps(maps: torch.Tensor, size) -> torch.Tensor:
    """Resize ``(B, K, *S)`` maps to spatial ``size`` (linear, bilinear or trilinear interpolation)."""
    size = tuple(int(s) for s in size)
    if len(size) != maps.dim() - 2:
        raise ArgumentError(f"size must have {maps.dim() - 2} dims for maps of shape {tuple(maps.shape)}, "
                         f"got {size}")
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(len(size))
    if mode is None:
        raise ArgumentError(f"maps must have 1 to 3 spatial dims, got shape {tuple(maps.shape)}")
    return F.interpolate(maps.float(), size=size, mode=mode, align_corners=False)


def projection_maps(model: nn.Module, images: torch.Tensor, *, k: int | None = None,
                    select: str = "first", size=None) -> dict[str, dict]:
    """Projection weights of every GloRe unit of ``model`` for a batch of ``images``.

    Returns ``{unit name: {"maps": (B, k, *S'), "nodes": (k,), "variance": (N,)}}``: the maps of the
    chosen nodes (all ``N`` when ``k`` is None) at the unit's resolution ``S``, or resized to
    ``size`` (e.g. the image's spatial size) when given; the node indices; and every node's spatial
    variance averaged over the images. Raises ``ValueError`` naming the model's block types when it
    has no GloRe unit.
    """
    if select not in SELECT:
        raise ArgumentError(f"select must be one of {SELECT}, got {select!r}")
    records = record_blocks(model, images, kinds="glore", keep=("input", "projection"))
    result = {}
    for name, rec in records.items():
        maps = rec.as_maps(rec.projection)
        nodes = select_nodes(maps, k=maps.shape[1] if k is None else k, select=select)
        chosen = maps[:, nodes.to(maps.device)]
        result[name] = {
            "maps": chosen if size is None else resize_maps(chosen, size),
            "nodes": nodes,
            "variance": node_variance(maps),
        }
    return result
