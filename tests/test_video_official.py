"""The GloRe authors' released video weights: Kinetics checkpoints and ImageNet 2D "lite" seeds.

The reference network below is written here from the facts of the release (facebookresearch/GloRe,
GloRe paper arXiv 1811.12814 §4.4): its names and shapes, pre-activation BN-ReLU-conv, BN eps 1e-4,
GloRe units with ``normalize=False``. Files are saved as the authors' code saves them.
"""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from glore.models import create_video_model, load_checkpoint
from glore.models.video import RESNET101_UNITS
from glore.models.video_official import (convert_official_video_state_dict, is_official_video_state_dict,
                                         official_units)

EPS = 1e-4


def _conv(dims, cin, cout, k, stride=(1, 1, 1), pad=(0, 0, 0), bias=False):
    if dims == 3:
        return nn.Conv3d(cin, cout, k, stride=stride, padding=pad, bias=bias)
    return nn.Conv2d(cin, cout, k[1:], stride=stride[1:], padding=pad[1:], bias=bias)


def _bn(dims, c):
    return nn.BatchNorm3d(c, eps=EPS) if dims == 3 else nn.BatchNorm2d(c, eps=EPS)


class BnReluConv(nn.Module):                      # keys bn.*, conv.weight
    def __init__(self, dims, cin, cout, k, stride=(1, 1, 1), pad=(0, 0, 0)):
        super().__init__()
        self.bn, self.conv = _bn(dims, cin), _conv(dims, cin, cout, k, stride, pad)

    def forward(self, x):
        return self.conv(torch.relu(self.bn(x)))


class Block(nn.Module):                           # conv_m1, conv_m2, conv_m3 (+ conv_w1 when first)
    def __init__(self, dims, cin, mid, cout, kt, stride, first):
        super().__init__()
        self.conv_m1 = BnReluConv(dims, cin, mid, (kt, 1, 1), pad=(kt // 2, 0, 0))
        self.conv_m2 = BnReluConv(dims, mid, mid, (1, 3, 3), stride, (0, 1, 1))
        self.conv_m3 = BnReluConv(dims, mid, cout, (1, 1, 1))
        if first:
            self.conv_w1 = BnReluConv(dims, cin, cout, (1, 1, 1), stride)

    def forward(self, x):
        h = self.conv_m3(self.conv_m2(self.conv_m1(x)))
        return h + (self.conv_w1(x) if hasattr(self, "conv_w1") else x)


class Gcn(nn.Module):
    def __init__(self, nodes, states):
        super().__init__()
        self.conv1 = nn.Conv1d(nodes, nodes, 1)
        self.conv2 = nn.Conv1d(states, states, 1, bias=False)

    def forward(self, v):                         # v: (n, states, nodes)
        h = self.conv1(v.transpose(1, 2)).transpose(1, 2) + v
        return self.conv2(torch.relu(h))


class Unit(nn.Module):                            # the 3D GloRe unit, normalize=False
    def __init__(self, c, mid):
        super().__init__()
        self.conv_state = nn.Conv3d(c, 2 * mid, 1)
        self.conv_proj = nn.Conv3d(c, mid, 1)
        self.gcn = Gcn(mid, 2 * mid)
        self.conv_extend = nn.Conv3d(2 * mid, c, 1, bias=False)
        self.blocker = nn.BatchNorm3d(c, eps=EPS)

    def forward(self, x):
        n = x.shape[0]
        state = self.conv_state(x).flatten(2)     # (n, 2 mid, L)
        proj = self.conv_proj(x).flatten(2)       # (n, mid, L)
        v = state @ proj.transpose(1, 2)          # (n, 2 mid, mid), no division by L
        y = self.gcn(v) @ proj                    # (n, 2 mid, L)
        return x + self.blocker(self.conv_extend(y.view(n, -1, *x.shape[2:])))


def kt(stage, i):                                 # temporal size of conv_m1, i is 1-based
    return {2: 3, 3: 3 if i % 2 else 1, 4: 3 if i % 2 else 1, 5: 3 if i == 2 else 1}[stage]


class AuthorsNet(nn.Module):
    def __init__(self, depths=(3, 4, 6, 3), units=None, num_classes=400, dims=3):
        super().__init__()
        units = {} if units is None else units
        self.conv1 = nn.Sequential(OrderedDict([
            ("conv", _conv(dims, 3, 32, (3, 5, 5), (1, 2, 2), (1, 2, 2))), ("bn", _bn(dims, 32)),
            ("relu", nn.ReLU()),
            ("max_pool", nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)) if dims == 3 else nn.MaxPool2d(3, 2, 1))]))
        cin, mid = 32, 64
        strides = {2: (1, 1, 1), 3: (2, 2, 2), 4: (1, 2, 2), 5: (1, 2, 2)}
        for stage, depth in zip((2, 3, 4, 5), depths):
            layers = []
            for i in range(1, depth + 1):
                layers.append((f"B{i:02d}", Block(dims, cin, mid, 4 * mid, kt(stage, i) if dims == 3 else 1,
                                                  strides[stage] if i == 1 else (1, 1, 1), i == 1)))
                cin = 4 * mid
                if i in units.get(stage, ()):
                    layers.append((f"B{i:02d}_extra", Unit(cin, mid)))
            setattr(self, f"conv{stage}", nn.Sequential(OrderedDict(layers)))
            mid *= 2
        self.tail = nn.Sequential(OrderedDict([("bn", _bn(dims, cin)), ("relu", nn.ReLU())]))
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        h = self.tail(self.conv5(self.conv4(self.conv3(self.conv2(self.conv1(x))))))
        return self.classifier(h.flatten(2).mean(2))


