"""Stokes' second problem: ``u_t = nu u_yy`` above a plate at y = 0 oscillating as U cos(w t).

The periodic steady state is exact: ``u = U exp(-k y) cos(w t - k y)``, ``k = sqrt(w / (2 nu))``.
On y in [0, 1] its own values give time-dependent Dirichlet data at both ends.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["stokes_second_problem"]


def stokes_second_problem(
    y: Tensor, t: Tensor, viscosity: float, frequency: Tensor, amplitude: Tensor
) -> Tensor:
    """Exact ``U exp(-k y) cos(w t - k y)`` on y (Y,) at t (T,) for (batch,) w, U: (batch, T, Y)."""
    if viscosity <= 0:
        raise ValueError(f"viscosity must be positive, got {viscosity}")
    decay_rate = torch.sqrt(frequency / (2 * viscosity))[:, None, None]  # (batch, 1, 1)
    phase = frequency[:, None, None] * t[None, :, None] - decay_rate * y  # (batch, T, Y)
    return amplitude[:, None, None] * torch.exp(-decay_rate * y) * torch.cos(phase)
