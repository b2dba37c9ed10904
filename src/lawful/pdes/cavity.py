"""The lid-driven cavity: 2-D incompressible Navier-Stokes in the unit square, batched in torch.

    u_t + (u . grad) u = -grad p + (1 / Re) lap u,   div u = 0   in (0, 1)^2,

with the lid y = 1 moving in +x at speed U(t) and the other three walls at rest (no slip, no
penetration), from rest with the lid started impulsively at U(0). Lengths are in units of the box
and speeds in units of a reference speed 1, so ``reynolds`` is 1 / viscosity: for a lid at unit
(mean) speed it is the usual lid Reynolds number.

Formulation: vorticity and stream function on the collocated n x n node grid
x_i = i / (n - 1), y_j = j / (n - 1), walls included:

    w_t + u w_x + v w_y = (1 / Re) lap w,   -lap psi = w,   u = psi_y,   v = -psi_x,
    psi = 0 on the walls.

Why this and not a projection method on a staggered (MAC) grid: the operator we train sees the
velocity on the node grid with Dirichlet walls, and this formulation produces exactly that field,
with no interpolation. ``u = D_y psi``, ``v = -D_x psi`` (central differences) at interior nodes,
with the wall data set exactly at wall nodes, make the central-difference divergence
``D_x u + D_y v`` vanish identically at every interior node: the difference operators commute,
and psi = 0 along the walls makes the psi-derived wall velocities agree with the wall data where
the stencil reads them. Round-off, not discretisation error. A MAC grid is divergence-free on its
cells instead, and its interpolation to the nodes is neither divergence-free nor exact at the
walls. The price is one Poisson solve per stage, which the type-I discrete sine transform
diagonalises (psi = 0 on the walls; ``torch.fft``, batched, any device).

Space, second order:

- interior: the 5-point Laplacian for ``lap w`` and ``lap psi``; central differences for
  ``u w_x + v w_y`` (advective form) and for ``u, v``;
- wall vorticity: Thom's formula ``w_wall = -2 psi_adjacent / h^2 - 2 u_tangential / h`` (the
  tangential speed is U on the lid, 0 elsewhere); locally first order, globally second order
  (Huang and Wetton, 1996). Summed by the trapezoid rule, the vorticity's total is then exactly
  ``-(n - 2) h U``, the trapezoid circulation of the wall data (Stokes' theorem on the grid);
- corners belong to the walls at rest: u = v = w = 0 at all four corners, so the lid's wall data
  is U(t) at its n - 2 interior nodes. At the lid's corners the velocity jumps; the error next to
  them does not shrink with h (the corner flow is self-similar), so orders hold away from them.

Time: the classical fourth-order Runge-Kutta method on the interior vorticity, the wall vorticity
recomputed from each stage's stream function and lid speed; fourth order. The step obeys both
explicit limits, advective ``dt (|u| + |v|) / h <= 2 sqrt(2)`` and diffusive
``8 dt / (Re h^2) <= 2.785`` (RK4's reach up the imaginary and along the negative real axis),
combined, with a safety factor, for the largest lid speed met (in a cavity the fastest fluid
moves with its lid).

Arrays are indexed ``[..., x, y]`` (``torch.meshgrid(x, y, indexing="ij")``): ``u[b, k, i, j]``
is u at (x_i, y_j) of sample b at output time t_k; the lid is ``[..., :, -1]``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional

from lawful.constraints.boundary import BoundaryConditions, Dirichlet
from lawful.constraints.conservation import LinearConstraint, stack_constraints
from lawful.constraints.quadrature import trapezoid_weights
from lawful.constraints.walls import Walls, walls_constraint

__all__ = [
    "CAVITY_WALLS",
    "MIN_POINTS",
    "CavityFlow",
    "LidSpeed",
    "OscillatingLid",
    "SteadyCavity",
    "cavity_constraint",
    "cut_flux_weights",
    "cut_fluxes",
    "divergence",
    "sample_cavity_flows",
    "solve_cavity",
    "stable_time_step",
    "steady_cavity",
    "vorticity",
    "wall_velocity",
]

LidSpeed = Callable[[float], Tensor]
"""Time -> lid speed U(t) of every sample, shape (batch,) (a scalar is broadcast)."""

MIN_POINTS = 5
"""The smallest grid: 3 x 3 interior nodes."""

# RK4's stability region reaches 2 sqrt(2) up the imaginary axis and 2.785 along the negative real
# axis. The step keeps dt * (advective rate / the first + diffusive rate / the second) at _SAFETY:
# measured, steps 1.3 times as long are still stable where diffusion dominates (Re = 10, n = 33)
# and twice as long where advection does (Re >= 1000).
_RK4_IMAGINARY_REACH = 2 * math.sqrt(2)
_RK4_REAL_REACH = 2.785
_SAFETY = 0.8

# The automatic step depends on the largest lid speed met at a stage, which depends on the step:
# planning is repeated until the two agree, at most this often.
_MAX_PLANS = 8


@dataclass(frozen=True)
class CavityFlow:
    """Transient cavity flows of a batch at the output times.

    ``u``, ``v``, ``vorticity``: (batch, T, n, n), indexed [sample, time, x, y]. The walls hold
    exactly the wall data: ``u[..., 1:-1, -1] == lid_speed[..., None]``; every other wall value
    of u and v, the four corners included, is 0. ``vorticity`` is the solver's: evolved inside,
    Thom's formula on the walls.
    """

    u: Tensor
    v: Tensor
    vorticity: Tensor
    lid_speed: Tensor  # (batch, T): U at each output time
    reynolds: Tensor  # (batch,)
    x: Tensor  # (n,)
    y: Tensor  # (n,)
    t: Tensor  # (T,)
    dt: float  # the longest time step taken


@dataclass(frozen=True)
class SteadyCavity:
    """The steady cavity at unit lid speed: fields (n, n) indexed [x, y], and how steady it is.

    ``change_rate``: the relative change of the velocity per unit time over the last check
    interval s, ``max |(u, v)(t) - (u, v)(t - s)| / (s max |(u, v)(t)|)``, below the tolerance.
    """

    u: Tensor
    v: Tensor
    vorticity: Tensor
    x: Tensor
    y: Tensor
    reynolds: float
    time: float  # when the change rate fell below the tolerance
    change_rate: float
    dt: float


@dataclass(frozen=True)
class OscillatingLid:
    """``U(t) = mean_speed * (1 + amplitude * sin(2 pi frequency t))``, parameters (batch,)."""

    mean_speed: Tensor
    amplitude: Tensor
    frequency: Tensor

    def __call__(self, t: float) -> Tensor:
        return self.mean_speed * (1 + self.amplitude * torch.sin(2 * math.pi * self.frequency * t))


def stable_time_step(spacing: float, reynolds: float, speed: float) -> float:
    """The automatic RK4 step on a grid of ``spacing`` for the smallest Reynolds number and the
    largest lid speed of a batch."""
    advective_rate = math.sqrt(2) * speed / spacing  # bounds (|u| + |v|) / h when |(u, v)| <= speed
    diffusive_rate = 8 / (reynolds * spacing**2)  # the largest eigenvalue of -lap / Re
    return _SAFETY / (advective_rate / _RK4_IMAGINARY_REACH + diffusive_rate / _RK4_REAL_REACH)


def solve_cavity(
    reynolds: Tensor,
    lid_speed: LidSpeed,
    n: int,
    times: Tensor,
    dt: float | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> CavityFlow:
    """Cavity flows from rest for Reynolds numbers ``reynolds`` (batch,) and lid speeds U(t).

    ``times`` (T,): increasing output times, ``times[0] >= 0`` (t = 0 gives the fluid at rest
    with the lid started). ``dt``: the longest step; by default :func:`stable_time_step` for the
    batch's smallest Reynolds number and largest lid speed at any stage, so a sample's values
    depend on its batch at the level of the time error (pass ``dt`` to make them independent).
    Each interval between output times is split into equal steps no longer than ``dt``.
    """
    reynolds = _check_reynolds(reynolds)
    times = _check_times(times)
    grid = _CavityGrid(n, dtype, device)
    lid = _LidEvaluator(lid_speed, reynolds.numel(), dtype, grid.device)
    boundaries = [0.0, *times.tolist()]
    if dt is None:
        speed = max(float(lid(t).abs().max()) for t in boundaries)
        for _ in range(_MAX_PLANS):
            intervals = _plan(
                boundaries, stable_time_step(grid.spacing, float(reynolds.min()), speed), lid
            )
            met = max(float(interval.lid_speeds.abs().max()) for interval in intervals)
            if met <= speed * (1 + 1e-9):
                break
            speed = met
    else:
        intervals = _plan(boundaries, _check_step(dt), lid)
    viscosity = (1 / reynolds).to(dtype=dtype, device=grid.device)[:, None, None]  # (B, 1, 1)
    vorticity = grid.nodes.new_zeros(reynolds.numel(), n - 2, n - 2)  # (B, N, N) interior
    frames = []
    for interval in intervals:
        vorticity = _march(grid, viscosity, vorticity, interval)
        frames.append(grid.fields(vorticity, interval.lid_speeds[-1]))
    u, v, w = (torch.stack(field, dim=1) for field in zip(*frames, strict=True))  # (B, T, n, n)
    return CavityFlow(
        u=u,
        v=v,
        vorticity=w,
        lid_speed=torch.stack([interval.lid_speeds[-1] for interval in intervals], dim=1),
        reynolds=reynolds,
        x=grid.nodes,
        y=grid.nodes,
        t=times,
        dt=max(interval.step for interval in intervals),
    )


def steady_cavity(
    reynolds: float,
    n: int,
    tolerance: float = 1e-4,
    max_time: float = 200.0,
    check_interval: float = 1.0,
    dt: float | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> SteadyCavity:
    """March the cavity at unit lid speed from rest until the velocity's relative change per unit
    time over ``check_interval`` falls below ``tolerance``; ``RuntimeError`` if ``max_time``
    passes first."""
    reynolds = float(_check_reynolds(torch.tensor([reynolds])))
    if not tolerance > 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    if not 0 < check_interval <= max_time:
        raise ValueError(
            f"check_interval must be in (0, max_time = {max_time}], got {check_interval}"
        )
    grid = _CavityGrid(n, dtype, device)
    max_dt = stable_time_step(grid.spacing, reynolds, 1.0) if dt is None else _check_step(dt)
    lid = _LidEvaluator(lambda t: torch.ones(()), 1, dtype, grid.device)
    viscosity = torch.full((1, 1, 1), 1 / reynolds, dtype=dtype, device=grid.device)
    vorticity = grid.nodes.new_zeros(1, n - 2, n - 2)  # (1, N, N) interior
    velocity = grid.nodes.new_zeros(2, n, n)  # (u; v)
    taken = 0
    for check in range(1, math.ceil(max_time / check_interval - 1e-9) + 1):
        (interval,) = _plan(
            [(check - 1) * check_interval, check * check_interval], max_dt, lid, taken
        )
        taken += interval.count
        vorticity = _march(grid, viscosity, vorticity, interval)
        u, v, w = grid.fields(vorticity, interval.lid_speeds[-1])  # (1, n, n) each
        previous, velocity = velocity, torch.cat([u, v])  # (2, n, n)
        change = (velocity - previous).abs().max() / velocity.abs().max()
        change_rate = float(change) / check_interval
        if change_rate < tolerance:
            return SteadyCavity(
                u=u[0],
                v=v[0],
                vorticity=w[0],
                x=grid.nodes,
                y=grid.nodes,
                reynolds=reynolds,
                time=check * check_interval,
                change_rate=change_rate,
                dt=interval.step,
            )
    raise RuntimeError(
        f"the cavity at Re = {reynolds}, n = {n} is not steady by t = {max_time}: its velocity "
        f"still changes by {change_rate:.3g} of itself per unit time (tolerance {tolerance}); "
        "raise max_time or the tolerance"
    )


def sample_cavity_flows(
    num_samples: int,
    n: int,
    times: Tensor,
    generator: torch.Generator,
    reynolds_range: tuple[float, float] = (100.0, 1000.0),
    amplitude_range: tuple[float, float] = (0.0, 0.5),
    frequency_range: tuple[float, float] = (0.1, 1.0),
    mean_speed: float = 1.0,
    dt: float | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[CavityFlow, OscillatingLid]:
    """Cavity flows for independent uniform draws of the Reynolds number and of an
    :class:`OscillatingLid`'s amplitude and frequency (its mean speed is ``mean_speed``)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")

    def draw(bounds: tuple[float, float]) -> Tensor:  # (num_samples,)
        low, high = bounds
        if not low <= high:
            raise ValueError(f"a range must be (low, high) with low <= high, got {bounds}")
        return low + (high - low) * torch.rand(
            num_samples, generator=generator, dtype=torch.float64
        )

    reynolds, amplitude, frequency = map(draw, (reynolds_range, amplitude_range, frequency_range))
    lid = OscillatingLid(
        mean_speed=torch.full((num_samples,), float(mean_speed), dtype=torch.float64),
        amplitude=amplitude,
        frequency=frequency,
    )
    return solve_cavity(reynolds, lid, n, times, dt=dt, dtype=dtype, device=device), lid


