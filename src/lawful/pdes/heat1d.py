"""The 1-D heat equation ``u_t = k u_xx`` on [0, 1] with Dirichlet or Neumann data at each end.

Solver: Crank–Nicolson, ghost-point Neumann ends, second order in space and time (order tested
against ``heat_cosine_solution`` in tests/pdes/test_boundary_solvers.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lawful.constraints.boundary import BoundaryConditions
from lawful.pdes._method_of_lines import BoundaryData, SecondDerivative, crank_nicolson

__all__ = ["heat_cosine_solution", "heat_cosine_solution_flux", "solve_heat"]


def solve_heat(
    u0: Tensor,
    diffusivity: float,
    times: Tensor,
    conditions: BoundaryConditions,
    left_data: BoundaryData,
    right_data: BoundaryData,
    max_dt: float,
) -> Tensor:
    """Solve ``u_t = k u_xx`` with the end ``conditions`` (Dirichlet or Neumann, BOON's classes)
    and their data ``left_data(t)``, ``right_data(t)``: the value or the flux ``u_x``, (batch,).

    ``u0`` (batch, x) lives on the uniform grid x_0 = 0 .. x_N = 1. Returns u at ``times`` (T,),
    equally spaced multiples of ``times[0]``, as (batch, T, x), in float64.
    """
    second_derivative = SecondDerivative(
        u0.shape[-1], 1.0 / (u0.shape[-1] - 1), conditions, left_data, right_data
    )
    return crank_nicolson(u0, second_derivative, diffusivity, times, max_dt)


def heat_cosine_solution(
    x: Tensor, t: Tensor, diffusivity: float, wavenumber: float, phase: float = 0.0
) -> Tensor:
    """Exact ``u = exp(-k a^2 t) cos(a x + b)`` on x (X,) at t (T,), shaped (T, X).

    Its fluxes ``u_x`` at the ends are nonzero unless ``b`` and ``a + b`` are multiples of pi.
    """
    decay = torch.exp(-diffusivity * wavenumber**2 * t)[:, None]  # (T, 1)
    return decay * torch.cos(wavenumber * x + phase)  # (T, X)


def heat_cosine_solution_flux(
    x: float, t: Tensor | float, diffusivity: float, wavenumber: float, phase: float = 0.0
) -> Tensor:
    """``u_x`` of ``heat_cosine_solution`` at the point x, for times t (any shape)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    decay = torch.exp(-diffusivity * wavenumber**2 * t)
    return -wavenumber * decay * torch.sin(torch.as_tensor(wavenumber * x + phase))
