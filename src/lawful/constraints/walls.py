"""Boundary conditions on the walls of a field over (x, y): four walls and one rule for corners.

A *wall* is (axis, side): ``x_left`` is x index 0, ``x_right`` x index ``nx - 1``, ``y_left`` y
index 0, ``y_right`` y index ``ny - 1``. Fields are laid out ``(batch, channels, x, y, *other)``
(``*other`` e.g. ``(t,)``): x is dim 2, y is dim 3. :class:`Walls` holds one
:class:`~lawful.constraints.boundary.BoundaryConditions` per constrained axis and sets their
``axis``. Without ``y`` it *is* the 1-D case, the two ends of x, and every function here is its
1-D counterpart in lawful.constraints.boundary.

Boundary data per wall is what :class:`BoundaryConditions` accepts along its axis: a float, a
tensor ``()`` or ``(batch,)``, or one value per point of the wall (and frame): ``(batch, ny)``
or ``(batch, ny, T)`` for an x wall, ``(batch, nx)`` or ``(batch, nx, T)`` for a y wall.

**Corners.** Each corner lies on one x wall and one y wall and gets *one* condition, the
winner's: Dirichlet beats Neumann beats periodic, and between equal kinds the x wall wins. The
losing wall's condition is not imposed at that corner, everywhere in lawful: :func:`apply_walls`
does not enforce it there, :func:`wall_residuals` reports zero there, and the equations
(:func:`wall_equations`, hence BOON's joint system and :func:`walls_constraint`) have no row
for it. What that means per pair of kinds:

- Dirichlet and Dirichlet: both walls give the corner's value, so their data must agree there
  (to ``sqrt(eps)`` of the larger of the two), else :meth:`Walls.validate` raises naming the
  corner; the x wall's value is used.
- Dirichlet and Neumann (either way round): the Dirichlet value; the Neumann stencil does not
  hold at the corner, so there is nothing to be consistent and nothing to check.
- Neumann and Neumann: the x wall's stencil, along x.
- periodic and Dirichlet or Neumann: the other wall's condition; the periodic pair of that row
  does not hold at its two corners. Periodic on both axes: the x pairs; :func:`apply_walls` then
  makes all four corners equal, so the y pairs hold there too.

Every grid index is x-major where the (x, y) grid is flattened: ``i * ny + j``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor

from lawful.constraints._checks import rounding_tolerance
from lawful.constraints.boundary import (
    BoundaryCondition,
    BoundaryConditions,
    BoundaryEquation,
    BoundaryValue,
    Dirichlet,
    Neumann,
    Periodic,
    Side,
    apply_boundary_conditions,
    boundary_constraint,
    boundary_equations,
    boundary_residuals,
)
from lawful.constraints.conservation import LinearConstraint

__all__ = [
    "WALL_NAMES",
    "X_DIM",
    "Y_DIM",
    "WallEquations",
    "WallLine",
    "Walls",
    "apply_walls",
    "wall_equations",
    "wall_residuals",
    "walls_constraint",
]

Axis = Literal["x", "y"]
X_DIM, Y_DIM = 2, 3  # the x and y axes of a field (batch, channels, x, y, *other)
WALL_NAMES = ("x_left", "x_right", "y_left", "y_right")
_PRIORITY = {Dirichlet: 2, Neumann: 1, Periodic: 0}


def _priority(condition: BoundaryCondition) -> int:
    return _PRIORITY[type(condition)]


def _at(value: BoundaryValue, index: int | Tensor) -> BoundaryValue:
    """Wall data at points along the wall: ``(batch, n, *other)`` -> ``(batch, *other)`` for an
    int, ``(batch, k, *other)`` for an index tensor; floats, ``()`` and ``(batch,)`` are the
    same at every point."""
    if not isinstance(value, Tensor) or value.ndim < 2:
        return value
    if isinstance(index, int):
        return value.select(1, index)
    return value.index_select(1, index.to(value.device))


@dataclass(frozen=True)
class Walls:
    """The conditions on the x walls and, optionally, the y walls (module docstring).

    ``x`` and ``y`` get ``axis`` 2 and 3 whatever they had. ``Walls(x=conditions)`` is the 1-D
    case.
    """

    x: BoundaryConditions
    y: BoundaryConditions | None = None

    def __post_init__(self) -> None:
        # Frozen: the axes are set through object.__setattr__.
        object.__setattr__(self, "x", replace(self.x, axis=X_DIM))
        if self.y is not None:
            object.__setattr__(self, "y", replace(self.y, axis=Y_DIM))

    @property
    def axes(self) -> tuple[tuple[Axis, BoundaryConditions], ...]:
        """``(axis name, conditions)`` for each constrained axis, x first."""
        if self.y is None:
            return (("x", self.x),)
        return (("x", self.x), ("y", self.y))

    @property
    def names(self) -> tuple[str, ...]:
        """The walls present: ``x_left, x_right`` and, with y, ``y_left, y_right``."""
        return WALL_NAMES[: 2 * len(self.axes)]

    def condition(self, name: str) -> BoundaryCondition:
        """The condition on wall ``name`` (one of :data:`WALL_NAMES`)."""
        axis, side = _split(name)
        conditions = self.x if axis == "x" else self.y
        if conditions is None:
            raise ValueError(f"these walls constrain x only; there is no {name} wall")
        return conditions.left if side == "left" else conditions.right

    def data(self) -> dict[str, BoundaryValue | None]:
        """Each wall's boundary data (``None`` on a periodic wall)."""
        values: dict[str, BoundaryValue | None] = {}
        for name in self.names:
            condition = self.condition(name)
            values[name] = None if isinstance(condition, Periodic) else condition.value
        return values

    def x_wins(self, x_side: Side, y_side: Side) -> bool:
        """Whether the x wall's condition is the one imposed at the corner (x_side, y_side)."""
        if self.y is None:
            return True
        x_condition = self.condition(f"x_{x_side}")
        return _priority(x_condition) >= _priority(self.condition(f"y_{y_side}"))

    def imposed(self, name: str, n: int) -> Tensor:
        """``(n,)`` bool along wall ``name`` of ``n`` points: where its condition is imposed,
        i.e. everywhere but the corners it loses."""
        mask = torch.ones(n, dtype=torch.bool)
        if self.y is None:
            return mask
        axis, side = _split(name)
        for end, other_side in ((0, "left"), (n - 1, "right")):
            x_side, y_side = (side, other_side) if axis == "x" else (other_side, side)
            if self.x_wins(x_side, y_side) != (axis == "x"):
                mask[end] = False
        return mask

    def with_values(
        self,
        x_left: BoundaryValue | None = None,
        x_right: BoundaryValue | None = None,
        y_left: BoundaryValue | None = None,
        y_right: BoundaryValue | None = None,
        *,
        left: BoundaryValue | None = None,
        right: BoundaryValue | None = None,
    ) -> Walls:
        """The same walls with new data on the walls given (``None`` keeps the old). In 1-D
        ``left`` and ``right`` name the x walls, as in
        :meth:`BoundaryConditions.with_values`."""
        if left is not None or right is not None:
            if self.y is not None:
                raise ValueError(
                    "left/right are ambiguous with walls on x and y: name the walls "
                    "(x_left, x_right, y_left, y_right)"
                )
            if x_left is not None or x_right is not None:
                raise ValueError("give the x walls' data once: as left/right or x_left/x_right")
            x_left, x_right = left, right
        if self.y is None and (y_left is not None or y_right is not None):
            raise ValueError("these walls constrain x only; they take no y_left/y_right data")
        x = self.x.with_values(x_left, x_right)
        y = None if self.y is None else self.y.with_values(y_left, y_right)
        return Walls(x, y)

    def select(self, dim: int, index: Tensor) -> Walls:
        """The walls of ``field.index_select(dim, index)``, a field cut along x (dim 2) or y
        (dim 3) to the points ``index``, both ends of that axis among them: the other axis's
        walls keep the data at those points."""
        if dim == X_DIM and self.y is not None:
            y = self.y.with_values(*(_selected(self.y, side, index) for side in ("left", "right")))
            return Walls(self.x, y)
        if dim == Y_DIM:
            x = self.x.with_values(*(_selected(self.x, side, index) for side in ("left", "right")))
            return Walls(x, self.y)
        return self

    def check_grid(self, grid_shape: Sequence[int]) -> None:
        """Raise ``ValueError`` unless the grid ``(nx[, ny])`` has points enough along each
        constrained axis for its conditions (:meth:`BoundaryConditions.min_points`)."""
        for (axis, conditions), n in zip(self.axes, grid_shape, strict=False):
            if n < conditions.min_points():
                raise ValueError(
                    f"a grid of {n} points along {axis} is too short for the {axis} walls "
                    f"({type(conditions.left).__name__}, {type(conditions.right).__name__}); "
                    f"they need at least {conditions.min_points()} points"
                )

    def validate(self, field_shape: Sequence[int]) -> None:
        """Raise ``ValueError`` unless the walls fit a field of this shape: x (and y) axes, grids
        long enough for the stencils, wall data of an accepted shape, and Dirichlet data that
        agree at every corner where two Dirichlet walls meet."""
        field_shape = torch.Size(field_shape)
        least = 2 + len(self.axes)
        if len(field_shape) < least:
            axes = ", ".join(axis for axis, _ in self.axes)
            raise ValueError(
                f"walls on {axes} need a field (batch, channels, {axes}, ...), got shape "
                f"{tuple(field_shape)}"
            )
        self.check_grid(field_shape[X_DIM:])
        for axis, conditions in self.axes:
            try:
                conditions.validate(field_shape)
            except ValueError as error:
                raise ValueError(f"{axis} walls: {error}") from None
        if self.y is not None:
            self.check_corners(field_shape[X_DIM], field_shape[Y_DIM])

    def check_corners(self, nx: int, ny: int) -> None:
        """Raise ``ValueError`` where two Dirichlet walls give their shared corner different
        values (module docstring)."""
        for x_side, i in (("left", 0), ("right", nx - 1)):
            for y_side, j in (("left", 0), ("right", ny - 1)):
                x_wall, y_wall = self.condition(f"x_{x_side}"), self.condition(f"y_{y_side}")
                if isinstance(x_wall, Dirichlet) and isinstance(y_wall, Dirichlet):
                    _check_agreement(
                        _at(x_wall.value, j),
                        _at(y_wall.value, i),
                        f"x_{x_side}",
                        f"y_{y_side}",
                        _magnitude(x_wall.value, y_wall.value),
                    )