def divergence(u: Tensor, v: Tensor, spacing: float) -> Tensor:
    """``u_x + v_y`` by central differences at the interior nodes: (..., n, n) -> (..., n-2, n-2).

    Second order; also the divergence this solver's discretisation makes vanish (its velocities
    are central differences of one stream function), so for its fields it is round-off.
    """
    u_x = (u[..., 2:, 1:-1] - u[..., :-2, 1:-1]) / (2 * spacing)  # (..., n-2, n-2)
    v_y = (v[..., 1:-1, 2:] - v[..., 1:-1, :-2]) / (2 * spacing)
    return u_x + v_y


def cut_flux_weights(n: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Quadrature weights along a cut of the n-node grid (n odd): ``2h`` on the odd nodes, 0 on
    the even ones, the walls among them (the midpoint rule on cells of width 2h; second order).

    The rule consistent with this solver: its velocity is a central difference of psi, so
    ``sum_j w_j u_ij = sum_{j odd} (psi_i,j+1 - psi_i,j-1)`` telescopes to wall values of psi,
    which are 0. Its flows carry no net flux through any cut, to round-off, by this rule.
    """
    if n < MIN_POINTS or n % 2 == 0:
        raise ValueError(
            f"the odd-node rule needs an odd number of points >= {MIN_POINTS}, got {n}"
        )
    weights = torch.zeros(n, dtype=dtype)
    weights[1::2] = 2 / (n - 1)
    return weights


def cut_fluxes(
    u: Tensor,
    v: Tensor,
    x: Tensor,
    y: Tensor,
    rule: Literal["trapezoid", "odd-nodes"] = "trapezoid",
) -> tuple[Tensor, Tensor]:
    """Net flux through every cut: ``integral of u dy`` at each x_i and ``integral of v dx`` at
    each y_j, each (..., n); zero for any flow in a closed box.

    ``rule="odd-nodes"``: :func:`cut_flux_weights` (uniform grids, n odd), by which this
    solver's flows have zero flux to round-off. By the trapezoid rule they keep about h^2 / 4
    times the walls' shear, O(h) under a shear layer the grid does not resolve.
    """
    if rule == "odd-nodes":
        weights_x, weights_y = cut_flux_weights(x.numel()), cut_flux_weights(y.numel())
    elif rule == "trapezoid":
        weights_x, weights_y = trapezoid_weights(x), trapezoid_weights(y)
    else:
        raise ValueError(f"rule must be 'trapezoid' or 'odd-nodes', got {rule!r}")
    through_vertical_cuts = u @ weights_y.to(u)  # (..., n_x, n_y) @ (n_y,)
    through_horizontal_cuts = weights_x.to(v) @ v  # (n_x,) @ (..., n_x, n_y)
    return through_vertical_cuts, through_horizontal_cuts


def vorticity(u: Tensor, v: Tensor, spacing: float) -> Tensor:
    """``v_x - u_y`` by central differences at the interior nodes: (..., n, n) -> (..., n-2,
    n-2). The vorticity a model's velocity implies (the solver's own also has wall values)."""
    v_x = (v[..., 2:, 1:-1] - v[..., :-2, 1:-1]) / (2 * spacing)  # (..., n-2, n-2)
    u_y = (u[..., 1:-1, 2:] - u[..., 1:-1, :-2]) / (2 * spacing)
    return v_x - u_y


CAVITY_WALLS = Walls(
    x=BoundaryConditions(Dirichlet(), Dirichlet()), y=BoundaryConditions(Dirichlet(), Dirichlet())
)
"""Dirichlet on all four walls: the conditions of u and of v (data: :func:`wall_velocity`)."""


def wall_velocity(lid_speed: Tensor, n: int) -> Tensor:
    """The velocity's wall data on the n x n grid, zero away from the walls: ``(..., T)`` lid
    speeds -> ``(..., 2, n, n, T)`` (u; v), U on the lid's n - 2 interior nodes, 0 elsewhere
    (its corners belong to the walls at rest)."""
    lifted = lid_speed.new_zeros(*lid_speed.shape[:-1], 2, n, n, lid_speed.shape[-1])
    lifted[..., 0, 1:-1, -1, :] = lid_speed.unsqueeze(-2)  # (..., n - 2, T)
    return lifted


def cavity_constraint(lid_speed: Tensor, n: int) -> LinearConstraint:
    """What every cavity flow on the n x n grid (n odd) satisfies, as rows ``G w = b`` on its
    velocity ``w = (u; v)`` flattened [component, x, y] (length 2 n^2), per sample and frame.

    Zero net flux through each interior cut (:func:`cut_flux_weights`; the cuts on the walls
    are implied by the wall rows), n - 2 rows for u and n - 2 for v, and the Dirichlet wall
    data of u and v (lawful.constraints.walls, corners by its rule), 4 (n - 1) rows each.
    ``lid_speed`` ``(..., T)``; values ``(..., T, k)`` for a belief with batch axes (..., T).
    The solver's flows meet every row to round-off.
    """
    weights = cut_flux_weights(n)  # (n,)
    interior = torch.arange(1, n - 1)
    through_x = torch.zeros(n - 2, 2, n, n, dtype=torch.float64)  # (cut, component, x, y)
    through_x[interior - 1, 0, interior] = weights  # u at (x_i, every y), per cut i
    through_y = torch.zeros(n - 2, 2, n, n, dtype=torch.float64)
    through_y[interior - 1, 1, :, interior] = weights  # v at (every x, y_j), per cut j
    flux_rows = torch.cat([through_x, through_y]).flatten(1)  # (2 (n - 2), 2 n^2)
    spacing = 1 / (n - 1)
    top = wall_velocity(lid_speed, n)[..., 0, :, -1, :]  # (..., n, T): u on the lid
    u_walls = walls_constraint(CAVITY_WALLS.with_values(y_right=top), (n, n), spacing)
    v_walls = walls_constraint(CAVITY_WALLS, (n, n), spacing)  # v = 0 on every wall
    zeros = torch.zeros_like(u_walls.weights)  # (k, n^2)
    return stack_constraints(
        LinearConstraint(flux_rows, torch.zeros(flux_rows.shape[0], dtype=torch.float64)),
        LinearConstraint(torch.cat([u_walls.weights, zeros], -1), u_walls.values),
        LinearConstraint(torch.cat([zeros, v_walls.weights], -1), v_walls.values),
    )


class _CavityGrid:
    """The node grid's operators: the sine-transform Poisson solve, Thom's wall vorticity, the
    velocity, and the vorticity equation's right-hand side on the N x N = (n - 2)^2 interior."""

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device | str | None) -> None:
        if n < MIN_POINTS:
            raise ValueError(f"n must be at least {MIN_POINTS} nodes per side, got {n}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point type, got {dtype}")
        self.spacing = 1.0 / (n - 1)
        self.nodes = torch.linspace(0.0, 1.0, n, dtype=dtype, device=device)  # (n,)
        self.device = self.nodes.device
        modes = torch.arange(1, n - 1, dtype=torch.float64)  # (N,)
        # Eigenvalues of the 1-D stencil -d^2/dx^2 on sin(pi k x), k = 1 .. N.
        eigenvalues = (2 / self.spacing * torch.sin(torch.pi * modes / (2 * (n - 1)))).square()
        # DST-I is its own inverse up to 2 / (N + 1) per axis: fold that into the division.
        inverse = (2 / (n - 1)) ** 2 / (eigenvalues[:, None] + eigenvalues[None, :])  # (N, N)
        self.inverse_laplacian = inverse.to(dtype=dtype, device=self.device)

    def stream_function(self, vorticity: Tensor) -> Tensor:
        """psi (B, n, n), zero on the walls, from the interior vorticity (B, N, N)."""
        coefficients = _sine_transform_2d(vorticity) * self.inverse_laplacian  # (B, N, N)
        return functional.pad(_sine_transform_2d(coefficients), (1, 1, 1, 1))  # (B, n, n)

    def wall_vorticity(self, vorticity: Tensor, psi: Tensor, lid_speed: Tensor) -> Tensor:
        """The vorticity on all nodes (B, n, n): the interior's, and Thom's on the walls."""
        h = self.spacing
        full = functional.pad(vorticity, (1, 1, 1, 1))  # (B, n, n); corners stay 0
        full[:, 0, 1:-1] = -2 * psi[:, 1, 1:-1] / h**2  # x = 0
        full[:, -1, 1:-1] = -2 * psi[:, -2, 1:-1] / h**2  # x = 1
        full[:, 1:-1, 0] = -2 * psi[:, 1:-1, 1] / h**2  # y = 0
        full[:, 1:-1, -1] = -2 * psi[:, 1:-1, -2] / h**2 - 2 * lid_speed[:, None] / h  # the lid
        return full

    def interior_velocity(self, psi: Tensor) -> tuple[Tensor, Tensor]:
        """``u = psi_y``, ``v = -psi_x`` by central differences at the interior nodes (B, N, N)."""
        u = (psi[:, 1:-1, 2:] - psi[:, 1:-1, :-2]) / (2 * self.spacing)
        v = (psi[:, :-2, 1:-1] - psi[:, 2:, 1:-1]) / (2 * self.spacing)
        return u, v

    def rate(self, vorticity: Tensor, viscosity: Tensor, lid_speed: Tensor) -> Tensor:
        """``w_t = (1 / Re) lap w - u w_x - v w_y`` at the interior nodes (B, N, N)."""
        psi = self.stream_function(vorticity)
        full = self.wall_vorticity(vorticity, psi, lid_speed)  # (B, n, n)
        u, v = self.interior_velocity(psi)
        east, west = full[:, 2:, 1:-1], full[:, :-2, 1:-1]  # (B, N, N) each
        north, south = full[:, 1:-1, 2:], full[:, 1:-1, :-2]
        laplacian = (east + west + north + south - 4 * vorticity) / self.spacing**2
        advection = (u * (east - west) + v * (north - south)) / (2 * self.spacing)
        return viscosity * laplacian - advection

    def fields(self, vorticity: Tensor, lid_speed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """u, v and the vorticity on all nodes (B, n, n), the walls holding the wall data."""
        psi = self.stream_function(vorticity)
        u_inside, v_inside = self.interior_velocity(psi)
        u = functional.pad(u_inside, (1, 1, 1, 1))  # (B, n, n): walls at rest
        u[:, 1:-1, -1] = lid_speed[:, None]  # the lid, corners excluded
        v = functional.pad(v_inside, (1, 1, 1, 1))
        return u, v, self.wall_vorticity(vorticity, psi, lid_speed)


def _sine_transform(values: Tensor) -> Tensor:
    """Unnormalised DST-I along the last axis (..., N): ``X_k = sum_j x_j sin(pi j k / (N + 1))``.

    With x_j at positions j = 1 .. N of 2 (N + 1) otherwise zero, the FFT's imaginary part is -X.
    """
    size = values.shape[-1]
    shifted = functional.pad(values, (1, 0))  # (..., N + 1): x_j at position j
    return -torch.fft.rfft(shifted, n=2 * (size + 1), dim=-1).imag[..., 1 : size + 1]


def _sine_transform_2d(values: Tensor) -> Tensor:
    """DST-I along both of the last two axes (..., N, N)."""
    return _sine_transform(_sine_transform(values).mT).mT


class _LidEvaluator:
    """Calls the user's lid speed and checks each value: shape (batch,) or scalar, finite."""

    def __init__(
        self, lid_speed: LidSpeed, batch: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        self.lid_speed, self.batch, self.dtype, self.device = lid_speed, batch, dtype, device

    def __call__(self, t: float) -> Tensor:
        speed = torch.as_tensor(self.lid_speed(t), dtype=self.dtype, device=self.device)
        if speed.shape not in ((), (self.batch,)):
            raise ValueError(
                f"lid_speed(t) must have shape ({self.batch},), one speed per sample, or be a "
                f"scalar; got shape {tuple(speed.shape)} at t = {t}"
            )
        if not bool(torch.isfinite(speed).all()):
            raise ValueError(f"lid_speed is not finite at t = {t}: {speed.tolist()}")
        return speed.expand(self.batch)


@dataclass(frozen=True)
class _Interval:
    """Equal RK4 steps from one output time to the next, with the lid speed at every stage."""

    start: float
    step: float
    count: int
    first_step: int  # the number of steps taken before this interval
    lid_speeds: Tensor  # (2 count + 1, B) at start + s step / 2, s = 0 .. 2 count


def _plan(
    boundaries: list[float], max_dt: float, lid: _LidEvaluator, first_step: int = 0
) -> list[_Interval]:
    """Split each interval between consecutive ``boundaries`` into equal steps <= ``max_dt``;
    the lid is evaluated (and checked) at every stage time before any step is taken."""
    intervals = []
    for start, end in itertools.pairwise(boundaries):
        count = math.ceil((end - start) / max_dt - 1e-9)
        step = (end - start) / count if count else 0.0
        stage_times = [start + 0.5 * step * s for s in range(2 * count)] + [end]
        speeds = torch.stack([lid(t) for t in stage_times])  # (2 count + 1, B)
        intervals.append(_Interval(start, step, count, first_step, speeds))
        first_step += count
    return intervals


def _march(grid: _CavityGrid, viscosity: Tensor, vorticity: Tensor, interval: _Interval) -> Tensor:
    """Step the interior vorticity (B, N, N) across one planned interval with classical RK4."""
    dt, speeds = interval.step, interval.lid_speeds
    for step in range(interval.count):
        now, half, end = speeds[2 * step], speeds[2 * step + 1], speeds[2 * step + 2]  # (B,)
        k1 = grid.rate(vorticity, viscosity, now)
        k2 = grid.rate(vorticity + 0.5 * dt * k1, viscosity, half)
        k3 = grid.rate(vorticity + 0.5 * dt * k2, viscosity, half)
        k4 = grid.rate(vorticity + dt * k3, viscosity, end)
        vorticity = vorticity + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if not bool(torch.isfinite(vorticity).all()):
            stable = stable_time_step(
                grid.spacing, 1 / float(viscosity.max()), float(speeds.abs().max())
            )
            raise FloatingPointError(
                f"the cavity flow blew up: non-finite vorticity after step "
                f"{interval.first_step + step + 1}, at t = {interval.start + (step + 1) * dt:.6g}, "
                f"with dt = {dt:.3g} (the automatic step here is {stable:.3g})"
            )
    return vorticity


def _check_step(dt: float) -> float:
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be finite and positive, got {dt}")
    return float(dt)


def _check_reynolds(reynolds: Tensor) -> Tensor:
    reynolds = torch.as_tensor(reynolds, dtype=torch.float64)
    if reynolds.ndim != 1 or reynolds.numel() == 0:
        raise ValueError(
            f"reynolds must be 1-D, one Reynolds number per sample; got shape "
            f"{tuple(reynolds.shape)}"
        )
    if not bool((torch.isfinite(reynolds) & (reynolds > 0)).all()):
        raise ValueError(f"Reynolds numbers must be finite and positive, got {reynolds.tolist()}")
    return reynolds


def _check_times(times: Tensor) -> Tensor:
    times = torch.as_tensor(times, dtype=torch.float64)
    if times.ndim != 1 or times.numel() == 0:
        raise ValueError(f"times must be a non-empty 1-D tensor, got shape {tuple(times.shape)}")
    if not bool(torch.isfinite(times).all()) or float(times[0]) < 0:
        raise ValueError(f"times must be finite and non-negative, got {times.tolist()}")
    if not bool((torch.diff(times) > 0).all()):
        raise ValueError(f"times must be strictly increasing, got {times.tolist()}")
    return times
