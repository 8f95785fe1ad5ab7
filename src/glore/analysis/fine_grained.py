"""Fine-grained statistics of non-local blocks ("Global Context Networks", arXiv 2012.13375, §3.2.2,
Table 3): the average cosine distance between positions at each step of the block.

For an NL block with input ``x`` and output ``z`` (Eq. 1), over the ``L`` query positions (``L'`` key
positions) of one image:

- ``input``: ``x_i``;
- ``key``: ``W_k x_j`` and ``query``: ``W_q x_i`` (embedded pairwise functions only);
- ``prod``: the rows of the pairwise scores before their normalisation, one row per query:
  ``<W_q x_i, W_k x_j>`` (embedded Gaussian, dot product), ``<x_i, x_j>`` (Gaussian),
  ``w^T [W_q x_i, W_k x_j]`` (concatenation);
- ``att``: the rows ``w_i`` of the attention (after the softmax or the ``1 / N_p`` scaling);
- ``output``: ``z_i - x_i``, after the output transform.

A distance near 0 says the positions (or the queries) see nearly the same vector: query-independent.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..nn.non_local import subsample_keys
from .cosine import average_cosine_distance
from .hooks import record_blocks
from .query_independence import block_stage, image_batches, mean_over_images

STEPS = ("input", "key", "query", "prod", "att", "output")
def pairwise_scores(block: nn.Module, x: torch.Tensor, query: torch.Tensor | None,
                    key: torch.Tensor | None) -> torch.Tensor:
    """``(L, L')`` scores of one image before the normalisation of the block's pairwise function,
    from its input ``x`` ``(C, *S)`` and (embedded functions) ``W_q x`` ``(C', L)``, ``W_k x`` ``(C', L')``."""
    attention = block.attention
    if attention.pairwise == "gaussian":
        context = subsample_keys(x[None])[0] if block.sub_sample else x
        return x.flatten(1).T @ context.flatten(1)                       # <x_i, x_j>
    if attention.pairwise == "concat":
        w = attention.concat.weight[0, :, 0]
        return (w[: attention.inner] @ query)[:, None] + (w[attention.inner:] @ key)[None, :]
    return query.T @ key                                                 # <W_q x_i, W_k x_j>


def nonlocal_statistics(model: nn.Module, batches: Iterable, *, max_images: int | None = None,
                        device=None) -> dict[str, dict]:
    """GCNet Table 3 for every NL block of ``model`` over a dataset: the mean over images of each
    step's average cosine distance (see the module docstring).

    ``batches`` yields image tensors or ``(images, labels, ...)`` tuples (a DataLoader). Returns
    ``{block name: {"stage", "pairwise", "images", "input", "key", "query", "prod", "att",
    "output"}}``; ``key`` and ``query`` are None for the Gaussian pairwise function.
    """
    sums: dict[str, dict] = {}
    for images in image_batches(batches, max_images=max_images, device=device):
        records = record_blocks(model, images, kinds=("nl",),
                                keep=("input", "output", "attention", "query", "key"))
        for name, rec in records.items():
            embedded = rec.query is not None
            acc = sums.setdefault(name, {"stage": block_stage(name), "pairwise": rec.module.attention.pairwise,
                                         "images": 0, **{s: 0.0 for s in STEPS}})
            if not embedded:
                acc["key"] = acc["query"] = None
            for b in range(images.shape[0]):
                query = rec.query[b].flatten(1) if embedded else None          # (C', L)
                key = rec.key[b].flatten(1) if embedded else None              # (C', L')
                rows = {"input": rec.input[b].flatten(1).T,                    # (L, C)
                        "prod": pairwise_scores(rec.module, rec.input[b], query, key),
                        "att": rec.attention[b],                               # (L, L')
                        "output": (rec.output[b] - rec.input[b]).flatten(1).T}
                if embedded:
                    rows["key"], rows["query"] = key.T, query.T
                for step, vectors in rows.items():
                    acc[step] += average_cosine_distance(vectors)
                acc["images"] += 1
    return mean_over_images(sums, STEPS)


def nonlocal_statistics_table(stats: dict[str, dict]) -> str:
    """Plain-text table of :func:`nonlocal_statistics`, laid out like GCNet Table 3."""
    header = ("block", "stage", "pairwise", "images", *STEPS)
    rows = [header] + [(name, s["stage"] or "-", s["pairwise"], str(s["images"]),
                        *("-" if s[k] is None else f"{s[k]:.3f}" for k in STEPS))
                       for name, s in stats.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
