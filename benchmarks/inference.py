"""Inference throughput of a network four ways: eager fp32, eager under bf16 autocast, torch.compile, ONNX Runtime.

    python benchmarks/inference.py                     # ResNet-50 + GloRe (0, 3) at 224, the seg-digits segmenter
    python benchmarks/inference.py --models cityscapes --batch 1 --repeats 3   # the Cityscapes segmenter, 769 x 769
    python benchmarks/inference.py --modes eager onnxruntime --threads 4

Networks: ``resnet50-glore`` (``create_model("resnet50", block="glore", units=(0, 3))``, batch 8 at
224 x 224), ``seg-digits`` (the segmenter of configs/segmentation/seg_digits_glore.yaml, batch 32 at
64 x 64), ``cityscapes`` (configs/segmentation/cityscapes_resnet50_glore.yaml's dilated ResNet-50 with
the GloRe head, at its 769 x 769 crop). Ways: ``eager`` (fp32, ``torch.inference_mode``), ``bf16``
(the same under ``torch.autocast("cpu", torch.bfloat16)``), ``compile`` (``torch.compile`` of the
network, compiled during the warm-up), ``onnxruntime`` (the network exported by ``glore export``'s
exporter, run by ONNX Runtime's CPU provider with the same thread count). The ways of one network run
interleaved (benchmarks/_common.py); each reports the median seconds per batch, images/s and its
ratio to eager fp32. Results to results/benchmarks/inference.json, with the CPU model and load.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import warnings
from pathlib import Path

import torch

import _common as common
from glore.models import create_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "segmentation"
MODES = ("eager", "bf16", "compile", "onnxruntime")
NETWORKS = {   # name: (batch, height/width, what)
    "resnet50-glore": (8, 224, "ResNet-50 + GloRe (0, 3)"),
    "seg-digits": (32, 64, "seg-digits segmenter (tiny_segnet + GloRe head)"),
    "cityscapes": (1, 769, "Cityscapes segmenter (dilated ResNet-50 + GloRe head)"),
}


def build(name: str) -> tuple[torch.nn.Module, str]:
    """The network (eval mode) and its task."""
    if name == "resnet50-glore":
        return create_model("resnet50", block="glore", units=(0, 3)).eval(), "classification"
    from glore.engine.config import load_config
    from glore.engine.segmentation import build_segmenter

    config = {"seg-digits": "seg_digits_glore.yaml", "cityscapes": "cityscapes_resnet50_glore.yaml"}[name]
    model_cfg = dict(load_config(CONFIGS / config)["model"])
    model_cfg["pretrained"] = False
    return build_segmenter(model_cfg).eval(), "segmentation"


def onnx_session(model: torch.nn.Module, example: torch.Tensor, task: str, threads: int, folder: str):
    import onnxruntime

    from glore.engine.export import export_network

    path = os.path.join(folder, "model.onnx")
    export_network(model, example, path, "onnx", task=task)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    feed = {name: example.numpy()}
    return lambda: session.run(None, feed)


def cases(model: torch.nn.Module, x: torch.Tensor, task: str, modes, threads: int, folder: str) -> dict:
    def eager():
        with torch.inference_mode():
            return model(x)

    def bf16():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x)

    out = {}
    for mode in modes:
        if mode == "eager":
            out[mode] = eager
        elif mode == "bf16":
            out[mode] = bf16
        elif mode == "compile":
            compiled = torch.compile(model)

            def run_compiled(compiled=compiled):
                with torch.inference_mode():
                    return compiled(x)

            out[mode] = run_compiled
        elif mode == "onnxruntime":
            out[mode] = onnx_session(model, x, task, threads, folder)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=NETWORKS, default=["resnet50-glore", "seg-digits"],
                        help="networks to time (default resnet50-glore seg-digits)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="ways to run them")
    parser.add_argument("--batch", type=int, default=None, help="images per call (default per network)")
    parser.add_argument("--size", type=int, default=None, help="image side (default per network)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per way (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default 2)")
    parser.add_argument("--out", default=None, help="folder of inference.json (default results/benchmarks)")
    args = parser.parse_args(argv)
    env = common.setup(threads=args.threads)
    env["native_bf16"] = common.native_bf16()
    print(f"CPU: {env['cpu']} ({env['cpu_capability']}, native bf16: {env['native_bf16']}), "
          f"{env['threads']} threads, torch {env['torch']}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            batch, size, what = NETWORKS[name]
            batch, size = args.batch or batch, args.size or size
            model, task = build(name)
            x = torch.rand(batch, 3, size, size)
            with warnings.catch_warnings(), contextlib.redirect_stdout(open(os.devnull, "w")):
                warnings.simplefilter("ignore")
                runs = cases(model, x, task, args.modes, args.threads, folder)
            load_before = common.load()
            timing = common.time_interleaved(runs, repeats=args.repeats, warmup=2)
            base = timing["eager"]["median"] if "eager" in timing else None
            for mode, t in timing.items():
                rows.append({"network": name, "what": what, "mode": mode, "batch": batch, "size": size,
                             "ms": round(t["median"] * 1e3, 2), "images_per_s": round(batch / t["median"], 2),
                             "x_eager": round(base / t["median"], 3) if base else None,
                             "samples_ms": [round(s * 1e3, 2) for s in t["samples"]],
                             "load": [load_before, common.load()]})
    print(common.fmt_table(rows, ["network", "mode", "batch", "size", "ms", "images_per_s", "x_eager"]))
    path = common.write_json("inference", {"env": env, "repeats": args.repeats, "rows": rows},
                             Path(args.out) if args.out else None)
    print(f"-> {path}")
    return rows


if __name__ == "__main__":
    main()
