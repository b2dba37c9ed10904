"""The conservation update with bounds: exact mass, bounds held, the optimum of its QP."""

import numpy as np
import pytest
import torch
from scipy import optimize

from lawful.beliefs import GaussianBelief
from lawful.constraints.bounds import condition_within_bounds
from lawful.constraints.conservation import mass_constraint
from lawful.constraints.update import ConstraintError, condition

GRID = torch.sort(torch.rand(41, generator=torch.Generator().manual_seed(3), dtype=torch.float64))[
    0
]


def _prior(batch=(6,), seed=0, num_points=41):
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(*batch, num_points, generator=generator, dtype=torch.float64)
    variance = torch.rand(*batch, num_points, generator=generator, dtype=torch.float64) + 0.05
    return GaussianBelief.diagonal(mean, variance)


def test_inactive_bounds_give_the_plain_update():
    prior = _prior()
    constraint = mass_constraint(GRID, torch.linspace(-1, 1, 6, dtype=torch.float64))
    result = condition_within_bounds(prior, constraint, lower=-100.0, upper=100.0)
    expected = condition(prior, constraint)
    torch.testing.assert_close(result.mean, expected.mean, rtol=0, atol=1e-13)
    torch.testing.assert_close(result.variance(), expected.variance())


@pytest.mark.parametrize(("lower", "upper"), [(0.0, torch.inf), (-0.5, 0.8), (-torch.inf, 0.3)])
def test_bounds_bind_mass_is_exact_and_the_result_is_the_optimum(lower, upper):
    prior = _prior()
    total = 0.2 * torch.ones(6, dtype=torch.float64)
    constraint = mass_constraint(GRID, total)
    result = condition_within_bounds(prior, constraint, lower, upper).mean  # (6, n)
    assert float(constraint.residual(result).abs().max()) < 1e-12
    assert bool((result >= lower).all() & (result <= upper).all())
    # It differs from the plain update where that one leaves the bounds.
    plain = condition(prior, constraint).mean
    assert bool(((plain < lower) | (plain > upper)).any())
    # Optimality (KKT) per function: u_i = clip(mu_i + lam D_i g_i) with one lam.
    weights = constraint.weights[..., 0, :]
    slope = prior.variance() * weights  # (6, n)
    for function in range(6):
        free = (result[function] > lower) & (result[function] < upper)
        assert bool(free.any())
        shifts = (result[function] - prior.mean[function])[free] / slope[function][free]
        multiplier = shifts.mean()
        torch.testing.assert_close(shifts, multiplier.expand_as(shifts), rtol=0, atol=1e-9)
        moved = prior.mean[function] + multiplier * slope[function]
        torch.testing.assert_close(result[function], moved.clamp(lower, upper), rtol=0, atol=1e-9)


