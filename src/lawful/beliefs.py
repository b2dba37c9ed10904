"""Gaussian beliefs over values on a grid.

A belief is ``u ~ N(mean, covariance)`` with the grid points on the last axis of ``mean``
(``(..., n)``; leading axes are batch axes: functions, times, latent samples). A
multi-dimensional grid is flattened row-major onto that axis, so every operation below works
unchanged for it.

The covariance keeps whatever structure it has, because the structure decides the cost:

- :class:`DiagonalCovariance` ``diag(d)``: what neural processes predict. O(n) memory.
- :class:`LowRankCovariance` ``diag(d) + F C F^T`` with ``F`` of shape ``(n, r)`` and a small
  symmetric ``core`` ``C`` (``(r, r)``): an ensemble's sample covariance (``C = I``), and what a
  diagonal prior becomes after conditioning on ``r`` linear constraints (then ``C = -Q^-1``, not
  positive: only the update builds such cores; a user's must be positive semi-definite).
  O(n r) memory. :class:`RankOneDowndate` is the rank-one case as the fused update leaves it.
- :class:`DenseCovariance`: what a Gaussian process predicts. O(n^2) memory.

Every covariance answers the questions conditioning asks, ``G Sigma`` for a few rows ``G``
(:meth:`Covariance.left_multiply`), the scale of the rounding in ``G Sigma G^T``
(:meth:`Covariance.gram_scale`) and ``Sigma - A^T M A`` (:meth:`Covariance.downdate`), without
ever forming an ``n x n`` matrix unless it already is one.

Constructors check their input (finite, floating point, one dtype, non-negative and
non-subnormal variances, symmetric positive semi-definite matrices; see
:mod:`lawful.constraints._checks`), in O(n) for diagonal and low-rank covariances. The results
of lawful's own operations skip the checks (the ``trusted`` constructors): they are computed
from checked inputs, and a posterior may carry rounding the checks would refuse (a -1e-16
variance where a constraint pins a value).
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lawful.constraints._checks import (
    check_broadcast,
    check_count,
    check_covariance_matrix,
    check_finite,
    check_floating,
    check_variance,
    rank_tolerance,
    rounding_tolerance,
)

__all__ = [
    "Covariance",
    "DenseCovariance",
    "DiagonalCovariance",
    "GaussianBelief",
    "LowRankCovariance",
    "RankOneDowndate",
]


class Covariance(ABC):
    """A symmetric positive semi-definite matrix over the last axis, batched over the others."""

    @property
    @abstractmethod
    def size(self) -> int:
        """Number of grid points ``n``."""

    @property
    @abstractmethod
    def batch_shape(self) -> torch.Size:
        """The leading (batch) shape."""

    @property
    @abstractmethod
    def dtype(self) -> torch.dtype:
        """The floating-point dtype of the stored values."""

    @abstractmethod
    def variance(self) -> Tensor:
        """Marginal variances, ``(..., n)``."""

    @abstractmethod
    def left_multiply(self, rows: Tensor) -> Tensor:
        """``rows @ Sigma`` for ``rows`` of shape ``(..., k, n)``; returns ``(..., k, n)``."""

    @abstractmethod
    def gram_scale(self, rows: Tensor, gram: Tensor) -> Tensor:
        """The size of the terms summed on the diagonal of ``gram = rows Sigma rows^T``, the
        scale its rounding is relative to: ``(..., k)`` for ``rows`` ``(..., k, n)``.

        Where the terms cancel (a direction the belief is sure of), ``gram``'s diagonal is far
        below this scale; the update's rank decision compares the two.
        """

    def gram_tolerance(self, num_rows: int) -> float:
        """Pivots of ``rows Sigma rows^T``, in units of :meth:`gram_scale`, at or below this are
        rounding, not rank: :func:`~lawful.constraints._checks.rank_tolerance`, since the scale
        accounts for all the rounding the Gram matrix carries."""
        return rank_tolerance(self.dtype, num_rows)

    @abstractmethod
    def downdate(self, rows_times_cov: Tensor, core: Tensor) -> Covariance:
        """``Sigma - A^T core A`` for ``A`` ``(..., k, n)`` and ``core`` ``(..., k, k)``."""

    @abstractmethod
    def to_dense(self) -> Tensor:
        """The full matrix ``(..., n, n)``: O(n^2) memory, for small grids and tests."""

    @abstractmethod
    def sample_noise(self, num_samples: int, generator: torch.Generator | None) -> Tensor:
        """Zero-mean draws ``(num_samples, ..., n)`` with this covariance."""


@dataclass(frozen=True)
class DiagonalCovariance(Covariance):
    diagonal: Tensor  # (..., n)

    def __post_init__(self) -> None:
        check_floating(self.diagonal, "variance")
        if self.diagonal.ndim < 1:
            raise ValueError("variance must be (..., n), got a scalar")
        check_variance(self.diagonal, "variance")

    @property
    def size(self) -> int:
        return self.diagonal.shape[-1]

    @property
    def batch_shape(self) -> torch.Size:
        return self.diagonal.shape[:-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.diagonal.dtype

    def variance(self) -> Tensor:
        return self.diagonal

    def left_multiply(self, rows: Tensor) -> Tensor:
        return rows * self.diagonal.unsqueeze(-2)  # (..., k, n)

    def gram_scale(self, rows: Tensor, gram: Tensor) -> Tensor:
        # sum_n G_kn^2 d_n: non-negative terms, so the diagonal is its own scale (no new pass).
        return torch.diagonal(gram, dim1=-2, dim2=-1)

    def downdate(self, rows_times_cov: Tensor, core: Tensor) -> LowRankCovariance:
        factor = rows_times_cov.transpose(-1, -2)  # (..., n, k)
        return LowRankCovariance.trusted(self.diagonal, factor, -core)

    def to_dense(self) -> Tensor:
        return torch.diag_embed(self.diagonal)

    def sample_noise(self, num_samples: int, generator: torch.Generator | None) -> Tensor:
        shape = (num_samples, *self.diagonal.shape)
        standard = torch.randn(shape, generator=generator, dtype=self.diagonal.dtype)
        return standard.to(self.diagonal.device) * self.diagonal.sqrt()


@dataclass(frozen=True)
class LowRankCovariance(Covariance):
    """``diag(diagonal) + factor @ core @ factor^T``."""

    diagonal: Tensor  # (..., n)
    factor: Tensor  # (..., n, r)
    core: Tensor  # (..., r, r), symmetric

    def __post_init__(self) -> None:
        named = {
            "variance": self.diagonal,
            "low-rank factor": self.factor,
            "low-rank core": self.core,
        }
        for name, tensor in named.items():
            check_floating(tensor, name)
        if len({tensor.dtype for tensor in named.values()}) > 1:
            listed = ", ".join(f"{name} {tensor.dtype}" for name, tensor in named.items())
            raise TypeError(f"a low-rank covariance needs one dtype, got {listed}")
        if self.diagonal.ndim < 1 or self.factor.ndim < 2 or self.core.ndim < 2:
            raise ValueError(
                "a low-rank covariance needs variance (..., n), factor (..., n, r) and core "
                f"(..., r, r), got {tuple(self.diagonal.shape)}, {tuple(self.factor.shape)} and "
                f"{tuple(self.core.shape)}"
            )
        if self.factor.shape[-2] != self.diagonal.shape[-1]:
            raise ValueError(
                f"low-rank factor has {self.factor.shape[-2]} rows but the diagonal has "
                f"{self.diagonal.shape[-1]} entries"
            )
        rank = self.factor.shape[-1]
        if self.core.shape[-2:] != (rank, rank):
            raise ValueError(f"core must be ({rank}, {rank}), got {tuple(self.core.shape[-2:])}")
        check_broadcast(self._batch_shapes())
        check_variance(self.diagonal, "variance")
        check_finite(self.factor, "low-rank factor")
        # A user's core must be a covariance itself; the indefinite cores of posteriors
        # (-Q^-1) are built by the update through `trusted`.
        check_finite(self.core, "low-rank core")
        check_covariance_matrix(self.core, "low-rank core")

    @property
    def size(self) -> int:
        return self.diagonal.shape[-1]

    @property
    def batch_shape(self) -> torch.Size:
        return check_broadcast(self._batch_shapes())

    def _batch_shapes(self) -> dict[str, torch.Size]:
        return {
            "variance batch": self.diagonal.shape[:-1],
            "factor batch": self._factor_batch_shape(),
            "core batch": self.core.shape[:-2],
        }

    def _factor_batch_shape(self) -> torch.Size:
        return self.factor.shape[:-2]

    @property
    def dtype(self) -> torch.dtype:
        return self.diagonal.dtype

    @property
    def rank(self) -> int:
        return self.factor.shape[-1]

    @classmethod
    def trusted(cls, diagonal: Tensor, factor: Tensor, core: Tensor) -> LowRankCovariance:
        """Construct without the input checks (see :meth:`GaussianBelief.trusted`)."""
        covariance = object.__new__(cls)
        for name, value in (("diagonal", diagonal), ("factor", factor), ("core", core)):
            object.__setattr__(covariance, name, value)
        return covariance

    def variance(self) -> Tensor:
        if self.rank == 1:  # the common case (one constraint row)
            factor, scale = self.factor[..., 0], self.core[..., 0]  # (..., n), (..., 1)
            if _builds_graph(self.diagonal, self.factor, self.core):
                variance = torch.addcmul(self.diagonal, factor, factor * scale)
            else:
                # One buffer updated in place: on large grids a fresh buffer (page faults)
                # costs more than a pass over a warm one.
                variance = factor.square().mul_(scale).add_(self.diagonal)
        else:
            low_rank_part = ((self.factor @ self.core) * self.factor).sum(-1)  # (..., n)
            variance = self.diagonal + low_rank_part
        # A downdated variance is exactly >= 0; rounding can leave -1e-17 where it is pinned.
        return variance.clamp_min_(0)

    def left_multiply(self, rows: Tensor) -> Tensor:
        through_factor = rows @ self.factor @ self.core  # (..., k, r)
        return rows * self.diagonal.unsqueeze(-2) + through_factor @ self.factor.transpose(-1, -2)

    def gram_scale(self, rows: Tensor, gram: Tensor) -> Tensor:
        # G F is rounded by ~eps |G| |F|, an error that reaches G F C F^T G^T through C and
        # G F: sum_r (|G| |F|)_kr (|G F| |C|)_kr. A posterior's core (-Q^-1) is large where its
        # update was ill-conditioned, so this scale remembers that update's rounding.
        rounding_of_factor = rows.abs() @ self.factor.abs()  # (..., k, r)
        reach = (rows @ self.factor).abs() @ self.core.abs()  # (..., k, r)
        diagonal_part = (rows.square() * self.diagonal.unsqueeze(-2)).sum(-1)  # (..., k)
        return diagonal_part + (rounding_of_factor * reach).sum(-1)

    def downdate(self, rows_times_cov: Tensor, core: Tensor) -> LowRankCovariance:
        # Sigma - A^T M A = diag(d) + [F, A^T] blockdiag(C, -M) [F, A^T]^T: the rank grows by k.
        batch = torch.broadcast_shapes(self.batch_shape, rows_times_cov.shape[:-2], core.shape[:-2])
        old_factor = self.factor.expand(*batch, *self.factor.shape[-2:])
        new_factor = rows_times_cov.transpose(-1, -2).expand(*batch, self.size, -1)
        old_core = self.core.expand(*batch, self.rank, self.rank)
        new_core = core.expand(*batch, *core.shape[-2:])
        return LowRankCovariance.trusted(
            self.diagonal,
            torch.cat([old_factor, new_factor], dim=-1),  # (..., n, r + k)
            _block_diagonal(old_core, -new_core),  # (..., r + k, r + k)
        )

    def to_dense(self) -> Tensor:
        return torch.diag_embed(self.diagonal) + self.factor @ self.core @ self.factor.transpose(
            -1, -2
        )

    def sample_noise(self, num_samples: int, generator: torch.Generator | None) -> Tensor:
        # The core of a posterior is negative (a downdate), so there is no cheap square root of
        # the sum: draw from the dense matrix. For posteriors of a diagonal prior prefer
        # lawful.constraints.update.sample_posterior, which draws in O(n k).
        return _sample_dense(self.to_dense(), num_samples, generator)


class RankOneDowndate(LowRankCovariance):
    """``diag(d) + (d g)^T c (d g)``: a diagonal belief's posterior on one constraint row ``g``,
    as the fused update (:mod:`lawful.native`) leaves it, with ``core`` ``c = -1 / (g D g^T + s)``.

    The update computes the posterior variance in the pass that writes the mean, and the factor
    ``d g`` (a grid-sized array the variance no longer needs) is formed only where something
    asks for it, as the eager update forms it: the same covariance, without the pass that
    writes the factor.
    ``diagonal`` ``(..., n)``, ``row`` ``(..., 1, n)``, ``core`` ``(..., 1, 1)``, ``variance``
    ``(..., n)``. Built by the update only; the values are not checked.
    """

    def __init__(self, diagonal: Tensor, row: Tensor, core: Tensor, variance: Tensor) -> None:
        for name, value in (("diagonal", diagonal), ("core", core)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_row", row)
        object.__setattr__(self, "_variance", variance)

    @functools.cached_property
    def factor(self) -> Tensor:  # (..., n, 1)
        rows_times_cov = self._row * self.diagonal.unsqueeze(-2)  # DiagonalCovariance's product
        return rows_times_cov.transpose(-1, -2)

    @property
    def rank(self) -> int:
        return 1

    def _factor_batch_shape(self) -> torch.Size:
        # That of d g, read off its operands: forming the factor is a pass over the grid.
        return torch.broadcast_shapes(self._row.shape[:-2], self.diagonal.shape[:-1])

    def variance(self) -> Tensor:
        return self._variance


@dataclass(frozen=True)
class DenseCovariance(Covariance):
    matrix: Tensor  # (..., n, n)

    def __post_init__(self) -> None:
        check_floating(self.matrix, "covariance")
        if self.matrix.ndim < 2 or self.matrix.shape[-1] != self.matrix.shape[-2]:
            raise ValueError(
                f"covariance matrix must be square, got shape {tuple(self.matrix.shape)}"
            )
        check_finite(self.matrix, "covariance")
        check_variance(torch.diagonal(self.matrix, dim1=-2, dim2=-1), "variance")
        check_covariance_matrix(self.matrix, "covariance")

    @classmethod
    def trusted(cls, matrix: Tensor) -> DenseCovariance:
        """Construct without the input checks (see :meth:`GaussianBelief.trusted`).

        A downdated matrix is exactly PSD, but rounding can leave -1e-16 on the diagonal where
        the constraint pins a value; :meth:`variance` clamps that, the checks would refuse it.
        """
        covariance = object.__new__(cls)
        object.__setattr__(covariance, "matrix", matrix)
        return covariance

    @property
    def size(self) -> int:
        return self.matrix.shape[-1]

    @property
    def batch_shape(self) -> torch.Size:
        return self.matrix.shape[:-2]

    @property
    def dtype(self) -> torch.dtype:
        return self.matrix.dtype

    def variance(self) -> Tensor:
        return torch.diagonal(self.matrix, dim1=-2, dim2=-1).clamp_min(0)

    def left_multiply(self, rows: Tensor) -> Tensor:
        return rows @ self.matrix

    def gram_scale(self, rows: Tensor, gram: Tensor) -> Tensor:
        magnitude = rows.abs() @ self.matrix.abs()  # (..., k, n): O(n^2 k), as left_multiply
        return (magnitude * rows.abs()).sum(-1)

    def gram_tolerance(self, num_rows: int) -> float:
        """``sqrt(eps)``: a dense matrix carries the rounding of whatever computed it (an earlier
        update, a GP's solve) with no trace of its size. An update of condition number ``c``
        leaves pivots of ``c eps`` where it pinned the belief; below ``sqrt(eps)`` such a
        pivot cannot be told from a real one, and no update accepted with pivots above it
        leaves more."""
        return rounding_tolerance(self.dtype)

    def downdate(self, rows_times_cov: Tensor, core: Tensor) -> DenseCovariance:
        update = rows_times_cov.transpose(-1, -2) @ core @ rows_times_cov  # (..., n, n)
        downdated = self.matrix - update
        return DenseCovariance.trusted((downdated + downdated.transpose(-1, -2)) / 2)

    def to_dense(self) -> Tensor:
        return self.matrix

    def sample_noise(self, num_samples: int, generator: torch.Generator | None) -> Tensor:
        return _sample_dense(self.matrix, num_samples, generator)


def _builds_graph(*tensors: Tensor) -> bool:
    """Whether autograd records operations on ``tensors`` (then in-place updates are unsafe)."""
    return torch.is_grad_enabled() and any(tensor.requires_grad for tensor in tensors)


def _block_diagonal(upper: Tensor, lower: Tensor) -> Tensor:
    """Batched ``blockdiag(upper, lower)`` for ``(..., a, a)`` and ``(..., b, b)``."""
    a, b = upper.shape[-1], lower.shape[-1]
    zeros_ab = upper.new_zeros(*upper.shape[:-2], a, b)
    top = torch.cat([upper, zeros_ab], dim=-1)  # (..., a, a + b)
    bottom = torch.cat([zeros_ab.transpose(-1, -2), lower], dim=-1)  # (..., b, a + b)
    return torch.cat([top, bottom], dim=-2)


def _sample_dense(matrix: Tensor, num_samples: int, generator: torch.Generator | None) -> Tensor:
    """Draws with covariance ``matrix`` via a symmetric square root (valid when it is singular)."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix.double())  # (..., n), (..., n, n)
    root = eigenvectors * eigenvalues.clamp_min(0).sqrt().unsqueeze(-2)  # (..., n, n)
    standard = torch.randn(
        (num_samples, *matrix.shape[:-1]), generator=generator, dtype=torch.float64
    ).to(matrix.device)
    return (root @ standard.unsqueeze(-1)).squeeze(-1).to(matrix.dtype)  # (samples, ..., n)


@dataclass(frozen=True)
class GaussianBelief:
    """``u ~ N(mean, covariance)`` over the last axis of ``mean``."""

    mean: Tensor  # (..., n)
    covariance: Covariance

    def __post_init__(self) -> None:
        check_floating(self.mean, "mean")
        if self.mean.ndim < 1:
            raise ValueError("mean must be (..., n), got a scalar")
        if not isinstance(self.covariance, Covariance):
            raise TypeError(
                f"covariance must be a lawful Covariance, got {type(self.covariance).__name__}"
            )
        check_finite(self.mean, "mean")
        if self.mean.dtype != self.covariance.dtype:
            raise TypeError(
                f"mean is {self.mean.dtype} but the covariance is {self.covariance.dtype}; "
                "give both one dtype"
            )
        if self.mean.shape[-1] != self.covariance.size:
            raise ValueError(
                f"mean has {self.mean.shape[-1]} grid points but the covariance has "
                f"{self.covariance.size}"
            )
        check_broadcast(self._batch_shapes())

    @classmethod
    def trusted(cls, mean: Tensor, covariance: Covariance) -> GaussianBelief:
        """Construct without the input checks: for results of lawful's own operations.

        The checks read every value once; on a large grid that costs as much as the update
        itself, and results computed from checked inputs need no second look.
        """
        belief = object.__new__(cls)
        object.__setattr__(belief, "mean", mean)
        object.__setattr__(belief, "covariance", covariance)
        return belief

    @classmethod
    def diagonal(cls, mean: Tensor, variance: Tensor) -> GaussianBelief:
        """A belief with independent grid values (what a neural process predicts)."""
        check_floating(mean, "mean")
        check_floating(variance, "variance")
        if mean.shape != variance.shape:
            raise ValueError(
                f"mean and variance shapes differ: {tuple(mean.shape)} vs {tuple(variance.shape)}"
            )
        return cls(mean, DiagonalCovariance(variance))

    @classmethod
    def dense(cls, mean: Tensor, covariance: Tensor) -> GaussianBelief:
        return cls(mean, DenseCovariance(covariance))

    @property
    def batch_shape(self) -> torch.Size:
        """The leading (batch) shape of mean and covariance together."""
        return check_broadcast(self._batch_shapes())

    def _batch_shapes(self) -> dict[str, torch.Size]:
        return {
            "mean batch shape": self.mean.shape[:-1],
            "covariance batch shape": self.covariance.batch_shape,
        }

    def variance(self) -> Tensor:
        """Marginal variances, ``(..., n)``."""
        return self.covariance.variance()

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """Draws ``(num_samples, ..., n)`` from the belief, independent across its batch (also
        where the mean has batch axes the covariance shares)."""
        noise = independent_draws(
            lambda count: self.covariance.sample_noise(count, generator),
            self.covariance.batch_shape,
            self.batch_shape,
            num_samples,
        )  # (samples, *batch, n)
        return self.mean + noise


def independent_draws(
    draw: Callable[[int], Tensor],
    shared_batch: torch.Size,
    batch: torch.Size,
    num_samples: int,
) -> Tensor:
    """``(num_samples, *batch, n)`` independent draws from ``draw(count)``, which returns
    ``(count, *shared_batch, n)`` and whose batch broadcasts to ``batch``: a batch element that
    ``shared_batch`` covers by broadcasting (an axis it lacks or has as 1) gets draws of its own,
    not a copy of its neighbour's. Where the two batches are equal this is ``draw(num_samples)``
    itself. ``num_samples`` is checked here, before it multiplies the copies."""
    check_count(num_samples, "num_samples")
    draw_batch = (1,) * (len(batch) - len(shared_batch)) + tuple(shared_batch)
    if draw_batch == tuple(batch):
        return draw(num_samples)  # (samples, *batch, n)
    # Per batch axis, the copies it needs: its size where the draw has 1 there, else 1.
    copies = [size if size != drawn else 1 for size, drawn in zip(batch, draw_batch, strict=True)]
    draws = draw(num_samples * math.prod(copies))  # (samples * copies, *shared_batch, n)
    points = draws.shape[-1]
    draws = draws.reshape(num_samples, *copies, *draw_batch, points)
    # Each copy axis goes beside the drawn axis of its batch axis (one of the two is 1), and
    # the two merge into one.
    axes = len(batch)
    order = [0, *(1 + offset + axis for axis in range(axes) for offset in (0, axes)), 2 * axes + 1]
    return draws.permute(order).reshape(num_samples, *batch, points)  # (samples, *batch, n)