def _split(name: str) -> tuple[Axis, Side]:
    if name not in WALL_NAMES:
        raise ValueError(f"unknown wall {name!r}; walls are {', '.join(WALL_NAMES)}")
    axis, side = name.split("_")
    return axis, side  # type: ignore[return-value]


def _selected(conditions: BoundaryConditions, side: Side, index: Tensor) -> BoundaryValue | None:
    condition = conditions.left if side == "left" else conditions.right
    return None if isinstance(condition, Periodic) else _at(condition.value, index)


def _magnitude(*values: BoundaryValue) -> float:
    """The largest magnitude of the walls' data: the scale their rounding is relative to."""
    return max(float(torch.as_tensor(value, dtype=torch.float64).abs().max()) for value in values)


def _check_agreement(
    x_value: BoundaryValue, y_value: BoundaryValue, x_name: str, y_name: str, scale: float
) -> None:
    """Raise unless two walls' Dirichlet data at their shared corner agree (module docstring),
    to rounding relative to ``scale``, the walls' data's magnitude: sin(pi y) reaches 1.2e-16
    where a neighbouring wall's data is 0."""
    a, b = torch.broadcast_tensors(
        *(torch.as_tensor(v, dtype=torch.float64) for v in (x_value, y_value))
    )
    gap = (a - b).abs()
    # The coarser of the two data's precisions decides what counts as agreement.
    dtypes = [v.dtype for v in (x_value, y_value) if isinstance(v, Tensor)] or [torch.float64]
    tolerance = max(rounding_tolerance(dtype) for dtype in dtypes)
    if bool((gap > tolerance * scale).any()):
        worst = tuple(int(i) for i in torch.nonzero(gap == gap.max())[0])
        where = f" at data index {worst}" if worst else ""
        raise ValueError(
            f"Dirichlet data disagree at the corner of {x_name} and {y_name}{where}: {x_name} "
            f"gives {float(a[worst]):.6g}, {y_name} gives {float(b[worst]):.6g}; a corner has "
            "one value (see lawful.constraints.walls)"
        )


