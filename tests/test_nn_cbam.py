"""CBAM (arXiv 1807.06521): its equations on a hand-computed case, against timm's CbamModule, the
identity at initialisation, insertion like SE, and its errors."""

from __future__ import annotations

import math

import pytest
import torch

from glore.errors import GloreError
from glore.nn import CBAM, create_block
from test_nn_reference import randomize_


def _sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_hand_computed_case():
    # C = 2, one hidden unit, a 1x1 spatial conv: every number below is worked out by hand
    block = CBAM(2, ratio=1 / 2, kernel_size=1)
    with torch.no_grad():
        block.channel.mlp[0].weight.copy_(torch.tensor([[[1.0], [1.0]]]))      # W_0 = [1, 1]
        block.channel.mlp[2].weight.copy_(torch.tensor([[[1.0]], [[-1.0]]]))   # W_1 = [1, -1]^T
        block.spatial.conv.weight.copy_(torch.tensor([[[[0.5]], [[-1.0]]]]))   # 0.5 avg_c - max_c
    x = torch.tensor([[[[1.0, 3.0]], [[2.0, -2.0]]]])                           # (1, 2, 1, 2)
    # F_avg = [2, 0], F_max = [3, 2]: MLP(F_avg) = 2 * [1, -1], MLP(F_max) = 5 * [1, -1]
    gate_c = [_sigmoid(7.0), _sigmoid(-7.0)]
    f1 = [[1.0 * gate_c[0], 3.0 * gate_c[0]], [2.0 * gate_c[1], -2.0 * gate_c[1]]]   # F' = M_c F
    expected = []
    for c in range(2):
        row = []
        for j in range(2):
            mean_c, max_c = (f1[0][j] + f1[1][j]) / 2, max(f1[0][j], f1[1][j])
            row.append(f1[c][j] * _sigmoid(0.5 * mean_c - max_c))                    # F'' = M_s F'
        expected.append([row])
    torch.testing.assert_close(block(x), torch.tensor([expected]))


def test_matches_timm_cbam_module():
    # timm's independent implementation: a conv + BatchNorm in the spatial branch, which in eval mode
    # with zero mean and beta is our conv scaled by gamma / sqrt(var + eps)
    from timm.layers.cbam import CbamModule

    torch.manual_seed(0)
    theirs = CbamModule(32, rd_ratio=1 / 8, spatial_kernel_size=7).eval()
    bn = theirs.spatial.conv.bn
    with torch.no_grad():
        bn.weight.fill_(1.7)
        bn.running_var.fill_(0.6)
    ours = CBAM(32, ratio=1 / 8, kernel_size=7).eval()
    with torch.no_grad():
        ours.channel.mlp[0].weight.copy_(theirs.channel.fc1.weight.squeeze(-1))
        ours.channel.mlp[2].weight.copy_(theirs.channel.fc2.weight.squeeze(-1))
        ours.spatial.conv.weight.copy_(theirs.spatial.conv.conv.weight * 1.7 / math.sqrt(0.6 + bn.eps))
    x = torch.randn(2, 32, 9, 11)
    torch.testing.assert_close(ours(x), theirs(x))
    x_cl = x.to(memory_format=torch.channels_last)
    torch.testing.assert_close(ours(x_cl), theirs(x))


def test_shapes_and_parameters():
    block = create_block("cbam", 64)            # r = 16: 64 -> 4 -> 64, and a 7x7 conv of 2 maps
    assert sum(p.numel() for p in block.parameters()) == 2 * 64 * 4 + 2 * 7 * 7
    x = torch.randn(3, 64, 5, 6)
    assert block.channel(x.flatten(2)).shape == (3, 64, 1)
    assert block.spatial(x).shape == (3, 1, 5, 6)
    assert block(x).shape == x.shape


def test_gates_are_sigmoids_in_zero_one_by_default():
    block = randomize_(CBAM(16, ratio=1 / 4))
    x = torch.randn(2, 16, 6, 6)
    gates = [block.channel(x.flatten(2)), block.spatial(x)]
    assert all(((g > 0) & (g < 1)).all() for g in gates)
    assert not torch.allclose(block(x), x)


def test_zero_init_is_the_identity_and_trains():
    block = CBAM(16, ratio=1 / 4, zero_init=True).train()
    x = torch.randn(2, 16, 5, 5)
    assert torch.equal(block(x), x)
    block(x).square().sum().backward()
    grads = {name: p.grad.abs().sum().item() for name, p in block.named_parameters()}
    # both last layers (W_1, the spatial conv) move at the first step; W_0 after W_1 has moved
    assert grads["channel.mlp.2.weight"] > 0 and grads["spatial.conv.weight"] > 0
    assert grads["channel.mlp.0.weight"] == 0
    randomize_(block)
    block.reset_parameters()
    assert torch.equal(block(x), x)


def test_inserted_like_se_after_the_last_bn_and_identity_at_init():
    from glore.models import create_model, inserted_blocks

    torch.manual_seed(0)
    plain = create_model("tv_resnet50", num_classes=10).eval()
    model = create_model("tv_resnet50", num_classes=10, block="cbam",
                         units={"res2": 3, "res3": 4, "res4": 6, "res5": 3}).eval()
    model.load_state_dict(plain.state_dict(), strict=False)
    blocks = inserted_blocks(model)
    assert len(blocks) == 16 and all(name.endswith(".after_1x1") for name in blocks)
    assert all(b.zero_init for b in blocks.values())
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model(x), plain(x))


@pytest.mark.parametrize("shape", [(2, 8, 5), (2, 8, 2, 3, 4)], ids=["1d", "3d"])
def test_images_only(shape):
    with pytest.raises(GloreError, match=r"CBAM expects an image batch \(B, C, H, W\).*got [35] dims"):
        CBAM(8, ratio=1 / 4)(torch.randn(shape))


def test_option_errors():
    with pytest.raises(GloreError, match="kernel_size must be odd"):
        CBAM(8, kernel_size=4)
    with pytest.raises(GloreError, match="ratio must be a number in"):
        CBAM(8, ratio=2)
