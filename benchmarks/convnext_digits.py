"""Why the small ConvNeXt of configs/demo/convnext_*.yaml does not learn distant-digits: short
training probes and two measurements at initialisation (not part of the library).

``probe``: trains one variant for ``--steps`` steps of the demo's recipe in a bare loop (batch 64 of
the 12,000 training canvases, AdamW with weight decay 0.05 off norm weights and biases, a one-cycle
schedule rising over 25% of the steps from lr / 25, channels-last) and prints one JSON line: the
mean training loss of each 50 steps, the accuracy on 1,000 validation canvases, wall and CPU seconds.
A variant is a JSON object of ``glore.models.create_model`` keywords for timm's ConvNeXt (the
configs' ``convnext_atto`` with depths 2, 2, 2, 2 and widths 32, 48, 64, 96, 1 input channel),
plus ``lr``, ``opt`` (``adamw`` or ``sgd``: momentum 0.9, weight decay 5e-4), ``steps`` and

- ``"name": "demo"``: the demo network (``distant_digits_net``) instead, as the reference;
- ``"stem": "demo"``: the ConvNeXt's stem replaced by the demo network's (5x5 / 2, 3x3, 3x3 / 2
  conv-BN-ReLU, 32 channels at stride 4);
- ``"reinit": true``: every conv and linear layer but the classifier re-initialised with Kaiming's
  fan-in normal (timm's ConvNeXt draws them from a normal of std 0.02).

``init``: the gradient norms of the largest and smallest parameters on one batch of 64, and how well
a ridge classifier reads the label from the pooled features at initialisation (2,000 canvases to fit,
1,000 to test), for the demo network and the given variants.

    PYTHONPATH=src python benchmarks/convnext_digits.py probe '{"steps": 300}'
    PYTHONPATH=src python benchmarks/convnext_digits.py probe '{"steps": 300, "norm_layer": "batchnorm2d", "conv_mlp": true}'
    PYTHONPATH=src python benchmarks/convnext_digits.py init '[{}, {"ls_init_value": 1.0}]'
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

from glore.data import DistantDigits
from glore.engine.optim import build_optimizer
from glore.models import create_model
from glore.models.layers import conv_bn_relu
from glore.models.small import distant_digits_net

CONVNEXT = dict(depths=[2, 2, 2, 2], dims=[32, 48, 64, 96], in_chans=1, num_classes=10)
BATCH = 64


def build(variant: dict) -> torch.nn.Module:
    variant = dict(variant)
    if variant.pop("name", "convnext_atto") == "demo":
        return distant_digits_net()
    stem, reinit = variant.pop("stem", None), variant.pop("reinit", False)
    model = create_model("convnext_atto", **{**CONVNEXT, **variant})
    if stem == "demo":
        model.stem = torch.nn.Sequential(conv_bn_relu(1, 16, 5, stride=2), conv_bn_relu(16, 32, 3),
                                         conv_bn_relu(32, 32, 3, stride=2))
    if reinit:
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and not name.startswith("head"):
                torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    return model


def probe(variant: dict) -> dict:
    variant = dict(variant)
    steps, lr, opt = variant.pop("steps", 300), variant.pop("lr", 3e-3), variant.pop("opt", "adamw")
    seed = variant.pop("seed", 0)
    torch.manual_seed(seed)
    train = DistantDigits("train", num_samples=min(steps * BATCH, 12000), canvas=48, min_distance=14, seed=seed)
    val = DistantDigits("val", num_samples=1000, canvas=48, min_distance=14, seed=seed)
    model = build(variant).to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, dict(name=opt, lr=lr, weight_decay=0.05 if opt == "adamw" else 5e-4,
                                            momentum=0.9, no_weight_decay_on_norm_and_bias=True))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.25,
                                                   cycle_momentum=False, div_factor=25, final_div_factor=1e9)
    images, labels = train.images, train.labels
    cpu, wall, losses = time.process_time(), time.time(), []
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    for step in range(steps):
        start = (step * BATCH) % len(images)
        if start + BATCH > len(images):
            order, start = torch.randperm(len(images), generator=generator), 0
        index = order[start:start + BATCH]
        loss = F.cross_entropy(model(images[index].contiguous(memory_format=torch.channels_last)), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        logits = model(val.images.contiguous(memory_format=torch.channels_last))
    accuracy = (logits.argmax(1) == val.labels).float().mean().item()
    means = [round(sum(losses[k:k + 50]) / len(losses[k:k + 50]), 3) for k in range(0, steps, 50)]
    return dict(lr=lr, opt=opt, loss_per_50_steps=means, val_acc=round(accuracy, 3),
                wall_s=round(time.time() - wall), cpu_s=round(time.process_time() - cpu))


def ridge_accuracy(features: torch.Tensor, labels: torch.Tensor, fit: int = 2000) -> float:
    features = (features - features[:fit].mean(0)) / (features[:fit].std(0) + 1e-6)
    design = torch.cat([features, torch.ones(len(features), 1)], 1)
    targets = F.one_hot(labels, 10).float()
    weights = torch.linalg.solve(design[:fit].T @ design[:fit] + torch.eye(design.shape[1]),
                                 design[:fit].T @ targets[:fit])
    return ((design[fit:] @ weights).argmax(1) == labels[fit:]).float().mean().item()


def pooled(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    if hasattr(model, "forward_head"):
        return model.forward_head(model.forward_features(x), pre_logits=True)
    return model.pool(model.forward_features(x)).flatten(1)


def init(variants: list) -> None:
    torch.manual_seed(0)
    data = DistantDigits("train", num_samples=3000, canvas=48, min_distance=14, seed=0)
    for variant in [{"name": "demo"}] + variants:
        model = build(variant)
        loss = F.cross_entropy(model(data.images[:BATCH]), data.labels[:BATCH])
        loss.backward()
        norms = sorted(((p.grad.norm().item(), n) for n, p in model.named_parameters() if p.grad is not None),
                       reverse=True)
        model.eval()
        with torch.no_grad():
            features = torch.cat([pooled(model, data.images[i:i + 500]) for i in range(0, 3000, 500)])
        print(json.dumps(dict(variant=variant, ridge_acc=round(ridge_accuracy(features, data.labels), 3),
                              largest_grads=[(n, f"{g:.3g}") for g, n in norms[:3]],
                              smallest_grads=[(n, f"{g:.3g}") for g, n in norms[-2:]])), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("probe", "init"))
    parser.add_argument("variant", help="probe: a JSON object; init: a JSON list of objects")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.what == "probe":
        print(json.dumps({"variant": json.loads(args.variant), **probe(json.loads(args.variant))}), flush=True)
    else:
        init(json.loads(args.variant))
    return 0


if __name__ == "__main__":
    sys.exit(main())
