"""The typed schema of a run config (pydantic v2), checked as a whole before anything runs.

Every section is checked: unknown keys are refused (the error names the key path and the accepted
keys), values are checked for type and range. ``optim`` and ``trainer`` are fully typed; ``data`` is
checked against its task's section (:data:`DATA_SECTIONS`), which declares the defaults the task code
reads (:func:`data_section`).

Pass-through keys: ``model`` is not listed key by key, because its keys go on to the model builders
(classification: timm's ``create_model`` kwargs; segmentation ``create_segmenter``; video
``create_video_model``; detection ``create_detector``) which refuse unknown keywords themselves;
likewise ``data.options`` / ``data.val_options`` go to the dataset constructors. Only their type
(a mapping) is checked here.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional, Union

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
    """The keys every task's data section shares, with their defaults; each task's section adds its own.

    Keys typed ``Any`` are checked with their own messages where they are read (``scale``, ``ratio``,
    ``color_jitter``, ...). The class variables say which keys a dataset reads: ``disk_only_keys``
    only for data on disk, ``builtin_only_keys`` only for the task's ``builtin_sets``.
    """
    model_config = Strict
    builtin_sets: ClassVar[tuple[str, ...]] = ()
    disk_only_keys: ClassVar[tuple[str, ...]] = ()
    builtin_only_keys: ClassVar[tuple[str, ...]] = ("options", "val_options", "train_samples", "val_samples")

    name: Optional[str] = None
    root: Optional[str] = None
    batch_size: PositiveInt = 32                     # per process
    val_batch_size: Optional[PositiveInt] = None     # None: batch_size
    num_workers: NonNegativeInt = 0
    drop_last: bool = False                          # of the training loader
    shuffle: bool = True
    options: Optional[dict[str, Any]] = None         # a built-in set's keyword options
    val_options: Optional[dict[str, Any]] = None     # over options, for validation


class ClassificationDataSection(Data):
    """``data`` of classification: an image layout on disk, or the built-in distant-digits / distant-clips."""
    builtin_sets: ClassVar[tuple[str, ...]] = ("distant-digits", "distant-clips")
    disk_only_keys: ClassVar[tuple[str, ...]] = (
        "root", "layout", "augment", "image_size", "resize_size", "scale", "hflip", "ratio", "rotation", "color_jitter",
        "lighting", "auto_augment", "re_prob", "re_mode", "re_count", "interpolation")

    train_split: Any = "train"                       # folders (or a built-in set's split names)
    val_split: Any = "val"
    layout: Any = "imagefolder"                      # or cub200
    augment: bool = True                             # RandomResizedCrop + flip on the training split
    image_size: PositiveInt = 224
    resize_size: PositiveInt = 256
    scale: Any = [0.08, 1.0]                         # area fractions of the crop
    ratio: Any = [3 / 4, 4 / 3]                      # aspect ratios of the crop
    hflip: bool = True
    rotation: Any = 0.0                              # degrees
    color_jitter: Any = 0.0
    lighting: Any = 0.0                              # std of AlexNet's PCA lighting noise
    # timm's recipe components: None leaves timm's own default
    auto_augment: Any = None
    re_prob: Any = None
    re_mode: Any = None
    re_count: Any = None
    interpolation: Any = None
    # timm.data.Mixup: alphas 0 turn it off; None leaves timm's default
    mixup: Any = 0.0
    cutmix: Any = 0.0
    mixup_prob: Any = None
    mixup_switch_prob: Any = None
    mixup_mode: Any = None


class SegmentationDataSection(Data):
    """``data`` of segmentation: Cityscapes on disk, or the built-in seg-digits."""
    builtin_sets: ClassVar[tuple[str, ...]] = ("seg-digits",)
    disk_only_keys: ClassVar[tuple[str, ...]] = ("root", "crop_size", "scale_range", "hflip")

    train_split: Any = "train"                       # folders (or a built-in set's split names)
    val_split: Any = "val"
    batch_size: PositiveInt = 8
    val_batch_size: Optional[PositiveInt] = 1
    drop_last: bool = True
    crop_size: Any = 769                             # a side, or [height, width]
    scale_range: Any = [0.5, 2.0]
    hflip: bool = True
    train_samples: Any = None
    val_samples: Any = None


class VideoDataSection(Data):
    """``data`` of video: a Kinetics layout on disk, or the built-in moving-digits."""
    builtin_sets: ClassVar[tuple[str, ...]] = ("moving-digits",)
    disk_only_keys: ClassVar[tuple[str, ...]] = (
        "root", "crop", "flip", "scale", "short_side", "num_frames", "stride", "num_clips", "num_crops",
        "skip_unreadable", "train_annotations", "val_annotations")

    train_split: Any = "train"                       # folders (or a built-in set's split names)
    val_split: Any = "val"
    batch_size: PositiveInt = 8
    crop: Any = 224
    scale: Any = [256, 320]                          # the short side's range before the training crop
    flip: bool = True
    short_side: Any = 256                            # at evaluation
    num_frames: Any = 8
    stride: Any = 8
    num_clips: Any = 10                              # clips per video, for video top-1
    num_crops: Any = 3
    skip_unreadable: Any = False
    train_annotations: Any = None
    val_annotations: Any = None


class DetectionDataSection(Data):
    """``data`` of detection: a COCO folder on disk, or the built-in det-digits."""
    builtin_sets: ClassVar[tuple[str, ...]] = ("det-digits",)
    disk_only_keys: ClassVar[tuple[str, ...]] = (
        "root", "hflip", "train_images", "train_annotations", "val_images", "val_annotations")

    batch_size: PositiveInt = 2
    val_batch_size: Optional[PositiveInt] = 1
    hflip: bool = True
    train_images: Any = "train2017"                  # folders and files under root
    val_images: Any = "val2017"
    train_annotations: Any = "annotations/instances_train2017.json"
    val_annotations: Any = "annotations/instances_val2017.json"
    train_samples: Any = None
    val_samples: Any = None


# each task's data section
DATA_SECTIONS: dict[str, type[Data]] = {"classification": ClassificationDataSection,
                                        "segmentation": SegmentationDataSection, "video": VideoDataSection,
                                        "detection": DetectionDataSection}

class Model(BaseModel):
    """``model``: the keys a task reads itself, with their defaults; every other key is an option of the
    task's builder (``create_model``, ``create_segmenter``, ``create_video_model``, ``create_detector``),
    which checks it."""
    model_config = ConfigDict(extra="allow")


class ClassificationModelSection(Model):
    """``model`` of classification: ``label_smoothing`` is the loss's (or Mixup's) label smoothing."""
    label_smoothing: Optional[Fraction] = 0.0


class DetectionModelSection(Model):
    """``model`` of detection: the architecture (masks are read for the two Mask R-CNNs), the class
    count (above the largest category id) and the shorter image side (a list: one drawn per training
    batch, the last one at test time)."""
    arch: Literal["fasterrcnn", "maskrcnn", "cascade_rcnn", "cascade_maskrcnn"] = "maskrcnn"
    num_classes: PositiveInt = 91
    min_size: Union[PositiveInt, list[PositiveInt]] = 800

    @property
    def masks(self) -> bool:
        return self.arch in ("maskrcnn", "cascade_maskrcnn")

    @property
    def test_size(self) -> int:
        return self.min_size[-1] if isinstance(self.min_size, list) else self.min_size


# each task's model section
MODEL_SECTIONS: dict[str, type[Model]] = {"classification": ClassificationModelSection, "segmentation": Model,
                                          "video": Model, "detection": DetectionModelSection}


# the keys every task's data section accepts, and each task's own
SHARED_DATA_KEYS = set(Data.model_fields)
DATA_KEYS = {task: set(section.model_fields) - SHARED_DATA_KEYS for task, section in DATA_SECTIONS.items()}


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
    data: dict[str, Any] = {}            # checked against the task's section (DATA_SECTIONS)
    optim: Optim = Optim()
    trainer: Trainer = Trainer()
    reference: Optional[Reference] = None


def _path(loc) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith(("function-", "literal[", "int", "float",
                                                                             "bool", "str", "list[", "union[",
                                                                             "constrained-")))


def _problems(exc: pydantic.ValidationError, prefix: str = "", task: str | None = None) -> list[str]:
    problems, seen = [], set()
    for error in exc.errors():
        path = prefix + _path(error["loc"])
        if path in seen:  # a union reports each alternative; the first says enough
            continue
        seen.add(path)
        if error["type"] == "extra_forbidden":
            section = path.rsplit(".", 1)[0] if "." in path else ""
            if section == "data" and task is not None:
                problems.append(f"unknown key {path!r} for task {task!r}; data accepts "
                                f"{', '.join(sorted(DATA_SECTIONS[task].model_fields))}")
            else:
                problems.append(f"unknown key {path!r}; {section or 'the top level'} accepts "
                                f"{', '.join(_accepted(section))}")
        else:
            problems.append(f"{path}={error.get('input')!r}: {error['msg']}")
    return problems


def check_schema(cfg: dict) -> None:
    """Raise :class:`SchemaError` naming every key path of ``cfg`` that does not fit the schema."""
    problems = []
    try:
        RunConfig.model_validate(cfg)
    except pydantic.ValidationError as exc:
        problems += _problems(exc)
    data, task = cfg.get("data"), cfg.get("task", "classification")
    if isinstance(data, dict) and task in DATA_SECTIONS:
        try:
            DATA_SECTIONS[task].model_validate(data)
        except pydantic.ValidationError as exc:
            problems += _problems(exc, "data.", task)
    model = cfg.get("model")
    if isinstance(model, dict) and task in MODEL_SECTIONS:
        try:
            MODEL_SECTIONS[task].model_validate(model)
        except pydantic.ValidationError as exc:
            problems += _problems(exc, "model.", task)
    if problems:
        raise SchemaError("invalid config: " + "; ".join(problems))


def data_section(task: str | type[Data], data: dict) -> Data:
    """``data`` checked as the data section of ``task`` (a name, or its section class): its keys as
    attributes, the left-out ones at their defaults (``model_fields_set`` holds the keys ``data`` gives)."""
    section = DATA_SECTIONS[task] if isinstance(task, str) else task
    name = next((t for t, s in DATA_SECTIONS.items() if s is section), None)
    try:
        return section.model_validate(data)
    except pydantic.ValidationError as exc:
        raise SchemaError("invalid config: " + "; ".join(_problems(exc, "data.", name))) from None


def model_section(task: str, model: dict) -> Model:
    """``model`` checked as the model section of ``task``: the keys the task reads as attributes, at
    their defaults when left out; the builder's options kept as given (``model_extra``)."""
    try:
        return MODEL_SECTIONS[task].model_validate(model)
    except pydantic.ValidationError as exc:
        raise SchemaError("invalid config: " + "; ".join(_problems(exc, "model.", task))) from None


def filled_data(task: str, data: dict) -> dict:
    """``data`` with the defaults of the keys its dataset reads filled in (``glore train --print-config``)."""
    section = data_section(task, data)
    unread = section.disk_only_keys if section.name in section.builtin_sets else section.builtin_only_keys
    return section.model_dump(exclude=set(unread) - section.model_fields_set)
def _accepted(section: str) -> list[str]:
    model = {"": RunConfig, "optim": Optim, "trainer": Trainer, "reference": Reference}.get(section)
    return list(model.model_fields) if model else []
