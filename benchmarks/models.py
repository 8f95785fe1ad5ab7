"""Training and inference throughput of ResNet-50 with and without context blocks, in one run.

    python benchmarks/models.py            # batch 8 at 224x224, 5 interleaved repeats
    python benchmarks/models.py --quick    # batch 4, 3 repeats
    python benchmarks/models.py --bf16     # each case also under bf16 autocast: the bf16 column
    python benchmarks/models.py --device cuda --bf16 --batch 64   # on a GPU
    python benchmarks/models.py --compile --variants "ResNet-50" "+ GloRe (0, 3)"   # eager and compiled
    python benchmarks/models.py --layouts contiguous channels_last   # both memory layouts, interleaved

Variants: the plain ResNet-50, + GloRe (0, 3) (GloRe paper), + GC in every block of res3-res5 (r16,
GCNet) and + 1 NL (before the last block of res4, GCNet Table 8). For each: images/s for a training
step (forward, loss, backward, SGD update) and for inference (``torch.inference_mode``, eval), the
ratio of its time to the baseline's beside the ratio of their GMACs (forward multiply-adds counted by
``FlopCounterMode`` on the meta device), parameters. With ``--compile``, each variant also runs
compiled (``nn.Module.compile()``), in the same interleaved groups: its ratio to the compiled baseline,
and ``x_eager``, its time over the same variant's in eager mode. With both ``--layouts``, every case
runs in each memory layout in the same interleaved groups, and ``x_contiguous`` is a case's time over
the same case's with contiguous input. With ``--bf16``, every case also runs with its forward under
bf16 autocast, in the same interleaved groups: ``bf16_speedup`` is the fp32 case's time over the bf16
case's (the script says first where the CPU lacks native bf16: there bf16 is emulated, and slow). The
JSON's ``env`` names the host: CPU model, PyTorch's capability, the cpuinfo flags of reduced precision.
Results to results/benchmarks/models.json.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import _common as common
from glore.models import create_model

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
VARIANTS = {
    "ResNet-50": dict(),
    "+ GloRe (0, 3)": dict(block="glore", units=(0, 3)),
    "+ GC all (r16)": dict(block="gc", units="all"),
    "+ 1 NL": dict(block="nl", units={"res4": [5]}),
}


def gmacs(kwargs: dict, size: int) -> float:
    with torch.device("meta"):
        model = create_model("resnet50", **kwargs).eval()
        x = torch.empty(1, 3, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2 / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=["contiguous"],
                        help="memory layouts of model and input, run side by side")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    parser.add_argument("--bf16", action="store_true",
                        help="also run every case with its forward under bf16 autocast (the bf16 column)")
    parser.add_argument("--compile", action="store_true", help="also run every variant under torch.compile")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="which models (the first is the baseline of the ratios)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="glibc malloc keeps freed memory for reuse (no page faults for temporaries)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time, not the wall clock (a shared host; "
                             "with --threads 1)")
    args = parser.parse_args(argv)
    args.batch = args.batch or (4 if args.quick else 8)
    args.repeats = args.repeats or (3 if args.quick else 5)
    warnings.filterwarnings("ignore", category=UserWarning)

    started = time.perf_counter()
    env = common.setup(args.threads, device=args.device, keep_freed=args.keep_freed_memory,
                       cpu_time=args.cpu_time)
    device = torch.device(args.device)
    print(f"{env}\nload {common.load()}")
    if args.bf16 and not common.native_bf16(args.device):
        print(f"note: this CPU ({env['cpu']}, capability {env['cpu_capability']}) lacks native bf16 "
              "(no avx512_bf16 / amx_bf16 flag): bf16 is emulated, many times slower than fp32", flush=True)
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    target = torch.randint(0, 1000, (args.batch,), device=device)
    modes = ["eager"] + (["compiled"] if args.compile else [])
    precisions = ["fp32"] + (["bf16"] if args.bf16 else [])
    train_cases, infer_cases, info = {}, {}, {}
    cases = [(v, m, layout) for v in VARIANTS.items() if v[0] in args.variants for m in modes
             for layout in args.layouts]
    for (name, kwargs), mode, layout in cases:
        fmt = LAYOUTS[layout]
        x = images.contiguous(memory_format=fmt)
        model = create_model("resnet50", **kwargs).to(device, memory_format=fmt)
        if mode == "compiled":
            model.compile()
        info[name] = {"gmacs": gmacs(kwargs, args.size),
                      "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        for precision in precisions:
            autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

            def train_step(model=model, opt=opt, x=x, autocast=autocast):
                model.train()
                opt.zero_grad(set_to_none=True)
                with torch.autocast(**autocast):
                    loss = nn.functional.cross_entropy(model(x), target)
                loss.backward()
                opt.step()

            def infer_step(model=model, x=x, autocast=autocast):
                model.eval()
                with torch.inference_mode(), torch.autocast(**autocast):
                    model(x)
            key = (name, mode, layout, precision)
            train_cases[key], infer_cases[key] = train_step, infer_step

    rows = []
    baseline = args.variants[0]
    for mode, cases in (("train", train_cases), ("inference", infer_cases)):
        load0 = common.load()
        timing = common.time_interleaved(cases, repeats=args.repeats, warmup=1, device=args.device)
        load1 = common.load()
        for (name, run, layout, precision), t in timing.items():
            base = timing[baseline, run, layout, precision]["median"]
            contiguous = timing.get((name, run, "contiguous", precision))
            rows.append({"mode": mode, "model": name, "run": run, "layout": layout,
                         "precision": precision, "img_s": args.batch / t["median"],
                         "ms": t["median"] * 1e3, "time_ratio": t["median"] / base,
                         "x_eager": t["median"] / timing[name, "eager", layout, precision]["median"],
                         "x_contiguous": t["median"] / contiguous["median"] if contiguous else None,
                         "bf16_speedup": (timing[name, run, layout, "fp32"]["median"] / t["median"]
                                          if precision == "bf16" else None),
                         "gmacs": info[name]["gmacs"],
                         "gmacs_ratio": info[name]["gmacs"] / info[baseline]["gmacs"],
                         "params_m": info[name]["params_m"], "load": [load0, load1]})
        print(f"== {mode}, batch {args.batch} at {args.size}x{args.size} ==")
        print(common.fmt_table([r for r in rows if r["mode"] == mode],
                               ["model", "run", "layout", "precision", "img_s", "ms", "time_ratio",
                                "x_eager", "x_contiguous", "bf16_speedup", "gmacs", "gmacs_ratio",
                                "params_m"]))
        print(f"load {load0} -> {load1}\n", flush=True)
    out = {"env": env, "args": vars(args), "rows": rows, "wall_s": time.perf_counter() - started}
    path = common.write_json("models", out, args.out)
    print(f"wrote {path} ({out['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
