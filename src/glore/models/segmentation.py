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
  attention), DANet's and ANN's (:mod:`.segmentation_heads`).

:func:`create_segmenter` assembles them into a :class:`Segmenter`; :meth:`Segmenter.predict` runs
test-time inference (whole / sliding window, flip, multi-scale; :mod:`.segmentation_inference`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from glore.errors import ArgumentError
from ..nn import CrissCrossAttention, create_block
from .layers import conv_bn_relu
from .segmentation_heads import AsymmetricNonLocalHead, DualAttentionHead
from .segmentation_inference import inference

HEADS = (None, "glore", "nl", "snl", "gc", "ccnet", "danet", "ann")
# heads with a structure of their own (GCNet Table 13); the others are a ContextHead
OWN_HEADS = {"danet": DualAttentionHead, "ann": AsymmetricNonLocalHead}

# per-head block options (GloRe paper §4.3, GCNet §5.4): the GloRe unit sits on the 512-channel adaptive conv output
# with mid = 512 // 4 = 128 (128 nodes, 256 states); GC uses ratio 1/4 for segmentation.
DEFAULT_BLOCK_KWARGS: dict[str | None, dict] = {
    None: {},
    "glore": {"mid": None},
    "nl": {},
    "snl": {},
    "gc": {"ratio": 1 / 4},
    "ccnet": {"recurrence": 2},
}
# GCNet's and CCNet's heads concatenate the context output with c5; the GloRe paper's head does not.
DEFAULT_CONCAT_INPUT = {None: False, "glore": False, "nl": True, "snl": True, "gc": True, "ccnet": True}


class FCNHead(nn.Module):
    """FCN head: 3x3 conv-BN-ReLU, dropout, 1x1 classifier (the auxiliary head on res4)."""

    def __init__(self, in_channels: int, num_classes: int, *, channels: int = 256, dropout: float = 0.1):
        super().__init__()
        self.conv = conv_bn_relu(in_channels, channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.conv(x)))


class ContextHead(nn.Module):
    """Context head: ``conv_in`` -> context blocks -> ``conv_out`` [-> concat c5 -> ``conv_cat``] -> cls.

    Args:
        in_channels: channels of the backbone's last feature map (c5).
        num_classes: output classes.
        block: ``None`` (plain FCN head), ``"glore"``, ``"nl"``, ``"snl"``, ``"gc"`` or ``"ccnet"``
            (:class:`glore.nn.CrissCrossAttention`, recurrence 2).
        units: number of context blocks stacked between the two adaptive convs.
        channels: width of the adaptive convs (512 in both papers).
        concat_input: concatenate c5 with the context output, then a 3x3 conv (GCNet/CCNet head);
            ``None`` picks the paper's choice for ``block`` (on for nl/snl/gc/ccnet, off for glore/None).
        dropout: dropout before the classifier.
        block_kwargs: options for :func:`glore.nn.create_block`, merged over the defaults.
    """

    uses_c4 = False

    def __init__(self, in_channels: int, num_classes: int, *, block: str | None = "glore", units: int = 1,
                 channels: int = 512, concat_input: bool | None = None, dropout: float = 0.1,
                 block_kwargs: Mapping | None = None):
        super().__init__()
        block = _check_head(block)
        if block in OWN_HEADS:
            raise ArgumentError(f"ContextHead takes the blocks {HEADS[:6]}; {block!r} is a head of its own "
                                f"({OWN_HEADS[block].__name__})")
        if isinstance(units, bool) or not isinstance(units, int) or units < 0:
            raise ArgumentError(f"units must be a non-negative integer, got {units!r}")
        if block is None and units not in (0, 1):
            raise ArgumentError(f"head=None (plain FCN) takes no context units, got units={units}")
        self.block_name = block
        self.concat_input = DEFAULT_CONCAT_INPUT[block] if concat_input is None else bool(concat_input)
        self.conv_in = conv_bn_relu(in_channels, channels)
        kwargs = {**DEFAULT_BLOCK_KWARGS[block], **dict(block_kwargs or {})}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        blocks = [] if block is None else [_context_block(block, channels, kwargs) for _ in range(units)]
        self.context = nn.Sequential(*blocks)
        self.conv_out = conv_bn_relu(channels, channels)
        self.conv_cat = conv_bn_relu(in_channels + channels, channels) if self.concat_input else None
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def features(self, c5: torch.Tensor) -> torch.Tensor:
        """The features fed to the classifier (before dropout)."""
        x = self.conv_out(self.context(self.conv_in(c5)))
        if self.conv_cat is not None:
            x = self.conv_cat(torch.cat([c5, x], dim=1))
        return x

    def forward(self, c5: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(c5)))


