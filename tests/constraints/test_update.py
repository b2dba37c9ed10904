"""The ProbConserv update, checked against the dense textbook formula and its exact properties.

Every covariance kind passes the same battery (a diagonal prior is what neural processes give,
a dense one what Gaussian processes give, a low-rank one what a previous update leaves).
"""

import re

import numpy as np
import pytest
import torch

from lawful.beliefs import DenseCovariance, GaussianBelief, LowRankCovariance
from lawful.constraints.boundary import (
    BoundaryConditions,
    Dirichlet,
    Neumann,
    boundary_constraint,
)
from lawful.constraints.conservation import (
    LinearConstraint,
    mass_constraint,
    mass_from_boundary_flux,
    stack_constraints,
)
from lawful.constraints.quadrature import trapezoid_weights
from lawful.constraints.update import (
    ConstraintError,
    condition,
    constrained_log_likelihood,
    project_identity,
    sample_posterior,
)

N = 12


def _random_belief(kind: str, batch=(3,), n=N, dtype=torch.float64, seed=0) -> GaussianBelief:
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(*batch, n, generator=generator, dtype=dtype)
    variance = torch.rand(*batch, n, generator=generator, dtype=dtype) + 0.1
    if kind == "diagonal":
        return GaussianBelief.diagonal(mean, variance)
    factor = torch.randn(*batch, n, 2, generator=generator, dtype=dtype)
    if kind == "low_rank":
        core = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=dtype).expand(*batch, 2, 2)
        return GaussianBelief(mean, LowRankCovariance(variance, factor, core))
    dense = torch.diag_embed(variance) + factor @ factor.transpose(-1, -2)
    return GaussianBelief.dense(mean, dense)


def _random_constraint(batch=(3,), n=N, k=2, noise=0.0, dtype=torch.float64, seed=1):
    generator = torch.Generator().manual_seed(seed)
    weights = torch.rand(*batch, k, n, generator=generator, dtype=dtype)
    values = torch.randn(*batch, k, generator=generator, dtype=dtype)
    return LinearConstraint(weights, values, noise)


def _textbook_posterior(belief, constraint):
    """The posterior by the printed formula, with an n x n covariance and an explicit inverse."""
    sigma = belief.covariance.to_dense()
    g = constraint.weights
    noise = constraint.noise_variance * torch.eye(g.shape[-2], dtype=sigma.dtype)
    q = g @ sigma @ g.transpose(-1, -2) + noise
    gain = sigma @ g.transpose(-1, -2) @ torch.linalg.inv(q)  # (..., n, k)
    residual = constraint.values - (g @ belief.mean.unsqueeze(-1)).squeeze(-1)
    mean = belief.mean + (gain @ residual.unsqueeze(-1)).squeeze(-1)
    return mean, sigma - gain @ g @ sigma


