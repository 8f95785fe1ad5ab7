"""Class-conditional activations: the channel activations per class of "Global Context Networks"
(arXiv 2012.13375) Figure 6, and the class selectivity index of Morcos et al. ("On the importance of
single directions for generalization", arXiv 1803.06959) behind its Figure 7.

An activation of a channel for one image is its mean over the positions of the feature map (Morcos
et al. §2.3); a class's mean is the mean over that class's images. The selectivity index of a unit is

    (mu_max - mu_-max) / (mu_max + mu_-max)

with ``mu_max`` its largest class mean and ``mu_-max`` the mean of its other class means: 0 when
every class drives it alike, 1 when one class alone does (for the non-negative activations after a
ReLU). GCNet computes it on the last activation of each block of c4 (the block's output, after its
final ReLU), baseline against GC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from glore.errors import ArgumentError, ArgumentTypeError
from .hooks import block_kind


def class_selectivity_index(class_means: torch.Tensor) -> torch.Tensor:
    """Selectivity index ``(U,)`` of ``U`` units from their class means ``(K, U)``, ``K >= 2``
    (a unit that no class activates gets 0)."""
    if not isinstance(class_means, torch.Tensor) or class_means.dim() != 2 or class_means.shape[0] < 2:
        shape = tuple(class_means.shape) if isinstance(class_means, torch.Tensor) else type(class_means).__name__
        raise ArgumentError(f"expected class means of shape (K >= 2 classes, units), got {shape}")
    means = class_means.to(torch.float64)
    top = means.max(dim=0).values                                     # mu_max: (U,)
    rest = (means.sum(dim=0) - top) / (means.shape[0] - 1)            # mu_-max: (U,)
    total = top + rest
    return torch.where(total > 0, (top - rest) / total.where(total > 0, torch.ones_like(total)), 0.0)


def class_means(model: nn.Module, modules: Mapping[str, nn.Module], batches: Iterable, *,
                max_images: int | None = None, device=None) -> dict[str, dict]:
    """Class means of the channel activations of ``modules``' outputs over a labelled dataset.

    ``modules`` maps a name to a submodule of ``model`` whose output is ``(B, C, *S)`` (or
    ``(B, C)``); ``batches`` yields ``(images, labels, ...)``. Runs ``model`` in eval mode without
    gradients. Returns ``{name: {"means": (K, C), "images": (K,)}}`` with ``K`` the largest label
    seen + 1 (a class without images has mean 0 and count 0).
    """
    if max_images is not None and (not isinstance(max_images, int) or max_images < 1):
        raise ArgumentError(f"max_images must be a positive int or None, got {max_images!r}")
    if not modules:
        raise ArgumentError("no modules to record: expected at least one (name -> module)")
    sums: dict[str, torch.Tensor] = {}
    counts = torch.zeros(0, dtype=torch.float64)
    current: dict[str, torch.Tensor] = {}

    def hook(name):
        def store(module, args, out):
            current[name] = (out.flatten(2).mean(-1) if out.dim() > 2 else out).detach().to(torch.float64).cpu()
        return store

    handles = [m.register_forward_hook(hook(name)) for name, m in modules.items()]
    was_training, seen = model.training, 0
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                    raise ArgumentTypeError(f"expected (images, labels, ...) batches, got {type(batch).__name__}")
                images, labels = batch[0], torch.as_tensor(batch[1]).long().cpu()
                if max_images is not None:
                    images, labels = images[: max_images - seen], labels[: max_images - seen]
                model(images if device is None else images.to(device))
                k = int(labels.max()) + 1
                if k > counts.shape[0]:
                    grow = k - counts.shape[0]
                    counts = torch.cat([counts, counts.new_zeros(grow)])
                    sums = {n: torch.cat([s, s.new_zeros(grow, s.shape[1])]) for n, s in sums.items()}
                counts.index_add_(0, labels, torch.ones(labels.shape[0], dtype=torch.float64))
                for name, value in current.items():
                    if name not in sums:
                        sums[name] = torch.zeros(counts.shape[0], value.shape[1], dtype=torch.float64)
                    sums[name].index_add_(0, labels, value)
                seen += labels.shape[0]
                if max_images is not None and seen >= max_images:
                    break
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if seen == 0:
        raise ArgumentError("no images: batches was empty")
    missing = sorted(set(modules) - set(sums))
    if missing:
        raise ArgumentError(f"these modules did not run in the model's forward pass: {missing}")
    per_class = counts.clamp_min(1)[:, None]
    return {name: {"means": s / per_class, "images": counts.clone()} for name, s in sums.items()}


def stage_blocks(model: nn.Module, stage: str = "res4") -> dict[str, nn.Module]:
    """The residual blocks of ``stage`` by GCNet's names (``c4.0`` .. ``c4.5`` for ResNet-50's res4):
    their outputs are the last activation of each block."""
    # imported here: glore.models loads timm and torchvision, which `glore --help` (whose analyze command
    # imports this module) does not need
    from ..models.insert import find_stages

    stages = find_stages(model)
    if stage not in stages or not stages[stage]:
        raise ArgumentError(f"stage must be one of {sorted(s for s, h in stages.items() if h)}, got {stage!r}")
    return {f"c{stage[3:]}.{i}": host.module for i, host in enumerate(stages[stage])}


def transform_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The transform (``W_v2 ReLU(LN(W_v1 .))`` of GC, conv-ReLU-conv of SE) of every GC and SE block,
    by block name: its output, before the fusion, is what GCNet Figure 6 plots per class."""
    found = {name: m.transform for name, m in model.named_modules() if block_kind(m) in ("gc", "se")}
    if not found:
        raise ArgumentError("model has no GC or SE block, whose transform output Figure 6 plots")
    return found
