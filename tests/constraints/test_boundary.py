import math

import pytest
import torch

from conftest import fitted_order
from lawful.constraints.boundary import (
    BoundaryConditions,
    Dirichlet,
    Neumann,
    Periodic,
    apply_boundary_conditions,
    boundary_constraint,
    boundary_equations,
    boundary_residuals,
    neumann_boundary_value,
    one_sided_derivative,
    one_sided_derivative_weights,
)


def test_stencil_weights_match_the_textbook_ones():
    textbook = {
        1: [-1.0, 1.0],
        2: [-3 / 2, 2.0, -1 / 2],
        3: [-11 / 6, 3.0, -3 / 2, 1 / 3],
        4: [-25 / 12, 4.0, -3.0, 4 / 3, -1 / 4],
    }
    for order, weights in textbook.items():
        expected = torch.tensor(weights, dtype=torch.float64)
        torch.testing.assert_close(
            one_sided_derivative_weights(order), expected, rtol=0, atol=1e-14
        )


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("side", ["left", "right"])
def test_one_sided_derivative_has_its_order(order, side):
    # u = exp(1.5 x) on [0.2, 1.1]: no derivative vanishes, so the leading error term dominates.
    low, high = 0.2, 1.1
    exact = {"left": 1.5 * math.exp(1.5 * low), "right": 1.5 * math.exp(1.5 * high)}
    spacings, errors = [], []
    for n in (16, 32, 64, 128):
        x = torch.linspace(low, high, n, dtype=torch.float64)
        h = (high - low) / (n - 1)
        u = torch.exp(1.5 * x)
        spacings.append(h)
        errors.append(abs(float(one_sided_derivative(u, h, order, side)) - exact[side]))
    assert fitted_order(spacings, errors) == pytest.approx(order, abs=0.25)


def test_neumann_value_matches_the_formulas_of_the_note():
    u = torch.tensor([9.0, 1.0, 4.0, 2.0, 7.0, 3.0, 5.0], dtype=torch.float64)
    h, g = 0.1, 0.7
    assert float(neumann_boundary_value(u, g, h, 1, "left")) == pytest.approx(
        1.0 - h * g, abs=1e-15
    )
    third_order_right = (18 * 3.0 - 9 * 7.0 + 2 * 2.0 + 6 * h * g) / 11
    value = float(neumann_boundary_value(u, g, h, 3, "right"))
    assert value == pytest.approx(third_order_right, abs=1e-14)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("side", ["left", "right"])
def test_stencil_applied_to_the_corrected_field_returns_the_flux(order, side):
    u = torch.randn(3, 2, 11, dtype=torch.float64)
    flux = torch.randn(3, 1, dtype=torch.float64)
    h = 0.05
    index = 0 if side == "left" else -1
    u[..., index] = neumann_boundary_value(u, flux, h, order, side)
    torch.testing.assert_close(
        one_sided_derivative(u, h, order, side), flux.expand(3, 2), rtol=0, atol=1e-11
    )


def _conditions(name: str, axis: int = -1, value=None) -> BoundaryConditions:
    value = 0.3 if value is None else value
    return {
        "dirichlet": BoundaryConditions(Dirichlet(value), Dirichlet(-value), axis),
        "neumann": BoundaryConditions(Neumann(value, 2), Neumann(value, 4), axis),
        "mixed": BoundaryConditions(Dirichlet(value), Neumann(value, 3), axis),
        "periodic": BoundaryConditions(Periodic(), Periodic(), axis),
    }[name]


@pytest.mark.parametrize("name", ["dirichlet", "neumann", "mixed", "periodic"])
def test_apply_boundary_conditions_makes_residuals_vanish(name):
    conditions = _conditions(name)
    field = torch.randn(4, 3, 17, dtype=torch.float64)
    fixed = apply_boundary_conditions(field, conditions, spacing=0.1)
    for residual in boundary_residuals(fixed, conditions, spacing=0.1):
        assert float(residual.abs().max()) * 0.1 < 1e-13
    torch.testing.assert_close(fixed[..., 1:-1], field[..., 1:-1], rtol=0, atol=0)
    if name in ("dirichlet", "periodic"):  # set exactly, not merely to rounding
        left, right = boundary_residuals(fixed, conditions, spacing=0.1)
        assert bool((left == 0).all()) and bool((right == 0).all())


