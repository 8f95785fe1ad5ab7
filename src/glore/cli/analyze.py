"""``glore analyze {projections,attention,query-independence,nl-statistics,class-selectivity,
channel-activations,graph}``: figures and statistics of a trained model's blocks. The numbers come from :mod:`glore.analysis`; this module only loads, draws
and writes."""

from __future__ import annotations

import argparse
import importlib
import json
import re
from pathlib import Path

import torch

from glore.errors import ArgumentError
from ..engine import TASKS

from .options import add_output_dir

from ..analysis.attention import attention_maps
from ..analysis.figures import (save_class_activations, save_graph_figure, save_map_grid,
                               save_selectivity_histograms)
from ..analysis.fine_grained import nonlocal_statistics, nonlocal_statistics_table
from ..analysis.graph import graph_adjacency, node_feature_norms
from ..analysis.projections import SELECT, projection_maps
from ..analysis.query_independence import (batch_images, query_independence_statistics,
                                           query_independence_table, stage_statistics, stage_table)
from ..analysis.selectivity import class_means, class_selectivity_index, stage_blocks, transform_modules


# ---------------------------------------------------------------- loading

def load_model_and_loader(args) -> tuple[torch.nn.Module, object]:
    """The model of a ``glore train`` checkpoint (``make demo`` writes those too), in eval mode on
    ``args.device``, rebuilt by ``glore.engine.runner.load_model``, and a loader over ``args.split``
    from the task's ``build_datamodule``."""
    from ..engine.runner import load_model

    model, cfg = load_model(str(args.checkpoint))
    task = cfg.get("task", "classification")
    if task not in TASKS:
        raise ArgumentError(f"checkpoint task must be one of {sorted(TASKS)}, got {task!r}")
    datamodule = importlib.import_module(TASKS[task]).build_datamodule(cfg)
    datamodule.setup("validate" if args.split == "val" else "fit")
    loader = datamodule.val_dataloader() if args.split == "val" else datamodule.train_dataloader()
    return model.to(args.device).eval(), loader


def first_images(loader, count: int) -> torch.Tensor:
    """The first ``count`` images a loader yields, as one batch."""
    images, total = [], 0
    for batch in loader:
        x = batch_images(batch)
        images.append(x[: count - total])
        total += images[-1].shape[0]
        if total >= count:
            break
    if not images:
        raise ArgumentError("the dataset split has no images")
    return torch.cat(images)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _queries(text: str) -> list[list[float]]:
    try:
        return [[float(v) for v in point.split(",")] for point in text.split(";") if point.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected queries like '0.25,0.5;0.75,0.5', got {text!r}")


def _classes(text: str) -> list[int]:
    try:
        classes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected class indices like '0,1,2', got {text!r}")
    if not classes or min(classes) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative class indices like '0,1,2', got {text!r}")
    return classes


def _filename(prefix: str, name: str, suffix: str = ".png") -> str:
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name).strip('_') or 'model'}{suffix}"


def _pick(results: dict, block: str | None) -> dict:
    if block is None:
        return results
    if block not in results:
        raise ArgumentError(f"--block must be one of {sorted(results)}, got {block!r}")
    return {block: results[block]}


def _frame(images: torch.Tensor, frame: int | None) -> tuple[torch.Tensor, int | None]:
    """2D view of a batch: ``(B, C, T, H, W)`` -> frame ``frame`` (default the middle one)."""
    if images.dim() == 4:
        return images, None
    if images.dim() != 5:
        raise ArgumentError(f"expected images of shape (B, C, H, W) or (B, C, T, H, W), got "
                         f"{tuple(images.shape)}")
    t = images.shape[2] // 2 if frame is None else frame
    if not 0 <= t < images.shape[2]:
        raise ArgumentError(f"--frame must be in [0, {images.shape[2] - 1}], got {frame}")
    return images[:, :, t], t


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


# ---------------------------------------------------------------- subcommands

def _save_map_figures(args, kind: str, key: str, compute, describe) -> int:
    """One figure per block of the maps ``compute(model, images)`` gives on the first images, and
    ``<kind>.json``; ``describe(res, shown)`` gives a block's labels, markers and summary entry."""
    model, loader = load_model_and_loader(args)
    images = first_images(loader, args.num_images).to(args.device)
    results = _pick(compute(model, images), args.block)
    shown, t = _frame(images, args.frame)
    out, summary = Path(args.output), {}
    for name, res in results.items():
        maps = res["maps"] if t is None else res["maps"][:, :, t]
        labels, markers, entry = describe(res, shown)
        path = save_map_grid(out / _filename(kind, name), shown.cpu(), maps.cpu(),
                             labels=labels, markers=markers, cell=args.cell)
        summary[name] = {"figure": path.name, **entry}
        print(f"{name}: {labels[0]}{', ...' if len(labels) > 1 else ''} -> {path}")
    _write_json(out / f"{kind}.json", {"checkpoint": str(args.checkpoint), "frame": t,
                                      "images": int(images.shape[0]), key: summary})
    return 0


