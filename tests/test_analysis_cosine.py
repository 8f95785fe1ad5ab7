import itertools
import math

import pytest
import torch

from glore.analysis import average_cosine_distance


def direct(x: torch.Tensor) -> float:
    """The paper's double sum, term by term."""
    rows = [r.double() for r in x]
    total = 0.0
    for a, b in itertools.product(rows, rows):
        na, nb = a.norm().item(), b.norm().item()
        cos = 0.0 if na == 0 or nb == 0 else (a @ b).item() / (na * nb)
        total += (1 - cos) / 2
    return total / len(rows) ** 2


def test_identical_rows_give_zero():
    x = torch.tensor([[1.0, -2.0, 3.0]]).repeat(5, 1)
    assert average_cosine_distance(x) == pytest.approx(0.0, abs=1e-12)


def test_row_and_its_negation_give_half():
    v = torch.tensor([[0.3, -1.2, 2.0, 0.5]])
    assert average_cosine_distance(torch.cat([v, -v])) == pytest.approx(0.5, abs=1e-12)


def test_scaling_rows_does_not_change_it():
    v = torch.tensor([[1.0, 2.0]])
    assert average_cosine_distance(torch.cat([v, 5 * v, 0.1 * v])) == pytest.approx(0.0, abs=1e-12)


def test_orthogonal_rows_match_the_double_sum():
    # N orthonormal rows: off-diagonal terms 1/2, diagonal 0 -> (N - 1) / (2N)
    n = 4
    assert average_cosine_distance(torch.eye(n)) == pytest.approx((n - 1) / (2 * n), abs=1e-12)


@pytest.mark.parametrize("shape", [(1, 3), (7, 5), (30, 2)])
def test_equals_direct_computation(shape):
    x = torch.randn(*shape)
    assert average_cosine_distance(x) == pytest.approx(direct(x), abs=1e-10)


def test_zero_row_counts_as_cosine_zero():
    x = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    assert average_cosine_distance(x) == pytest.approx(direct(x), abs=1e-12)
    assert not math.isnan(average_cosine_distance(torch.zeros(3, 2)))


@pytest.mark.parametrize("bad", [torch.zeros(3), torch.zeros(2, 3, 4), torch.zeros(0, 3)])
def test_rejects_wrong_shape(bad):
    with pytest.raises(ValueError, match=r"\(N, D\)|at least one row"):
        average_cosine_distance(bad)