def _spacings(walls: Walls, spacings: float | Sequence[float]) -> tuple[float, ...]:
    """One grid step per constrained axis; a single number serves every axis."""
    if isinstance(spacings, int | float):
        return tuple(float(spacings) for _ in walls.axes)
    spacings = tuple(float(s) for s in spacings)
    if len(spacings) != len(walls.axes):
        raise ValueError(
            f"need one grid spacing per constrained axis ({len(walls.axes)}), got {spacings}"
        )
    return spacings


def _corner_mask(walls: Walls, nx: int, ny: int, device: torch.device) -> Tensor:
    """``(nx, ny)`` bool: the corners whose condition is the x wall's."""
    mask = torch.zeros(nx, ny, dtype=torch.bool, device=device)
    for x_side, i in (("left", 0), ("right", nx - 1)):
        for y_side, j in (("left", 0), ("right", ny - 1)):
            mask[i, j] = walls.x_wins(x_side, y_side)
    return mask


def apply_walls(
    field: Tensor, walls: Walls, spacings: float | Sequence[float], *, validated: bool = False
) -> Tensor:
    """``field`` with its wall entries set so that every wall's condition holds exactly where
    the corner rule imposes it; the interior is untouched.

    The 1-D :func:`~lawful.constraints.boundary.apply_boundary_conditions` per axis, losers
    first and winners last: the x walls, then the y walls (which so win every corner), then the
    x walls again at the corners they win. Why each condition survives the later steps: a
    condition at a non-corner entry reads only the interior and its own axis's wall entries
    (the stencils stop short of the opposite wall), which the other axis's step never writes;
    a corner's condition reads the corner and the other axis's non-corner wall entries, final
    once both axes are applied. ``spacings``: the grid step along x and y (one number for
    both); only Neumann walls use them. ``validated``: the walls were checked against the whole
    field already (BOON checks them once per forward pass, then applies them to strips along
    the walls, where the corner data's scale is no longer in view).
    """
    if not validated:
        walls.validate(field.shape)
    hx, *hy = _spacings(walls, spacings)
    result = apply_boundary_conditions(field, walls.x, hx)
    if walls.y is None:
        return result
    result = apply_boundary_conditions(result, walls.y, hy[0])
    nx, ny = field.shape[X_DIM], field.shape[Y_DIM]
    x_corners = _corner_mask(walls, nx, ny, field.device)
    if not bool(x_corners.any()):
        return result
    x_again = apply_boundary_conditions(result, walls.x, hx)
    mask = x_corners.view(nx, ny, *(1 for _ in field.shape[Y_DIM + 1 :]))  # (nx, ny, 1...)
    return torch.where(mask, x_again, result)


