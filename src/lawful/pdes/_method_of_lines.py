"""Method of lines on a uniform 1-D grid x_0..x_N: the second-derivative operator with its end
conditions, and the two time steppers the boundary problems share.

- ``crank_nicolson``: Crank–Nicolson for the diffusion term, second-order Adams–Bashforth (AB2)
  for an optional explicit term (the Burgers flux). Second order in space and time.
- ``leapfrog``: the central second difference in time for u_tt = c^2 u_xx. Second order.

End conditions are BOON's (lawful.constraints.boundary): a :class:`BoundaryConditions` gives the
kind of each end, and a function of time gives its data. Neumann ends use a ghost point with the
centred flux, ``u_{-1} = u_1 - 2 h g`` (whatever stencil order the condition names: that order is
BOON's, the solver's is 2): the boundary row is first-order consistent, but the global error
stays second order (tested in tests/pdes/test_boundary_solvers.py). Dirichlet ends are not
evolved: their value is imposed. Periodic ends have solvers of their own (spectral).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from lawful.constraints.boundary import BoundaryConditions, Dirichlet, Neumann

BoundaryData = Callable[[float], Tensor]
"""Time -> (batch,) boundary data: the value (Dirichlet) or the derivative u_x (Neumann)."""

ExplicitTerm = Callable[[Tensor], Tensor]
"""(batch, x) solution -> (batch, x) right-hand side treated explicitly in time."""

__all__ = [
    "BoundaryData",
    "SecondDerivative",
    "crank_nicolson",
    "leapfrog",
    "uniform_steps",
]


def uniform_steps(times: Tensor, max_dt: float) -> tuple[float, int]:
    """The step ``dt <= max_dt`` and steps per frame for frames ``times[j] = (j + 1) * times[0]``.

    One constant step keeps the multistep schemes (AB2, leapfrog) at their order.
    """
    if times.ndim != 1 or times.numel() == 0:
        raise ValueError(f"times must be a non-empty 1-D tensor, got shape {tuple(times.shape)}")
    if max_dt <= 0:
        raise ValueError(f"max_dt must be positive, got {max_dt}")
    spacing = float(times[0])
    if spacing <= 0:
        raise ValueError(f"output times must be positive, got times[0] = {spacing}")
    expected = spacing * torch.arange(1, times.numel() + 1, dtype=torch.float64)
    if not torch.allclose(times.to(torch.float64), expected, rtol=1e-10, atol=0.0):
        raise ValueError(
            "output times must be equally spaced multiples of the first, times[j] = (j + 1) * "
            f"times[0]; got {times.tolist()}"
        )
    steps_per_frame = math.ceil(spacing / max_dt - 1e-9)
    return spacing / steps_per_frame, steps_per_frame


class SecondDerivative:
    """Central ``u_xx`` on ``num_points`` equally spaced points, closed by two end conditions.

    ``conditions`` give each end's kind (Dirichlet or Neumann; their values are not read),
    ``left_data(t)`` and ``right_data(t)`` its data at time ``t``, (batch,) each: the value
    (Dirichlet) or the derivative u_x (Neumann; not the outward normal derivative).

    ``apply(u, t) = matrix @ u + forcing(t)``: the matrix holds the stencil, the forcing holds the
    Neumann data entering through the ghost points. Dirichlet rows are zero (those values are
    imposed by ``impose_dirichlet``, not evolved), so ``I - c * matrix`` has identity rows there.
    """

    def __init__(
        self,
        num_points: int,
        spacing: float,
        conditions: BoundaryConditions,
        left_data: BoundaryData,
        right_data: BoundaryData,
    ) -> None:
        if num_points < 3:
            raise ValueError(f"the stencil needs at least 3 grid points, got {num_points}")
        for end in (conditions.left, conditions.right):
            if not isinstance(end, Dirichlet | Neumann):
                raise ValueError(
                    f"the finite-difference solvers take Dirichlet or Neumann ends, got "
                    f"{type(end).__name__}; periodic problems have spectral solvers"
                )
        self.spacing = spacing
        self.left_is_neumann = isinstance(conditions.left, Neumann)
        self.right_is_neumann = isinstance(conditions.right, Neumann)
        self.left_data, self.right_data = left_data, right_data
        inverse_h2 = 1.0 / spacing**2
        matrix = torch.zeros(num_points, num_points, dtype=torch.float64)  # (x, x)
        inner = torch.arange(1, num_points - 1)
        matrix[inner, inner - 1] = inverse_h2
        matrix[inner, inner] = -2 * inverse_h2
        matrix[inner, inner + 1] = inverse_h2
        # Ghost point u_{-1} = u_1 - 2 h g folds into the first row (mirror image at the right end).
        if self.left_is_neumann:
            matrix[0, :2] = torch.tensor([-2.0, 2.0]) * inverse_h2
        if self.right_is_neumann:
            matrix[-1, -2:] = torch.tensor([2.0, -2.0]) * inverse_h2
        self.matrix = matrix

    def forcing(self, t: float, like: Tensor) -> Tensor:
        """The Neumann data's share of ``u_xx`` at time ``t``, shaped like ``like`` (batch, x)."""
        forcing = torch.zeros_like(like)
        if self.left_is_neumann:
            forcing[:, 0] = -2 * self.left_data(t) / self.spacing
        if self.right_is_neumann:
            forcing[:, -1] = 2 * self.right_data(t) / self.spacing
        return forcing

    def apply(self, u: Tensor, t: float) -> Tensor:
        """``u_xx`` of ``u`` (batch, x) at time ``t``; zero at Dirichlet ends."""
        return u @ self.matrix.mT + self.forcing(t, u)  # (batch, x)

    def impose_dirichlet(self, u: Tensor, t: float) -> Tensor:
        """A copy of ``u`` (batch, x) with the Dirichlet values at time ``t`` at those ends."""
        u = u.clone()
        if not self.left_is_neumann:
            u[:, 0] = self.left_data(t)
        if not self.right_is_neumann:
            u[:, -1] = self.right_data(t)
        return u


