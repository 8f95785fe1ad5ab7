"""Semantic segmentation: a dilated FCN with a context head (GloRe paper §4.3, GCNet §5.4).

The backbone is a timm ResNet whose last two downsamplings are replaced by dilation 2 (res4) and 4
(res5), so the features are at output stride 8; multi-grid (DeepLabv3) multiplies the dilation of the
3x3 convolutions of res5's blocks by ``(1, 2, 4)``, i.e. 4, 8 and 16 (GloRe paper §4.3, after DeepLabv3).

Heads (mmsegmentation-style, small and composable):

- :class:`ContextHead`: 3x3 "adaptive" conv ``C5 -> channels``, an optional stack of context blocks
  (GloRe, NL, SNL, GC), a second 3x3 conv, optionally the GCNet/CCNet concatenation with ``c5``
  followed by a 3x3 conv, dropout and a 1x1 classifier. With no block it is the plain FCN head.
- :class:`FCNHead`: the auxiliary head on res4 (3x3 conv, dropout, classifier).
- The heads GCNet Table 13 compares with: CCNet's (a :class:`ContextHead` with criss-cross
  attention), DANet's and ANN's.

:func:`create_segmenter` assembles them into a :class:`Segmenter`; :meth:`Segmenter.predict` runs
test-time inference (whole / sliding window, flip, multi-scale; :mod:`.segmentation_inference`).

The heads live in :mod:`glore.models.segmentation_heads`, the backbone set-up in
:mod:`glore.models.segmentation_backbone`, :class:`TinySegNet` in :mod:`glore.models.tiny_segnet`;
their public names are importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from glore.checkpoint import CheckpointError, load_checkpoint, read_state_dict
from glore.errors import ArgumentError
from .segmentation_backbone import LOCAL_BACKBONES, apply_multigrid, create_backbone, feature_channels
from . import segmentation_heads
from .placement import parse_placement, upgrade_segmenter_spelling
from .segmentation_heads import (DEFAULT_CONCAT_INPUT, HEADS, OWN_HEADS, AsymmetricNonLocalHead, ContextHead,
                                 DualAttentionHead, FCNHead, check_head, own_head)
from .segmentation_inference import inference
from .tiny_segnet import TinySegNet

__all__ = [
    "Segmenter", "create_segmenter", "load_segmenter_checkpoint",
    "HEADS", "OWN_HEADS", "DEFAULT_CONCAT_INPUT", "ContextHead", "FCNHead",
    "DualAttentionHead", "AsymmetricNonLocalHead", "LOCAL_BACKBONES", "TinySegNet", "apply_multigrid",
    "create_backbone", "feature_channels",
]


def __getattr__(name: str):
    if name == "DEFAULT_BLOCK_KWARGS":                            # the earlier spelling, with a FutureWarning
        return segmentation_heads.DEFAULT_BLOCK_KWARGS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Segmenter(nn.Module):
    """Backbone (``[c4, c5]``), a head (:class:`ContextHead`, or one of :data:`OWN_HEADS`; a head
    with ``uses_c4`` gets c4 too) and an optional auxiliary :class:`FCNHead`.

    ``forward(x)`` returns the logits ``(B, num_classes, H, W)`` upsampled (bilinear) to the input
    size. In training mode with an auxiliary head, or with ``return_aux=True``, it returns
    ``{"out": logits, "aux": aux_logits}`` instead (both at input size).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, aux_head: FCNHead | None = None, *,
                 num_classes: int, aux_weight: float = 0.4):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.aux_head = aux_head
        self.num_classes = num_classes
        self.aux_weight = float(aux_weight)

    def forward(self, x: torch.Tensor, *, return_aux: bool | None = None):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ArgumentError(f"Segmenter expects images of shape (B, 3, H, W), got {tuple(x.shape)}")
        size = x.shape[-2:]
        c4, c5 = self.backbone(x)
        out = _upsample(self.head(c5, c4) if getattr(self.head, "uses_c4", False) else self.head(c5), size)
        if return_aux is None:
            return_aux = self.training and self.aux_head is not None
        if not return_aux:
            return out
        if self.aux_head is None:
            raise ArgumentError("return_aux=True needs a model built with aux=True")
        return {"out": out, "aux": _upsample(self.aux_head(c4), size)}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, *, mode: str = "whole", crop_size=769, stride=513,
                flip: bool = False, scales: Sequence[float] = (1.0,)) -> torch.Tensor:
        """Class scores ``(B, num_classes, H, W)`` at test time (see
        :func:`glore.models.segmentation_inference.inference`): ``mode`` ``"whole"`` or ``"slide"``
        (``crop_size`` windows every ``stride`` pixels), averaged over a horizontal ``flip`` and
        ``scales``. One whole-image pass gives logits, several give averaged probabilities.
        The caller puts the model in eval mode."""
        return inference(self, images, mode=mode, crop_size=crop_size, stride=stride, flip=flip, scales=scales)