def wall_residuals(
    field: Tensor, walls: Walls, spacings: float | Sequence[float]
) -> dict[str, Tensor]:
    """How far ``field`` is from meeting each wall's condition: wall name -> residual of the
    wall's slice shape ``(batch, channels, n_along, *other)`` (1-D
    :func:`~lawful.constraints.boundary.boundary_residuals`), zero at the corners the wall
    loses."""
    walls.validate(field.shape)
    residuals = {}
    for (axis, conditions), spacing in zip(walls.axes, _spacings(walls, spacings), strict=True):
        for side, residual in zip(
            ("left", "right"), boundary_residuals(field, conditions, spacing), strict=True
        ):
            name = f"{axis}_{side}"
            if walls.y is not None:  # no corners in 1-D
                imposed = walls.imposed(name, residual.shape[2]).to(field.device)
                imposed = imposed.view(-1, *(1 for _ in residual.shape[3:]))  # (n_along, 1...)
                residual = torch.where(imposed, residual, 0)
            residuals[name] = residual
    return residuals


@dataclass(frozen=True)
class WallLine:
    """One wall's equations: its 1-D ``equation`` along the wall's normal axis (field ``dim``),
    imposed at the points ``along`` the wall (every point but the corners it loses)."""

    name: str
    dim: int
    side: Side
    equation: BoundaryEquation
    along: Tensor  # (k,) int64