def test_the_result_is_the_qp_optimum_a_general_solver_finds():
    prior = _prior(batch=(1,), seed=5, num_points=12)
    grid = torch.linspace(0, 1, 12, dtype=torch.float64)
    constraint = mass_constraint(grid, torch.tensor([0.3], dtype=torch.float64))
    best = condition_within_bounds(prior, constraint, lower=0.0, upper=1.0).mean[0]
    mean, variance = prior.mean[0].numpy(), prior.variance()[0].numpy()
    weights = constraint.weights[0].numpy()  # (n,)

    def cost(u):
        return float((((u - mean) ** 2) / variance).sum())

    reference = optimize.minimize(
        cost,
        np.clip(mean, 0, 1),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * 12,
        constraints=[{"type": "eq", "fun": lambda u: float(weights @ u) - 0.3}],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert reference.success, reference.message
    assert cost(best.numpy()) <= reference.fun + 1e-10
    torch.testing.assert_close(best, torch.from_numpy(reference.x), rtol=0, atol=1e-6)


def test_batched_equals_one_at_a_time():
    prior = _prior(batch=(3, 4))
    total = torch.rand(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    constraint = mass_constraint(GRID, total)
    batched = condition_within_bounds(prior, constraint, lower=0.0).mean
    for i in range(3):
        for j in range(4):
            single = GaussianBelief.diagonal(prior.mean[i, j], prior.variance()[i, j])
            one = condition_within_bounds(single, mass_constraint(GRID, total[i, j]), lower=0.0)
            torch.testing.assert_close(batched[i, j], one.mean, rtol=0, atol=1e-13)


@pytest.mark.parametrize(("prior_batch", "mass_batch"), [((), (3,)), ((2, 1), (2, 3))])
def test_a_constraint_batch_larger_than_the_prior_is_met_for_every_mass(prior_batch, mass_batch):
    # Before: torch's expand error, although condition() broadcasts the same inputs.
    prior = _prior(batch=prior_batch)
    total = 0.2 + 0.4 * torch.rand(mass_batch, generator=torch.Generator().manual_seed(1))
    constraint = mass_constraint(GRID, total.double())
    result = condition_within_bounds(prior, constraint, lower=0.0, upper=1.0)
    assert result.mean.shape == (*mass_batch, 41)
    assert float(constraint.residual(result.mean).abs().max()) < 1e-14  # every mass is met
    assert bool(((result.mean >= 0) & (result.mean <= 1)).all())
    assert bool((result.mean == 0).any() & (result.mean == 1).any())  # both bounds bind
    torch.testing.assert_close(result.variance(), condition(prior, constraint).variance())
    means, variances = prior.mean.expand_as(result.mean), prior.variance().expand_as(result.mean)
    for index in np.ndindex(*mass_batch):
        single = GaussianBelief.diagonal(means[index], variances[index])
        one = condition_within_bounds(single, mass_constraint(GRID, total[index].double()), 0, 1)
        torch.testing.assert_close(result.mean[index], one.mean, rtol=0, atol=1e-13)


def test_float32_agrees_with_float64():
    prior = _prior()
    constraint = mass_constraint(GRID, torch.full((6,), 0.4, dtype=torch.float64))
    double = condition_within_bounds(prior, constraint, 0.0, 1.0).mean
    single_prior = GaussianBelief.diagonal(prior.mean.float(), prior.variance().float())
    single_constraint = mass_constraint(GRID.float(), torch.full((6,), 0.4))
    single = condition_within_bounds(single_prior, single_constraint, 0.0, 1.0).mean
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), double, rtol=0, atol=1e-6)


def test_unreachable_mass_and_stuck_points_are_named():
    prior = _prior()
    too_much = mass_constraint(GRID, torch.full((6,), 5.0, dtype=torch.float64))
    with pytest.raises(ConstraintError, match="reach only"):
        condition_within_bounds(prior, too_much, lower=0.0, upper=1.0)
    variance = prior.variance().clone()
    variance[0, 3] = 0.0
    mean = prior.mean.clone()
    mean[0, 3] = -1.0
    stuck = GaussianBelief.diagonal(mean, variance)
    with pytest.raises(ConstraintError, match="zero variance"):
        condition_within_bounds(
            stuck, mass_constraint(GRID, torch.ones(6, dtype=torch.float64)), 0.0
        )


def test_bad_arguments_are_named():
    prior = _prior()
    constraint = mass_constraint(GRID, torch.ones(6, dtype=torch.float64))
    with pytest.raises(ValueError, match="lower bound exceeds upper"):
        condition_within_bounds(prior, constraint, lower=1.0, upper=0.0)
    with pytest.raises(ValueError, match="NaN"):
        condition_within_bounds(prior, constraint, lower=float("nan"))
    with pytest.raises(ValueError, match="diagonal"):
        dense = GaussianBelief.dense(prior.mean, torch.diag_embed(prior.variance()))
        condition_within_bounds(dense, constraint, lower=0.0)
    with pytest.raises(ValueError, match="exact constraint"):
        noisy = mass_constraint(GRID, torch.ones(6, dtype=torch.float64), noise_variance=0.1)
        condition_within_bounds(prior, noisy, lower=0.0)


def test_mismatched_shapes_are_named():
    # Before: torch's own expand error, naming neither argument.
    prior = _prior()  # (6, 41)
    constraint = mass_constraint(GRID, torch.ones(6, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"lower bound of shape \(4, 41\) does not broadcast"):
        condition_within_bounds(prior, constraint, lower=torch.zeros(4, 41))
    with pytest.raises(
        ValueError, match=r"belief batch shape \(6,\), constraint batch shape \(4,\)"
    ):
        condition_within_bounds(prior, mass_constraint(GRID, torch.ones(4, dtype=torch.float64)))
