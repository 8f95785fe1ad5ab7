"""Bad arguments and bad inputs: a ValueError or TypeError whose message names the expected and the
given value."""

from __future__ import annotations

import re

import pytest
import torch

from glore.nn import BLOCKS, GlobalContext, GloRe, NonLocal, SqueezeExcite, create_block

NAMES = sorted(BLOCKS)


def _block(name: str, channels: int = 8) -> torch.nn.Module:
    return create_block(name, channels)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_channel_count(name):
    with pytest.raises(ValueError, match=r"built for 8 channels, got an input with 6 channels"):
        _block(name)(torch.randn(2, 6, 4, 4))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(8,), (2, 8)], ids=["1dim", "2dims"])
def test_fewer_than_three_dims(name, shape):
    msg = rf"\(B, C, L\), \(B, C, H, W\) or \(B, C, T, H, W\).*got {len(shape)} dims"
    with pytest.raises(ValueError, match=msg):
        _block(name)(torch.randn(shape))


@pytest.mark.parametrize("name", NAMES)
def test_more_than_five_dims(name):
    with pytest.raises(ValueError, match=r"3 to 5 dims\), got 6 dims with shape \(1, 8, 2, 2, 2, 2\)"):
        _block(name)(torch.randn(1, 8, 2, 2, 2, 2))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.bool])
def test_non_floating_dtype(name, dtype):
    x = torch.ones(2, 8, 3, 3, dtype=dtype)
    with pytest.raises(TypeError, match=rf"floating-point input, got dtype {re.escape(str(dtype))}"):
        _block(name)(x)


@pytest.mark.parametrize("name", NAMES)
def test_not_a_tensor(name):
    with pytest.raises(TypeError, match="expects a torch.Tensor, got ndarray"):
        _block(name)(torch.randn(2, 8, 3).numpy())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(0, 8, 4, 4), (2, 8, 0, 4), (2, 8, 3, 0, 2)])
def test_empty_input(name, shape):
    with pytest.raises(ValueError, match=rf"non-empty dims, got shape {re.escape(str(shape))}"):
        _block(name)(torch.randn(shape))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [0, -4, 2.5, True, "8"])
def test_bad_channels(name, channels):
    with pytest.raises((ValueError, TypeError), match=rf"channels must be a positive integer, got {re.escape(repr(channels))}"):
        create_block(name, channels)


@pytest.mark.parametrize("kwargs,arg", [
    (dict(mid=0), "mid"), (dict(mid=-1), "mid"), (dict(num_nodes=0), "num_nodes"),
    (dict(num_state=-2), "num_state"), (dict(gcn_layers=0), "gcn_layers"), (dict(mid=1.5), "mid"),
])
def test_glore_bad_sizes(kwargs, arg):
    with pytest.raises(ValueError, match=rf"{arg} must be a positive integer, got {re.escape(repr(kwargs[arg]))}"):
        GloRe(16, **kwargs)


def test_glore_default_mid_of_zero_is_explained():
    with pytest.raises(ValueError, match=r"channels // 4, which is 0 for channels=3; pass mid="):
        GloRe(3)
    assert GloRe(3, mid=1).num_nodes == 1


@pytest.mark.parametrize("value", ["auto", 1, 0])
def test_glore_bad_reassociate(value):
    with pytest.raises(TypeError, match=rf"reassociate must be None \(choose by cost\), True or False, got {re.escape(repr(value))}"):
        GloRe(16, reassociate=value)


def test_nonlocal_bad_inner():
    with pytest.raises(ValueError, match=r"inner must be a positive integer, got 0"):
        NonLocal(8, inner=0)


@pytest.mark.parametrize("ratio", [0, -0.25, 2, 1.5, True, "1/16"])
def test_global_context_bad_ratio(ratio):
    with pytest.raises((ValueError, TypeError), match=rf"ratio must be a number in \(0, 1\].*got {re.escape(repr(ratio))}"):
        GlobalContext(16, ratio=ratio)
    with pytest.raises((ValueError, TypeError), match=rf"got {re.escape(repr(ratio))}"):
        SqueezeExcite(16, ratio=ratio)


@pytest.mark.parametrize("cls,kwargs,expected", [
    (NonLocal, dict(pairwise="cosine"), r"pairwise must be one of \['concat', 'dot_product', 'embedded_gaussian', 'gaussian'\], got 'cosine'"),
    (GlobalContext, dict(pooling="max"), r"pooling must be one of \['att', 'avg'\], got 'max'"),
    (GlobalContext, dict(fusion="mul"), r"fusion must be one of \['add', 'scale'\], got 'mul'"),
])
def test_unknown_choices(cls, kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        cls(8, **kwargs)


@pytest.mark.parametrize("name", ["non_local", "glore2", "", None, 3])
def test_unknown_block_name(name):
    with pytest.raises(ValueError, match=rf"unknown block {re.escape(repr(name))}; expected one of \['cbam', 'gc', 'glore', 'nl', 'se', 'snl'\]"):
        create_block(name, 8)


def test_block_names_are_case_insensitive_and_forward_kwargs():
    block = create_block("GC", 16, ratio=1 / 4, pooling="avg")
    assert isinstance(block, GlobalContext) and block.transform[0].weight.shape == (4, 16, 1)
    assert block.attention is None


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'ratio'"):
        create_block("glore", 16, ratio=1 / 4)


@pytest.mark.parametrize("name", NAMES)
def test_options_are_keyword_only(name):
    with pytest.raises(TypeError, match="positional argument"):
        BLOCKS[name](16, 4)
