"""The typed schema of a run config (pydantic v2), checked as a whole before anything runs.

Every section is checked: unknown keys are refused (the error names the key path and the accepted
keys), values are checked for type and range. ``optim`` and ``trainer`` are fully typed; ``data``
accepts the keys its task reads (:data:`DATA_KEYS`), with the shared ones typed.

Pass-through keys: ``model`` is not listed key by key, because its keys go on to the model builders
(classification: timm's ``create_model`` kwargs; segmentation ``create_segmenter``; video
``create_video_model``; detection ``create_detector``) which refuse unknown keywords themselves;
likewise ``data.options`` / ``data.val_options`` go to the dataset constructors. Only their type
(a mapping) is checked here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

import pydantic
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt

from glore.errors import ConfigError


Strict = ConfigDict(extra="forbid", strict=True)
Number = Union[int, float]
Fraction = Annotated[float, Field(ge=0, le=1)]


class SchemaError(ConfigError):
    """A config that does not fit the schema; the message lists each key path and what it accepts."""


class Optim(BaseModel):
    model_config = Strict
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0)
    nesterov: bool = False
    weight_decay: float = Field(1.0e-4, ge=0)
    betas: Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=2, max_length=2)] = [0.9, 0.999]
    schedule: Literal["step", "cosine", "poly", "onecycle", "constant"] = "cosine"
    milestones: list[NonNegativeInt] = [30, 60, 90]  # epochs, for step
    gamma: float = Field(0.1, gt=0)                  # for step
    power: float = Field(0.9, gt=0)                  # for poly
    min_lr: NonNegativeFloat = 0.0                   # floor for cosine / poly / onecycle
    warmup_epochs: NonNegativeFloat = 0              # linear warm-up, in epochs (may be fractional) ...
    warmup_steps: NonNegativeInt = 0                 # ... or in optimizer steps (the longer wins)
    warmup_start_factor: float = Field(0.001, gt=0, le=1)
    pct_start: float = Field(0.3, gt=0, lt=1)
    no_weight_decay_on_norm_and_bias: bool = False
    layer_decay: Optional[float] = Field(None, gt=0, le=1)   # timm's layer-wise lr decay (create_optimizer_v2)
    ema_decay: Optional[float] = Field(None, gt=0, lt=1)     # EMA of the weights (timm ModelEmaV3), evaluated
    ema_warmup: bool = False                                 # ModelEmaV3's decay warm-up


class Trainer(BaseModel):
    model_config = Strict
    max_epochs: int = Field(1, ge=-1)
    max_steps: int = Field(-1, ge=-1)
    accelerator: str = "auto"
    devices: Union[PositiveInt, Literal["auto"], list[NonNegativeInt]] = 1
    num_nodes: PositiveInt = 1
    strategy: str = "auto"
    precision: Union[Literal["32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"],
                     Literal[16, 32, 64]] = "32-true"
    deterministic: Union[bool, Literal["warn"]] = "warn"  # torch.use_deterministic_algorithms(warn_only=True)
    accumulate_grad_batches: PositiveInt = 1
    gradient_clip_val: Optional[NonNegativeFloat] = None
    log_every_n_steps: PositiveInt = 10
    check_val_every_n_epoch: Optional[PositiveInt] = 1
    limit_train_batches: Optional[Union[NonNegativeInt, Fraction]] = None  # batches, or a fraction of them
    limit_val_batches: Optional[Union[NonNegativeInt, Fraction]] = None
    enable_progress_bar: bool = True
    sync_batchnorm: bool = False
    val_check_interval: Optional[Union[PositiveInt, float]] = None
    num_sanity_val_steps: Optional[int] = Field(None, ge=-1)
    benchmark: Optional[bool] = None
    compile: bool = False  # carried out by the engine (torch.compile), not a lightning.Trainer option
    channels_last: bool = False  # carried out by the engine (the network's and the batches' layout)


class Data(BaseModel):
    """The keys every task's data section shares; the task-specific ones are allowed by name."""
    model_config = ConfigDict(extra="allow", strict=True)
    name: Optional[str] = None
    root: Optional[str] = None
    batch_size: Optional[PositiveInt] = None
    val_batch_size: Optional[PositiveInt] = None
    num_workers: Optional[NonNegativeInt] = None
    drop_last: Optional[bool] = None
    shuffle: Optional[bool] = None
    options: Optional[dict[str, Any]] = None
    val_options: Optional[dict[str, Any]] = None
    # task-specific keys of the same meaning in every task that reads them (DATA_KEYS says which)
    hflip: Optional[bool] = None
    flip: Optional[bool] = None
    augment: Optional[bool] = None
    image_size: Optional[PositiveInt] = None
    resize_size: Optional[PositiveInt] = None