def _upsample(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def create_segmenter(backbone: str = "resnet50", *, head: str | None = "glore", head_depth: int | None = None,
                     head_kwargs: Mapping | None = None, num_classes: int = 19,
                     multigrid: Sequence[int] | None = (1, 2, 4), aux: bool = True, aux_weight: float = 0.4,
                     channels: int = 512, aux_channels: int = 256, dropout: float = 0.1,
                     concat_input: bool | None = None, output_stride: int | None = None,
                     checkpoint: str | os.PathLike | None = None, backbone_kwargs: Mapping | None = None,
                     pretrained: bool | str | os.PathLike = False, block: str | None = None, units=None,
                     position: str | None = None, block_kwargs: Mapping | None = None,
                     backbone_blocks: Mapping | None = None) -> Segmenter:
    """Build a dilated FCN segmenter (GloRe paper §4.3; GCNet §5.4).

    Args:
        backbone: a timm ResNet-family name (``resnet18``, ``resnet50``, ``resnet101``, ...), or
            ``"tiny_segnet"`` (:class:`TinySegNet`, stride 4, for CPU-sized runs; needs
            ``multigrid=None``).
        head: ``None`` (plain FCN), ``"glore"`` (``head_depth`` GloRe units between two adaptive 3x3
            convs), ``"nl"``, ``"snl"`` or ``"gc"`` (ratio 1/4, output concatenated with c5 then a
            3x3 conv, as in GCNet), ``"ccnet"`` (criss-cross attention, recurrence 2, with the c5
            concatenation), ``"danet"`` (:class:`DualAttentionHead`) or ``"ann"``
            (:class:`AsymmetricNonLocalHead`, which reads c4 too); the last two have one attention
            module and no ``concat_input``, and ``head_kwargs`` go to their constructors.
        head_depth: number of context blocks stacked in the head (default 1).
        head_kwargs: options for the head's context blocks (e.g. ``{"mid": 64}`` for GloRe).
        num_classes: output classes (19 for Cityscapes).
        multigrid: res5 multi-grid factors (``None`` keeps timm's dilations).
        aux: add the auxiliary FCN head on res4; its loss weight is ``aux_weight``.
        channels, aux_channels, dropout: head widths and dropout.
        concat_input: override the head's c5 concatenation (default: the paper's choice per head).
        output_stride: 8 (default for ResNets), 16 or 32; ``None`` picks the backbone's default.
        checkpoint: weights to load: a segmenter state dict (all keys loaded strictly) or a
            classification checkpoint of the same backbone (its backbone weights; ``fc`` dropped).
        backbone_kwargs: extra options for ``timm.create_model``.
        pretrained: the backbone's ImageNet weights, as :func:`glore.models.create_model` takes
            them (``True``: timm's hub or cache; a path: a local file of the backbone's weights).
        block, units, position, block_kwargs: blocks inside the dilated backbone, as in
            :func:`glore.models.create_model` (GCNet: GC r=4 in every block of c3-c5,
            ``block="gc", units="all", block_kwargs={"ratio": 1/4}``).

    The earlier spellings work for one release, with a ``FutureWarning``: ``units=N`` counting the
    head's blocks (now ``head_depth``), ``block_kwargs`` without a ``block`` for the head's options
    (now ``head_kwargs``) and ``backbone_blocks={...}`` (now ``block``, ``units``, ``position``,
    ``block_kwargs``).
    """
    spelled = upgrade_segmenter_spelling(dict(head_depth=head_depth, head_kwargs=head_kwargs, block=block, units=units,
                                              position=position, block_kwargs=block_kwargs,
                                              backbone_blocks=backbone_blocks))
    head_depth = 1 if spelled["head_depth"] is None else spelled["head_depth"]
    placement = parse_placement(spelled.get("block"), spelled.get("units"), spelled.get("position"),
                                spelled.get("block_kwargs"), example="units='all' or {'res4': [5]}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ArgumentError(f"num_classes must be a positive integer, got {num_classes!r}")
    head = check_head(head)
    net = create_backbone(backbone, multigrid=multigrid, output_stride=output_stride, pretrained=pretrained,
                          blocks=placement.as_kwargs() if placement else None, **dict(backbone_kwargs or {}))
    c4_channels, c5_channels = feature_channels(net)
    head_kwargs = spelled.get("head_kwargs")
    model = Segmenter(
        net,
        own_head(head, c4_channels, c5_channels, num_classes, depth=head_depth, channels=channels, dropout=dropout,
                 concat_input=concat_input, head_kwargs=head_kwargs) if head in OWN_HEADS else
        ContextHead(c5_channels, num_classes, block=head, depth=head_depth, channels=channels,
                    concat_input=concat_input, dropout=dropout, block_kwargs=head_kwargs),
        FCNHead(c4_channels, num_classes, channels=aux_channels, dropout=dropout) if aux else None,
        num_classes=num_classes, aux_weight=aux_weight,
    )
    if checkpoint is not None:
        load_segmenter_checkpoint(model, checkpoint)
    return model


def load_segmenter_checkpoint(model: Segmenter, path: str | os.PathLike | Mapping) -> Segmenter:
    """Load ``path`` (a file or a state dict) into ``model`` as :func:`glore.checkpoint.load_checkpoint`
    does, strictly, naming every missing, unexpected or mis-shaped tensor: a full segmenter state
    dict (names under ``head.``), or the weights of a classification network of the same backbone
    (its classifier ``fc.`` dropped) into ``model.backbone``."""
    source = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "state dict"
    state = read_state_dict(path, expected=model.state_dict())
    if any(k.startswith("head.") for k in state):
        return load_checkpoint(model, state, source=source)
    own = model.backbone.state_dict()
    state = {k.removeprefix("backbone."): v for k, v in state.items()}
    state = {k: v for k, v in read_state_dict(state, expected=own).items() if not k.startswith("fc.")}
    if not set(state) & set(own):
        raise CheckpointError(f"{source}: no tensor matches the backbone (expected keys like "
                              f"{sorted(own)[:3]}, got {sorted(state)[:3]})")
    load_checkpoint(model.backbone, state, source=source)
    return model
