"""A study file and the runs it describes.

::

    name: distant-digits significance
    output_dir: results/studies/significance_digits
    config: configs/demo/baseline.yaml         # the base run config (relative to the working folder)
    overrides: {trainer.max_epochs: 4}          # for every variant
    seeds: [0, 1, 2, 3, 4]
    seed_keys: [seed, data.options.seed]        # config keys set to the seed (default: [seed])
    variants:
      baseline: {}                              # overrides of the base config
      glore: {model.block: glore}
      gc: {config: configs/demo/gc.yaml}        # or another base config (plus overrides)
    compare: {metric: val/acc1, epoch: final, baseline: baseline, higher_is_better: true}
    launcher: {name: local, workers: auto, threads_per_run: 1}

Each (variant, seed) is a normal ``glore train`` run in ``<output_dir>/<variant>/seed<seed>/``.
Paired comparisons use the same seeds for every variant, so the data order and the initialisation
of the shared layers are the same in a pair.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

import pydantic
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

from glore.engine.config import yaml_load
from glore.errors import ConfigError, MissingFileError

Strict = ConfigDict(extra="forbid")


class Compare(BaseModel):
    """The ``compare:`` section: which metric at which epoch, against which variant, at what confidence."""
    model_config = Strict
    metric: str = "val/acc1"
    epoch: Union[Literal["final"], NonNegativeInt] = "final"  # the last epoch, or a 0-based epoch
    baseline: Optional[str] = None
    higher_is_better: bool = True
    confidence: float = Field(0.95, gt=0, lt=1)


class Submitit(BaseModel):
    """The ``launcher.submitit:`` section: the cluster and time limit; further keys go to submitit's executor."""
    model_config = ConfigDict(extra="allow")  # further keys go to executor.update_parameters
    cluster: Optional[str] = None              # None: submitit's choice (slurm where sbatch exists)
    timeout_min: PositiveInt = 60


class Launcher(BaseModel):
    """The ``launcher:`` section: local worker processes or submitit jobs, and each run's share of the machine."""
    model_config = Strict
    name: Literal["local", "submitit"] = "local"
    workers: Union[Literal["auto"], PositiveInt] = "auto"  # local: runs at once
    threads_per_run: Optional[PositiveInt] = None          # local: torch threads of each run
    memory_per_run_gb: float = Field(2.0, gt=0)            # local: for the "auto" worker count
    torchrun: Optional[dict[str, Any]] = None              # e.g. {nproc_per_node: 8}: each run under torchrun
    submitit: Submitit = Submitit()


class StudySpec(BaseModel):
    """A study file, checked: the base config, seeds, variants, comparison and launcher."""
    model_config = Strict
    name: str
    output_dir: str
    config: Optional[str] = None
    overrides: dict[str, Any] = {}
    seeds: list[NonNegativeInt] = Field(min_length=1)
    seed_keys: list[str] = ["seed"]
    variants: dict[str, Optional[dict[str, Any]]] = Field(min_length=1)
    compare: Compare = Compare()
    launcher: Launcher = Launcher()