def _context_block(name: str, channels: int, kwargs: dict) -> nn.Module:
    if name == "ccnet":
        try:
            return CrissCrossAttention(channels, **kwargs)
        except TypeError as exc:
            raise ArgumentError(f"bad block_kwargs for CrissCrossAttention (inner, recurrence, zero_init): "
                                f"{exc}") from None
    return create_block(name, channels, **kwargs)


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


def _check_head(head):
    if isinstance(head, str):
        head = head.lower()
        if head in ("none", "fcn", ""):
            head = None
    if head not in HEADS:
        raise ArgumentError(f"head must be one of {', '.join(map(repr, HEADS))}, got {head!r}")
    return head


def apply_multigrid(stage: nn.Module, multigrid: Sequence[int], base_dilation: int) -> None:
    """Set the dilation of the 3x3 convs of block ``i`` of ``stage`` to ``base_dilation * multigrid[i]``.

    For bottleneck blocks that is the middle conv; for basic blocks both 3x3 convs. A stage with
    more blocks than grid entries cycles through the grid (a 2-block ResNet-18 res5 gets ``(1, 2)``).
    """
    blocks = list(stage.children())
    grid = tuple(multigrid)
    if not grid or not all(isinstance(g, int) and not isinstance(g, bool) and g > 0 for g in grid):
        raise ArgumentError(f"multigrid must be a non-empty sequence of positive integers, got {multigrid!r}")
    for i, block in enumerate(blocks):
        g = grid[i % len(grid)]
        for conv in block.modules():
            if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
                conv.dilation = (base_dilation * g,) * 2
                conv.padding = (base_dilation * g,) * 2


