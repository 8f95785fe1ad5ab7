"""Segmentation metrics: confusion-matrix IoU, and the Cityscapes benchmark's IoU/iIoU.

:class:`CityscapesMetrics` reproduces the pixel-level evaluation of the Cityscapes benchmark
(cityscapesScripts, ``evalPixelLevelSemanticLabeling``) on train-id maps:

- IoU class: per class ``TP / (TP + FP + FN)``, averaged over the 19 classes whose denominator is
  non-zero. Pixels whose ground truth is ignored (255) count nowhere; predictions outside the 19
  classes count as false negatives of the ground-truth class (the "other" column).
- IoU category: the same with the 7 categories (classes merged).
- iIoU: ``iTP / (iTP + FP + iFN)`` where, for every ground-truth instance (``*_instanceIds.png`` value
  ``> 1000``, class ``value // 1000``), its true positives and false negatives are weighted by
  ``avg_size(class) / size(instance)``; FP is the pixel-level one. Only the 8 classes with instances
  (person, rider, car, truck, bus, train, motorcycle, bicycle) and the 2 categories made of them
  (human, vehicle) have an iIoU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from glore.errors import ArgumentError, ArgumentTypeError
from ..data.cityscapes import CATEGORIES, CLASS_NAMES, ID_TO_LABEL, IGNORE_INDEX, TRAIN_LABELS

# Average instance size per class over the training set, as the benchmark defines it
# (cityscapesScripts evalPixelLevelSemanticLabeling, args.avgClassSize).
AVG_CLASS_SIZE = {
    "bicycle": 4672.3249222261,
    "caravan": 36771.8241758242,
    "motorcycle": 6298.7200839748,
    "rider": 3930.4788056518,
    "bus": 35732.1511111111,
    "train": 67583.7075812274,
    "car": 12794.0202738185,
    "person": 3462.4756337644,
    "truck": 27855.1264367816,
    "trailer": 16926.9763313609,
}


def _nanmean(x: torch.Tensor) -> torch.Tensor:
    valid = ~torch.isnan(x)
    if not valid.any():
        return torch.tensor(float("nan"), dtype=x.dtype, device=x.device)
    return x[valid].mean()


def _as_labels(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise ArgumentTypeError(f"pred and target must be tensors, got {type(pred).__name__} and {type(target).__name__}")
    if pred.is_floating_point():
        if pred.dim() != target.dim() + 1 or pred.shape[1] != num_classes:
            raise ArgumentError(f"floating-point pred must be logits of shape (B, {num_classes}, H, W) for a "
                             f"target of shape {tuple(target.shape)}, got {tuple(pred.shape)}")
        pred = pred.argmax(1)
    if pred.shape != target.shape:
        raise ArgumentError(f"pred and target must have the same shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    return pred.long(), target.long()


class SegmentationIoU(Metric):
    """Confusion matrix of ``num_classes`` ground-truth classes by ``num_classes + 1`` predictions.

    The extra column collects predictions outside ``[0, num_classes)`` (false negatives only).
    ``compute()`` returns ``miou`` (mean over classes with a non-zero ``TP + FP + FN``), ``iou``
    (per class, NaN where undefined) and ``pixel_acc``.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int, *, ignore_index: int = IGNORE_INDEX, class_names: Sequence[str] | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ArgumentError(f"num_classes must be a positive integer, got {num_classes!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ArgumentError(f"class_names must have {num_classes} entries, got {len(class_names)}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = tuple(class_names) if class_names is not None else tuple(map(str, range(num_classes)))
        self.add_state("confmat", torch.zeros(num_classes, num_classes + 1, dtype=torch.long),
                       dist_reduce_fx="sum")

    def _check_target(self, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore_index
        bad = valid & ((target < 0) | (target >= self.num_classes))
        if bad.any():
            values = torch.unique(target[bad])[:10].tolist()
            raise ArgumentError(f"target holds ids {values}; expected 0..{self.num_classes - 1} or "
                             f"{self.ignore_index} (ignore)")
        return valid

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = _as_labels(pred, target, self.num_classes)
        self._update_confmat(pred, target)

    def _update_confmat(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = self._check_target(target)
        p = pred[valid]
        p = torch.where((p >= 0) & (p < self.num_classes), p, torch.full_like(p, self.num_classes))
        idx = target[valid] * (self.num_classes + 1) + p
        counts = torch.bincount(idx, minlength=self.num_classes * (self.num_classes + 1))
        self.confmat += counts.view(self.num_classes, self.num_classes + 1).to(self.confmat)
        return pred

    def _class_stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        conf = self.confmat.double()
        tp = conf.diagonal()
        fn = conf.sum(1) - tp
        fp = conf[:, : self.num_classes].sum(0) - tp
        return tp, fp, fn

    def compute(self) -> dict[str, torch.Tensor]:
        tp, fp, fn = self._class_stats()
        denom = tp + fp + fn
        iou = torch.where(denom > 0, tp / denom.clamp(min=1), torch.full_like(tp, float("nan")))
        total = self.confmat.sum()
        acc = tp.sum() / total if total > 0 else torch.tensor(float("nan"), dtype=torch.float64)
        return {"miou": _nanmean(iou), "iou": iou, "pixel_acc": acc}


class CityscapesMetrics(SegmentationIoU):
    """The Cityscapes benchmark metrics on train-id maps (19 classes, 255 ignored).

    ``update(pred, target, instance_ids=None)``: ``pred`` train ids ``(B, H, W)`` (or logits
    ``(B, 19, H, W)``), ``target`` train ids, ``instance_ids`` the ``*_instanceIds.png`` values
    (``label_id * 1000 + k`` for instances); without instance ids the iIoU entries stay NaN.

    ``compute()`` returns fractions: ``iou_class``, ``iiou_class``, ``iou_category``,
    ``iiou_category``, ``pixel_acc``, and per-entry tensors ``iou`` (19 classes, train-id order),
    ``iiou`` (19, NaN for classes without instances), ``iou_per_category`` and
    ``iiou_per_category`` (7, in :data:`glore.data.cityscapes.CATEGORIES` order).
    """

    def __init__(self, *, avg_class_size: dict[str, float] | None = None, **kwargs):
        super().__init__(len(TRAIN_LABELS), ignore_index=IGNORE_INDEX, class_names=CLASS_NAMES, **kwargs)
        sizes = dict(AVG_CLASS_SIZE if avg_class_size is None else avg_class_size)
        num_cat = len(CATEGORIES)
        # train id -> category index; the "other" column (index 19) -> -1
        self.register_buffer("_class_category", torch.tensor(
            [CATEGORIES.index(label.category) for label in TRAIN_LABELS] + [-1]), persistent=False)
        # label id -> (train id, category index, avg size) for the evaluated classes with instances
        inst_table = torch.full((len(ID_TO_LABEL), 3), -1.0, dtype=torch.float64)
        for label in ID_TO_LABEL.values():
            if label.has_instances and not label.ignore_in_eval:
                inst_table[label.id] = torch.tensor(
                    [label.train_id, CATEGORIES.index(label.category), sizes[label.name]], dtype=torch.float64)
        self.register_buffer("_inst_table", inst_table, persistent=False)
        # categories with an iIoU: every label of the category has instances (human, vehicle)
        self.instance_categories = tuple(
            cat for cat in CATEGORIES
            if all(label.has_instances for label in ID_TO_LABEL.values() if label.category == cat))
        self.instance_classes = tuple(
            label.train_id for label in TRAIN_LABELS if label.has_instances)
        for name, size in (("inst_tp", self.num_classes), ("inst_fn", self.num_classes),
                           ("cat_inst_tp", num_cat), ("cat_inst_fn", num_cat)):
            self.add_state(name, torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("has_instances", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, instance_ids: torch.Tensor | None = None) -> None:
        pred, target = _as_labels(pred, target, self.num_classes)
        self._update_confmat(pred, target)
        if instance_ids is None:
            return
        if instance_ids.shape != target.shape:
            raise ArgumentError(f"instance_ids must have the target's shape {tuple(target.shape)}, "
                             f"got {tuple(instance_ids.shape)}")
        self.has_instances += 1
        instance_ids = instance_ids.long()
        pred_cat = self._class_category[torch.where((pred >= 0) & (pred < self.num_classes), pred,
                                                    torch.full_like(pred, self.num_classes))]
        for b in range(instance_ids.shape[0]):
            inst = instance_ids[b]
            mask = inst > 1000
            if not mask.any():
                continue
            ids, inverse, sizes = torch.unique(inst[mask], return_inverse=True, return_counts=True)
            label_ids = ids // 1000
            if (label_ids >= len(self._inst_table)).any():
                bad = torch.unique(ids[label_ids >= len(self._inst_table)])[:5].tolist()
                raise ArgumentError(f"instance ids {bad} name label ids outside the Cityscapes table (0-33)")
            info = self._inst_table[label_ids]                       # (K, 3)
            train_id, cat, avg = info[:, 0].long(), info[:, 1].long(), info[:, 2]
            keep = train_id >= 0                                     # evaluated classes with instances
            if not keep.all():
                bad_labels = [ID_TO_LABEL[int(i)] for i in torch.unique(label_ids[~keep])]
                bad = [lab.name for lab in bad_labels if not lab.has_instances]
                if bad:
                    raise ArgumentError(f"instance ids name classes without instances: {bad}")
            p, pc = pred[b][mask], pred_cat[b][mask]
            hit = (p == train_id[inverse]).double()
            cat_hit = (pc == cat[inverse]).double()
            k = len(ids)
            tp = torch.zeros(k, dtype=torch.float64, device=p.device).index_add_(0, inverse, hit)
            cat_tp = torch.zeros(k, dtype=torch.float64, device=p.device).index_add_(0, inverse, cat_hit)
            size = sizes.double()
            weight = avg / size
            tid, c = train_id[keep], cat[keep]
            w, s = weight[keep], size[keep]
            self.inst_tp.index_add_(0, tid, tp[keep] * w)
            self.inst_fn.index_add_(0, tid, (s - tp[keep]) * w)
            self.cat_inst_tp.index_add_(0, c, cat_tp[keep] * w)
            self.cat_inst_fn.index_add_(0, c, (s - cat_tp[keep]) * w)

    def compute(self) -> dict[str, torch.Tensor]:
        out = super().compute()
        nan = float("nan")
        tp, fp, fn = self._class_stats()
        # classes
        iiou = torch.full_like(tp, nan)
        if self.has_instances > 0:
            for c in self.instance_classes:
                denom = self.inst_tp[c] + fp[c] + self.inst_fn[c]
                if denom > 0:
                    iiou[c] = self.inst_tp[c] / denom
        # categories
        conf = self.confmat.double()
        cat_of = self._class_category[: self.num_classes]
        cat_iou = torch.full((len(CATEGORIES),), nan, dtype=torch.float64, device=conf.device)
        cat_iiou = torch.full_like(cat_iou, nan)
        for k, name in enumerate(CATEGORIES):
            inside = cat_of == k
            c_tp = conf[inside][:, : self.num_classes][:, inside].sum()
            c_fn = conf[inside].sum() - c_tp
            c_fp = conf[~inside][:, : self.num_classes][:, inside].sum()
            denom = c_tp + c_fp + c_fn
            if denom > 0:
                cat_iou[k] = c_tp / denom
            if self.has_instances > 0 and name in self.instance_categories:
                denom = self.cat_inst_tp[k] + c_fp + self.cat_inst_fn[k]
                if denom > 0:
                    cat_iiou[k] = self.cat_inst_tp[k] / denom
        out.update({
            "iou_class": out["miou"],
            "iiou_class": _nanmean(iiou),
            "iou_category": _nanmean(cat_iou),
            "iiou_category": _nanmean(cat_iiou),
            "iiou": iiou,
            "iou_per_category": cat_iou,
            "iiou_per_category": cat_iiou,
        })
        return out
