"""The GloRe unit of this checkout against the same unit at an earlier git revision, side by side.

    python benchmarks/compare.py db3c16c                 # the goal configuration, both layouts
    python benchmarks/compare.py HEAD~3 --batch 1 --channels 512 --size 128
    python benchmarks/compare.py ea7c155 --compile      # torch.compile of each unit beside eager

The revision's ``src/glore/nn`` is extracted with ``git archive`` into a temporary folder and imported
as a package of its own, so that both units run in one process: same weights (this checkout's,
copied), same input, interleaved timing (``_common.time_interleaved``) with the fp32 GEMM of the
same group as the throughput reference, and peak memory (``_common.peak_memory``, which does not
count the input and the upstream gradient). Prints median and minimum time, fraction of the GEMM
throughput and peak memory of each unit and layout; with ``--compile``, of each unit compiled too.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

import _common as common
from blocks import fwd_bwd, gemm_case, module_flops
from glore.nn import GloRe

ROOT = Path(__file__).resolve().parents[1]
NN_PATH = "src/glore/nn"


def load_nn_at(revision: str, folder: Path):
    """Import ``src/glore/nn`` as it was at ``revision`` (a package of its own; the files import
    each other relatively, nothing else)."""
    try:
        archive = subprocess.run(["git", "archive", revision, NN_PATH], cwd=ROOT, check=True,
                                 capture_output=True).stdout
    except subprocess.CalledProcessError as err:
        raise SystemExit(f"git archive {revision} {NN_PATH} failed: {err.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    package = folder / NN_PATH
    name = "glore_nn_at_" + "".join(ch if ch.isalnum() else "_" for ch in revision)
    spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revision", help="git revision of the unit to compare with (e.g. HEAD~1)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=1024)
    parser.add_argument("--size", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gemm-size", type=int, default=2048)
    parser.add_argument("--compile", action="store_true", help="also time each unit under torch.compile")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="glibc malloc keeps freed memory for reuse (no page faults for temporaries)")
    args = parser.parse_args(argv)

    print(common.setup(args.threads, keep_freed=args.keep_freed_memory))
    with tempfile.TemporaryDirectory() as tmp:
        old_nn = load_nn_at(args.revision, Path(tmp))
    units = {"this checkout": GloRe(args.channels), args.revision: old_nn.GloRe(args.channels)}
    torch.nn.init.ones_(units["this checkout"].norm.weight)      # every product has work to do
    units[args.revision].load_state_dict(units["this checkout"].state_dict())

    shape = (args.batch, args.channels, args.size, args.size)
    x = torch.randn(shape)
    grad = torch.randn(shape)
    layouts = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    inputs = {k: (x.contiguous(memory_format=f).requires_grad_(), grad.contiguous(memory_format=f))
              for k, f in layouts.items()}
    # each unit's own count: the two may take their products in different orders
    flops = {name: module_flops(unit, shape) for name, unit in units.items()}

    modes = {"eager": lambda unit: unit}
    if args.compile:
        modes["compiled"] = torch.compile
    cases = {}
    for unit_name, unit in units.items():
        for mode, wrap in modes.items():
            run = wrap(unit)
            for layout, (xi, gi) in inputs.items():
                difference = (run(xi) - units["this checkout"](xi)).abs().max().item()
                print(f"{unit_name}, {mode}, {layout}: largest difference from this checkout eager "
                      f"{difference:.2e}")
                cases[unit_name, mode, layout] = fwd_bwd(run, xi, gi)
    cases["GEMM"], gemm_flop = gemm_case(args.gemm_size)
    load0 = common.load()
    timing = common.time_interleaved(cases, repeats=args.repeats, warmup=2)
    load1 = common.load()
    gemm = timing.pop("GEMM")
    gemm_gflops = gemm_flop / gemm["median"] / 1e9
    rows = [{"unit": unit_name, "mode": mode, "layout": layout, "gflop": flops[unit_name] / 1e9,
             "median_ms": t["median"] * 1e3, "min_ms": t["min"] * 1e3,
             "frac_gemm": flops[unit_name] / t["median"] / 1e9 / gemm_gflops,
             "peak_mib": common.mb(common.peak_memory(cases[unit_name, mode, layout]))}
            for (unit_name, mode, layout), t in timing.items()]
    print(f"\nGloRe({args.channels}), input {shape}, forward+backward; "
          f"fp32 GEMM {gemm_gflops:.0f} GFLOP/s in the group; load {load0} -> {load1}")
    print(common.fmt_table(rows, ["unit", "mode", "layout", "gflop", "median_ms", "min_ms",
                                  "frac_gemm", "peak_mib"]))


if __name__ == "__main__":
    main()
