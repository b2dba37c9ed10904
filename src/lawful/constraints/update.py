"""The ProbConserv update: condition a Gaussian belief on a linear constraint ``G u = b``.

For a prior ``u ~ N(mu, Sigma)`` and the observation ``b ~ N(G u, S)``:

    r       = b - G mu                       (k,)     the mass defect
    Q       = G Sigma G^T + S                (k, k)
    mu'     = mu + (G Sigma)^T Q^-1 r
    Sigma'  = Sigma - (G Sigma)^T Q^-1 (G Sigma)

``S = 0`` is the limit of an exact constraint: ``G mu' = b`` to rounding. Only ``G Sigma``
(``(k, n)``) and the ``k x k`` matrix ``Q`` are formed, so for a diagonal prior the cost is
O(n k) and the posterior covariance stays diagonal-plus-rank-k (never ``n x n``). ``Q`` is
factorised in float64 whatever the belief's dtype: it is the one ill-conditioned step.

:func:`project_identity` is HardC, the paper's ablation: the same projection with ``Sigma``
replaced by the identity, the model's covariance left as it was.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from lawful.beliefs import DiagonalCovariance, GaussianBelief
from lawful.constraints.conservation import LinearConstraint

__all__ = [
    "ConstraintError",
    "condition",
    "constrained_log_likelihood",
    "project_identity",
    "sample_posterior",
]


class ConstraintError(ValueError):
    """The constraint cannot be met by the given belief."""


def condition(belief: GaussianBelief, constraint: LinearConstraint) -> GaussianBelief:
    """The posterior of ``belief`` given ``constraint`` (ProbConserv)."""
    weights, rows_times_cov, gram = _gain_terms(belief, constraint)
    residual = constraint.residual(belief.mean)  # (..., k)
    gram_inverse, coefficients = _solve_gram(
        gram,
        residual,
        constraint.noise_variance,
        _gram_scale(belief, weights, gram),
        lambda: _value_scale(constraint, belief.mean),
    )
    mean = _add_rows(belief.mean, rows_times_cov, coefficients)
    return GaussianBelief.trusted(mean, belief.covariance.downdate(rows_times_cov, gram_inverse))


def project_identity(belief: GaussianBelief, constraint: LinearConstraint) -> GaussianBelief:
    """HardC: the orthogonal projection of the mean onto ``G u = b``; covariance unchanged.

    Equivalent to :func:`condition` with an identity prior covariance and no constraint noise.
    """
    _check_compatible(belief, constraint)
    weights = constraint.weights.to(belief.mean.dtype)  # (..., k, n)
    gram = torch.einsum("...kn,...jn->...kj", weights, weights)  # (..., k, k)
    residual = constraint.residual(belief.mean)  # (..., k)
    scale = torch.diagonal(gram, dim1=-2, dim2=-1)  # (..., k): sum_n G_kn^2
    _, coefficients = _solve_gram(
        gram, residual, 0.0, scale, lambda: _value_scale(constraint, belief.mean)
    )
    return GaussianBelief.trusted(_add_rows(belief.mean, weights, coefficients), belief.covariance)


def sample_posterior(
    prior: GaussianBelief,
    constraint: LinearConstraint,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draws ``(num_samples, ..., n)`` from ``condition(prior, constraint)`` by Matheron's rule.

    A prior draw ``u`` is moved by ``(G Sigma)^T Q^-1 (b - G u - e)`` with ``e ~ N(0, S)``: the
    result has exactly the posterior's distribution, and for a diagonal prior it costs O(n k)
    per draw instead of a square root of the (singular) posterior covariance.
    """
    weights, rows_times_cov, gram = _gain_terms(prior, constraint)
    draws = prior.sample(num_samples, generator)  # (samples, ..., n)
    residual = constraint.residual(draws)  # (samples, ..., k)
    noise_std = torch.as_tensor(constraint.noise_variance, dtype=draws.dtype).sqrt()
    residual = residual - noise_std * torch.randn(
        residual.shape, generator=generator, dtype=draws.dtype
    ).to(draws.device)
    _, coefficients = _solve_gram(
        gram,
        residual,
        constraint.noise_variance,
        _gram_scale(prior, weights, gram),
        lambda: _value_scale(constraint, draws),
    )
    return _add_rows(draws, rows_times_cov, coefficients)


