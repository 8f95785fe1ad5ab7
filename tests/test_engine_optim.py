import math

import pytest
import torch

from glore.engine.optim import build_optimizer, build_scheduler


def _lrs(optim_cfg, steps_per_epoch=10, max_epochs=4):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([param], optim_cfg)
    sched = build_scheduler(opt, optim_cfg, steps_per_epoch, max_epochs)
    out = []
    for _ in range(steps_per_epoch * max_epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_sgd_options():
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model, {"name": "sgd", "lr": 0.04, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True})
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (0.04, 0.9, 5e-4, True)


def test_adamw_and_no_decay_groups():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    opt = build_optimizer(model, {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05, "no_weight_decay_on_norm_and_bias": True})
    assert isinstance(opt, torch.optim.AdamW)
    no_decay, decay = sorted(opt.param_groups, key=lambda g: g["weight_decay"])
    assert [p.ndim for p in decay["params"]] == [4] and decay["weight_decay"] == 0.05
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0


def test_unknown_names():
    with pytest.raises(ValueError, match=r"unknown optimizer 'rmsprop'.*sgd, adamw"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], {"name": "rmsprop"})
    with pytest.raises(ValueError, match=r"unknown schedule 'exp'.*cosine"):
        _lrs({"lr": 0.1, "schedule": "exp"})


def test_step_schedule_with_epoch_warmup():
    lrs = _lrs({"lr": 0.1, "schedule": "step", "milestones": [2, 3], "gamma": 0.1, "warmup_epochs": 1,
                "warmup_start_factor": 0.0})
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.05)  # linear over the first epoch
    assert lrs[10] == pytest.approx(0.1) and lrs[19] == pytest.approx(0.1)
    assert lrs[20] == pytest.approx(0.01) and lrs[30] == pytest.approx(0.001)


def test_cosine_and_poly_reach_the_floor():
    cos = _lrs({"lr": 0.2, "schedule": "cosine", "min_lr": 0.02, "warmup_steps": 4})
    assert cos[4] == pytest.approx(0.2)
    assert cos[4 + 18] == pytest.approx(0.11)  # halfway through the 36 decay steps
    assert cos[-1] == pytest.approx(0.02 + 0.18 * (1 + math.cos(math.pi * 35 / 36)) / 2)
    poly = _lrs({"lr": 0.01, "schedule": "poly", "power": 0.9}, steps_per_epoch=5, max_epochs=2)
    assert poly[5] == pytest.approx(0.01 * 0.5 ** 0.9)
    assert all(a > b for a, b in zip(poly, poly[1:]))


def test_onecycle_and_constant():
    one = _lrs({"lr": 1.0, "schedule": "onecycle", "pct_start": 0.25, "warmup_start_factor": 0.0})
    assert one[0] == 0.0 and one[10] == pytest.approx(1.0) and max(one) == pytest.approx(1.0)
    assert one[-1] < 0.01
    assert set(_lrs({"lr": 0.3, "schedule": "constant"})) == {0.3}


def test_scheduler_state_dict_is_plain():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([param], {"lr": 0.1})
    sched = build_scheduler(opt, {"lr": 0.1, "schedule": "cosine"}, 3, 2)
    state = sched.state_dict()
    assert state["lr_lambdas"][0]["schedule"] == "cosine" and state["lr_lambdas"][0]["total_steps"] == 6
