"""The conservation update with bounds: ``G u = b`` and ``lower <= u <= upper`` together.

Physical fields have ranges a Gaussian ignores: a concentration or a temperature above absolute
zero is non-negative, a melt fraction lies in [0, 1]. After conditioning on the mass, the
ProbConserv paper projects the mean onto such inequality constraints in the posterior's metric.
For a diagonal prior ``N(mu, D)`` and one exact row ``g^T u = b`` that projection is

    u* = argmin (u - mu)^T D^-1 (u - mu)   subject to   g^T u = b,  lower <= u <= upper,

the mode of the conditioned Gaussian truncated to the box (on the plane ``g^T u = b`` the
posterior's precision is the prior's). Its optimality conditions give every entry in closed
form for one multiplier ``lam``: ``u_i = clip(mu_i + lam D_i g_i, lower_i, upper_i)``. With
``g >= 0`` (quadrature weights) the mass of that field is non-decreasing in ``lam``, so ``lam``
is found by bisection on a bracket known in advance, then made exact on the final active set:
O(n) per step, batched, no n x n matrix and no general QP solver.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lawful.beliefs import DiagonalCovariance, GaussianBelief
from lawful.constraints._checks import as_floating, check_broadcasts_to
from lawful.constraints.conservation import LinearConstraint
from lawful.constraints.update import ConstraintError, check_compatible, condition

__all__ = ["condition_within_bounds"]

# Halvings of the multiplier's bracket: 2^-100 of any bracket is below float64 resolution.
_BISECTION_STEPS = 100


def condition_within_bounds(
    prior: GaussianBelief,
    constraint: LinearConstraint,
    lower: Tensor | float = -torch.inf,
    upper: Tensor | float = torch.inf,
) -> GaussianBelief:
    """``condition(prior, constraint)`` with its mean moved to the most probable field in bounds.

    ``prior`` must have a diagonal covariance and ``constraint`` be one exact row with
    non-negative weights (a mass constraint). ``lower`` and ``upper`` broadcast to the mean's
    shape; infinite entries are no bound. The mean satisfies the constraint to rounding and the
    bounds exactly. The covariance returned is the conditioned Gaussian's, not the truncated
    one's (which has no closed form): the bounds act on the mean.

    Raises :class:`ConstraintError` when no field in the bounds has the required mass, or a
    grid point that cannot move (zero variance or zero weight) lies outside its bounds.
    """
    batch = _check_inputs(prior, constraint)
    dtype = prior.mean.dtype
    mean = prior.mean.double()  # (..., n)
    weights = constraint.weights[..., 0, :].double()  # (..., n)
    target = constraint.values[..., 0].double()  # (...)
    slope = prior.covariance.variance().double() * weights  # (..., n): d u_i / d lam
    # The posterior's batch: the constraint's masses may add axes the prior lacks (as in condition).
    shape = torch.Size((*batch, mean.shape[-1]))
    mean, weights, slope = (tensor.expand(shape) for tensor in (mean, weights, slope))
    lower, upper = _bounds(lower, upper, shape)
    target = target.expand(shape[:-1])

    movable = slope > 0
    stuck_outside = ~movable & ((mean < lower) | (mean > upper))
    if bool(stuck_outside.any()):
        raise ConstraintError(
            "bounds cannot be met: a grid point with zero variance or zero weight lies outside "
            "its bounds and the update cannot move it"
        )

    def field(multiplier: Tensor) -> Tensor:
        """``clip(mu + lam D g, lower, upper)`` for ``lam`` of shape (...); (..., n)."""
        moved = mean + multiplier.unsqueeze(-1) * slope
        return torch.minimum(torch.maximum(moved, lower), upper)

    def mass(multiplier: Tensor) -> Tensor:
        return (weights * field(multiplier)).sum(-1)  # (...)

    smallest = (weights * torch.where(movable, lower, mean)).sum(-1)  # (...) may be -inf
    largest = (weights * torch.where(movable, upper, mean)).sum(-1)  # (...) may be +inf
    tolerance = 1e3 * torch.finfo(torch.float64).eps * (target.abs() + 1)
    unreachable = (target < smallest - tolerance) | (target > largest + tolerance)
    if bool(unreachable.any()):
        index = tuple(torch.nonzero(unreachable)[0].tolist())
        raise ConstraintError(
            f"bounds cannot be met: the constraint asks for {float(target[index]):.6g}, but "
            f"fields within the bounds reach only [{float(smallest[index]):.6g}, "
            f"{float(largest[index]):.6g}]"
        )

    low, high = _bracket(mean, weights, slope, lower, upper, target, movable, mass)
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        short = mass(middle) < target
        low = torch.where(short, middle, low)
        high = torch.where(short, high, middle)
    estimate = field(0.5 * (low + high))  # (..., n)

    # Exact on the active set: the free entries share one multiplier that meets the mass.
    free = movable & (estimate > lower) & (estimate < upper)
    held_mass = (weights * torch.where(free, 0.0, estimate)).sum(-1)
    free_mass = (weights * torch.where(free, mean, 0.0)).sum(-1)
    free_slope = (weights * torch.where(free, slope, 0.0)).sum(-1)
    has_free = free_slope > 0
    multiplier = (target - held_mass - free_mass) / torch.where(has_free, free_slope, 1.0)
    exact = torch.where(free, mean + multiplier.unsqueeze(-1) * slope, estimate)
    exact = torch.where(has_free.unsqueeze(-1), exact, estimate)
    result = torch.minimum(torch.maximum(exact, lower), upper).to(dtype)
    return GaussianBelief.trusted(result, condition(prior, constraint).covariance)


def _check_inputs(prior: GaussianBelief, constraint: LinearConstraint) -> torch.Size:
    """Raise unless the bounded update applies; returns the posterior's batch shape."""
    batch = check_compatible(prior, constraint)
    if not isinstance(prior.covariance, DiagonalCovariance):
        raise ValueError(
            "condition_within_bounds needs a diagonal prior covariance, got "
            f"{type(prior.covariance).__name__}"
        )
    if constraint.num_rows != 1:
        raise ValueError(
            f"condition_within_bounds takes one constraint row, got {constraint.num_rows}"
        )
    if bool((torch.as_tensor(constraint.noise_variance) != 0).any()):
        raise ValueError("condition_within_bounds needs an exact constraint (zero noise variance)")
    if bool((constraint.weights < 0).any()):
        raise ValueError(
            "condition_within_bounds needs non-negative constraint weights (quadrature weights)"
        )
    return batch