KINDS = ["diagonal", "low_rank", "dense"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_matches_dense_textbook_formula(kind, noise):
    belief, constraint = _random_belief(kind), _random_constraint(noise=noise)
    posterior = condition(belief, constraint)
    expected_mean, expected_cov = _textbook_posterior(belief, constraint)
    torch.testing.assert_close(posterior.mean, expected_mean, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(posterior.covariance.to_dense(), expected_cov, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(posterior.variance(), torch.diagonal(expected_cov, dim1=-2, dim2=-1))


@pytest.mark.parametrize("kind", KINDS)
def test_exact_constraint_holds_to_round_off(kind):
    belief, constraint = _random_belief(kind), _random_constraint()
    posterior = condition(belief, constraint)
    assert constraint.residual(posterior.mean).abs().max() < 1e-10


@pytest.mark.parametrize("kind", KINDS)
def test_posterior_is_psd_and_variance_never_grows(kind):
    belief = _random_belief(kind)
    for noise in (0.0, 1e-3, 1.0):
        posterior = condition(belief, _random_constraint(noise=noise))
        eigenvalues = torch.linalg.eigvalsh(posterior.covariance.to_dense())
        assert eigenvalues.min() > -1e-10
        assert (posterior.variance() <= belief.variance() + 1e-12).all()


@pytest.mark.parametrize("kind", KINDS)
def test_applying_twice_changes_nothing(kind):
    constraint = _random_constraint()
    once = condition(_random_belief(kind), constraint)
    twice = condition(once, constraint)
    torch.testing.assert_close(twice.mean, once.mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        twice.covariance.to_dense(), once.covariance.to_dense(), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("kind", KINDS)
def test_batched_equals_looped(kind):
    belief, constraint = _random_belief(kind), _random_constraint()
    batched = condition(belief, constraint)
    for i in range(3):
        single_belief = _random_belief(kind)
        single = condition(
            GaussianBelief(single_belief.mean[i], _index_covariance(single_belief.covariance, i)),
            LinearConstraint(constraint.weights[i], constraint.values[i]),
        )
        torch.testing.assert_close(single.mean, batched.mean[i])
        torch.testing.assert_close(single.variance(), batched.variance()[i])


def _index_covariance(covariance, i):
    if isinstance(covariance, DenseCovariance):
        return DenseCovariance(covariance.matrix[i])
    if isinstance(covariance, LowRankCovariance):
        return LowRankCovariance(covariance.diagonal[i], covariance.factor[i], covariance.core[i])
    return type(covariance)(covariance.diagonal[i])


def test_dense_prior_conditioned_on_pinning_rows_keeps_a_clean_zero_variance():
    # Rows that fix single entries leave exactly zero variance there; rounding may leave -1e-16,
    # which the posterior must carry (and clamp), not refuse.
    rows = torch.zeros(2, N, dtype=torch.float64)
    rows[0, 0] = rows[1, -1] = 1
    pinned = LinearConstraint(rows, torch.tensor([0.3, -0.2], dtype=torch.float64))
    for seed in range(40):
        posterior = condition(_random_belief("dense", batch=(), seed=seed), pinned)
        torch.testing.assert_close(posterior.mean[[0, -1]], pinned.values, rtol=0, atol=1e-12)
        assert float(posterior.variance()[[0, -1]].max()) < 1e-12
        assert float(posterior.variance().min()) >= 0


def test_float32_agrees_with_float64():
    belief64, constraint64 = _random_belief("diagonal"), _random_constraint()
    belief32 = GaussianBelief.diagonal(belief64.mean.float(), belief64.variance().float())
    constraint32 = LinearConstraint(constraint64.weights.float(), constraint64.values.float())
    posterior32 = condition(belief32, constraint32)
    posterior64 = condition(belief64, constraint64)
    torch.testing.assert_close(posterior32.mean.double(), posterior64.mean, rtol=1e-5, atol=1e-5)
    assert constraint32.residual(posterior32.mean).abs().max() < 1e-5
    # A float64 constraint on a float32 belief: the update works in the belief's dtype.
    mixed = condition(belief32, constraint64)
    assert mixed.mean.dtype == torch.float32
    torch.testing.assert_close(mixed.mean, posterior32.mean, rtol=0, atol=1e-6)


def test_shared_weights_broadcast_over_functions_times_and_samples():
    # (samples, functions, times, n) beliefs, one row of weights, one mass per function and time.
    generator = torch.Generator().manual_seed(3)
    mean = torch.randn(4, 2, 5, N, generator=generator, dtype=torch.float64)
    variance = torch.rand(4, 2, 5, N, generator=generator, dtype=torch.float64) + 0.1
    grid = torch.linspace(0, 1, N, dtype=torch.float64)
    mass = torch.randn(2, 5, generator=generator, dtype=torch.float64)
    constraint = mass_constraint(grid, mass)
    posterior = condition(GaussianBelief.diagonal(mean, variance), constraint)
    assert constraint.residual(posterior.mean).abs().max() < 1e-12
    slice_posterior = condition(
        GaussianBelief.diagonal(mean[1, 0, 2], variance[1, 0, 2]), mass_constraint(grid, mass[0, 2])
    )
    torch.testing.assert_close(slice_posterior.mean, posterior.mean[1, 0, 2])


def test_correction_goes_where_the_model_is_unsure():
    mean = torch.zeros(N, dtype=torch.float64)
    variance = torch.full((N,), 1e-4, dtype=torch.float64)
    variance[7] = 1.0
    grid = torch.linspace(0, 1, N, dtype=torch.float64)
    posterior = condition(
        GaussianBelief.diagonal(mean, variance),
        mass_constraint(grid, torch.tensor(1.0, dtype=torch.float64)),
    )
    moved = posterior.mean - mean
    assert moved.argmax() == 7 and moved[7] > 100 * moved[0]
    hardc = project_identity(
        GaussianBelief.diagonal(mean, variance),
        mass_constraint(grid, torch.tensor(1.0, dtype=torch.float64)),
    )
    assert hardc.mean[1:-1].std() < 1e-12  # spread evenly over the interior


def test_hardc_is_the_update_with_identity_covariance():
    belief, constraint = _random_belief("diagonal"), _random_constraint()
    identity = GaussianBelief.diagonal(belief.mean, torch.ones_like(belief.mean))
    expected_mean, _ = _textbook_posterior(identity, constraint)
    projected = project_identity(belief, constraint)
    torch.testing.assert_close(projected.mean, expected_mean)
    torch.testing.assert_close(projected.variance(), belief.variance())
    assert constraint.residual(projected.mean).abs().max() < 1e-10


def test_gradients_pass_gradcheck():
    generator = torch.Generator().manual_seed(5)
    mean = torch.randn(2, 6, generator=generator, dtype=torch.float64, requires_grad=True)
    variance = (torch.rand(2, 6, generator=generator, dtype=torch.float64) + 0.2).requires_grad_()
    weights = torch.rand(2, 2, 6, generator=generator, dtype=torch.float64)
    values = torch.randn(2, 2, generator=generator, dtype=torch.float64, requires_grad=True)

    def posterior_moments(mean, variance, values):
        posterior = condition(
            GaussianBelief.diagonal(mean, variance), LinearConstraint(weights, values)
        )
        return posterior.mean, posterior.variance()

    assert torch.autograd.gradcheck(posterior_moments, (mean, variance, values))


def test_posterior_samples_have_posterior_moments():
    belief = _random_belief("diagonal", batch=(), n=6)
    constraint = _random_constraint(batch=(), n=6, k=1)
    draws = sample_posterior(belief, constraint, 200_000, torch.Generator().manual_seed(0))
    posterior = condition(belief, constraint)
    assert constraint.residual(draws).abs().max() < 1e-10  # every draw conserves exactly
    torch.testing.assert_close(draws.mean(0), posterior.mean, atol=1e-2, rtol=0)
    torch.testing.assert_close(
        torch.cov(draws.T), posterior.covariance.to_dense(), atol=1e-2, rtol=0
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("prior_batch", "constraint_batch"), [((), (4,)), ((3, 1), (3, 4)), ((4,), (2, 1, 4))]
)
def test_posterior_samples_cover_a_constraint_batch_the_prior_lacks(
    kind, prior_batch, constraint_batch
):
    # Before: the sample axis was aligned with the constraint's batch axis (4 draws on 4 masses
    # gave (4, n), one draw per posterior) or torch failed on the sizes (3 draws).
    belief = _random_belief(kind, batch=prior_batch)
    constraint = _random_constraint(batch=constraint_batch)
    draws = sample_posterior(belief, constraint, 3, torch.Generator().manual_seed(0))
    assert draws.shape == (3, *torch.broadcast_shapes(prior_batch, constraint_batch), N)
    assert constraint.residual(draws).abs().max() < 1e-10  # each element's own masses


@pytest.mark.parametrize("prior_batch", [(), (1,)])
def test_posterior_samples_are_independent_across_a_batch_the_prior_lacks(prior_batch):
    # Before: a prior of batch (1,) gave both batch elements the same prior draws.
    belief = _random_belief("diagonal", batch=(), n=6)
    prior = GaussianBelief.diagonal(
        belief.mean.expand(*prior_batch, 6), belief.variance().expand(*prior_batch, 6)
    )
    once = _random_constraint(batch=(), n=6, k=1)
    twice = LinearConstraint(once.weights, once.values.expand(2, 1))  # one posterior, twice
    draws = sample_posterior(prior, twice, 200_000, torch.Generator().manual_seed(0))
    assert draws.shape == (200_000, 2, 6)
    posterior = condition(belief, once)
    for element in range(2):
        torch.testing.assert_close(draws[:, element].mean(0), posterior.mean, atol=1e-2, rtol=0)
        torch.testing.assert_close(
            torch.cov(draws[:, element].T), posterior.covariance.to_dense(), atol=1e-2, rtol=0
        )
    between_elements = torch.cov(draws.flatten(1).T)[:6, 6:]  # (6, 6)
    assert between_elements.abs().max() < 1e-2


def test_constrained_likelihood_is_the_posterior_density():
    belief = _random_belief("diagonal", batch=(), n=5)
    weights = torch.rand(1, 5, dtype=torch.float64)
    target = torch.randn(5, dtype=torch.float64)
    noise = 0.05
    posterior = condition(belief, LinearConstraint(weights, weights @ target, noise))
    expected = torch.distributions.MultivariateNormal(
        posterior.mean, posterior.covariance.to_dense()
    ).log_prob(target)
    actual = constrained_log_likelihood(target, belief.mean, belief.variance(), weights, noise)
    torch.testing.assert_close(actual, expected)


def test_mass_from_boundary_flux_integrates_the_net_outflow():
    times = torch.linspace(0, 1, 101, dtype=torch.float64)
    # Flux 2t entering at the left (F > 0 points into the domain there), none leaving:
    # U(t) = U0 + t^2.
    mass = mass_from_boundary_flux(
        torch.tensor(0.5, dtype=torch.float64), times, 2 * times, 0 * times
    )
    torch.testing.assert_close(mass, 0.5 + times**2)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: GaussianBelief.diagonal(torch.tensor([0.0, float("nan")]), torch.ones(2)),
            "mean contains NaN",
        ),
        (
            lambda: GaussianBelief.diagonal(torch.tensor([0.0, float("inf")]), torch.ones(2)),
            "infinite",
        ),
        (
            lambda: GaussianBelief.diagonal(torch.zeros(3), torch.tensor([1.0, -0.5, 1.0])),
            "variance must be non-negative",
        ),
        (lambda: GaussianBelief.diagonal(torch.zeros(3), torch.ones(4)), "shapes differ"),
        (lambda: LinearConstraint(torch.ones(1, 3), torch.ones(2)), "one per row"),
        (
            lambda: LinearConstraint(torch.ones(1, 3), torch.ones(1), -1.0),
            "noise variance must be non-negative",
        ),
        (lambda: LinearConstraint(torch.ones(3), torch.ones(1)), r"\(\.\.\., k, n\)"),
        (
            lambda: mass_constraint(torch.tensor([0.0, 2.0, 1.0]), torch.tensor(1.0)),
            "strictly increasing",
        ),
        (
            lambda: condition(
                GaussianBelief.diagonal(torch.zeros(3), torch.ones(3)),
                LinearConstraint(torch.ones(1, 4), torch.ones(1)),
            ),
            "4 grid points",
        ),
    ],
)
def test_bad_input_is_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_impossible_constraint_is_an_error():
    belief = GaussianBelief.diagonal(
        torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    )
    constraint = LinearConstraint(
        torch.ones(1, 4, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    )
    with pytest.raises(ConstraintError, match="cannot be met"):
        condition(belief, constraint)
    # With constraint noise the same prior is simply unmoved: the noise explains the defect.
    posterior = condition(belief, LinearConstraint(constraint.weights, constraint.values, 0.1))
    torch.testing.assert_close(posterior.mean, belief.mean)


# ------------------------------------------------------------------ rank, pinning, dtypes, shapes


def _two_point_prior():
    return GaussianBelief.diagonal(
        torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    )


def _mass_and_ends(total_mass: float, left: float = 1.0, right: float = 2.0):
    """On the 2-point grid {0, 1} the mass row (1/2, 1/2) is a combination of the end rows."""
    grid = torch.tensor([0.0, 1.0], dtype=torch.float64)
    ends = boundary_constraint(BoundaryConditions(Dirichlet(left), Dirichlet(right)), 2, 1.0)
    return stack_constraints(
        mass_constraint(grid, torch.tensor(total_mass, dtype=torch.float64)), ends
    )


def test_dependent_rows_with_consistent_values_are_met_exactly():
    # Before: Cholesky passed on a rounding pivot and the mean met neither mass nor ends.
    constraint = _mass_and_ends(1.5)  # (1 + 2) / 2: consistent with the ends
    posterior = condition(_two_point_prior(), constraint)
    torch.testing.assert_close(posterior.mean, torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert float(constraint.residual(posterior.mean).abs().max()) < 1e-15
    assert float(posterior.variance().max()) < 1e-15
    hardc = project_identity(_two_point_prior(), constraint)
    torch.testing.assert_close(hardc.mean, torch.tensor([1.0, 2.0], dtype=torch.float64))
    draws = sample_posterior(_two_point_prior(), constraint, 5, torch.Generator().manual_seed(0))
    assert float(constraint.residual(draws).abs().max()) < 1e-14


def test_dependent_rows_with_contradicting_values_are_named():
    with pytest.raises(ConstraintError, match=r"row 2 is linearly dependent on rows \[0, 1\]"):
        condition(_two_point_prior(), _mass_and_ends(3.0))
    with pytest.raises(ConstraintError, match=r"row 2 is linearly dependent on rows \[0, 1\]"):
        project_identity(_two_point_prior(), _mass_and_ends(3.0))
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ConstraintError, match="row 2"):
        sample_posterior(_two_point_prior(), _mass_and_ends(3.0), 3, generator)


def test_a_negative_number_of_posterior_samples_is_named():
    with pytest.raises(ValueError, match="num_samples must be non-negative, got -1"):
        sample_posterior(_two_point_prior(), _mass_and_ends(1.5), -1)


@pytest.mark.parametrize("kind", KINDS)
def test_conditioning_again_on_an_overlapping_constraint_equals_conditioning_once(kind):
    # The mass row is pinned by the first update; the second adds end rows. Before: the pinned
    # row made the Gram matrix singular and the update refused (or divided by rounding).
    grid = torch.linspace(0, 1, N, dtype=torch.float64)
    mass = mass_constraint(grid, torch.tensor([0.5, -0.2, 1.0], dtype=torch.float64))
    ends = BoundaryConditions(Dirichlet(0.3), Neumann(-0.4, order=2))
    both = stack_constraints(mass, boundary_constraint(ends, N, 1 / (N - 1)))
    prior = _random_belief(kind)
    once = condition(prior, both)
    in_two_steps = condition(condition(prior, mass), both)
    torch.testing.assert_close(in_two_steps.mean, once.mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        in_two_steps.covariance.to_dense(), once.covariance.to_dense(), rtol=0, atol=1e-12
    )


def test_a_belief_pinned_where_a_row_has_weight_meets_it_or_names_it():
    rows = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    variance = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    pinned_at_one = GaussianBelief.diagonal(
        torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), variance
    )
    values = torch.tensor([1.0, 2.0], dtype=torch.float64)
    posterior = condition(pinned_at_one, LinearConstraint(rows, values))
    torch.testing.assert_close(posterior.mean, torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64))
    pinned_at_zero = GaussianBelief.diagonal(torch.zeros(3, dtype=torch.float64), variance)
    with pytest.raises(ConstraintError, match="row 0 has no variance under the belief"):
        condition(pinned_at_zero, LinearConstraint(rows, values))


