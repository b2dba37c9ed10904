"""The 2-D wave equation ``u_tt = c^2 (u_xx + u_yy)`` on the unit square, zero-flux walls.

Grid: nx x ny nodes x_i = i / (nx - 1), y_j = j / (ny - 1), walls included; fields are indexed
[x, y] (x first): u0 is (batch, nx, ny), frames are (batch, T, nx, ny).

Exact (:func:`wave_cosine_series_2d`): each mode ``cos(m pi x) cos(n pi y)`` has zero normal
derivative on all four walls and oscillates at ``c pi sqrt(m^2 + n^2)``, so

    u = sum_{m, n >= 0} a_mn cos(m pi x) cos(n pi y) cos(c pi sqrt(m^2 + n^2) t).

Numerical (:func:`solve_wave_neumann_2d`): the 5-point Laplacian with ghost-point reflection at
the walls (``u_{-1,j} = u_{1,j}``, the centred zero flux), stepped by the 1-D problems' leapfrog;
second order in space and time. Stable for the Courant number
``c dt sqrt(1/hx^2 + 1/hy^2) <= 1`` (``c dt <= h / sqrt(2)`` on a square grid), refused above.
Leapfrog conserves a discrete energy exactly (tested); the continuous energy to O(h^2).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lawful.constraints._checks import check_finite, check_floating
from lawful.pdes._method_of_lines import leapfrog

__all__ = ["sample_wave_2d", "solve_wave_neumann_2d", "wave_cosine_series_2d"]


def _check_speed(speed: float) -> None:
    if not speed > 0:
        raise ValueError(f"the wave speed must be positive, got {speed}")


def _reflected_second_difference(u: Tensor, dim: int, spacing: float) -> Tensor:
    """Central ``d^2 u`` along ``dim`` with the ghost points mirrored, u_{-1} = u_1 at each end."""
    num_points = u.shape[dim]
    padded = torch.cat([u.narrow(dim, 1, 1), u, u.narrow(dim, num_points - 2, 1)], dim=dim)
    before, after = padded.narrow(dim, 0, num_points), padded.narrow(dim, 2, num_points)
    return (before - 2 * u + after) / spacing**2  # u's shape


class _NeumannLaplacian2d:
    """``u_xx + u_yy`` of (batch, nx, ny) fields with zero-flux walls, for ``leapfrog``.

    It has the three members ``leapfrog`` reads of a 1-D ``SecondDerivative``: ``spacing``,
    ``apply`` and ``impose_dirichlet``. ``leapfrog`` takes ``c dt / spacing`` for the Courant
    number: the spacing here is ``(1/hx^2 + 1/hy^2)^(-1/2)``, which makes that the 2-D number and
    its check the 2-D limit.
    """

    def __init__(self, nx: int, ny: int) -> None:
        self.spacing_x, self.spacing_y = 1.0 / (nx - 1), 1.0 / (ny - 1)
        self.spacing = (self.spacing_x**-2 + self.spacing_y**-2) ** -0.5

    def apply(self, u: Tensor, t: float) -> Tensor:
        """The Laplacian of ``u`` (batch, nx, ny); autonomous, so ``t`` is not read."""
        along_x = _reflected_second_difference(u, -2, self.spacing_x)  # (batch, nx, ny)
        along_y = _reflected_second_difference(u, -1, self.spacing_y)  # (batch, nx, ny)
        return along_x + along_y

    def impose_dirichlet(self, u: Tensor, t: float) -> Tensor:
        """No wall is Dirichlet: ``u`` as it is."""
        return u


def solve_wave_neumann_2d(u0: Tensor, speed: float, times: Tensor, max_dt: float) -> Tensor:
    """Leapfrog for ``u_tt = c^2 (u_xx + u_yy)`` with zero-flux walls, from rest at ``u0``.

    ``u0`` (batch, nx, ny) on the node grid, indexed [x, y]; ``times`` (T,) increasing and equally
    spaced multiples of ``times[0]`` (one constant step keeps leapfrog second order). Steps at
    the largest dt <= ``max_dt`` that hits every frame; refuses a Courant number
    ``c dt sqrt(1/hx^2 + 1/hy^2)`` above 1. Returns (batch, T, nx, ny) in float64.
    """
    u0 = check_floating(u0, "initial displacement u0")
    if u0.ndim != 3 or min(u0.shape[1:]) < 3:
        raise ValueError(
            "u0 must have shape (batch, nx, ny) with at least 3 points per side (the walls and "
            f"an interior node), got {tuple(u0.shape)}"
        )
    check_finite(u0, "initial displacement u0")
    _check_speed(speed)
    if times.ndim == 1 and bool((times.diff() <= 0).any()):
        raise ValueError(f"times must be strictly increasing, got {times.tolist()}")
    return leapfrog(u0, _NeumannLaplacian2d(*u0.shape[1:]), speed, times, max_dt)


def wave_cosine_series_2d(
    x: Tensor, y: Tensor, times: Tensor, speed: float, amplitudes: Tensor
) -> Tensor:
    """Exact ``sum_mn a_mn cos(m pi x) cos(n pi y) cos(c pi sqrt(m^2 + n^2) t)``.

    ``amplitudes`` (batch, M, N) holds a_mn for m = 0..M-1 (along x) and n = 0..N-1 (along y);
    evaluated on x (nx,) and y (ny,) at ``times`` (T,); returns (batch, T, nx, ny) in float64.
    """
    _check_speed(speed)
    if amplitudes.ndim != 3:
        raise ValueError(f"amplitudes must have shape (batch, M, N), got {tuple(amplitudes.shape)}")
    mode_x = torch.pi * torch.arange(amplitudes.shape[1], dtype=torch.float64)  # (M,)
    mode_y = torch.pi * torch.arange(amplitudes.shape[2], dtype=torch.float64)  # (N,)
    frequency = speed * (mode_x[:, None] ** 2 + mode_y[None, :] ** 2).sqrt()  # (M, N)
    in_time = torch.cos(frequency * times.to(torch.float64)[:, None, None])  # (T, M, N)
    in_x = torch.cos(mode_x[:, None] * x.to(torch.float64))  # (M, nx)
    in_y = torch.cos(mode_y[:, None] * y.to(torch.float64))  # (N, ny)
    weights = amplitudes.to(torch.float64)[:, None] * in_time  # (batch, T, M, N)
    return torch.einsum("btmn,mx,ny->btxy", weights, in_x, in_y)  # (batch, T, nx, ny)


def sample_wave_2d(
    num_samples: int,
    n: int,
    times: Tensor,
    generator: torch.Generator,
    speed: float = 1.0,
    num_modes: int = 4,
) -> tuple[Tensor, Tensor]:
    """Random initial displacements at rest and their exact frames on the n x n node grid.

    ``a_mn ~ U[-1, 1] / (m + n + 1)`` for m, n = 0..num_modes-1: the 1-D problem's 1/n decay,
    counted by total degree (the constant mode a_00, the conserved mean, included). Returns
    (u0 (batch, n, n), frames (batch, T, n, n)) at ``times`` (T,), in float64; deterministic
    given ``generator``.
    """
    if n < 3:
        raise ValueError(f"the grid needs at least 3 points per side, got n = {n}")
    if num_modes < 1:
        raise ValueError(f"num_modes must be at least 1, got {num_modes}")
    degree = torch.arange(num_modes, dtype=torch.float64)  # (M,)
    decay = 1.0 / (degree[:, None] + degree[None, :] + 1)  # (M, M)
    uniform = torch.rand(
        num_samples, num_modes, num_modes, generator=generator, dtype=torch.float64
    )
    amplitudes = (2 * uniform - 1) * decay  # (batch, M, M)
    x = torch.linspace(0.0, 1.0, n, dtype=torch.float64)  # (n,), the same along y
    initial = wave_cosine_series_2d(x, x, times.new_zeros(1), speed, amplitudes)[:, 0]
    return initial, wave_cosine_series_2d(x, x, times, speed, amplitudes)
