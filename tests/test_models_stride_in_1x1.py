"""``stride_in_1x1``: the original ResNet-50 of GCNet Tables 8-9 (stride on the first 1x1 conv)."""

from __future__ import annotations

import pytest
import torch

from glore.analysis import summary
from glore.errors import GloreError
from glore.models import create_model, find_stages


def _on_meta(name: str, **kwargs):
    with torch.device("meta"):
        return create_model(name, **kwargs)


@pytest.mark.parametrize("name", ["resnet50", "tv_resnet50"])
def test_stride_moves_to_the_first_1x1_conv_of_each_stage(name):
    model = _on_meta(name, stride_in_1x1=True)
    for stage, hosts in find_stages(model).items():
        first = hosts[0].module
        stride = (1, 1) if stage == "res2" else (2, 2)
        assert (first.conv1.stride, first.conv2.stride) == (stride, (1, 1))
        assert all(h.module.conv1.stride == h.module.conv2.stride == (1, 1) for h in hosts[1:])


def test_same_weights_fewer_macs_gcnet_counts():
    v15, original = _on_meta("resnet50"), _on_meta("resnet50", stride_in_1x1=True)
    assert {k: v.shape for k, v in v15.state_dict().items()} == \
        {k: v.shape for k, v in original.state_dict().items()}       # the same checkpoints load
    ours, theirs = summary(original), summary(v15)
    assert ours["params"] == theirs["params"]
    assert ours["gmacs"] == pytest.approx(3.86, rel=0.01)            # GCNet Tables 8-9: 3.86
    assert theirs["gmacs"] == pytest.approx(4.09, rel=0.01)


def test_output_and_feature_shapes_are_unchanged():
    model = create_model("resnet26", stride_in_1x1=True, features_only=True, out_indices=(1, 2, 3, 4))
    assert model.layer2[0].conv1.stride == (2, 2)
    features = model.eval()(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[2:]) for f in features] == [(16, 16), (8, 8), (4, 4), (2, 2)]


def test_with_blocks_and_through_a_registered_configuration():
    import timm

    model = _on_meta("resnet50", stride_in_1x1=True, block="gc", units="all")
    assert model.layer3[0].conv1.stride == (2, 2)
    assert summary(model)["gmacs"] == pytest.approx(3.87, rel=0.01)   # GCNet Table 8a "+all GC"
    with torch.device("meta"):
        registered = timm.create_model("resnet50_gc_all", stride_in_1x1=True)
    assert registered.layer4[0].conv1.stride == (2, 2)


def test_basic_blocks_and_wrong_values_are_errors():
    with pytest.raises(GloreError, match=r"stride_in_1x1 needs ResNet bottleneck blocks.*got BasicBlock"):
        _on_meta("resnet18", stride_in_1x1=True)
    with pytest.raises(GloreError, match="stride_in_1x1 must be true or false, got 'yes'"):
        _on_meta("resnet50", stride_in_1x1="yes")
