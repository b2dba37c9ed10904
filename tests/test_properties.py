"""Properties of the public functions over random shapes, batch shapes, dtypes and scales
(hypothesis): the invariants hold on valid input, and each class of bad input is a named error.

Invariants: after the update every constraint row holds to round-off relative to its scale, the
posterior variance is non-negative and never above the prior's, and a second update changes
nothing; boundary and wall conditions hold exactly after they are applied, and applying them
again changes nothing. Scales run from 1e-30 to 1e30: the update is scale-equivariant, and its
rank decisions are relative, so no scale may break it.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lawful.beliefs import DenseCovariance, GaussianBelief, LowRankCovariance
from lawful.constraints.boundary import (
    BoundaryConditions,
    Dirichlet,
    Neumann,
    Periodic,
    apply_boundary_conditions,
    boundary_residuals,
)
from lawful.constraints.conservation import LinearConstraint
from lawful.constraints.update import condition
from lawful.constraints.walls import Walls, apply_walls, wall_residuals
from lawful.metrics import crps_gaussian, interval_coverage, relative_l2
from lawful.models.ensemble import ensemble_belief

PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
DTYPES = st.sampled_from([torch.float32, torch.float64])
# Spreads whose variances the dtype holds as normal numbers: float32 reaches 1e-38 to 3e38, so
# a spread of 1e30 has no float32 variance (1e60), and one of 1e-30 would have a zero one.
SCALES = {
    torch.float32: st.sampled_from([1e-15, 1e-6, 1.0, 1e6, 1e15]),
    torch.float64: st.sampled_from([1e-30, 1e-12, 1.0, 1e12, 1e30]),
}
DTYPES_AND_SCALES = DTYPES.flatmap(lambda dtype: st.tuples(st.just(dtype), SCALES[dtype]))
KINDS = st.sampled_from(["diagonal", "low-rank", "dense"])


def _belief(kind: str, batch: tuple[int, ...], n: int, scale: float, dtype, generator):
    """A random belief of the kind, with spread ``scale``, mean of the same size."""

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    mean = scale * draw(*batch, n)
    variance = scale**2 * (0.1 + torch.rand(*batch, n, generator=generator, dtype=torch.float64))
    if kind == "diagonal":
        belief = GaussianBelief.diagonal(mean, variance)
    elif kind == "low-rank":
        factor = scale * draw(*batch, n, 3)
        belief = GaussianBelief(mean, LowRankCovariance(variance, factor, torch.eye(3).double()))
    else:
        root = scale * draw(*batch, n, n) / math.sqrt(n)
        matrix = root @ root.transpose(-1, -2) + torch.diag_embed(variance)
        belief = GaussianBelief(mean, DenseCovariance(matrix))
    return _to(belief, dtype)


def _to(belief: GaussianBelief, dtype) -> GaussianBelief:
    covariance = belief.covariance
    if isinstance(covariance, LowRankCovariance):
        converted = LowRankCovariance(
            covariance.diagonal.to(dtype), covariance.factor.to(dtype), covariance.core.to(dtype)
        )
    elif isinstance(covariance, DenseCovariance):
        converted = DenseCovariance(covariance.matrix.to(dtype))
    else:
        return GaussianBelief.diagonal(belief.mean.to(dtype), belief.variance().to(dtype))
    return GaussianBelief(belief.mean.to(dtype), converted)


def _eps(dtype) -> float:
    return torch.finfo(dtype).eps


@PROPERTY_SETTINGS
@given(
    kind=KINDS,
    batch=st.sampled_from([(), (2,), (2, 3)]),
    n=st.integers(4, 24),
    num_rows=st.integers(1, 3),
    dtype_and_scale=DTYPES_AND_SCALES,
    seed=st.integers(0, 2**16),
)
def test_the_update_meets_its_rows_shrinks_the_variance_and_is_idempotent(
    kind, batch, n, num_rows, dtype_and_scale, seed
):
    dtype, scale = dtype_and_scale
    generator = torch.Generator().manual_seed(seed)
    belief = _belief(kind, batch, n, scale, dtype, generator)
    weights = torch.rand(num_rows, n, generator=generator, dtype=torch.float64)  # (k, n)
    values = scale * torch.randn(*batch, num_rows, generator=generator, dtype=torch.float64)
    constraint = LinearConstraint(weights, values)
    posterior = condition(belief, constraint)

    magnitude = values.abs() + torch.einsum("kn,...n->...k", weights, belief.mean.double().abs())
    residual = constraint.residual(posterior.mean.double()).abs()  # (..., k)
    assert bool((residual <= 1e3 * _eps(dtype) * (magnitude + scale)).all())

    prior_variance, variance = belief.variance().double(), posterior.variance().double()
    assert bool((variance >= -1e2 * _eps(dtype) * prior_variance).all())
    assert bool((variance <= prior_variance * (1 + 1e2 * _eps(dtype))).all())

    again = condition(posterior, constraint)
    moved = (again.mean.double() - posterior.mean.double()).abs()
    assert bool((moved <= 1e3 * _eps(dtype) * (posterior.mean.double().abs() + scale)).all())


@PROPERTY_SETTINGS
@given(
    left=st.sampled_from(["dirichlet", "neumann", "periodic"]),
    right=st.sampled_from(["dirichlet", "neumann"]),
    n=st.integers(8, 40),
    order=st.integers(1, 4),
    dtype_and_scale=DTYPES_AND_SCALES,
    seed=st.integers(0, 2**16),
)
def test_applied_end_conditions_hold_and_applying_them_again_changes_nothing(
    left, right, n, order, dtype_and_scale, seed
):
    dtype, scale = dtype_and_scale
    generator = torch.Generator().manual_seed(seed)
    field = scale * torch.randn(3, 2, n, generator=generator, dtype=torch.float64).to(dtype)
    data = scale * torch.randn(3, generator=generator, dtype=torch.float64).to(dtype)

    def make(kind):
        return {
            "dirichlet": Dirichlet(data),
            "neumann": Neumann(data, order=order),
            "periodic": Periodic(),
        }[kind]

    conditions = (
        BoundaryConditions(Periodic(), Periodic())
        if left == "periodic"
        else BoundaryConditions(make(left), make(right))
    )
    spacing = 1 / (n - 1)
    exact = apply_boundary_conditions(field, conditions, spacing)
    for residual in boundary_residuals(exact, conditions, spacing):
        # A Neumann residual is a stencil sum divided by h: its rounding is eps * scale / h.
        assert float(residual.abs().max()) <= 1e2 * _eps(dtype) * scale * (n - 1)
    again = apply_boundary_conditions(exact, conditions, spacing)
    assert float((again - exact).abs().max()) <= 1e2 * _eps(dtype) * scale


@PROPERTY_SETTINGS
@given(
    kinds=st.tuples(*[st.sampled_from(["dirichlet", "neumann"])] * 4),
    nx=st.integers(6, 14),
    ny=st.integers(6, 14),
    dtype_and_scale=DTYPES_AND_SCALES,
    seed=st.integers(0, 2**16),
)
def test_applied_walls_hold_on_every_wall_and_again_change_nothing(
    kinds, nx, ny, dtype_and_scale, seed
):
    dtype, scale = dtype_and_scale
    generator = torch.Generator().manual_seed(seed)
    field = scale * torch.randn(2, 1, nx, ny, generator=generator, dtype=torch.float64).to(dtype)

    def make(kind):
        return Dirichlet(0.0) if kind == "dirichlet" else Neumann(0.0, order=2)

    walls = Walls(
        x=BoundaryConditions(make(kinds[0]), make(kinds[1])),
        y=BoundaryConditions(make(kinds[2]), make(kinds[3])),
    )
    spacings = (1 / (nx - 1), 1 / (ny - 1))
    exact = apply_walls(field, walls, spacings)
    for residual in wall_residuals(exact, walls, spacings).values():
        assert float(residual.abs().max()) <= 1e2 * _eps(dtype) * scale * max(nx, ny)
    assert float((apply_walls(exact, walls, spacings) - exact).abs().max()) <= (
        1e2 * _eps(dtype) * scale
    )


@PROPERTY_SETTINGS
@given(
    members=st.integers(2, 6),
    n=st.integers(3, 20),
    dtype_and_scale=DTYPES_AND_SCALES,
    seed=st.integers(0, 2**16),
)
def test_an_ensemble_belief_has_the_members_mean_and_at_least_the_noise_variance(
    members, n, dtype_and_scale, seed
):
    dtype, scale = dtype_and_scale
    generator = torch.Generator().manual_seed(seed)
    predictions = scale * torch.randn(members, 4, n, generator=generator, dtype=torch.float64)
    predictions = predictions.to(dtype)
    noise = (0.01 * scale) ** 2
    belief = ensemble_belief(predictions, noise)
    torch.testing.assert_close(belief.mean, predictions.mean(0))
    spread = predictions.double().var(0)  # (4, n), the members' sample variance
    variance = belief.variance().double()
    assert bool((variance >= noise * (1 - 1e2 * _eps(dtype))).all())
    torch.testing.assert_close(variance, spread + noise, rtol=1e2 * _eps(dtype), atol=0.0)


# ---------------------------------------------------------------- each class of bad input


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: GaussianBelief.diagonal(torch.tensor([0.0, math.nan]), torch.ones(2)),
            ValueError,
            "NaN",
        ),
        (lambda: GaussianBelief.diagonal(torch.zeros(2), -torch.ones(2)), ValueError, "negative"),
        (
            lambda: GaussianBelief.diagonal(torch.zeros(3), torch.ones(2)),
            ValueError,
            "shapes differ",
        ),
        (
            lambda: GaussianBelief.diagonal(torch.zeros(2, dtype=torch.int64), torch.ones(2)),
            TypeError,
            "floating",
        ),
        (lambda: LinearConstraint(torch.ones(2, 3), torch.ones(3)), ValueError, "one per row"),
        (lambda: LinearConstraint(torch.ones(3), torch.ones(1)), ValueError, r"\(\.\.\., k, n\)"),
        (
            lambda: LinearConstraint(torch.full((1, 3), math.inf), torch.ones(1)),
            ValueError,
            "finite",
        ),
        (lambda: ensemble_belief(torch.zeros(1, 4)), ValueError, "K >= 2 members"),
        (lambda: relative_l2(torch.zeros(3, 1, 5), torch.zeros(3, 5)), ValueError, "shape"),
        (
            lambda: crps_gaussian(torch.zeros(3), -torch.ones(3), torch.zeros(3)),
            ValueError,
            "negative",
        ),
        (
            lambda: interval_coverage(torch.zeros(3), torch.ones(3), torch.zeros(3), level=1.5),
            ValueError,
            "level",
        ),
    ],
    ids=[
        "nan-mean",
        "negative-variance",
        "mean-variance-shapes",
        "integer-mean",
        "values-per-row",
        "weights-not-a-matrix",
        "infinite-weights",
        "one-member",
        "metric-shapes",
        "crps-negative-variance",
        "coverage-level",
    ],
)
def test_each_class_of_bad_input_is_a_named_error(make, error, message):
    with pytest.raises(error, match=message):
        make()


@PROPERTY_SETTINGS
@given(n=st.integers(3, 12), k=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_a_constraint_for_another_grid_is_a_named_error(n, k, seed):
    generator = torch.Generator().manual_seed(seed)
    belief = GaussianBelief.diagonal(
        torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64)
    )
    weights = torch.rand(k, n + 1, generator=generator, dtype=torch.float64)
    message = rf"constraint weights cover {n + 1} grid points but the belief has {n}$"
    with pytest.raises(ValueError, match=message):
        condition(belief, LinearConstraint(weights, torch.zeros(k, dtype=torch.float64)))
