"""Reduced precision on the CPU: what the CPU offers, and the one warning of a run where bf16 is emulated."""

from __future__ import annotations

import warnings

import pytest
import torch

from glore.engine import precision, runner
from glore.engine.config import load_config


def test_cpu_description_names_the_cpu_its_capability_and_flags():
    cpu = precision.cpu_description()
    assert cpu["cpu"] and cpu["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert set(cpu["cpu_flags"]) <= set(precision.PRECISION_FLAGS)
    assert cpu["native_bf16"] == precision.native_bf16()


@pytest.mark.parametrize("flags, native", [({"avx2", "fma"}, False), ({"avx512f", "avx512_bf16"}, True),
                                           ({"avx512f", "amx_tile", "amx_bf16"}, True)])
def test_native_bf16_reads_the_flags(monkeypatch, flags, native):
    # PyTorch's own probes answer for the machine the test runs on: turn them off
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)
    assert precision.native_bf16(flags) is native


def _emulated(monkeypatch, cpu="AMD EPYC 7571"):
    monkeypatch.setattr(precision, "cpu_description", lambda: {
        "cpu": cpu, "cpu_capability": "AVX2", "cpu_flags": ["avx2"], "native_bf16": False})


@pytest.mark.parametrize("trainer_precision, on_cpu, warns", [
    ("bf16-mixed", True, True), ("bf16-true", True, True), ("32-true", True, False),
    ("bf16-mixed", False, False)])
def test_warns_where_bf16_is_emulated(monkeypatch, trainer_precision, on_cpu, warns):
    _emulated(monkeypatch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert precision.warn_if_bf16_is_emulated(trainer_precision, on_cpu) is warns
    assert len(caught) == int(warns)
    if warns:
        message = str(caught[0].message)
        assert "AMD EPYC 7571" in message and "AVX2" in message and "32-true" in message


def test_no_warning_where_the_cpu_has_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_description", lambda: {
        "cpu": "Xeon", "cpu_capability": "AVX512", "cpu_flags": ["amx_bf16"], "native_bf16": True})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert precision.warn_if_bf16_is_emulated("bf16-mixed", True) is False
    assert not caught


@pytest.mark.parametrize("trainer_precision, warns", [("bf16-mixed", 1), ("32-true", 0)])
def test_a_run_is_warned_once_when_its_trainer_is_built(monkeypatch, tmp_path, trainer_precision, warns):
    _emulated(monkeypatch)
    cfg = load_config(None, [f"output_dir={tmp_path}", f"trainer.precision={trainer_precision}",
                             "trainer.accelerator=cpu", "trainer.enable_progress_bar=false"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner.build_trainer(cfg, monitor="val/acc1")
    assert sum("without native bf16" in str(w.message) for w in caught) == warns