@dataclass(frozen=True)
class Run:
    """One (variant, seed) of a study: a ``glore train`` command line's parts."""

    variant: str
    seed: int
    config: str
    overrides: tuple[str, ...]
    output_dir: Path

    @property
    def metrics_path(self) -> Path:
        """``metrics.json`` of the run's folder, written when the run finishes."""
        return self.output_dir / "metrics.json"

    @property
    def last_checkpoint(self) -> Path:
        """``checkpoints/last.ckpt`` of the run's folder, the checkpoint a resume starts from."""
        return self.output_dir / "checkpoints" / "last.ckpt"

    def finished(self) -> bool:
        """Whether the run has written its final metrics (``glore train`` writes them last)."""
        return self.metrics_path.is_file() and self.metrics_path.stat().st_size > 2

    def beside(self, suffix: str) -> Path:
        """The file ``seed<N><suffix>`` next to the run's folder (its ``.log``, ``.status.json``,
        ``.settings.json``)."""
        return self.output_dir.parent / f"{self.output_dir.name}{suffix}"

    @property
    def log_path(self) -> Path:
        """``seed<N>.log`` beside the run's folder: the run's output."""
        return self.beside(".log")

    @property
    def status_path(self) -> Path:
        """``seed<N>.status.json`` beside the run's folder: how its process ended."""
        return self.beside(".status.json")

    @property
    def settings_path(self) -> Path:
        """``seed<N>.settings.json`` beside the run's folder: the config and overrides it was started with."""
        return self.beside(".settings.json")

    def settings(self) -> dict[str, Any]:
        """What makes this run: its base config and its overrides."""
        return {"config": self.config, "overrides": list(self.overrides)}

    def record_settings(self) -> None:
        """Write :meth:`settings` beside the run's folder (before the run starts)."""
        self.settings_path.parent.mkdir(parents=True, exist_ok=True)
        self.settings_path.write_text(json.dumps(self.settings(), indent=1))

    def settings_changes(self) -> list[str]:
        """What differs between the settings the run was started with and the study's now, as
        ``"key: old then, new now"``; empty where nothing differs, nothing was recorded or the run's
        folder is gone (the run starts afresh and records its settings again)."""
        if not (self.output_dir.exists() and self.settings_path.is_file()):
            return []
        recorded = json.loads(self.settings_path.read_text())
        then = {"config": recorded.get("config"), **_as_mapping(recorded.get("overrides", []))}
        now = {"config": self.config, **_as_mapping(self.overrides)}
        return [f"{key}: {then.get(key, '(unset)')} then, {now.get(key, '(unset)')} now"
                for key in dict.fromkeys([*then, *now]) if then.get(key) != now.get(key)]

    def train_args(self) -> list[str]:
        """The arguments of ``glore train`` for this run: a fresh start, or a resume of the
        interrupted run in its folder."""
        args = ["train", "--config", self.config, "--output-dir", str(self.output_dir)]
        if self.last_checkpoint.is_file():
            args += ["--resume", "last"]
        elif self.output_dir.exists():       # started but stopped before its first checkpoint
            args += ["--overwrite"]
        return args + list(self.overrides)


def _as_mapping(overrides) -> dict[str, str]:
    """``["a.b=1", ...]`` as ``{"a.b": "1", ...}``."""
    return dict(item.split("=", 1) for item in overrides)


def check_settings(runs: list[Run]) -> None:
    """Refuse a study whose started runs were made with other settings than its file gives now (a
    finished run is not run again, so its result would stand for settings it never had)."""
    changed = [(run, run.settings_changes()) for run in runs]
    changed = [(run, changes) for run, changes in changed if changes]
    if changed:
        run, changes = changed[0]
        raise ConfigError(f"{len(changed)} started run(s) of this study were made with other settings than the "
                          f"study file gives now, e.g. {str(run.output_dir)!r}: {'; '.join(changes)}; give the "
                          f"study a new output_dir, or delete those runs' folders to run them again")


def _format_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def load_study(path: str | os.PathLike) -> StudySpec:
    """Read and check a study file; a mistake is one :class:`ConfigError` naming every bad key."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"study file not found: {str(path)!r}")
    try:
        raw = yaml_load(path.read_text(encoding="utf-8"))
    except Exception as exc:  # yaml's errors, a binary file
        raise ConfigError(f"cannot read study file {str(path)!r}: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"study file {str(path)!r} must hold a mapping, got {type(raw).__name__}")
    try:
        spec = StudySpec.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors()]
        raise ConfigError(f"invalid study file {str(path)!r}: " + "; ".join(problems)) from None
    if spec.compare.baseline is not None and spec.compare.baseline not in spec.variants:
        raise ConfigError(f"compare.baseline must name a variant ({', '.join(spec.variants)}), "
                          f"got {spec.compare.baseline!r}")
    if len(set(spec.seeds)) != len(spec.seeds):
        raise ConfigError(f"seeds must differ from each other, got {spec.seeds}")
    for name, variant in spec.variants.items():
        if not (variant or {}).get("config", spec.config):
            raise ConfigError(f"variant {name!r} has no run config: set config at the top or in the variant")
    return spec


def expand(spec: StudySpec) -> list[Run]:
    """Every (variant, seed) run of ``spec``, variant by variant."""
    runs = []
    for name, variant in spec.variants.items():
        variant = dict(variant or {})
        config = variant.pop("config", None) or spec.config
        settings = {"trainer.enable_progress_bar": False, **spec.overrides, **variant}
        for seed in spec.seeds:
            overrides = [f"{key}={_format_value(value)}" for key, value in settings.items()]
            overrides += [f"{key}={seed}" for key in spec.seed_keys]
            runs.append(Run(name, seed, config, tuple(overrides),
                            Path(spec.output_dir) / name / f"seed{seed}"))
    return runs
