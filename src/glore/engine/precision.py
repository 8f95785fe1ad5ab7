"""What the CPU offers for reduced precision, and the one warning a run gets where bf16 is emulated.

bf16 matrix products run in hardware on CPUs with the AVX512-BF16 instructions (or AMX tiles): a
training step under ``trainer.precision=bf16-mixed`` is then faster than in fp32. Without them (AVX2
CPUs, AVX-512 ones before Cooper Lake and Zen 4) PyTorch emulates bf16 and the same step runs many
times slower than fp32 (docs/benchmarks.md, docs/training.md).
"""

from __future__ import annotations

import platform
import warnings

import torch

# the /proc/cpuinfo flags that decide how reduced-precision products run
PRECISION_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_description() -> dict:
    """The CPU's model name, PyTorch's CPU capability and the flags of :data:`PRECISION_FLAGS` it has."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())      # the first processor's
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    return {"cpu": name, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_flags": [flag for flag in PRECISION_FLAGS if flag in flags],
            "native_bf16": native_bf16(flags)}


def native_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU multiplies bf16 in hardware: PyTorch's own probes (AVX512-BF16, AMX), or the
    cpuinfo flags ``flags`` (read from /proc/cpuinfo when not given)."""
    if any(bool(getattr(torch.cpu, probe, lambda: False)())
           for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")):
        return True
    if flags is None:
        flags = set(cpu_description()["cpu_flags"])
    return any(flag in flags for flag in BF16_FLAGS)


def warn_if_bf16_is_emulated(precision: str | None, on_cpu: bool) -> bool:
    """Warn, once, where a run on the CPU computes in bf16 that the CPU does not have; return whether
    it warned."""
    if not on_cpu or not str(precision).startswith("bf16"):
        return False
    cpu = cpu_description()
    if cpu["native_bf16"]:
        return False
    warnings.warn(
        f"trainer.precision={precision} on a CPU without native bf16 ({cpu['cpu']}, PyTorch capability "
        f"{cpu['cpu_capability']}, no {' / '.join(BF16_FLAGS)} flag): bf16 products are emulated and a "
        "training step runs several times slower than with trainer.precision=32-true", stacklevel=2)
    return True
