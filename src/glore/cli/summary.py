"""``glore summary``: parameters and GMACs of a model, beside the papers' figures.

    glore summary resnet50 --block glore --units 0,3
    glore summary resnet50 --block nl --units '{res4: [5]}'
    glore summary resnet50_gc_all
    glore summary resnet50 --kind segmentation --block glore --units 2      # the head's block, 2 of them
    glore summary resnet50 --kind detection --block gc --units all --block-arg ratio=1/16
    glore summary --config configs/classification/imagenet_resnet50_glore.yaml --json

With --config, the network is built from the run config's model section as glore train builds it
(no weights loaded), counted at the input of the config's reference section (a paper's table row),
and set beside that row's figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
from fractions import Fraction

import yaml

from glore.errors import ArgumentError

KINDS = {
    # kind -> (builder in glore.models, its module, default input size)
    "classification": ("create_model", "glore.models.factory", (3, 224, 224)),
    "segmentation": ("create_segmenter", "glore.models.segmentation", (3, 769, 769)),
    "video": ("create_video_model", "glore.models.video", (3, 8, 224, 224)),
    "detection": ("create_detector", "glore.models.detection", (3, 800, 1333)),
}


def parse_units(text: str):
    """``"0,3"`` -> ``(0, 3)``; ``"all"``; otherwise YAML: ``"{res4: [5]}"`` -> ``{"res4": [5]}``."""
    text = text.strip()
    if re.fullmatch(r"\d+\s*,\s*\d+", text):
        n, m = (int(v) for v in text.split(","))
        return (n, m)
    if text == "all":
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ArgumentError(f"--units: expected 'n,m', 'all' or a YAML dict like '{{res4: [5]}}', "
                         f"got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise ArgumentError(f"--units: expected 'n,m', 'all' or a YAML dict like '{{res4: [5]}}', "
                         f"got {text!r}")
    return value


def parse_block_arg(text: str) -> tuple[str, object]:
    """``"ratio=1/4"`` -> ``("ratio", 0.25)``; values are YAML scalars or fractions ``a/b``."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ArgumentError(f"--block-arg: expected KEY=VALUE, got {text!r}")
    raw = raw.strip()
    if re.fullmatch(r"\d+\s*/\s*\d+", raw):
        return key.strip(), float(Fraction(raw.replace(" ", "")))
    return key.strip(), yaml.safe_load(raw) if raw else None


def parse_input_size(text: str) -> tuple[int, ...]:
    """``"3,224,224"`` or ``"3x8x224x224"`` -> tuple of ints."""
    parts = re.split(r"[,x]", text.strip())
    if not all(p.strip().isdigit() for p in parts) or len(parts) not in (3, 4):
        raise ArgumentError(f"--input-size: expected C,H,W or C,T,H,W, got {text!r}")
    return tuple(int(p) for p in parts)


def build(kind: str, backbone: str, *, block=None, units=None, position=None, num_classes=None,
          block_kwargs=None, arch: str = "maskrcnn"):
    """Build a model of ``kind`` through ``glore.models`` (segmenters and video models lazily).

    Options left at ``None`` are not passed (the builder's defaults apply); ``block="none"`` passes
    ``block=None`` (the baseline; segmenters and video models default to GloRe).
    - classification: ``create_model(backbone, block=, units=, position=, num_classes=, block_kwargs=)``
    - segmentation: ``create_segmenter(backbone, head=block, head_depth=units, num_classes=, head_kwargs=block_kwargs)``
    - video: ``create_video_model(backbone, block=, num_classes=, block_kwargs=)``; for ``slow_only_r50`` /
      ``slow_only_r101`` ``create_slow_only(backbone, block=, units=, position=, num_classes=, block_kwargs=)``
    - detection: ``create_detector(arch, backbone, block=, units=, position=, block_kwargs=, num_classes=)``
    """
    if kind not in KINDS:
        raise ArgumentError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    name, module, _ = KINDS[kind]
    importlib.import_module(module)
    import glore.models

    builder = getattr(glore.models, name)
    block_kwargs = dict(block_kwargs or {})
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if kind == "video":
        from glore.models.slow_only import SLOW_ONLY_MODELS, create_slow_only

        if backbone in SLOW_ONLY_MODELS:        # blocks placed as in the 2D backbones: --units, --position
            kind, builder = "classification", create_slow_only
    if kind == "classification":
        if block is not None and block != "none":
            kwargs.update(block=block, units=units, position=position, block_kwargs=block_kwargs)
        elif units is not None or position is not None or block_kwargs:
            raise ArgumentError(f"--units, --position and --block-arg need --block; got block={block!r}")
        return builder(backbone, **kwargs)
    if kind == "detection":
        if block is not None and block != "none":
            kwargs.update(block=block, units=units, position=position, block_kwargs=block_kwargs or None)
        elif units is not None or position is not None or block_kwargs:
            raise ArgumentError(f"--units, --position and --block-arg need --block; got block={block!r}")
        return builder(arch, backbone, **kwargs)
    if position is not None:
        raise ArgumentError(f"--position is not an option of {kind} models, got {position!r}")
    if kind == "video" and units is not None:
        raise ArgumentError(f"video models place their units themselves; --units is not an option "
                         f"of them, got {units!r}")
    segmentation = kind == "segmentation"          # --block, --units, --block-arg: the head's
    if block is not None:
        kwargs["head" if segmentation else "block"] = None if block == "none" else block
    if units is not None:
        kwargs["head_depth" if segmentation else "units"] = units
    if block_kwargs:
        kwargs["head_kwargs" if segmentation else "block_kwargs"] = block_kwargs
    if kind == "segmentation":
        from glore.models.segmentation import LOCAL_BACKBONES
        if backbone in LOCAL_BACKBONES or backbone.startswith("hrnet_"):   # no res5 stage: the ResNets'
            kwargs["multigrid"] = None         # default multi-grid does not apply
    return builder(backbone, **kwargs)


