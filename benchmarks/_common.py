"""Timing and memory helpers shared by the benchmarks (not part of the library).

Conventions, used by every script here:

- **Time**: every case is warmed up, then the cases are run *interleaved* (round-robin: case 1, case 2,
  ..., case 1, ...) so that they all see the same background load; each case reports the median (and
  the minimum) of its repeats. Ratios between blocks are ratios of medians taken in the same run.
- **Throughput baseline**: the fp32 matrix multiply of the same machine, timed in the same run and with
  the same thread count (`gemm_throughput`). GFLOP/s counts 2 FLOPs per multiply-add.
- **Peak memory** (`peak_memory`): bytes of tensor storage allocated by the CPU allocator while the
  measured function runs, from the profiler's allocation/free events (``profile_memory=True``): the
  running sum of allocations minus frees, maximum over time. Tensors that exist before the call (the
  input, the upstream gradient, the parameters) are not in it; add them to get the process's peak.
- **Load**: ``os.getloadavg()`` before and after every measurement, printed and written to the JSON.
- **Clock**: the wall clock (``time.perf_counter``), or with ``--cpu-time`` (``setup(cpu_time=True)``)
  the process's CPU time (``time.process_time``). On a host shared with other jobs a wall-clock time
  includes the time the others held the CPU, and with several threads every barrier waits for the
  thread that was preempted; with one thread (``--threads 1``) the CPU time counts the case's own work.
  (With several threads it also counts the threads' spin-waiting at barriers.)
- **Page faults**: the median count of minor page faults per call of each case (``getrusage``). glibc's
  ``malloc`` gives large freed blocks back to the system and faults them in again on the next step; on
  a virtual machine a fault can cost microseconds, so a step's temporaries can cost more to map than to
  compute. ``--keep-freed-memory`` (``keep_freed_memory``) sets glibc's thresholds so that freed memory
  is reused, as ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` do for a whole program.
- **GPU** (``--device cuda``): the clock is read after ``torch.cuda.synchronize()``; peak memory is
  ``torch.cuda.max_memory_allocated`` during the call minus what was allocated before it.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from glore.engine import precision

RESULTS = Path(__file__).resolve().parents[1] / "results" / "benchmarks"


_clock = time.perf_counter


def setup(threads: int = 2, seed: int = 0, device: str = "cpu", keep_freed: bool = False,
          cpu_time: bool = False) -> dict:
    """Fix the thread count and seed, with ``keep_freed`` the allocator (:func:`keep_freed_memory`), with
    ``cpu_time`` the clock (the process's CPU time); return a description of the machine for the JSON."""
    global _clock
    if cpu_time and torch.device(device).type != "cpu":
        raise SystemExit("--cpu-time times CPU work; it cannot time a GPU")
    _clock = time.process_time if cpu_time else time.perf_counter
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    if keep_freed:
        keep_freed_memory()
    gpu = {}
    if torch.device(device).type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {device}: no CUDA device is available on this machine")
        gpu = {"gpu": torch.cuda.get_device_name(device), "cuda": torch.version.cuda}
    # the host: CPU model, PyTorch's capability, the cpuinfo flags of reduced precision, native bf16
    return {
        "torch": torch.__version__, "python": sys.version.split()[0], **precision.cpu_description(),
        "threads": torch.get_num_threads(), "logical_cpus": os.cpu_count(),
        "device": str(device), "keep_freed_memory": keep_freed,
        "clock": "process CPU time" if cpu_time else "wall", **gpu,
    }


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether bf16 matrix products run in hardware: a GPU, or a CPU with AVX512-BF16 or AMX."""
    return torch.device(device).type != "cpu" or precision.native_bf16()


def synchronize(device: str | torch.device = "cpu") -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def load() -> list[float]:
    """1, 5 and 15 minute load averages, rounded."""
    return [round(v, 2) for v in os.getloadavg()]


def time_interleaved(cases: dict[str, Callable[[], object]], *, repeats: int = 7, warmup: int = 2,
                     min_seconds: float = 0.0, device: str = "cpu") -> dict[str, dict]:
    """Time every case ``repeats`` times, round-robin, after ``warmup`` calls each.

    A case that takes less than ``min_seconds`` is run several times per sample (the sample is the
    mean over those runs). Returns ``{name: {"median": s, "min": s, "samples": [...]}}``.
    """
    inner = {}
    for name, fn in cases.items():
        start = _clock()
        for _ in range(max(warmup, 1)):
            fn()
        synchronize(device)
        once = (_clock() - start) / max(warmup, 1)
        inner[name] = max(1, int(min_seconds / once)) if once > 0 else 1
    samples: dict[str, list[float]] = {name: [] for name in cases}
    faults: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            faults0, start = minor_faults(), _clock()
            for _ in range(inner[name]):
                fn()
            synchronize(device)
            samples[name].append((_clock() - start) / inner[name])
            faults[name].append((minor_faults() - faults0) / inner[name])
    return {name: {"median": statistics.median(s), "min": min(s), "samples": s,
                   "faults": statistics.median(faults[name])}
            for name, s in samples.items()}


def minor_faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def keep_freed_memory() -> None:
    """Make glibc's ``malloc`` keep and reuse freed memory instead of returning large blocks to the
    system (fixed mmap and trim thresholds of 1 GiB: ``mallopt(M_MMAP_THRESHOLD)``,
    ``mallopt(M_TRIM_THRESHOLD)``). For the process, from now on; exits where glibc is missing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError as error:
        raise SystemExit(f"--keep-freed-memory needs glibc (libc.so.6): {error}") from None
    m_trim_threshold, m_mmap_threshold = -1, -3
    if not (libc.mallopt(m_trim_threshold, 1 << 30) and libc.mallopt(m_mmap_threshold, 1 << 30)):
        raise SystemExit("--keep-freed-memory: glibc's mallopt refused the thresholds")


def peak_memory(fn: Callable[[], object], device: str = "cpu") -> int:
    """Peak bytes of tensor storage allocated (and not yet freed) while ``fn()`` runs.

    ``fn.reset()``, if ``fn`` has it, runs first, outside the measured window: it drops what the
    previous call left (gradients), whose frees would otherwise be counted against this call's
    allocations and hide part of its peak.
    """
    from torch.profiler import ProfilerActivity, profile

    if hasattr(fn, "reset"):
        fn.reset()

    if torch.device(device).type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and _is_cpu(e))
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def _is_cpu(event) -> bool:
    device = event.device_type()
    return getattr(device, "name", str(device)).upper().endswith("CPU") or device == 0


