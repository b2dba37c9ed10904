"""One catalogue: every problem, conservation or boundary, has the same shape and feeds the same
datasets; a conservation problem's samples are its exact solution, its walls the solution's ends."""

import pytest
import torch

from lawful.constraints.boundary import Dirichlet
from lawful.constraints.quadrature import trapezoid_weights
from lawful.pdes import (
    BOUNDARY_PROBLEMS,
    CONSERVATION_PROBLEMS,
    PROBLEMS,
    Problem,
    get_problem,
    make_boundary_dataset,
)


def test_the_catalogue_lists_every_problem_once_with_one_shape():
    assert set(PROBLEMS) == set(CONSERVATION_PROBLEMS) | set(BOUNDARY_PROBLEMS)
    assert len(PROBLEMS) == len(CONSERVATION_PROBLEMS) + len(BOUNDARY_PROBLEMS)
    for name, problem in PROBLEMS.items():
        assert isinstance(problem, Problem) and problem.name == name
        times = problem.times()
        assert times.ndim == 1 and bool((times.diff() > 0).all())
    with pytest.raises(ValueError, match="unknown problem 'nope'"):
        get_problem("nope")


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_every_problem_samples_through_the_same_dataset_code(name):
    problem = get_problem(name)
    data = make_boundary_dataset(problem, 3, 33, torch.Generator().manual_seed(1), multistep=True)
    assert data["outputs"].shape == (3, problem.times().numel(), 33)
    torch.testing.assert_close(data["x"][[0, -1]], torch.tensor(problem.x_domain).double())
    conditions = problem.conditions
    if conditions is not None and conditions.is_periodic:
        assert data["boundary"] == {"left": None, "right": None}
    for side in ("left", "right"):
        condition = None if conditions is None else getattr(conditions, side)
        if isinstance(condition, Dirichlet):  # the wall data is the solution at that end
            end = 0 if side == "left" else -1
            torch.testing.assert_close(
                data["boundary"][side], data["outputs"][..., end], rtol=0, atol=0
            )


@pytest.mark.parametrize("name", sorted(CONSERVATION_PROBLEMS))
def test_a_conservation_problems_samples_are_its_exact_solution_and_carry_its_mass(name):
    problem = CONSERVATION_PROBLEMS[name]
    x = torch.linspace(*problem.x_domain, 2001, dtype=torch.float64)
    times = problem.times()
    solution = problem.sample(4, x, times, torch.Generator().manual_seed(3))
    (params,) = solution.parameters.values()  # (4,) drawn from the training range
    low, high = problem.param_range
    assert bool(((low <= params) & (params <= high)).all())
    exact = problem.solution(params[:, None, None], times[None, :, None], x)  # (4, T, X)
    torch.testing.assert_close(solution.frames, exact, rtol=0, atol=0)
    mass = solution.frames @ trapezoid_weights(x)  # (4, T)
    # Fronts and kinks limit the trapezoid rule to about first order on 2000 intervals.
    torch.testing.assert_close(mass, problem.total_mass(params[:, None], times), rtol=0, atol=2e-3)


def test_pme_walls_are_its_inflow_and_rest():
    problem = get_problem("pme")
    x = torch.linspace(0, 1, 11, dtype=torch.float64)
    solution = problem.sample(2, x, problem.times(), torch.Generator().manual_seed(0))
    (m,) = solution.parameters.values()
    expected = (m[:, None] * problem.times()).pow(1 / m[:, None])  # (m t)^(1/m): (2, T)
    torch.testing.assert_close(solution.left, expected)
    assert float(solution.right.abs().max()) == 0.0  # the front stays inside [0, 1]


def test_sampler_options_a_conservation_problem_lacks_are_refused():
    problem = get_problem("stefan")
    with pytest.raises(ValueError, match="takes no sampler options"):
        make_boundary_dataset(problem, 2, 9, torch.Generator(), viscosity=0.1)
