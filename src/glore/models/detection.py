"""Faster / Mask / Cascade R-CNN with FPN over a ResNet whose residual blocks host GloRe or GC blocks.

The detection setting of the Global Context Networks paper (Cao et al., arXiv 2012.13375, §5.1):
Mask R-CNN with FPN on an ImageNet ResNet, GC blocks ``after_1x1`` in every residual block of c3-c5
(``units="all"``, ``ratio=1/16`` or ``1/4``) or one NL / SNL / GC right before the last block of c4
(``units={"res4": [5]}`` on ResNet-50), all layers but c1-c2 fine-tuned, SyncBN (``frozen_bn=False``
with ``trainer.sync_batchnorm``) or frozen BatchNorm; for Table 7 also ResNeXt-101 backbones, DCN v2 in
c3-c5 (``dcn=True``), the 4conv1fc box head and Cascade R-CNN (``arch="cascade_maskrcnn"``).

>>> model = create_detector("maskrcnn", "resnet50", block="gc", units="all",
...                         block_kwargs={"ratio": 1 / 16})          # Table 5(e): 46.9M parameters

Built from torchvision's pieces (``torchvision.models.detection``): a torchvision ResNet with the
blocks inserted by :func:`glore.models.insert_blocks`, ``BackboneWithFPN``, then ``FasterRCNN`` /
``MaskRCNN``. With the defaults and no block the model has exactly the parameters of
``torchvision.models.detection.maskrcnn_resnet50_fpn`` (44.4M at 91 classes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torchvision
from torch import nn
from torchvision.models import get_model_weights
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.resnet import Bottleneck, ResNet
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from glore.checkpoint import CheckpointError, read_state_dict
from glore.errors import ArgumentError, MissingFileError
from .cascade import AgnosticBoxPredictor, CascadeRoIHeads
from .deformable import add_deformable_convs
from .insert import inserted_blocks, place_blocks
from .placement import parse_placement
from .weights import check_url_weights, weights_mismatch

ARCHS = ("fasterrcnn", "maskrcnn", "cascade_rcnn", "cascade_maskrcnn")
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
             "resnext101_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2")
BOX_HEADS = ("2fc", "4conv1fc")
# torchvision's order of unfreezing: trainable_layers=3 trains layer2-layer4 (the paper's "all but c1-c2")
_TRAIN_ORDER = ("layer4", "layer3", "layer2", "layer1", "conv1")


def _building_on_meta() -> bool:
    """Whether modules are being created on the meta device (``with torch.device("meta"):``)."""
    return torch.empty(()).device.type == "meta"


_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


def _local_weights(pretrained) -> str | None:
    """``pretrained_backbone`` as a local file path, or None when it names torchvision weights."""
    if not isinstance(pretrained, (str, os.PathLike)) or isinstance(pretrained, bool):
        return None
    path = os.fspath(pretrained)
    if os.path.isfile(path):
        return path
    if os.sep in path or path.lower().endswith(_WEIGHT_SUFFIXES):
        raise MissingFileError(f"pretrained_backbone weights file not found: {path!r}")
    return None


def _backbone_weights(backbone: str, pretrained):
    """``pretrained_backbone`` -> a torchvision weights enum (``True`` = the backbone's default),
    checked to be cached or downloadable."""
    if pretrained is None or pretrained is False:
        return None


    if backbone == "resnext101_32x4d":
        raise ArgumentError(f"torchvision has no weights for resnext101_32x4d; pass pretrained_backbone as a local "
                            f"file of ImageNet weights (e.g. timm's resnext101_32x4d state dict), got {pretrained!r}")
    weights = get_model_weights(backbone)
    if pretrained is True:
        chosen = weights.DEFAULT
    else:
        try:
            chosen = weights[str(pretrained)]
        except KeyError:
            raise ArgumentError(f"pretrained_backbone={pretrained!r} is not a weight of torchvision's {backbone} nor "
                                f"a file; expected True, False, a weights file or one of "
                                f"{[w.name for w in weights]}") from None
    check_url_weights(chosen.url, model=f"torchvision's {backbone}",
                      local_option=f"pretrained_backbone=/path/{backbone}.pth")
    return chosen


def _resnet(backbone: str, weights, norm) -> nn.Module:
    """A torchvision ResNet; ResNeXt-101 32x4d (GCNet's X101, which torchvision does not list) from
    torchvision's ``ResNet`` class with 32 groups of width 4."""
    if backbone == "resnext101_32x4d":
        return ResNet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=4, norm_layer=norm)
    return torchvision.models.get_model(backbone, weights=weights, norm_layer=norm)


def _load_backbone_file(resnet: nn.Module, path: str, backbone: str) -> None:
    """ImageNet weights of ``backbone`` from a local file (torchvision's or timm's ResNet names)."""
    own = resnet.state_dict()
    state = {k: v for k, v in read_state_dict(path, expected=own).items()
             if k in own or not k.endswith("num_batches_tracked")}     # FrozenBatchNorm2d keeps no counter
    shapes = {k: tuple(v.shape) for k, v in own.items()}
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing or set(state) - set(own) or any(tuple(v.shape) != shapes[k] for k, v in state.items() if k in own):
        raise CheckpointError(weights_mismatch(path, f"torchvision's {backbone}", own, state, shapes))
    resnet.load_state_dict(state, strict=False)


def _freeze_norms(module: nn.Module) -> None:
    """Replace every ``BatchNorm2d`` under ``module`` by a ``FrozenBatchNorm2d`` with its statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps).to(child.weight.device)
            with torch.no_grad():
                for key in ("weight", "bias", "running_mean", "running_var"):
                    getattr(frozen, key).copy_(getattr(child, key))
            setattr(module, name, frozen)
        else:
            _freeze_norms(child)


def _freeze(resnet: nn.Module, trainable_layers: int) -> None:
    """torchvision's rule: the first ``5 - trainable_layers`` of conv1, layer1..layer4 stay fixed; their
    BatchNorms become ``FrozenBatchNorm2d`` too, so that a fixed stage's statistics stay fixed."""
    if isinstance(trainable_layers, bool) or not isinstance(trainable_layers, int) or not 0 <= trainable_layers <= 5:
        raise ArgumentError(f"trainable_layers must be an integer in [0, 5], got {trainable_layers!r}")
    train = list(_TRAIN_ORDER[:trainable_layers]) + (["bn1"] if trainable_layers == 5 else [])
    for name, param in resnet.named_parameters():
        if not any(name.startswith(prefix) for prefix in train):
            param.requires_grad_(False)
    fixed = nn.Module()                   # a parent holding the fixed stages, to swap their norms in place
    for name, child in resnet.named_children():
        if name not in train and name not in ("fc", "avgpool"):
            fixed.add_module(name, child)
    _freeze_norms(fixed)
    for name, child in fixed.named_children():
        setattr(resnet, name, child)


def _check_blocks_train(resnet: nn.Module, trainable_layers: int) -> None:

    frozen = [name for name, blk in inserted_blocks(resnet).items()
              if not any(p.requires_grad for p in blk.parameters())]
    if frozen:
        raise ArgumentError(f"inserted blocks {frozen} sit in layers that trainable_layers={trainable_layers} freezes "
                         f"(they would stay at their identity initialisation); train more layers or move the blocks")


def _anchor_generator(returned_layers: Sequence[int], anchor_sizes):

    levels = len(returned_layers) + 1                       # + the max-pooled level on top
    if anchor_sizes is None:                                # torchvision's 8 x stride: 32 .. 512 on P2-P6
        strides = [2 ** (k + 1) for k in returned_layers]
        anchor_sizes = [8 * s for s in strides] + [16 * strides[-1]]
    anchor_sizes = [tuple(s) if isinstance(s, (list, tuple)) else (int(s),) for s in anchor_sizes]
    if len(anchor_sizes) != levels:
        raise ArgumentError(f"anchor_sizes needs one entry per feature level ({levels}: the returned layers "
                         f"{list(returned_layers)} and the pooled level), got {len(anchor_sizes)}")
    return AnchorGenerator(tuple(anchor_sizes), ((0.5, 1.0, 2.0),) * levels)


def create_detector(arch: str = "maskrcnn", backbone: str = "resnet50", *, block: str | None = None,
                    units=None, position: str | None = None, block_kwargs: dict | None = None,
                    pretrained_backbone=False, num_classes: int = 91, trainable_layers: int | None = None,
                    frozen_bn: bool | None = None, dcn: bool = False, returned_layers: Sequence[int] = (1, 2, 3, 4),
                    fpn_channels: int = 256, anchor_sizes=None, box_head: str = "2fc", box_head_channels: int = 1024,
                    mask_head_channels: int = 256, head_norm: bool = False, **kwargs) -> nn.Module:
    """Build a torchvision ``FasterRCNN`` / ``MaskRCNN`` (or their Cascade R-CNN version) with FPN over
    ``backbone`` + ``block`` units.

    Args:
        arch: ``"maskrcnn"``, ``"fasterrcnn"``, ``"cascade_maskrcnn"`` or ``"cascade_rcnn"`` (three box
            stages at IoU 0.5 / 0.6 / 0.7, :class:`glore.models.cascade.CascadeRoIHeads`).
        backbone: a torchvision ResNet / ResNeXt / wide ResNet name (:data:`BACKBONES`);
            ``resnext101_32x4d`` is GCNet's X101.
        block, units, position, block_kwargs: what :func:`glore.models.insert_blocks` inserts
            (``block="gc", units="all"``: GC in every block of c3-c5; ``units={"res4": [5]}``: one
            block before the last block of ResNet-50's c4). ``block=None``: the plain detector.
        pretrained_backbone: ``False``, ``True`` (torchvision's default ImageNet weights of the
            backbone, downloaded by torchvision), a weights name such as ``"IMAGENET1K_V1"``, or a
            local weights file of the backbone (torchvision's or timm's ResNet names). Weights that
            are neither cached nor downloadable fail at once, naming the URL.
        num_classes: classes including the background (91 for COCO's category ids).
        trainable_layers: how many of layer4, layer3, layer2, layer1, conv1 are trained (torchvision's
            option); default 3 with pretrained weights (the paper: all but c1-c2), else 5. The fixed
            stages' norms are ``FrozenBatchNorm2d`` in any case.
        frozen_bn: ``FrozenBatchNorm2d`` in the whole backbone (default: with pretrained weights, as
            torchvision); ``False``: ``BatchNorm2d`` in the trained stages, which ``trainer.sync_batchnorm``
            turns into SyncBN (GCNet's default). The inserted blocks keep their own (trainable) norms.
        dcn: modulated deformable convolutions (DCN v2) for the 3x3 convs of c3-c5
            (:mod:`glore.models.deformable`; the plain convs' output at step 0).
        returned_layers: the ResNet stages (1-4 = c2-c5) the FPN reads; fewer, shallower stages give
            small-image detectors a smaller receptive field.
        fpn_channels, box_head_channels, mask_head_channels: widths of the FPN, the box head's fc
            layers and the mask head (torchvision's 256 / 1024 / 256 by default).
        box_head: ``"2fc"`` (two fc layers, torchvision's ``TwoMLPHead``) or ``"4conv1fc"`` (four 3x3
            convs of ``fpn_channels`` and one fc, torchvision's ``FastRCNNConvFCHead``).
        head_norm: ``BatchNorm2d`` after the convs of the FPN, the box head (4conv1fc) and the mask head
            (GCNet Table 6a's "syncBN in backbone and heads" with ``trainer.sync_batchnorm``).
        anchor_sizes: one anchor size (or tuple of sizes) per level; default 8 x the level's stride.
        **kwargs: options of torchvision's ``FasterRCNN`` / ``MaskRCNN`` (``min_size`` -- a tuple of
            sizes samples one per training batch, multi-scale training --, ``max_size``,
            ``rpn_pre_nms_top_n_train``, ``box_batch_size_per_image``, ``box_score_thresh``, ...).
    """
    if arch not in ARCHS:
        raise ArgumentError(f"arch must be one of {list(ARCHS)}, got {arch!r}")
    if backbone not in BACKBONES:
        raise ArgumentError(f"backbone must be one of {list(BACKBONES)}, got {backbone!r}")
    if box_head not in BOX_HEADS:
        raise ArgumentError(f"box_head must be one of {list(BOX_HEADS)}, got {box_head!r}")
    placement = parse_placement(block, units, position, block_kwargs, example="units='all' (c3-c5) or {'res4': [5]}")
    returned_layers = [int(k) for k in returned_layers]
    if not returned_layers or sorted(set(returned_layers)) != returned_layers or not all(1 <= k <= 4 for k in returned_layers):
        raise ArgumentError(f"returned_layers must be increasing stage numbers in 1..4, got {returned_layers!r}")

    on_meta = _building_on_meta()          # shapes only (parameter and MAC counts): no weights to read
    local = None if on_meta else _local_weights(pretrained_backbone)
    weights = None if (local or on_meta) else _backbone_weights(backbone, pretrained_backbone)
    trained = (pretrained_backbone not in (None, False)) if on_meta else (weights is not None or local is not None)
    frozen_bn = trained if frozen_bn is None else bool(frozen_bn)
    trainable_layers = (3 if trained else 5) if trainable_layers is None else trainable_layers
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    resnet = _resnet(backbone, weights, norm)
    if local:
        _load_backbone_file(resnet, local, backbone)
    if dcn:
        add_deformable_convs(resnet, stages=(2, 3, 4))
    if placement is not None:
        place_blocks(resnet, placement)
    _freeze(resnet, trainable_layers)
    _check_blocks_train(resnet, trainable_layers)

    c2 = resnet.inplanes // 8                                  # channels of layer1's output
    in_channels = [c2 * 2 ** (k - 1) for k in returned_layers]
    layer_norm = nn.BatchNorm2d if head_norm else None
    body = BackboneWithFPN(resnet, {f"layer{k}": str(i) for i, k in enumerate(returned_layers)},
                           in_channels, fpn_channels, extra_blocks=LastLevelMaxPool(), norm_layer=layer_norm)
    dropped = sorted(set(inserted_blocks(resnet)) - set(inserted_blocks(body.body)))
    if dropped:
        raise ArgumentError(f"inserted blocks {dropped} sit in stages after the last of returned_layers="
                         f"{returned_layers}, which the FPN never runs; insert them in layer1..layer{returned_layers[-1]}")
    names = [str(i) for i in range(len(returned_layers))]
    cascade = arch.startswith("cascade")

    def make_box_head():
        if box_head == "4conv1fc":
            return FastRCNNConvFCHead((fpn_channels, 7, 7), [fpn_channels] * 4, [box_head_channels], layer_norm)
        return TwoMLPHead(fpn_channels * 7 * 7, box_head_channels)

    heads = dict(
        rpn_anchor_generator=_anchor_generator(returned_layers, anchor_sizes),
        box_roi_pool=MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2),
        box_head=make_box_head(),
        box_predictor=FastRCNNPredictor(box_head_channels, num_classes),
    )
    if arch in ("fasterrcnn", "cascade_rcnn"):
        model = FasterRCNN(body, num_classes=None, **heads, **kwargs)
    else:
        heads.update(
            mask_roi_pool=MultiScaleRoIAlign(names, output_size=14, sampling_ratio=2),
            mask_head=MaskRCNNHeads(fpn_channels, (mask_head_channels,) * 4, 1, norm_layer=layer_norm),
            mask_predictor=MaskRCNNPredictor(mask_head_channels, mask_head_channels, num_classes),
        )
        model = MaskRCNN(body, num_classes=None, **heads, **kwargs)
    if cascade:
        model.roi_heads = _cascade_heads(model.roi_heads, make_box_head, box_head_channels, num_classes)
    return model


def _cascade_heads(single: nn.Module, make_box_head, box_head_channels: int, num_classes: int) -> nn.Module:
    """Cascade R-CNN's three stages in place of torchvision's single-stage ``RoIHeads`` ``single``,
    keeping its RoI pooling, mask branch and test-time settings."""
    sampler = single.fg_bg_sampler
    return CascadeRoIHeads(
        single.box_roi_pool, [make_box_head() for _ in range(3)],
        [AgnosticBoxPredictor(box_head_channels, num_classes) for _ in range(3)],
        batch_size_per_image=sampler.batch_size_per_image, positive_fraction=sampler.positive_fraction,
        score_thresh=single.score_thresh, nms_thresh=single.nms_thresh, detections_per_img=single.detections_per_img,
        mask_roi_pool=single.mask_roi_pool, mask_head=single.mask_head, mask_predictor=single.mask_predictor)
