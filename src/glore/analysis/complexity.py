"""Parameter and multiply-add counts, in the papers' convention.

Both papers report FLOPs as multiply-adds counting convolutions, linear layers and the matrix
products inside the blocks. :func:`summary` counts exactly those with fvcore's tracer: one
multiply-add per output element and contraction step of ``aten::_convolution``, ``aten::linear``,
``aten::addmm``, ``aten::matmul``, ``aten::mm``, ``aten::bmm``, ``aten::baddbmm`` and
``aten::einsum``. Normalisation, pooling, softmax, element-wise ops and interpolation are not
counted (they are listed under ``uncounted_ops``).

fvcore's own ``aten::matmul`` handle multiplies the first operand's size by the second's last dim,
which drops the batch of a broadcast ``(out, in) @ (B, in, L)`` product; the handle here counts
``numel(output) * K`` for any broadcast, which is exact for every case.
"""

from __future__ import annotations

from ..errors import ArgumentError
import math
import warnings
from collections.abc import Sequence

import torch
from torch import nn

def matmul_macs(inputs, outputs) -> int:
    """Multiply-adds of ``aten::matmul`` / ``mm`` / ``bmm``: ``numel(output) * K``.

    ``K`` is the contraction size, the last dim of the first operand (also for 1-D operands).
    """
    from fvcore.nn.jit_handles import get_shape

    return math.prod(get_shape(outputs[0])) * get_shape(inputs[0])[-1]


def baddbmm_macs(inputs, outputs) -> int:
    """Multiply-adds of ``aten::baddbmm(input, batch1, batch2)``: those of ``batch1 @ batch2``."""
    return matmul_macs(inputs[1:], outputs)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once; works on the meta device)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, inputs: torch.Tensor | Sequence[torch.Tensor]):
    """Trace ``model(*inputs)`` with fvcore and return ``(total, by_operator, uncounted_ops)``."""
    with warnings.catch_warnings():      # fvcore's import scripts a helper (deprecation warning)
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis
        from fvcore.nn.jit_handles import (addmm_flop_jit, conv_flop_jit, einsum_flop_jit,
                                           linear_flop_jit)

    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)

    analysis = FlopCountAnalysis(model, inputs).clear_op_handles()
    analysis.set_op_handle(**{
        "aten::_convolution": conv_flop_jit, "aten::linear": linear_flop_jit,
        "aten::addmm": addmm_flop_jit, "aten::einsum": einsum_flop_jit,
        "aten::matmul": matmul_macs, "aten::mm": matmul_macs, "aten::bmm": matmul_macs,
        "aten::baddbmm": baddbmm_macs,
    })
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total = analysis.total()
        by_operator = dict(analysis.by_operator())
        uncounted = dict(analysis.unsupported_ops())
    return int(total), {k: int(v) for k, v in by_operator.items()}, uncounted


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
    if device.type == "meta":
        raise ArgumentError("summary needs materialised parameters to trace the model; got a model on "
                         "the meta device (use count_parameters for parameter counts)")
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
