"""Loading the authors' released ``GloRe_Unit`` weights with ``convert_official_state_dict``.

``_AuthorsUnit`` below is a small re-implementation of the structure of the authors' PyTorch unit as
described in issue 2 (module names, shapes and the ``normalize`` flag, default ``False``), written here
so the test does not depend on their code: N-d 1x1 convs, a GCN of two ``Conv1d`` (over nodes with
bias plus identity, ReLU, over states without bias), reverse projection with the same ``B``, and a
BatchNorm with eps 1e-4.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from glore.nn import GloRe, convert_official_state_dict
from test_nn_reference import randomize_

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class _AuthorsGCN(nn.Module):
    def __init__(self, num_state: int, num_node: int):
        super().__init__()
        self.conv1 = nn.Conv1d(num_node, num_node, kernel_size=1)
        self.conv2 = nn.Conv1d(num_state, num_state, kernel_size=1, bias=False)

    def forward(self, x):                      # x: (n, num_state, num_node)
        h = self.conv1(x.permute(0, 2, 1)).permute(0, 2, 1)
        return self.conv2(torch.relu(h + x))


class _AuthorsUnit(nn.Module):
    def __init__(self, num_in: int, num_mid: int, *, dims: int, normalize: bool = False):
        super().__init__()
        self.normalize = normalize
        self.num_s, self.num_n = 2 * num_mid, num_mid
        conv = _CONV[dims]
        self.conv_state = conv(num_in, self.num_s, kernel_size=1)
        self.conv_proj = conv(num_in, self.num_n, kernel_size=1)
        self.gcn = _AuthorsGCN(self.num_s, self.num_n)
        self.conv_extend = conv(self.num_s, num_in, kernel_size=1, bias=False)
        self.blocker = _BN[dims](num_in, eps=1e-4)

    def forward(self, x):
        n = x.shape[0]
        state = self.conv_state(x).reshape(n, self.num_s, -1)
        proj = self.conv_proj(x).reshape(n, self.num_n, -1)
        nodes = torch.bmm(state, proj.transpose(1, 2))
        if self.normalize:
            nodes = nodes * (1.0 / state.shape[2])
        back = torch.bmm(self.gcn(nodes), proj).reshape(n, self.num_s, *x.shape[2:])
        return x + self.blocker(self.conv_extend(back))


SPATIAL = {1: (9,), 2: (4, 5), 3: (2, 3, 4)}


@pytest.mark.parametrize("normalize", [False, True], ids=["their_default", "normalize"])
@pytest.mark.parametrize("dims", [1, 2, 3], ids=["1d", "2d", "3d"])
def test_converted_weights_reproduce_the_authors_unit(dims, normalize):
    theirs = randomize_(_AuthorsUnit(12, 3, dims=dims, normalize=normalize).double()).eval()
    assert theirs.blocker.weight.abs().min() > 0          # their zero-init replaced by random weights
    ours = GloRe(12, mid=3, normalize=normalize).double().eval()
    result = ours.load_state_dict(convert_official_state_dict(theirs.state_dict()))
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 12, *SPATIAL[dims], dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x))
    theirs.train(), ours.train()                           # batch statistics match as well
    torch.testing.assert_close(ours(x), theirs(x))


def test_their_default_needs_normalize_false():
    # documented in docs/blocks.md: GloRe's default normalize=True divides V by L; theirs does not
    theirs = randomize_(_AuthorsUnit(12, 3, dims=2).double()).eval()
    ours = GloRe(12, mid=3).double().eval()
    ours.load_state_dict(convert_official_state_dict(theirs.state_dict()))
    x = torch.randn(2, 12, 4, 5, dtype=torch.float64)
    assert not torch.allclose(ours(x), theirs(x))


def test_conversion_does_not_modify_its_input():
    theirs = randomize_(_AuthorsUnit(8, 2, dims=2))
    state = theirs.state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    convert_official_state_dict(state)
    assert {k: tuple(v.shape) for k, v in state.items()} == shapes


def test_converted_keys_and_shapes():
    converted = convert_official_state_dict(_AuthorsUnit(8, 2, dims=3).state_dict())
    assert converted["reduce.weight"].shape == (4, 8, 1)
    assert converted["project.weight"].shape == (2, 8, 1)
    assert converted["gcn.0.node.weight"].shape == (2, 2, 1)
    assert converted["gcn.0.state.weight"].shape == (4, 4, 1)
    assert converted["extend.weight"].shape == (8, 4, 1)
    assert set(converted) == set(GloRe(8, mid=2).state_dict())


def _state(dims=2):
    return dict(_AuthorsUnit(8, 2, dims=dims).state_dict())


def test_missing_key_is_named():
    state = _state()
    del state["conv_proj.bias"]
    with pytest.raises(ValueError, match=r"missing \['conv_proj.bias'\]"):
        convert_official_state_dict(state)


def test_unexpected_key_is_named():
    state = _state()
    state["module.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"unexpected \['module.extra.weight'\]"):
        convert_official_state_dict(state)


def test_prefixed_state_dict_is_rejected_with_expected_keys():
    # a whole network's state dict: the caller must select one unit's entries and strip the prefix
    state = {f"layer3.1.glore.{k}": v for k, v in _state().items()}
    with pytest.raises(ValueError, match="expected keys .*conv_state.weight"):
        convert_official_state_dict(state)


def test_non_pointwise_conv_weight_is_rejected():
    state = _state()
    state["conv_state.weight"] = torch.zeros(4, 8, 3, 3)
    with pytest.raises(ValueError, match=r"conv_state.weight.*1x1.*\(4, 8, 3, 3\)"):
        convert_official_state_dict(state)


def test_flattened_conv_weight_is_rejected():
    state = _state()
    state["gcn.conv1.weight"] = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"gcn.conv1.weight.*\(2, 2\)"):
        convert_official_state_dict(state)


def test_wrong_mid_fails_at_load_with_both_shapes():
    converted = convert_official_state_dict(_state())       # mid = 2
    with pytest.raises(RuntimeError, match=r"size mismatch.*torch.Size\(\[4, 8, 1\]\).*torch.Size\(\[6, 8, 1\]\)"):
        GloRe(8, mid=3).load_state_dict(converted)


def test_not_a_mapping_is_a_type_error():
    with pytest.raises(TypeError, match="mapping.*list"):
        convert_official_state_dict(list(_state().items()))


def test_non_tensor_value_is_a_type_error():
    state = _state()
    state["conv_proj.weight"] = [[1.0]]
    with pytest.raises(TypeError, match="conv_proj.weight: expected a torch.Tensor, got list"):
        convert_official_state_dict(state)
