"""The heads of GCNet Table 13 at the level of their equations: CCNet's criss-cross attention,
DANet's position and channel attention, ANN's APNB and AFNB; and their segmenters."""

import math

import pytest
import torch
from torch import nn

from glore.errors import ArgumentError
from glore.models import create_segmenter
from glore.models.segmentation_heads import AsymmetricNonLocalHead, DualAttentionHead
from glore.nn import (AsymmetricFusion, AsymmetricNonLocal, ChannelAttention, CrissCrossAttention,
                      PositionAttention)
from glore.nn.asymmetric_non_local import asymmetric_attention, pyramid_sample


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv1x1(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv on one position's channel vector ``x`` ``(C,)``."""
    return conv.weight[:, :, 0, 0] @ x + conv.bias


# ---- criss-cross attention (CCNet Eq. 1-2) ----

def criss_cross_loop(block: CrissCrossAttention, x: torch.Tensor) -> torch.Tensor:
    """One pass, position by position: each u attends to its row and to its column without u."""
    out = x.clone()
    _, _, height, width = x.shape
    for b in range(x.shape[0]):
        for h in range(height):
            for w in range(width):
                keys = [(h, v) for v in range(width)] + [(g, w) for g in range(height) if g != h]
                q = conv1x1(block.query, x[b, :, h, w])
                energy = torch.stack([q @ conv1x1(block.key, x[b, :, g, v]) for g, v in keys])
                weights = torch.softmax(energy, dim=0)
                values = torch.stack([conv1x1(block.value, x[b, :, g, v]) for g, v in keys])
                out[b, :, h, w] = x[b, :, h, w] + block.gamma * (weights[:, None] * values).sum(0)
    return out


def test_criss_cross_matches_a_loop_over_rows_and_columns():
    torch.manual_seed(0)
    block = CrissCrossAttention(8, inner=2, recurrence=1, zero_init=False)
    nn.init.constant_(block.gamma, 0.7)
    x = torch.randn(2, 8, 3, 4)
    with torch.no_grad():
        assert torch.allclose(block(x), criss_cross_loop(block, x), atol=1e-5)
        column, row = block.attention(x)
    assert column.shape == (2, 3, 4, 3) and row.shape == (2, 3, 4, 4)
    # H + W - 1 positions: the diagonal of the column part is the position itself, given no weight there
    assert torch.allclose(column.sum(-1) + row.sum(-1), torch.ones(2, 3, 4))
    assert (column[:, torch.arange(3), :, torch.arange(3)] == 0).all()


def test_criss_cross_recurrence_shares_weights_and_reaches_every_position():
    torch.manual_seed(0)
    block = CrissCrossAttention(8, inner=2, recurrence=2, zero_init=False)
    x = torch.randn(1, 8, 3, 3)
    with torch.no_grad():
        assert torch.allclose(block(x), block.attend(block.attend(x)), atol=1e-6)
    for recurrence, reaches in ((1, False), (2, True)):
        block.recurrence = recurrence
        x = torch.randn(1, 8, 3, 3, requires_grad=True)
        block(x)[0, :, 0, 0].sum().backward()
        # (2, 2) shares neither row nor column with (0, 0): one pass cannot see it, two can
        assert bool(x.grad[0, :, 2, 2].abs().sum() > 0) is reaches


def test_criss_cross_starts_as_identity_and_defaults():
    block = CrissCrossAttention(64)
    assert (block.inner, block.recurrence) == (8, 2)
    assert n_params(block) == 2 * (64 * 8 + 8) + 64 * 64 + 64 + 1
    x = torch.randn(2, 64, 5, 6)
    assert torch.equal(block(x), x)
    with pytest.raises(ArgumentError, match="2-D feature map"):
        block(torch.randn(2, 64, 5))


# ---- DANet's position and channel attention (Eq. 1-4) ----

def test_position_attention_matches_its_equation():
    torch.manual_seed(0)
    block = PositionAttention(6, inner=3, zero_init=False)
    nn.init.constant_(block.alpha, 0.5)
    x = torch.randn(1, 6, 2, 3)
    a = x[0].flatten(1)                                          # (C, N)
    expected = torch.empty_like(a)
    with torch.no_grad():
        for j in range(a.shape[1]):
            c_j = conv1x1(block.query, a[:, j])
            s = torch.softmax(torch.stack([conv1x1(block.key, a[:, i]) @ c_j for i in range(a.shape[1])]), 0)
            context = sum(s[i] * conv1x1(block.value, a[:, i]) for i in range(a.shape[1]))
            expected[:, j] = a[:, j] + 0.5 * context
        assert torch.allclose(block(x)[0].flatten(1), expected, atol=1e-5)


def test_channel_attention_hand_computed():
    # two channels at one position, A = (1, 0): energies A_i . A_j = [[1, 0], [0, 0]]
    block = ChannelAttention(2, zero_init=False)
    x = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    e = math.e
    expected = torch.tensor([1 + e / (e + 1), 0.5]).view(1, 2, 1, 1)   # E_j = A_j + sum_i x_ji A_i
    with torch.no_grad():
        assert torch.allclose(block(x), expected)
    assert n_params(ChannelAttention(512)) == 1


def test_dual_attention_starts_as_identity():
    x = torch.randn(2, 16, 4, 5)
    assert torch.equal(PositionAttention(16)(x), x)
    assert torch.equal(ChannelAttention(16)(x), x)
    assert PositionAttention(512).inner == 64


# ---- ANN's pyramid sampling, APNB and AFNB ----

def test_pyramid_sample_gives_110_anchors_and_their_means():
    x = torch.arange(2 * 3 * 12 * 12, dtype=torch.float32).view(2, 3, 12, 12)
    anchors = pyramid_sample(x)
    assert anchors.shape == (2, 3, 1 + 9 + 36 + 64)
    assert torch.allclose(anchors[..., 0], x.mean((2, 3)))
    assert torch.allclose(anchors[..., 1], x[..., :4, :4].mean((2, 3)))   # the 3x3 grid's first cell


def test_asymmetric_attention_matches_its_equation():
    torch.manual_seed(0)
    query, key, value = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 4, 4), torch.randn(1, 5, 4, 4)
    anchors_k = torch.stack([key[0].mean((1, 2))] + [key[0, :, 2 * r:2 * r + 2, 2 * c:2 * c + 2].mean((1, 2))
                                                     for r in range(2) for c in range(2)], 1)      # (4, 5)
    anchors_v = torch.stack([value[0].mean((1, 2))] + [value[0, :, 2 * r:2 * r + 2, 2 * c:2 * c + 2].mean((1, 2))
                                                       for r in range(2) for c in range(2)], 1)    # (5, 5)
    expected = torch.empty(5, 9)
    for n, q in enumerate(query[0].flatten(1).T):
        expected[:, n] = anchors_v @ torch.softmax(q @ anchors_k, 0)
    out = asymmetric_attention(query, key, value, sizes=(1, 2))
    assert out.shape == (1, 5, 3, 3)
    assert torch.allclose(out[0].flatten(1), expected, atol=1e-5)


