"""Linear constraints ``G u = b`` and the conservation laws that produce them.

The integral form of a conservation law, discretised like a finite-volume method, says that
quadrature of ``u(t, .)`` equals the total mass ``U(t)``: one row of ``G`` (the quadrature
weights) per time slice. ``U(t)`` comes either from the problem (an exact formula) or from the
boundary fluxes, ``U(t) = U(0) - integral_0^t (F(right) - F(left)) ds``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from lawful.constraints._checks import (
    as_floating,
    check_broadcast,
    check_broadcasts_to,
    check_finite,
    check_nonnegative,
)
from lawful.constraints.quadrature import QuadratureRule, check_grid, quadrature_weights

__all__ = [
    "LinearConstraint",
    "mass_constraint",
    "mass_from_boundary_flux",
    "stack_constraints",
]


@dataclass(frozen=True)
class LinearConstraint:
    """``weights @ u = values`` observed with Gaussian noise of variance ``noise_variance``.

    ``weights`` ``(..., k, n)``: k constraint rows over n grid points; ``values`` ``(..., k)``;
    ``noise_variance`` broadcastable to the values' shape (without growing it), zero for a
    constraint that must hold exactly. Leading axes broadcast against the belief's batch axes,
    so one row of quadrature weights ``(1, n)`` serves every function, time and latent sample.
    Integer weights and values are promoted to float64 (see :mod:`lawful.constraints._checks`).
    """

    weights: Tensor  # (..., k, n)
    values: Tensor  # (..., k)
    noise_variance: Tensor | float = 0.0

    def __post_init__(self) -> None:
        # Frozen, so the promoted tensors are set through object.__setattr__.
        object.__setattr__(self, "weights", as_floating(self.weights, "constraint weights"))
        object.__setattr__(self, "values", as_floating(self.values, "constraint values"))
        if self.weights.ndim < 2:
            raise ValueError(
                f"constraint weights must be (..., k, n), got shape {tuple(self.weights.shape)}; "
                "use weights.unsqueeze(0) for a single row"
            )
        if self.values.ndim < 1 or self.values.shape[-1] != self.weights.shape[-2]:
            raise ValueError(
                f"constraint values must end in k = {self.weights.shape[-2]} (one per row), "
                f"got shape {tuple(self.values.shape)}"
            )
        check_finite(self.weights, "constraint weights")
        check_finite(self.values, "constraint values")
        noise = as_floating(self.noise_variance, "constraint noise variance")
        check_finite(noise, "constraint noise variance")
        check_nonnegative(noise, "constraint noise variance")
        check_broadcasts_to(
            noise.shape, self.values.shape, "constraint noise variance", "constraint values"
        )
        check_broadcast(self._batch_shapes())

    @property
    def num_rows(self) -> int:
        return self.weights.shape[-2]

    @property
    def batch_shape(self) -> torch.Size:
        """The leading (batch) shape of weights and values together (the noise's is within the
        values')."""
        return check_broadcast(self._batch_shapes())

    def _batch_shapes(self) -> dict[str, tuple[int, ...]]:
        return {
            "constraint weights batch": self.weights.shape[:-2],
            "constraint values batch": self.values.shape[:-1],
        }

    def residual(self, u: Tensor) -> Tensor:
        """``values - weights @ u`` for ``u`` of shape ``(..., n)``; returns ``(..., k)`` in
        ``u``'s dtype (a float64 constraint serves a float32 belief)."""
        weights, values = self.weights.to(u.dtype), self.values.to(u.dtype)
        return values - torch.einsum("...kn,...n->...k", weights, u)


def stack_constraints(*constraints: LinearConstraint) -> LinearConstraint:
    """All rows of ``constraints`` as one constraint, to condition on them together.

    Conditioning on the stack is not conditioning on each in turn with the others forgotten:
    the update for one row may break another, the joint update keeps every row.
    """
    if not constraints:
        raise ValueError("stack_constraints needs at least one constraint")
    for i, constraint in enumerate(constraints):
        if not isinstance(constraint, LinearConstraint):
            raise TypeError(
                f"constraint {i} must be a LinearConstraint, got {type(constraint).__name__}"
            )
    num_points = {constraint.weights.shape[-1] for constraint in constraints}
    if len(num_points) > 1:
        raise ValueError(f"constraints live on grids of different sizes: {sorted(num_points)}")
    # Weights keep their own (usually shared) batch shape: a mass row (1, n) stacked with rows
    # that carry per-function data stays (k, n), not a copy per function and time.
    batch = check_broadcast(
        {f"constraint {i} batch": c.batch_shape for i, c in enumerate(constraints)}
    )
    weight_batch = torch.broadcast_shapes(*(c.weights.shape[:-2] for c in constraints))
    dtype = functools.reduce(
        torch.promote_types, [t.dtype for c in constraints for t in (c.weights, c.values)]
    )
    weights = torch.cat(
        [c.weights.to(dtype).expand(*weight_batch, *c.weights.shape[-2:]) for c in constraints],
        dim=-2,
    )  # (..., k_total, n)
    values = torch.cat(
        [c.values.to(dtype).expand(*batch, c.values.shape[-1]) for c in constraints], dim=-1
    )  # (..., k_total)
    noise = torch.cat(
        [
            torch.as_tensor(c.noise_variance, dtype=dtype).expand(*batch, c.num_rows)
            for c in constraints
        ],
        dim=-1,
    )  # (..., k_total)
    return LinearConstraint(weights, values, noise)


def mass_constraint(
    grid: Tensor,
    total_mass: Tensor,
    rule: QuadratureRule = "trapezoid",
    noise_variance: Tensor | float = 0.0,
) -> LinearConstraint:
    """ "Quadrature of u on ``grid`` equals ``total_mass``", one row per entry of ``total_mass``.

    ``grid`` ``(n,)``; ``total_mass`` ``(...)`` (e.g. ``(functions, times)``). The weights are
    shared by all rows, so they are stored once as ``(1, n)`` and broadcast. They are computed
    in the grid's dtype and stored in the more precise of the grid's and the mass's: a float32
    mass does not round float64 weights (integers count as float64).
    """
    grid = as_floating(grid, "constraint grid")
    total_mass = as_floating(total_mass, "total mass")
    check_grid(grid, "constraint grid")
    dtype = torch.promote_types(grid.dtype, total_mass.dtype)
    weights = quadrature_weights(grid, rule).to(dtype).unsqueeze(0)  # (1, n)
    return LinearConstraint(weights, total_mass.to(dtype).unsqueeze(-1), noise_variance)


def mass_from_boundary_flux(
    initial_mass: Tensor, times: Tensor, flux_left: Tensor, flux_right: Tensor
) -> Tensor:
    """Total mass over time from the boundary fluxes of ``u_t + F_x = 0``.

    ``U(t_j) = U(t_0) - int_{t_0}^{t_j} (F(right) - F(left)) dt`` by the trapezoid rule in time.
    ``initial_mass`` ``(...)``; ``times`` ``(T,)`` increasing; fluxes ``(..., T)``; the batch
    shapes broadcast. Returns ``(..., T)`` in the most precise of the inputs' dtypes.
    """
    initial_mass = as_floating(initial_mass, "initial mass")
    times = as_floating(times, "flux times")
    flux_left = as_floating(flux_left, "left flux")
    flux_right = as_floating(flux_right, "right flux")
    check_grid(times, "flux times")
    if flux_left.ndim < 1 or flux_right.ndim < 1:
        raise ValueError(
            f"fluxes must be (..., T), got {tuple(flux_left.shape)} and {tuple(flux_right.shape)}"
        )
    if flux_left.shape[-1] != times.numel() or flux_right.shape[-1] != times.numel():
        raise ValueError(
            f"fluxes must end in T = {times.numel()} (one per time), got "
            f"{tuple(flux_left.shape)} and {tuple(flux_right.shape)}"
        )
    check_finite(initial_mass, "initial mass")
    check_finite(flux_left, "left flux")
    check_finite(flux_right, "right flux")
    check_broadcast(
        {
            "initial mass": initial_mass.shape,
            "left flux batch": flux_left.shape[:-1],
            "right flux batch": flux_right.shape[:-1],
        }
    )
    dtype = functools.reduce(
        torch.promote_types, [t.dtype for t in (initial_mass, times, flux_left, flux_right)]
    )
    net_outflow = flux_right.to(dtype) - flux_left.to(dtype)  # (..., T)
    steps = torch.diff(times.to(dtype))  # (T - 1,)
    increments = 0.5 * (net_outflow[..., 1:] + net_outflow[..., :-1]) * steps  # (..., T - 1)
    outflow_so_far = torch.cat(
        [torch.zeros_like(net_outflow[..., :1]), increments.cumsum(-1)], dim=-1
    )  # (..., T)
    return initial_mass.to(dtype).unsqueeze(-1) - outflow_so_far
