"""Every catalogued conservation problem against exact calculus.

For each problem: the exact solution satisfies the PDE (autograd residual in float64 away from
fronts and kinks), the exact mass agrees with quadrature of the exact solution at the order the
integrand allows, the initial and boundary conditions hold, and the Stefan front is right.

What the mass tests assert, and why (trapezoid rule, float64):
- Piece by piece (grid nodes on every front and kink, one-sided limits at jumps):
  heat is exact to rounding (a trigonometric polynomial over its period), advection and Burgers
  are exact (piecewise constant or linear in x), PME with m = 1 is exact (piecewise linear);
  PME with m > 1 converges at order 1 + 1/m (u ~ (t - x)^(1/m) has an infinite slope at the
  front); Stefan converges at order 2 (erf is smooth on each side of the front).
- On uniform grids across a jump, one cell straddles it, so the error is at most about
  jump * h / 2: order 1 as an upper bound. The fitted slope is not asserted there, because the
  front's position inside its cell changes from grid to grid and the error oscillates.
"""

import dataclasses
import itertools
import math

import pytest
import scipy.optimize
import scipy.special
import torch
from torch import Tensor

from conftest import fitted_order
from lawful.constraints.quadrature import trapezoid_weights
from lawful.pdes import (
    CONSERVATION_PROBLEMS,
    ConservationProblem,
    StefanProblem,
    get_conservation_problem,
    stefan_similarity_root,
)

PROBLEMS = list(CONSERVATION_PROBLEMS.values())
PROBLEM_IDS = list(CONSERVATION_PROBLEMS)
F64 = torch.float64


def _nonsmooth_points(problem: ConservationProblem, param: Tensor, t: Tensor) -> list[Tensor]:
    """Where u(t, .) has a kink or a jump: the front, and the left end of the Burgers ramp."""
    front = problem.shock_position(param, t)
    points = [] if front is None else [front]
    if problem.name == "burgers":
        points.append(-1 + param * t)
    return points


