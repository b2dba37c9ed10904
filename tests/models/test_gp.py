"""Exact GP, batched over functions: interpolation, a valid covariance, batched equals looped."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lawful.models import fit_gp, gp_predict


def smooth_function(inputs: Tensor, frequency: Tensor) -> Tensor:
    """sin(frequency * x + t) on (t, x) pairs: inputs (batch, points, 2), frequency (batch, 1)."""
    return torch.sin(frequency * inputs[..., 1] + inputs[..., 0])


def grid(points_per_side: int, batch: int) -> Tensor:
    """A tensor grid of (t, x) on [0, 1]^2, repeated over the batch: (batch, points^2, 2)."""
    axis = torch.linspace(0, 1, points_per_side, dtype=torch.float64)
    t, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([t.flatten(), x.flatten()], dim=-1).expand(batch, -1, -1)


FREQUENCY = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)  # one per function


@pytest.fixture(scope="module")
def fitted():
    context_x = grid(7, batch=3)  # (3, 49, 2)
    return fit_gp(context_x, smooth_function(context_x, FREQUENCY), iterations=100)


def test_posterior_mean_interpolates_a_smooth_function(fitted) -> None:
    generator = torch.Generator().manual_seed(0)
    target_x = 0.1 + 0.8 * torch.rand(3, 40, 2, generator=generator, dtype=torch.float64)
    mean, _ = gp_predict(fitted, target_x)
    assert mean.dtype == torch.float64
    error = (mean - smooth_function(target_x, FREQUENCY)).abs()
    assert error.max() < 1e-2, error.max()


def test_posterior_covariance_is_symmetric_and_positive_semidefinite(fitted) -> None:
    target_x = grid(9, batch=3)  # (3, 81, 2): more targets than context points, so rank-deficient
    _, covariance = gp_predict(fitted, target_x)
    assert covariance.shape == (3, 81, 81)
    torch.testing.assert_close(covariance, covariance.mT, rtol=0, atol=0)
    assert torch.linalg.eigvalsh(covariance).min() >= -1e-8


def test_variance_is_small_at_context_points_and_grows_away_from_them(fitted) -> None:
    at_context = grid(7, batch=3)[:, [16, 24]]  # two interior grid points
    # Leaving the data along x (the grid ends at x = 1): variance rises to the prior's.
    x_outside = torch.tensor([1.0, 1.2, 1.5, 2.0, 20.0], dtype=torch.float64)
    outside = torch.stack([torch.full_like(x_outside, 0.5), x_outside], -1).expand(3, -1, -1)
    variance_at = gp_predict(fitted, at_context)[1].diagonal(dim1=-2, dim2=-1)  # (3, 2)
    variance_outside = gp_predict(fitted, outside)[1].diagonal(dim1=-2, dim2=-1)  # (3, 5)
    noise = fitted.likelihood.noise.detach()  # (3, 1)
    # At a context point the latent variance is below the observation noise.
    assert (variance_at < noise).all()
    assert (variance_outside.diff(dim=-1) > 0).all()
    outputscale = fitted.model.covar_module.outputscale.detach()  # (3,)
    torch.testing.assert_close(variance_outside[:, -1], outputscale, rtol=1e-3, atol=0)
    assert (variance_at < 1e-3 * outputscale[:, None]).all()


def test_batched_fit_equals_fitting_each_function_alone() -> None:
    context_x = grid(5, batch=2)
    context_y = smooth_function(context_x, FREQUENCY[:2])
    target_x = grid(4, batch=2)
    mean, covariance = gp_predict(fit_gp(context_x, context_y, iterations=30), target_x)
    for function in range(2):
        one = slice(function, function + 1)
        alone = fit_gp(context_x[one], context_y[one], iterations=30)
        alone_mean, alone_covariance = gp_predict(alone, target_x[one])
        torch.testing.assert_close(alone_mean, mean[one], rtol=1e-6, atol=1e-8)
        torch.testing.assert_close(alone_covariance, covariance[one], rtol=1e-5, atol=1e-8)


def test_each_function_gets_its_own_hyperparameters(fitted) -> None:
    # Faster oscillation in x, shorter lengthscale in x; t enters every function alike.
    lengthscale = fitted.model.covar_module.base_kernel.lengthscale.detach()  # (3, 1, 2)
    assert (lengthscale[:, 0, 1].diff() < 0).all(), lengthscale


def test_fitting_raises_the_marginal_likelihood() -> None:
    context_x = grid(5, batch=2)
    context_y = smooth_function(context_x, FREQUENCY[:2])
    short = fit_gp(context_x, context_y, iterations=1)
    long = fit_gp(context_x, context_y, iterations=30)
    assert long.final_loss < short.final_loss - 0.5, (short.final_loss, long.final_loss)


def test_bad_shapes_are_named(fitted) -> None:
    with pytest.raises(ValueError, match="context_y must have shape"):
        fit_gp(torch.zeros(2, 5, 2), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"target_x must have shape \(3, targets"):
        gp_predict(fitted, torch.zeros(2, 5, 2))


def test_prediction_is_the_closed_form_gp_posterior(fitted) -> None:
    """mean = c + K*x (Kxx + s2 I)^-1 (y - c), cov = K** - K*x (Kxx + s2 I)^-1 Kx* (+ jitter),
    with the fitted constant, outputscale, ARD lengthscales and noise, computed by hand."""
    model = fitted.model
    constant = model.mean_module.constant.detach().reshape(3, 1, 1)
    outputscale = model.covar_module.outputscale.detach().reshape(3, 1, 1)
    lengthscale = model.covar_module.base_kernel.lengthscale.detach()  # (3, 1, 2)
    noise = fitted.likelihood.noise.detach().reshape(3, 1, 1)
    context_x, context_y = model.train_inputs[0], model.train_targets  # (3, 49, 2), (3, 49)

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        scaled = (a / lengthscale)[:, :, None, :] - (b / lengthscale)[:, None, :, :]
        return outputscale * torch.exp(-0.5 * scaled.square().sum(-1))

    target_x = torch.rand(3, 15, 2, generator=torch.Generator().manual_seed(1)).double()
    gram = kernel(context_x, context_x) + noise * torch.eye(49, dtype=torch.float64)
    cross = kernel(target_x, context_x)  # (3, 15, 49)
    weights = torch.linalg.solve(gram, (context_y[..., None] - constant))  # (3, 49, 1)
    expected_mean = (constant + cross @ weights)[..., 0]
    expected_cov = kernel(target_x, target_x) - cross @ torch.linalg.solve(gram, cross.mT)
    expected_cov = expected_cov + 1e-10 * torch.eye(15, dtype=torch.float64)
    mean, covariance = gp_predict(fitted, target_x)
    torch.testing.assert_close(mean, expected_mean, rtol=0, atol=1e-10)
    torch.testing.assert_close(covariance, expected_cov, rtol=0, atol=1e-10)
