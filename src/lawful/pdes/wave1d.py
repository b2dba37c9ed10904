"""The 1-D wave equation ``u_tt = c^2 u_xx`` on [0, 1] from rest, Dirichlet or Neumann ends.

Exact, with ``u_x = 0`` at both ends: ``u = sum_n a_n cos(n pi x) cos(c n pi t)`` (each cosine
mode satisfies the Neumann ends). Numerical: leapfrog with ghost-point Neumann ends, second
order in space and time.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lawful.constraints.boundary import BoundaryConditions
from lawful.pdes._method_of_lines import BoundaryData, SecondDerivative, leapfrog

__all__ = ["solve_wave", "wave_cosine_series"]


def solve_wave(
    u0: Tensor,
    wave_speed: float,
    times: Tensor,
    conditions: BoundaryConditions,
    left_data: BoundaryData,
    right_data: BoundaryData,
    max_dt: float,
) -> Tensor:
    """Leapfrog for the wave equation from rest at ``u0`` with the end ``conditions``
    (Dirichlet or Neumann, BOON's classes) and their data ``left_data(t)``, ``right_data(t)``.

    ``u0`` (batch, x) lives on the uniform grid x_0 = 0 .. x_N = 1. Returns u at ``times`` (T,),
    equally spaced multiples of ``times[0]``, as (batch, T, x), in float64. Needs
    ``wave_speed * max_dt <= h``.
    """
    second_derivative = SecondDerivative(
        u0.shape[-1], 1.0 / (u0.shape[-1] - 1), conditions, left_data, right_data
    )
    return leapfrog(u0, second_derivative, wave_speed, times, max_dt)


def wave_cosine_series(x: Tensor, t: Tensor, wave_speed: float, amplitudes: Tensor) -> Tensor:
    """Exact ``sum_n a_n cos(n pi x) cos(c n pi t)``, n = 1..M, for ``amplitudes`` (batch, M).

    Evaluated on x (X,) at t (T,); returns (batch, T, X).
    """
    mode = torch.pi * torch.arange(1, amplitudes.shape[-1] + 1, dtype=torch.float64)  # (M,)
    in_space = torch.cos(mode[:, None] * x)  # (M, X)
    in_time = torch.cos(wave_speed * mode[None, :] * t[:, None])  # (T, M)
    return torch.einsum("bm,tm,mx->btx", amplitudes.to(torch.float64), in_time, in_space)
