"""Direct implementations of the blocks' equations ("Graph-Based Global Reasoning Networks",
arXiv 1811.12814; "Global Context Networks", arXiv 2012.13375), written independently of
``glore.nn``: plain einsum over ``(B, C, L)`` tensors, reading only the modules' parameters.

The other ``test_nn_*`` files import these; the tests at the end check the helpers themselves
against PyTorch's own functional ops.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def randomize_(module: nn.Module, *, std: float = 0.3) -> nn.Module:
    """Random weights everywhere, zero-initialised parts included; BN running stats too."""
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen, dtype=b.dtype) * 0.5)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen, dtype=b.dtype) + 0.5)
    return module


def _w(conv: nn.Module) -> torch.Tensor:
    """A 1x1 conv weight ``(out, in, 1)`` as a matrix ``(out, in)``."""
    return conv.weight.reshape(conv.weight.shape[0], conv.weight.shape[1])


def _conv(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """1x1 conv of ``x`` ``(B, C, L)`` via einsum."""
    y = torch.einsum("oc,bcl->bol", _w(conv), x)
    return y if conv.bias is None else y + conv.bias[None, :, None]


def _batch_norm(bn: nn.BatchNorm1d, y: torch.Tensor, training: bool) -> torch.Tensor:
    """BatchNorm over ``(B, C, L)``: statistics over batch and all positions when training."""
    if training:
        mean = y.mean(dim=(0, 2))
        var = y.var(dim=(0, 2), unbiased=False)
    else:
        mean, var = bn.running_mean, bn.running_var
    y = (y - mean[None, :, None]) / torch.sqrt(var[None, :, None] + bn.eps)
    return y * bn.weight[None, :, None] + bn.bias[None, :, None]


def glore_nodes(m, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1: ``B = theta(X)`` ``(B, N, L)`` and ``V = B phi(X)^T`` ``(B, N, C_s)`` (/L if normalize)."""
    flat = x.reshape(*x.shape[:2], -1)
    state = _conv(m.reduce, flat)                     # (B, C_s, L)
    proj = _conv(m.project, flat)                     # (B, N, L)
    v = torch.einsum("bnl,bsl->bns", proj, state)
    if m.normalize:
        v = v / flat.shape[-1]
    return v, proj


def glore_ref(m, x: torch.Tensor, *, training: bool = False) -> torch.Tensor:
    """GloRe unit (GloRe paper §3): Eq. 1, ``gcn_layers`` x Eq. 2, Eq. 3-4, extension, BN, residual."""
    v, proj = glore_nodes(m, x)                       # v: (B, N, C_s), the paper's N x C_s matrix
    for layer in m.gcn:
        a_g = _w(layer.node)                          # (N, N): the learned adjacency
        w_g = _w(layer.state)                         # (C_s, C_s)
        h = v + torch.einsum("nm,bms->bns", a_g, v) + layer.node.bias[None, :, None]   # (I + A_g) V
        v = torch.einsum("bns,ts->bnt", torch.relu(h), w_g)                              # ... W_g
    y = torch.einsum("bns,bnl->bsl", v, proj)         # Y = B^T Z, back to positions
    y = _batch_norm(m.norm, torch.einsum("cs,bsl->bcl", _w(m.extend), y), training)
    return x + y.reshape(x.shape)


def pairwise_ref(att, flat: torch.Tensor) -> torch.Tensor:
    """``w_ij`` of GCNet Eq. 1 for the four pairwise functions; ``(B, L, L)``."""
    n_p = flat.shape[-1]
    if att.pairwise == "gaussian":
        return torch.softmax(torch.einsum("bci,bcj->bij", flat, flat), dim=-1)
    q, k = _conv(att.query, flat), _conv(att.key, flat)
    if att.pairwise == "embedded_gaussian":
        return torch.softmax(torch.einsum("bci,bcj->bij", q, k), dim=-1)
    if att.pairwise == "dot_product":
        return torch.einsum("bci,bcj->bij", q, k) / n_p
    # concat: ReLU(w^T [q_i, k_j]) / N_p with the concatenation built explicitly
    b, d, _ = q.shape
    pairs = torch.cat([q[:, :, :, None].expand(b, d, n_p, n_p), k[:, :, None, :].expand(b, d, n_p, n_p)], 1)
    return torch.relu(torch.einsum("d,bdij->bij", att.concat.weight.reshape(-1), pairs)) / n_p


