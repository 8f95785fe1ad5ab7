"""Ways to run a 1x1 convolution on a channel-major (contiguous) ``(B, C, L)`` input, side by side.

    python benchmarks/pointwise.py
    python benchmarks/pointwise.py --shapes 8,1024,196,512 1,512,4096,1

For each shape ``B,C_in,L,C_out``, forward+backward (gradients of the input, weight and bias) of:

- ``Pointwise``: the library's module (``conv1d`` for a batch, one ``addmm`` for a single sample);
- ``conv1d``: ``F.conv1d`` (oneDNN on the CPU);
- ``batched matmul``: ``weight @ x`` broadcast over the batch (the library's path before session 3);
- ``flattened mm``: a position-major copy of ``x``, one ``addmm`` over all ``B L`` positions, and
  the output copied back to channel-major (sessions 1 and 2 of the GloRe unit).

Interleaved timing (``_common.time_interleaved``); prints median and minimum ms, GFLOP/s (3 products
of ``2 B C_in L C_out`` FLOPs), and peak memory.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import _common as common
from blocks import fwd_bwd
from glore.nn import Pointwise

DEFAULT_SHAPES = ["8,1024,196,512", "8,512,196,256", "8,1024,196,1", "1,512,4096,256",
                  "1,512,4096,1"]


def variants(module: Pointwise):
    weight, bias = module.weight, module.bias
    return {
        "Pointwise": module,
        "conv1d": lambda x: F.conv1d(x, weight, bias),
        "batched matmul": lambda x: torch.matmul(weight[:, :, 0], x) + bias[:, None],
        "flattened mm": lambda x: F.linear(x.mT.reshape(-1, x.shape[1]), weight[:, :, 0], bias)
        .view(x.shape[0], x.shape[2], -1).mT.contiguous(),
    }


def parse_shape(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise SystemExit(f"--shapes: expected B,C_in,L,C_out (four positive integers), got {text!r}")
    return tuple(int(p) for p in parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="*", default=DEFAULT_SHAPES, help="B,C_in,L,C_out ...")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(common.setup(args.threads))
    rows = []
    for text in args.shapes:
        b, c_in, length, c_out = parse_shape(text)
        module = Pointwise(c_in, c_out)
        x = torch.randn(b, c_in, length, requires_grad=True)
        grad = torch.randn(b, c_out, length)
        cases = {}
        for name, fn in variants(module).items():
            torch.testing.assert_close(fn(x), module(x), rtol=1e-4, atol=1e-4)
            cases[name] = fwd_bwd(fn, x, grad, module.parameters())
        timing = common.time_interleaved(cases, repeats=args.repeats, warmup=2, min_seconds=0.05)
        flop = 3 * 2 * b * c_in * length * c_out
        for name, t in timing.items():
            rows.append({"shape": text, "way": name, "median_ms": t["median"] * 1e3,
                         "min_ms": t["min"] * 1e3, "gflops": flop / t["median"] / 1e9,
                         "peak_mib": common.mb(common.peak_memory(cases[name]))})
    print(common.fmt_table(rows, ["shape", "way", "median_ms", "min_ms", "gflops", "peak_mib"]))


if __name__ == "__main__":
    main()
