"""Training and inference throughput of ResNet-50 with and without context blocks, in one run.

    python benchmarks/models.py            # batch 8 at 224x224, 5 interleaved repeats
    python benchmarks/models.py --quick    # batch 4, 3 repeats
    python benchmarks/models.py --device cuda --bf16 --batch 64   # on a GPU, under bf16 autocast

Variants: the plain ResNet-50, + GloRe (0, 3) (GloRe paper), + GC in every block of res3-res5 (r16,
GCNet) and + 1 NL (before the last block of res4, GCNet Table 8). For each: images/s for a training
step (forward, loss, backward, SGD update) and for inference (``torch.inference_mode``, eval), the
ratio of its time to the baseline's beside the ratio of their GMACs (forward multiply-adds counted by
``FlopCounterMode`` on the meta device), parameters. Results to results/benchmarks/models.json.
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
    parser.add_argument("--channels-last", action="store_true", help="model and input channels_last")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    parser.add_argument("--bf16", action="store_true", help="forward under bf16 autocast")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    args.batch = args.batch or (4 if args.quick else 8)
    args.repeats = args.repeats or (3 if args.quick else 5)
    warnings.filterwarnings("ignore", category=UserWarning)

    started = time.perf_counter()
    env = common.setup(args.threads, device=args.device)
    device = torch.device(args.device)
    print(f"{env}\nload {common.load()}")
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    x = torch.randn(args.batch, 3, args.size, args.size, device=device).contiguous(memory_format=fmt)
    target = torch.randint(0, 1000, (args.batch,), device=device)
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16)
    train_cases, infer_cases, info = {}, {}, {}
    for name, kwargs in VARIANTS.items():
        model = create_model("resnet50", **kwargs).to(device, memory_format=fmt)
        info[name] = {"gmacs": gmacs(kwargs, args.size),
                      "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def train_step(model=model, opt=opt):
            model.train()
            opt.zero_grad(set_to_none=True)
            with torch.autocast(**autocast):
                loss = nn.functional.cross_entropy(model(x), target)
            loss.backward()
            opt.step()

        def infer_step(model=model):
            model.eval()
            with torch.inference_mode(), torch.autocast(**autocast):
                model(x)
        train_cases[name], infer_cases[name] = train_step, infer_step

    rows = []
    for mode, cases in (("train", train_cases), ("inference", infer_cases)):
        load0 = common.load()
        timing = common.time_interleaved(cases, repeats=args.repeats, warmup=1, device=args.device)
        load1 = common.load()
        base = timing["ResNet-50"]["median"]
        for name, t in timing.items():
            rows.append({"mode": mode, "model": name, "img_s": args.batch / t["median"],
                         "ms": t["median"] * 1e3, "time_ratio": t["median"] / base,
                         "gmacs": info[name]["gmacs"],
                         "gmacs_ratio": info[name]["gmacs"] / info["ResNet-50"]["gmacs"],
                         "params_m": info[name]["params_m"], "load": [load0, load1]})
        print(f"== {mode}, batch {args.batch} at {args.size}x{args.size} ==")
        print(common.fmt_table([r for r in rows if r["mode"] == mode],
                               ["model", "img_s", "ms", "time_ratio", "gmacs", "gmacs_ratio",
                                "params_m"]))
        print(f"load {load0} -> {load1}\n", flush=True)
    out = {"env": env, "args": vars(args), "rows": rows, "wall_s": time.perf_counter() - started}
    name = "models" + ("_channels_last" if args.channels_last else "") + ("_bf16" if args.bf16 else "")
    path = common.write_json(name, out, args.out)
    print(f"wrote {path} ({out['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