class TinySegNet(nn.Module):
    """A five-conv backbone for CPU-sized segmentation runs (the built-in ``seg-digits`` set).

    Returns ``[c4, c5]`` at strides 2 and 4 with ``width`` channels each. It has no res5 stage, so no
    multi-grid, and its output stride is fixed at 4. Its receptive field (23 px at c5) is smaller
    than a 64 px seg-digits canvas, so any long-range comparison must come from the context head.
    """

    output_stride = 4

    def __init__(self, width: int = 32, in_chans: int = 3):
        super().__init__()
        half = max(width // 2, 1)
        self.stem = nn.Sequential(conv_bn_relu(in_chans, half),
                                  conv_bn_relu(half, half, stride=2),
                                  conv_bn_relu(half, width))
        self.down = conv_bn_relu(width, width, stride=2)
        self.out_channels = (width, width)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c4 = self.stem(x)
        return [c4, self.down(c4)]


# backbones defined here rather than in timm: name -> constructor(**backbone_kwargs)
LOCAL_BACKBONES = {"tiny_segnet": TinySegNet}


def feature_channels(backbone: nn.Module) -> tuple[int, int]:
    """Channels of the ``[c4, c5]`` maps a segmentation backbone returns."""
    if hasattr(backbone, "feature_info"):
        return tuple(backbone.feature_info.channels())
    return tuple(backbone.out_channels)


def create_backbone(name: str = "resnet50", *, multigrid: Sequence[int] | None = (1, 2, 4),
                    output_stride: int | None = None, pretrained: bool | str | os.PathLike = False,
                    blocks: Mapping | None = None, **kwargs) -> nn.Module:
    """Backbone returning ``[c4, c5]``.

    A timm ResNet at ``output_stride`` 8 by default (dilations 2, 4; 16 and 32 also accepted), with
    multi-grid in res5, built by :func:`glore.models.create_model` (so ``pretrained`` and
    ``blocks``, its ``block``/``units``/``position``/``block_kwargs``, e.g. GCNet's GC in c3-c5:
    ``dict(block="gc", units="all", block_kwargs={"ratio": 1/4})``); or a backbone of
    :data:`LOCAL_BACKBONES` (fixed stride, no multi-grid, no pretrained weights or blocks).
    """
    if name in LOCAL_BACKBONES:
        cls = LOCAL_BACKBONES[name]
        if output_stride not in (None, cls.output_stride):
            raise ArgumentError(f"backbone {name!r} has a fixed output_stride of {cls.output_stride}, "
                             f"got output_stride={output_stride!r}")
        if multigrid is not None:
            raise ArgumentError(f"backbone {name!r} has no res5 stage for multi-grid; pass multigrid=None, "
                             f"got {multigrid!r}")
        if pretrained or blocks:
            raise ArgumentError(f"backbone {name!r} takes no pretrained weights or blocks, got "
                             f"pretrained={pretrained!r}, blocks={blocks!r}")
        return cls(**kwargs)
    from .factory import create_model

    output_stride = 8 if output_stride is None else output_stride
    if output_stride not in (8, 16, 32):
        raise ArgumentError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    backbone = create_model(name, pretrained=pretrained, **dict(blocks or {}), features_only=True,
                            out_indices=(3, 4), output_stride=output_stride, **kwargs)
    if multigrid is not None:
        stage = getattr(backbone, "layer4", None)
        if stage is None:
            raise ArgumentError(f"multigrid needs a ResNet-style backbone with a layer4, got {name!r}")
        apply_multigrid(stage, multigrid, {8: 4, 16: 2, 32: 1}[output_stride])
    return backbone


def create_segmenter(backbone: str = "resnet50", *, head: str | None = "glore", num_classes: int = 19,
                     units: int = 1, multigrid: Sequence[int] | None = (1, 2, 4), aux: bool = True,
                     aux_weight: float = 0.4, channels: int = 512, aux_channels: int = 256,
                     dropout: float = 0.1, concat_input: bool | None = None,
                     block_kwargs: Mapping | None = None, output_stride: int | None = None,
                     checkpoint: str | os.PathLike | None = None, backbone_kwargs: Mapping | None = None,
                     pretrained: bool | str | os.PathLike = False, backbone_blocks: Mapping | None = None,
                     ) -> Segmenter:
    """Build a dilated FCN segmenter (GloRe paper §4.3; GCNet §5.4).

    Args:
        backbone: a timm ResNet-family name (``resnet18``, ``resnet50``, ``resnet101``, ...), or
            ``"tiny_segnet"`` (:class:`TinySegNet`, stride 4, for CPU-sized runs; needs
            ``multigrid=None``).
        head: ``None`` (plain FCN), ``"glore"`` (``units`` GloRe units between two adaptive 3x3
            convs), ``"nl"``, ``"snl"`` or ``"gc"`` (ratio 1/4, output concatenated with c5 then a
            3x3 conv, as in GCNet), ``"ccnet"`` (criss-cross attention, recurrence 2, with the c5
            concatenation), ``"danet"`` (:class:`DualAttentionHead`) or ``"ann"``
            (:class:`AsymmetricNonLocalHead`, which reads c4 too); the last two take ``units=1``
            and no ``concat_input``, and ``block_kwargs`` go to their constructors.
        num_classes: output classes (19 for Cityscapes).
        units: number of context blocks in the head.
        multigrid: res5 multi-grid factors (``None`` keeps timm's dilations).
        aux: add the auxiliary FCN head on res4; its loss weight is ``aux_weight``.
        channels, aux_channels, dropout: head widths and dropout.
        concat_input: override the head's c5 concatenation (default: the paper's choice per head).
        block_kwargs: options for the context blocks (e.g. ``{"mid": 64}`` for GloRe).
        output_stride: 8 (default for ResNets), 16 or 32; ``None`` picks the backbone's default.
        checkpoint: weights to load: a segmenter state dict (all keys loaded strictly) or a
            classification checkpoint of the same backbone (its backbone weights; ``fc`` dropped).
        backbone_kwargs: extra options for ``timm.create_model``.
        pretrained: the backbone's ImageNet weights, as :func:`glore.models.create_model` takes
            them (``True``: timm's hub or cache; a path: a local file of the backbone's weights).
        backbone_blocks: blocks inside the dilated backbone, as ``create_model``'s ``block``,
            ``units``, ``position``, ``block_kwargs`` (GCNet: GC r=4 in every block of c3-c5,
            ``dict(block="gc", units="all", block_kwargs={"ratio": 1/4})``).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ArgumentError(f"num_classes must be a positive integer, got {num_classes!r}")
    head = _check_head(head)
    net = create_backbone(backbone, multigrid=multigrid, output_stride=output_stride,
                          pretrained=pretrained, blocks=backbone_blocks, **dict(backbone_kwargs or {}))
    c4_channels, c5_channels = feature_channels(net)
    model = Segmenter(
        net,
        _own_head(head, c4_channels, c5_channels, num_classes, units=units, channels=channels, dropout=dropout,
                  concat_input=concat_input, block_kwargs=block_kwargs) if head in OWN_HEADS else
        ContextHead(c5_channels, num_classes, block=head, units=units, channels=channels,
                    concat_input=concat_input, dropout=dropout, block_kwargs=block_kwargs),
        FCNHead(c4_channels, num_classes, channels=aux_channels, dropout=dropout) if aux else None,
        num_classes=num_classes, aux_weight=aux_weight,
    )
    if checkpoint is not None:
        load_segmenter_checkpoint(model, checkpoint)
    return model


def _own_head(name: str, c4_channels: int, c5_channels: int, num_classes: int, *, units, channels, dropout,
              concat_input, block_kwargs) -> nn.Module:
    if units != 1 or concat_input:
        raise ArgumentError(f"head={name!r} has one attention module and no c5 concatenation option; got "
                            f"units={units!r}, concat_input={concat_input!r}")
    cls, kwargs = OWN_HEADS[name], dict(block_kwargs or {})
    low = (c4_channels,) if cls.uses_c4 else ()
    try:
        return cls(c5_channels, *low, num_classes, channels=channels, dropout=dropout, **kwargs)
    except TypeError as exc:
        raise ArgumentError(f"bad block_kwargs for {cls.__name__}: {exc}") from None


def _read_state_dict(path) -> dict:
    from glore.checkpoint import read_state_dict

    return read_state_dict(path)


def _strip_prefix(state: dict, prefixes=("model.", "module.", "net.")) -> dict:
    for prefix in prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_segmenter_checkpoint(model: Segmenter, path) -> Segmenter:
    """Load ``path`` into ``model``: a full segmenter state dict, or backbone (classification) weights."""
    state = _strip_prefix(_read_state_dict(path))
    if any(k.startswith("head.") for k in state):
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ArgumentError(f"{path}: segmenter checkpoint does not match the model: "
                             f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
        return model
    state = {k[len("backbone."):] if k.startswith("backbone.") else k: v for k, v in state.items()}
    own = model.backbone.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ArgumentError(f"{path}: no tensor matches the backbone (expected keys like "
                         f"{sorted(own)[:3]}, got {sorted(state)[:3]})")
    missing = sorted(set(own) - set(matched))
    if missing:
        raise ArgumentError(f"{path}: backbone weights incomplete; missing {len(missing)} tensors, "
                         f"e.g. {missing[:5]}")
    model.backbone.load_state_dict(matched, strict=False)
    return model