def gemm_throughput(shapes: list[tuple[int, int, int]] | None = None, *, repeats: int = 7,
                    dtype: torch.dtype = torch.float32, device: str = "cpu") -> dict[str, float]:
    """GFLOP/s of ``(m, k) @ (k, n)`` products (2 FLOPs per multiply-add), median of ``repeats``."""
    shapes = shapes or [(1024, 1024, 1024), (2048, 2048, 2048)]
    cases, flops = {}, {}
    for m, k, n in shapes:
        a, b = (torch.randn(m, k, dtype=dtype, device=device),
                torch.randn(k, n, dtype=dtype, device=device))
        out = torch.empty(m, n, dtype=dtype, device=device)
        name = f"{m}x{k}x{n}"
        cases[name] = lambda a=a, b=b, out=out: torch.mm(a, b, out=out)
        flops[name] = 2.0 * m * k * n
    timing = time_interleaved(cases, repeats=repeats, warmup=2, min_seconds=0.05, device=device)
    return {name: flops[name] / t["median"] / 1e9 for name, t in timing.items()}


def mb(nbytes: float) -> float:
    return round(nbytes / 2**20, 2)


def write_json(name: str, payload: dict, out_dir: Path | None = None) -> Path:
    out_dir = Path(out_dir or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=float))
    return path


def fmt_table(rows: list[dict], columns: list[str]) -> str:
    """A small fixed-width text table."""
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