def constrained_log_likelihood(
    target: Tensor,
    mean: Tensor,
    variance: Tensor,
    weights: Tensor,
    noise_variance: Tensor | float,
) -> Tensor:
    """Log-density of ``target`` under a diagonal Gaussian conditioned on ``G u = G target``.

    The training loss of the constrained model (ProbConserv's "physnp"), per batch element:

        log p(y | b) = log N(y; mu, D) + log N(b; G y, S) - log N(b; G mu, G D G^T + S)

    with ``b = G y`` (the truth's own mass), so the middle term is ``log N(0; 0, S)``.
    ``target``, ``mean``, ``variance``: ``(..., n)``; ``weights``: ``(k, n)`` or ``(..., k, n)``;
    ``noise_variance`` > 0, fixed or learned (e.g. ``exp(-log_precision)``). Returns ``(...)``.
    """
    noise_variance = torch.as_tensor(noise_variance, dtype=mean.dtype, device=mean.device)
    if bool((noise_variance <= 0).any()):
        raise ValueError(
            "training through the constraint needs a positive constraint noise variance"
        )
    log_prior = -0.5 * (
        torch.log(2 * math.pi * variance) + (target - mean).square() / variance
    ).sum(-1)  # (...)
    num_rows = weights.shape[-2]
    observed = torch.einsum("...kn,...n->...k", weights, target)  # (..., k)
    predicted = torch.einsum("...kn,...n->...k", weights, mean)  # (..., k)
    gram = torch.einsum("...kn,...n,...jn->...kj", weights, variance, weights)  # (..., k, k)
    gram = gram + noise_variance * torch.eye(num_rows, dtype=mean.dtype, device=mean.device)
    noise_cov = noise_variance * torch.eye(num_rows, dtype=mean.dtype, device=mean.device)
    log_noise_at_zero = _mvn_log_density(torch.zeros_like(observed), noise_cov)
    log_marginal = _mvn_log_density(observed - predicted, gram)
    return log_prior + log_noise_at_zero - log_marginal


def _mvn_log_density(deviation: Tensor, covariance: Tensor) -> Tensor:
    """``log N(deviation; 0, covariance)`` for ``(..., k)`` and ``(..., k, k)``, in float64."""
    cholesky = torch.linalg.cholesky(covariance.double())  # (..., k, k)
    whitened = torch.linalg.solve_triangular(
        cholesky, deviation.double().unsqueeze(-1), upper=False
    ).squeeze(-1)  # (..., k)
    log_det = 2 * torch.log(torch.diagonal(cholesky, dim1=-2, dim2=-1)).sum(-1)
    k = deviation.shape[-1]
    density = -0.5 * (k * math.log(2 * math.pi) + log_det + whitened.square().sum(-1))
    return density.to(deviation.dtype)


def _gain_terms(
    belief: GaussianBelief, constraint: LinearConstraint
) -> tuple[Tensor, Tensor, Tensor]:
    """``G`` in the belief's dtype ``(..., k, n)``, ``G Sigma`` ``(..., k, n)`` and
    ``G Sigma G^T`` ``(..., k, k)``: what conditioning and posterior sampling both start from."""
    _check_compatible(belief, constraint)
    weights = constraint.weights.to(belief.mean.dtype)
    rows_times_cov = belief.covariance.left_multiply(weights)
    gram = torch.einsum("...kn,...jn->...kj", rows_times_cov, weights)
    return weights, rows_times_cov, gram


def _check_compatible(belief: GaussianBelief, constraint: LinearConstraint) -> None:
    if constraint.weights.shape[-1] != belief.mean.shape[-1]:
        raise ValueError(
            f"constraint weights cover {constraint.weights.shape[-1]} grid points but the "
            f"belief has {belief.mean.shape[-1]}"
        )