def randomize(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith("bn.weight"):
                t.copy_(0.8 + 0.4 * torch.rand(t.shape, generator=g))
            elif name.endswith("blocker.weight"):   # away from zero (the identity), small: without the
                # division by L a unit's output grows with the cube of its input
                t.copy_(1e-3 * (0.5 + torch.rand(t.shape, generator=g)))
            else:   # conv weights scaled so that activations stay O(1) through 16 or 33 blocks
                fan_in = t[0].numel() if t.dim() > 1 else 1
                t.copy_(torch.randn(t.shape, generator=g) * (0.1 if t.dim() == 1 else 0.5 / fan_in ** 0.5))
    return net.eval()


def save_release(net, path, epoch=0):
    """As the authors' training code saves a DataParallel model."""
    torch.save({"epoch": epoch, "state_dict": OrderedDict(("module." + k, v) for k, v in net.state_dict().items())},
               path)


R50_UNITS = {3: (1, 3), 4: (1, 3, 5)}
R101_UNITS = {3: (1, 3), 4: (6, 12, 18)}


@pytest.mark.parametrize("name, depths, units", [("resnet50_3d", (3, 4, 6, 3), R50_UNITS),
                                                 ("resnet101_3d", (3, 4, 23, 3), R101_UNITS)])
def test_kinetics_release_loads_and_gives_the_authors_logits(tmp_path, name, depths, units):
    torch.manual_seed(0)
    ref = randomize(AuthorsNet(depths, units))
    path = tmp_path / f"{name}-lite_3d_8x8_w-glore_2-3_ep-0000.pth"
    save_release(ref, path)

    model = create_video_model(name, checkpoint=path).eval()
    # units where the release has them, built as the release built them
    assert sorted(model.layer2.units) == ["0", "2"]
    assert sorted(model.layer3.units, key=int) == [str(i - 1) for i in units[4]]
    assert all(not u.normalize for s in (model.layer2, model.layer3) for u in s.units.values())
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        expected, got = ref(x), model(x)
    assert expected.abs().max() > 1e-2                 # a clip that exercises the weights
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    if name != "resnet50_3d":
        return
    # the one model-level loader reads the release into a network built with its settings
    again = load_checkpoint(create_video_model(name, block_kwargs={"normalize": False}), path).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), got)
    # the comparison can fail: the same weights in units that divide by L give other logits
    other = create_video_model(name, checkpoint=path, block_kwargs={"normalize": True}).eval()
    with torch.no_grad():
        assert not torch.allclose(other(x), expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max()))


