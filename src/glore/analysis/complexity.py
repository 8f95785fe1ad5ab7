"""Parameter and multiply-add counts, in the papers' convention.

Both papers report FLOPs as multiply-adds counting convolutions, linear layers and the matrix
products inside the blocks. :func:`summary` counts exactly those with torch's
``torch.utils.flop_counter.FlopCounterMode`` (convolutions, ``mm``, ``addmm``, ``bmm``,
``baddbmm`` and attention kernels, at the dispatcher level, so ``matmul``/``einsum``/``linear``
are counted through the products they run) and halves its FLOPs into multiply-adds.
Normalisation, pooling, softmax, element-wise ops and interpolation are not counted (they are
listed under ``uncounted_ops``). The count runs on the meta device too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from glore.errors import ArgumentError


class _OperatorLog(TorchDispatchMode):
    """Counts the aten operators a forward pass runs, to report those the FLOP counter skips."""

    def __init__(self):
        super().__init__()
        self.calls = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[f"aten::{func.overloadpacket.__name__}"] += 1
        return func(*args, **(kwargs or {}))


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once; works on the meta device)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor]):
    """Run ``model(*inputs)`` under torch's FLOP counter; return ``(total, by_operator, uncounted_ops)``
    in multiply-adds (FLOPs / 2), ``by_operator`` keyed by aten operator name (``mm``, ``convolution``)."""
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    counter, log = FlopCounterMode(display=False), _OperatorLog()
    with counter, log:
        model(*inputs)
    by_operator = {op.__name__: flops // 2 for op, flops in counter.get_flop_counts()["Global"].items()}
    counted = {f"aten::{name}" for name in by_operator}
    uncounted = {name: n for name, n in sorted(log.calls.items()) if name not in counted}
    return counter.get_total_flops() // 2, by_operator, uncounted


def summary(model: nn.Module, input_size: Sequence[int] = (3, 224, 224), *,
            batch_size: int = 1) -> dict:
    """Parameters and multiply-adds of ``model`` for one input of ``input_size``.

    Args:
        model: any module taking one tensor; counted in eval mode (its mode is restored after).
        input_size: ``(C, H, W)`` for images, ``(C, T, H, W)`` for video clips.
        batch_size: images per traced batch; the returned MACs are per input (divided by it).

    Returns:
        dict with ``params`` (count), ``trainable_params``, ``macs`` and ``gmacs`` (per input,
        multiply-adds / 1e9, the papers' "FLOPs"), ``macs_by_operator``, ``uncounted_ops``
        (operator -> occurrences, not part of the count) and ``input_size``.
    """
    input_size = tuple(input_size)
    if len(input_size) not in (3, 4) or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise ArgumentError(f"input_size must be (C, H, W) or (C, T, H, W) positive ints, "
                         f"got {input_size!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros((batch_size, *input_size), device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            total, by_op, uncounted = count_macs(model, x)
    finally:
        model.train(was_training)
    macs = total // batch_size
    return {
        "params": count_parameters(model),
        "trainable_params": count_parameters(model, trainable_only=True),
        "macs": macs,
        "gmacs": macs / 1e9,
        "macs_by_operator": {k: v // batch_size for k, v in by_op.items()},
        "uncounted_ops": uncounted,
        "input_size": input_size,
    }
