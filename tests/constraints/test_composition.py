"""Boundary conditions as constraint rows, stacked with a mass row: one update keeps both."""

import pytest
import torch

from lawful.beliefs import GaussianBelief
from lawful.constraints.boundary import (
    BoundaryConditions,
    Dirichlet,
    Neumann,
    Periodic,
    apply_boundary_conditions,
    boundary_constraint,
)
from lawful.constraints.conservation import mass_constraint, stack_constraints
from lawful.constraints.update import condition
from lawful.metrics import boundary_error
from lawful.models.ensemble import ensemble_belief

NUM_POINTS = 33
GRID = torch.linspace(0, 1, NUM_POINTS, dtype=torch.float64)
SPACING = 1 / (NUM_POINTS - 1)
BATCH = 5


def _conditions(kind):
    generator = torch.Generator().manual_seed(1)
    left, right = torch.randn(2, BATCH, generator=generator, dtype=torch.float64)
    if kind == "dirichlet":
        return BoundaryConditions(Dirichlet(left), Dirichlet(right))
    if kind == "neumann":
        return BoundaryConditions(Neumann(left, order=2), Neumann(right, order=3))
    return BoundaryConditions(Periodic(), Periodic())


def _fields(num, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num, BATCH, NUM_POINTS, generator=generator, dtype=torch.float64)


KINDS = ["dirichlet", "neumann", "periodic"]


@pytest.mark.parametrize("kind", KINDS)
def test_rows_hold_exactly_where_the_conditions_do(kind):
    conditions = _conditions(kind)
    constraint = boundary_constraint(conditions, NUM_POINTS, SPACING)
    assert constraint.num_rows == (1 if kind == "periodic" else 2)
    field = _fields(1)[0]  # (batch, n)
    satisfying = apply_boundary_conditions(field[:, None], conditions, SPACING)[:, 0]
    assert float(constraint.residual(satisfying).abs().max()) < 1e-12
    # ... and a field that violates them violates the rows.
    assert float(constraint.residual(field).abs().max()) > 1e-2


@pytest.mark.parametrize("kind", KINDS)
def test_conditioning_on_mass_and_boundary_rows_keeps_both(kind):
    conditions = _conditions(kind)
    members = _fields(6)  # (K, batch, n)
    prior = ensemble_belief(members, noise_variance=1e-2)
    true_mass = torch.linspace(-1, 1, BATCH, dtype=torch.float64)  # (batch,)
    mass = mass_constraint(GRID, true_mass)
    both = stack_constraints(mass, boundary_constraint(conditions, NUM_POINTS, SPACING))
    posterior = condition(prior, both)
    assert float(mass.residual(posterior.mean).abs().max()) < 1e-10
    assert float(boundary_error(posterior.mean[:, None], conditions, SPACING).max()) < 1e-10
    # The mass row alone moves the ends off their conditions: the joint update is what keeps them.
    start = apply_boundary_conditions(prior.mean[:, None], conditions, SPACING)[:, 0]
    shifted = ensemble_belief(members - prior.mean + start, noise_variance=1e-2)
    mass_only = condition(shifted, mass)
    assert float(boundary_error(start[:, None], conditions, SPACING).max()) < 1e-10
    assert float(boundary_error(mass_only.mean[:, None], conditions, SPACING).max()) > 1e-4


def test_stack_equals_one_constraint_with_all_rows():
    first = mass_constraint(GRID, torch.ones(BATCH, dtype=torch.float64))
    second = boundary_constraint(_conditions("dirichlet"), NUM_POINTS, SPACING)
    stacked = stack_constraints(first, second)
    assert stacked.weights.shape == (3, NUM_POINTS)  # shared rows stay shared: no per-function copy
    assert stacked.values.shape == (BATCH, 3)
    u = _fields(1)[0]
    residual = torch.cat([first.residual(u), second.residual(u)], -1)
    torch.testing.assert_close(stacked.residual(u), residual, rtol=0, atol=1e-14)


def test_stack_refuses_different_grids_and_nothing():
    first = mass_constraint(GRID, torch.ones(BATCH, dtype=torch.float64))
    other = boundary_constraint(_conditions("periodic"), NUM_POINTS + 1, SPACING)
    with pytest.raises(ValueError, match="grids of different sizes"):
        stack_constraints(first, other)
    with pytest.raises(ValueError, match="at least one"):
        stack_constraints()


def test_too_few_points_for_a_stencil_are_named():
    with pytest.raises(ValueError, match="too few"):
        boundary_constraint(_conditions("neumann"), 4, SPACING)


# ----------------------------------------------------------------------------- ensemble belief


def test_ensemble_belief_is_the_sample_covariance_plus_noise():
    members = _fields(5)  # (K, batch, n)
    belief = ensemble_belief(members, noise_variance=0.25)
    torch.testing.assert_close(belief.mean, members.mean(0))
    for b in range(BATCH):
        expected = torch.cov(members[:, b].T) + 0.25 * torch.eye(NUM_POINTS, dtype=torch.float64)
        torch.testing.assert_close(belief.covariance.to_dense()[b], expected)
    torch.testing.assert_close(belief.variance(), members.var(0) + 0.25)


def test_ensemble_belief_posterior_matches_the_dense_formula():
    members = _fields(4)
    belief = ensemble_belief(members, noise_variance=0.1)
    constraint = stack_constraints(
        mass_constraint(GRID, torch.zeros(BATCH, dtype=torch.float64)),
        boundary_constraint(_conditions("neumann"), NUM_POINTS, SPACING),
    )
    posterior = condition(belief, constraint)
    dense = condition(GaussianBelief.dense(belief.mean, belief.covariance.to_dense()), constraint)
    torch.testing.assert_close(posterior.mean, dense.mean)
    torch.testing.assert_close(posterior.covariance.to_dense(), dense.covariance.to_dense())


@pytest.mark.parametrize(
    ("predictions", "noise", "message"),
    [
        (torch.zeros(1, 3, 8), 0.0, "K >= 2"),
        (torch.full((3, 8), float("nan")), 0.0, "NaN"),
        (torch.zeros(3, 8), -1.0, "non-negative"),
    ],
)
def test_ensemble_belief_bad_input_is_named(predictions, noise, message):
    with pytest.raises(ValueError, match=message):
        ensemble_belief(predictions, noise)