def crank_nicolson(
    u0: Tensor,
    second_derivative: SecondDerivative,
    diffusivity: float,
    times: Tensor,
    max_dt: float,
    explicit_term: ExplicitTerm | None = None,
) -> Tensor:
    """Solve ``u_t = diffusivity u_xx + explicit_term(u)`` from ``u0`` (batch, x) at t = 0.

    Returns the frames at ``times`` (T,) as (batch, T, x). The implicit matrix is tridiagonal and
    constant: it is LU-factored once (dense, so each step is one batched triangular solve, which
    beats a Python-loop Thomas sweep for the few hundred points used here, on CPU and GPU alike).
    The explicit term uses AB2, started by one forward-Euler step whose O(dt^2) local error leaves
    the global order at 2.
    """
    dt, steps_per_frame = uniform_steps(times, max_dt)
    half_step = 0.5 * dt * diffusivity
    identity = torch.eye(u0.shape[-1], dtype=torch.float64)
    lu, pivots = torch.linalg.lu_factor(identity - half_step * second_derivative.matrix)
    u = u0.to(torch.float64)  # (batch, x)
    previous_explicit: Tensor | None = None
    frames = []
    for step in range(1, steps_per_frame * times.numel() + 1):
        t_old, t_new = (step - 1) * dt, step * dt
        rhs = u + half_step * (
            second_derivative.apply(u, t_old) + second_derivative.forcing(t_new, u)
        )
        if explicit_term is not None:
            current = explicit_term(u)
            extrapolated = (
                current if previous_explicit is None else 1.5 * current - 0.5 * previous_explicit
            )
            rhs = rhs + dt * extrapolated
            previous_explicit = current
        # Dirichlet rows of the matrix are identity rows: the rhs carries the new boundary value
        # into the solve, and imposing again afterwards makes it exact, free of rounding.
        rhs = second_derivative.impose_dirichlet(rhs, t_new)
        u = torch.linalg.lu_solve(lu, pivots, rhs.mT).mT  # (x, batch) solve -> (batch, x)
        u = second_derivative.impose_dirichlet(u, t_new)
        if step % steps_per_frame == 0:
            frames.append(u)
    return torch.stack(frames, dim=1)  # (batch, T, x)


def leapfrog(
    u0: Tensor,
    second_derivative: SecondDerivative,
    wave_speed: float,
    times: Tensor,
    max_dt: float,
) -> Tensor:
    """Solve ``u_tt = wave_speed^2 u_xx`` from rest at ``u0`` (batch, x); frames (batch, T, x).

    Stable for ``wave_speed * dt <= h``. The first step is the Taylor step
    ``u^1 = u^0 + dt^2 / 2 * c^2 u_xx`` (zero initial velocity), which keeps second order.
    """
    dt, steps_per_frame = uniform_steps(times, max_dt)
    courant = wave_speed * dt / second_derivative.spacing
    if courant > 1:
        raise ValueError(
            f"leapfrog is unstable at Courant number {courant:.3g} > 1; lower max_dt below "
            f"{second_derivative.spacing / wave_speed:.3g}"
        )
    squared_step = (wave_speed * dt) ** 2
    previous = u0.to(torch.float64)  # (batch, x)
    current = previous + 0.5 * squared_step * second_derivative.apply(previous, 0.0)
    current = second_derivative.impose_dirichlet(current, dt)
    frames = [current] if steps_per_frame == 1 else []
    for step in range(2, steps_per_frame * times.numel() + 1):
        following = (
            2 * current
            - previous
            + squared_step * second_derivative.apply(current, (step - 1) * dt)
        )
        previous, current = current, second_derivative.impose_dirichlet(following, step * dt)
        if step % steps_per_frame == 0:
            frames.append(current)
    return torch.stack(frames, dim=1)  # (batch, T, x)
