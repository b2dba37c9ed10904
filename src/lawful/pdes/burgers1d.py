"""Viscous Burgers ``u_t + (u^2 / 2)_x = nu u_xx`` on [0, 1]: Dirichlet and periodic solvers and
the Cole–Hopf exact solutions they are tested against.

- ``solve_burgers``: central differences in space (flux form), Crank–Nicolson for the viscous
  term, AB2 for the flux; second order in space and time. Dirichlet ends (BOON's
  :class:`~lawful.constraints.boundary.Dirichlet`) with time-dependent values.
- ``solve_burgers_periodic``: Fourier pseudo-spectral in space with the 2/3 dealiasing rule,
  ETDRK4 in time (Cox & Matthews 2002, with the contour-integral coefficients of Kassam &
  Trefethen 2005); spectral in space, fourth order in time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lawful.constraints.boundary import BoundaryConditions, Dirichlet
from lawful.pdes._method_of_lines import (
    BoundaryData,
    SecondDerivative,
    crank_nicolson,
    uniform_steps,
)

__all__ = ["cole_hopf_solution", "solve_burgers", "solve_burgers_periodic"]

# Points on the unit circle for the ETDRK4 coefficients; 32 makes them exact to rounding.
_CONTOUR_POINTS = 32


def solve_burgers(
    u0: Tensor,
    viscosity: float,
    times: Tensor,
    conditions: BoundaryConditions,
    left_value: BoundaryData,
    right_value: BoundaryData,
    max_dt: float,
) -> Tensor:
    """Solve Burgers with Dirichlet ``conditions``: ``u(0, t) = left_value(t)``,
    ``u(1, t) = right_value(t)``, (batch,) each.

    ``u0`` (batch, x) lives on the uniform grid x_0 = 0 .. x_N = 1. Returns u at ``times`` (T,),
    equally spaced multiples of ``times[0]``, as (batch, T, x), in float64. The flux is explicit:
    keep ``max(|u|) * max_dt / h`` below about 1/2. Periodic ends: :func:`solve_burgers_periodic`.
    """
    if not (isinstance(conditions.left, Dirichlet) and isinstance(conditions.right, Dirichlet)):
        raise ValueError(
            "solve_burgers takes Dirichlet ends (the explicit flux is not evolved at an end); got "
            f"{type(conditions.left).__name__} and {type(conditions.right).__name__}"
        )
    num_points = u0.shape[-1]
    spacing = 1.0 / (num_points - 1)

    def minus_flux_derivative(u: Tensor) -> Tensor:
        flux = 0.5 * u.square()  # (batch, x)
        rate = torch.zeros_like(u)  # ends are Dirichlet: their rate is never used
        rate[:, 1:-1] = -(flux[:, 2:] - flux[:, :-2]) / (2 * spacing)
        return rate

    second_derivative = SecondDerivative(num_points, spacing, conditions, left_value, right_value)
    return crank_nicolson(
        u0, second_derivative, viscosity, times, max_dt, explicit_term=minus_flux_derivative
    )


def solve_burgers_periodic(u0: Tensor, viscosity: float, times: Tensor, max_dt: float) -> Tensor:
    """Solve periodic Burgers on [0, 1) from ``u0`` (batch, n) at the n points x_j = j / n.

    Returns u at ``times`` (T,), equally spaced multiples of ``times[0]``, as (batch, T, n) on the
    same n points, in float64. Wavenumbers m with 3 m >= n are removed from the initial data and
    from every product (2/3 rule), so the quadratic term is free of aliasing.
    """
    num_points = u0.shape[-1]
    dt, steps_per_frame = uniform_steps(times, max_dt)
    mode = torch.arange(num_points // 2 + 1, dtype=torch.float64)  # (m,)
    kept = (3 * mode < num_points).to(torch.float64)  # (m,) 2/3-rule mask
    wavenumber = 2 * torch.pi * mode  # (m,)
    linear = -viscosity * wavenumber.square()  # (m,) eigenvalues of nu d^2/dx^2
    flux_derivative = -0.5j * wavenumber * kept  # (m,) maps FFT(u^2) to FFT(-(u^2/2)_x)

    def nonlinear(u_hat: Tensor) -> Tensor:
        u = torch.fft.irfft(u_hat, n=num_points, dim=-1)  # (batch, n)
        return flux_derivative * torch.fft.rfft(u.square(), dim=-1)  # (batch, m)

    full, half, q, f1, f2, f3 = _etdrk4_coefficients(linear, dt)
    u_hat = torch.fft.rfft(u0.to(torch.float64), dim=-1) * kept  # (batch, m)
    frames = []
    for step in range(1, steps_per_frame * times.numel() + 1):
        n_u = nonlinear(u_hat)
        a = half * u_hat + q * n_u
        n_a = nonlinear(a)
        b = half * u_hat + q * n_a
        n_b = nonlinear(b)
        c = half * a + q * (2 * n_b - n_u)
        n_c = nonlinear(c)
        u_hat = full * u_hat + f1 * n_u + 2 * f2 * (n_a + n_b) + f3 * n_c
        if step % steps_per_frame == 0:
            frames.append(torch.fft.irfft(u_hat, n=num_points, dim=-1))
    return torch.stack(frames, dim=1)  # (batch, T, n)


def _etdrk4_coefficients(linear: Tensor, dt: float) -> tuple[Tensor, ...]:
    """ETDRK4's exponentials and phi-function weights for the diagonal operator ``linear`` (m,).

    The weights are evaluated as means over a unit circle around each ``dt * linear`` (Kassam &
    Trefethen): the direct formulas cancel catastrophically for small ``dt * linear``.
    """
    angles = 2 * torch.pi * (torch.arange(_CONTOUR_POINTS, dtype=torch.float64) + 0.5)
    circle = torch.exp(1j * angles / _CONTOUR_POINTS)  # (p,)
    z = (dt * linear)[:, None] + circle  # (m, p)
    e = torch.exp(z)
    q = dt * ((torch.exp(z / 2) - 1) / z).mean(dim=-1).real
    f1 = dt * ((-4 - z + e * (4 - 3 * z + z.square())) / z**3).mean(dim=-1).real
    f2 = dt * ((2 + z + e * (z - 2)) / z**3).mean(dim=-1).real
    f3 = dt * ((-4 - 3 * z - z.square() + e * (4 - z)) / z**3).mean(dim=-1).real
    return torch.exp(dt * linear), torch.exp(dt * linear / 2), q, f1, f2, f3


def cole_hopf_solution(
    x: Tensor,
    t: Tensor,
    viscosity: float,
    wavenumbers: Sequence[float],
    amplitudes: Sequence[float],
    offset: float,
    drift: float = 0.0,
) -> Tensor:
    """Exact Burgers solution on x (X,) at t (T,), shaped (T, X), by the Cole–Hopf transform.

    ``u = drift - 2 nu phi_xi / phi`` at ``xi = x - drift t``, with the heat solution
    ``phi = offset + sum_m amplitudes[m] exp(-nu q_m^2 t) cos(q_m xi)``; needs
    ``offset > sum |amplitudes|`` so that phi > 0. The drift is a Galilean boost (it moves the
    end values of a Dirichlet problem in time); ``q_m = 2 pi m`` and ``drift = 0`` give a periodic
    solution on [0, 1).
    """
    if offset <= sum(abs(a) for a in amplitudes):
        raise ValueError(
            f"offset {offset} must exceed the sum of |amplitudes| {list(amplitudes)} "
            "to keep phi > 0"
        )
    xi = x[None, :] - drift * t[:, None]  # (T, X)
    phi = torch.full_like(xi, offset)
    phi_xi = torch.zeros_like(xi)
    for q, amplitude in zip(wavenumbers, amplitudes, strict=True):
        decay = amplitude * torch.exp(-viscosity * q**2 * t)[:, None]  # (T, 1)
        phi = phi + decay * torch.cos(q * xi)
        phi_xi = phi_xi - q * decay * torch.sin(q * xi)
    return drift - 2 * viscosity * phi_xi / phi  # (T, X)
