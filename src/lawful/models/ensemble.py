"""Ensembles of deterministic models as Gaussian beliefs.

K models trained from different initial weights (a deep ensemble; Lakshminarayanan et al.,
NeurIPS 2017) predict K fields. Their spread is the epistemic part of the belief: the sample
covariance of the members, kept as its low-rank factor (rank <= K - 1, never an n x n
matrix), plus a diagonal ``noise_variance`` for what every member gets wrong alike. The result
is a :class:`~lawful.beliefs.GaussianBelief` with a low-rank covariance, which the conservation
update conditions in O(n K) per constraint row like any other.

Where the members agree to within the rounding of their fields, their deviations are rounding,
not spread: a direction made of rounding would be trusted by the update as fully as a real one
(members equal up to 1e-16 moved a conditioned mean by ten times the data's range). Such grid
points get no spread, exactly as if the members were equal there. Rounding is judged on each
field's scale (its largest magnitude over the grid and the members), not on each point's own
value: a value near zero computed from values of order one carries their absolute rounding,
so a per-point rule let rounding through wherever the field crossed zero.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lawful.beliefs import GaussianBelief, LowRankCovariance
from lawful.constraints._checks import (
    as_floating,
    check_broadcasts_to,
    check_finite,
    check_floating,
    check_variance,
)

__all__ = ["ensemble_belief"]


def ensemble_belief(predictions: Tensor, noise_variance: Tensor | float = 0.0) -> GaussianBelief:
    """``N(member mean, diag(noise_variance) + sample covariance of the members)``.

    ``predictions`` ``(K, ..., n)``: K members' fields over n grid points (flatten a
    multi-dimensional grid first). ``noise_variance`` broadcasts to ``(..., n)``; with none, a
    grid point where all members agree has zero variance and no update will move it. A grid
    point whose member deviations are all within ``(K + 1) eps`` of the field's scale (the
    members' largest magnitude over all n points; the rounding of their mean, a K-term sum,
    and of the subtraction) counts as one where they agree.
    """
    check_floating(predictions, "ensemble predictions")
    if predictions.ndim < 2 or predictions.shape[0] < 2:
        raise ValueError(
            "an ensemble belief needs predictions (K, ..., n) from K >= 2 members, got shape "
            f"{tuple(predictions.shape)}"
        )
    check_finite(predictions, "ensemble predictions")
    noise = as_floating(noise_variance, "ensemble noise variance")
    noise = noise.to(dtype=predictions.dtype, device=predictions.device)
    check_variance(noise, "ensemble noise variance")
    num_members = predictions.shape[0]
    mean = predictions.mean(0)  # (..., n)
    check_broadcasts_to(noise.shape, mean.shape, "ensemble noise variance", "the members' fields")
    deviations = predictions - mean  # (K, ..., n)
    rounding = (num_members + 1) * torch.finfo(predictions.dtype).eps
    scale = predictions.abs().amax(dim=(0, -1)).unsqueeze(-1)  # (..., 1): each field's scale
    agree = deviations.abs().amax(0) <= rounding * scale  # (..., n)
    deviations = torch.where(agree, 0.0, deviations)
    # Sample covariance (1 / (K - 1)) D^T D with D the deviations: factor D^T / sqrt(K - 1).
    factor = deviations.movedim(0, -1) / math.sqrt(num_members - 1)  # (..., n, K)
    core = torch.eye(num_members, dtype=predictions.dtype, device=predictions.device)  # (K, K)
    diagonal = noise.expand(mean.shape).clone()  # (..., n)
    return GaussianBelief(mean, LowRankCovariance(diagonal, factor, core))
