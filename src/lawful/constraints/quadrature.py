"""Quadrature weights on (possibly non-uniform) grids.

A weight vector ``w`` turns values on grid points into an integral, ``w @ u ~ integral of u``.
These vectors are the rows of the conservation constraint ``G u = b``: the finite-volume
discretisation of "total mass equals U(t)".

Orders (tested in tests/constraints/test_quadrature.py): trapezoid 2, Riemann 1,
on uniform and non-uniform grids alike.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional

from lawful.constraints._checks import as_floating, check_finite, check_tensor

QuadratureRule = Literal["trapezoid", "riemann_left", "riemann_right"]

__all__ = [
    "QuadratureRule",
    "cell_volume_weights",
    "check_grid",
    "quadrature_weights",
    "riemann_weights",
    "trapezoid_weights",
]


def check_grid(x: Tensor, name: str = "grid", batched: bool = False) -> None:
    """Raise ``ValueError`` unless ``x`` is finite and strictly increasing with >= 2 points.

    ``x`` is one grid ``(n,)``, or with ``batched=True`` a batch of grids ``(..., n)``.
    """
    check_tensor(x, name)
    if x.ndim != 1 and not (batched and x.ndim >= 1):
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(x.shape)}")
    if x.shape[-1] < 2:
        raise ValueError(f"{name} needs at least 2 points, got {x.shape[-1]}")
    check_finite(x, name)
    steps = torch.diff(x, dim=-1)
    if not bool((steps > 0).all()):
        where = tuple(int(i) for i in torch.nonzero(steps <= 0)[0])
        after = (*where[:-1], where[-1] + 1)
        raise ValueError(
            f"{name} must be strictly increasing; x[{after}] = {float(x[after])} "
            f"does not exceed x[{where}] = {float(x[where])}"
        )


def trapezoid_weights(x: Tensor) -> Tensor:
    """Trapezoid weights: half of each neighbouring cell, ``(x[i+1] - x[i-1]) / 2`` inside.

    ``x`` is ``(n,)`` or a batch of grids ``(..., n)``; the weights have its shape (and its
    dtype; an integer grid is promoted to float64).
    """
    x = as_floating(x, "grid")
    check_grid(x, batched=True)
    half_cells = torch.diff(x, dim=-1) / 2  # (..., n - 1)
    return functional.pad(half_cells, (0, 1)) + functional.pad(half_cells, (1, 0))


def riemann_weights(x: Tensor, side: Literal["left", "right"] = "left") -> Tensor:
    """One-sided Riemann weights: each cell's width goes to its left (or right) end point."""
    x = as_floating(x, "grid")
    check_grid(x)
    cells = torch.diff(x)  # (n - 1,)
    weights = torch.zeros_like(x)
    if side == "left":
        weights[:-1] = cells
    elif side == "right":
        weights[1:] = cells
    else:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return weights


def quadrature_weights(x: Tensor, rule: QuadratureRule = "trapezoid") -> Tensor:
    """Weights of the named rule on grid ``x``."""
    if rule == "trapezoid":
        return trapezoid_weights(x)
    if rule == "riemann_left":
        return riemann_weights(x, "left")
    if rule == "riemann_right":
        return riemann_weights(x, "right")
    raise ValueError(
        f"unknown quadrature rule {rule!r}; choose trapezoid, riemann_left or riemann_right"
    )


def cell_volume_weights(*axes: Tensor, rule: QuadratureRule = "trapezoid") -> Tensor:
    """Tensor-product weights on the grid ``axes[0] x axes[1] x ...``, flattened row-major.

    The result has ``prod(len(a) for a in axes)`` entries, ordered like ``u.reshape(-1)`` for
    ``u`` of shape ``(len(axes[0]), len(axes[1]), ...)``: a multi-dimensional integral is
    one more row of the same constraint, so the update needs no special case for it.
    """
    if not axes:
        raise ValueError("cell_volume_weights needs at least one axis")
    for index, axis in enumerate(axes):
        check_grid(axis, f"axis {index} of the cell volume grid")  # one grid per axis, not a batch
    weights = quadrature_weights(axes[0], rule)
    for axis in axes[1:]:
        weights = torch.outer(weights, quadrature_weights(axis, rule)).reshape(-1)
    return weights