def run_projections(args) -> int:
    def describe(res, shown):
        nodes = res["nodes"].tolist()
        return ([f"node {n}" for n in nodes], None,
                {"nodes": nodes, "select": args.select, "variance": res["variance"].tolist()})

    return _save_map_figures(
        args, "projections", "units",
        lambda model, images: projection_maps(model, images, k=args.nodes, select=args.select,
                                              size=images.shape[2:]),
        describe)


def run_attention(args) -> int:
    def describe(res, shown):
        entry = {"kind": res["kind"], "grid": list(res["shape"]), "queries": None}
        if res["positions"] is None:
            return [f"{res['kind']}, all queries"], None, entry
        h, w = shown.shape[2:]
        gy, gx = res["shape"][-2:]
        positions = res["positions"].tolist()
        labels = ["query " + ",".join(map(str, pos)) for pos in positions]
        # a query's grid cell centre in the shown image's pixel coordinates
        markers = [((pos[-1] + 0.5) * w / gx - 0.5, (pos[-2] + 0.5) * h / gy - 0.5) for pos in positions]
        return labels, markers, {**entry, "queries": positions}

    return _save_map_figures(
        args, "attention", "blocks",
        lambda model, images: attention_maps(model, images, queries=args.queries, size=images.shape[2:]),
        describe)


def run_query_independence(args) -> int:
    model, loader = load_model_and_loader(args)
    stats = _pick(query_independence_statistics(model, loader, kinds=args.kinds,
                                                max_images=args.num_images, device=args.device),
                  args.block)
    stages = stage_statistics(stats)
    print(query_independence_table(stats))
    if stages:
        print()
        print(stage_table(stages))
    path = Path(args.output) / "query_independence.json"
    _write_json(path, {"checkpoint": str(args.checkpoint), "split": args.split,
                       "measure": "(1/N^2) sum_i sum_j (1 - cos(v_i, v_j)) / 2 over positions, "
                                  "mean over images", "blocks": stats,
                       "stages": stages})
    print(f"-> {path}")
    return 0


def run_nl_statistics(args) -> int:
    model, loader = load_model_and_loader(args)
    stats = _pick(nonlocal_statistics(model, loader, max_images=args.num_images, device=args.device),
                  args.block)
    print(nonlocal_statistics_table(stats))
    path = Path(args.output) / "nl_statistics.json"
    _write_json(path, {"checkpoint": str(args.checkpoint), "split": args.split,
                       "measure": "(1/N^2) sum_i sum_j (1 - cos(v_i, v_j)) / 2 over positions (prod, att: "
                                  "over queries), mean over images", "blocks": stats})
    print(f"-> {path}")
    return 0


def run_class_selectivity(args) -> int:
    model, loader = load_model_and_loader(args)
    models = {args.label: model}
    if args.baseline is not None:
        from ..engine.runner import load_model

        models = {args.baseline_label: load_model(str(args.baseline))[0].to(args.device).eval(), **models}
    indices: dict[str, dict] = {}
    for label, network in models.items():
        layers = stage_blocks(network, args.stage)
        means = class_means(network, layers, loader, max_images=args.num_images, device=args.device)
        for layer in layers:
            indices.setdefault(layer, {})[label] = class_selectivity_index(means[layer]["means"])
    out = Path(args.output)
    path = save_selectivity_histograms(out / "class_selectivity.png", indices, bins=args.bins, cell=args.cell)
    summary = {layer: {label: {"units": int(v.numel()), "mean": float(v.mean()), "median": float(v.median()),
                               "histogram": torch.histc(v, bins=args.bins, min=0, max=1).int().tolist()}
                       for label, v in by_model.items()}
               for layer, by_model in indices.items()}
    for layer, by_model in summary.items():
        print(f"{layer}: " + ", ".join(f"{label} mean {s['mean']:.3f} median {s['median']:.3f}"
                                       for label, s in by_model.items()))
    _write_json(out / "class_selectivity.json", {
        "checkpoints": {args.label: str(args.checkpoint),
                        **({args.baseline_label: str(args.baseline)} if args.baseline else {})},
        "split": args.split, "stage": args.stage, "bins": args.bins, "figure": path.name, "layers": summary})
    print(f"-> {path}")
    return 0


def run_channel_activations(args) -> int:
    model, loader = load_model_and_loader(args)
    modules = _pick(transform_modules(model), args.block)
    means = class_means(model, modules, loader, max_images=args.num_images, device=args.device)
    num_classes = next(iter(means.values()))["means"].shape[0]
    classes = args.classes if args.classes is not None else list(range(min(4, num_classes)))
    out = Path(args.output)
    path = save_class_activations(out / "channel_activations.png",
                                  {name: m["means"] for name, m in means.items()}, classes, cell=args.cell)
    _write_json(out / "channel_activations.json", {
        "checkpoint": str(args.checkpoint), "split": args.split, "figure": path.name, "classes": classes,
        "images_per_class": next(iter(means.values()))["images"].int().tolist(),
        "blocks": {name: m["means"][classes].tolist() for name, m in means.items()}})
    print(f"{len(means)} block(s), classes {classes} -> {path}")
    return 0


