import math

import pytest
import torch
from scipy import integrate, stats

from lawful.constraints.boundary import BoundaryConditions, Dirichlet, Neumann, Periodic
from lawful.metrics import (
    boundary_error,
    conservation_error,
    crps_gaussian,
    first_crossing,
    gaussian_log_likelihood,
    interval_coverage,
    mean_squared_error,
    neumann_flux_error,
    relative_l2,
    summarize,
)


def test_conservation_error_is_signed_trapezoid_mass_defect():
    # exp(x) is not zero at the ends, so trapezoid, left and right Riemann sums all differ; the
    # grid is not uniform.
    grid = torch.sort(torch.rand(41, generator=torch.Generator().manual_seed(0))).values.double()
    mean = torch.stack([torch.exp(grid), 1.1 * torch.exp(grid)])  # (2, n)
    true_mass = torch.tensor([2.0, -1.0], dtype=torch.float64)
    expected = torch.trapezoid(mean, grid) - true_mass
    torch.testing.assert_close(
        conservation_error(mean, grid, true_mass), expected, rtol=0, atol=1e-14
    )


def test_log_likelihood_matches_torch_normal():
    mean, variance, truth = torch.randn(3, 7), torch.rand(3, 7) + 0.1, torch.randn(3, 7)
    expected = torch.distributions.Normal(mean, variance.sqrt()).log_prob(truth).mean(-1)
    torch.testing.assert_close(gaussian_log_likelihood(mean, variance, truth), expected)


def test_crps_matches_its_integral_definition():
    # CRPS(F, y) = integral of (F(x) - 1[x >= y])^2 dx, integrated numerically with SciPy.
    mean = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    variance = torch.tensor([0.49, 2.0, 0.01], dtype=torch.float64)
    truth = torch.tensor([1.0, -1.0, 1.7], dtype=torch.float64)
    per_point = []
    for mu, var, y in zip(mean.tolist(), variance.tolist(), truth.tolist(), strict=True):
        cdf = stats.norm(mu, var**0.5).cdf
        below, _ = integrate.quad(lambda x, cdf=cdf: cdf(x) ** 2, -50, y, epsabs=1e-13)
        above, _ = integrate.quad(lambda x, cdf=cdf: (1 - cdf(x)) ** 2, y, 50, epsabs=1e-13)
        per_point.append(below + above)
    expected = torch.tensor(per_point, dtype=torch.float64).mean()
    assert float(crps_gaussian(mean, variance, truth)) == pytest.approx(float(expected), rel=1e-9)


@pytest.mark.parametrize("level", [0.5, 0.95])
def test_coverage_of_draws_from_the_belief_itself_is_the_level(level):
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 20_000, generator=generator, dtype=torch.float64)
    variance = torch.rand(4, 20_000, generator=generator, dtype=torch.float64) + 0.1
    truth = mean + variance.sqrt() * torch.randn(
        4, 20_000, generator=generator, dtype=torch.float64
    )
    coverage = interval_coverage(mean, variance, truth, level)  # (4,)
    standard_error = math.sqrt(level * (1 - level) / 20_000)
    assert float((coverage - level).abs().max()) < 4 * standard_error
    # Halving every standard deviation (overconfidence) loses coverage.
    assert float(interval_coverage(mean, variance / 4, truth, level).max()) < level - 0.1


def test_coverage_interval_edges_and_bad_level():
    mean, variance = torch.zeros(3), torch.ones(3)
    truth = torch.tensor([1.95, 1.97, -1.95])  # z(0.975) = 1.95996
    torch.testing.assert_close(interval_coverage(mean, variance, truth), torch.tensor(2 / 3))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        interval_coverage(mean, variance, truth, level=1.0)


def test_mse_and_relative_l2():
    truth = torch.tensor([[3.0, 4.0]])
    assert float(mean_squared_error(truth + 1, truth)) == 1.0
    assert float(relative_l2(truth * 1.5, truth)) == pytest.approx(0.5)


def test_first_crossing_finds_the_front():
    grid = torch.linspace(0, 1, 11)
    samples = torch.stack([(grid < 0.45).float(), torch.ones(11), (grid < 0.05).float()])
    torch.testing.assert_close(first_crossing(samples, grid), torch.tensor([0.5, 1.0, 0.1]))


