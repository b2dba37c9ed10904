"""Exact Gaussian processes, one per function, fitted together as a GPyTorch batch.

Each function's context points get their own GP: constant mean, scaled RBF kernel with one
lengthscale per input dimension (ARD) on ``(t, x)``, Gaussian likelihood. The hyperparameters of
all B functions live in tensors with a leading batch dimension and are fitted by one Adam run on
the summed exact marginal log likelihoods; since Adam updates every entry from its own gradient,
and each function's likelihood depends only on its own entries, this equals B separate fits.

All GP arithmetic is in float64, with dense Cholesky solves (GPyTorch's iterative CG/Lanczos
approximations are switched off): the posterior covariance feeds a conservation update that
needs it exact and positive semi-definite.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from lawful.beliefs import DenseCovariance, GaussianBelief

with warnings.catch_warnings():
    # linear_operator, under gpytorch, decorates functions with torch.jit.script at import, which
    # recent torch deprecates; the warning concerns their code and would fail warnings-as-errors.
    warnings.filterwarnings(
        "ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning
    )
    import gpytorch

__all__ = ["FittedGP", "fit_gp", "gp_belief", "gp_predict"]

# Exact linear algebra throughout: Cholesky for every size, never CG or Lanczos.
_MAX_CHOLESKY_SIZE = 100_000


@contextmanager
def _exact_linear_algebra() -> Iterator[None]:
    """Within this block GPyTorch uses dense Cholesky factorisations for every solve."""
    with (
        gpytorch.settings.fast_computations(
            covar_root_decomposition=False, log_prob=False, solves=False
        ),
        gpytorch.settings.max_cholesky_size(_MAX_CHOLESKY_SIZE),
    ):
        yield


class _BatchExactGP(gpytorch.models.ExactGP):
    """B independent exact GPs with constant mean and a scaled ARD RBF kernel."""

    def __init__(
        self, train_x: Tensor, train_y: Tensor, likelihood: gpytorch.likelihoods.Likelihood
    ) -> None:
        super().__init__(train_x, train_y, likelihood)
        batch_shape = train_x.shape[:1]
        self.mean_module = gpytorch.means.ConstantMean(batch_shape=batch_shape)
        self.covar_module = gpytorch.kernels.ScaleKernel(
            gpytorch.kernels.RBFKernel(ard_num_dims=train_x.shape[-1], batch_shape=batch_shape),
            batch_shape=batch_shape,
        )

    def forward(self, x: Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


@dataclass
class FittedGP:
    """A batch of B exact GPs with fitted hyperparameters, in evaluation mode.

    ``final_loss`` is minus the mean (over functions) of the exact marginal log likelihood per
    context point at the last iteration (NaN after zero iterations).
    """

    model: _BatchExactGP
    likelihood: gpytorch.likelihoods.GaussianLikelihood
    final_loss: float

    @property
    def batch_size(self) -> int:
        return self.model.train_inputs[0].shape[0]


def fit_gp(
    context_x: Tensor,
    context_y: Tensor,
    iterations: int = 100,
    learning_rate: float = 0.1,
) -> FittedGP:
    """Fit one exact GP per function to its context points.

    ``context_x``: (batch, context, input_dim), e.g. ``(t, x)`` pairs; ``context_y``:
    (batch, context). Hyperparameters (constant mean, output scale, ARD lengthscales, noise)
    start from GPyTorch's fixed defaults, so the fit is deterministic and needs no seed, and are
    fitted by ``iterations`` steps of Adam on the exact marginal log likelihood.
    """
    if context_x.ndim != 3:
        raise ValueError(
            f"context_x must have shape (batch, context, input_dim), got {tuple(context_x.shape)}"
        )
    if context_y.shape != context_x.shape[:2]:
        raise ValueError(
            f"context_y must have shape (batch, context) = {tuple(context_x.shape[:2])}, "
            f"got {tuple(context_y.shape)}"
        )
    if iterations < 0:
        raise ValueError(f"iterations must be non-negative, got {iterations}")
    train_x = context_x.detach().to(torch.float64)
    train_y = context_y.detach().to(torch.float64)
    likelihood = gpytorch.likelihoods.GaussianLikelihood(batch_shape=train_x.shape[:1])
    model = _BatchExactGP(train_x, train_y, likelihood).to(torch.float64)
    model.train()
    likelihood.train()
    marginal_log_likelihood = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss = torch.tensor(float("nan"))
    with _exact_linear_algebra():
        for _ in range(iterations):
            optimizer.zero_grad()
            # (batch,) per-point log likelihoods; the sum decouples into B independent fits.
            per_function = marginal_log_likelihood(model(train_x), train_y)
            loss = -per_function.sum()
            loss.backward()
            optimizer.step()
    model.eval()
    likelihood.eval()
    return FittedGP(model, likelihood, final_loss=loss.item() / train_x.shape[0])


def gp_predict(fitted: FittedGP, target_x: Tensor, jitter: float = 1e-10) -> tuple[Tensor, Tensor]:
    """Posterior over the latent function f (without observation noise) at the targets.

    ``target_x``: (batch, targets, input_dim). Returns the mean (batch, targets) and the dense
    covariance (batch, targets, targets) in float64, symmetrised and with ``jitter`` added to
    its diagonal, so that round-off cannot make it indefinite for the update downstream.
    """
    if target_x.ndim != 3 or target_x.shape[0] != fitted.batch_size:
        raise ValueError(
            f"target_x must have shape ({fitted.batch_size}, targets, input_dim), "
            f"got {tuple(target_x.shape)}"
        )
    test_x = target_x.detach().to(torch.float64)
    with (
        torch.no_grad(),
        _exact_linear_algebra(),
        gpytorch.settings.fast_pred_var(False),
        warnings.catch_warnings(),
    ):
        # Predicting at the context points themselves is legitimate (the smoothed fit there).
        warnings.filterwarnings("ignore", category=gpytorch.utils.warnings.GPInputWarning)
        posterior = fitted.model(test_x)
        mean = posterior.mean  # (batch, targets)
        covariance = posterior.covariance_matrix  # (batch, targets, targets)
    covariance = 0.5 * (covariance + covariance.mT)
    covariance = covariance + jitter * torch.eye(
        covariance.shape[-1], dtype=covariance.dtype, device=covariance.device
    )
    return mean, covariance


def gp_belief(fitted: FittedGP, target_x: Tensor, jitter: float = 1e-10) -> GaussianBelief:
    """:func:`gp_predict` as a dense :class:`~lawful.beliefs.GaussianBelief` over
    ``(batch, targets)``, ready for :func:`lawful.condition`."""
    mean, covariance = gp_predict(fitted, target_x, jitter)
    # Symmetrised with jitter from GPyTorch's own Cholesky posterior: lawful's output, so the
    # O(n^3) PSD check of a user's dense covariance would only repeat that factorisation.
    return GaussianBelief.trusted(mean, DenseCovariance.trusted(covariance))
