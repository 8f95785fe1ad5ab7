"""The blocks under bf16 and fp16 autocast at Cityscapes res4 sizes (128 x 256 positions, output
stride 8 of 1024 x 2048), forward and backward, on activations the size of a trained network's."""

from __future__ import annotations

import pytest
import torch

from glore.nn import GloRe, create_block
from test_nn_reference import randomize_

FP16_MAX = torch.finfo(torch.float16).max
RES4 = (128, 256)


def _activations(channels: int, scale: float = 8.0) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(1, channels, *RES4).relu_() * scale       # post-ReLU, all positive


def _step(block, x, dtype=None):
    xi = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        y = block(xi)
    y.float().backward(torch.cos(torch.arange(y.numel(), dtype=torch.float32)).view_as(y))
    grads = [xi.grad] + [p.grad.clone() for p in block.parameters()]
    block.zero_grad(set_to_none=True)
    return y.detach().float(), grads


def _relative(got, expected):
    return ((got - expected).norm() / expected.norm()).item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_glore_sums_over_positions_stay_in_range(dtype):
    unit = GloRe(16, mid=4, zero_init=False).train()
    x = _activations(16)
    with torch.no_grad():       # the sums of V = phi(X) B^T before the division by L leave fp16's range
        flat = x.flatten(2)
        assert (unit.reduce(flat) @ unit.project(flat).mT).abs().max() > FP16_MAX
    y32, grads32 = _step(unit, x)
    y16, grads16 = _step(unit, x, dtype)
    assert torch.isfinite(y16).all()
    assert all(torch.isfinite(g).all() for g in grads16)
    assert _relative(y16 - x, y32 - x) < 0.03
    assert _relative(grads16[0], grads32[0]) < 0.03


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name, kwargs", [("nl", dict(sub_sample=True)), ("snl", {}),
                                          ("gc", dict(ratio=1 / 4)), ("se", dict(ratio=1 / 4))],
                         ids=["nl", "snl", "gc", "se"])
def test_attention_blocks_stay_finite(name, kwargs, dtype):
    # NL attends from all 32768 positions to the 8192 of its 2x2-pooled keys: 2^28 weights, a softmax
    # over 8192 logits per position
    block = randomize_(create_block(name, 16, **kwargs), std=0.2).train()
    x = _activations(16, scale=2.0)
    y16, grads16 = _step(block, x, dtype)
    assert torch.isfinite(y16).all()
    assert all(torch.isfinite(g).all() for g in grads16)
    assert (y16 - x).abs().max() > 0.1                  # the block adds something
    if name != "nl":        # (NL's fp32 pass takes longer than both of the others: see its 64 x 64 test)
        y32, _ = _step(block, x)
        assert _relative(y16 - x, y32 - x) < 0.05