def test_an_update_that_overflows_its_dtype_is_an_error():
    # float32 variances of 1e-37 (normal numbers) under a mass defect of 1e3: 1 / (g^T D g)
    # times the defect exceeds float32. Before: an infinite mean.
    belief = GaussianBelief.diagonal(torch.ones(5), torch.full((5,), 1e-37))
    constraint = mass_constraint(torch.linspace(0, 1, 5), torch.tensor(1e3))
    with pytest.raises(ConstraintError, match=r"overflows torch\.float32"):
        condition(belief, constraint)


@pytest.mark.parametrize(("dtype", "variance"), [(torch.float64, 1e306), (torch.float32, 1e37)])
def test_a_variance_too_large_for_its_dtype_is_an_error(dtype, variance):
    # Finite variances whose G Sigma G^T exceeds the dtype. Before: the posterior variance came
    # back NaN and the mean did not move, with no error.
    belief = GaussianBelief.diagonal(
        torch.zeros(5, dtype=dtype), torch.full((5,), variance, dtype=dtype)
    )
    constraint = mass_constraint(torch.linspace(0, 40, 5), torch.tensor(1.0))
    message = rf"overflows {re.escape(str(dtype))}: .* is too large \(G Sigma G\^T \+ S exceeds"
    with pytest.raises(ConstraintError, match=message):
        condition(belief, constraint)
    with pytest.raises(ConstraintError, match=message):
        sample_posterior(belief, constraint, 2, torch.Generator().manual_seed(0))
    with pytest.raises(ConstraintError, match=r"is too large \(G D G\^T \+ S exceeds"):
        constrained_log_likelihood(
            belief.mean, belief.mean, belief.variance(), constraint.weights, 1e-3
        )