def nonlocal_ref(m, x: torch.Tensor, *, training: bool = False) -> torch.Tensor:
    """NL, GCNet Eq. 1: ``z_i = x_i + BN(W_z sum_j w_ij W_v x_j)``."""
    flat = x.reshape(*x.shape[:2], -1)
    w = pairwise_ref(m.attention, flat)
    y = torch.einsum("bij,bdj->bdi", w, _conv(m.value, flat))
    y = _batch_norm(m.norm, torch.einsum("cd,bdl->bcl", _w(m.out), y), training)
    return x + y.reshape(x.shape)


def context_weights_ref(key: nn.Module, flat: torch.Tensor) -> torch.Tensor:
    """``softmax_j(W_k x_j)`` as ``(B, L)``, written as exp / sum of exp."""
    logits = torch.einsum("c,bcl->bl", _w(key)[0], flat) + key.bias[0]
    e = torch.exp(logits - logits.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def _broadcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.reshape(*t.shape, *([1] * (x.dim() - 2)))


def snl_ref(m, x: torch.Tensor) -> torch.Tensor:
    """SNL, GCNet Eq. 2-3: ``z_i = x_i + W_v sum_j softmax_j(W_k x_j) x_j``."""
    flat = x.reshape(*x.shape[:2], -1)
    ctx = torch.einsum("bl,bcl->bc", context_weights_ref(m.attention.key, flat), flat)
    t = torch.einsum("oc,bc->bo", _w(m.value), ctx) + m.value.bias
    return x + _broadcast(t, x)


def gc_ref(m, x: torch.Tensor, *, pooling: str, fusion: str, layer_norm: bool,
           bottleneck: bool) -> torch.Tensor:
    """GC, GCNet Eq. 5 and its ablations; SE is ``pooling=avg, fusion=scale, layer_norm=False``."""
    flat = x.reshape(*x.shape[:2], -1)
    if pooling == "att":
        ctx = torch.einsum("bl,bcl->bc", context_weights_ref(m.attention.key, flat), flat)
    else:
        ctx = flat.sum(-1) / flat.shape[-1]
    if bottleneck:
        first, last = m.transform[0], m.transform[-1]
        h = torch.einsum("oc,bc->bo", _w(first), ctx) + first.bias
        if layer_norm:
            ln = m.transform[1]
            mu, var = h.mean(-1, keepdim=True), h.var(-1, unbiased=False, keepdim=True)
            h = (h - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias
        t = torch.einsum("oc,bc->bo", _w(last), torch.relu(h)) + last.bias
    else:
        t = torch.einsum("oc,bc->bo", _w(m.transform[0]), ctx) + m.transform[0].bias
    t = _broadcast(t, x)
    return x + t if fusion == "add" else x * (1 / (1 + torch.exp(-t)))


def glore_param_count(channels: int, mid: int) -> int:
    """Closed-form parameter count of a GloRe unit (C_s = 2 mid, N = mid), for cross-checking."""
    s, n = 2 * mid, mid
    return (channels * s + s) + (channels * n + n) + (n * n + n) + s * s + s * channels + 2 * channels


def num_positions(shape) -> int:
    return math.prod(shape[2:])


# --- the helpers themselves, against PyTorch's functional ops ------------------------------------


def test_conv_helper_matches_conv1d():
    conv = randomize_(nn.Conv1d(5, 3, 1).double())
    x = torch.randn(2, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(_conv(conv, x), torch.nn.functional.conv1d(x, conv.weight, conv.bias))


def test_batch_norm_helper_matches_batch_norm2d():
    bn2d = randomize_(nn.BatchNorm2d(4, eps=1e-4).double())
    x = torch.randn(3, 4, 5, 6, dtype=torch.float64)
    flat = x.flatten(2)
    for training in (False, True):
        bn2d.train(training)
        expected = bn2d(x).flatten(2)
        torch.testing.assert_close(_batch_norm(bn2d, flat, training), expected)


def test_context_weights_helper_is_a_softmax():
    key = randomize_(nn.Conv1d(4, 1, 1).double())
    x = torch.randn(2, 4, 9, dtype=torch.float64)
    expected = torch.softmax(torch.nn.functional.conv1d(x, key.weight, key.bias)[:, 0], dim=-1)
    torch.testing.assert_close(context_weights_ref(key, x), expected)


def test_glore_param_count_formula_matches_design():
    # one unit with C = 1024, mid = 256 (a Res4 unit of ResNet-50) has 1,641,472 parameters
    assert glore_param_count(1024, 256) == 1_641_472
