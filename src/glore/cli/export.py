"""``glore export``: write a trained network as ONNX or a ``torch.export`` program (:mod:`glore.engine.export`)."""

from __future__ import annotations


def _export(args) -> int:
    from ..engine.export import export

    result = export(args.checkpoint, args.format, args.output, check=args.check, overwrite=args.overwrite)
    print(f"written {result['output']} ({result['format']})")
    if result["max_abs_diff"] is not None:
        runtime = "ONNX Runtime" if result["format"] == "onnx" else "the loaded program"
        print(f"check passed: {runtime} matches PyTorch (largest difference {result['max_abs_diff']:.3g})")
    return 0


def register(subparsers) -> None:
    """Add the ``export`` subcommand."""
    p = subparsers.add_parser(
        "export", help="export a trained network to ONNX or a torch.export program",
        description="Export the network of a checkpoint written by glore train: ONNX through torch.onnx "
                    "(the dynamo exporter), or pt2 through torch.export.save. The batch dimension is dynamic. "
                    "Detectors do not export (torchvision's post-processing has data-dependent sizes).")
    p.add_argument("--checkpoint", required=True, help="a .ckpt written by glore train")
    p.add_argument("--format", required=True, choices=("onnx", "pt2"), help="onnx or pt2 (torch.export)")
    p.add_argument("--output", required=True, help="the file to write, e.g. model.onnx")
    p.add_argument("--check", action="store_true",
                   help="run the written model (ONNX Runtime, or the loaded pt2 program) on new inputs and "
                        "compare with PyTorch (rtol 1e-3, atol 1e-4)")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    p.set_defaults(func=_export)