@pytest.mark.parametrize("mass_dtype", [torch.float32, torch.float16])
def test_a_low_precision_mass_does_not_round_the_weights(mass_dtype):
    # Before: the weights took the mass's dtype, so a float64 belief conserved to 1e-8 (1e-4).
    grid = torch.linspace(0, 1, 50, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    belief = GaussianBelief.diagonal(
        torch.rand(50, generator=generator, dtype=torch.float64),
        torch.rand(50, generator=generator, dtype=torch.float64) + 0.1,
    )
    mass = torch.tensor(1 / 3, dtype=mass_dtype)
    constraint = mass_constraint(grid, mass)
    assert constraint.weights.dtype == torch.float64
    posterior = condition(belief, constraint)
    conserved = trapezoid_weights(grid) @ posterior.mean
    assert abs(float(conserved) - float(mass)) < 1e-15


def test_integer_grids_and_masses_are_promoted_to_float64():
    # Before: an integer mass gave integer (all-zero) weights and a misleading error.
    constraint = mass_constraint(torch.arange(5), torch.tensor(2))
    assert constraint.weights.dtype == constraint.values.dtype == torch.float64
    belief = GaussianBelief.diagonal(
        torch.zeros(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    )
    posterior = condition(belief, constraint)
    assert float(trapezoid_weights(torch.arange(5.0, dtype=torch.float64)) @ posterior.mean) == (
        pytest.approx(2.0, abs=1e-15)
    )
    exact_rows = LinearConstraint(torch.tensor([[1, 1, 0, 0, 0]]), torch.tensor([3]))
    assert exact_rows.weights.dtype == torch.float64


def test_constrained_likelihood_refuses_bad_input():
    weights, ones = torch.ones(1, 2), torch.ones(2)
    with pytest.raises(ValueError, match="target contains NaN"):
        constrained_log_likelihood(torch.tensor([float("nan"), 0.0]), ones, ones, weights, 0.1)
    with pytest.raises(ValueError, match=r"shapes must be equal.*mean \(3,\)"):
        constrained_log_likelihood(ones, torch.ones(3), ones, weights, 0.1)
    with pytest.raises(ValueError, match="variance must be positive"):
        constrained_log_likelihood(ones, ones, torch.tensor([1.0, 0.0]), weights, 0.1)
    # Two equal rows with noise far below the rounding of G D G^T: the density is not resolved.
    with pytest.raises(ConstraintError, match="row 1"):
        constrained_log_likelihood(ones, ones, ones, torch.ones(2, 2), 1e-20)


def test_constrained_likelihood_names_mixed_dtypes_and_a_noise_of_the_wrong_shape():
    # Before: torch's "expected scalar type Double but found Float", an IndexError, and a
    # Cholesky error on a 3 x 1 matrix.
    generator = torch.Generator().manual_seed(0)
    weights = trapezoid_weights(torch.linspace(0, 1, 5, dtype=torch.float64))[None]  # (1, 5)
    mean = torch.rand(3, 5, generator=generator, dtype=torch.float64)
    target = mean + 0.1 * torch.randn(3, 5, generator=generator, dtype=torch.float64)
    variance = torch.full((3, 5), 0.01, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"dtypes must be equal, got target torch\.float32, mean"):
        constrained_log_likelihood(target.float(), mean, variance, weights, 1e-3)
    noise = torch.tensor([1e-3, 1e-2, 1e-1], dtype=torch.float64)
    with pytest.raises(
        ValueError,
        match=r"noise variance of shape \(3,\) does not broadcast to the constraint values G "
        r"target \(3, 1\)",
    ):
        constrained_log_likelihood(target, mean, variance, weights, noise)
    # One noise per sample, (3, 1) like the rows' values: each sample's own likelihood.
    per_sample = constrained_log_likelihood(target, mean, variance, weights, noise[:, None])
    one_at_a_time = torch.stack(
        [
            constrained_log_likelihood(target[i], mean[i], variance[i], weights, float(noise[i]))
            for i in range(3)
        ]
    )
    torch.testing.assert_close(per_sample, one_at_a_time, rtol=1e-14, atol=0)


def test_a_noise_variance_that_grows_the_values_shape_is_named():
    grid = torch.linspace(0, 1, 5, dtype=torch.float64)
    masses = torch.tensor([0.5, 0.6, 0.7], dtype=torch.float64)
    noise = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    # Before: accepted, then condition() failed inside torch.expand.
    with pytest.raises(
        ValueError,
        match=r"constraint noise variance of shape \(3,\) does not broadcast to constraint "
        r"values \(3, 1\)",
    ):
        mass_constraint(grid, masses, noise_variance=noise)
    # One noise per function, (3, 1) like the values, is each function's own update.
    belief = _random_belief("diagonal", batch=(3,), n=5)
    posterior = condition(belief, mass_constraint(grid, masses, noise_variance=noise[:, None]))
    for i in range(3):
        single = GaussianBelief.diagonal(belief.mean[i], belief.variance()[i])
        alone = condition(single, mass_constraint(grid, masses[i], noise_variance=float(noise[i])))
        torch.testing.assert_close(posterior.mean[i], alone.mean, rtol=1e-14, atol=1e-15)
        torch.testing.assert_close(
            posterior.variance()[i], alone.variance(), rtol=1e-14, atol=1e-15
        )


def test_mass_from_boundary_flux_refuses_nan_and_mismatched_batches():
    times = torch.linspace(0, 1, 3)
    with pytest.raises(ValueError, match="left flux contains NaN"):
        mass_from_boundary_flux(
            torch.tensor(1.0), times, torch.tensor([0.0, float("nan"), 0.0]), torch.zeros(3)
        )
    with pytest.raises(ValueError, match=r"do not broadcast: initial mass \(3,\), left flux"):
        mass_from_boundary_flux(torch.ones(3), times, torch.zeros(4, 3), torch.zeros(3, 3))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: condition(
                GaussianBelief.diagonal(torch.zeros(3, 5), torch.ones(3, 5)),
                mass_constraint(torch.linspace(0, 1, 5), torch.ones(4)),
            ),
            ValueError,
            r"belief batch shape \(3,\), constraint batch shape \(4,\)",
        ),
        (
            lambda: stack_constraints(
                mass_constraint(torch.linspace(0, 1, 5), torch.ones(3)),
                mass_constraint(torch.linspace(0, 1, 5), torch.ones(4)),
            ),
            ValueError,
            r"constraint 0 batch \(3,\), constraint 1 batch \(4,\)",
        ),
        (
            lambda: LinearConstraint(torch.ones(2, 1, 3), torch.ones(3, 1)),
            ValueError,
            "do not broadcast",
        ),
        (
            lambda: LinearConstraint(np.ones((1, 3)), np.ones(1)),
            TypeError,
            r"constraint weights must be a torch\.Tensor, got numpy\.ndarray",
        ),
        (
            lambda: mass_constraint(torch.linspace(0, 1, 3), torch.tensor(1 + 1j)),
            TypeError,
            "total mass must be real",
        ),
        (
            lambda: GaussianBelief.diagonal(torch.zeros(3, dtype=torch.complex64), torch.ones(3)),
            TypeError,
            "mean must be real",
        ),
    ],
)
def test_mismatched_and_foreign_input_is_named(make, error, message):
    with pytest.raises(error, match=message):
        make()
