"""The ProbConserv update: condition a Gaussian belief on a linear constraint ``G u = b``.

For a prior ``u ~ N(mu, Sigma)`` and the observation ``b ~ N(G u, S)``:

    r       = b - G mu                       (k,)     the mass defect
    Q       = G Sigma G^T + S                (k, k)
    mu'     = mu + (G Sigma)^T Q^-1 r
    Sigma'  = Sigma - (G Sigma)^T Q^-1 (G Sigma)

``S = 0`` is the limit of an exact constraint: ``G mu' = b`` to rounding. Only ``G Sigma``
(``(k, n)``) and the ``k x k`` matrix ``Q`` are formed, so for a diagonal prior the cost is
O(n k) and the posterior covariance stays diagonal-plus-rank-k (never ``n x n``). ``Q`` is
factorised in float64 whatever the belief's dtype: it is the one ill-conditioned step. The
update works in the belief's dtype: a constraint of another dtype is converted to it.

**Rank.** Whether rows are independent is decided by a stated tolerance, not by whether a
Cholesky factorisation happens to fail on a rounding pivot. Row ``j``'s pivot is its variance
given the rows before it, in units of the rounding scale of ``Q_jj``
(:meth:`~lawful.beliefs.Covariance.gram_scale`, plus its noise); at or below
:meth:`~lawful.beliefs.Covariance.gram_tolerance` (``RANK_SAFETY * k * eps`` of the belief's
dtype, :func:`~lawful.constraints._checks.rank_tolerance`; ``sqrt(eps)`` for a dense
covariance, which keeps no trace of the rounding it carries) the row adds nothing that the rows
before it, or the belief itself, have not fixed. Such
a row is skipped if its value agrees with theirs (its mass defect left after the others are met
is within :func:`~lawful.constraints._checks.rounding_tolerance`, ``sqrt(eps)``, of the terms it
sums): that is exact, since conditioning on an observation already certain changes nothing,
and it keeps the update idempotent when a posterior is conditioned again on the same or an
overlapping constraint. If its value disagrees, :class:`ConstraintError` names the row and the
rows it depends on (or says the belief has no variance along it).

:func:`project_identity` is HardC, the paper's ablation: the same projection with ``Sigma``
replaced by the identity, the model's covariance left as it was.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from lawful.beliefs import (
    DiagonalCovariance,
    GaussianBelief,
    RankOneDowndate,
    _builds_graph,
    independent_draws,
)
from lawful.constraints._checks import (
    as_floating,
    check_broadcast,
    check_broadcasts_to,
    check_finite,
    check_floating,
    check_same_dtype,
    check_same_shape,
    check_variance,
    first_index,
    rank_tolerance,
    rounding_tolerance,
)
from lawful.constraints.conservation import LinearConstraint
from lawful.native import native_library, rank_one_apply, rank_one_sums

__all__ = [
    "ConstraintError",
    "condition",
    "constrained_log_likelihood",
    "fused_update_applies",
    "project_identity",
    "sample_posterior",
]


class ConstraintError(ValueError):
    """The constraint cannot be met by the given belief."""


def condition(belief: GaussianBelief, constraint: LinearConstraint) -> GaussianBelief:
    """The posterior of ``belief`` given ``constraint`` (ProbConserv)."""
    check_compatible(belief, constraint)
    if fused_update_applies(belief, constraint):
        return _condition_fused(belief, constraint)
    weights, rows_times_cov, gram = _gain_terms(belief, constraint)
    residual = constraint.residual(belief.mean)  # (..., k)
    gram_inverse, coefficients = _solve_gram(
        gram,
        residual,
        constraint.noise_variance,
        belief.covariance.gram_scale(weights, gram),
        belief.covariance.gram_tolerance(constraint.num_rows),
        lambda: _value_scale(constraint, belief.mean),
    )
    mean = _add_rows(belief.mean, rows_times_cov, coefficients)
    return GaussianBelief.trusted(mean, belief.covariance.downdate(rows_times_cov, gram_inverse))


#: Rows at least this long are conditioned by the fused kernel (lawful.native) where it is
#: built and applies (:func:`fused_update_applies`). Below, the update's cost is its fixed
#: overhead of small operations, the same either way (one float32 row on 2 cores: equal at
#: 2**16 points, the kernel 1.25 times faster at 2**20 and 1.9 at 2**22). Shorter rows, every
#: experiment's among them, keep the eager update: the two differ by the rounding of the two
#: sums (the kernel accumulates them in float64) and of the mean's multiply-add.
FUSED_MIN_POINTS = 2**16


def fused_update_applies(belief: GaussianBelief, constraint: LinearConstraint) -> bool:
    """Whether :func:`condition` takes the fused kernel (:func:`_condition_fused`) for a pair
    :func:`check_compatible` has passed: one row on a diagonal CPU belief, long rows, contiguous
    arrays of one float dtype, a posterior of the mean's batch shape, no autograd (the kernel
    has no backward) and a built kernel."""
    covariance, mean = belief.covariance, belief.mean
    if type(covariance) is not DiagonalCovariance or constraint.num_rows != 1:
        return False
    points = mean.shape[-1]
    if points < FUSED_MIN_POINTS or mean.device.type != "cpu":
        return False
    if mean.dtype not in (torch.float32, torch.float64) or mean.shape != covariance.diagonal.shape:
        return False
    if not (mean.is_contiguous() and covariance.diagonal.is_contiguous()):
        return False
    weights_batch = constraint.weights.shape[:-2]
    if weights_batch and weights_batch != mean.shape[:-1]:
        return False
    if torch.broadcast_shapes(belief.batch_shape, constraint.batch_shape) != belief.batch_shape:
        return False
    noise = constraint.noise_variance
    noise = (noise,) if isinstance(noise, Tensor) else ()
    if _builds_graph(mean, covariance.diagonal, constraint.weights, constraint.values, *noise):
        return False
    return native_library() is not None


def _condition_fused(belief: GaussianBelief, constraint: LinearConstraint) -> GaussianBelief:
    """:func:`condition` by the fused kernel: one pass for the two sums, one for the mean and
    the variance. The rank decision and the solve are the eager update's (:func:`_solve_gram`)
    on the kernel's sums."""
    mean, variance = belief.mean, belief.covariance.diagonal  # (..., n) each
    batch, points, dtype = mean.shape[:-1], mean.shape[-1], mean.dtype
    row = constraint.weights.to(dtype).contiguous()  # (1, n) or (..., 1, n)
    flat_mean, flat_variance = mean.reshape(-1, points), variance.reshape(-1, points)
    sums = rank_one_sums(flat_mean, flat_variance, row.reshape(-1, points))  # (rows, 2) float64
    row_times_mean = sums[:, 0].to(dtype).reshape(*batch, 1)  # G mu, (..., 1)
    gram = sums[:, 1].to(dtype).reshape(*batch, 1, 1)  # G D G^T, (..., 1, 1)
    residual = constraint.values.to(dtype) - row_times_mean  # (..., 1)
    gram_inverse, coefficients = _solve_gram(
        gram,
        residual,
        constraint.noise_variance,
        torch.diagonal(gram, dim1=-2, dim2=-1),  # a diagonal belief's gram scale
        belief.covariance.gram_tolerance(1),
        lambda: _value_scale(constraint, mean),
    )
    core = -gram_inverse.expand(*batch, 1, 1)  # (..., 1, 1)
    gain = coefficients.expand(*batch, 1).reshape(-1).contiguous()  # (rows,)
    posterior_mean, posterior_variance = rank_one_apply(
        flat_mean, flat_variance, row.reshape(-1, points), gain, core.reshape(-1).contiguous()
    )
    covariance = RankOneDowndate(variance, row, core, posterior_variance.reshape(mean.shape))
    return GaussianBelief.trusted(posterior_mean.reshape(mean.shape), covariance)