def _gram_scale(belief: GaussianBelief, weights: Tensor, gram: Tensor) -> Tensor:
    """``sum_n G_kn^2 var_n`` ``(..., k)``: the scale of ``Q``'s diagonal, for tolerances.

    For a diagonal covariance that is ``Q``'s diagonal itself (no cancellation can occur).
    """
    if isinstance(belief.covariance, DiagonalCovariance):
        return torch.diagonal(gram, dim1=-2, dim2=-1)
    return torch.einsum("...kn,...n->...k", weights.square(), belief.covariance.variance())


def _add_rows(base: Tensor, rows: Tensor, coefficients: Tensor) -> Tensor:
    """``base + coefficients @ rows`` for ``rows`` ``(..., k, n)``, ``coefficients`` ``(..., k)``.

    One fused pass for a single row: on large grids the update is memory-bound.
    """
    if rows.shape[-2] == 1:
        return torch.addcmul(base, rows[..., 0, :], coefficients)
    return base + torch.einsum("...kn,...k->...n", rows, coefficients)


def _value_scale(constraint: LinearConstraint, mean: Tensor) -> Tensor:
    """``|b| + sum_n |G_kn mu_n|`` ``(..., k)``: the size of the terms in the mass defect."""
    return constraint.values.abs() + torch.einsum(
        "...kn,...n->...k", constraint.weights.abs().to(mean.dtype), mean.abs()
    )


def _solve_gram(
    gram: Tensor,
    residual: Tensor,
    noise_variance: Tensor | float,
    gram_scale: Tensor,
    value_scale: Callable[[], Tensor],
) -> tuple[Tensor, Tensor]:
    """``(Q^-1, Q^-1 r)`` for ``Q = gram + S``, factorised in float64.

    Where a batch element's ``Q`` vanishes (zero prior variance under the constraint's weights
    and zero noise; e.g. a posterior conditioned a second time), the update there is the
    identity if the constraint already holds, and impossible otherwise: that raises
    :class:`ConstraintError` rather than dividing by zero.
    """
    dtype = residual.dtype
    num_rows = gram.shape[-1]
    eye = torch.eye(num_rows, dtype=torch.float64, device=gram.device)
    noise = torch.as_tensor(noise_variance, dtype=torch.float64, device=gram.device)
    if noise.ndim > 0:
        noise = torch.diag_embed(noise.expand(*noise.shape[:-1], num_rows))  # (..., k, k)
    else:
        noise = noise * eye
    q = gram.double() + noise  # (..., k, k)

    # A Q that is pinned (posterior of the same constraint) is rounding noise of relative size
    # ~1e3 eps; a genuine prior has Q / scale of order one. sqrt(eps) separates the two.
    tolerance = torch.finfo(dtype).eps ** 0.5
    q_diagonal = torch.diagonal(q, dim1=-2, dim2=-1)  # (..., k)
    degenerate = (q_diagonal <= tolerance * gram_scale.double()).all(-1)  # (...)
    if bool(degenerate.any()):
        defect = residual.double().abs().amax(-1)  # (...)
        allowed = tolerance * value_scale().double().amax(-1) + torch.finfo(dtype).tiny
        degenerate_here, defect, allowed = torch.broadcast_tensors(degenerate, defect, allowed)
        unmet = degenerate_here & (defect > allowed)
        if bool(unmet.any()):
            raise ConstraintError(
                "constraint cannot be met: the belief has zero variance wherever the constraint "
                "has weight and the constraint noise is zero, but the mass defect is "
                f"{float(defect[unmet].max()):.3e}"
            )
        # Already satisfied with certainty: solve with Q = I and zero the result there.
        q = torch.where(degenerate[..., None, None], eye, q)

    cholesky, info = torch.linalg.cholesky_ex(q)
    if bool((info > 0).any()):
        raise ConstraintError(
            "constraint rows are linearly dependent under the belief (G Sigma G^T + S is "
            "singular); remove the redundant rows or add constraint noise"
        )
    inverse = torch.cholesky_inverse(cholesky)  # (..., k, k)
    inverse = torch.where(degenerate[..., None, None], torch.zeros_like(inverse), inverse)
    coefficients = (inverse @ residual.double().unsqueeze(-1)).squeeze(-1)  # (..., k)
    return inverse.to(dtype), coefficients.to(dtype)
