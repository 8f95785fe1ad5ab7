"""Optimizers and learning-rate schedules built from the ``optim`` section of a run config.

``optim`` keys (defaults in ``glore.engine.config.DEFAULTS``):

- ``name``: ``sgd`` (``lr``, ``momentum``, ``nesterov``, ``weight_decay``) or ``adamw`` (``lr``,
  ``betas``, ``weight_decay``).
- ``no_weight_decay_on_norm_and_bias``: put 1-D parameters (norm weights, biases) and the names of
  the model's ``no_weight_decay()`` in a group without weight decay, with timm's
  ``param_groups_weight_decay`` (needs an ``nn.Module`` as ``params``).
- ``layer_decay``: timm's layer-wise learning-rate decay, through ``timm.optim.create_optimizer_v2``
  (needs a timm network with ``group_matcher()``; each group's lr is ``lr * decay ** depth``, its
  depth counted from the head, and the schedule scales every group alike).
- ``schedule``: ``step`` (multiply by ``gamma`` at each epoch in ``milestones``), ``cosine`` (to
  ``min_lr``), ``poly`` (``(1 - t) ** power``, to ``min_lr``), ``onecycle`` (cosine rise over
  ``pct_start`` of the run from ``lr * warmup_start_factor``, then cosine decay to ``min_lr``) or
  ``constant``.
- ``warmup_epochs`` (may be fractional) or ``warmup_steps``: linear warm-up from
  ``lr * warmup_start_factor`` to ``lr``; the longer of the two is used. The decay schedules run over
  the steps after the warm-up.

The scheduler is stepped once per optimizer step (``interval: "step"`` in Lightning).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping

import torch
from timm.optim import create_optimizer_v2, param_groups_weight_decay

from glore.errors import ArgumentError, ArgumentTypeError
from .schema import Optim

SCHEDULES = ("step", "cosine", "poly", "onecycle", "constant")
OPTIMIZERS = ("sgd", "adamw")
# the values of the keys an optim section leaves out: the schema's
OPTIM_DEFAULTS = Optim().model_dump()


def _param_groups(params, weight_decay: float, split_decay: bool):
    if not split_decay:
        if isinstance(params, torch.nn.Module):
            params = params.parameters()
        return [p for p in params if p.requires_grad]
    if not isinstance(params, torch.nn.Module):
        raise ArgumentTypeError(
            "no_weight_decay_on_norm_and_bias needs an nn.Module as params, "
            f"got {type(params).__name__}"
        )
    # timm's grouping: 1-D parameters, biases and the model's own no_weight_decay() names undecayed
    skip = params.no_weight_decay() if hasattr(params, "no_weight_decay") else ()
    return param_groups_weight_decay(params, weight_decay, no_weight_decay_list=skip)


def build_optimizer(params: torch.nn.Module | Iterable, optim_cfg: Mapping) -> torch.optim.Optimizer:
    """Build the optimizer named by ``optim_cfg["name"]`` over ``params`` (a module or parameters)."""
    optim_cfg = {**OPTIM_DEFAULTS, **optim_cfg}
    name = str(optim_cfg["name"]).lower()
    lr = float(optim_cfg["lr"])
    weight_decay = float(optim_cfg["weight_decay"])
    if optim_cfg.get("layer_decay") is not None:
        return _layer_decay_optimizer(params, name, lr, weight_decay, optim_cfg)
    groups = _param_groups(params, weight_decay, bool(optim_cfg.get("no_weight_decay_on_norm_and_bias")))
    if name == "sgd":
        momentum = float(optim_cfg["momentum"])
        nesterov = bool(optim_cfg["nesterov"])
        if nesterov and momentum <= 0:
            raise ArgumentError(f"nesterov SGD needs momentum > 0, got momentum={momentum}")
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adamw":
        betas = tuple(float(b) for b in optim_cfg["betas"])
        return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay)
    raise ArgumentError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def _layer_decay_optimizer(model, name: str, lr: float, weight_decay: float, optim_cfg: Mapping):
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "group_matcher"):
        raise ArgumentTypeError(f"optim.layer_decay needs a timm network with group_matcher(), got "
                                f"{type(model).__name__}")
    if name not in OPTIMIZERS:
        raise ArgumentError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    if name == "sgd":
        options = dict(opt="nesterov" if optim_cfg.get("nesterov") else "momentum",
                       momentum=float(optim_cfg["momentum"]))
    else:
        options = dict(opt="adamw", betas=tuple(float(b) for b in optim_cfg["betas"]))
    optimizer = create_optimizer_v2(model, lr=lr, weight_decay=weight_decay,
                                    layer_decay=float(optim_cfg["layer_decay"]),
                                    filter_bias_and_bn=bool(optim_cfg.get("no_weight_decay_on_norm_and_bias")),
                                    **options)
    for group in optimizer.param_groups:     # timm's schedulers read lr_scale; LambdaLR scales initial_lr
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return optimizer


class ScheduleFactor:
    """``step -> lr multiplier`` for :class:`torch.optim.lr_scheduler.LambdaLR`.

    A plain object (not a closure) so the scheduler's state dict holds only numbers and strings.
    """

    def __init__(
        self,
        *,
        schedule: str,
        total_steps: int,
        steps_per_epoch: int,
        warmup_steps: int = 0,
        warmup_start_factor: float = 0.001,
        milestones: Iterable[float] = (),
        gamma: float = 0.1,
        power: float = 0.9,
        min_factor: float = 0.0,
        pct_start: float = 0.3,
    ):
        if schedule not in SCHEDULES:
            raise ArgumentError(f"unknown schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
        if total_steps < 1:
            raise ArgumentError(f"total_steps must be >= 1, got {total_steps}")
        self.schedule = schedule
        self.total_steps = int(total_steps)
        self.steps_per_epoch = max(int(steps_per_epoch), 1)
        self.warmup_steps = max(int(warmup_steps), 0)
        self.warmup_start_factor = float(warmup_start_factor)
        self.milestones = sorted(float(m) for m in milestones)
        self.gamma = float(gamma)
        self.power = float(power)
        self.min_factor = float(min_factor)
        self.pct_start = float(pct_start)

    def __call__(self, step: int) -> float:
        if self.schedule == "onecycle":
            rise = max(int(round(self.pct_start * self.total_steps)), 1)
            if step < rise:
                t = step / rise
                start = self.warmup_start_factor
                return start + (1 - start) * (1 - math.cos(math.pi * t)) / 2
            t = min((step - rise) / max(self.total_steps - rise, 1), 1.0)
            return self.min_factor + (1 - self.min_factor) * (1 + math.cos(math.pi * t)) / 2
        if step < self.warmup_steps:
            start = self.warmup_start_factor
            return start + (1 - start) * step / self.warmup_steps
        if self.schedule == "constant":
            return 1.0
        if self.schedule == "step":
            epoch = step / self.steps_per_epoch
            return self.gamma ** sum(1 for m in self.milestones if epoch >= m)
        span = max(self.total_steps - self.warmup_steps, 1)
        t = min((step - self.warmup_steps) / span, 1.0)
        if self.schedule == "cosine":
            return self.min_factor + (1 - self.min_factor) * (1 + math.cos(math.pi * t)) / 2
        # poly
        return self.min_factor + (1 - self.min_factor) * (1 - t) ** self.power


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    optim_cfg: Mapping,
    steps_per_epoch: int,
    max_epochs: int,
    *,
    total_steps: int | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Build a per-step LR scheduler for ``optimizer`` from ``optim_cfg``.

    ``total_steps`` defaults to ``steps_per_epoch * max_epochs`` (pass it when ``max_steps`` limits
    the run).
    """
    optim_cfg = {**OPTIM_DEFAULTS, **optim_cfg}
    schedule = str(optim_cfg["schedule"]).lower()
    steps_per_epoch = max(int(steps_per_epoch), 1)
    if total_steps is None or total_steps <= 0:
        total_steps = steps_per_epoch * max(int(max_epochs), 1)
    warmup = max(
        int(optim_cfg["warmup_steps"] or 0),
        int(round(float(optim_cfg["warmup_epochs"] or 0) * steps_per_epoch)),
    )
    lr = float(optim_cfg["lr"])
    min_lr = float(optim_cfg["min_lr"] or 0.0)
    asked = (f"optim.warmup_epochs={optim_cfg.get('warmup_epochs', 0)}, "
             f"optim.warmup_steps={optim_cfg.get('warmup_steps', 0)}")
    if schedule == "onecycle" and warmup:
        warnings.warn(f"{asked} do not apply to the onecycle schedule (it rises over optim.pct_start of the run); "
                      "they are ignored", UserWarning, stacklevel=2)
    elif warmup >= total_steps:
        warnings.warn(f"the warm-up ({asked}: {warmup} steps) is not shorter than the run ({total_steps} steps): the "
                      f"learning rate never reaches optim.lr={lr}", UserWarning, stacklevel=2)
    factor = ScheduleFactor(
        schedule=schedule,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        warmup_steps=warmup,
        warmup_start_factor=float(optim_cfg["warmup_start_factor"]),
        milestones=optim_cfg["milestones"] or (),
        gamma=float(optim_cfg["gamma"]),
        power=float(optim_cfg["power"]),
        min_factor=min_lr / lr if lr > 0 else 0.0,
        pct_start=float(optim_cfg["pct_start"]),
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
