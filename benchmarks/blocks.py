"""Forward+backward time of the blocks against plain forms and timm's, and more, in one run.

    python benchmarks/blocks.py                       # the ratio table (docs/benchmarks.md)
    python benchmarks/blocks.py --sections positions channels unit    # the other sections
    python benchmarks/blocks.py --sections positions --blocks NL NL-sdpa timm-NL [--channels-last]
    python benchmarks/blocks.py --device cuda [--bf16]   # on a GPU; --bf16: the grids under bf16 autocast

Sections (each prints a table; everything goes to results/benchmarks/blocks.json and the log-log plot
to results/benchmarks/blocks_positions.png):

1. ``ratios`` (the default): at each ``--ratio-configs`` size (``B,C,size``; default Res4 8,1024,14,
   Res3 8,512,28 and segmentation 1,512,96, ``mid = C/4``) and in both layouts, interleaved in one
   group: our ``GloRe`` against ``PlainGloRe`` (the unit as the authors' release writes it, same
   weights), the bare matrix products of our unit at the same shapes (the limit), our ``NonLocal``
   against timm's ``NonLocalAttn`` at the same inner width (``rd_ratio=1/2``), our
   ``GlobalContext`` against timm's ``GlobalContext`` (r = 16), and a square fp32 GEMM. Prints each
   group's times, then the table of ratios of medians.
2. ``positions``: every block at C=512, batch 1, from 14x14 to 128x128 positions: time, achieved
   GFLOP/s as a fraction of the GEMM throughput, peak memory, and time relative to GloRe.
   ``GloRe`` takes its products in the cheaper order for each size (``reassociate=None``, the
   default), ``GloRe-paper`` always in the paper's order (``reassociate=False``). ``NL-sdpa`` is
   our ``NonLocal`` with its attention as PyTorch's fused ``scaled_dot_product_attention``
   (``FusedAttentionNonLocal``, benchmark only). Contiguous input unless ``--channels-last``.
3. ``channels``: every block at 14x14, batch 8, C = 256 ... 2048.
4. ``unit``: the GloRe unit at C=1024, mid=256, 14x14, batch 8: contiguous vs channels_last input,
   torch.compile vs eager, bf16 and fp16 autocast vs fp32 (with their relative errors), the plain unit
   (``PlainGloRe``), the unit's own products timed bare, and its peak memory against the memory
   of its inputs and saved activations.

FLOPs of a block are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one forward and
backward pass on the meta device (matrix products and convolutions, 2 FLOPs per multiply-add).
"""

from __future__ import annotations

import argparse
import copy
import math
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import _common as common
from glore.nn import (GlobalContext, GloRe, NonLocal, SimplifiedNonLocal, SqueezeExcite,
                      convert_official_state_dict)
from glore.nn._layout import as_image, as_input_shape, in_layout_of

BLOCK_NAMES = ("GloRe", "GloRe-paper", "NL", "NL-sdpa", "SNL", "GC", "SE", "timm-NL", "timm-GC")
NON_LOCAL_NAMES = ("NL", "NL-sdpa", "timm-NL")      # the ones --nl-max limits


