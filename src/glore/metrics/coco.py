"""COCO detection metrics: detections in the COCO results format, scored by pycocotools' ``COCOeval``.

- :func:`to_coco_results` turns torchvision detector outputs (boxes XYXY in the original image's
  pixels, ``labels`` = COCO category ids, ``scores``, Mask R-CNN's ``masks`` probabilities) into the
  list of COCO results (``bbox`` as ``[x, y, w, h]``, ``segmentation`` as RLE) that
  :func:`write_results` saves as ``detections.json``, which the official tools re-score and the
  evaluation servers accept.
- :func:`coco_evaluate` runs ``COCOeval`` and returns its 12 standard numbers (AP at IoU
  0.50:0.95, 0.50, 0.75, AP small / medium / large, AR with 1 / 10 / 100 detections, AR small /
  medium / large) as fractions under :data:`STAT_NAMES`; -1 means "no ground truth of that kind".
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from glore.errors import ArgumentError

STAT_NAMES = ("ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l", "ar1", "ar10", "ar100", "ar_s", "ar_m", "ar_l")
IOU_TYPES = ("bbox", "segm")


def load_coco(annotations):
    """A ``pycocotools.coco.COCO`` from an ``instances_*.json`` path, a COCO dict, or a COCO object."""

    if isinstance(annotations, COCO):
        return annotations
    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(annotations, Mapping):
            coco = COCO()
            coco.dataset = json.loads(json.dumps(annotations))   # a private, plain copy
            coco.createIndex()
            return coco
        return COCO(os.fspath(annotations))


def to_coco_results(outputs: Sequence[Mapping], image_ids: Sequence[int], *, mask_threshold: float = 0.5) -> list[dict]:
    """COCO result dicts for each detection of ``outputs`` (one torchvision output dict per image)."""

    results = []
    for output, image_id in zip(outputs, image_ids, strict=True):
        boxes = output["boxes"].detach().float().cpu().numpy()
        if len(boxes) == 0:
            continue
        scores = output["scores"].detach().float().cpu().numpy()
        labels = output["labels"].detach().cpu().numpy()
        rles = None
        if "masks" in output:
            masks = (output["masks"].detach()[:, 0] > mask_threshold).cpu().numpy().astype(np.uint8)
            rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
        for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
            result = {"image_id": int(image_id), "category_id": int(labels[i]),
                      "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                      "score": round(float(scores[i]), 5)}
            if rles is not None:
                rle = dict(rles[i])
                rle["counts"] = rle["counts"].decode("ascii")
                result["segmentation"] = rle
            results.append(result)
    return results


def write_results(results: Iterable[dict], path: str | os.PathLike) -> str:
    """Write COCO results as JSON (``detections.json``); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(list(results), handle)
    return path


def coco_evaluate(annotations, results, iou_type: str = "bbox", *, image_ids: Sequence[int] | None = None,
                  class_agnostic: bool = False) -> dict[str, float]:
    """The 12 ``COCOeval`` statistics of ``results`` (a list or a results JSON path) against the ground
    truth ``annotations`` (path, dict or ``COCO``), restricted to ``image_ids`` when given (e.g. the
    images a partial validation run saw). ``segm`` ignores the results' ``bbox``, ``bbox`` their
    ``segmentation``. ``class_agnostic`` scores the boxes whatever their category (COCOeval's
    ``useCats = 0``): localisation alone. With no detections at all every statistic is 0."""

    if iou_type not in IOU_TYPES:
        raise ArgumentError(f"iou_type must be one of {list(IOU_TYPES)}, got {iou_type!r}")
    gt = load_coco(annotations)
    if not isinstance(results, (list, tuple)):
        with open(os.fspath(results), encoding="utf-8") as handle:
            results = json.load(handle)
    results = list(results)
    if image_ids is not None:
        keep = set(int(i) for i in image_ids)
        results = [r for r in results if r["image_id"] in keep]
    if not results:                                  # COCO.loadRes cannot load an empty list
        return {name: 0.0 for name in STAT_NAMES}
    if iou_type == "segm" and "segmentation" not in results[0]:
        raise ArgumentError("segm evaluation needs results with a 'segmentation' (Mask R-CNN outputs)")
    # one results list holds both; each evaluation reads its own field (a segm result's area is then its
    # mask's, not its box's, as in detectron2's COCO evaluator)
    drop = "bbox" if iou_type == "segm" else "segmentation"
    results = [{k: v for k, v in r.items() if k != drop} for r in results]
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, iou_type)
        if class_agnostic:
            evaluator.params.useCats = 0
        if image_ids is not None:
            evaluator.params.imgIds = sorted(set(int(i) for i in image_ids))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats)}