def run_graph(args) -> int:
    model, loader = load_model_and_loader(args)
    adjacency = _pick(graph_adjacency(model), args.block)
    images = first_images(loader, args.num_images).to(args.device)
    norms = node_feature_norms(model, images)
    out, summary = Path(args.output), {}
    for name, adj in adjacency.items():
        path = save_graph_figure(out / _filename("graph", name), adj, norms[name], title=name,
                                 cell=args.cell)
        summary[name] = {"figure": path.name, "nodes": int(adj.shape[1]), "layers": int(adj.shape[0]),
                         "node_norm_mean": norms[name].mean(dim=0).tolist(),
                         "adjacency": adj.tolist()}
        print(f"{name}: {adj.shape[0]} layer(s), {adj.shape[1]} nodes -> {path}")
    _write_json(out / "graph.json", {"checkpoint": str(args.checkpoint),
                                     "images": int(images.shape[0]), "units": summary})
    return 0


# ---------------------------------------------------------------- parsers

def _common(parser: argparse.ArgumentParser, *, num_images: int, cell: int | None) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="checkpoint of a trained model")
    add_output_dir(parser, required=True, type=Path, help="folder for the figures and JSON")
    parser.add_argument("--num-images", type=_positive, default=num_images,
                        help=f"images from the split to use (default {num_images})")
    parser.add_argument("--split", choices=("val", "train"), default="val", help="dataset split")
    parser.add_argument("--block", default=None, help="only the block with this module name")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    if cell is not None:
        parser.add_argument("--cell", type=_positive, default=cell, help="panel width in pixels")


def register(subparsers) -> None:
    analyze = subparsers.add_parser("analyze", help="figures and statistics of a trained model's blocks",
                                    description="Figures and statistics of the GloRe / NL / SNL / GC "
                                                "blocks of a trained model, on its dataset.")
    analyze.set_defaults(func=lambda args: analyze.print_help() or 2)
    sub = analyze.add_subparsers(dest="analysis", metavar="ANALYSIS")

    p = sub.add_parser("projections", help="GloRe projection weights B over the image (GloRe Fig. 7)")
    _common(p, num_images=4, cell=96)
    p.add_argument("--nodes", type=_positive, default=4, help="nodes to show per unit (default 4)")
    p.add_argument("--select", choices=SELECT, default="variance",
                   help="first k nodes, or the k of largest spatial variance (default)")
    p.add_argument("--frame", type=int, default=None, help="frame shown for 3D inputs (default middle)")
    p.set_defaults(func=run_projections)

    p = sub.add_parser("attention", help="NL/SNL/GC attention maps (GCNet Fig. 2 and 5)")
    _common(p, num_images=4, cell=96)
    p.add_argument("--queries", type=_queries, default=None,
                   help="NL query points as fractions per spatial dim, e.g. '0.25,0.25;0.75,0.75' "
                        "(default: the four quadrant centres)")
    p.add_argument("--frame", type=int, default=None, help="frame shown for 3D inputs (default middle)")
    p.set_defaults(func=run_attention)

    p = sub.add_parser("query-independence",
                       help="GCNet Table 1: cosine distances of NL inputs, outputs and attention")
    _common(p, num_images=256, cell=None)
    p.add_argument("--kinds", nargs="+", choices=("nl", "snl", "gc", "se"), default=["nl"],
                   help="block types to measure (default nl)")
    p.set_defaults(func=run_query_independence)

    p = sub.add_parser("nl-statistics",
                       help="GCNet Table 3: cosine distances after W_q, W_k, the product, the attention "
                            "and the output of NL blocks")
    _common(p, num_images=256, cell=None)
    p.set_defaults(func=run_nl_statistics)

    p = sub.add_parser("class-selectivity",
                       help="GCNet Fig. 7: class selectivity index of each block's output in a stage, "
                            "against a baseline")
    _common(p, num_images=1000, cell=280)
    p.add_argument("--baseline", type=Path, default=None,
                   help="checkpoint of the model to compare with, run on the same images")
    p.add_argument("--label", default="model", help="legend label of --checkpoint (default model)")
    p.add_argument("--baseline-label", default="baseline", help="legend label of --baseline")
    p.add_argument("--stage", choices=("res2", "res3", "res4", "res5"), default="res4",
                   help="stage whose blocks are measured (default res4, GCNet's c4)")
    p.add_argument("--bins", type=_positive, default=20, help="histogram bins over [0, 1] (default 20)")
    p.set_defaults(func=run_class_selectivity)

    p = sub.add_parser("channel-activations",
                       help="GCNet Fig. 6: class means of the GC/SE transform output per channel")
    _common(p, num_images=1000, cell=280)
    p.add_argument("--classes", type=_classes, default=None,
                   help="class indices to draw, e.g. '0,1,2,3' (default the first four)")
    p.set_defaults(func=run_channel_activations)

    p = sub.add_parser("graph", help="learned adjacency and node-feature norms of GloRe units")
    _common(p, num_images=64, cell=320)
    p.set_defaults(func=run_graph)
