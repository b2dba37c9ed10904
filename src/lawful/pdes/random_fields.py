"""Gaussian random fields: on the periodic interval [0, 1), and on the unit square.

On the interval, the covariance operator ``C = scale * (-d^2/dx^2 + shift)^(-power)`` is
diagonal in the orthonormal Fourier basis of L^2(0, 1): 1, sqrt(2) cos(2 pi k x),
sqrt(2) sin(2 pi k x), with eigenvalues ``lambda_k = scale * ((2 pi k)^2 + shift)^(-power)``.
A sample is the Karhunen–Loève sum, truncated at wavenumbers k < ``num_modes``, with independent
standard normal xi_k, eta_k:

    u(x) = sqrt(lambda_0) xi_0
           + sum_{k >= 1} sqrt(2 lambda_k) (xi_k cos(2 pi k x) + eta_k sin(2 pi k x))

so Var u(x) = lambda_0 + 2 sum_{k >= 1} lambda_k at every x. The constant mode
(lambda_0 = scale / shift^power) is kept, as the operator has it.
The FNO Burgers data uses scale 625, shift 25, power 2: standard deviations 25 / ((2 pi k)^2 + 25).

On the unit square, the covariance ``(-Laplacian + tau^2)^(-alpha)`` with zero-flux (Neumann)
walls, the FNO Darcy data's (Li et al.'s ``GRF.m``, alpha = 2, tau = 3). Its orthonormal
eigenfunctions are ``c_k c_l cos(k pi x) cos(l pi y)``, c_0 = 1 and c_k = sqrt(2) for k >= 1,
with eigenvalues ``lambda_kl = (pi^2 (k^2 + l^2) + tau^2)^(-alpha)``; a sample is the
Karhunen–Loève sum over k, l < ``num_modes`` with independent standard normal xi_kl:

    u(x, y) = sum_{(k, l) != (0, 0)} sqrt(lambda_kl) c_k c_l xi_kl cos(k pi x) cos(l pi y)

The constant mode is left out, as ``GRF.m`` does: every sample has zero mean over the square (and
zero trapezoid mean on the grid, for k < 2 (n - 1)), so each one, not just the ensemble, takes
both signs. ``GRF.m`` also scales the field by tau^(alpha - 1) and evaluates it at cell centres;
a sign threshold sees neither, so we sample the operator as written, at the nodes.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sample_gaussian_random_field_2d", "sample_periodic_gaussian_field"]


def sample_periodic_gaussian_field(
    num_samples: int,
    x: Tensor,
    num_modes: int,
    generator: torch.Generator,
    scale: float = 625.0,
    shift: float = 25.0,
    power: float = 2.0,
) -> Tensor:
    """Samples of N(0, scale (-Laplacian + shift)^(-power)) with wavenumbers k < num_modes.

    Evaluated at the points ``x`` (X,), any points of the line (x and x + 1 agree); (batch, X).
    """
    if num_modes < 1:
        raise ValueError(f"num_modes must be at least 1, got {num_modes}")
    wavenumber = 2 * torch.pi * torch.arange(num_modes, dtype=torch.float64)  # (K,)
    std = torch.sqrt(scale * (wavenumber.square() + shift) ** (-power))  # (K,)
    cosines = torch.cos(wavenumber[:, None] * x.to(torch.float64))  # (K, X)
    sines = torch.sin(wavenumber[:, None] * x.to(torch.float64))  # (K, X)
    basis_std = std * torch.where(wavenumber > 0, 2**0.5, 1.0)  # (K,) sqrt(2) on k >= 1
    normal = torch.randn(2, num_samples, num_modes, generator=generator, dtype=torch.float64)
    return (normal[0] * basis_std) @ cosines + (normal[1] * basis_std) @ sines  # (batch, X)


def sample_gaussian_random_field_2d(
    num_samples: int,
    n: int,
    generator: torch.Generator,
    alpha: float = 2.0,
    tau: float = 3.0,
    num_modes: int | None = None,
) -> Tensor:
    """Mean-zero samples of N(0, (-Laplacian + tau^2)^(-alpha)), Neumann walls, on the unit square.

    Evaluated on the n x n node grid x_i = i / (n - 1) (walls included), indexed [x, y]:
    (batch, n, n) in float64. Wavenumbers k, l < ``num_modes`` per axis (default n, all the grid
    resolves); with a fixed ``num_modes`` one generator state gives the same field at every n.
    """
    if n < 2:
        raise ValueError(f"the grid needs at least 2 points per side, got n = {n}")
    num_modes = n if num_modes is None else num_modes
    if num_modes < 2:
        raise ValueError(f"num_modes must be at least 2 (k = 0 is left out), got {num_modes}")
    if not alpha > 1:
        # The variance sum_kl lambda_kl diverges with the number of modes unless alpha > d/2.
        raise ValueError(f"alpha must exceed 1 (half the dimension), got {alpha}")
    if not tau >= 0:
        raise ValueError(f"tau must be non-negative, got {tau}")
    wavenumber = torch.pi * torch.arange(num_modes, dtype=torch.float64)  # (K,)
    eigenvalue = (wavenumber[:, None] ** 2 + wavenumber[None, :] ** 2 + tau**2) ** (-alpha)
    normalisation = torch.where(wavenumber > 0, 2**0.5, 1.0)  # (K,) c_k
    std = eigenvalue.sqrt() * normalisation[:, None] * normalisation[None, :]  # (K, K) [k, l]
    std[0, 0] = 0.0  # the constant mode: zero mean over the square
    cosines = torch.cos(wavenumber[:, None] * torch.linspace(0.0, 1.0, n, dtype=torch.float64))
    normal = torch.randn(
        num_samples, num_modes, num_modes, generator=generator, dtype=torch.float64
    )  # (batch, K, K)
    return torch.einsum("bkl,kx,ly->bxy", normal * std, cosines, cosines)  # (batch, n, n)
