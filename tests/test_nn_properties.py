"""Properties of the blocks: identity at initialisation, gradients, size invariance of the GloRe
unit's node features, memory formats, bf16 autocast, and hypothesis tests over shapes and dtypes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from glore.nn import BLOCKS, GlobalContext, GloRe, NonLocal, Pointwise, create_block
from test_nn_reference import randomize_

NAMES = sorted(BLOCKS)
# blocks of every (B, C, *S) input whose output at a position depends on all positions alike; CBAM
# (a local 2-D convolution in its spatial attention, images only) has its own tests in test_nn_cbam.py
GLOBAL_NAMES = sorted(set(BLOCKS) - {"cbam"})

# blocks whose zero-initialised last layer makes them the identity at initialisation
IDENTITY_AT_INIT = {
    "glore": lambda c: GloRe(c, mid=2),
    "glore_unnormalized_2layers": lambda c: GloRe(c, mid=2, normalize=False, gcn_layers=2),
    "nl_embedded_gaussian": lambda c: NonLocal(c),
    "nl_gaussian": lambda c: NonLocal(c, pairwise="gaussian"),
    "nl_dot_product": lambda c: NonLocal(c, pairwise="dot_product"),
    "nl_concat": lambda c: NonLocal(c, pairwise="concat"),
    "snl": lambda c: create_block("snl", c),
    "gc": lambda c: create_block("gc", c),
    "gc_avg": lambda c: GlobalContext(c, pooling="avg"),
    "gc_no_ln": lambda c: GlobalContext(c, layer_norm=False),
    "gc_no_ratio": lambda c: GlobalContext(c, ratio=None),
}


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("shape", [(2, 8, 5), (2, 8, 3, 4), (2, 8, 2, 3, 3)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("variant", sorted(IDENTITY_AT_INIT))
def test_identity_at_initialisation(variant, shape, training):
    block = IDENTITY_AT_INIT[variant](shape[1]).train(training)
    x = torch.randn(shape)
    assert torch.equal(block(x), x)


def test_zero_init_false_is_not_identity():
    # the identity above comes from the zero-initialised parts, not from a block that does nothing
    x = torch.randn(2, 8, 3, 4)
    for block in (GloRe(8, mid=2, zero_init=False), NonLocal(8, zero_init=False),
                  create_block("snl", 8, zero_init=False), GlobalContext(8, zero_init=False)):
        with torch.no_grad():     # make sure the (random) output is far from zero
            for p in block.parameters():
                p.add_(0.1)
        assert not torch.allclose(block.train()(x), x), type(block).__name__


@pytest.mark.parametrize("fusion_block", ["gc_scale", "se"])
def test_scale_fusion_starts_at_half_or_standard_scale(fusion_block):
    x = torch.randn(2, 8, 3, 4)
    if fusion_block == "gc_scale":
        # zero-initialised transform: sigmoid(0) = 1/2 at every channel
        torch.testing.assert_close(GlobalContext(8, fusion="scale")(x), x / 2)
    else:
        y = create_block("se", 8)(x)
        assert not torch.allclose(y, x / 2) and torch.all((y / x > 0) & (y / x < 1))


# parameters whose gradient is zero by construction: a bias added to every logit of a softmax
# (the softmax is invariant to it), as in the authors' releases of NL and GC
SOFTMAX_INVARIANT = {"attention.key.bias"}


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient_within_two_steps(name):
    kwargs = {"glore": dict(mid=3), "gc": dict(ratio=1 / 4), "se": dict(ratio=1 / 4)}.get(name, {})
    block = create_block(name, 12, **kwargs).train()
    x, target = torch.randn(4, 12, 5, 6), torch.randn(4, 12, 5, 6)
    got_grad = {n: False for n, _ in block.named_parameters()}
    for _ in range(2):
        block.zero_grad()
        torch.nn.functional.mse_loss(block(x), target).backward()
        for n, p in block.named_parameters():
            assert p.grad is not None, n
            assert torch.isfinite(p.grad).all(), n
            if n in SOFTMAX_INVARIANT:
                assert p.grad.abs().max() < 1e-6, n
            elif p.grad.abs().max() > 0:
                got_grad[n] = True
        with torch.no_grad():     # one SGD step (plain, to keep torch.optim's imports out of this test)
            for p in block.parameters():
                p.sub_(0.5 * p.grad)
    missing = [n for n, ok in got_grad.items() if not ok and n not in SOFTMAX_INVARIANT]
    assert not missing, f"{name}: no gradient after two steps for {missing}"


def test_first_step_only_reaches_the_zero_initialised_layer():
    # at initialisation the BN weight is zero, so nothing before it gets a gradient yet
    unit = GloRe(32).train()
    unit(torch.randn(2, 32, 4, 4)).square().sum().backward()
    assert unit.norm.weight.grad.abs().max() > 0
    assert unit.reduce.weight.grad.abs().max() == 0


# --- size invariance of the GloRe unit's interaction space (normalize) ---------------------------


def _node_features(unit: GloRe, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = unit.gcn.register_forward_pre_hook(lambda m, i: seen.append(i[0]))
    unit(x)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("reps", [(1, 1, 2), (1, 1, 2, 2), (1, 1, 1, 2, 2)], ids=["1d", "2d", "3d"])
def test_glore_node_features_invariant_to_tiling(reps):
    unit = randomize_(GloRe(8, mid=3).double()).eval()
    x = torch.randn((2, 8) + (3, 4, 5)[: len(reps) - 2], dtype=torch.float64)
    tiled = x.repeat(*reps)
    torch.testing.assert_close(_node_features(unit, tiled), _node_features(unit, x))
    # every position of a tile sees the same nodes, so the output is the tiled output
    torch.testing.assert_close(unit(tiled), unit(x).repeat(*reps))


def test_glore_node_features_scale_with_tiling_without_normalize():
    unit = randomize_(GloRe(8, mid=3, normalize=False).double()).eval()
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(_node_features(unit, x.repeat(1, 1, 2, 2)), 4 * _node_features(unit, x))


# --- one module for 1D, 2D and 3D; memory formats --------------------------------------------------


@pytest.mark.parametrize("name", GLOBAL_NAMES)
def test_nd_inputs_share_one_module(name):
    block = randomize_(create_block(name, 8, **({"mid": 2} if name == "glore" else {}))).eval()
    x3 = torch.randn(2, 8, 2, 3, 4)
    flat = block(x3.flatten(2))
    torch.testing.assert_close(block(x3), flat.view(x3.shape))
    torch.testing.assert_close(block(x3.flatten(3)), flat.view(2, 8, 2, 12))


@pytest.mark.parametrize("name", GLOBAL_NAMES)
@pytest.mark.parametrize("dims", [4, 5], ids=["2d", "3d"])
def test_channels_last_inputs(name, dims):
    block = randomize_(create_block(name, 8, **({"mid": 2} if name == "glore" else {})).double()).train()
    x = torch.randn((2, 8, 3, 4, 5)[:dims], dtype=torch.float64, requires_grad=True)
    fmt = torch.channels_last if dims == 4 else torch.channels_last_3d
    x_cl = x.detach().to(memory_format=fmt).requires_grad_()
    assert not x_cl.is_contiguous()
    y, y_cl = block(x), block(x_cl)
    torch.testing.assert_close(y_cl, y)
    y.square().sum().backward()
    y_cl.square().sum().backward()
    torch.testing.assert_close(x_cl.grad, x.grad)


@pytest.mark.parametrize("reassociate", [False, True], ids=["paper_order", "reassociated"])
@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
def test_glore_output_and_input_gradient_keep_the_input_layout(fmt, reassociate):
    unit = randomize_(GloRe(16, mid=4, reassociate=reassociate).double()).train()
    memory_format = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    x = torch.randn(2, 16, 5, 3, dtype=torch.float64).to(memory_format=memory_format).requires_grad_()
    y = unit(x)
    y.square().sum().backward()
    assert y.is_contiguous(memory_format=memory_format)
    assert x.grad.is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize("reassociate", [False, True], ids=["paper_order", "reassociated"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
def test_glore_copies_no_full_size_tensor(fmt, batch, reassociate):
    # every product reads its operands in the layout they come in: no activation or gradient the
    # size of x is copied to another layout, forward or backward
    from torch.profiler import profile

    unit = randomize_(GloRe(32, mid=8, reassociate=reassociate)).train()
    memory_format = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    x = torch.randn(batch, 32, 6, 5).to(memory_format=memory_format).requires_grad_()
    grad = torch.randn_like(x)
    with profile(record_shapes=True) as prof:
        torch.autograd.grad(unit(x), [x, *unit.parameters()], grad)
    copies = [e.input_shapes for e in prof.events()
              if e.name in ("aten::copy_", "aten::clone", "aten::contiguous")
              and e.input_shapes and e.input_shapes[0] and math.prod(e.input_shapes[0]) == x.numel()]
    assert copies == []


@pytest.mark.parametrize("out_channels", [5, 1])
@pytest.mark.parametrize("batch", [1, 3])
def test_pointwise_runs_a_flattened_channels_last_input_without_copies(batch, out_channels):
    # also a batch of one, whose flattened view has a batch stride the convolution's layout test
    # would not read as channels_last (it would copy the input)
    from torch.profiler import profile

    conv = randomize_(Pointwise(16, out_channels))
    x = torch.randn(batch, 16, 6, 5).to(memory_format=torch.channels_last).requires_grad_()
    with profile(record_shapes=True) as prof:
        y = conv(x.flatten(2))
        torch.autograd.grad(y, [x, *conv.parameters()], torch.randn_like(y))
    copies = [e.input_shapes for e in prof.events()
              if e.name in ("aten::copy_", "aten::clone", "aten::contiguous")
              and e.input_shapes and e.input_shapes[0] and math.prod(e.input_shapes[0]) == x.numel()]
    assert copies == []
    assert y.mT.is_contiguous()                       # position-major, as the input
    # as a one-row image: oneDNN's AVX2 kernels run a (B, C, L, 1) one 1.5-4x slower
    images = [e.input_shapes[0] for e in prof.events() if e.name == "aten::convolution"]
    assert images == ([] if out_channels == 1 else [[batch, 16, 1, 30]])


def _layout(t: torch.Tensor) -> list[tuple[int, int]]:
    """The strides an elementwise kernel reads: those of the dims longer than one."""
    return [(size, stride) for size, stride in zip(t.shape, t.stride()) if size > 1]


class _LayoutLog(torch.utils._python_dispatch.TorchDispatchMode):
    """Strides of the operands of every BatchNorm backward (input and upstream gradient: all of
    them, since its layout test reads the batch stride of a batch of one too) and of every add of
    two tensors of ``numel`` elements (the residual and the sums of x's gradients)."""

    def __init__(self, numel: int):
        super().__init__()
        self.numel, self.mixed = numel, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [a for a in args[:2] if isinstance(a, torch.Tensor)]
        if func.overloadpacket in (torch.ops.aten.add, torch.ops.aten.add_) and len(tensors) == 2 \
                and all(t.numel() == self.numel for t in tensors) and _layout(tensors[0]) != _layout(tensors[1]):
            self.mixed.append((str(func), tensors[0].stride(), tensors[1].stride()))
        if func.overloadpacket is torch.ops.aten.native_batch_norm_backward and args[0].stride() != args[1].stride():
            self.mixed.append((str(func), args[0].stride(), args[1].stride()))
        return func(*args, **(kwargs or {}))


def _layout_case(name: str) -> nn.Module:
    if name.startswith("glore"):        # both orders of the products
        return GloRe(16, mid=4, reassociate=name == "glore_reassociated")
    return create_block(name, 16)


@pytest.mark.parametrize("name", ["nl", "snl", "gc", "glore_paper_order", "glore_reassociated"])
@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
@pytest.mark.parametrize("batch", [3, 1])
def test_blocks_normalise_and_sum_in_one_layout(name, fmt, batch):
    # BatchNorm's backward with its input and gradient in different layouts, and an add of two
    # layouts, are slow strided passes (docs/benchmarks.md, sessions 11-12); with a batch of one,
    # a view's batch stride alone makes BatchNorm and add read a channels_last tensor as channel-major
    block = randomize_(_layout_case(name)).train()
    memory_format = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    x = torch.randn(batch, 16, 6, 5).to(memory_format=memory_format).requires_grad_()
    grad = torch.randn_like(x)
    with _LayoutLog(x.numel()) as log:
        out = block(x)
        torch.autograd.grad(out, [x, *block.parameters()], grad)
    assert log.mixed == []
    assert out.stride() == x.stride()


@pytest.mark.parametrize("sub_sample", [False, True])
@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
def test_nonlocal_softmax_backward_gets_a_contiguous_gradient(fmt, sub_sample):
    # the (B, L, L') attention is the largest tensor of the block: its gradient must reach the
    # softmax's backward in the softmax's own layout (a transposed one costs a copy inside the kernel)
    from torch.utils._python_dispatch import TorchDispatchMode

    class SoftmaxGradients(TorchDispatchMode):
        layouts = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._softmax_backward_data.default:
                self.layouts.append(args[0].is_contiguous())
            return func(*args, **(kwargs or {}))

    block = randomize_(NonLocal(16, sub_sample=sub_sample)).train()
    memory_format = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    x = torch.randn(2, 16, 6, 5).to(memory_format=memory_format).requires_grad_()
    with SoftmaxGradients() as mode:
        block(x).square().sum().backward()
    assert mode.layouts == [True]


def test_graph_conv_runs_both_convs_as_modules():
    # hooks and module-level counters see A_g and W_g: node gives A_g V + b (node-major), the
    # identity is added to it, and state reads the ReLU of the sum
    from glore.nn.glore_unit import GraphConv

    layer = randomize_(GraphConv(6, 10).double())
    v = torch.randn(3, 10, 6, dtype=torch.float64)
    seen = {}
    layer.node.register_forward_hook(lambda m, i, o: seen.__setitem__("node", o))
    layer.state.register_forward_pre_hook(lambda m, i: seen.__setitem__("state", i[0]))
    out = layer(v)
    a_g, bias = layer.node.weight[:, :, 0], layer.node.bias
    torch.testing.assert_close(seen["node"], torch.einsum("nm,bsm->bns", a_g, v) + bias[:, None])
    torch.testing.assert_close(seen["state"], torch.relu(v + seen["node"].mT))
    torch.testing.assert_close(out, torch.einsum("ts,bsn->btn", layer.state.weight[:, :, 0], seen["state"]))


def _fwd_bwd_flops(unit, shape):
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(shape, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        unit(x).sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("size", [2, 4, 5, 7, 32])
def test_glore_takes_the_cheaper_order_of_products(size):
    shape = (1, 64, size, size)
    units = {order: randomize_(GloRe(64, mid=16, reassociate=order)).train()
             for order in (None, False, True)}
    flops = {order: _fwd_bwd_flops(unit, shape) for order, unit in units.items()}
    assert flops[None] == min(flops[False], flops[True])
    # 2 C N (L + C_s) < 2 C_s L (C + N) from L = 22 positions on for C=64, N=16, C_s=32
    assert units[None].reassociates(size * size) == (size * size > 21)
    assert (flops[True] < flops[False]) == (size * size > 21)
    x = torch.randn(shape, dtype=torch.float64)
    for unit in units.values():
        unit.double().load_state_dict(units[False].state_dict())
    torch.testing.assert_close(units[True](x), units[False](x))


@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
@pytest.mark.parametrize("batch", [1, 2])
def test_reassociated_glore_gradients(batch, fmt):
    unit = randomize_(GloRe(6, mid=2, reassociate=True).double()).train()
    memory_format = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    x = torch.randn(batch, 6, 3, 2, dtype=torch.float64).to(memory_format=memory_format)
    torch.autograd.gradcheck(unit, (x.requires_grad_(),))


@pytest.mark.parametrize("out_channels", [5, 1])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("layout", ["channel_major", "position_major"])
def test_pointwise_is_the_1x1_convolution(batch, layout, out_channels):
    conv = randomize_(Pointwise(12, out_channels).double())
    x = torch.randn(batch, 12, 7, dtype=torch.float64)
    if layout == "position_major":
        x = x.mT.contiguous().mT
    x.requires_grad_()
    y = conv(x)
    expected = torch.nn.functional.conv1d(x.detach().contiguous(), conv.weight, conv.bias)
    torch.testing.assert_close(y, expected)
    if out_channels > 1:                            # (with one channel both layouts are one)
        assert y.mT.is_contiguous() == (layout == "position_major")
    torch.autograd.gradcheck(conv, (x,))


@pytest.mark.parametrize("out_channels", [5, 1])
@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
@pytest.mark.parametrize("shape", [(2, 6, 3, 4), (1, 6, 3, 4), (2, 6, 2, 3, 2)], ids=["2d", "2d_batch1", "3d"])
def test_pointwise_keeps_the_shape_and_layout_of_an_image(shape, fmt, out_channels):
    conv = randomize_(Pointwise(6, out_channels).double())
    x = torch.randn(shape, dtype=torch.float64)
    if fmt == "channels_last":
        x = x.to(memory_format=torch.channels_last if len(shape) == 4 else torch.channels_last_3d)
    x.requires_grad_()
    y = conv(x)
    weight = conv.weight.view(out_channels, 6, *[1] * (len(shape) - 2))
    expected = (F.conv2d if len(shape) == 4 else F.conv3d)(x.detach(), weight, conv.bias)
    torch.testing.assert_close(y, expected)
    assert y.shape == expected.shape
    if out_channels > 1:                            # (with one channel both layouts are one)
        assert y.flatten(2).mT.is_contiguous() == (fmt == "channels_last")
    torch.autograd.gradcheck(conv, (x,))


def _full_size_adds(block: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """The element-wise sums of x-sized tensors in one forward+backward, out of place and in place."""
    from torch.profiler import profile

    y = block(x)                                    # (warm-up: lazy initialisation off the count)
    y.backward(torch.randn_like(y))
    x.grad, grad = None, torch.randn_like(y)       # (a held x.grad would take one more sum)
    with profile(record_shapes=True) as prof:
        block(x).backward(grad)
    counts = {"aten::add": 0, "aten::add_": 0}
    for e in prof.events():
        if e.name in counts and e.input_shapes and math.prod(e.input_shapes[0] or [0]) == x.numel():
            counts[e.name] += 1
    return counts


@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
def test_nonlocal_sums_its_input_gradients_in_place(fmt):
    # the query, key and value convs run on x itself, so their input gradients are tensors of their
    # own that autograd adds in place; through a flattened view each would be a view, added out of
    # place (a full-size pass more). Out of place stay the residual and the sum with the upstream
    # gradient, which the caller holds.
    block = randomize_(NonLocal(8)).train()
    x = torch.randn(2, 8, 5, 6)
    if fmt == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    assert _full_size_adds(block, x.requires_grad_()) == {"aten::add": 2, "aten::add_": 2}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
def test_input_is_not_modified(name, fmt):
    block = randomize_(create_block(name, 8, **({"mid": 2} if name == "glore" else {}))).train()
    x = torch.randn(2, 8, 3, 4)
    if fmt == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    before = x.clone()
    y = block(x)
    assert torch.equal(x, before)
    assert y.data_ptr() != x.data_ptr()


# --- bf16 autocast at 128 x 128 positions -----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_at_128x128(name):
    kwargs = {"glore": dict(mid=8), "gc": dict(ratio=1 / 4), "se": dict(ratio=1 / 4)}.get(name, {})
    block = randomize_(create_block(name, 32, **kwargs), std=0.2).eval()
    # NL's (L, L) attention at 128 x 128 is 2^28 entries (1 GiB in fp32, ~20 s on one CPU thread);
    # it gets 64 x 64 = 4096 positions, still a softmax over thousands of bf16 logits
    side = 64 if name == "nl" else 128
    x = torch.randn(1, 32, side, side)
    with torch.no_grad():
        y32 = block(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y16 = block(x)
    assert torch.isfinite(y16).all()
    # compare the block's contribution, y - x, relative to its size; bf16 keeps 8 mantissa bits
    delta32, delta16 = y32 - x, y16.float() - x
    assert delta32.norm() > 1e-3 * x.norm()        # the block does something in this test
    rel = ((delta16 - delta32).norm() / delta32.norm()).item()
    assert rel < 0.03, f"{name}: bf16 relative error {rel:.4f}"


def test_bf16_autocast_runs_the_glore_products_in_bf16():
    unit = randomize_(GloRe(32, mid=8)).eval()
    seen = []
    unit.gcn.register_forward_pre_hook(lambda m, i: seen.append(i[0].dtype))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        unit(torch.randn(1, 32, 16, 16))
    assert seen == [torch.bfloat16]


# --- hypothesis: shapes, batch sizes, dtypes ---------------------------------------------------------


def _blocks_for(name: str, channels: int):
    if name == "glore":
        return GloRe(channels, mid=max(channels // 4, 1))
    if name in ("gc", "se"):
        return create_block(name, channels, ratio=1 / 4)
    return create_block(name, channels)


shapes = st.tuples(
    st.integers(1, 3),                                    # batch
    st.integers(1, 9),                                    # channels
    st.lists(st.integers(1, 4), min_size=1, max_size=3),  # 1D, 2D or 3D sizes
)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(GLOBAL_NAMES), shape=shapes, dtype=st.sampled_from([torch.float32, torch.float64]),
       seed=st.integers(0, 2**16))
def test_property_shape_dtype_and_position_equivariance(name, shape, dtype, seed):
    batch, channels, sizes = shape
    torch.manual_seed(seed)
    block = randomize_(_blocks_for(name, channels)).to(dtype).eval()
    x = torch.randn(batch, channels, *sizes, dtype=dtype)
    y = block(x)
    assert y.shape == x.shape and y.dtype == dtype
    assert torch.isfinite(y).all()
    # every block is global: permuting the positions permutes the output the same way
    n = math.prod(sizes)
    perm = torch.randperm(n)
    y_perm = block(x.flatten(2)[:, :, perm].reshape(x.shape))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(y_perm, y.flatten(2)[:, :, perm].reshape(x.shape), **tol)
    # in eval mode, samples do not interact
    torch.testing.assert_close(block(x[-1:]), y[-1:], **tol)


@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(GLOBAL_NAMES), shape=shapes, dtype=st.sampled_from([torch.float32, torch.float64]))
def test_property_float64_and_float32_agree(name, shape, dtype):
    batch, channels, sizes = shape
    block = randomize_(_blocks_for(name, channels)).double().eval()
    x = torch.randn(batch, channels, *sizes, dtype=torch.float64)
    y64 = block(x)
    y = block.to(dtype)(x.to(dtype))
    torch.testing.assert_close(y.double(), y64, rtol=1e-4, atol=1e-4)