def test_time_dependent_data_broadcasts_over_channels():
    field = torch.randn(2, 3, 9, 5)  # (batch, channels, x, time)
    data = torch.randn(2, 5)  # (batch, time)
    conditions = BoundaryConditions(Dirichlet(data), Neumann(data, 2), axis=2)
    fixed = apply_boundary_conditions(field, conditions, spacing=0.2)
    torch.testing.assert_close(fixed[:, :, 0, :], data[:, None, :].expand(2, 3, 5))
    flux = one_sided_derivative(fixed, 0.2, 2, "right", dim=2)
    torch.testing.assert_close(flux, data[:, None, :].expand(2, 3, 5), rtol=0, atol=2e-5)


def test_bad_boundary_data_raises_naming_the_problem():
    field = torch.randn(2, 3, 9, 5)
    with pytest.raises(ValueError, match=r"Dirichlet data at the left end.*\(2, 9\)"):
        conditions = BoundaryConditions(Dirichlet(torch.randn(2, 9)), Dirichlet(0.0), axis=2)
        apply_boundary_conditions(field, conditions, 0.1)
    with pytest.raises(ValueError, match="NaN"):
        Dirichlet(torch.tensor([0.0, math.nan]))
    # Complex data would lose its imaginary part in the real field, bool is no value, and
    # arrays are converted by the caller: each refused where the condition is made.
    for value, problem in (
        (torch.tensor([1 + 2j, 3 + 4j]), "must be real, got complex"),
        (torch.tensor([True, False]), "must hold numbers"),
        (True, "real number or a torch.Tensor, got bool"),
        ([1.0, 2.0], "real number or a torch.Tensor, got list"),
    ):
        with pytest.raises(TypeError, match=problem):
            Dirichlet(value)
    with pytest.raises(TypeError, match="Neumann value must be a real number"):
        BoundaryConditions(Neumann(), Dirichlet()).with_values(left=(0.5,))
    with pytest.raises(ValueError, match="finite"):
        Neumann(math.inf)
    with pytest.raises(ValueError, match="periodic condition must be on both ends"):
        BoundaryConditions(Periodic(), Dirichlet(0.0))
    with pytest.raises(ValueError, match="order must be between 1 and 4"):
        Neumann(0.0, order=5)
    for order in (2.5, 2.0, True):  # refused where made, not when first applied
        with pytest.raises(TypeError, match="order must be an integer"):
            Neumann(0.0, order=order)
    with pytest.raises(ValueError, match=r"too short.*need at least 6 points"):
        apply_boundary_conditions(torch.randn(1, 1, 5), _conditions("neumann"), 0.1)
    with pytest.raises(ValueError, match="not a spatial axis"):
        apply_boundary_conditions(field, _conditions("dirichlet", axis=1), 0.1)
    with pytest.raises(ValueError, match="takes no boundary data"):
        _conditions("periodic").with_values(left=1.0)


@pytest.mark.parametrize("spacing", [0.0, -0.1, math.inf])
def test_neumann_stencils_refuse_a_spacing_that_is_not_positive(spacing):
    # Before: a zero spacing wrote u_0 = u_1 whatever the flux; a negative one flipped its sign.
    conditions = _conditions("neumann")
    field = torch.randn(1, 1, 8, dtype=torch.float64)
    message = "grid spacing must be a positive finite number"
    with pytest.raises(ValueError, match=message):
        apply_boundary_conditions(field, conditions, spacing)
    with pytest.raises(ValueError, match=message):
        boundary_residuals(field, conditions, spacing)
    with pytest.raises(ValueError, match=message):
        boundary_equations(conditions, spacing)
    with pytest.raises(ValueError, match=message):
        boundary_constraint(conditions, 8, spacing)


def test_integer_fields_are_refused():
    # Before: a Dirichlet value 0.5 was written into an integer field as 0.
    field = torch.zeros(1, 1, 4, dtype=torch.int64)
    with pytest.raises(TypeError, match="field must be a floating-point tensor"):
        apply_boundary_conditions(field, _conditions("dirichlet", value=0.5), 0.1)
    with pytest.raises(TypeError, match="field must be a floating-point tensor"):
        boundary_residuals(field, _conditions("dirichlet", value=0.5), 0.1)
