"""Gaussian random fields on the periodic interval [0, 1).

The covariance operator ``C = scale * (-d^2/dx^2 + shift)^(-power)`` is diagonal in the
orthonormal Fourier basis of L^2(0, 1): 1, sqrt(2) cos(2 pi k x), sqrt(2) sin(2 pi k x), with
eigenvalues ``lambda_k = scale * ((2 pi k)^2 + shift)^(-power)``. A sample is the Karhunen–Loève
sum, truncated at wavenumbers k < ``num_modes``, with independent standard normal xi_k, eta_k:

    u(x) = sqrt(lambda_0) xi_0
           + sum_{k >= 1} sqrt(2 lambda_k) (xi_k cos(2 pi k x) + eta_k sin(2 pi k x))

so Var u(x) = lambda_0 + 2 sum_{k >= 1} lambda_k at every x. The constant mode
(lambda_0 = scale / shift^power) is kept, as the operator has it.
The FNO Burgers data uses scale 625, shift 25, power 2: standard deviations 25 / ((2 pi k)^2 + 25).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sample_periodic_gaussian_field"]


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
