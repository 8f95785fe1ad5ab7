"""The average cosine distance of GCNet §3.2.2 ("Global Context Networks", arXiv 2012.13375, Tables 1-3)."""

from __future__ import annotations

import torch

from glore.errors import ArgumentError


def average_cosine_distance(x: torch.Tensor) -> float:
    """Average cosine distance between the ``N`` rows of ``x`` (shape ``(N, D)``), GCNet §3.2.2.

    ``avg_dist = (1/N^2) sum_i sum_j (1 - cos(v_i, v_j)) / 2``, the ``i = j`` terms included as in
    the paper, so ``N`` identical rows give 0 and a row with its negation gives 0.5.

    With ``u_i = v_i / |v_i|`` the double sum of cosines is ``|sum_i u_i|^2``, so the measure is
    ``(1 - |mean_i u_i|^2) / 2``: linear in ``N``, no ``N x N`` matrix. A row of zeros has cosine 0
    with every row, itself included (the convention of ``torch.nn.functional.cosine_similarity``).
    Computed in float64.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ArgumentError(f"expected a tensor of shape (N, D), got {shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ArgumentError(f"expected at least one row and one column, got shape {tuple(x.shape)}")
    x = x.detach().to(torch.float64)
    norms = x.norm(dim=1, keepdim=True)
    units = torch.where(norms > 0, x / norms.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    mean = units.mean(dim=0)
    return min(1.0, max(0.0, float((1.0 - mean.dot(mean)) / 2.0)))     # clamp rounding error
