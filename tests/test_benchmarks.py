"""The benchmark scripts run end to end on a tiny grid and write what docs/benchmarks.md reads.

Nothing here is timed: the figures themselves come from the full runs (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import blocks
        import compare
        import models
        import pointwise
        yield blocks, models, compare, pointwise
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("bf16, names", [(False, ["GloRe", "NL", "NL-sdpa", "SE", "timm-GC"]),
                                         (True, ["GloRe", "SE"])], ids=["fp32", "bf16"])
def test_blocks_grid_writes_rows_and_plot(scripts, tmp_path, bf16, names):
    blocks = scripts[0]
    blocks.main(["--threads", "1", "--sections", "positions", "channels", "--sizes", "32", "36",
                 "--channels", "32", "--blocks", *names, "--repeats", "1", "--gemm-size", "64",
                 "--out", str(tmp_path)] + (["--bf16"] if bf16 else []))
    result = json.loads((tmp_path / "blocks.json").read_text())
    assert result["env"]["device"] == "cpu"
    rows = result["positions"] + result["channels"]
    assert {r["block"] for r in rows} == set(names)
    assert len(rows) == len(names) * 3               # two sizes, one channel count
    for r in rows:
        assert r["ms"] > 0 and r["peak_mb"] > 0 and r["gemm_gflops"] > 0
    glore = {r["size"]: r for r in result["positions"] if r["block"] == "GloRe"}
    assert glore["36x36"]["gflop"] > glore["32x32"]["gflop"]          # counted, grows with positions
    assert "GloRe_loglog_slope" in result["positions_summary"]
    assert (tmp_path / "blocks_positions.png").stat().st_size > 0


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_fused_attention_non_local_computes_the_non_local_block(scripts, channels_last):
    blocks = scripts[0]
    torch.manual_seed(0)
    reference, fused = blocks.build("NL", 16), blocks.build("NL-sdpa", 16)
    fused.load_state_dict(reference.state_dict())
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    outputs, grads = [], []
    for block in (reference.double(), fused.double()):
        xi = x.clone().requires_grad_()
        out = block(xi)
        out.backward(torch.cos(torch.arange(out.numel(), dtype=out.dtype)).view_as(out))
        outputs.append(out)
        grads.append([xi.grad] + [p.grad for p in block.parameters()])
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-10, atol=1e-10)
    assert outputs[1].is_contiguous(memory_format=torch.channels_last) == channels_last
    for got, expected in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_blocks_ratios_section(scripts, tmp_path):
    blocks = scripts[0]
    blocks.main(["--threads", "1", "--ratio-configs", "2,32,4", "1,16,5", "--repeats", "1",
                 "--gemm-size", "64", "--out", str(tmp_path)])      # the default section: ratios
    result = json.loads((tmp_path / "blocks.json").read_text())
    rows = result["ratios"]
    assert [(r["config"], r["layout"]) for r in rows] == [
        (config, layout) for config in ("B=2, C=32, mid=8, 4x4", "B=1, C=16, mid=4, 5x5")
        for layout in ("contiguous", "channels_last")]
    for r in rows:
        assert set(r["ms"]) == {"GloRe", "plain GloRe", "GloRe bare products", "GloRe element-wise passes",
                                "NL", "timm-NL", "GC", "timm-GC", "GEMM"}
        assert all(v > 0 for v in r["ms"].values())
        assert r["glore_over_plain"] == r["ms"]["GloRe"] / r["ms"]["plain GloRe"]
        # the limit: the unit's products at the group's GEMM rate, plus its element-wise passes
        assert r["limit_ms"] == r["products_at_gemm_rate_ms"] + r["ms"]["GloRe element-wise passes"]
        assert r["glore_over_limit"] == r["ms"]["GloRe"] / r["limit_ms"]
        assert r["max_abs_difference_from_plain"] < 1e-4       # the same unit, the same weights
        assert set(r["faults"]) == set(r["ms"]) and all(v >= 0 for v in r["faults"].values())
    assert result["env"]["keep_freed_memory"] is False
    assert result["env"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(result["env"]["cpu_flags"], list) and isinstance(result["env"]["native_bf16"], bool)


@pytest.mark.parametrize("reassociated", [False, True])
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_unit_passes_run_in_the_layout_of_the_input(scripts, reassociated, channels_last):
    blocks = scripts[0]
    passes = blocks.unit_passes(2, 8, 2, 3, reassociated, channels_last)
    names = passes.__code__.co_freevars
    cells = dict(zip(names, (c.cell_contents for c in passes.__closure__)))
    passes()
    assert cells["wy"].grad.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert all(g.mT.is_contiguous() == channels_last for g in cells["grad_b"])
    assert len(cells["grad_b"]) == (2 if reassociated else 1)
    # forward products and the two of each one's backward
    products = blocks.unit_products(2, 8, 2, 9, reassociated)
    assert blocks.products_flop(blocks.fwd_bwd_gemms(products)) == 3 * blocks.products_flop(products)


_FAULTS_OF_A_REUSED_BLOCK = """
import sys, torch
sys.path.insert(0, {benchmarks!r})
import _common as common
if {keep}:
    common.keep_freed_memory()
