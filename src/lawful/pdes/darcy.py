"""Darcy flow ``-div(a grad u) = f`` on the unit square with ``u = 0`` on the four walls.

Grid: the n x n nodes x_i = i / (n - 1), y_j = j / (n - 1), walls included, spacing h; every field
is indexed [x, y] (x first), batched as (batch, n, n).

Scheme: the conservative 5-point finite-volume stencil on the (n - 2)^2 interior nodes,

    (F_w + F_e + F_s + F_n) u_ij - F_w u_{i-1,j} - F_e u_{i+1,j} - F_s u_{i,j-1} - F_n u_{i,j+1}
        = h^2 f_ij,

with the coefficients on the west, east, south and north faces (F_w = F_{i-1/2,j}, ...) averaged
from the two nodes beside each face. The harmonic mean ``2 a b / (a + b)`` is the default: it is
the exact conductance of a face whose two halves carry the two nodes' coefficients (resistances
in series), so a jump between two nodes keeps the flux continuous, where the arithmetic mean
lets the stronger side dominate (7.5 against 4.8 for 12 | 3). Both are second order for a smooth
``a`` (tested). Across a jump sampled at the nodes (12 | 3 along x = 1/3), harmonic faces
converge at about first order in the max norm (0.9, tested), arithmetic ones erratically (the
differences between successive grids shrink by 2^2.3, then grow, then shrink by 2^2.5). The
arithmetic mean is the FNO data's solver (Li et al.'s ``solve_gwf.m``), kept for reproducing it.
The matrix is symmetric positive definite with non-positive off-diagonals (an M-matrix), so
f >= 0 gives u >= 0, and f > 0 gives u > 0 at every interior node.

Cost: the matrices of the whole batch are assembled at once, then each is factorised by SuperLU
(``scipy.sparse.linalg.spsolve``, minimum-degree ordering of A^T + A), one sample at a time so
memory stays that of one factorisation: about 2 ms per sample at n = 33, 6 ms at n = 65, 11 ms
at n = 85 and 40 ms at n = 129 on one CPU core, assembly included. A dense batched solve would
need 0.4 GB per sample at n = 85. Not differentiable: the solve leaves torch.

Data (:func:`sample_darcy`), the FNO benchmark's setting: ``a = 12`` where a mean-zero Gaussian
random field with covariance ``(-Laplacian + 9)^(-2)`` (alpha = 2, tau = 3, Neumann walls; see
:mod:`lawful.pdes.random_fields`) is >= 0, ``a = 3`` where it is < 0, and ``f = 1``. (Li et al.'s
paper states 12 and 3; their ``demo.m`` thresholds to 12 and 4.)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch
from torch import Tensor

from lawful.constraints._checks import as_floating, check_finite
from lawful.pdes.random_fields import sample_gaussian_random_field_2d

FaceAverage = Literal["harmonic", "arithmetic"]

HIGH_PERMEABILITY = 12.0
"""The coefficient where the random field is >= 0 (Li et al.)."""
LOW_PERMEABILITY = 3.0
"""The coefficient where the random field is < 0 (Li et al.)."""

__all__ = [
    "HIGH_PERMEABILITY",
    "LOW_PERMEABILITY",
    "FaceAverage",
    "sample_darcy",
    "solve_darcy",
]


def _face_average(first: Tensor, second: Tensor, kind: FaceAverage) -> Tensor:
    """The coefficient on the faces between the nodes ``first`` and ``second`` (same shape)."""
    if kind == "harmonic":
        return 2 * first * second / (first + second)
    return 0.5 * (first + second)


def _check_coefficient(coefficient: object) -> Tensor:
    """``coefficient`` if it is a finite, positive (batch, n, n) field with n >= 3."""
    coefficient = as_floating(coefficient, "Darcy coefficient")
    if coefficient.ndim != 3 or coefficient.shape[1] != coefficient.shape[2]:
        raise ValueError(
            "Darcy coefficient must have shape (batch, n, n) on the square's node grid, got "
            f"{tuple(coefficient.shape)}"
        )
    if coefficient.shape[-1] < 3:
        raise ValueError(
            f"the Darcy grid needs at least 3 points per side (one interior node), got "
            f"{coefficient.shape[-1]}"
        )
    check_finite(coefficient, "Darcy coefficient")
    if bool((coefficient <= 0).any()):
        raise ValueError(
            "Darcy coefficient must be positive everywhere (the problem is elliptic only then); "
            f"smallest entry is {float(coefficient.min())}"
        )
    return coefficient


def _interior_forcing(forcing: float | Tensor, shape: torch.Size) -> Tensor:
    """``forcing`` at the interior nodes, (batch, n - 2, n - 2) in float64."""
    if not isinstance(forcing, Tensor):
        forcing = torch.tensor(float(forcing), dtype=torch.float64)
    check_finite(forcing, "Darcy forcing")
    try:
        forcing = torch.broadcast_to(forcing.to(torch.float64), shape)  # (batch, n, n)
    except RuntimeError:
        raise ValueError(
            f"Darcy forcing must be a float or broadcast to the coefficient's shape "
            f"{tuple(shape)}, got {tuple(forcing.shape)}"
        ) from None
    return forcing[:, 1:-1, 1:-1]


def solve_darcy(
    coefficient: Tensor, forcing: float | Tensor = 1.0, face_average: FaceAverage = "harmonic"
) -> Tensor:
    """Solve ``-div(a grad u) = f``, ``u = 0`` on the walls, for ``a`` = ``coefficient``.

    ``coefficient`` (batch, n, n) holds a > 0 at the nodes, indexed [x, y]; ``forcing`` is a float
    or a tensor that broadcasts to (batch, n, n) (its wall values are not read). Returns u
    (batch, n, n) in float64, exactly 0 on the walls.
    """
    if face_average not in ("harmonic", "arithmetic"):
        raise ValueError(f"face_average must be 'harmonic' or 'arithmetic', got {face_average!r}")
    coefficient = _check_coefficient(coefficient).to(torch.float64)
    batch, n = coefficient.shape[0], coefficient.shape[-1]
    rhs = _interior_forcing(forcing, coefficient.shape) / (n - 1) ** 2  # (batch, m, m), m = n - 2
    faces_x = _face_average(coefficient[:, :-1], coefficient[:, 1:], face_average)  # (b, n-1, n)
    faces_y = _face_average(coefficient[:, :, :-1], coefficient[:, :, 1:], face_average)
    inner = slice(1, -1)
    diagonal = (
        faces_x[:, :-1, inner]
        + faces_x[:, 1:, inner]
        + faces_y[:, inner, :-1]
        + faces_y[:, inner, 1:]
    )  # (batch, m, m): west + east + south + north faces of each interior node
    # Couplings between interior neighbours only: a wall neighbour's u = 0 drops out.
    coupling_x = -faces_x[:, 1:-1, inner]  # (batch, m - 1, m)
    coupling_y = -faces_y[:, inner, 1:-1]  # (batch, m, m - 1)
    m = n - 2
    unknown = torch.arange(m * m).view(m, m)  # [x, y] -> row of the system, x-major
    entries = (  # (row nodes, column nodes, values (batch, *nodes' shape)); symmetric
        (unknown, unknown, diagonal),
        (unknown[:-1], unknown[1:], coupling_x),
        (unknown[1:], unknown[:-1], coupling_x),
        (unknown[:, :-1], unknown[:, 1:], coupling_y),
        (unknown[:, 1:], unknown[:, :-1], coupling_y),
    )
    rows = torch.cat([row.flatten() for row, _, _ in entries]).numpy()  # (nnz,)
    columns = torch.cat([column.flatten() for _, column, _ in entries]).numpy()  # (nnz,)
    values = torch.cat([value.flatten(1) for _, _, value in entries], dim=1)  # (batch, nnz)
    values, rhs = values.detach().cpu().numpy(), rhs.flatten(1).detach().cpu().numpy()
    interior = np.empty((batch, m * m))
    for b in range(batch):
        matrix = scipy.sparse.csc_array((values[b], (rows, columns)), shape=(m * m, m * m))
        # Minimum-degree ordering of A^T + A, the right one for a symmetric matrix.
        interior[b] = scipy.sparse.linalg.spsolve(matrix, rhs[b], permc_spec="MMD_AT_PLUS_A")
    solution = coefficient.new_zeros(batch, n, n)
    solution[:, 1:-1, 1:-1] = torch.from_numpy(interior).view(batch, m, m).to(solution.device)
    return solution


def sample_darcy(
    num_samples: int,
    n: int,
    generator: torch.Generator,
    alpha: float = 2.0,
    tau: float = 3.0,
    face_average: FaceAverage = "harmonic",
) -> tuple[Tensor, Tensor]:
    """The FNO benchmark's samples on the n x n node grid: (coefficient, solution), each
    (batch, n, n) in float64, indexed [x, y].

    The coefficient is 12 where a Gaussian random field (alpha, tau: module docstring) is >= 0
    and 3 where it is < 0; the forcing is f = 1. Deterministic given ``generator``.
    """
    field = sample_gaussian_random_field_2d(num_samples, n, generator, alpha, tau)  # (b, n, n)
    coefficient = torch.where(field >= 0, HIGH_PERMEABILITY, LOW_PERMEABILITY).to(torch.float64)
    return coefficient, solve_darcy(coefficient, 1.0, face_average)