class FusedAttentionNonLocal(NonLocal):
    """``NonLocal`` (embedded gaussian) with ``sum_j softmax_j(q_i . k_j) v_j`` as one
    ``F.scaled_dot_product_attention`` (``scale=1``): PyTorch's fused kernel, which never holds the
    ``(L, L)`` attention. Same parameters and result as ``NonLocal``; measured against it here, not
    adopted in the library (docs/benchmarks.md, "Design notes")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        # (B, 1, L, inner) each, contiguous: the fused CPU kernel's layout (else PyTorch falls back
        # to the unfused product)
        q, k, v = (m(x).flatten(2).mT.contiguous()[:, None]         # convs on x, as NonLocal
                   for m in (self.attention.query, self.attention.key, self.value))
        y = in_layout_of(F.scaled_dot_product_attention(q, k, v, scale=1.0)[:, 0].mT, flat)
        return x + as_input_shape(self.norm(as_image(self.out(y), x)), x)      # as NonLocal


def build(name: str, channels: int, device: str | torch.device = "cpu") -> nn.Module:
    """The blocks compared, with the settings of their papers (timm's with its own defaults)."""
    with torch.device(device):
        if name == "GloRe":
            block = GloRe(channels, mid=channels // 4)
        elif name == "GloRe-paper":                          # the paper's order of products
            block = GloRe(channels, mid=channels // 4, reassociate=False)
        elif name == "NL":
            block = NonLocal(channels)                       # embedded gaussian, inner C/2
        elif name == "NL-sdpa":
            block = FusedAttentionNonLocal(channels)
        elif name == "SNL":
            block = SimplifiedNonLocal(channels)
        elif name == "GC":
            block = GlobalContext(channels, ratio=1 / 16)
        elif name == "SE":
            block = SqueezeExcite(channels, ratio=1 / 16)
        elif name == "timm-NL":
            from timm.layers import NonLocalAttn
            block = NonLocalAttn(channels)                   # timm default: inner C/8, scaled
        elif name == "timm-NL-1/2":
            from timm.layers import NonLocalAttn
            block = NonLocalAttn(channels, rd_ratio=1 / 2)   # our NL's inner width C/2
        elif name == "timm-GC":
            from timm.layers import GlobalContext as TimmGC
            block = TimmGC(channels, fuse_add=True, fuse_scale=False, rd_ratio=1 / 16)  # GCNet's r16
        else:
            raise ValueError(f"unknown block {name!r}; expected one of {BLOCK_NAMES}")
    # non-zero output weights, so that backward computes every gradient (zero-init would skip none
    # of the work, but keeps the numbers of a trained block)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) and m.weight is not None:
            if device != "meta":
                nn.init.ones_(m.weight)
    return block.train()


def count_flops(name: str, shape: tuple[int, ...]) -> int:
    """FLOPs (2 per multiply-add) of one forward+backward pass of block ``name`` on ``shape``."""
    return module_flops(build(name, shape[1], "meta"), shape)


def module_flops(block: nn.Module, shape: tuple[int, ...]) -> int:
    """FLOPs of one forward+backward pass of ``block`` (run on a meta copy) on ``shape``."""
    block = copy.deepcopy(block).to("meta")
    x = torch.empty(shape, device="meta", requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        block(x).sum().backward()
    return counter.get_total_flops()


def glore_macs(b: int, c: int, mid: int, length: int) -> dict[str, int]:
    """Multiply-adds of the GloRe unit's forward, by step (GloRe paper §3; N = mid, C_s = 2 mid)."""
    n, s = mid, 2 * mid
    return {"reduce": b * s * c * length, "project": b * n * c * length, "V": b * s * n * length,
            "gcn_node": b * n * n * s, "gcn_state": b * s * s * n, "reverse": b * s * n * length,
            "extend": b * c * s * length}


def fwd_bwd(block, x: torch.Tensor, grad: torch.Tensor, params=None, autocast: torch.dtype | None = None):
    """One training step of the block alone: forward (under ``autocast`` to that dtype if given),
    backward with a fixed upstream gradient."""
    params = list(block.parameters() if params is None else params)

    def reset():
        x.grad = None
        for p in params:
            p.grad = None

    def step():
        reset()
        with torch.autocast(x.device.type, dtype=autocast, enabled=autocast is not None):
            y = block(x)
        y.backward(grad.to(y.dtype))
    step.reset = reset
    return step


def gemm_case(size: int = 1024, device="cpu", dtype=torch.float32):
    """The throughput reference, timed inside every interleaved group: a square product."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(size, size, device=device, dtype=dtype)
    return (lambda: torch.mm(a, b, out=out)), 2.0 * size**3


def make_input(shape, channels_last=False, device="cpu"):
    """An input that requires grad and an upstream gradient, both channels_last if asked."""
    x, g = torch.randn(shape, device=device), torch.randn(shape, device=device)
    if channels_last:
        x, g = (t.to(memory_format=torch.channels_last) for t in (x, g))
    return x.requires_grad_(), g


def run_grid(configs, names, args, gemm_gflops, label):
    """Time all blocks on every config (interleaved within a config); return rows."""
    rows = []
    for size, channels, batch in configs:
        shape = (batch, channels, size, size)
        length = size * size
        cases, peaks, flops = {}, {}, {}
        for name in names:
            if name in NON_LOCAL_NAMES and size > args.nl_max:
                continue
            block = build(name, channels, args.device)
            x, g = make_input(shape, args.channels_last, args.device)
            step = fwd_bwd(block, x, g, autocast=torch.bfloat16 if args.bf16 else None)
            flops[name] = count_flops(name, shape)
            peaks[name] = common.peak_memory(step, args.device)   # also the first warm-up call
            cases[name] = step
        expected = max(flops.values()) / (gemm_gflops * 1e9)       # seconds of the costliest case
        repeats = args.repeats if expected < 2 else max(2, args.repeats // 3)
        cases["GEMM"], gemm_flop = gemm_case(args.gemm_size, args.device,
                                             torch.bfloat16 if args.bf16 else torch.float32)
        load0 = common.load()
        timing = common.time_interleaved(cases, repeats=repeats, warmup=1, min_seconds=0.2,
                                         device=args.device)
        load1 = common.load()
        group_gflops = gemm_flop / timing.pop("GEMM")["median"] / 1e9   # same run, same load
        base = timing.get("GloRe", {}).get("median")
        for name, t in timing.items():
            med = t["median"]
            rows.append({
                "section": label, "block": name, "size": f"{size}x{size}", "positions": length,
                "channels": channels, "batch": batch, "ms": med * 1e3, "min_ms": t["min"] * 1e3,
                "gflop": flops[name] / 1e9, "gflops": flops[name] / med / 1e9,
                "frac_gemm": flops[name] / med / 1e9 / group_gflops, "gemm_gflops": group_gflops,
                "peak_mb": common.mb(peaks[name]), "x_glore": med / base if base else float("nan"),
                "load": [load0, load1], "repeats": repeats,
            })
        print(common.fmt_table([r for r in rows if r["size"] == f"{size}x{size}"
                                and r["channels"] == channels],
                               ["block", "size", "channels", "batch", "ms", "gflop", "gflops",
                                "frac_gemm", "peak_mb", "x_glore"]),
              f"\nGEMM {group_gflops:.1f} GFLOP/s in this group; load {load0} -> {load1}\n",
              flush=True)
    return rows


# --- the GloRe unit of the goal -----------------------------------------------------------------


class PlainGloRe(nn.Module):
    """The unit written the way the authors' release writes it: N-d 1x1 convs ``conv_state`` and
    ``conv_proj``, ``torch.matmul`` for ``V = phi B^T`` and for the reverse projection, the graph
    convolution as two ``Conv1d`` with the identity added, ``conv_extend``, BatchNorm, residual
    (``normalize=True``). The baseline of the ``ratios`` section; its state dict loads into
    :class:`GloRe` with ``convert_official_state_dict``."""

    def __init__(self, channels: int, mid: int, dims: int = 2):
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
        self.num_s, self.num_n = 2 * mid, mid
        self.conv_state = conv(channels, self.num_s, kernel_size=1)
        self.conv_proj = conv(channels, self.num_n, kernel_size=1)
        self.gcn = nn.Module()
        self.gcn.conv1 = nn.Conv1d(self.num_n, self.num_n, kernel_size=1)
        self.gcn.conv2 = nn.Conv1d(self.num_s, self.num_s, kernel_size=1, bias=False)
        self.conv_extend = conv(self.num_s, channels, kernel_size=1, bias=False)
        self.blocker = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](channels, eps=1e-4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        state = self.conv_state(x).view(n, self.num_s, -1)
        proj = self.conv_proj(x).view(n, self.num_n, -1)
        v = torch.matmul(state, proj.permute(0, 2, 1)) * (1.0 / state.shape[2])
        h = self.gcn.conv1(v.permute(0, 2, 1)).permute(0, 2, 1)
        z = self.gcn.conv2(F.relu(h + v))
        y = torch.matmul(z, proj).view(n, self.num_s, *x.shape[2:])
        return x + self.blocker(self.conv_extend(y))


def unit_products(b: int, c: int, mid: int, length: int, reassociated: bool) -> list[tuple[int, int, int, int]]:
    """The ``(batch, m, k, n)`` matrix products of one forward of the unit in the given order:
    1x1 convs as one product over all ``b * length`` positions (or ``b * N`` nodes), the
    per-sample products batched."""
    n, s, bl = mid, 2 * mid, b * length
    gcn = [(1, b * s, n, n), (1, b * n, s, s)]                      # node conv, state conv
    if reassociated:         # B, X B^T, W_phi (X B^T), GCN, W_ext Z, (W_ext Z) B
        return [(1, bl, c, n), (b, c, length, n), (1, b * n, c, s), *gcn, (1, b * n, s, c),
                (b, c, n, length)]
    return [(1, bl, c, s), (1, bl, c, n), (b, s, length, n), *gcn, (b, s, n, length), (1, bl, s, c)]


def fwd_bwd_gemms(products):
    """The ``(batch, m, k, n)`` products of one forward+backward: each forward product and the two
    of its backward (the gradient of each operand)."""
    gemms = []
    for bt, m, k, n in products:
        gemms += [(bt, m, k, n), (bt, m, n, k), (bt, k, m, n)]
    return gemms


def products_flop(gemms) -> float:
    """FLOPs (2 per multiply-add) of ``(batch, m, k, n)`` products."""
    return sum(2.0 * bt * m * k * n for bt, m, k, n in gemms)


def time_bare_gemms(products, device="cpu"):
    """One forward+backward's worth of bare products (:func:`fwd_bwd_gemms`)."""
    gemms = fwd_bwd_gemms(products)
    mats = [(torch.randn(bt, m, k, device=device), torch.randn(bt, k, n, device=device))
            for bt, m, k, n in gemms]

    def run():
        for a, b in mats:
            torch.bmm(a, b) if a.shape[0] > 1 else torch.mm(a[0], b[0])
    return run


def unit_passes(b: int, c: int, mid: int, size: int, reassociated: bool, channels_last: bool,
                device="cpu"):
    """The full-size element-wise passes a forward+backward of the unit cannot avoid, run bare on
    tensors in the input's layout: BatchNorm forward and backward on ``W_ext Y`` ``(B, C, H, W)``,
    the residual add, the sums of ``x``'s gradients (one per use of ``x`` past the first: the
    residual, ``theta`` and ``phi`` (or ``X B^T``)) and of ``B``'s (``(B, N, L)``: its uses are
    ``V`` and ``Y`` in the paper's order; ``X B^T``, ``B 1`` and ``(W_ext Z) B`` reassociated)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    image = lambda: torch.randn(b, c, size, size, device=device).contiguous(memory_format=fmt)  # noqa: E731
    x, residual, upstream, grad_x, grad_x_more = (image() for _ in range(5))
    wy = image().requires_grad_()
    weight, bias = (torch.ones(c, device=device, requires_grad=True) for _ in range(2))
    projection = torch.randn(b, mid, size * size, device=device)
    if channels_last:
        projection = projection.mT.contiguous().mT                  # position-major, as the unit's
    grad_b = [projection.clone() for _ in range(2 if reassociated else 1)]

    def run():
        wy.grad = weight.grad = bias.grad = None
        F.batch_norm(wy, None, None, weight, bias, training=True, eps=1e-4).backward(upstream)
        torch.add(x, residual)
        grad_x.add_(upstream).add_(grad_x_more)                     # x: three uses, two sums
        for g in grad_b:
            g.add_(projection)
    return run


RATIO_CONFIGS = ("8,1024,14", "8,512,28", "1,512,96")     # B,C,size: Res4, Res3, segmentation


def ratio_section(args):
    """Ours against the plain unit and timm's blocks, in both layouts, interleaved per group."""
    rows = []
    for config in args.ratio_configs:
        b, c, size = (int(v) for v in config.split(","))
        mid, length = c // 4, size * size
        for layout in ("contiguous", "channels_last"):
            ours = build("GloRe", c, args.device)
            plain = PlainGloRe(c, mid).to(args.device).train()
            nn.init.ones_(plain.blocker.weight)
            ours.load_state_dict(convert_official_state_dict(plain.state_dict()))
            blocks = {"GloRe": ours, "plain GloRe": plain,
                      "NL": build("NL", c, args.device), "timm-NL": build("timm-NL-1/2", c, args.device),
                      "GC": build("GC", c, args.device), "timm-GC": build("timm-GC", c, args.device)}
            x, g = make_input((b, c, size, size), layout == "channels_last", args.device)
            with torch.no_grad():
                difference = (ours(x) - plain(x)).abs().max().item()
            cases = {name: fwd_bwd(block, x, g) for name, block in blocks.items()}
            reassociated = ours.reassociates(length)
            products = unit_products(b, c, mid, length, reassociated)
            cases["GloRe bare products"] = time_bare_gemms(products, args.device)
            cases["GloRe element-wise passes"] = unit_passes(
                b, c, mid, size, reassociated, layout == "channels_last", args.device)
            cases["GEMM"], square_flop = gemm_case(args.gemm_size, args.device)
            load0 = common.load()
            timing = common.time_interleaved(cases, repeats=args.repeats, warmup=2,
                                             min_seconds=0.2, device=args.device)
            load1 = common.load()
            ms = {name: t["median"] * 1e3 for name, t in timing.items()}
            gemm_gflops = square_flop / timing["GEMM"]["median"] / 1e9
            # the limit: the unit's products at the rate of the square GEMM of this group, plus the
            # element-wise passes it cannot avoid, timed bare
            products_ms = products_flop(fwd_bwd_gemms(products)) / gemm_gflops / 1e6
            limit_ms = products_ms + ms["GloRe element-wise passes"]
            row = {"config": f"B={b}, C={c}, mid={mid}, {size}x{size}", "layout": layout,
                   "ms": ms, "gemm_gflops": gemm_gflops,
                   "limit_ms": limit_ms, "products_at_gemm_rate_ms": products_ms,
                   "glore_over_plain": ms["GloRe"] / ms["plain GloRe"],
                   "glore_over_limit": ms["GloRe"] / limit_ms,
                   "glore_over_bare_and_passes": ms["GloRe"] / (ms["GloRe bare products"]
                                                                + ms["GloRe element-wise passes"]),
                   "glore_over_bare": ms["GloRe"] / ms["GloRe bare products"],
                   "nl_over_timm": ms["NL"] / ms["timm-NL"], "gc_over_timm": ms["GC"] / ms["timm-GC"],
                   "faults": {name: t["faults"] for name, t in timing.items()},
                   "max_abs_difference_from_plain": difference, "load": [load0, load1],
                   "repeats": args.repeats}
            rows.append(row)
            print(f"{row['config']}, {layout}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
                  + f"\n  GloRe/plain {row['glore_over_plain']:.2f}, GloRe/limit "
                  f"{row['glore_over_limit']:.2f} (limit {limit_ms:.1f} ms: products at the GEMM rate "
                  f"{products_ms:.1f} + element-wise passes {ms['GloRe element-wise passes']:.1f}), "
                  f"GloRe/(bare products + passes) {row['glore_over_bare_and_passes']:.2f}, NL/timm {row['nl_over_timm']:.2f}, GC/timm "
                  f"{row['gc_over_timm']:.2f}; GEMM {row['gemm_gflops']:.0f} GFLOP/s; load {load0} -> "
                  f"{load1}\n  page faults per call: " + ", ".join(
                      f"{k} {v:.0f}" for k, v in row["faults"].items()), flush=True)
    print_ratio_table(rows)
    return rows


def print_ratio_table(rows):
    configs = list(dict.fromkeys(r["config"] for r in rows))
    cell = {(r["config"], r["layout"]): r for r in rows}
    keys = ("glore_over_plain", "glore_over_limit", "glore_over_bare_and_passes", "nl_over_timm",
            "gc_over_timm")
    print("\n| size | ours / plain | ours / limit | ours / (bare products + passes) | NL / timm "
          "| GC / timm |  (each: contiguous / channels_last)")
    print("| --- | --- | --- | --- | --- | --- |")
    for config in configs:
        pair = [cell[(config, layout)] for layout in ("contiguous", "channels_last")]
        print(f"| {config} | " + " | ".join(" / ".join(f"{r[key]:.2f}" for r in pair) for key in keys)
              + " |")
    goals = {"glore_over_plain": 1.0, "glore_over_limit": 1.10, "nl_over_timm": 1.0, "gc_over_timm": 1.0}
    missed = [f"{r['config']} {r['layout']}: {key} {r[key]:.3f} > {goal:.2f}" for r in rows
              for key, goal in goals.items() if r[key] > goal]
    print("goals (ours / plain <= 1.0, ours / limit <= 1.10, NL and GC / timm <= 1.0): "
          + ("all met" if not missed else "missed: " + "; ".join(missed)))


def unit_section(args, gemm_gflops):
    b, c, mid, size = 8, 1024, 256, 14
    shape = (b, c, size, size)
    length = size * size
    macs = glore_macs(b, c, mid, length)        # the paper's order, which the unit takes at 14x14
    fwd_macs = sum(macs.values())
    device = args.device
    unit = build("GloRe", c, device)
    plain = PlainGloRe(c, mid).to(device).train()
    nn.init.ones_(plain.blocker.weight)
    unit.load_state_dict(convert_official_state_dict(plain.state_dict()))
    flops = count_flops("GloRe", shape)
    x, g = make_input(shape, device=device)
    x_cl = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    g_cl = g.contiguous(memory_format=torch.channels_last)

    cases = {
        "eager": fwd_bwd(unit, x, g),
        "eager channels_last": fwd_bwd(unit, x_cl, g_cl),
        "plain unit": fwd_bwd(plain, x, g),
        "bare GEMMs": time_bare_gemms(unit_products(b, c, mid, length, unit.reassociates(length)), device),
    }
    notes = {}
    if not args.no_compile:
        start = time.perf_counter()
        compiled = torch.compile(unit)
        try:
            fwd_bwd(compiled, x, g)()
            fwd_bwd(compiled, x_cl, g_cl)()
            cases["compiled"] = fwd_bwd(compiled, x, g)
            cases["compiled channels_last"] = fwd_bwd(compiled, x_cl, g_cl)
            notes["compile_s"] = time.perf_counter() - start
        except Exception as err:   # no compiler on the machine: report, do not fail the run
            notes["compile_error"] = repr(err)[:300]

    cases["GEMM"], gemm_flop = gemm_case(args.gemm_size, device)
    load0 = common.load()
    timing = common.time_interleaved(cases, repeats=args.repeats, warmup=2, min_seconds=0.2,
                                     device=device)
    load1 = common.load()
    gemm_gflops = gemm_flop / timing.pop("GEMM")["median"] / 1e9
    # bf16 autocast against fp32 eager and a bf16 GEMM, in a group of its own; its fraction is of
    # the bf16 GEMM. Without native bf16 a bf16 GEMM runs at about 1 GFLOP/s: a smaller one there.
    bf16_size = args.gemm_size if common.native_bf16(device) else min(args.gemm_size, 512)
    bf16_gemm, bf16_flop = gemm_case(bf16_size, device, torch.bfloat16)
    # fp16 autocast in the same group, against the same bf16 GEMM (PyTorch runs it on the CPU;
    # docs/benchmarks.md has what it costs there)
    low = {"bf16 autocast": fwd_bwd(unit, x, g, autocast=torch.bfloat16),
           "fp16 autocast": fwd_bwd(unit, x, g, autocast=torch.float16)}
    bf16 = common.time_interleaved({"fp32": cases["eager"], **low, "GEMM": bf16_gemm},
                                   repeats=min(args.repeats, 3), warmup=1, device=device)
    bf16_gemm_gflops = bf16_flop / bf16["GEMM"]["median"] / 1e9
    for name in low:
        timing[name] = dict(bf16[name], fp32_same_group=bf16["fp32"]["median"],
                            gemm_gflops=bf16_gemm_gflops)
    print(f"GEMM {args.gemm_size}^3 in this group: {gemm_gflops:.1f} GFLOP/s fp32, "
          f"{bf16_gemm_gflops:.1f} GFLOP/s bf16 ({bf16_size}^3, the reference of the bf16 case)")
    eager = timing["eager"]["median"]
    rows = []
    for name, t in timing.items():
        rows.append({"case": name, "ms": t["median"] * 1e3, "min_ms": t["min"] * 1e3,
                     "gflops": flops / t["median"] / 1e9,
                     "frac_gemm": flops / t["median"] / 1e9 / t.get("gemm_gflops", gemm_gflops),
                     "x_eager": t["median"] / t.get("fp32_same_group", eager)})
    print(common.fmt_table(rows, ["case", "ms", "min_ms", "gflops", "frac_gemm", "x_eager"]))
    print(f"load {load0} -> {load1}")
    if "compiled" in timing:
        # the goal compares like with like: each layout compiled against the same layout in eager
        notes["compiled_over_eager"] = {
            layout: timing["compiled" + suffix]["median"] / timing["eager" + suffix]["median"]
            for layout, suffix in (("contiguous", ""), ("channels_last", " channels_last"))}
        print("compiled / eager, same layout: " + ", ".join(
            f"{layout} {ratio:.3f}" for layout, ratio in notes["compiled_over_eager"].items()))

    # accuracy of bf16 autocast: output delta (y - x) and input gradient, relative to fp32
    unit.zero_grad(set_to_none=True)
    xa = x.detach().requires_grad_()
    y32 = unit(xa)
    y32.backward(g)
    gx32 = xa.grad
    rel = lambda a, r: ((a.float() - r).norm() / r.norm()).item()  # noqa: E731
    accuracy = {}
    for label, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        xb = x.detach().requires_grad_()
        with torch.autocast(xb.device.type, dtype=dtype):
            y16 = unit(xb)
        y16.float().backward(g)
        accuracy[f"{label}_rel_err_delta"] = rel(y16.float() - x, y32 - x)
        accuracy[f"{label}_rel_err_grad_input"] = rel(xb.grad, gx32)
        print(f"{label} autocast relative error: output delta {accuracy[f'{label}_rel_err_delta']:.2e}, "
              f"input gradient {accuracy[f'{label}_rel_err_grad_input']:.2e}")

    memory = unit_memory(unit, plain, x, x_cl, g, g_cl, b, c, mid, length, device)
    summary = {
        "config": dict(batch=b, channels=c, mid=mid, size=f"{size}x{size}"),
        "fwd_macs": fwd_macs, "fwd_macs_by_step": macs, "flop_counter_fwd_bwd_flops": flops,
        "analytic_fwd_bwd_flops": 2 * 3 * fwd_macs,
        "rows": rows, "load": [load0, load1], "accuracy": accuracy, "memory": memory,
        "gemm_gflops": gemm_gflops, **notes,
    }
    print(f"fwd MACs {fwd_macs / 1e9:.3f} G (analytic), fwd+bwd FLOPs counted {flops / 1e9:.2f} G; "
          f"eager reaches {rows[0]['frac_gemm']:.0%} of the GEMM throughput")
    return summary


def unit_memory(unit, plain, x, x_cl, g, g_cl, b, c, mid, length, device="cpu"):
    """Peak of the allocations of a forward+backward, against the memory the pass cannot avoid.

    Counted as necessary: the input x and the upstream gradient (they exist before the call), the
    output, the input gradient, the parameter gradients, and the activations backward needs: the
    operands of every product that has a gradient to compute (projection B, phi(x), V, ReLU output,
    Z, Y = Z B) and the BatchNorm input. Measured: x and the upstream gradient plus the peak of what
    the call allocates (``_common.peak_memory``), the output kept alive to the end.
    """
    item = 4
    s, n = 2 * mid, mid
    act = {"x": b * c * length, "upstream_grad": b * c * length, "output": b * c * length,
           "B": b * n * length, "phi_x": b * s * length, "V": b * s * n, "relu_out": b * s * n,
           "Z": b * s * n, "Y": b * s * length, "bn_input": b * c * length, "grad_x": b * c * length,
           "param_grads": sum(p.numel() for p in unit.parameters())}
    necessary = item * sum(act.values())
    result = {"necessary_mb": common.mb(necessary),
              "necessary_parts_mb": {k: common.mb(v * item) for k, v in act.items()}}
    for name, (xi, gi, fn) in {"eager": (x, g, unit), "eager channels_last": (x_cl, g_cl, unit),
                               "plain unit": (x, g, plain)}.items():
        kept = []

        def step(xi=xi, gi=gi, fn=fn):
            y = fn(xi)
            y.backward(gi)
            kept.append(y)                     # the caller holds the output: count it to the end

        def reset(xi=xi):
            xi.grad = None
            unit.zero_grad(set_to_none=True)
            plain.zero_grad(set_to_none=True)
        step.reset = reset
        peak = common.peak_memory(step, device) + 2 * item * b * c * length
        result[name] = {"peak_mb": common.mb(peak), "x_necessary": peak / necessary}
        print(f"peak memory {name}: {common.mb(peak)} MiB = {peak / necessary:.2f} x the necessary "
              f"{common.mb(necessary)} MiB")
    return result


def plot(rows, path, where: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    names = [n for n in BLOCK_NAMES if any(r["block"] == n for r in rows)]
    for name in names:
        pts = sorted((r["positions"], r["ms"]) for r in rows if r["block"] == name)
        ax.plot([p for p, _ in pts], [t for _, t in pts], marker="o", ms=3, label=name,
                lw=2.2 if name == "GloRe" else 1.2)
    xs = sorted({r["positions"] for r in rows})
    glore = {r["positions"]: r["ms"] for r in rows if r["block"] == "GloRe"}
    if glore:
        x0 = xs[0]
        for slope, style in ((1, ":"), (2, "--")):
            ax.plot(xs, [glore[x0] * (x / x0) ** slope for x in xs], "k" + style, lw=0.8,
                    label=f"slope {slope}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("positions L = H x W (14x14 ... 128x128)")
    ax.set_ylabel("forward+backward time (ms)")
    c = rows[0]["channels"]
    ax.set_title(f"C={c}, batch {rows[0]['batch']}, {where}")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(True, which="both", lw=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grid, fewer repeats")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--sizes", type=int, nargs="*", default=None,
                        help="square sizes of the positions sweep (default 14 28 32 56 64 96 128)")
    parser.add_argument("--channels", type=int, nargs="*", default=None,
                        help="channels of the channel sweep (default 256 512 1024 2048)")
    parser.add_argument("--gemm-size", type=int, default=2048,
                        help="square fp32 GEMM timed in every group as the throughput reference")
    parser.add_argument("--nl-max", type=int, default=96,
                        help="largest size at which the non-local blocks run (128 costs ~1 min a run)")
    parser.add_argument("--blocks", nargs="*", default=list(BLOCK_NAMES), choices=BLOCK_NAMES)
    parser.add_argument("--sections", nargs="*", default=["ratios"],
                        choices=["ratios", "positions", "channels", "unit"])
    parser.add_argument("--ratio-configs", nargs="*", default=list(RATIO_CONFIGS),
                        help="B,C,size of the ratios section (mid = C/4)")
    parser.add_argument("--channels-last", action="store_true",
                        help="channels_last input in the positions and channels grids")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile in 'unit'")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    parser.add_argument("--bf16", action="store_true",
                        help="run the positions and channels grids under bf16 autocast, against a "
                             "bf16 GEMM")
    parser.add_argument("--out", default=None, help="output folder (default results/benchmarks)")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="glibc malloc keeps freed memory for reuse (no page faults for temporaries)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time, not the wall clock (a shared host; "
                             "with --threads 1)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or [14, 32, 64, 96]
        args.channels = args.channels or [256, 1024]
        args.repeats = args.repeats or 3
        args.nl_max = min(args.nl_max, 96)
    args.sizes = args.sizes or [14, 28, 32, 56, 64, 96, 128]
    args.channels = args.channels or [256, 512, 1024, 2048]
    args.repeats = args.repeats or 7
    warnings.filterwarnings("ignore", category=UserWarning)

    started = time.perf_counter()
    env = common.setup(args.threads, device=args.device, keep_freed=args.keep_freed_memory,
                       cpu_time=args.cpu_time)
    print(f"{env}\nload {common.load()}")
    gemm = common.gemm_throughput(repeats=args.repeats, device=args.device)
    gemm_gflops = max(gemm.values())
    print("fp32 GEMM GFLOP/s:", {k: round(v, 1) for k, v in gemm.items()},
          f"-> baseline {gemm_gflops:.1f}\n")
    out = {"env": env, "args": vars(args), "gemm_gflops": gemm, "gemm_baseline": gemm_gflops}

    if "ratios" in args.sections:
        print("== ratios: ours against the plain unit and timm's blocks, both layouts ==")
        out["ratios"] = ratio_section(args)
    if "positions" in args.sections:
        print("== positions: C=512, batch 1 ==")
        out["positions"] = run_grid([(s, 512, 1) for s in args.sizes], args.blocks, args,
                                    gemm_gflops, "positions")
        summarize_positions(out["positions"], out)
        out_dir = Path(args.out or common.RESULTS)
        out_dir.mkdir(parents=True, exist_ok=True)
        where = (env.get("gpu") or f"{torch.get_num_threads()} CPU threads")
        plot(out["positions"], out_dir / "blocks_positions.png",
             f"{'bf16 autocast' if args.bf16 else 'fp32'}, {where}")
    if "channels" in args.sections:
        print("== channels: 14x14, batch 8 ==")
        out["channels"] = run_grid([(14, c, 8) for c in args.channels], args.blocks, args,
                                   gemm_gflops, "channels")
    if "unit" in args.sections:
        print("== the GloRe unit of the goal: C=1024, mid=256, 14x14, batch 8 ==")
        out["unit"] = unit_section(args, gemm_gflops)
    out["gemm_after"] = common.gemm_throughput(repeats=args.repeats, device=args.device)
    print("fp32 GEMM GFLOP/s at the end:", {k: round(v, 1) for k, v in out["gemm_after"].items()})
    out["wall_s"] = time.perf_counter() - started
    out["load_end"] = common.load()
    path = common.write_json("blocks", out, args.out)
    print(f"wrote {path} ({out['wall_s']:.0f} s)")


def summarize_positions(rows, out):
    ms = {(r["block"], r["positions"]): r["ms"] for r in rows}
    summary = {}
    if ("GloRe", 128 * 128) in ms and ("GloRe", 32 * 32) in ms:
        summary["glore_128_over_32"] = ms[("GloRe", 128 * 128)] / ms[("GloRe", 32 * 32)]
    if ("NL", 128 * 128) in ms and ("NL", 32 * 32) in ms:
        summary["nl_128_over_32"] = ms[("NL", 128 * 128)] / ms[("NL", 32 * 32)]
    for size in (64, 96, 128):
        for other in ("NL", "GloRe-paper"):
            if (other, size * size) in ms and ("GloRe", size * size) in ms:
                key = f"{other.lower().replace('-', '_')}_over_glore_{size}"
                summary[key] = ms[(other, size * size)] / ms[("GloRe", size * size)]
    # log-log slope of time against positions over the sizes >= 32x32
    for name in ("GloRe", "NL"):
        pts = sorted((p, t) for (n, p), t in ms.items() if n == name and p >= 32 * 32)
        if len(pts) >= 2:
            summary[f"{name}_loglog_slope"] = (math.log(pts[-1][1] / pts[0][1])
                                               / math.log(pts[-1][0] / pts[0][0]))
    print("positions summary:", {k: round(v, 2) for k, v in summary.items()}, "\n")
    out["positions_summary"] = summary


if __name__ == "__main__":
    main()
