"""``glore predict``: run a trained checkpoint on images, folders and videos (:mod:`glore.engine.predict`)."""

from __future__ import annotations

import argparse


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _predict(args) -> int:
    from ..engine.predict import predict

    result = predict(args.checkpoint, args.inputs, args.output_dir, device=args.device,
                     batch_size=args.batch_size, topk=args.topk, score_threshold=args.score_threshold,
                     overwrite=args.overwrite)
    print(f"{result['task']}: {result['inputs']} input(s) -> {args.output_dir} ({len(result['files'])} file(s))")
    return 0


def register(subparsers) -> None:
    """Add the ``predict`` subcommand."""
    p = subparsers.add_parser(
        "predict", help="run a trained checkpoint on images, folders or videos",
        description="Run a checkpoint written by glore train on image or video files and folders. "
                    "Classification and video write predictions.csv (file, class, score, then the top-k); "
                    "segmentation a label-id PNG and a colour PNG per image; detection detections.json "
                    "(COCO results) and the boxes and masks drawn on each image.")
    p.add_argument("--checkpoint", required=True, help="a .ckpt written by glore train")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, or folders of them")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="folder for the predictions (created if missing)")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: cuda when available)")
    p.add_argument("--batch-size", type=_positive, default=16, help="inputs per forward pass (default 16)")
    p.add_argument("--topk", type=_positive, default=5, help="classification: classes listed per input (default 5)")
    p.add_argument("--score-threshold", type=float, default=0.5,
                   help="detection: the lowest score drawn on the images (all go to detections.json; default 0.5)")
    p.add_argument("--overwrite", action="store_true", help="replace prediction files that already exist")
    p.set_defaults(func=_predict)
