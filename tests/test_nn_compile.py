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


@pytest.mark.parametrize("name", NAMES)
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
