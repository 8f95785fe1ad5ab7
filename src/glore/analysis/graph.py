"""The graph a GloRe unit learned: adjacency of its graph convolutions and node-feature norms."""

from __future__ import annotations

import torch
from torch import nn

from .hooks import find_blocks, record_blocks


def graph_adjacency(model: nn.Module) -> dict[str, torch.Tensor]:
    """Learned adjacency of every GloRe unit: ``{unit name: (layers, N, N)}``.

    Entry ``[l, i, j]`` is the weight of node ``j`` in the update of node ``i`` in graph
    convolution ``l``: the node-wise conv of Eq. 2 (``A_g``, the identity of ``I - A_g`` is the
    separate shortcut). Needs no data. Raises ``ValueError`` naming the model's block types when it
    has no GloRe unit.
    """
    units = find_blocks(model, "glore")
    return {name: torch.stack([layer.node.weight.detach()[:, :, 0].float().cpu() for layer in unit.gcn])
            for name, unit in units.items()}


def node_feature_norms(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """L2 norm of each node's features ``V`` (Eq. 1, the graph convolution's input) per image:
    ``{unit name: (B, N)}``."""
    records = record_blocks(model, images, kinds="glore", keep=("nodes",))
    return {name: rec.nodes.float().norm(dim=1).cpu() for name, rec in records.items()}
