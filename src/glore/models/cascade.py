"""Cascade R-CNN box heads (Cai & Vasconcelos, arXiv 1712.00726) on torchvision's RoIHeads.

Three stages, each a box head and a predictor of its own, trained on proposals matched at a higher
IoU than the stage before (0.5 / 0.6 / 0.7), each refining the boxes of the one before:

    b_t = decode_t(f_t(pool(x, b_{t-1})), b_{t-1}),    L = sum_t w_t L_t,   w = (1, 0.5, 0.25)

The box regression is class-agnostic (one box per region), its targets normalised by standard
deviations that shrink from stage to stage (box coder weights (10, 10, 5, 5), (20, 20, 10, 10),
(30, 30, 15, 15)), as in the paper. At test time a region's class scores are the mean of the three
classifiers' and its box is the last stage's; the mask head (Cascade Mask R-CNN) runs on the last
stage: in training on its positive regions, at test time on the final detections.

The pieces are torchvision's (``RoIHeads`` for the RoI pooling, mask head and its loss,
``BoxCoder``, ``Matcher``, ``BalancedPositiveNegativeSampler``, ``batched_nms``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_inference, maskrcnn_loss
from torchvision.ops import boxes as box_ops

from glore._internals.torchvision_detection import BoxCoder, Matcher

IOU_THRESHOLDS = (0.5, 0.6, 0.7)
STAGE_WEIGHTS = (1.0, 0.5, 0.25)
BOX_CODER_WEIGHTS = ((10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0))


class AgnosticBoxPredictor(nn.Module):
    """Class scores and one class-agnostic box delta per region (a cascade stage's predictor)."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(1)                                   # (R, D)
        return self.cls_score(x), self.bbox_pred(x)        # (R, num_classes), (R, 4)


class CascadeRoIHeads(RoIHeads):
    """torchvision's ``RoIHeads`` interface with the three box stages of Cascade R-CNN.

    Args:
        box_roi_pool: the RoI pooling shared by the stages (``MultiScaleRoIAlign``).
        box_heads, box_predictors: one per stage (``TwoMLPHead`` / ``FastRCNNConvFCHead`` and
            :class:`AgnosticBoxPredictor`).
        iou_thresholds, stage_weights, box_coder_weights: per stage (the paper's by default).
        batch_size_per_image, positive_fraction, score_thresh, nms_thresh, detections_per_img:
            as torchvision's ``RoIHeads``.
        mask_roi_pool, mask_head, mask_predictor: the mask branch on the last stage, or ``None``.
    """

    def __init__(self, box_roi_pool: nn.Module, box_heads: Sequence[nn.Module], box_predictors: Sequence[nn.Module],
                 *, iou_thresholds: Sequence[float] = IOU_THRESHOLDS, stage_weights: Sequence[float] = STAGE_WEIGHTS,
                 box_coder_weights: Sequence[Sequence[float]] = BOX_CODER_WEIGHTS, batch_size_per_image: int = 512,
                 positive_fraction: float = 0.25, score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_img: int = 100, mask_roi_pool=None, mask_head=None, mask_predictor=None):
        stages = len(box_heads)
        if not (len(box_predictors) == len(iou_thresholds) == len(stage_weights) == len(box_coder_weights) == stages):
            raise ValueError(f"a cascade needs one box head, predictor, IoU threshold, loss weight and box coder "
                             f"per stage; got {len(box_heads)}, {len(box_predictors)}, {len(iou_thresholds)}, "
                             f"{len(stage_weights)}, {len(box_coder_weights)}")
        super().__init__(box_roi_pool, None, None, iou_thresholds[0], iou_thresholds[0], batch_size_per_image,
                         positive_fraction, box_coder_weights[0], score_thresh, nms_thresh, detections_per_img,
                         mask_roi_pool=mask_roi_pool, mask_head=mask_head, mask_predictor=mask_predictor)
        self.box_heads = nn.ModuleList(box_heads)
        self.box_predictors = nn.ModuleList(box_predictors)
        self.matchers = [Matcher(t, t, allow_low_quality_matches=False) for t in iou_thresholds]
        self.box_coders = [BoxCoder(tuple(w)) for w in box_coder_weights]
        self.stage_weights = tuple(float(w) for w in stage_weights)

    def _sample(self, stage: int, proposals: list[torch.Tensor], targets: list[dict]):
        """Stage ``stage``'s training regions: proposals + ground truth, matched at its IoU, sampled."""
        sampled, matched, labels, deltas = [], [], [], []
        matcher, coder = self.matchers[stage], self.box_coders[stage]
        for boxes, target in zip(proposals, targets):
            gt_boxes = target["boxes"].to(boxes.dtype)
            boxes = torch.cat((boxes, gt_boxes))                                   # (P + G, 4)
            if gt_boxes.numel() == 0:
                idx = torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device)
                label = torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device)
                gt_boxes = boxes.new_zeros((1, 4))
            else:
                idx = matcher(box_ops.box_iou(gt_boxes, boxes))                    # (P + G,) gt index or < 0
                label = target["labels"][idx.clamp(min=0)].clone()
                label[idx == matcher.BELOW_LOW_THRESHOLD] = 0
                label[idx == matcher.BETWEEN_THRESHOLDS] = -1
                idx = idx.clamp(min=0)
            sampled.append(boxes)
            matched.append(idx)
            labels.append(label)
        positive, negative = self.fg_bg_sampler(labels)
        for i in range(len(sampled)):
            keep = torch.where(positive[i] | negative[i])[0]
            sampled[i], matched[i], labels[i] = sampled[i][keep], matched[i][keep], labels[i][keep]
            gt_boxes = targets[i]["boxes"].to(sampled[i].dtype)
            gt_boxes = gt_boxes if gt_boxes.numel() else sampled[i].new_zeros((1, 4))
            deltas.append(coder.encode_single(gt_boxes[matched[i]], sampled[i]))    # (S, 4)
        return sampled, matched, labels, deltas

    def _stage(self, stage: int, features, boxes: list[torch.Tensor], image_shapes):
        """One stage on ``boxes``: class logits, deltas, and the refined boxes (clipped, detached)."""
        regions = self.box_roi_pool(features, boxes, image_shapes)                 # (R, C, 7, 7)
        logits, deltas = self.box_predictors[stage](self.box_heads[stage](regions))  # (R, K), (R, 4)
        refined = self.box_coders[stage].decode_single(deltas.detach(), torch.cat(boxes))   # (R, 4)
        refined = [box_ops.clip_boxes_to_image(b, shape)
                   for b, shape in zip(refined.split([len(b) for b in boxes]), image_shapes)]
        return logits, deltas, refined

    def forward(self, features, proposals, image_shapes, targets=None):
        if self.training and targets is None:
            raise ValueError("targets should not be None in training")
        losses, scores = {}, []
        boxes = proposals
        for stage in range(len(self.box_heads)):
            suffix = "" if stage == 0 else f"_stage{stage + 1}"
            if self.training:
                boxes, matched, labels, regression_targets = self._sample(stage, boxes, targets)
            logits, deltas, refined = self._stage(stage, features, boxes, image_shapes)
            if self.training:
                labels_all, targets_all = torch.cat(labels), torch.cat(regression_targets)
                positive = torch.where(labels_all > 0)[0]
                box_loss = F.smooth_l1_loss(deltas[positive], targets_all[positive], beta=1 / 9,
                                            reduction="sum") / max(labels_all.numel(), 1)
                weight = self.stage_weights[stage]
                losses[f"loss_classifier{suffix}"] = weight * F.cross_entropy(logits, labels_all)
                losses[f"loss_box_reg{suffix}"] = weight * box_loss
                if stage < len(self.box_heads) - 1:
                    boxes = refined
            else:
                scores.append(F.softmax(logits, -1))
                boxes = refined                      # after the last stage: the final boxes
        if self.training:
            if self.has_mask():
                losses["loss_mask"] = self._mask_loss(features, boxes, matched, labels, image_shapes, targets)
            return [], losses
        result = self._detections(torch.stack(scores).mean(0), boxes, image_shapes)
        if self.has_mask():
            self._add_masks(features, result, image_shapes)
        return result, losses

    def _detections(self, scores: torch.Tensor, boxes: list[torch.Tensor], image_shapes) -> list[dict]:
        """Per-class score threshold, NMS and top-k of the last stage's boxes (one box per region)."""
        result = []
        num_classes = scores.shape[-1]
        for image_scores, image_boxes in zip(scores.split([len(b) for b in boxes]), boxes):
            labels = torch.arange(1, num_classes, device=scores.device).expand(len(image_boxes), -1)  # (R, K-1)
            image_scores = image_scores[:, 1:]
            image_boxes = image_boxes[:, None].expand(-1, num_classes - 1, 4)                       # (R, K-1, 4)
            image_boxes, image_scores, labels = image_boxes.reshape(-1, 4), image_scores.reshape(-1), labels.reshape(-1)
            keep = torch.where(image_scores > self.score_thresh)[0]
            image_boxes, image_scores, labels = image_boxes[keep], image_scores[keep], labels[keep]
            keep = box_ops.remove_small_boxes(image_boxes, min_size=1e-2)
            image_boxes, image_scores, labels = image_boxes[keep], image_scores[keep], labels[keep]
            keep = box_ops.batched_nms(image_boxes, image_scores, labels, self.nms_thresh)[: self.detections_per_img]
            result.append({"boxes": image_boxes[keep], "labels": labels[keep], "scores": image_scores[keep]})
        return result

    def _mask_loss(self, features, boxes, matched, labels, image_shapes, targets) -> torch.Tensor:
        positive = [torch.where(label > 0)[0] for label in labels]
        regions = [b[p] for b, p in zip(boxes, positive)]
        logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, regions, image_shapes)))
        return maskrcnn_loss(logits, regions, [t["masks"] for t in targets], [t["labels"] for t in targets],
                             [m[p] for m, p in zip(matched, positive)])

    def _add_masks(self, features, result: list[dict], image_shapes) -> None:
        regions = [r["boxes"] for r in result]
        logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, regions, image_shapes)))
        for probs, r in zip(maskrcnn_inference(logits, [r["labels"] for r in result]), result):
            r["masks"] = probs