@dataclass(frozen=True)
class WallEquations:
    """The wall conditions of an ``(nx, ny)`` grid as one linear equation per wall entry.

    Equation ``e`` belongs to the wall entry ``entries[e]`` (flat, x-major), whose
    coefficient in it is 1; it reads ``l_e(u) = sum_r coefficients[e, r] u[positions[e, r]]``
    (rows padded with zero coefficients). A corner is one entry with one equation, its
    winner's; a periodic pair is two entries with the pair's two equations (equal ends, owned
    by the left entry; sum kept, by the right). Equations are ordered by wall (``lines``), then
    along the wall. ``imposed`` is false for the keep-the-sum equations, which are no condition.
    """

    grid: tuple[int, int]
    lines: tuple[WallLine, ...]
    entries: Tensor  # (m,) int64
    positions: Tensor  # (m, reach) int64
    coefficients: Tensor  # (m, reach) float64
    imposed: Tensor  # (m,) bool

    @property
    def size(self) -> int:
        """``m``: the number of equations, one per wall entry."""
        return self.entries.numel()


def wall_equations(
    walls: Walls, grid_shape: Sequence[int], spacings: float | Sequence[float]
) -> WallEquations:
    """The walls' conditions on a grid ``(nx, ny)`` as :class:`WallEquations`, built from the
    1-D :func:`~lawful.constraints.boundary.boundary_equations` of each axis (the Neumann rows
    scaled so the wall entry has weight 1)."""
    nx, ny = grid_shape
    walls.check_grid((nx, ny))
    if walls.y is not None:
        walls.check_corners(nx, ny)
    lines, entries, positions, coefficients, imposed = [], [], [], [], []
    for (axis, conditions), spacing in zip(walls.axes, _spacings(walls, spacings), strict=True):
        n_normal, n_along = (nx, ny) if axis == "x" else (ny, nx)
        for side, equation in zip(
            ("left", "right"), boundary_equations(conditions, spacing), strict=True
        ):
            name = f"{axis}_{side}"
            along = torch.nonzero(walls.imposed(name, n_along)).squeeze(-1)  # (k,)
            lines.append(WallLine(name, X_DIM if axis == "x" else Y_DIM, side, equation, along))
            row = equation.row(n_normal, torch.empty((), dtype=torch.float64))  # (n_normal,)
            normal = torch.nonzero(row).squeeze(-1)  # (r,): the points the row reads
            own = torch.full_like(along, 0 if side == "left" else n_normal - 1)  # (k,)
            entries.append(_flat(axis, own, along, ny))
            positions.append(_flat(axis, normal.unsqueeze(0), along.unsqueeze(1), ny))  # (k, r)
            coefficients.append(row[normal].expand(len(along), -1))  # (k, r)
            imposed.append(torch.full((len(along),), equation.target is not None))
    reach = max(p.shape[1] for p in positions)
    # Pad short rows with zero coefficients at their own entry, so every row has `reach` terms.
    positions = [
        torch.cat([p, e.unsqueeze(1).expand(-1, reach - p.shape[1])], 1)
        for p, e in zip(positions, entries, strict=True)
    ]
    coefficients = [torch.nn.functional.pad(c, (0, reach - c.shape[1])) for c in coefficients]
    return WallEquations(
        (nx, ny),
        tuple(lines),
        torch.cat(entries),
        torch.cat(positions),
        torch.cat(coefficients),
        torch.cat(imposed),
    )