def project_identity(belief: GaussianBelief, constraint: LinearConstraint) -> GaussianBelief:
    """HardC: the orthogonal projection of the mean onto ``G u = b``; covariance unchanged.

    Equivalent to :func:`condition` with an identity prior covariance and no constraint noise.
    """
    check_compatible(belief, constraint)
    weights = constraint.weights.to(belief.mean.dtype)  # (..., k, n)
    gram = torch.einsum("...kn,...jn->...kj", weights, weights)  # (..., k, k)
    residual = constraint.residual(belief.mean)  # (..., k)
    scale = torch.diagonal(gram, dim1=-2, dim2=-1)  # (..., k): sum_n G_kn^2
    tolerance = rank_tolerance(residual.dtype, constraint.num_rows)
    _, coefficients = _solve_gram(
        gram, residual, 0.0, scale, tolerance, lambda: _value_scale(constraint, belief.mean)
    )
    return GaussianBelief.trusted(_add_rows(belief.mean, weights, coefficients), belief.covariance)


def sample_posterior(
    prior: GaussianBelief,
    constraint: LinearConstraint,
    num_samples: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draws ``(num_samples, ..., n)`` from ``condition(prior, constraint)`` by Matheron's rule;
    ``...`` is the prior's batch shape broadcast with the constraint's, as for :func:`condition`.

    A prior draw ``u`` is moved by ``(G Sigma)^T Q^-1 (b - G u - e)`` with ``e ~ N(0, S)``: the
    result has exactly the posterior's distribution, and for a diagonal prior it costs O(n k)
    per draw instead of a square root of the (singular) posterior covariance.
    """
    batch = check_compatible(prior, constraint)
    weights, rows_times_cov, gram = _gain_terms(prior, constraint)
    draws = independent_draws(
        lambda count: prior.sample(count, generator), prior.batch_shape, batch, num_samples
    )  # (samples, *batch, n)
    residual = constraint.residual(draws)  # (samples, *batch, k)
    noise_std = torch.as_tensor(constraint.noise_variance, dtype=draws.dtype).sqrt()
    residual = residual - noise_std * torch.randn(
        residual.shape, generator=generator, dtype=draws.dtype
    ).to(draws.device)
    _, coefficients = _solve_gram(
        gram,
        residual,
        constraint.noise_variance,
        prior.covariance.gram_scale(weights, gram),
        prior.covariance.gram_tolerance(constraint.num_rows),
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
    ``target``, ``mean``, ``variance`` (positive): ``(..., n)`` each, of one dtype; ``weights``:
    ``(k, n)`` or ``(..., k, n)``, converted to the mean's dtype; ``noise_variance`` > 0, fixed
    or learned (e.g. ``exp(-log_precision)``), broadcastable to ``(..., k)`` without growing it.
    Returns ``(...)``. Rows that the noise is too small to tell apart (dependent rows, at the
    update's rank tolerance) raise :class:`ConstraintError`.
    """
    for name, tensor in (("target", target), ("mean", mean), ("variance", variance)):
        check_floating(tensor, name)
    check_same_dtype({"target": target, "mean": mean, "variance": variance})
    check_same_shape({"target": target, "mean": mean, "variance": variance})
    check_finite(target, "target")
    check_finite(mean, "mean")
    check_variance(variance, "variance")
    if bool((variance == 0).any()):
        raise ValueError("variance must be positive: a zero variance has no finite log-density")
    weights = as_floating(weights, "constraint weights").to(mean.dtype)
    check_finite(weights, "constraint weights")
    if weights.ndim < 2 or weights.shape[-1] != mean.shape[-1]:
        raise ValueError(
            f"constraint weights must be (..., k, n) with n = {mean.shape[-1]}, got shape "
            f"{tuple(weights.shape)}"
        )
    batch = check_broadcast(
        {"prediction batch": mean.shape[:-1], "weights batch": weights.shape[:-2]}
    )
    num_rows = weights.shape[-2]
    noise_variance = torch.as_tensor(noise_variance, dtype=mean.dtype, device=mean.device)
    check_broadcasts_to(
        noise_variance.shape,
        (*batch, num_rows),
        "constraint noise variance",
        "the constraint values G target",
    )
    check_finite(noise_variance, "constraint noise variance")
    if bool((noise_variance <= 0).any()):
        raise ValueError(
            "training through the constraint needs a positive constraint noise variance"
        )
    log_prior = -0.5 * (
        torch.log(2 * math.pi * variance) + (target - mean).square() / variance
    ).sum(-1)  # (...)
    observed = torch.einsum("...kn,...n->...k", weights, target)  # (..., k)
    predicted = torch.einsum("...kn,...n->...k", weights, mean)  # (..., k)
    noise_cov = torch.diag_embed(_noise_per_row(noise_variance, num_rows))  # (k, k) or (..., k, k)
    gram = torch.einsum("...kn,...n,...jn->...kj", weights, variance, weights)  # (..., k, k)
    gram = gram + noise_cov
    if not bool(gram.isfinite().all()):
        raise _overflow_error(mean.dtype, "too large", "G D G^T + S")
    # G D G^T + S sums non-negative terms on its diagonal: that diagonal is its rounding scale.
    scale = torch.diagonal(gram, dim1=-2, dim2=-1).double()  # (..., k)
    independent = _independent_rows(gram.double(), scale, rank_tolerance(mean.dtype, num_rows))
    if not bool(independent.all()):
        index = first_index(~independent)
        raise ConstraintError(
            f"constraint row {index[-1]} (at batch index {index[:-1]}) is linearly dependent on "
            "the rows before it under the belief, and the constraint noise is too small to tell "
            "them apart; remove the row or raise the noise variance"
        )
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
    ``G Sigma G^T`` ``(..., k, k)``: what conditioning and posterior sampling both start from,
    for a pair :func:`check_compatible` has passed."""
    weights = constraint.weights.to(belief.mean.dtype)
    rows_times_cov = belief.covariance.left_multiply(weights)
    gram = torch.einsum("...kn,...jn->...kj", rows_times_cov, weights)
    return weights, rows_times_cov, gram


def check_compatible(belief: GaussianBelief, constraint: LinearConstraint) -> torch.Size:
    """Raise unless ``constraint`` applies to ``belief``: same grid, broadcasting batch shapes.
    Returns the batch shape of the result (both batch shapes broadcast)."""
    if not isinstance(belief, GaussianBelief):
        raise TypeError(f"belief must be a GaussianBelief, got {type(belief).__name__}")
    if not isinstance(constraint, LinearConstraint):
        raise TypeError(f"constraint must be a LinearConstraint, got {type(constraint).__name__}")
    if constraint.weights.shape[-1] != belief.mean.shape[-1]:
        raise ValueError(
            f"constraint weights cover {constraint.weights.shape[-1]} grid points but the "
            f"belief has {belief.mean.shape[-1]}"
        )
    return check_broadcast(
        {"belief batch shape": belief.batch_shape, "constraint batch shape": constraint.batch_shape}
    )


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
    tolerance: float,
    value_scale: Callable[[], Tensor],
) -> tuple[Tensor, Tensor]:
    """``(Q^-1, Q^-1 r)`` for ``Q = gram + S`` on the independent rows, factorised in float64.

    ``gram`` ``(..., k, k)``, ``residual`` ``(..., k)``, ``gram_scale`` ``(..., k)`` the rounding
    scale of ``gram``'s diagonal; ``value_scale`` gives that of the residual, ``(..., k)``, and
    is only computed when some row is skipped. Rows whose pivot is at or below ``tolerance``
    (module docstring) get zero rows and columns in ``Q^-1``, so the update leaves them as they
    are; their mass defect must then be rounding, else :class:`ConstraintError`. Returns both in
    the residual's dtype.
    """
    dtype = residual.dtype
    num_rows = gram.shape[-1]
    noise = torch.as_tensor(noise_variance, dtype=torch.float64, device=gram.device)
    noise = _noise_per_row(noise, num_rows)  # (..., k)
    q = gram.double() + torch.diag_embed(noise)  # (..., k, k)
    if not bool(q.isfinite().all()):  # G Sigma G^T overflowed the belief's dtype (or float64)
        raise _overflow_error(dtype, "too large", "G Sigma G^T + S")
    scale = gram_scale.double() + noise  # (..., k)
    # Where every row is kept, the in-order pivots are Cholesky's own (L_jj^2): one
    # factorisation decides and solves. Only where some pivot fails is the elimination redone
    # row by row, skipping the dependent rows (_independent_rows).
    factor, info = torch.linalg.cholesky_ex(q)  # (..., k, k), (...)
    pivots = torch.diagonal(factor, dim1=-2, dim2=-1).square()  # (..., k)
    every_row = bool((info == 0).all()) and bool((pivots > tolerance * scale).all())
    if not every_row:  # factorise the independent rows alone: the others are rows and columns of I
        independent = _independent_rows(q, scale, tolerance)  # (..., k)
        both = independent[..., :, None] & independent[..., None, :]  # (..., k, k)
        solved = torch.where(both, q, torch.eye(num_rows, dtype=q.dtype, device=q.device))
        factor = torch.linalg.cholesky(solved)
    inverse = torch.cholesky_inverse(factor)  # (..., k, k)
    if not every_row:
        inverse = torch.where(both, inverse, torch.zeros_like(inverse))
    coefficients = (inverse @ residual.double().unsqueeze(-1)).squeeze(-1)  # (..., k)
    if not every_row:
        _check_skipped_rows_hold(
            q, scale, tolerance, residual, coefficients, independent, value_scale
        )
    return _in_dtype(inverse, coefficients, dtype)


def _independent_rows(q: Tensor, scale: Tensor, tolerance: float) -> Tensor:
    """Which rows of ``q`` ``(..., k, k)`` are independent of the kept rows before them.

    The in-order Cholesky pivots of ``q``: row ``j``'s is its variance given the kept rows
    before it, kept if above ``tolerance * scale_j`` (``scale`` ``(..., k)``); a row not kept
    eliminates nothing from the rows after it. A decision, not part of the result: no
    gradient. Returns ``(..., k)`` booleans.
    """
    num_rows = q.shape[-1]
    with torch.no_grad():
        remaining = q
        kept = []
        for row in range(num_rows):
            pivot = remaining[..., row, row]  # (...)
            keep = pivot > tolerance * scale[..., row]
            kept.append(keep)
            if row + 1 < num_rows:
                multiplier = remaining[..., :, row] / torch.where(keep, pivot, 1.0)[..., None]
                multiplier = torch.where(keep[..., None], multiplier, 0.0)  # (..., k)
                remaining = remaining - multiplier[..., :, None] * remaining[..., None, row, :]
        return torch.stack(kept, dim=-1)


def _check_skipped_rows_hold(
    q: Tensor,
    scale: Tensor,
    tolerance: float,
    residual: Tensor,
    coefficients: Tensor,
    independent: Tensor,
    value_scale: Callable[[], Tensor],
) -> None:
    """Raise :class:`ConstraintError` unless every skipped row is met once the kept rows are.

    After the update the defect left in row ``j`` is ``r_j - (Q c)_j`` (the kept rows move the
    mean by ``Sigma G^T c``); for a skipped row it must be rounding: within ``sqrt(eps)`` of
    the terms its defect sums.
    """
    dtype = residual.dtype
    left_over = residual.double() - (q @ coefficients.unsqueeze(-1)).squeeze(-1)  # (..., k)
    allowed = rounding_tolerance(dtype) * value_scale().double() + torch.finfo(dtype).tiny
    left_over, allowed, independent = torch.broadcast_tensors(left_over.abs(), allowed, independent)
    unmet = ~independent & (left_over > allowed)
    if not bool(unmet.any()):
        return
    index = first_index(unmet)
    *batch, row = index
    num_rows = q.shape[-1]
    own_variance = float(q.expand(*unmet.shape, num_rows)[index][row])  # Q_jj
    pinned = own_variance <= tolerance * float(scale.expand(unmet.shape)[index])
    kept_before = [j for j in range(row) if bool(independent[(*batch, j)])]
    if pinned or not kept_before:
        reason = "has no variance under the belief (zero wherever it has weight) and no noise"
    else:
        reason = f"is linearly dependent on rows {kept_before} under the belief"
    where = f"row {row}" + (f" at batch index {tuple(batch)}" if batch else "")
    raise ConstraintError(
        f"constraint cannot be met: {where} {reason}, but its mass defect is "
        f"{float(left_over[index]):.3e} (rounding allows {float(allowed[index]):.3e}); remove "
        "the row, correct its value or give it noise"
    )


def _in_dtype(inverse: Tensor, coefficients: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``inverse`` and ``coefficients`` in ``dtype``; :class:`ConstraintError` where that
    overflows (a belief whose variance under the constraint is tiny for its dtype)."""
    inverse, coefficients = inverse.to(dtype), coefficients.to(dtype)
    if not bool(inverse.isfinite().all() & coefficients.isfinite().all()):
        raise _overflow_error(
            dtype, "too small for the size of its mass defect", "1 / (G Sigma G^T)"
        )
    return inverse, coefficients


def _overflow_error(dtype: torch.dtype, problem: str, quantity: str) -> ConstraintError:
    """The error for an update in ``dtype`` where ``quantity`` exceeds the largest number
    because the belief's variance under the constraint is ``problem``."""
    remedy = (
        "rescale the problem" if dtype == torch.float64 else "use float64 or rescale the problem"
    )
    return ConstraintError(
        f"the update overflows {dtype}: the belief's variance under the constraint is {problem} "
        f"({quantity} exceeds the largest {dtype} number); {remedy}"
    )


def _noise_per_row(noise_variance: Tensor, num_rows: int) -> Tensor:
    """``noise_variance``, broadcastable to ``(..., k)``, as ``(..., k)`` (a view): one
    variance per constraint row."""
    noise = torch.atleast_1d(noise_variance)
    return noise.expand(*noise.shape[:-1], num_rows)