# the keys every task's data section accepts
SHARED_DATA_KEYS = {"name", "root", "batch_size", "val_batch_size", "num_workers", "drop_last", "shuffle", "options",
                    "val_options"}


# task-specific data keys (read by glore.engine.<task>.build_datamodule and the configs/)
DATA_KEYS = {
    "classification": {"augment", "color_jitter", "hflip", "image_size", "layout", "lighting", "ratio",
                       "resize_size", "rotation", "scale", "train_split", "val_split", "auto_augment", "re_prob",
                       "re_mode", "re_count", "interpolation", "mixup", "cutmix", "mixup_prob", "mixup_switch_prob",
                       "mixup_mode"},
    "segmentation": {"crop_size", "hflip", "scale_range", "train_samples", "val_samples", "train_split",
                     "val_split"},
    "video": {"crop", "flip", "num_clips", "num_crops", "num_frames", "scale", "short_side", "skip_unreadable",
              "stride", "train_annotations", "val_annotations", "train_split", "val_split"},
    "detection": {"hflip", "train_annotations", "train_images", "train_samples", "val_annotations",
                  "val_images", "val_samples"},
}


class Reference(BaseModel):
    """A paper's table row that a config reproduces: its figures, copied from the paper.

    ``params_m`` and ``gmacs`` (multiply-adds, the papers' "FLOPs") are for one input of ``input``;
    ``convention`` is how the paper counted them where it differs from the default (``mmdet``: the
    GCNet paper's detection FLOPs, mmdetection's counter, see
    :mod:`glore.analysis.detection_complexity`); ``known_deviation`` says why this library's count
    differs from the paper's beyond the tolerance of :mod:`glore.zoo`.
    """
    model_config = ConfigDict(extra="forbid")
    paper: Literal["glore", "gcnet", "reproduction"]
    table: str
    row: str
    params_m: Optional[float] = Field(None, gt=0)
    gmacs: Optional[float] = Field(None, gt=0)
    input: list[PositiveInt] = Field(min_length=3, max_length=4)
    convention: Optional[Literal["torch", "mmdet"]] = None
    metrics: dict[str, Optional[float]] = {}
    known_deviation: Optional[str] = None


class RunConfig(BaseModel):
    model_config = Strict
    task: Literal["classification", "segmentation", "video", "detection"] = "classification"
    seed: NonNegativeInt = 0
    output_dir: str = Field("runs/default", min_length=1)
    model: dict[str, Any] = {}
    data: Data = Data()
    optim: Optim = Optim()
    trainer: Trainer = Trainer()
    reference: Optional[Reference] = None


def _path(loc) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith(("function-", "literal[", "int", "float",
                                                                             "bool", "str", "list[", "union[",
                                                                             "constrained-")))


def check_schema(cfg: dict) -> None:
    """Raise :class:`SchemaError` naming every key path of ``cfg`` that does not fit the schema."""
    problems = []
    try:
        RunConfig.model_validate(cfg)
    except pydantic.ValidationError as exc:
        seen = set()
        for error in exc.errors():
            path = _path(error["loc"])
            if path in seen:  # a union reports each alternative; the first says enough
                continue
            seen.add(path)
            if error["type"] == "extra_forbidden":
                section = path.rsplit(".", 1)[0] if "." in path else ""
                problems.append(f"unknown key {path!r}; {section or 'the top level'} accepts "
                                f"{', '.join(_accepted(section))}")
            else:
                problems.append(f"{path}={error.get('input')!r}: {error['msg']}")
    data, task = cfg.get("data"), cfg.get("task")
    if isinstance(data, dict) and task in DATA_KEYS:
        known = SHARED_DATA_KEYS | DATA_KEYS[task]
        for key in sorted(set(data) - known):
            problems.append(f"unknown key 'data.{key}' for task {task!r}; data accepts {', '.join(sorted(known))}")
    if problems:
        raise SchemaError("invalid config: " + "; ".join(problems))


def _accepted(section: str) -> list[str]:
    model = {"": RunConfig, "optim": Optim, "trainer": Trainer, "reference": Reference}.get(section)
    return list(model.model_fields) if model else []
