"""Ways to run a 1x1 convolution on a ``(B, C, L)`` input, in both layouts, side by side.

    python benchmarks/pointwise.py
    python benchmarks/pointwise.py --shapes 8,1024,196,512 1,512,9216,1

For each shape ``B,C_in,L,C_out`` and layout (``channel-major``: a contiguous ``(B, C, L)``;
``position-major``: the ``(B, C, L)`` view of a contiguous ``(B, L, C)``, as a flattened
channels_last input is), forward+backward (gradients of the input, weight and bias) of:

- ``Pointwise``: the library's module;
- ``convolution``: oneDNN's convolution on the CPU (``F.conv1d`` on a channel-major input,
  ``F.conv2d`` on the channels_last ``(B, C, 1, L)`` view of a position-major one);
- ``convolution (L, 1)`` (position-major only): the same on the ``(B, C, L, 1)`` view, a view
  the library does not take (oneDNN's AVX2 kernels run it 1.5-4x slower);
- ``product``: matrix products, without copies (channel-major: one ``baddbmm`` with the weight
  broadcast over the batch; position-major: one ``F.linear`` over all ``B L`` positions).

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

DEFAULT_SHAPES = ["8,1024,196,512", "8,512,196,1024", "8,512,784,128", "1,512,9216,128",
                  "8,1024,196,1", "8,512,784,1", "1,512,9216,1"]
LAYOUTS = ("channel-major", "position-major")


def variants(module: Pointwise, layout: str):
    weight, bias = module.weight, module.bias
    if layout == "channel-major":
        return {
            "Pointwise": module,
            "convolution": lambda x: F.conv1d(x, weight, bias),
            "product": lambda x: torch.baddbmm(bias[None, :, None], weight[:, :, 0].expand(x.shape[0], -1, -1), x),
        }
    return {
        "Pointwise": module,
        "convolution": lambda x: F.conv2d(x.mT.unsqueeze(1).permute(0, 3, 1, 2), weight[..., None], bias)[:, :, 0],
        "convolution (L, 1)": lambda x: F.conv2d(x.mT.unsqueeze(2).permute(0, 3, 1, 2), weight[..., None], bias)[..., 0],
        "product": lambda x: F.linear(x.mT, weight[:, :, 0], bias).mT,
    }


def make_input(b: int, c: int, length: int, layout: str) -> torch.Tensor:
    x = torch.randn(b, c, length) if layout == "channel-major" else torch.randn(b, length, c).mT
    return x.requires_grad_()


def make_grad(b: int, c_out: int, length: int, layout: str) -> torch.Tensor:
    """The upstream gradient, in the layout of the input (and so of the output)."""
    return make_input(b, c_out, length, layout).detach()


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
        for layout in LAYOUTS:
            x = make_input(b, c_in, length, layout)
            grad = make_grad(b, c_out, length, layout)
            cases = {}
            for name, fn in variants(module, layout).items():
                torch.testing.assert_close(fn(x), module(x), rtol=1e-4, atol=1e-4)
                cases[name] = fwd_bwd(fn, x, grad, module.parameters())
            timing = common.time_interleaved(cases, repeats=args.repeats, warmup=2, min_seconds=0.05)
            flop = 3 * 2 * b * c_in * length * c_out
            for name, t in timing.items():
                rows.append({"shape": text, "layout": layout, "way": name, "median_ms": t["median"] * 1e3,
                             "min_ms": t["min"] * 1e3, "gflops": flop / t["median"] / 1e9,
                             "peak_mib": common.mb(common.peak_memory(cases[name]))})
    print(common.fmt_table(rows, ["shape", "layout", "way", "median_ms", "min_ms", "gflops", "peak_mib"]))


if __name__ == "__main__":
    main()