def test_release_names_are_recognised_and_positions_read():
    state = {"module." + k: v for k, v in AuthorsNet((3, 4, 23, 3), R101_UNITS, num_classes=4).state_dict().items()}
    assert is_official_video_state_dict(state)
    assert official_units(state) == {k: v for k, v in RESNET101_UNITS.items()}
    converted = convert_official_video_state_dict(state)
    model = create_video_model("resnet101_3d", num_classes=4, block_kwargs={"normalize": False})
    assert set(converted) == set(model.state_dict())
    assert all(converted[k].shape == v.shape for k, v in model.state_dict().items())


def test_unmapped_names_are_reported(tmp_path):
    state = AuthorsNet(num_classes=4).state_dict()
    state["conv2.B01.conv_m4.bn.weight"] = torch.ones(1)
    state["fc_extra.weight"] = torch.ones(1)
    with pytest.raises(ValueError, match=r"2 key\(s\).*conv2.B01.conv_m4.bn.weight.*fc_extra.weight"):
        convert_official_video_state_dict(state)
    # a release checkpoint for another depth or class count names what differs
    path = tmp_path / "r50.pth"
    save_release(AuthorsNet(units=R50_UNITS, num_classes=4), path)
    with pytest.raises(ValueError, match=r"\(3, 4, 6, 3\) blocks per stage.*'resnet101_3d' has \(3, 4, 23, 3\)"):
        create_video_model("resnet101_3d", num_classes=4, checkpoint=path)
    with pytest.raises(ValueError, match=r"mismatched 2: fc.bias \(checkpoint \(4,\), model \(400,\)\)"):
        create_video_model("resnet50_3d", checkpoint=path)
    with pytest.raises(ValueError, match="expected block='glore', got 'nl'"):
        create_video_model("resnet50_3d", block="nl", num_classes=4, checkpoint=path)


def test_imagenet_lite_seed_inflates_as_the_authors_do(tmp_path):
    seed = randomize(AuthorsNet(num_classes=1000, dims=2))
    path = tmp_path / "resnet50-lite.pth"
    torch.save(seed.state_dict(), path)                 # a plain 2D state dict, no units
    with pytest.warns(UserWarning, match="fc.weight"):
        model = create_video_model("resnet50_3d", num_classes=400, inflate_from=path)
    ours = model.state_dict()
    checked = 0
    for key, src in convert_official_video_state_dict(seed.state_dict()).items():
        dst = ours[key]
        if key.startswith("fc."):                      # another shape: skipped, as the authors' code does
            assert dst.shape != src.shape
            continue
        if src.dim() == 4:                              # (out, in, kh, kw) -> (out, in, t, kh, kw)
            t = dst.shape[2]
            expected = src.unsqueeze(2).expand(-1, -1, t, -1, -1) / t
        else:
            expected = src
        torch.testing.assert_close(dst, expected, rtol=0, atol=0)
        checked += 1
    assert checked == len(seed.state_dict()) - 2
    assert model.conv1.weight.shape == (32, 3, 3, 5, 5)
    # a kernel with temporal size 3 is divided by 3, one with size 1 is reshaped
    torch.testing.assert_close(model.conv1.weight.sum(2), seed.conv1.conv.weight)
    assert model.layer2.blocks[1].conv1.kernel_size == (1, 1, 1)
    # the units stay as initialised: the identity, through the zero BN weight
    report = model.inflation_report
    assert any(".units." in k for k in report.missing) and all(".units." in k for k in report.missing)
    assert all(float(u.norm.weight.detach().abs().max()) == 0 for s in (model.layer2, model.layer3)
               for u in s.units.values())
