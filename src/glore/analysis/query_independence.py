"""Query-independence statistics of non-local blocks ("Global Context Networks", arXiv 2012.13375, §3.2.2, Table 1)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from torch import nn

from glore.errors import ArgumentError, ArgumentTypeError
from .cosine import average_cosine_distance
from .hooks import record_blocks

QI_KINDS = ("nl", "snl", "gc", "se")
COLUMNS = ("input", "output", "att")
# a block's stage from its module name: timm / torchvision / Slow-only ``layer{1..4}`` = c2..c5, DPN
# ``conv{2..5}_{i}``
_LAYER = re.compile(r"(?:^|\.)layer([1-4])(?:\.|$)")
_DPN_CONV = re.compile(r"(?:^|[._])conv([2-5])_\d")


def block_statistics(x: torch.Tensor, z: torch.Tensor, attention: torch.Tensor | None) -> dict:
    """The three average cosine distances of one image, over its ``L`` positions.

    ``x`` and ``z`` are a block's input and output ``(C, *S)``; ``attention`` is ``(L, L)`` (row =
    query) or ``(1, L)`` (one map shared by all queries, distance 0), or None. Returns
    ``{"input": d(x_i), "output": d(z_i - x_i), "att": d(w_i) or None}``.
    """
    x_flat = x.flatten(1).T                                 # (L, C): one vector per position
    out = (z - x).flatten(1).T
    att = None if attention is None else average_cosine_distance(attention.flatten(1))
    return {"input": average_cosine_distance(x_flat), "output": average_cosine_distance(out),
            "att": att}


def batch_images(batch) -> torch.Tensor:
    """The image tensor of a batch: the batch itself, its first item, or its ``"image"`` entry."""
    if isinstance(batch, (tuple, list)):
        batch = batch[0]
    if isinstance(batch, dict):
        batch = batch["image"]
    if not isinstance(batch, torch.Tensor):
        raise ArgumentTypeError(f"expected batches of image tensors or (images, ...) tuples, got "
                        f"{type(batch).__name__}")
    return batch


def image_batches(batches: Iterable, *, max_images: int | None = None, device=None):
    """The image tensors of ``batches`` (tensors or ``(images, labels, ...)`` tuples), ``max_images``
    of them in all, on ``device``."""
    if max_images is not None and (not isinstance(max_images, int) or max_images < 1):
        raise ArgumentError(f"max_images must be a positive int or None, got {max_images!r}")

    def images_of():
        seen = 0
        for batch in batches:
            images = batch_images(batch)
            if max_images is not None:
                images = images[: max_images - seen]
            yield images if device is None else images.to(device)
            seen += images.shape[0]
            if max_images is not None and seen >= max_images:
                return

    return images_of()


def mean_over_images(sums: dict[str, dict], keys) -> dict[str, dict]:
    """Each block's per-image sums of ``keys`` divided by its image count (in place)."""
    if not sums:
        raise ArgumentError("no images: batches was empty")
    for acc in sums.values():
        for key in keys:
            if acc[key] is not None:
                acc[key] /= acc["images"]
    return sums


def query_independence_statistics(model: nn.Module, batches: Iterable, *, kinds=("nl",),
                                  max_images: int | None = None, device=None) -> dict[str, dict]:
    """GCNet Table 1 statistics of every block of the given kinds over a dataset.

    For each image and block: the average cosine distance (:func:`average_cosine_distance`, the
    paper's definition with ``i = j`` terms) over positions of the block's inputs ``x_i``, of its
    outputs before fusion ``z_i - x_i``, and of its attention maps ``w_i``; then the mean over
    images. ``batches`` yields image tensors ``(B, C, *S)`` or ``(images, labels, ...)`` tuples
    (a DataLoader). Returns ``{block name: {"kind", "input", "output", "att", "images"}}`` (``att``
    is None for blocks without attention: GC with average pooling, SE).
    """
    sums: dict[str, dict] = {}
    for images in image_batches(batches, max_images=max_images, device=device):
        records = record_blocks(model, images, kinds=kinds, keep=("input", "output", "attention"))
        for name, rec in records.items():
            acc = sums.setdefault(name, {"kind": rec.kind, "input": 0.0, "output": 0.0,
                                         "att": None if rec.attention is None else 0.0, "images": 0})
            for b in range(images.shape[0]):
                stats = block_statistics(rec.input[b], rec.output[b],
                                         None if rec.attention is None else rec.attention[b])
                for key in COLUMNS:
                    if acc[key] is not None:
                        acc[key] += stats[key]
                acc["images"] += 1
    return mean_over_images(sums, COLUMNS)


def query_independence_table(stats: dict[str, dict]) -> str:
    """Plain-text table of :func:`query_independence_statistics` results, laid out like GCNet Table 1."""
    rows = [(name, s["kind"], str(s["images"]), *_columns(s)) for name, s in stats.items()]
    return _format_table(("block", "type", "images", "input", "output", "att"), rows, left=2)


def _columns(s: dict) -> tuple[str, ...]:
    return tuple("-" if s[k] is None else f"{s[k]:.3f}" for k in COLUMNS)


def _format_table(header: tuple[str, ...], rows: list[tuple[str, ...]], *, left: int) -> str:
    """Columns padded to their widths: the first ``left`` aligned left, the others right."""
    rows = [header, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def block_stage(name: str) -> str | None:
    """The stage (``c2`` .. ``c5``, GCNet's names) a block of this module name sits in, or None."""
    found = _LAYER.search(name)
    if found:
        return f"c{int(found.group(1)) + 1}"
    found = _DPN_CONV.search(name)
    return f"c{found.group(1)}" if found else None


def stage_statistics(stats: dict[str, dict]) -> dict[str, dict]:
    """GCNet Table 2's rows: :func:`query_independence_statistics` results averaged over the blocks of
    each stage, ``{"c3": {"blocks", "images", "input", "output", "att"}, ...}`` in stage order (blocks
    whose name gives no stage are left out)."""
    stages: dict[str, list[dict]] = {}
    for name, s in stats.items():
        stage = block_stage(name)
        if stage is not None:
            stages.setdefault(stage, []).append(s)
    result = {}
    for stage in sorted(stages):
        rows = stages[stage]
        entry = {"blocks": len(rows), "images": min(r["images"] for r in rows)}
        for key in COLUMNS:
            values = [r[key] for r in rows if r[key] is not None]
            entry[key] = sum(values) / len(values) if values else None
        result[stage] = entry
    return result


def stage_table(stages: dict[str, dict]) -> str:
    """Plain-text table of :func:`stage_statistics` results, laid out like GCNet Table 2."""
    rows = [(stage, str(s["blocks"]), str(s["images"]), *_columns(s)) for stage, s in stages.items()]
    return _format_table(("stage", "blocks", "images", "input", "output", "att"), rows, left=1)
