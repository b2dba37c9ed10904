"""Ensembles of deterministic models as Gaussian beliefs.

K models trained from different initial weights (a deep ensemble; Lakshminarayanan et al.,
NeurIPS 2017) predict K fields. Their spread is the epistemic part of the belief: the sample
covariance of the members, kept as its low-rank factor (rank <= K - 1, never an n x n
matrix), plus a diagonal ``noise_variance`` for what every member gets wrong alike. The result
is a :class:`~lawful.beliefs.GaussianBelief` with a low-rank covariance, which the conservation
update conditions in O(n K) per constraint row like any other.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lawful.beliefs import GaussianBelief, LowRankCovariance
from lawful.constraints._checks import check_finite, check_nonnegative

__all__ = ["ensemble_belief"]


def ensemble_belief(predictions: Tensor, noise_variance: Tensor | float = 0.0) -> GaussianBelief:
    """``N(member mean, diag(noise_variance) + sample covariance of the members)``.

    ``predictions`` ``(K, ..., n)``: K members' fields over n grid points (flatten a
    multi-dimensional grid first). ``noise_variance`` broadcasts to ``(..., n)``; with none, a
    grid point where all members agree has zero variance and no update will move it.
    """
    if predictions.ndim < 2 or predictions.shape[0] < 2:
        raise ValueError(
            "an ensemble belief needs predictions (K, ..., n) from K >= 2 members, got shape "
            f"{tuple(predictions.shape)}"
        )
    check_finite(predictions, "ensemble predictions")
    noise = torch.as_tensor(noise_variance, dtype=predictions.dtype, device=predictions.device)
    check_finite(noise, "ensemble noise variance")
    check_nonnegative(noise, "ensemble noise variance")
    num_members = predictions.shape[0]
    mean = predictions.mean(0)  # (..., n)
    # Sample covariance (1 / (K - 1)) D^T D with D the deviations: factor D^T / sqrt(K - 1).
    factor = (predictions - mean).movedim(0, -1) / math.sqrt(num_members - 1)  # (..., n, K)
    core = torch.eye(num_members, dtype=predictions.dtype, device=predictions.device)  # (K, K)
    diagonal = noise.expand(mean.shape).clone()  # (..., n)
    return GaussianBelief(mean, LowRankCovariance(diagonal, factor, core))
