"""Each host family of glore.models.hosts, with both slots empty, computes what the class it copies
computes (same weights, random input, train and eval mode): the test that fails when timm or
torchvision change a residual block's forward, since the hosts carry copies of those forwards."""

import copy

import pytest
import torch
import torchvision.models.resnet as tv_resnet
from timm.layers import get_attn
from timm.models import dpn as timm_dpn
from timm.models import resnet as timm_resnet
from torch import nn

from glore.models import hosts
from glore.models.slow_only import Bottleneck3d


def _projection(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


def _randomized(block: nn.Module) -> nn.Module:
    """Every parameter and BatchNorm statistic random (no zero-initialised last norm hides a branch)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.2 if p.dim() > 1 else 0.5)
        for m in block.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return block


# name -> (the original block, its input)
ORIGINALS = {
    "timm Bottleneck": lambda: (timm_resnet.Bottleneck(32, 8), (2, 32, 10, 10)),
    "timm Bottleneck, strided, SE, projection": lambda: (
        timm_resnet.Bottleneck(16, 8, stride=2, downsample=_projection(16, 32, 2), attn_layer=get_attn("se")),
        (2, 16, 10, 10)),
    "timm BasicBlock": lambda: (timm_resnet.BasicBlock(16, 16), (2, 16, 9, 9)),
    "timm BasicBlock, strided, projection": lambda: (
        timm_resnet.BasicBlock(8, 16, stride=2, downsample=_projection(8, 16, 2)), (2, 8, 9, 9)),
    "torchvision Bottleneck": lambda: (tv_resnet.Bottleneck(32, 8), (2, 32, 10, 10)),
    "torchvision Bottleneck, strided, projection": lambda: (
        tv_resnet.Bottleneck(16, 8, stride=2, downsample=_projection(16, 32, 2)), (2, 16, 10, 10)),
    "torchvision BasicBlock": lambda: (tv_resnet.BasicBlock(16, 16), (2, 16, 9, 9)),
    "torchvision BasicBlock, strided, projection": lambda: (
        tv_resnet.BasicBlock(8, 16, stride=2, downsample=_projection(8, 16, 2)), (2, 8, 9, 9)),
    "timm DPN block, projection": lambda: (timm_dpn.DualPathBlock(24, 16, 16, 32, 8, 4, block_type="proj"),
                                           (2, 24, 8, 8)),
    "timm DPN block, strided": lambda: (timm_dpn.DualPathBlock(40, 16, 16, 32, 8, 4, block_type="down"),
                                        (2, 40, 8, 8)),
    "timm DPN block, normal, b": lambda: (timm_dpn.DualPathBlock(40, 16, 16, 32, 8, 4, b=True), (2, 40, 8, 8)),
}


@pytest.mark.parametrize("name", list(ORIGINALS))
@pytest.mark.parametrize("train", [False, True])
def test_a_host_with_empty_slots_computes_its_original_class(name, train):
    original, shape = ORIGINALS[name]()
    original = _randomized(original)
    host = hosts.as_host(copy.deepcopy(original))
    assert type(host) is hosts.HOSTS[type(original)] and isinstance(host, type(original))
    assert list(host.state_dict()) == list(original.state_dict())           # the slots hold no keys while empty
    host.train(train), original.train(train)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = original(x.clone())
        torch.testing.assert_close(host(x.clone()), expected, rtol=1e-6, atol=1e-6)
    if train:   # BatchNorm's running statistics moved the same way
        for (key, ours), theirs in zip(host.state_dict().items(), original.state_dict().values()):
            torch.testing.assert_close(ours, theirs, msg=key)


@pytest.mark.parametrize("name", ["timm Bottleneck", "torchvision BasicBlock", "timm DPN block, projection"])
def test_a_block_in_the_slot_changes_the_output(name):
    """The comparison above would pass for a host that never ran its slots."""
    original, shape = ORIGINALS[name]()
    host = hosts.as_host(_randomized(original)).eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        empty = host(x)
        host.after_add = nn.Tanh()
        assert (host(x) - empty).abs().max() > 1e-3


@pytest.mark.parametrize("stride, projection", [(1, False), (2, True)])
def test_the_slow_only_block_on_one_frame_is_torchvisions_bottleneck(stride, projection):
    """Bottleneck3d (temporal kernel 1) on a one-frame clip computes torchvision's 2D Bottleneck with
    the same weights (the one it inflates), with both of its slots empty."""
    cin = 16 if projection else 32
    downsample = nn.Sequential(nn.Conv3d(cin, 32, 1, stride=(1, stride, stride), bias=False),
                               nn.BatchNorm3d(32)) if projection else None
    block = _randomized(Bottleneck3d(cin, 8, stride=stride, downsample=downsample)).eval()
    assert isinstance(block.after_1x1, nn.Identity) and isinstance(block.after_add, nn.Identity)
    plain = tv_resnet.Bottleneck(cin, 8, stride=stride,
                                 downsample=_projection(cin, 32, stride) if projection else None).eval()
    plain.load_state_dict({k: v.squeeze(2) if v.dim() == 5 else v for k, v in block.state_dict().items()})
    x = torch.randn(2, cin, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(block(x[:, :, None])[:, :, 0], plain(x), rtol=1e-5, atol=1e-5)
