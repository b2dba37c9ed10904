"""Beliefs check what users hand them; lawful's own results skip the checks (``trusted``)."""

import math

import numpy as np
import pytest
import torch

from lawful.beliefs import DenseCovariance, DiagonalCovariance, GaussianBelief, LowRankCovariance


def _psd(n=6, rank=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    factor = torch.randn(n, rank, generator=generator, dtype=torch.float64)
    return factor @ factor.T  # (n, n), singular: rank < n


def test_rounding_level_asymmetry_and_negative_eigenvalues_are_accepted():
    # A singular PSD matrix carries -1e-16 eigenvalues and 1e-16 asymmetry from rounding; a
    # GP's covariance does too. They are covariances.
    matrix = _psd()
    matrix = matrix + 1e-15 * torch.triu(torch.ones_like(matrix), 1)
    assert float(torch.linalg.eigvalsh((matrix + matrix.T) / 2).min()) < 1e-12
    belief = GaussianBelief.dense(torch.zeros(6, dtype=torch.float64), matrix)
    torch.testing.assert_close(belief.variance(), torch.diagonal(matrix))


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        # Before: accepted, and the posterior variance clamped to zero everywhere.
        (torch.tensor([[1.0, 5.0], [-5.0, 1.0]]), "not symmetric"),
        (torch.tensor([[1.0, 2.0], [2.0, 1.0]]), "not positive semi-definite.*-1"),
        (torch.tensor([[1.0, 0.0], [0.0, float("nan")]]), "NaN"),
        (torch.tensor([[-1e-40, 0.0], [0.0, 1.0]]), "non-negative"),
    ],
)
def test_a_dense_covariance_that_is_not_one_is_refused(matrix, message):
    with pytest.raises(ValueError, match=message):
        GaussianBelief.dense(torch.zeros(2), matrix)


def test_indefiniteness_is_found_in_any_batch_element():
    matrices = torch.stack([_psd(), _psd(seed=1) - 1e-3 * torch.eye(6, dtype=torch.float64)])
    with pytest.raises(ValueError, match=r"batch index \(1,\)"):
        DenseCovariance(matrices)


@pytest.mark.parametrize(
    ("factor", "core", "message"),
    [
        (torch.full((3, 1), float("nan")), torch.ones(1, 1), "low-rank factor contains NaN"),
        (torch.ones(3, 1), -torch.ones(1, 1), "low-rank core is not positive semi-definite"),
        (torch.ones(3, 2), torch.tensor([[1.0, 2.0], [0.0, 1.0]]), "core is not symmetric"),
        (torch.ones(3, 1), torch.ones(1, 1, dtype=torch.float64), "needs one dtype"),
        (torch.ones(2, 3, 1), torch.ones(3, 1, 1), "do not broadcast"),
    ],
)
def test_a_low_rank_covariance_that_is_not_one_is_refused(factor, core, message):
    # Before: a NaN factor or a negative core was accepted (the variance clamped to zero).
    with pytest.raises((ValueError, TypeError), match=message):
        LowRankCovariance(torch.ones(3), factor, core)


def test_subnormal_variances_are_refused():
    # Before: float32 variances of 1e-40 gave an infinite posterior mean.
    with pytest.raises(ValueError, match=r"subnormal.*1e-40"):
        GaussianBelief.diagonal(torch.ones(5), torch.full((5,), 1e-40))
    # Zero is a variance (a value known exactly), and so is the smallest normal number.
    tiny = torch.finfo(torch.float32).tiny
    GaussianBelief.diagonal(torch.ones(2), torch.tensor([0.0, tiny]))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: GaussianBelief.diagonal(torch.zeros(3), torch.ones(3, dtype=torch.float64)),
            TypeError,
            "mean is torch.float32 but the covariance is torch.float64",
        ),
        (
            lambda: GaussianBelief.diagonal(np.zeros(3), np.ones(3)),
            TypeError,
            r"mean must be a torch\.Tensor, got numpy\.ndarray",
        ),
        (
            lambda: GaussianBelief.diagonal(torch.zeros(3, dtype=torch.long), torch.ones(3)),
            TypeError,
            "mean must be a floating-point tensor",
        ),
        (
            lambda: GaussianBelief.diagonal(torch.zeros(2, 3), torch.ones(2, 3)).sample(-1),
            ValueError,
            "num_samples must be non-negative, got -1",
        ),
        (
            lambda: GaussianBelief(
                torch.zeros(3, 4),
                LowRankCovariance(torch.ones(2, 4), torch.ones(4, 1), torch.eye(1)),
            ),
            ValueError,
            r"mean batch shape \(3,\), covariance batch shape \(2,\)",
        ),
    ],
)
def test_bad_belief_input_is_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_zero_samples_is_an_empty_draw():
    belief = GaussianBelief.diagonal(torch.zeros(2, 3), torch.ones(2, 3))
    assert belief.sample(0).shape == (0, 2, 3)


@pytest.mark.parametrize("covariance_batch", [(), (1,), (3, 1)])
def test_a_mean_with_batch_axes_its_covariance_shares_gets_independent_draws(covariance_batch):
    # Three functions (or 3 x 4) of one variance: each must be drawn on its own, not share the
    # noise of its neighbours (the noise used to have the covariance's batch and then broadcast).
    batch = (3,) if len(covariance_batch) < 2 else (3, 4)
    mean = torch.arange(float(math.prod(batch))).reshape(*batch, 1).expand(*batch, 5)
    variance = torch.full((*covariance_batch, 5), 0.25, dtype=torch.float64)
    belief = GaussianBelief(mean.double(), DiagonalCovariance(variance))
    draws = belief.sample(4000, torch.Generator().manual_seed(0))  # (samples, *batch, 5)
    assert draws.shape == (4000, *batch, 5)
    noise = (draws - mean).flatten(1, -2)  # (samples, functions, 5)
    torch.testing.assert_close(noise.mean(0), torch.zeros_like(noise[0]), rtol=0, atol=0.03)
    torch.testing.assert_close(noise.var(0), torch.full_like(noise[0], 0.25), rtol=0.1, atol=0)
    # Across functions the draws are uncorrelated (a shared draw would correlate them fully).
    correlation = torch.corrcoef(noise[..., 0].T)  # (functions, functions)
    off_diagonal = correlation - torch.diag(torch.diagonal(correlation))
    assert float(off_diagonal.abs().max()) < 0.1
