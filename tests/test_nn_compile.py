"""torch.compile (inductor, full graph) and torch.export on every block.

Compiling is slow (5-20 s a block on one CPU thread), so each block is compiled once, on a tiny input,
in its own test: pytest-xdist (``-n 2``) spreads them over workers.
"""

from __future__ import annotations

import pytest
import torch

from glore.nn import BLOCKS, create_block
from test_nn_reference import randomize_

NAMES = sorted(BLOCKS)
KWARGS = {"glore": dict(mid=2), "gc": dict(ratio=1 / 4), "se": dict(ratio=1 / 4)}


def _block(name: str) -> torch.nn.Module:
    return randomize_(create_block(name, 8, **KWARGS.get(name, {}))).eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_torch_compile(name):
    torch._dynamo.reset()
    block = _block(name)
    compiled = torch.compile(block, fullgraph=True)     # fullgraph: a graph break is an error
    x = torch.randn(2, 8, 3, 4)
    torch.testing.assert_close(compiled(x), block(x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_torch_compile_glore_in_the_papers_order():
    torch._dynamo.reset()
    block = randomize_(create_block("glore", 8, mid=2, reassociate=False)).eval()
    compiled = torch.compile(block, fullgraph=True)
    x = torch.randn(2, 8, 3, 4)
    torch.testing.assert_close(compiled(x), block(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_torch_export_with_dynamic_sizes(name):
    block = _block(name)
    x = torch.randn(2, 8, 3, 4)
    batch, height, width = (torch.export.Dim(n, min=2, max=64) for n in ("batch", "height", "width"))
    program = torch.export.export(block, (x,), dynamic_shapes={"x": {0: batch, 2: height, 3: width}})
    exported = program.module()
    for shape in [(2, 8, 3, 4), (3, 8, 5, 7)]:
        x = torch.randn(shape)
        torch.testing.assert_close(exported(x), block(x))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "cbam"])     # CBAM takes images only
@pytest.mark.parametrize("shape", [(2, 8, 5), (1, 8, 2, 3, 4)], ids=["1d", "3d"])
def test_torch_export_1d_and_3d(name, shape):
    block = _block(name)
    x = torch.randn(shape)
    exported = torch.export.export(block, (x,)).module()
    torch.testing.assert_close(exported(x), block(x))


@pytest.mark.parametrize("shape", [(2, 8, 5), (2, 8, 3, 5), (1, 8, 2, 3, 4)], ids=["1d", "2d", "3d"])
def test_torch_export_nonlocal_sub_sample(shape):
    block = randomize_(create_block("nl", 8, sub_sample=True)).eval()
    x = torch.randn(shape)
    exported = torch.export.export(block, (x,)).module()
    torch.testing.assert_close(exported(x), block(x))


def test_torch_export_glore_across_its_order_of_products():
    # the unit's default order of products depends on the size (from 22 positions on here);
    # an exported program keeps one order, so that every size its dynamic dimensions allow runs
    block = randomize_(create_block("glore", 64, mid=16)).eval()
    x = torch.randn(2, 64, 3, 4)
    height, width = (torch.export.Dim(n, min=2, max=64) for n in ("height", "width"))
    exported = torch.export.export(block, (x,), dynamic_shapes={"x": {2: height, 3: width}}).module()
    for shape in [(2, 64, 3, 4), (2, 64, 30, 30)]:
        x = torch.randn(shape)
        torch.testing.assert_close(exported(x), block(x), rtol=1e-4, atol=1e-4)


# --- the GloRe unit in training under torch.compile -----------------------------------------------
# What inductor does with the unit's backward is decided on the joint graph (its decompositions,
# then the min-cut partition into forward and backward). A backend that runs that partition
# without generating code shows it in a second; the last test compiles for real.

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def _capture_training_graphs(block, x):
    from functools import partial

    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.partitioners import min_cut_rematerialization_partition
    from torch._inductor.decomposition import select_decomp_table

    graphs = {}

    def keep(kind):
        def compiler(gm, example_inputs):
            graphs[kind] = gm.graph
            return make_boxed_func(gm.forward)
        return compiler

    backend = aot_autograd(fw_compiler=keep("forward"), bw_compiler=keep("backward"),
                           decompositions=select_decomp_table(),
                           partition_fn=partial(min_cut_rematerialization_partition, compiler="inductor"))
    torch._dynamo.reset()
    y = torch.compile(block, backend=backend, fullgraph=True)(x)
    return y, graphs


def _assert_same_gradients(block, reference, x, x_reference):
    torch.testing.assert_close(x.grad, x_reference.grad, rtol=1e-4, atol=1e-4)
    for (name, p), q in zip(block.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-4, msg=name)


def _sums(graph) -> list[tuple[int, ...]]:
    """Shapes of the tensor-tensor additions in a graph (gradients meeting are such sums)."""
    return sorted(tuple(n.meta["val"].shape) for n in graph.nodes
                  if n.target == torch.ops.aten.add.Tensor and isinstance(n.args[1], torch.fx.Node))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("reassociate", [False, True], ids=["papers_order", "reassociated"])
def test_compiled_glore_training_graphs(layout, reassociate):
    block = randomize_(create_block("glore", 16, mid=4, reassociate=reassociate)).train()
    reference = randomize_(create_block("glore", 16, mid=4, reassociate=reassociate)).train()
    x = torch.randn(2, 16, 3, 4).to(memory_format=LAYOUTS[layout])
    g = torch.randn_like(x)
    xc, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    y, graphs = _capture_training_graphs(block, xc)
    y.backward(g)
    y_eager = reference(xe)
    y_eager.backward(g)
    torch.testing.assert_close(y, y_eager, rtol=1e-5, atol=1e-5)
    _assert_same_gradients(block, reference, xc, xe)

    # the ReLU's mask is recomputed in backward, not saved as a bool tensor (whose kernel is slow)
    saved = next(n for n in graphs["forward"].nodes if n.op == "output").args[0]
    assert torch.bool not in {n.meta["val"].dtype for n in saved if isinstance(n, torch.fx.Node)}
    # x's gradients meet in x itself (a sum met in a view of another shape costs a copy)
    grad_x = next(n for n in graphs["backward"].nodes if n.op == "output").args[0][0]
    assert grad_x.target == torch.ops.aten.add.Tensor and tuple(grad_x.meta["val"].shape) == x.shape
    # and the projection's, for contiguous input, in its memory order (B, N, L)
    if layout == "contiguous":
        sums = _sums(graphs["backward"])
        assert (2, 4, 12) in sums and (2, 12, 4) not in sums, sums


@pytest.mark.slow
def test_torch_compile_glore_training_channels_last():
    torch._dynamo.reset()
    block = randomize_(create_block("glore", 8, mid=2, reassociate=False)).train()
    reference = randomize_(create_block("glore", 8, mid=2, reassociate=False)).train()
    x = torch.randn(2, 8, 3, 4).to(memory_format=torch.channels_last)
    xc, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.compile(block, fullgraph=True)(xc).sum().backward()
    reference(xe).sum().backward()
    _assert_same_gradients(block, reference, xc, xe)