def _flat(axis: Axis, normal: Tensor, along: Tensor, ny: int) -> Tensor:
    """The x-major flat index ``i ny + j`` of the points ``normal`` to and ``along`` a wall."""
    return normal * ny + along if axis == "x" else along * ny + normal


def _line_targets(line: WallLine, n_along: int, dtype: torch.dtype) -> Tensor:
    """The targets of a line's imposed equations, ``(..., k)``: ``(k,)`` from a float or a
    ``()`` tensor, ``(batch, k)`` from ``(batch,)`` or ``(batch, n_along)`` data,
    ``(batch, T, k)`` from ``(batch, n_along, T)``."""
    target = torch.as_tensor(line.equation.target, dtype=dtype)
    if target.ndim == 0:
        target = target.expand(n_along)
    elif target.ndim == 1:
        target = target.unsqueeze(-1).expand(-1, n_along)  # (batch, n_along)
    elif target.ndim <= 3 and target.shape[1] == n_along:
        target = target.movedim(1, -1)  # (batch, [T,] n_along)
    else:
        raise ValueError(
            f"{line.equation.name} of the {line.name} wall: data of shape {tuple(target.shape)} "
            f"does not give one value per point of a wall of {n_along} points"
        )
    return target.index_select(-1, line.along)


def walls_constraint(
    walls: Walls,
    grid_shape: Sequence[int],
    spacings: float | Sequence[float],
    dtype: torch.dtype = torch.float64,
) -> LinearConstraint:
    """The wall conditions of a field on ``grid_shape`` ``(nx, ny)``, flattened x-major, as rows
    ``G u = b`` (``(nx,)`` with 1-D walls: :func:`~lawful.constraints.boundary.
    boundary_constraint`).

    One row per wall entry it constrains, by the corner rule: Dirichlet ``u = g``, Neumann the
    one-sided stencil scaled so the wall entry has weight 1, periodic one row ``u_0 - u_N = 0``
    per pair. ``G`` is ``(k, nx ny)``; values are ``(k,)`` from float data, ``(batch, k)`` from
    ``(batch,)`` or ``(batch, n_along)`` data and ``(batch, T, k)`` from ``(batch, n_along, T)``
    (a belief with batch axes ``(batch, T)``). Conditioning a belief on it (with a mass row:
    :func:`~lawful.constraints.conservation.stack_constraints`) gives exact walls.
    """
    if walls.y is None and len(grid_shape) == 1:
        return boundary_constraint(walls.x, grid_shape[0], _spacings(walls, spacings)[0], dtype)
    equations = wall_equations(walls, grid_shape, spacings)
    nx, ny = equations.grid
    imposed = equations.imposed
    weights = torch.zeros(int(imposed.sum()), nx * ny, dtype=dtype)  # (k, nx ny)
    weights.scatter_add_(1, equations.positions[imposed], equations.coefficients[imposed].to(dtype))
    targets = [
        _line_targets(line, ny if line.dim == X_DIM else nx, dtype)
        for line in equations.lines
        if line.equation.target is not None
    ]
    lead = torch.broadcast_shapes(*(t.shape[:-1] for t in targets))
    values = torch.cat([t.expand(*lead, t.shape[-1]) for t in targets], -1)  # (..., k)
    return LinearConstraint(weights, values)