def test_apnb_with_one_anchor_adds_the_mean_value():
    # one 1x1 anchor: every position's weight on it is 1, so W_o(O) is W_o of the mean of gamma(X)
    torch.manual_seed(0)
    block = AsymmetricNonLocal(6, key_channels=3, value_channels=4, sizes=(1,), zero_init=False).eval()
    x = torch.randn(2, 6, 3, 5)
    with torch.no_grad():
        pooled = block.out(block.value(x).mean((2, 3), keepdim=True)).expand(-1, -1, 3, 5)
        assert torch.allclose(block(x), block.fuse(torch.cat([pooled, x], 1)), atol=1e-5)


def test_apnb_shares_query_and_key_and_starts_with_zero_context():
    block = AsymmetricNonLocal(512).eval()
    assert not hasattr(block, "query")                       # W_phi = W_theta (one transform)
    x = torch.randn(1, 512, 9, 9)
    with torch.no_grad():
        assert torch.equal(block(x), block.fuse(torch.cat([torch.zeros_like(x), x], 1)))


def test_afnb_queries_the_low_level_map():
    torch.manual_seed(0)
    block = AsymmetricFusion(8, 4, key_channels=3, value_channels=3, sizes=(1, 2), zero_init=False).eval()
    high, low = torch.randn(1, 8, 6, 6), torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        out = block(high, low)
        assert out.shape == (1, 8, 6, 6)
        assert not torch.allclose(out, block(high, low + 1))    # keys and values come from c4
        nn.init.zeros_(block.out.weight), nn.init.zeros_(block.out.bias)
        assert torch.equal(block(high, low), block(high, low + 1))
    with pytest.raises(ArgumentError, match="4 channels"):
        block(high, high)


