"""The model zoo: the configs under ``configs/`` whose ``reference:`` section names a paper's table row.

Every row of the papers' tables that the library builds is a run config plus a ``reference`` (see
:class:`glore.engine.schema.Reference`): the paper, table and row, and the paper's parameters,
multiply-adds, input size and results. :func:`count` builds the network of a config exactly as
``glore train`` does (without loading pretrained weights) and counts it at the reference's input;
:func:`compare` sets the counts beside the paper's. ``glore summary --config FILE --json`` prints both.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from glore.analysis.complexity import summary
from glore.analysis.detection_complexity import count_detector
from glore.engine import classification, detection, segmentation, video
from glore.errors import ArgumentError

# how far a count may differ from the paper's and still match it (relative)
PARAMS_TOLERANCE = 0.01
GMACS_TOLERANCE = 0.03

# the input a task's network is counted at when a config has no reference
DEFAULT_INPUT = {
    "classification": (3, 224, 224),
    "segmentation": (3, 769, 769),
    "video": (3, 8, 224, 224),
    "detection": (3, 800, 1333),
}

# model keys that name weights to load; counting needs only the architecture
_WEIGHT_KEYS = ("pretrained", "pretrained_backbone", "checkpoint", "inflate_from")

CONFIG_ROOT = Path(__file__).resolve().parents[2] / "configs"


STUDY_FOLDER = "studies"   # configs/studies/ holds study files (glore study), not run configs


def find_configs(root: str | os.PathLike = CONFIG_ROOT) -> list[Path]:
    """Every run config (``*.yaml``) below ``root``, sorted; the study files are left out."""
    root = Path(root)
    return sorted(p for p in root.rglob("*.yaml") if p.relative_to(root).parts[0] != STUDY_FOLDER)


def architecture(cfg: dict) -> dict:
    """``cfg["model"]`` without the keys that load weights."""
    model = {k: v for k, v in cfg["model"].items() if k not in _WEIGHT_KEYS}
    if cfg["task"] == "classification" and model.get("num_classes") is None:
        raise ArgumentError(f"counting a classification config needs model.num_classes, got "
                            f"{model.get('num_classes')!r}")
    return model


def _builder(task: str):
    return {"classification": classification.build_model, "segmentation": segmentation.build_segmenter,
            "video": video.build_model, "detection": detection.build_detector}[task]


def build_network(cfg: dict, *, device: str = "meta") -> nn.Module:
    """The network of a validated config, as ``glore train`` builds it, with no weights loaded, on
    ``device`` (the meta device allocates nothing; a network whose set-up needs real tensors is built
    on the CPU instead)."""
    build, model_cfg = _builder(cfg["task"]), architecture(cfg)
    if device == "meta":
        try:
            with torch.device("meta"):
                return build(model_cfg)
        except (NotImplementedError, RuntimeError):
            pass
    return build(model_cfg)


def count(cfg: dict, input_size=None) -> dict:
    """Parameters and GMACs of ``cfg``'s network at ``input_size`` (default: the reference's input,
    else the task's :data:`DEFAULT_INPUT`), counted in the reference's ``convention`` (default
    ``torch``; a detector's ``mmdet``: :func:`glore.analysis.detection_complexity.count_detector`)."""
    reference = cfg.get("reference") or {}
    input_size = tuple(input_size or reference.get("input") or DEFAULT_INPUT[cfg["task"]])

    convention = reference.get("convention") or "torch"
    if convention != "torch" and cfg["task"] != "detection":
        raise ArgumentError(f"reference.convention {convention!r} applies to detection configs only, "
                            f"got task {cfg['task']!r}")

    def measure(device):
        network = build_network(cfg, device=device)
        if cfg["task"] == "detection":
            return count_detector(network, input_size, convention=convention)
        return summary(network, input_size)

    try:
        result = measure("meta")
    except NotImplementedError:   # an operator without a meta kernel: count on the CPU
        result = measure("cpu")
    return {"params": result["params"], "gmacs": result["gmacs"], "input": list(input_size), "convention": convention}


def compare(counts: dict, reference: dict) -> dict:
    """Relative differences of ``counts`` from the paper's figures and whether they are within the
    tolerances (a figure the paper leaves out is not compared)."""
    out = {}
    for key, paper, scale, tolerance in (("params", reference.get("params_m"), 1e6, PARAMS_TOLERANCE),
                                         ("gmacs", reference.get("gmacs"), 1.0, GMACS_TOLERANCE)):
        if paper is None:
            continue
        diff = counts[key] / scale / paper - 1
        out[key] = {"paper": paper, "ours": round(counts[key] / scale, 4), "relative": round(diff, 4),
                    "within": abs(diff) <= tolerance}
    out["within"] = all(v["within"] for v in out.values() if isinstance(v, dict))
    return out
