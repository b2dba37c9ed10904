"""Boundary conditions along one axis of a field: Dirichlet, Neumann (one-sided stencil), periodic.

A field has layout ``(batch, channels, *spatial)``; a :class:`BoundaryConditions` pair constrains
the two ends of one spatial ``axis``. Removing that axis from the field leaves the *boundary
slice*, of shape ``(batch, channels, *other)``. A boundary value may be

- a float: the same value everywhere;
- a tensor of shape ``()``: likewise, but differentiable;
- a tensor of shape ``(batch,)``: one value per sample, broadcast over channels and other axes;
- a tensor of shape ``(batch, *other)``: e.g. ``(batch, time)`` for time-dependent data on a
  ``(batch, channels, x, time)`` field, broadcast over channels.

Neumann conditions ``u_x = g`` use a one-sided finite-difference stencil of order ``p`` on a uniform
grid of spacing ``h``; solving it for the boundary entry makes the discrete derivative equal ``g``.
Orders are tested in tests/constraints/test_boundary.py. ``h`` must be positive (checked wherever a
Neumann stencil uses it), and fields must be floating point: an integer field cannot hold the
values written into it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from lawful.constraints._checks import (
    check_finite,
    check_floating,
    check_spacing,
    check_tensor,
    in_field_precision,
)
from lawful.constraints.conservation import LinearConstraint

Side = Literal["left", "right"]
BoundaryValue = float | Tensor
MAX_NEUMANN_ORDER = 4

__all__ = [
    "MAX_NEUMANN_ORDER",
    "BoundaryCondition",
    "BoundaryConditions",
    "BoundaryEquation",
    "BoundaryValue",
    "Dirichlet",
    "Neumann",
    "Periodic",
    "Side",
    "apply_boundary_conditions",
    "boundary_constraint",
    "boundary_equations",
    "boundary_residuals",
    "neumann_boundary_value",
    "one_sided_derivative",
    "one_sided_derivative_weights",
    "resolve_boundary_value",
]


def _check_value(value: BoundaryValue, name: str) -> None:
    """Boundary data is a real number or a real tensor (not complex, whose imaginary part the
    field would drop, nor bool), finite."""
    if isinstance(value, Tensor):
        check_tensor(value, name)
        check_finite(value, name)
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number or a torch.Tensor, got {type(value).__name__}; "
            "convert arrays with torch.as_tensor"
        )
    elif not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")


@dataclass(frozen=True)
class Dirichlet:
    """``u = value`` at the end."""

    value: BoundaryValue = 0.0

    def __post_init__(self) -> None:
        _check_value(self.value, "Dirichlet value")


@dataclass(frozen=True)
class Neumann:
    """``u_x = value`` at the end, discretised by a one-sided stencil of the given order."""

    value: BoundaryValue = 0.0
    order: int = 1

    def __post_init__(self) -> None:
        _check_value(self.value, "Neumann value")
        if isinstance(self.order, bool) or not isinstance(self.order, int):
            raise TypeError(
                f"Neumann stencil order must be an integer, got {self.order!r} "
                f"({type(self.order).__name__})"
            )
        if not 1 <= self.order <= MAX_NEUMANN_ORDER:
            raise ValueError(
                f"Neumann stencil order must be between 1 and {MAX_NEUMANN_ORDER}, got {self.order}"
            )


@dataclass(frozen=True)
class Periodic:
    """Both ends are the same point; must be used at both ends."""


BoundaryCondition = Dirichlet | Neumann | Periodic


@dataclass(frozen=True)
class BoundaryConditions:
    """The conditions at the ``left`` (index 0) and ``right`` (index -1) ends of ``axis``."""

    left: BoundaryCondition
    right: BoundaryCondition
    axis: int = -1

    def __post_init__(self) -> None:
        if isinstance(self.left, Periodic) != isinstance(self.right, Periodic):
            raise ValueError(
                "a periodic condition must be on both ends; got "
                f"left={type(self.left).__name__}, right={type(self.right).__name__}"
            )

    @property
    def is_periodic(self) -> bool:
        return isinstance(self.left, Periodic)

    def with_values(
        self, left: BoundaryValue | None = None, right: BoundaryValue | None = None
    ) -> BoundaryConditions:
        """The same conditions with new boundary data at the ends given (``None`` keeps the old)."""
        return replace(
            self,
            left=_with_value(self.left, left, "left"),
            right=_with_value(self.right, right, "right"),
        )

    def dim(self, ndim: int) -> int:
        """The constrained axis as a non-negative index into a field with ``ndim`` dimensions."""
        dim = self.axis % ndim if -ndim <= self.axis < ndim else -1
        if dim < 2:
            raise ValueError(
                f"boundary axis {self.axis} is not a spatial axis of a field with {ndim} "
                "dimensions laid out as (batch, channels, *spatial)"
            )
        return dim

    def min_points(self) -> int:
        """Fewest grid points along the axis for which both ends' conditions can be imposed.

        A Neumann stencil of order p reads p interior points; one more keeps it clear of the
        opposite end, so imposing one end never disturbs the other.
        """
        return max([2, *(c.order + 2 for c in (self.left, self.right) if isinstance(c, Neumann))])

    def validate(self, field_shape: torch.Size) -> None:
        """Raise ``ValueError`` unless the conditions fit a field of this shape: a spatial axis,
        enough points for the stencils, boundary data of an accepted shape (module docstring)."""
        dim = self.dim(len(field_shape))
        n = field_shape[dim]
        if n < self.min_points():
            raise ValueError(
                f"grid of {n} points along the boundary axis is too short for these conditions "
                f"({type(self.left).__name__} left, {type(self.right).__name__} right); "
                f"need at least {self.min_points()} points"
            )
        slice_shape = torch.Size(field_shape[:dim] + field_shape[dim + 1 :])
        for condition, side in ((self.left, "left"), (self.right, "right")):
            if isinstance(condition, Dirichlet | Neumann) and isinstance(condition.value, Tensor):
                name = f"{type(condition).__name__} data at the {side} end"
                resolve_boundary_value(condition.value, slice_shape, name)


def _with_value(
    condition: BoundaryCondition, value: BoundaryValue | None, side: Side
) -> BoundaryCondition:
    if value is None:
        return condition
    if isinstance(condition, Periodic):
        raise ValueError(f"a periodic condition takes no boundary data; got some at the {side} end")
    return replace(condition, value=value)


def resolve_boundary_value(value: Tensor, boundary_shape: torch.Size, name: str) -> Tensor:
    """``value`` reshaped to broadcast against a boundary slice ``(batch, channels, *other)``.

    Accepted shapes: ``()``, ``(batch,)`` or ``(batch, *other)``; anything else is an error that
    names the expected and the received shape.
    """
    batch, _, *other = boundary_shape
    if value.ndim == 0:
        return value
    if value.shape == (batch,):
        return value.reshape(batch, 1, *(1 for _ in other))  # (batch, 1, 1...)
    if value.shape == (batch, *other):
        return value.unsqueeze(1)  # (batch, 1, *other)
    expected = " or ".join(str(s) for s in dict.fromkeys([(), (batch,), (batch, *other)]))
    raise ValueError(
        f"{name} must have shape {expected} to match the boundary slice "
        f"(batch, channels, *other) = {tuple(boundary_shape)}; got {tuple(value.shape)}"
    )


def _boundary_target(field: Tensor, dim: int, value: BoundaryValue, name: str) -> Tensor:
    """The boundary data as a tensor of the field's dtype, broadcastable to its boundary slice."""
    if not isinstance(value, Tensor):
        return field.new_tensor(value)  # straight to the field's dtype: no float32 detour
    slice_shape = field.select(dim, 0).shape  # (batch, channels, *other)
    return resolve_boundary_value(value, slice_shape, name).to(field)