def _stage_depths(model) -> dict[str, int] | None:
    from glore.models.insert import find_stages

    try:
        return {s: len(h) for s, h in find_stages(model).items() if h}
    except TypeError:
        return None


def paper_rows(args, model) -> tuple[str | None, list]:
    """Registered configuration name matching the request, and its papers' figures."""
    from glore.models.paper_figures import FIGURES
    from glore.models.registry import find_config

    if args.kind != "classification" or args.num_classes not in (None, 1000) or args.block == "none":
        return None, []
    depths = _stage_depths(model)
    if depths is None:
        return None, []
    name = find_config(args.backbone, args.block, args.units, args.position, args.block_kwargs,
                       depths)
    return name, list(FIGURES.get(name, ())) if name else []


def _pct(ours: float, paper: float) -> str:
    return f"{100 * (ours / paper - 1):+.1f}%"


def run_config(args: argparse.Namespace) -> int:
    from glore import zoo
    from glore.engine.config import load_config

    if args.block is not None or args.units is not None or args.position is not None or args.block_arg:
        raise ArgumentError("--block, --units, --position and --block-arg do not go with --config; "
                            "override the config instead, e.g. model.block=gc")
    if args.convention is not None:
        raise ArgumentError(f"--convention does not go with --config (got --convention {args.convention}); "
                            f"the reference's convention counts, e.g. override reference.convention=mmdet")
    overrides = [a for a in (args.backbone, *args.overrides) if a is not None]
    cfg = load_config(args.config, overrides)
    input_size = parse_input_size(args.input_size) if args.input_size else None
    counts = zoo.count(cfg, input_size)
    reference = cfg.get("reference")
    comparison = zoo.compare(counts, reference) if reference else None
    if args.json:
        print(json.dumps({"config": args.config, "task": cfg["task"], **counts, "reference": reference,
                          "comparison": comparison}, indent=2))
        return 0
    print(f"config        {args.config} ({cfg['task']})")
    print(f"input         1x{'x'.join(map(str, counts['input']))}")
    print(f"params        {counts['params'] / 1e6:.3f} M")
    convention = "" if counts["convention"] == "torch" else f" (counted as {counts['convention']} counts)"
    print(f"GMACs         {counts['gmacs']:.3f}{convention}")
    if reference:
        print(f"paper         {reference['paper']} table {reference['table']}: {reference['row']}")
        for key, unit in (("params", "M"), ("gmacs", "GMACs")):
            if key in comparison:
                c = comparison[key]
                print(f"  {key:<11} {c['paper']} {unit} ({100 * c['relative']:+.1f}%"
                      f"{'' if c['within'] else ', outside the tolerance'})")
        if reference.get("known_deviation"):
            print(f"  deviation   {reference['known_deviation']}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.config is not None:
        return run_config(args)
    if args.overrides:
        raise ArgumentError(f"KEY=VALUE overrides need --config, got {args.overrides}")
    if args.backbone is None:
        raise ArgumentError("expected a model name (e.g. resnet50) or --config FILE, got neither")
    from glore.analysis.complexity import summary
    from glore.models.paper_figures import FIGURES, baseline_figure

    args.units = parse_units(args.units) if args.units is not None else None
    args.block_kwargs = dict(parse_block_arg(a) for a in args.block_arg)
    input_size = parse_input_size(args.input_size) if args.input_size else KINDS[args.kind][2]
    model = build(args.kind, args.backbone, block=args.block, units=args.units,
                  position=args.position, num_classes=args.num_classes,
                  block_kwargs=args.block_kwargs, arch=args.arch)
    if args.convention is not None and args.kind != "detection":
        raise ArgumentError(f"--convention counts detectors only (--kind detection), got --kind {args.kind}")
    if args.kind == "detection":
        from glore.analysis.detection_complexity import count_detector, paper_figures

        result = count_detector(model, input_size, convention=args.convention or "torch")
        config, figures = None, paper_figures(args.arch, args.backbone, block=args.block, units=args.units,
                                              position=args.position, block_kwargs=args.block_kwargs,
                                              num_classes=args.num_classes)
    else:
        result = summary(model, input_size)
        config, figures = paper_rows(args, model)
    rows = []
    for fig in figures:
        row = {"source": fig.source, "row": fig.row, "params_m": fig.params_m, "gmacs": fig.gmacs}
        base = baseline_figure(fig)
        if base is not None and base.gmacs is not None and fig.gmacs is not None:
            base_ours = summary(build(args.kind, fig.baseline), input_size)["gmacs"]
            row["gmacs_increment"] = round(fig.gmacs - base.gmacs, 3)
            row["ours_gmacs_increment"] = round(result["gmacs"] - base_ours, 3)
        rows.append(row)

    if args.json:
        out = dict(result)
        out.update(model=args.backbone, configuration=config, paper=rows)
        if args.kind == "detection":
            out["arch"] = args.arch
        print(json.dumps(out, indent=2, default=list))
        return 0
    desc = args.backbone if args.kind != "detection" else f"{args.arch} {args.backbone}-FPN"
    if args.block not in (None, "none"):
        desc += f" + {args.block} units={args.units!r}"
    print(f"model         {desc}" + (f"  (registered as {config})" if config and config in FIGURES
                                     and config != args.backbone else ""))
    print(f"input         1x{'x'.join(map(str, input_size))}")
    print(f"params        {result['params'] / 1e6:.3f} M")
    print(f"GMACs         {result['gmacs']:.3f}")
    for row in rows:
        line = (f"paper         {row['params_m']} M ({_pct(result['params'] / 1e6, row['params_m'])})")
        if row["gmacs"] is not None:
            line += f", {row['gmacs']} GMACs ({_pct(result['gmacs'], row['gmacs'])})"
        if "gmacs_increment" in row:
            line += (f"; over the baseline: paper +{row['gmacs_increment']:.2f}, "
                     f"ours +{row['ours_gmacs_increment']:.2f}")
        print(f"{line}  [{row['source']}: {row['row']}]")
    if args.kind == "detection" and args.convention == "mmdet":
        print("GMACs: as mmdetection's get_flops counts (modules only, the image unpadded), box head on 1000 "
              "regions, mask head on 100")
    elif args.kind == "detection":
        print("GMACs: backbone + FPN + RPN head on the padded image, box head on 1000 proposals, "
              "mask head on 100 detections")
    if not rows and args.kind in ("classification", "detection"):
        print("paper         (configuration not in the papers' tables)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("summary", help="parameters and GMACs of a model, beside the papers'",
                              description="Parameters and GMACs of a model, beside the papers' figures.")
    p.add_argument("backbone", nargs="?", default=None,
                   help="e.g. resnet50, dpn98, tv_resnet50, resnet50_glore_0_3 (or, with --config, an override)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="with --config: config overrides, e.g. model.block=gc")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="a run config (YAML): count its network, beside its reference row's figures")
    p.add_argument("--kind", choices=sorted(KINDS), default="classification",
                   help="model family: create_model, create_segmenter, create_video_model or create_detector")
    p.add_argument("--arch", choices=("maskrcnn", "fasterrcnn", "cascade_maskrcnn", "cascade_rcnn"), default="maskrcnn",
                   help="detection: the detector (default maskrcnn)")
    p.add_argument("--block", choices=("glore", "nl", "snl", "gc", "se", "cbam", "none"), default=None,
                   help="block to insert (segmentation: the head's context block); 'none' = baseline")
    p.add_argument("--units", default=None,
                   help="'n,m' (n in res3, m in res4), 'all', or YAML like '{res4: [5]}'")
    p.add_argument("--position", choices=("after_add", "after_1x1"), default=None,
                   help="where in a residual block the blocks go (default: the block's own)")
    p.add_argument("--block-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="block option, repeatable: ratio=1/4, pairwise=gaussian, mid=128")
    p.add_argument("--num-classes", type=int, default=None, help="classes of the head (default: the model's)")
    p.add_argument("--input-size", default=None,
                   help="C,H,W or C,T,H,W (default 3,224,224; segmentation 3,769,769; "
                        "video 3,8,224,224; detection 3,800,1333)")
    p.add_argument("--convention", choices=("torch", "mmdet"), default=None,
                   help="detection: how to count (torch: convolutions and matrix products on the padded image, "
                        "the default; mmdet: as mmdetection's get_flops counts, the GCNet paper's FLOPs)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)
