import math

import pytest
import torch

from conftest import fitted_order
from lawful.constraints.quadrature import (
    cell_volume_weights,
    quadrature_weights,
    riemann_weights,
    trapezoid_weights,
)


def _nonuniform_grid(n: int) -> torch.Tensor:
    """A smoothly stretched grid on [0, 1]: clustered near 0, spacing ~ 1/n everywhere."""
    s = torch.linspace(0, 1, n, dtype=torch.float64)
    return s + 0.3 * s * (1 - s)


@pytest.mark.parametrize(
    ("rule", "order"), [("trapezoid", 2), ("riemann_left", 1), ("riemann_right", 1)]
)
@pytest.mark.parametrize(
    "make_grid", [lambda n: torch.linspace(0, 1, n, dtype=torch.float64), _nonuniform_grid]
)
def test_quadrature_converges_at_declared_order(rule, order, make_grid):
    exact = (math.e - 1) + (1 - math.cos(3)) / 3  # integral of exp(x) + sin(3x) on [0, 1]
    spacings, errors = [], []
    for n in (17, 33, 65, 129, 257):
        x = make_grid(n)
        integral = quadrature_weights(x, rule) @ (torch.exp(x) + torch.sin(3 * x))
        spacings.append(1 / (n - 1))
        errors.append(abs(float(integral) - exact))
    assert fitted_order(spacings, errors) == pytest.approx(order, abs=0.1)


def test_weights_integrate_low_degree_exactly():
    x = _nonuniform_grid(11)
    assert float(trapezoid_weights(x) @ (2 * x + 1)) == pytest.approx(1 + 1, abs=1e-14)
    assert float(riemann_weights(x) @ torch.ones_like(x)) == pytest.approx(1.0, abs=1e-14)
    # The trapezoid weights of a uniform grid: h/2 at the ends, h inside.
    uniform = trapezoid_weights(torch.linspace(0, 2, 5, dtype=torch.float64))
    torch.testing.assert_close(
        uniform, torch.tensor([0.25, 0.5, 0.5, 0.5, 0.25], dtype=torch.float64)
    )


def test_cell_volume_weights_integrate_in_two_dimensions():
    x = torch.linspace(0, 1, 41, dtype=torch.float64)
    y = _nonuniform_grid(31) * 2
    u = torch.exp(x)[:, None] * torch.cos(y)[None, :]  # (x, y)
    integral = cell_volume_weights(x, y) @ u.reshape(-1)
    assert float(integral) == pytest.approx((math.e - 1) * math.sin(2), rel=1e-3)


@pytest.mark.parametrize(
    ("axes", "axis", "shape"),
    [
        ((torch.linspace(0, 1, 5).expand(2, 5), torch.linspace(0, 1, 4)), 0, r"\(2, 5\)"),
        ((torch.linspace(0, 1, 5), torch.linspace(0, 1, 4).expand(3, 4)), 1, r"\(3, 4\)"),
        ((torch.linspace(0, 1, 5).expand(2, 5),), 0, r"\(2, 5\)"),
    ],
)
def test_cell_volume_weights_name_an_axis_that_is_not_one_dimensional(axes, axis, shape):
    # Before: torch.outer's "Expected 1-D argument", or for one axis batched weights returned.
    message = rf"axis {axis} of the cell volume grid must be one-dimensional, got shape {shape}"
    with pytest.raises(ValueError, match=message):
        cell_volume_weights(*axes)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (torch.tensor([0.0, 0.5, 0.5, 1.0]), "strictly increasing"),
        (torch.tensor([0.0, 1.0, 0.5]), "strictly increasing"),
        (torch.tensor([0.0, float("nan"), 1.0]), "NaN"),
        (torch.tensor([1.0]), "at least 2"),
        (torch.zeros(2, 3), "strictly increasing"),  # a batch of two constant grids
    ],
)
def test_bad_grids_are_named(grid, message):
    with pytest.raises(ValueError, match=message):
        trapezoid_weights(grid)


def test_batched_trapezoid_weights_equal_per_grid_weights():
    grids = torch.stack([torch.linspace(0, 1, 6), _nonuniform_grid(6).float()])  # (2, 6)
    batched = trapezoid_weights(grids)
    torch.testing.assert_close(batched[1], trapezoid_weights(grids[1]))
    with pytest.raises(ValueError, match="one-dimensional"):
        riemann_weights(grids)


def test_unknown_rule_is_named():
    with pytest.raises(ValueError, match="simpson"):
        quadrature_weights(torch.linspace(0, 1, 3), "simpson")
