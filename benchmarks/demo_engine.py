"""Engine vs a bare training loop on one epoch of the ``make demo`` recipe (not part of the library).

The engine run is ``glore.engine.runner.train`` on ``configs/demo/<variant>.yaml`` with
``trainer.max_epochs=1``; the bare loop (the reference, here only) trains the same network on the
same data in the same order, with the same optimizer and schedule (``glore.engine.optim``), batch size
and channels-last layout, by slicing the in-memory tensors. Rounds alternate engine, bare, engine,
bare, ...; the script prints the median of the rounds and their ratio for

- ``train epoch``: the training steps of the epoch (the engine's ``time/train_epoch_s``, which leaves
  out the validation pass; the bare loop's step loop), the ``s/epoch`` column of ``make demo``;
- ``whole run``: the whole call (data generation, model, training epoch, validation, checkpoints).

    PYTHONPATH=src python benchmarks/demo_engine.py [--variant glore] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import setup  # noqa: E402


def engine_epoch(variant: str, train_samples: int, val_samples: int, workdir: str,
                 overrides=()) -> tuple[float, float]:
    """``(train epoch seconds, whole run seconds)`` of one engine epoch."""
    from glore import demo
    from glore.engine.config import apply_overrides
    from glore.engine.runner import train

    cfg = demo.variant_config("image", variant, workdir, progress=False, epochs=1,
                              train_samples=train_samples, val_samples=val_samples)
    cfg = apply_overrides(cfg, overrides)
    start = time.perf_counter()
    train(cfg)
    whole = time.perf_counter() - start
    return demo.epoch_metrics(workdir)["sec_per_epoch"][-1], whole


def bare_epoch(variant: str, train_samples: int, val_samples: int) -> tuple[float, float]:
    """``(train epoch seconds, whole run seconds)`` of the reference loop on the same recipe."""
    from glore import demo
    from glore.data.distant_digits import DistantDigits
    from glore.engine.classification import build_model
    from glore.engine.loaders import EpochShuffleSampler
    from glore.engine.optim import build_optimizer, build_scheduler

    cfg = demo.variant_config("image", variant, "unused", progress=False, epochs=1,
                              train_samples=train_samples, val_samples=val_samples)
    start = time.perf_counter()
    torch.manual_seed(cfg["seed"])
    options = dict(cfg["data"]["options"])
    train_set = DistantDigits("train", **options)
    val_set = DistantDigits("val", **{**options, **cfg["data"]["val_options"]})
    model = build_model(cfg["model"]).to(memory_format=torch.channels_last)
    batch = cfg["data"]["batch_size"]
    steps = len(train_set) // batch
    optimizer = build_optimizer(model, cfg["optim"])
    scheduler = build_scheduler(optimizer, cfg["optim"], steps, 1)
    order = torch.tensor(list(EpochShuffleSampler(len(train_set), seed=cfg["seed"])))
    epoch_start = time.perf_counter()
    model.train()
    total = 0.0
    for step in range(steps):
        idx = order[step * batch:(step + 1) * batch]
        x = train_set.images[idx].contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), train_set.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += float(loss.detach())
    epoch = time.perf_counter() - epoch_start
    model.eval()
    with torch.no_grad():
        val_batch = cfg["data"]["val_batch_size"]
        correct = sum(int((model(val_set.images[i:i + val_batch].contiguous(memory_format=torch.channels_last))
                           .argmax(1) == val_set.labels[i:i + val_batch]).sum())
                      for i in range(0, len(val_set), val_batch))
    assert 0 <= correct <= len(val_set) and total > 0
    return epoch, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="glore", choices=("baseline", "glore", "gc", "nl"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-samples", type=int, default=12000)
    parser.add_argument("--val-samples", type=int, default=3000)
    parser.add_argument("--json", default=None, help="also write the numbers here")
    parser.add_argument("--engine-override", action="append", default=[],
                        help="key.sub=value for the engine's config (to find where time goes)")
    args = parser.parse_args(argv)
    machine = setup(threads=args.threads)
    import logging
    import warnings
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    times = {"engine": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            load = os.getloadavg()[0]
            times["engine"].append(engine_epoch(args.variant, args.train_samples, args.val_samples,
                                                os.path.join(tmp, f"run{r}"), args.engine_override))
            times["bare"].append(bare_epoch(args.variant, args.train_samples, args.val_samples))
            print(f"round {r + 1}: engine {times['engine'][-1][0]:.2f} s, bare {times['bare'][-1][0]:.2f} s "
                  f"(train epoch); load {load:.2f}", flush=True)
    result = {"cpu": machine["cpu"], "threads": machine["threads"], "variant": args.variant,
              "rounds": args.rounds, "train_samples": args.train_samples}
    print(f"CPU: {machine['cpu']} ({machine['threads']} threads), variant {args.variant}, "
          f"{args.train_samples} training images, {args.rounds} rounds")
    for i, what in enumerate(("train epoch", "whole run")):
        engine = statistics.median(t[i] for t in times["engine"])
        bare = statistics.median(t[i] for t in times["bare"])
        result[what] = {"engine_s": engine, "bare_s": bare, "ratio": engine / bare}
        print(f"{what:<12} engine {engine:7.2f} s  bare {bare:7.2f} s  engine/bare {engine / bare:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
