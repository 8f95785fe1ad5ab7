"""NonLocal(sub_sample=True): keys and values from a 2x2 max-pooled input, queries at full size."""

import pytest
import torch
import torch.nn.functional as F

from glore.nn import NonLocal


def _reference(block: NonLocal, x: torch.Tensor) -> torch.Tensor:
    """Eq. 1 with j running over the pooled positions, written position by position."""
    pool = {3: lambda t: F.max_pool1d(t, 2, ceil_mode=True),
            4: lambda t: F.max_pool2d(t, 2, ceil_mode=True),
            5: lambda t: F.max_pool3d(t, (1, 2, 2), ceil_mode=True)}[x.dim()]
    xs, ps = x.flatten(2), pool(x).flatten(2)
    att = block.attention
    w = lambda m: m.weight[:, :, 0]
    q = torch.einsum("oc,bcl->bol", w(att.query), xs) + att.query.bias[:, None]
    k = torch.einsum("oc,bcl->bol", w(att.key), ps) + att.key.bias[:, None]
    v = torch.einsum("oc,bcl->bol", w(block.value), ps) + block.value.bias[:, None]
    out = torch.empty_like(xs)
    for b in range(x.shape[0]):
        for i in range(xs.shape[-1]):
            weights = torch.softmax(q[b, :, i] @ k[b], dim=0)
            y = (v[b] * weights).sum(-1)
            out[b, :, i] = w(block.out) @ y
    bn = block.norm
    out = (out - bn.running_mean[:, None]) / torch.sqrt(bn.running_var[:, None] + bn.eps)
    out = out * bn.weight[:, None] + bn.bias[:, None]
    return x + out.view(x.shape)


@pytest.mark.parametrize("shape", [(2, 6, 7), (2, 6, 5, 7), (1, 6, 3, 4, 5)])
def test_sub_sampled_non_local_matches_equation(shape):
    block = NonLocal(6, sub_sample=True).double().eval()
    torch.nn.init.normal_(block.norm.weight)
    torch.nn.init.normal_(block.norm.running_mean)
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(block(x), _reference(block, x))


def test_sub_sampling_keeps_parameters_and_shrinks_attention():
    full, sub = NonLocal(8), NonLocal(8, sub_sample=True)
    assert sum(p.numel() for p in full.parameters()) == sum(p.numel() for p in sub.parameters())
    seen = {}

    def hook(module, inputs, output):
        seen["attn"] = output.shape

    sub.attention.register_forward_hook(hook)
    sub(torch.randn(1, 8, 6, 8))
    assert seen["attn"] == (1, 48, 12)        # 48 queries over 3x4 pooled keys