def _smooth_region_points(
    problem: ConservationProblem, num_points: int, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Random (param, t, x) in float64, each x at least 2% of the domain from every front or
    kink, and t >= 20% of t_domain (the Stefan solution is singular at t = 0)."""
    generator = torch.Generator().manual_seed(seed)
    param = problem.sample_params(num_points, generator)
    t_low, t_high = problem.t_domain
    late_fraction = 0.2 + 0.8 * torch.rand(num_points, generator=generator, dtype=F64)
    t = t_low + (t_high - t_low) * late_fraction
    x_low, x_high = problem.x_domain
    x = x_low + (x_high - x_low) * torch.rand(num_points, generator=generator, dtype=F64)
    margin = 0.02 * (x_high - x_low)
    keep = torch.ones(num_points, dtype=torch.bool)
    for point in _nonsmooth_points(problem, param, t):
        keep &= (x - point).abs() > margin
    return param[keep], t[keep], x[keep]


def _derivative(output: Tensor, wrt: Tensor) -> Tensor:
    """Pointwise d(output)/d(wrt); zero where output does not depend on wrt (a piecewise-constant
    solution builds no graph at all)."""
    if not output.requires_grad:
        return torch.zeros_like(wrt)
    (gradient,) = torch.autograd.grad(
        output.sum(), wrt, create_graph=True, allow_unused=True, materialize_grads=True
    )
    return gradient


@pytest.mark.parametrize("problem", PROBLEMS, ids=PROBLEM_IDS)
def test_exact_solution_satisfies_the_pde_away_from_fronts(problem: ConservationProblem):
    param, t, x = _smooth_region_points(problem, num_points=400, seed=1)
    assert len(x) > 200  # most points survive the margin
    t.requires_grad_(True)
    x.requires_grad_(True)
    u = problem.solution(param, t, x)  # (points,)
    u_t, u_x = _derivative(u, t), _derivative(u, x)
    flux_x = _derivative(problem.flux(u, u_x, param), x)
    residual = u_t + flux_x
    scale = u_t.abs() + flux_x.abs() + 1
    assert torch.all(residual.abs() <= 1e-12 * scale), float((residual.abs() / scale).max())


def _piecewise_trapezoid_mass(
    problem: ConservationProblem, param: Tensor, t: Tensor, cells_per_piece: int
) -> Tensor:
    """Trapezoid rule on each smooth piece of u(t, .), with nodes on every front and kink.

    The solution takes its left limit at a front (``u = left value for x <= front``); the piece
    right of a front starts one float above it to take the right limit.
    """
    x_low, x_high = problem.x_domain
    inner = sorted({float(p) for p in _nonsmooth_points(problem, param, t) if x_low < p < x_high})
    edges = [x_low, *inner, x_high]
    mass = torch.zeros((), dtype=F64)
    for left, right in itertools.pairwise(edges):
        x = torch.linspace(left, right, cells_per_piece + 1, dtype=F64)
        x[0] = torch.nextafter(x[0], x[1])
        mass = mass + trapezoid_weights(x) @ problem.solution(param, t, x)
    return mass


def _piecewise_order(problem: ConservationProblem, param: float) -> float | None:
    """The trapezoid order on each smooth piece; None where the rule is exact (see docstring)."""
    if problem.name == "pme" and param > 1:
        return 1 + 1 / param
    if problem.name == "stefan":
        return 2.0
    return None


MASS_CASES = [
    pytest.param(problem, param, id=f"{problem.name}-{param:g}")
    for problem in PROBLEMS
    for param in problem.test_params
]


@pytest.mark.parametrize(("problem", "param"), MASS_CASES)
def test_mass_formula_agrees_with_piecewise_quadrature_at_the_expected_order(
    problem: ConservationProblem, param: float
):
    param_tensor = torch.tensor(param, dtype=F64)
    t = torch.tensor(problem.t_star, dtype=F64)
    exact = problem.total_mass(param_tensor, t)
    cells = [2**k for k in range(5, 11)]
    errors = [
        float((_piecewise_trapezoid_mass(problem, param_tensor, t, n) - exact).abs()) for n in cells
    ]
    order = _piecewise_order(problem, param)
    if order is None:
        assert max(errors) < 1e-13 * (1 + abs(float(exact)))
    else:
        assert errors[-1] < 1e-4
        assert fitted_order([1 / n for n in cells], errors) == pytest.approx(order, abs=0.05)


JUMP_CASES = [
    pytest.param(get_conservation_problem(name), param, t, id=f"{name}-{param:g}-t{t:g}")
    for name, param, t in [
        ("stefan", 0.5, 0.05),
        ("stefan", 0.6, 0.08),
        ("advection", 1.0, 0.1),
        ("advection", 3.0, 0.1),
        ("burgers", 3.0, 0.5),
        ("burgers", 2.0, 0.9),
    ]
]


@pytest.mark.parametrize(("problem", "param", "t"), JUMP_CASES)
def test_mass_on_uniform_grids_across_a_jump_converges_at_first_order(
    problem: ConservationProblem, param: float, t: float
):
    param_tensor, t_tensor = torch.tensor(param, dtype=F64), torch.tensor(t, dtype=F64)
    front = problem.shock_position(param_tensor, t_tensor)
    jump = problem.solution(param_tensor, t_tensor, front) - problem.solution(
        param_tensor, t_tensor, torch.nextafter(front, torch.tensor(math.inf, dtype=F64))
    )
    assert float(jump) > 0.4  # a genuine discontinuity
    exact = problem.total_mass(param_tensor, t_tensor)
    for num_points in [2**k + 1 for k in range(5, 12)]:
        x = torch.linspace(*problem.x_domain, num_points, dtype=F64)
        spacing = float(x[1] - x[0])
        error = trapezoid_weights(x) @ problem.solution(param_tensor, t_tensor, x) - exact
        assert abs(float(error)) <= float(jump) * spacing


INITIAL_CONDITIONS = {
    "heat": lambda param, x: torch.sin(x),
    "pme": lambda param, x: torch.zeros_like(x),
    "stefan": lambda param, x: torch.zeros_like(x),
    "advection": lambda param, x: (x <= 0.5).to(F64),
    "burgers": lambda param, x: torch.where(x <= 0, -param * x, 0.0),
}

# Dirichlet or inflow value at the left end x_domain[0]; heat is periodic instead.
LEFT_BOUNDARY_VALUES = {
    "pme": lambda param, t: (param * t) ** (1 / param),
    "stefan": lambda param, t: torch.ones_like(t),
    "advection": lambda param, t: torch.ones_like(t),
    "burgers": lambda param, t: param * torch.ones_like(t),
}


@pytest.mark.parametrize("problem", PROBLEMS, ids=PROBLEM_IDS)
def test_initial_condition(problem: ConservationProblem):
    param = torch.tensor(problem.test_params, dtype=F64)[:, None]  # (params, 1)
    # x > x_low: u(0, x_low) belongs to the boundary condition.
    x = torch.linspace(*problem.x_domain, 101, dtype=F64)[1:]
    expected = INITIAL_CONDITIONS[problem.name](param, x).expand(len(param), len(x))
    torch.testing.assert_close(problem.solution(param, 0.0, x), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", list(LEFT_BOUNDARY_VALUES))
def test_left_boundary_value(name: str):
    problem = get_conservation_problem(name)
    param = torch.tensor(problem.test_params, dtype=F64)[:, None]  # (params, 1)
    t = torch.linspace(*problem.t_domain, 11, dtype=F64)  # (t,)
    actual = problem.solution(param, t, problem.x_domain[0])  # (params, t)
    expected = LEFT_BOUNDARY_VALUES[name](param, t).expand(len(param), len(t))
    torch.testing.assert_close(actual, expected, rtol=1e-15, atol=0)


def test_heat_solution_is_periodic_in_value_and_slope():
    problem = get_conservation_problem("heat")
    k = torch.tensor([[1.0], [3.0], [5.0]], dtype=F64)
    t = torch.linspace(0, 1, 7, dtype=F64)
    ends = [torch.tensor(end, dtype=F64, requires_grad=True) for end in problem.x_domain]
    values = [problem.solution(k, t, end) for end in ends]
    slopes = [
        torch.autograd.grad(value.sum(), end)[0] for value, end in zip(values, ends, strict=True)
    ]
    torch.testing.assert_close(values[0], values[1], rtol=0, atol=1e-15)
    torch.testing.assert_close(slopes[0], slopes[1], rtol=1e-15, atol=0)


def test_heat_mass_is_zero_and_quadrature_over_the_period_is_exact():
    problem = get_conservation_problem("heat")
    x = torch.linspace(*problem.x_domain, 17, dtype=F64)  # a coarse grid suffices: sin is periodic
    for k in problem.test_params:
        assert float(problem.total_mass(k, torch.tensor(0.3, dtype=F64))) == 0.0
        assert abs(float(trapezoid_weights(x) @ problem.solution(k, 0.3, x))) < 1e-15


def test_stefan_root_solves_its_equation_and_matches_scipy():
    p_star = torch.linspace(0.05, 0.95, 19, dtype=F64)
    z1 = stefan_similarity_root(p_star)
    residual = p_star * torch.erf(z1) * z1 * torch.exp(z1**2) - (1 - p_star) / math.sqrt(math.pi)
    assert float(residual.abs().max()) < 1e-12

    def scipy_residual(z: float, p: float) -> float:
        return p * scipy.special.erf(z) * z * math.exp(z**2) - (1 - p) / math.sqrt(math.pi)

    expected = [
        scipy.optimize.brentq(scipy_residual, 1e-9, 5, args=(p,), xtol=1e-15)
        for p in p_star.tolist()
    ]
    torch.testing.assert_close(z1, torch.tensor(expected, dtype=F64), rtol=1e-13, atol=0)


def test_stefan_root_gradient_is_the_implicit_function_derivative():
    p_star = torch.tensor([0.5, 0.6, 0.7], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(stefan_similarity_root, (p_star,))


def test_stefan_root_rejects_thresholds_outside_zero_one():
    with pytest.raises(ValueError, match=r"p\* must lie in \(0, 1\)"):
        stefan_similarity_root(torch.tensor([0.5, 1.0], dtype=F64))


def test_stefan_solution_drops_from_p_star_to_zero_at_the_front():
    problem = StefanProblem()
    p_star = torch.tensor([0.5, 0.55, 0.6, 0.7], dtype=F64)
    t = torch.tensor(0.05, dtype=F64)
    front = problem.shock_position(p_star, t)  # (params,)
    just_right = torch.nextafter(front, torch.full_like(front, math.inf))
    torch.testing.assert_close(problem.solution(p_star, t, front), p_star, rtol=1e-14, atol=0)
    assert torch.equal(problem.solution(p_star, t, just_right), torch.zeros_like(p_star))
    torch.testing.assert_close(front, 2 * stefan_similarity_root(p_star) * math.sqrt(0.05))


def test_stefan_at_time_zero_has_no_nan():
    problem = StefanProblem()
    x = torch.tensor([0.0, 1e-6, 0.5], dtype=F64, requires_grad=True)
    u = problem.solution(0.6, 0.0, x)
    assert torch.equal(u.detach(), torch.tensor([1.0, 0.0, 0.0], dtype=F64))
    (u_x,) = torch.autograd.grad(u.sum(), x)
    assert torch.isfinite(u_x).all()
    assert float(problem.total_mass(0.6, torch.tensor(0.0, dtype=F64))) == 0.0


def test_pme_gradient_is_zero_not_nan_on_the_dry_side():
    problem = get_conservation_problem("pme")
    x = torch.tensor([0.3, 0.7], dtype=F64, requires_grad=True)
    u = problem.solution(3.0, 0.5, x)
    (u_x,) = torch.autograd.grad(u.sum(), x)
    expected_wet_slope = -((3 * 0.2) ** (1 / 3 - 1))  # d/dx (m (t - x))^(1/m)
    torch.testing.assert_close(u_x, torch.tensor([expected_wet_slope, 0.0], dtype=F64))


def test_fronts_leave_through_the_right_boundary_with_mass_conserved_after():
    burgers = get_conservation_problem("burgers")
    # a t = 3.6 > 3: the shock has left; u = a everywhere, mass 2 a.
    assert float(burgers.shock_position(4.0, torch.tensor(0.9, dtype=F64))) == 1.0
    assert float(burgers.total_mass(4.0, torch.tensor(0.9, dtype=F64))) == pytest.approx(8.0)
    advection = get_conservation_problem("advection")
    assert float(advection.shock_position(5.0, torch.tensor(0.5, dtype=F64))) == 1.0
    assert float(advection.total_mass(5.0, torch.tensor(0.5, dtype=F64))) == 1.0


@pytest.mark.parametrize("problem", PROBLEMS, ids=PROBLEM_IDS)
def test_batched_equals_looped_and_float32_agrees_with_float64(problem: ConservationProblem):
    param, t, x = _smooth_region_points(problem, num_points=24, seed=2)
    grid_x = x.sort().values
    batched = problem.solution(param[:, None], t[:, None], grid_x)  # (functions, x)
    looped = torch.stack([problem.solution(p, s, grid_x) for p, s in zip(param, t, strict=True)])
    torch.testing.assert_close(batched, looped, rtol=1e-15, atol=0)
    single = problem.solution(param.float(), t.float(), x.float())
    assert single.dtype == torch.float32
    torch.testing.assert_close(single, problem.solution(param, t, x).float(), rtol=1e-5, atol=1e-5)
    mass = problem.total_mass(param, t)
    torch.testing.assert_close(problem.total_mass(param.float(), t.float()), mass.float())


def test_sample_params_are_uniform_in_the_training_range_and_seeded():
    problem = get_conservation_problem("stefan")
    draws = problem.sample_params(20_000, torch.Generator().manual_seed(3))
    low, high = problem.param_range
    assert low <= float(draws.min()) and float(draws.max()) <= high
    assert float(draws.mean()) == pytest.approx((low + high) / 2, abs=0.01 * (high - low))
    assert torch.equal(draws, problem.sample_params(20_000, torch.Generator().manual_seed(3)))


def test_registry_names_and_unknown_name_error():
    assert set(CONSERVATION_PROBLEMS) == {"heat", "pme", "stefan", "advection", "burgers"}
    assert all(name == problem.name for name, problem in CONSERVATION_PROBLEMS.items())
    with pytest.raises(ValueError, match="valid names: advection, burgers, heat, pme, stefan"):
        get_conservation_problem("wave")


def test_settings_can_change_but_geometry_cannot():
    problem = dataclasses.replace(get_conservation_problem("pme"), t_star=0.25)
    assert problem.t_star == 0.25 and problem.x_domain == (0.0, 1.0)
    with pytest.raises(ValueError, match="x_domain"):
        dataclasses.replace(problem, x_domain=(0.0, 2.0))
    with pytest.raises(ValueError, match=r"t_star = 2\.0 lies outside"):
        dataclasses.replace(problem, t_star=2.0)
