"""Metrics as the papers define them.

Conservation experiments (ProbConserv): at the evaluation time t*, per function, on a grid:
MSE (mean over x of the squared error of the predicted mean), CE (signed trapezoid mass of the
predicted mean minus the true mass), LL (mean over x of the Gaussian log-density of the truth),
and CRPS (mean over x of the closed-form Gaussian CRPS); beyond the paper, the coverage of the
central 95 % interval (calibrated uncertainty covers 95 % of the truth). :func:`summarize` turns
per-function values into a mean and its standard error.

Boundary experiments (BOON): :func:`relative_l2` per sample, :func:`boundary_error` (how far a
prediction is from its boundary conditions, by the conditions' own stencils) and
:func:`neumann_flux_error` (the flux at Neumann ends by an independent fourth-order stencil).

Downstream: :func:`first_crossing` finds where a sample drops to zero (the shock position).

Inputs are checked where they enter: predictions and truths of equal shapes (no silent
broadcasting), finite values, non-negative variances. A zero variance is a deterministic
prediction, a point mass at the mean: its log-density is +inf where the truth equals the mean
exactly and -inf elsewhere (so the mean over the grid is -inf if any certain point misses), its
CRPS is ``|mean - truth|``, and its central interval has zero width (it covers the truth only
where the truth equals the mean). Give a small positive variance for finite log-likelihoods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lawful.constraints._checks import (
    check_finite,
    check_floating,
    check_nonnegative,
    check_same_shape,
)
from lawful.constraints.boundary import (
    MAX_NEUMANN_ORDER,
    BoundaryConditions,
    Neumann,
    boundary_residuals,
    one_sided_derivative,
    resolve_boundary_value,
)
from lawful.constraints.quadrature import check_grid, trapezoid_weights

__all__ = [
    "Summary",
    "boundary_error",
    "conservation_error",
    "crps_gaussian",
    "first_crossing",
    "gaussian_log_likelihood",
    "interval_coverage",
    "mean_squared_error",
    "neumann_flux_error",
    "relative_l2",
    "summarize",
]


def _check_fields(fields: dict[str, Tensor]) -> None:
    """Floating, finite and of one shape ``(..., n)``: ``fields`` maps names to tensors."""
    for name, field in fields.items():
        check_floating(field, name)
        if field.ndim < 1:
            raise ValueError(f"{name} must be (..., n) with a grid axis, got a scalar")
        check_finite(field, name)
    check_same_shape(fields)


def _check_belief(mean: Tensor, variance: Tensor, truth: Tensor) -> None:
    _check_fields({"mean": mean, "variance": variance, "truth": truth})
    check_nonnegative(variance, "variance")


def mean_squared_error(mean: Tensor, truth: Tensor) -> Tensor:
    """Mean over the last (grid) axis of ``(mean - truth)^2``; ``(...)``."""
    _check_fields({"mean": mean, "truth": truth})
    return (mean - truth).square().mean(-1)


def conservation_error(mean: Tensor, grid: Tensor, true_mass: Tensor) -> Tensor:
    """Trapezoid mass of ``mean`` ``(..., n)`` on ``grid`` ``(n,)`` minus ``true_mass``
    ``(...)`` (signed); ``(...)``."""
    _check_fields({"mean": mean})
    check_floating(true_mass, "true mass")
    check_finite(true_mass, "true mass")
    if true_mass.shape != mean.shape[:-1]:
        raise ValueError(
            f"true mass must have the mean's shape without its grid axis, "
            f"{tuple(mean.shape[:-1])}; got {tuple(true_mass.shape)}"
        )
    weights = trapezoid_weights(grid)
    if weights.shape != mean.shape[-1:]:
        raise ValueError(
            f"grid has {weights.numel()} points but the mean has {mean.shape[-1]} on its last axis"
        )
    return mean @ weights.to(mean.dtype) - true_mass


def gaussian_log_likelihood(mean: Tensor, variance: Tensor, truth: Tensor) -> Tensor:
    """Mean over the grid of ``log N(truth; mean, variance)``; ``(...)``.

    A zero variance is a point mass (module docstring): +inf where exact, -inf elsewhere.
    """
    _check_belief(mean, variance, truth)
    certain = variance == 0
    positive_variance = torch.where(certain, 1.0, variance)
    log_density = -0.5 * (
        torch.log(2 * math.pi * positive_variance) + (truth - mean).square() / positive_variance
    )  # (..., n)
    point_mass = torch.where(truth == mean, torch.inf, -torch.inf)  # (..., n)
    log_density = torch.where(certain, point_mass, log_density)
    missed = (certain & (truth != mean)).any(-1)  # (...): -inf wins over +inf
    return torch.where(missed, -torch.inf, log_density.mean(-1))


def crps_gaussian(mean: Tensor, variance: Tensor, truth: Tensor) -> Tensor:
    """Mean over the grid of the continuous ranked probability score of ``N(mean, variance)``.

    Closed form (Gneiting & Raftery 2007): ``s [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)]`` with
    ``z = (truth - mean) / s``. Lower is better; it rewards sharpness and calibration together.
    For a zero variance it is the limit ``|mean - truth|``.
    """
    _check_belief(mean, variance, truth)
    std = variance.sqrt()
    certain = std == 0
    z = (truth - mean) / torch.where(certain, 1.0, std)
    density = torch.exp(-0.5 * z.square()) / math.sqrt(2 * math.pi)  # phi(z)
    score = std * (z * (2 * torch.special.ndtr(z) - 1) + 2 * density - 1 / math.sqrt(math.pi))
    score = torch.where(certain, (truth - mean).abs(), score)
    return score.mean(-1)


def interval_coverage(mean: Tensor, variance: Tensor, truth: Tensor, level: float = 0.95) -> Tensor:
    """Fraction of the grid where ``truth`` lies in the central ``level`` interval; ``(...)``.

    The interval is ``mean ± z sqrt(variance)`` with ``z`` the ``(1 + level) / 2`` quantile of
    the standard normal. Calibrated beliefs score ``level``; overconfident ones less.
    """
    if not 0 < level < 1:
        raise ValueError(f"coverage level must lie strictly between 0 and 1, got {level}")
    _check_belief(mean, variance, truth)
    z = float(torch.special.ndtri(torch.tensor((1 + level) / 2, dtype=torch.float64)))
    inside = (truth - mean).abs() <= z * variance.sqrt()  # (..., n)
    return inside.to(mean.dtype).mean(-1)


def relative_l2(prediction: Tensor, truth: Tensor, dims: tuple[int, ...] = (-1,)) -> Tensor:
    """Per-sample ``||prediction - truth|| / ||truth||`` over ``dims``."""
    _check_fields({"prediction": prediction, "truth": truth})
    return torch.linalg.vector_norm(prediction - truth, dim=dims) / torch.linalg.vector_norm(
        truth, dim=dims
    )


def boundary_error(field: Tensor, conditions: BoundaryConditions, spacing: float) -> Tensor:
    """Per-sample mean of ``|residual|`` over both ends (and every other axis): ``(batch,)``.

    Residuals as :func:`~lawful.constraints.boundary.boundary_residuals` defines them: Dirichlet
    ``|u - g|``, Neumann ``|stencil u_x - g|`` with the conditions' stencil, periodic
    ``|u_0 - u_N|``. ``field`` is ``(batch, channels, *spatial)``.
    """
    _check_fields({"field": field})
    left, right = boundary_residuals(field, conditions, spacing)  # (batch, channels, *other)
    return torch.stack([left, right], -1).abs().flatten(1).mean(-1)


def neumann_flux_error(
    field: Tensor, conditions: BoundaryConditions, spacing: float, order: int = MAX_NEUMANN_ORDER
) -> Tensor:
    """Per-sample mean over the Neumann ends of ``|u_x - g|``, with ``u_x`` from a one-sided
    stencil of ``order`` (default the highest): an estimate independent of the conditions' own
    stencil, so a model cannot score well by matching that stencil alone. ``(batch,)``.
    """
    _check_fields({"field": field})
    dim = conditions.dim(field.ndim)
    slice_shape = field.select(dim, 0).shape  # (batch, channels, *other)
    errors = []
    for condition, side in ((conditions.left, "left"), (conditions.right, "right")):
        if isinstance(condition, Neumann):
            flux = condition.value
            if isinstance(flux, Tensor):
                flux = resolve_boundary_value(flux, slice_shape, f"Neumann data at the {side} end")
            derivative = one_sided_derivative(field, spacing, order, side, dim)  # slice shape
            errors.append((derivative - flux).abs().flatten(1).mean(-1))  # (batch,)
    if not errors:
        raise ValueError("neumann_flux_error needs at least one Neumann end in the conditions")
    return torch.stack(errors).mean(0)


def first_crossing(samples: Tensor, grid: Tensor, level: float = 0.0) -> Tensor:
    """The first grid point where each sample is at or below ``level``; ``(...)``.

    ``samples`` ``(..., n)`` on the increasing ``grid`` ``(n,)``. A sample that never reaches the
    level gets the last grid point (the front has left the domain).
    """
    check_grid(grid)
    _check_fields({"samples": samples})
    if samples.shape[-1] != grid.numel():
        raise ValueError(
            f"samples have {samples.shape[-1]} points on their last axis but the grid has "
            f"{grid.numel()}"
        )
    below = samples <= level  # (..., n)
    index = torch.where(below.any(-1), below.to(torch.int8).argmax(-1), grid.numel() - 1)
    return grid.to(samples.dtype)[index]


@dataclass(frozen=True)
class Summary:
    mean: float
    standard_error: float


def summarize(values: Tensor, name: str = "values") -> Summary:
    """Mean and standard error of the mean of per-function values ``(functions,)``.

    A NaN among them is a ``ValueError`` naming ``name`` (the metric), not a NaN mean in a
    report. Infinities pass: a point mass's log-likelihood is one, and its mean says so.
    """
    values = values.detach().double().reshape(-1)
    missing = int(values.isnan().sum())
    if missing:
        raise ValueError(
            f"{name}: {missing} of the {values.numel()} per-function values are NaN, so their "
            "mean would be too"
        )
    if values.numel() < 2:
        return Summary(float(values.mean()), float("nan"))
    return Summary(float(values.mean()), float(values.std() / math.sqrt(values.numel())))