# ---- the segmenters ----

@pytest.mark.parametrize("head,cls", [("ccnet", CrissCrossAttention), ("danet", DualAttentionHead),
                                      ("ann", AsymmetricNonLocalHead)])
def test_heads_train_and_give_logits_at_input_size(head, cls):
    model = create_segmenter("resnet18", head=head, num_classes=5, channels=64, aux_channels=32)
    assert isinstance(model.head.context[0] if head == "ccnet" else model.head, cls)
    out = model.train()(torch.randn(2, 3, 41, 57))
    assert out["out"].shape == out["aux"].shape == (2, 5, 41, 57)
    out["out"].mean().backward()
    assert all(p.grad is not None for n, p in model.head.named_parameters() if "classifier" in n)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 33, 33)).shape == (1, 5, 33, 33)


def test_ann_head_reads_c4():
    model = create_segmenter("resnet18", head="ann", num_classes=3, channels=32, aux=False).eval()
    c4, c5 = model.backbone(torch.randn(1, 3, 64, 64))
    with torch.no_grad():
        # W_o starts at zero (the attended half of AFNB's concatenation is zero at step 0)
        assert torch.equal(model.head(c5, c4), model.head(c5, torch.zeros_like(c4)))
        nn.init.normal_(model.head.fusion.out.weight)
        assert not torch.allclose(model.head(c5, c4), model.head(c5, torch.zeros_like(c4)))


def test_head_parameters_in_the_ccnet_set_up():
    """GCNet Table 13's heads over the FCN of Table 12 (R101 with the deep stem, aux width 512),
    counted on the meta device: CCNet adds one criss-cross block over the concatenating FCN."""
    with torch.device("meta"):
        build = dict(backbone="resnet101s", aux_channels=512, multigrid=None)
        fcn = create_segmenter(head=None, concat_input=True, **build)
        ccnet = create_segmenter(head="ccnet", **build)
        danet = create_segmenter(head="danet", **build)
        ann = create_segmenter(head="ann", **build)
        no_concat = create_segmenter(head=None, **build)
    assert n_params(ccnet) - n_params(fcn) == n_params(CrissCrossAttention(512)) == 328_321
    # DANet: a second branch (3x3 2048->512, 3x3 512->512 with BN) and the position attention's
    # convs replace the concatenation's 3x3 conv (2560->512)
    branch = 2048 * 512 * 9 + 512 * 512 * 9 + 2 * 2 * 512
    assert n_params(danet) - n_params(no_concat) == branch + n_params(PositionAttention(512)) + 1
    assert n_params(ann.head) == (n_params(AsymmetricFusion(2048, 1024)) + 2048 * 512 * 9 + 2 * 512
                                  + n_params(AsymmetricNonLocal(512)) + 512 * 19 + 19)


@pytest.mark.parametrize("kwargs,match", [
    (dict(head="danet", head_depth=2), "one attention module"),
    (dict(head="ann", concat_input=True), "no c5 concatenation"),
    (dict(head="danet", head_kwargs={"ratio": 0.25}), "bad head_kwargs for DualAttentionHead"),
    (dict(head="ccnet", head_kwargs={"mid": 4}), "bad head_kwargs for CrissCrossAttention"),
    (dict(head="pspnet"), "head must be one of"),
])
def test_head_option_errors(kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        create_segmenter("resnet18", num_classes=3, channels=32, **kwargs)
