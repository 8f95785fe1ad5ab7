"""Where an independent reproduction failed: ResNet-18 + one GloRe unit after res4, trained with
their optimiser.

The reproduction (slides by Gee Ho Kim, Seoul National University: ResNet-18 on CUB-200, SGD lr
0.04, momentum 0.9, weight decay 5e-4, batch 32, 16 nodes, 256 states) reports "huge loss, not trainable". Our unit starts as the identity (zero-initialised
output BatchNorm) and divides the projected node features by the number of positions, so the same
recipe trains. docs/demo.md has the measured comparison without those two features.
"""

import math

import pytest
import torch
import torch.nn.functional as F

timm = pytest.importorskip("timm")

from glore.data import DistantDigits  # noqa: E402
from glore.models import insert_blocks  # noqa: E402
from glore.models.insert import inserted_blocks  # noqa: E402

STEPS = 200
BATCH = 32


def _train_003(steps: int, *, canvas: int = 32, seed: int = 0, **unit_kwargs):
    torch.manual_seed(seed)
    data = DistantDigits("train", num_samples=steps * BATCH, canvas=canvas, min_distance=4, seed=seed)
    model = timm.create_model("resnet18", pretrained=False, num_classes=10, in_chans=1)
    # res4 = timm's layer3 (256 channels, as in the reproduction's "256 -> 256"); after its last block
    insert_blocks(model, block="glore", units={"res4": [2]},
                  block_kwargs=dict(num_nodes=16, num_state=256, **unit_kwargs))
    opt = torch.optim.SGD(model.parameters(), lr=0.04, momentum=0.9, weight_decay=5e-4)
    model.train()
    losses = []
    for step in range(steps):
        sl = slice(step * BATCH, (step + 1) * BATCH)
        loss = F.cross_entropy(model(data.images[sl]), data.labels[sl])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model, losses


@pytest.mark.slow
def test_resnet18_glore_after_res4_trains_with_papers_003_recipe():
    model, losses = _train_003(STEPS)
    (unit,) = inserted_blocks(model).values()
    assert unit.normalize and unit.num_nodes == 16 and unit.num_state == 256
    assert all(math.isfinite(v) for v in losses), "non-finite training loss"
    k = STEPS // 5
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    assert last < first - 0.05, f"loss did not decrease: first {k} steps {first:.3f}, last {k} {last:.3f}"
    assert max(losses) < 10 * math.log(10), f"loss blew up: max {max(losses):.2f}"
    # the unit took part: its output BatchNorm left zero
    assert float(unit.norm.weight.detach().abs().max()) > 0


def ablation(*, canvas: int = 64, steps: int = 100, seed: int = 0) -> list[dict]:
    """The reproduction's recipe with our unit, without zero-init BN, without normalisation, without both.

    ``python tests/test_stability.py`` prints one JSON line per variant (docs/demo.md quotes them).
    """
    variants = {"ours": {}, "no_zero_init": {"zero_init": False}, "no_normalize": {"normalize": False},
                "neither": {"zero_init": False, "normalize": False}}
    rows = []
    for name, kwargs in variants.items():
        model, losses = _train_003(steps, canvas=canvas, seed=seed, **kwargs)
        finite = [v for v in losses if math.isfinite(v)]
        k = max(1, steps // 5)
        # mean of the last k losses (finite ones), and what the trained model does on the first batch
        data = DistantDigits("val", num_samples=256, canvas=canvas, min_distance=4, seed=seed)
        with torch.no_grad():
            val_loss = float(F.cross_entropy(model.eval()(data.images), data.labels))
        rows.append({"variant": name, "canvas": canvas, "steps": steps, "seed": seed,
                     "nonfinite_steps": len(losses) - len(finite),
                     "max_loss": round(max(finite), 3) if finite else None,
                     "mean_first": round(sum(losses[:k]) / k, 3), "mean_last": round(sum(losses[-k:]) / k, 3),
                     "val_loss_eval_mode": round(val_loss, 3)})
    return rows


def unit_scale(sides=(2, 14, 28)) -> list[dict]:
    """One unit of the reproduction (256 channels, 16 nodes, 256 states) on res4-like features of ``L = side²``.

    Reports the std of the unit's branch before its BatchNorm, the std of what the unit adds to its
    input at initialisation (train mode), with and without normalisation and zero-init.
    """
    from glore.nn import GloRe

    rows = []
    torch.manual_seed(0)
    for side in sides:
        x = torch.randn(8, 256, side, side).relu()           # post-ReLU features, std 0.58
        for normalize in (True, False):
            for zero_init in (True, False):
                torch.manual_seed(0)
                unit = GloRe(256, num_nodes=16, num_state=256, normalize=normalize, zero_init=zero_init)
                with torch.no_grad():
                    v, proj = unit.project_to_nodes(x)
                    pre_bn = unit.extend(torch.matmul(unit.gcn(v), proj))
                    added = unit.train()(x) - x
                rows.append({"L": side * side, "normalize": normalize, "zero_init": zero_init,
                             "input_std": round(float(x.std()), 3), "pre_bn_std": round(float(pre_bn.std()), 3),
                             "added_std": round(float(added.std()), 3)})
    return rows


if __name__ == "__main__":
    import json
    import sys

    torch.set_num_threads(1)
    if sys.argv[1:] == ["scale"]:
        rows = unit_scale()
    else:
        rows = ablation(canvas=int(sys.argv[1]) if len(sys.argv) > 1 else 64)
    for row in rows:
        print(json.dumps(row), flush=True)