def _bounds(
    lower: Tensor | float, upper: Tensor | float, shape: torch.Size
) -> tuple[Tensor, Tensor]:
    """Both bounds as float64 tensors of the field's ``shape``."""
    lower, upper = _bound(lower, "lower bound", shape), _bound(upper, "upper bound", shape)
    if bool(lower.isnan().any() | upper.isnan().any()):
        raise ValueError("bounds contain NaN values")
    if bool((lower > upper).any()):
        raise ValueError("lower bound exceeds upper bound at some grid point")
    return lower, upper


def _bound(value: Tensor | float, name: str, shape: torch.Size) -> Tensor:
    bound = as_floating(value, name)
    check_broadcasts_to(bound.shape, shape, name, "the field's shape")
    return bound.to(torch.float64).expand(shape)


def _bracket(
    mean: Tensor,
    weights: Tensor,
    slope: Tensor,
    lower: Tensor,
    upper: Tensor,
    target: Tensor,
    movable: Tensor,
    mass: Callable[[Tensor], Tensor],
) -> tuple[Tensor, Tensor]:
    """Multipliers ``(low, high)`` with ``mass(low) <= target <= mass(high)``, each (...).

    Past every breakpoint (where an entry meets a bound) the mass is linear in ``lam``: flat if
    every movable entry is bounded on that side, else rising with the unbounded entries' slope,
    which tells how much further to go.
    """
    tiny = torch.finfo(torch.float64).tiny
    safe_slope = torch.where(movable, slope, 1.0)
    spread = (weights * slope).sum(-1).clamp_min(tiny)  # (...) g^T D g
    unbounded_multiplier = (target - (weights * mean).sum(-1)) / spread  # ProbConserv's own
    breakpoints = torch.cat(
        [
            torch.where(movable, (lower - mean) / safe_slope, torch.nan),
            torch.where(movable, (upper - mean) / safe_slope, torch.nan),
        ],
        dim=-1,
    )  # (..., 2n)
    finite = breakpoints.isfinite()
    fill = unbounded_multiplier.unsqueeze(-1).expand_as(breakpoints)
    low = torch.where(finite, breakpoints, fill).amin(-1).minimum(unbounded_multiplier) - 1
    high = torch.where(finite, breakpoints, fill).amax(-1).maximum(unbounded_multiplier) + 1
    slope_below = (weights * torch.where(movable & lower.isinf(), slope, 0.0)).sum(-1)
    slope_above = (weights * torch.where(movable & upper.isinf(), slope, 0.0)).sum(-1)
    excess = (mass(low) - target).clamp_min(0)
    deficit = (target - mass(high)).clamp_min(0)
    low = low - torch.where(slope_below > 0, excess / slope_below.clamp_min(tiny), 0.0) - 1
    high = high + torch.where(slope_above > 0, deficit / slope_above.clamp_min(tiny), 0.0) + 1
    return low, high