def test_summarize_gives_mean_and_standard_error():
    summary = summarize(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert summary.mean == 2.5
    assert summary.standard_error == pytest.approx(math.sqrt(5 / 3) / 2)


def test_boundary_error_is_the_mean_absolute_residual_at_both_ends():
    field = torch.tensor([[[1.0, 5.0, 2.5]], [[0.0, 7.0, 0.0]]], dtype=torch.float64)  # (2, 1, 3)
    dirichlet = BoundaryConditions(Dirichlet(torch.tensor([1.0, 1.0])), Dirichlet(2.0))
    # sample 0: |1 - 1|, |2.5 - 2| -> 0.25; sample 1: |0 - 1|, |0 - 2| -> 1.5
    torch.testing.assert_close(
        boundary_error(field, dirichlet, 0.5), torch.tensor([0.25, 1.5], dtype=torch.float64)
    )
    periodic = BoundaryConditions(Periodic(), Periodic())
    torch.testing.assert_close(
        boundary_error(field, periodic, 0.5), torch.tensor([1.5, 0.0], dtype=torch.float64)
    )


def test_fourth_order_flux_error_vanishes_on_quartics_and_reads_time_dependent_data():
    x = torch.linspace(0, 1, 11, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0], dtype=torch.float64)  # (time,)
    field = (scale[:, None] * x**4)[None, None].transpose(-1, -2)  # (1, 1, x, time)
    right_flux = 4 * scale[None]  # (batch, time): u_x(1) = 4 s
    exact = BoundaryConditions(Dirichlet(), Neumann(right_flux, order=1), axis=2)
    error = neumann_flux_error(field, exact, 0.1)
    torch.testing.assert_close(error, torch.zeros(1, dtype=torch.float64), rtol=0, atol=1e-10)
    off = BoundaryConditions(Neumann(1.0), Neumann(right_flux + 0.5), axis=2)
    # left: |0 - 1| at both times; right: 0.5 at both times -> mean 0.75
    torch.testing.assert_close(
        neumann_flux_error(field, off, 0.1), torch.tensor([0.75], dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="at least one Neumann end"):
        neumann_flux_error(field, BoundaryConditions(Dirichlet(), Dirichlet(), axis=2), 0.1)


def test_a_zero_variance_is_a_point_mass():
    # Before: NaN log-likelihood and CRPS wherever the variance was zero.
    mean = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    variance = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    truth = torch.tensor([[0.0, 1.5], [0.2, 1.5]], dtype=torch.float64)  # row 1 misses at x_0
    ll = gaussian_log_likelihood(mean, variance, truth)
    assert float(ll[0]) == math.inf and float(ll[1]) == -math.inf
    crps = crps_gaussian(mean, variance, truth)
    positive = crps_gaussian(mean[:, 1:], variance[:, 1:], truth[:, 1:])  # (2,)
    torch.testing.assert_close(crps, (torch.tensor([0.0, 0.2], dtype=torch.float64) + positive) / 2)
    # Zero width: covered only where the truth is the mean exactly.
    torch.testing.assert_close(
        interval_coverage(mean, variance, truth), torch.tensor([1.0, 0.5], dtype=torch.float64)
    )


def test_crps_of_a_vanishing_variance_tends_to_the_absolute_error():
    mean, truth = torch.zeros(1, dtype=torch.float64), torch.tensor([0.7], dtype=torch.float64)
    tiny = crps_gaussian(mean, torch.tensor([1e-30], dtype=torch.float64), truth)
    exact = crps_gaussian(mean, torch.zeros(1, dtype=torch.float64), truth)
    torch.testing.assert_close(tiny, exact, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("metric", "arguments", "message"),
    [
        # Before: (3, 1, 5) against (3, 5) broadcast to (3, 3, 5) and averaged silently.
        (mean_squared_error, (torch.zeros(3, 1, 5), torch.zeros(3, 5)), "shapes must be equal"),
        (relative_l2, (torch.zeros(3, 1, 5), torch.ones(3, 5)), "shapes must be equal"),
        (
            gaussian_log_likelihood,
            (torch.zeros(3, 5), torch.ones(3, 1), torch.zeros(3, 5)),
            "shapes must be equal",
        ),
        # Before: NaN in, NaN out.
        (mean_squared_error, (torch.tensor([math.nan]), torch.zeros(1)), "mean contains NaN"),
        (crps_gaussian, (torch.zeros(2), torch.ones(2), torch.tensor([0.0, math.inf])), "truth"),
        # Before: NaN log-likelihood and CRPS, and coverage 0, for a negative variance.
        (
            gaussian_log_likelihood,
            (torch.zeros(2), torch.tensor([-1.0, 1.0]), torch.zeros(2)),
            "variance must be non-negative",
        ),
        (
            interval_coverage,
            (torch.zeros(2), torch.tensor([-1.0, 1.0]), torch.zeros(2)),
            "variance must be non-negative",
        ),
        (
            conservation_error,
            (torch.zeros(3, 5), torch.linspace(0, 1, 5), torch.zeros(3, 1)),
            r"true mass must have the mean's shape without its grid axis, \(3,\)",
        ),
        (
            first_crossing,
            (torch.zeros(2, 4), torch.linspace(0, 1, 5)),
            "samples have 4 points on their last axis but the grid has 5",
        ),
    ],
)
def test_bad_metric_input_is_named(metric, arguments, message):
    with pytest.raises(ValueError, match=message):
        metric(*arguments)


def test_a_nan_among_the_values_summarized_is_named():
    # Before: Summary(mean=nan, standard_error=nan) in a report, with no word of which metric.
    with pytest.raises(ValueError, match=r"rel_l2: 1 of the 2 per-function values are NaN"):
        summarize(torch.tensor([1.0, math.nan]), "rel_l2")
    assert summarize(torch.tensor([-math.inf, 0.0]), "ll").mean == -math.inf  # a point mass