counts = []
for _ in range(16):
    before = common.minor_faults()
    block = torch.empty(48 << 18)           # 48 MiB, over glibc's largest default mmap threshold
    block.fill_(1.0)
    del block
    counts.append(common.minor_faults() - before)
print(max(counts[-4:]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_keep_freed_memory_stops_refaulting_a_freed_block():
    def faults(keep):       # of the last four of 16 allocations of one block size
        code = _FAULTS_OF_A_REUSED_BLOCK.format(benchmarks=str(BENCHMARKS), keep=keep)
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return int(run.stdout.split()[-1])
    pages = (48 << 20) // 4096
    assert faults(False) > pages // 2          # glibc maps the block afresh on every allocation
    assert faults(True) < pages // 100         # the heap keeps freed blocks, and reuses one


def test_plain_glore_is_the_unit_of_the_authors_release(scripts):
    from glore.nn import GloRe, convert_official_state_dict
    from test_nn_reference import randomize_

    plain = randomize_(scripts[0].PlainGloRe(12, 3).double()).eval()
    ours = GloRe(12, mid=3).double().eval()
    ours.load_state_dict(convert_official_state_dict(plain.state_dict()))
    x = torch.randn(2, 12, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(plain(x), ours(x))


def test_blocks_rejects_a_missing_gpu(scripts, tmp_path, monkeypatch):
    blocks = scripts[0]
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA device"):
        blocks.main(["--threads", "1", "--device", "cuda", "--out", str(tmp_path)])


def test_models_throughput_rows(scripts, tmp_path):
    models = scripts[1]
    models.main(["--threads", "1", "--batch", "2", "--size", "32", "--repeats", "1",
                 "--out", str(tmp_path)])
    result = json.loads((tmp_path / "models.json").read_text())
    rows = result["rows"]
    assert {(r["mode"], r["model"]) for r in rows} == {
        (mode, name) for mode in ("train", "inference") for name in models.VARIANTS}
    base = [r for r in rows if r["model"] == "ResNet-50"]
    assert all(r["time_ratio"] == 1 and r["gmacs_ratio"] == 1 for r in base)
    glore = next(r for r in rows if r["model"] == "+ GloRe (0, 3)")
    assert glore["gmacs_ratio"] > 1 and glore["params_m"] > base[0]["params_m"]


def test_models_bf16_column(scripts, tmp_path, capsys):
    models = scripts[1]
    models.main(["--threads", "1", "--batch", "2", "--size", "32", "--repeats", "1", "--bf16",
                 "--variants", "ResNet-50", "+ GloRe (0, 3)", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "models.json").read_text())
    rows = {(r["mode"], r["model"], r["precision"]): r for r in result["rows"]}
    assert set(rows) == {(mode, name, precision) for mode in ("train", "inference")
                         for name in ("ResNet-50", "+ GloRe (0, 3)") for precision in ("fp32", "bf16")}
    for (mode, name, precision), r in rows.items():
        if precision == "fp32":
            assert r["bf16_speedup"] is None
        else:
            assert r["bf16_speedup"] == rows[mode, name, "fp32"]["ms"] / r["ms"]
    assert result["env"]["cpu"] and result["env"]["cpu_capability"]
    lacks = "lacks native bf16" in capsys.readouterr().out
    assert lacks is not result["env"]["native_bf16"]


def test_models_layouts_run_side_by_side(scripts, tmp_path):
    models = scripts[1]
    variants = ["ResNet-50", "+ GloRe (0, 3)"]
    models.main(["--threads", "1", "--batch", "2", "--size", "32", "--repeats", "1", "--variants",
                 *variants, "--layouts", "contiguous", "channels_last", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "models.json").read_text())["rows"]
    assert {(r["mode"], r["model"], r["layout"]) for r in rows} == {
        (mode, name, layout) for mode in ("train", "inference") for name in variants
        for layout in ("contiguous", "channels_last")}
    assert all(r["x_contiguous"] == 1 for r in rows if r["layout"] == "contiguous")
    assert all(r["x_contiguous"] > 0 for r in rows)
    assert all(r["time_ratio"] == 1 for r in rows if r["model"] == "ResNet-50")


def test_models_compile_adds_a_compiled_run_of_the_chosen_variants(scripts, tmp_path, monkeypatch):
    models = scripts[1]
    compiled = []          # compiling two ResNet-50s takes minutes: record the calls instead
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *args, **kwargs: compiled.append(self))
    variants = ["ResNet-50", "+ GloRe (0, 3)"]
    models.main(["--threads", "1", "--batch", "2", "--size", "32", "--repeats", "1", "--compile",
                 "--variants", *variants, "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "models.json").read_text())["rows"]
    assert {(r["mode"], r["model"], r["run"]) for r in rows} == {
        (mode, name, run) for mode in ("train", "inference") for name in variants
        for run in ("eager", "compiled")}
    assert len(compiled) == 2 and all(isinstance(m, torch.nn.Module) for m in compiled)
    assert all(r["x_eager"] == 1 for r in rows if r["run"] == "eager")
    assert all(r["time_ratio"] == 1 for r in rows if r["model"] == "ResNet-50")


def _in_git_checkout() -> bool:
    probe = subprocess.run(["git", "rev-parse", "HEAD"], cwd=BENCHMARKS, capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _in_git_checkout(), reason="compare.py reads an earlier revision from git")
def test_compare_runs_a_revision_beside_this_checkout(scripts, capsys):
    compare = scripts[2]
    compare.main(["HEAD", "--batch", "2", "--channels", "32", "--size", "4", "--repeats", "1",
                  "--gemm-size", "64", "--threads", "1"])
    out = capsys.readouterr().out
    for unit in ("this checkout", "HEAD"):
        for layout in ("contiguous", "channels_last"):
            assert re.search(rf"^ *{unit} +eager +{layout} +[0-9.]+ +[0-9.]+", out, re.M), out
    # HEAD's unit computes the same function as the checkout's, on the same weights
    differences = [float(d) for d in re.findall(r"largest difference from this checkout eager (\S+)", out)]
    assert len(differences) == 4 and max(differences) < 1e-4


@pytest.mark.slow
@pytest.mark.skipif(not _in_git_checkout(), reason="compare.py reads an earlier revision from git")
def test_compare_times_the_compiled_units_too(scripts, capsys):
    compare = scripts[2]
    compare.main(["HEAD", "--batch", "2", "--channels", "32", "--size", "4", "--repeats", "1",
                  "--gemm-size", "64", "--threads", "1", "--compile"])
    out = capsys.readouterr().out
    rows = re.findall(r"^ *(this checkout|HEAD) +(eager|compiled) +(contiguous|channels_last) +[0-9.]+",
                      out, re.M)
    assert len(set(rows)) == 8, out
    differences = [float(d) for d in re.findall(r"largest difference from this checkout eager (\S+)", out)]
    assert len(differences) == 8 and max(differences) < 1e-4


def test_compare_names_an_unknown_revision(scripts):
    compare = scripts[2]
    with pytest.raises(SystemExit, match="no-such-revision"):
        compare.main(["no-such-revision", "--threads", "1"])


def test_pointwise_ways_agree_and_are_timed(scripts, capsys):
    pointwise = scripts[3]
    pointwise.main(["--shapes", "2,16,9,4", "1,8,5,1", "--repeats", "1", "--threads", "1"])
    out = capsys.readouterr().out
    for shape in ("2,16,9,4", "1,8,5,1"):
        for layout in ("channel-major", "position-major"):
            for way in ("Pointwise", "convolution", "product"):
                assert re.search(rf"{shape} +{layout} +{way} +[0-9.]+", out), out
        assert re.search(rf"{shape} +position-major +convolution \(L, 1\) +[0-9.]+", out), out


def test_pointwise_names_a_bad_shape(scripts):
    pointwise = scripts[3]
    with pytest.raises(SystemExit, match=r"expected B,C_in,L,C_out .* got '8,1024'"):
        pointwise.main(["--shapes", "8,1024", "--threads", "1"])


def test_inference_ways_are_timed_side_by_side(tmp_path):
    """benchmarks/inference.py on the seg-digits segmenter: each way's row, ratios to eager fp32."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import inference
    finally:
        sys.path.remove(str(BENCHMARKS))
    inference.main(["--models", "seg-digits", "--modes", "eager", "bf16", "--batch", "2", "--size", "32",
                    "--repeats", "1", "--threads", "1", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "inference.json").read_text())
    assert result["env"]["cpu"] and "native_bf16" in result["env"]
    rows = {r["mode"]: r for r in result["rows"]}
    assert set(rows) == {"eager", "bf16"} and rows["eager"]["x_eager"] == 1.0
    assert all(r["images_per_s"] > 0 and r["batch"] == 2 and r["size"] == 32 for r in rows.values())


def test_cpu_time_clock_leaves_out_the_time_off_the_cpu(scripts):
    sys.path.insert(0, str(BENCHMARKS))
    import _common as common
    sys.path.remove(str(BENCHMARKS))
    threads = torch.get_num_threads()
    try:
        medians = {}
        for cpu_time in (True, False):
            env = common.setup(threads, cpu_time=cpu_time)
            assert env["clock"] == ("process CPU time" if cpu_time else "wall")
            timing = common.time_interleaved({"sleep": lambda: time.sleep(0.05)}, repeats=2, warmup=1)
            medians[cpu_time] = timing["sleep"]["median"]
        assert medians[True] < 0.01 <= 0.05 <= medians[False]      # asleep, the process uses no CPU
    finally:
        common.setup(threads)