def one_sided_derivative_weights(order: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Weights ``w_0..w_p`` of the order-``p`` forward difference, in units of ``1/h``.

    ``u_x(x_0) = (1/h) * sum_j w_j u_j + O(h^p)``: the derivative at ``x_0`` of the polynomial
    through ``u_0..u_p``, whose weights are ``w_0 = -(1 + 1/2 + ... + 1/p)`` and
    ``w_j = (-1)^(j+1) C(p, j) / j``. The right end uses ``-w`` on ``u_N, u_{N-1}, ...``.
    """
    if not 1 <= order <= MAX_NEUMANN_ORDER:
        raise ValueError(f"stencil order must be between 1 and {MAX_NEUMANN_ORDER}, got {order}")
    weights = [-sum(1 / j for j in range(1, order + 1))]
    weights += [(-1) ** (j + 1) * math.comb(order, j) / j for j in range(1, order + 1)]
    return torch.tensor(weights, dtype=dtype)


def _from_end(field: Tensor, dim: int, count: int, side: Side) -> Tensor:
    """The ``count`` entries nearest the end, ordered from the end inward, along the last axis."""
    if field.shape[dim] < count:
        raise ValueError(
            f"grid of {field.shape[dim]} points along the boundary axis is too short for a "
            f"stencil reading {count} points from the {side} end"
        )
    if side == "left":
        entries = field.narrow(dim, 0, count)
    elif side == "right":
        entries = field.narrow(dim, field.shape[dim] - count, count).flip(dim)
    else:
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return entries.movedim(dim, -1)  # (batch, channels, *other, count)


@in_field_precision
def one_sided_derivative(
    field: Tensor, spacing: float, order: int, side: Side, dim: int = -1
) -> Tensor:
    """The order-``p`` one-sided difference approximation of ``u_x`` at one end of ``dim``."""
    check_floating(field, "field")
    check_spacing(spacing)
    weights = one_sided_derivative_weights(order, field.dtype).to(field.device)
    sign = 1.0 if side == "left" else -1.0  # mirrored stencil: steps point inward, -x
    return sign * (_from_end(field, dim, order + 1, side) @ weights) / spacing


@in_field_precision
def neumann_boundary_value(
    field: Tensor, flux: BoundaryValue, spacing: float, order: int, side: Side, dim: int = -1
) -> Tensor:
    """The boundary entry that makes the one-sided derivative at ``side`` equal ``flux``.

    Reads the ``order`` interior points nearest the end (the current boundary entry is ignored);
    e.g. order 1 left ``u_0 = u_1 - h g``, order 3 right
    ``u_N = (18 u_{N-1} - 9 u_{N-2} + 2 u_{N-3} + 6 h g) / 11``. ``flux`` broadcasts like
    the result, whose shape is ``field``'s without ``dim``.
    """
    check_floating(field, "field")
    check_spacing(spacing)
    weights = one_sided_derivative_weights(order, field.dtype).to(field.device)
    interior = _from_end(field, dim, order + 1, side)[..., 1:]  # (..., order)
    sign = 1.0 if side == "left" else -1.0
    return (sign * spacing * flux - interior @ weights[1:]) / weights[0]


@in_field_precision
def apply_boundary_conditions(
    field: Tensor, conditions: BoundaryConditions, spacing: float
) -> Tensor:
    """``field`` with its boundary entries set so the conditions hold exactly.

    Dirichlet ends take the data, Neumann ends the value solved from the stencil, periodic ends
    the average of the two. Usable on the output of any model; the interior is untouched.
    ``spacing`` is the uniform grid step along the axis (only Neumann ends use it).
    """
    check_floating(field, "field")
    conditions.validate(field.shape)
    dim = conditions.dim(field.ndim)
    n = field.shape[dim]
    if conditions.is_periodic:
        left = right = (field.select(dim, 0) + field.select(dim, n - 1)) / 2
    else:
        left = _boundary_entry(field, dim, conditions.left, spacing, "left")
        right = _boundary_entry(field, dim, conditions.right, spacing, "right")
    interior = field.narrow(dim, 1, n - 2)
    return torch.cat([left.unsqueeze(dim), interior, right.unsqueeze(dim)], dim)


def _boundary_entry(
    field: Tensor, dim: int, condition: Dirichlet | Neumann, spacing: float, side: Side
) -> Tensor:
    """The value the boundary entry at ``side`` must take, of the boundary slice's shape."""
    slice_shape = field.select(dim, 0).shape  # (batch, channels, *other)
    if isinstance(condition, Dirichlet):
        target = _boundary_target(field, dim, condition.value, f"Dirichlet data at the {side} end")
        return target.expand(slice_shape)
    flux = _boundary_target(field, dim, condition.value, f"Neumann data at the {side} end")
    return neumann_boundary_value(field, flux, spacing, condition.order, side, dim)


@in_field_precision
def boundary_residuals(
    field: Tensor, conditions: BoundaryConditions, spacing: float
) -> tuple[Tensor, Tensor]:
    """How far ``field`` is from satisfying the conditions, at the left and right ends.

    Dirichlet: ``u - g``; Neumann: stencil derivative ``- g``; periodic: ``u_0 - u_N`` (both).
    Each residual has the boundary slice's shape ``(batch, channels, *other)``.
    """
    check_floating(field, "field")
    dim = conditions.dim(field.ndim)
    n = field.shape[dim]
    if conditions.is_periodic:
        gap = field.select(dim, 0) - field.select(dim, n - 1)
        return gap, gap
    left, right = (
        _residual(field, dim, condition, spacing, side)
        for condition, side in ((conditions.left, "left"), (conditions.right, "right"))
    )
    return left, right


def _residual(
    field: Tensor, dim: int, condition: BoundaryCondition, spacing: float, side: Side
) -> Tensor:
    if isinstance(condition, Dirichlet):
        index = 0 if side == "left" else field.shape[dim] - 1
        target = _boundary_target(field, dim, condition.value, f"Dirichlet data at the {side} end")
        return field.select(dim, index) - target
    assert isinstance(condition, Neumann)
    flux = _boundary_target(field, dim, condition.value, f"Neumann data at the {side} end")
    return one_sided_derivative(field, spacing, condition.order, side, dim) - flux


@dataclass(frozen=True)
class BoundaryEquation:
    """A linear equation on the entries near the ends: ``l(u) = target``.

    ``l(u) = sum_j from_left[j] u_j + sum_j from_right[j] u_{N-j}`` along the constrained axis.
    ``target`` is boundary data (see the module docstring), or ``None`` for "keep the current
    value of ``l(u)``" (the periodic pair keeps the sum of its ends).
    """

    from_left: tuple[float, ...]
    from_right: tuple[float, ...]
    target: BoundaryValue | None
    name: str

    def evaluate(self, field: Tensor, dim: int) -> Tensor:
        """``l(field)`` along ``dim``: the field's shape without ``dim``."""
        total = torch.zeros((), dtype=field.dtype, device=field.device)
        for side, coefficients in (("left", self.from_left), ("right", self.from_right)):
            if coefficients:
                entries = _from_end(field, dim, len(coefficients), side)  # (..., k)
                total = total + entries @ field.new_tensor(coefficients)
        return total

    def row(self, num_points: int, like: Tensor) -> Tensor:
        """``l`` as a row vector over ``num_points`` entries ``(num_points,)``: ``l(u) = row @ u``.

        ``like`` gives dtype and device. On fewer points than the two stencils span, their
        coefficients add where they overlap.
        """
        row = like.new_zeros(num_points)
        row[: len(self.from_left)] += like.new_tensor(self.from_left)
        row[num_points - len(self.from_right) :] += like.new_tensor(self.from_right[::-1])
        return row

    def residual(self, field: Tensor, dim: int) -> Tensor:
        """``target - l(field)``, or zero for a keep-current equation."""
        if self.target is None:
            return torch.zeros((), dtype=field.dtype, device=field.device)
        target = _boundary_target(field, dim, self.target, self.name)
        return target - self.evaluate(field, dim)


def boundary_equations(
    conditions: BoundaryConditions, spacing: float
) -> tuple[BoundaryEquation, BoundaryEquation]:
    """The conditions as two linear equations, each scaled so its boundary entry has weight 1.

    Dirichlet: ``u_0 = g``. Neumann: the stencil divided by ``w_0``, so ``u_0 + ... = h g / w_0``
    (this scaling keeps the equations comparable when solving them together). Periodic:
    ``u_0 - u_N = 0`` and ``u_0 + u_N`` kept, which moves both ends to their average.
    """
    if conditions.is_periodic:
        return (
            BoundaryEquation((1.0,), (-1.0,), target=0.0, name="periodic: equal ends"),
            BoundaryEquation((1.0,), (1.0,), target=None, name="periodic: sum of ends kept"),
        )
    left, right = (
        _end_equation(condition, spacing, side)
        for condition, side in ((conditions.left, "left"), (conditions.right, "right"))
    )
    return left, right


def _end_equation(condition: BoundaryCondition, spacing: float, side: Side) -> BoundaryEquation:
    if isinstance(condition, Dirichlet):
        coefficients: tuple[float, ...] = (1.0,)
        target: BoundaryValue = condition.value
    else:
        assert isinstance(condition, Neumann)
        check_spacing(spacing)
        weights = one_sided_derivative_weights(condition.order)
        coefficients = tuple((weights / weights[0]).tolist())
        sign = 1.0 if side == "left" else -1.0
        target = condition.value * (sign * spacing / float(weights[0]))
    name = f"{type(condition).__name__} data at the {side} end"
    if side == "left":
        return BoundaryEquation(coefficients, (), target, name)
    return BoundaryEquation((), coefficients, target, name)


def boundary_constraint(
    conditions: BoundaryConditions,
    num_points: int,
    spacing: float,
    dtype: torch.dtype = torch.float64,
) -> LinearConstraint:
    """The end conditions of a 1-D field on ``num_points`` uniform points as rows ``G u = b``.

    The rows are those of :func:`boundary_equations`: Dirichlet ``u_0 = g``; Neumann the
    one-sided stencil scaled so its end entry has weight 1; periodic the single row
    ``u_0 - u_N = 0`` (its keep-the-sum partner is not a condition). Stacked with a mass row
    (:func:`lawful.constraints.conservation.stack_constraints`), conditioning a belief on both
    conserves mass without moving the ends off their conditions. Boundary data of shape
    ``(batch,)`` gives values ``(batch, k)``; floats give ``(k,)``. ``G`` is ``(k, n)``.
    """
    if num_points < conditions.min_points():
        raise ValueError(
            f"{num_points} grid points are too few for these conditions; they need at least "
            f"{conditions.min_points()}"
        )
    equations = [eq for eq in boundary_equations(conditions, spacing) if eq.target is not None]
    like = torch.empty((), dtype=dtype)
    weights = torch.stack([eq.row(num_points, like) for eq in equations])  # (k, n)
    targets = [torch.as_tensor(eq.target, dtype=dtype) for eq in equations]
    values = torch.stack(torch.broadcast_tensors(*targets), dim=-1)  # (..., k)
    return LinearConstraint(weights, values)
