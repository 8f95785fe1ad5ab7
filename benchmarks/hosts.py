"""The residual blocks' two ways of carrying inserted blocks, timed on a ResNet-50 stage.

    python benchmarks/hosts.py
    python benchmarks/hosts.py --batch 8 --repeats 11 --cpu-time

On timm's ResNet-50 ``layer3`` (6 Bottlenecks, 512 -> 1024 channels, input 28x28, output 14x14),
forward+backward (gradients of the input and every parameter), interleaved, of:

- ``timm``: timm's Bottleneck as it is (no slot);
- ``copied, empty``: :mod:`glore.models.hosts`' Bottleneck (timm's forward, copied, with both
  slots ``nn.Identity``);
- ``wrapper, empty``: :mod:`glore.models.timm_hosts`' generic wrapper, ``after_add(forward(x))``
  around timm's own forward;
- ``copied, GC + GloRe`` and ``wrapper, GC + GloRe``: GC (r = 16) at ``after_1x1`` and a GloRe unit
  at ``after_add`` of every block, the same weights in both. The wrapper has no place inside the
  branch, so its GC runs in an ``nn.Sequential(bn3, gc)`` that replaces ``bn3`` (which renames
  ``bn3.*`` to ``bn3.0.*``: timing only).

Prints median and minimum ms per case, the ratio of medians against ``timm`` and of the wrappers
against the copies, and the largest difference of the outputs.
"""

from __future__ import annotations

import argparse
import copy

import timm
import torch
from torch import nn

import _common as common
from blocks import fwd_bwd
from glore.models import hosts, timm_hosts
from glore.nn import GlobalContext, GloRe


def copied(stage: nn.Sequential, units: bool) -> nn.Sequential:
    stage = copy.deepcopy(stage)
    for block in stage:
        hosts.as_host(block)
        if units:
            channels = block.conv3.out_channels
            block.after_1x1 = GlobalContext(channels, ratio=1 / 16)
            block.after_add = GloRe(channels)
    return stage


def wrapped(stage: nn.Sequential, like: nn.Sequential | None) -> nn.Sequential:
    """The generic wrapper around timm's forward; ``like`` (a copied stage) gives the units' weights."""
    stage = copy.deepcopy(stage)
    for i, block in enumerate(stage):
        timm_hosts.attach(block, "after_add", nn.Identity())
        if like is not None:
            block.bn3 = nn.Sequential(block.bn3, copy.deepcopy(like[i].after_1x1))
            block.after_add = copy.deepcopy(like[i].after_add)
    return stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu-time", action="store_true", help="time the process's CPU time (a shared host)")
    args = parser.parse_args()
    host = common.setup(threads=args.threads, cpu_time=args.cpu_time)
    print(f"{host['cpu']}; {args.threads} threads; batch {args.batch}; {host['clock']}")

    stage = timm.create_model("resnet50", pretrained=False).layer3
    with_units = copied(stage, units=True)
    for module in [*stage.modules(), *with_units.modules()]:   # non-zero last layers, so that everything acts
        if isinstance(module, (nn.BatchNorm2d, nn.Conv2d)) and module.weight.abs().sum() == 0:
            nn.init.normal_(module.weight, std=0.1)
    for block, host in zip(stage, with_units):
        host.bn3.load_state_dict(block.bn3.state_dict())
    variants = {
        "timm": stage,
        "copied, empty": copied(stage, units=False),
        "wrapper, empty": wrapped(stage, None),
        "copied, GC + GloRe": with_units,
        "wrapper, GC + GloRe": wrapped(stage, with_units),
    }
    x = torch.randn(args.batch, 512, 28, 28, requires_grad=True)
    grad = torch.randn(args.batch, 1024, 14, 14)
    with torch.no_grad():
        outputs = {name: variant.eval()(x) for name, variant in variants.items()}
    for name, variant in variants.items():
        variant.train()
    print(f"largest output difference, empty: copied {float((outputs['copied, empty'] - outputs['timm']).abs().max()):.1e}, "
          f"wrapper {float((outputs['wrapper, empty'] - outputs['timm']).abs().max()):.1e}; with units: "
          f"{float((outputs['copied, GC + GloRe'] - outputs['wrapper, GC + GloRe']).abs().max()):.1e}")
    times = common.time_interleaved({name: fwd_bwd(variant, x, grad) for name, variant in variants.items()},
                                    repeats=args.repeats)
    base = times["timm"]["median"]
    for name, t in times.items():
        print(f"{name:22s} median {1e3 * t['median']:8.1f} ms  min {1e3 * t['min']:8.1f} ms  "
              f"/ timm {t['median'] / base:5.3f}")
    for what in ("empty", "GC + GloRe"):
        ratio = times[f"wrapper, {what}"]["median"] / times[f"copied, {what}"]["median"]
        print(f"wrapper / copied, {what}: {ratio:.3f}")


if __name__ == "__main__":
    main()
