"""The fused rank-one update (lawful.native): the eager update's results to rounding, its
elementwise pass its formula to the bit, and the eager path wherever it does not apply.

Most cases lower ``FUSED_MIN_POINTS`` so that short rows (odd lengths, misaligned starts, rows
split between threads) take the fused path; one case runs at the real threshold.
"""

import os
import subprocess
import sys

import pytest
import torch

import lawful.constraints.update as update
import lawful.native as native
from lawful.beliefs import GaussianBelief, LowRankCovariance, RankOneDowndate
from lawful.constraints.conservation import LinearConstraint, mass_constraint
from lawful.constraints.update import ConstraintError, condition

needs_kernel = pytest.mark.skipif(
    native.native_library() is None,
    reason=f"native kernel unavailable: {native.native_status()}",
)


@pytest.fixture
def short_rows_fused(monkeypatch):
    monkeypatch.setattr(update, "FUSED_MIN_POINTS", 1)


@pytest.fixture
def three_threads(monkeypatch):
    """Three threads on however few values, so that the ranges split rows mid-way (a thread
    per 2**15 values would leave these small cases on one)."""
    monkeypatch.setattr(native, "_VALUES_PER_THREAD", 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(threads)


def _eager(belief: GaussianBelief, constraint: LinearConstraint) -> GaussianBelief:
    """``condition`` with the fused path switched off."""
    saved = update.FUSED_MIN_POINTS
    update.FUSED_MIN_POINTS = 2**62
    try:
        return condition(belief, constraint)
    finally:
        update.FUSED_MIN_POINTS = saved


def _problem(batch, n, dtype, per_row_weights=False, noise=0.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(*batch, n, generator=generator, dtype=torch.float64)
    variance = torch.rand(*batch, n, generator=generator, dtype=torch.float64) + 0.1
    weight_shape = (*batch, 1, n) if per_row_weights else (1, n)
    weights = torch.rand(weight_shape, generator=generator, dtype=torch.float64) + 0.5
    values = torch.randn(*batch, 1, generator=generator, dtype=torch.float64)
    belief = GaussianBelief.diagonal(mean.to(dtype), variance.to(dtype))
    return belief, LinearConstraint(weights.to(dtype), values.to(dtype), noise)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("batch", "n", "per_row_weights", "noise"),
    [((), 1, False, 0.0), ((), 37, False, 0.0), ((5,), 101, True, 0.0), ((2, 3), 64, False, 0.3)],
)
def test_fused_update_is_the_eager_update_to_rounding(
    short_rows_fused, three_threads, dtype, batch, n, per_row_weights, noise
):
    belief, constraint = _problem(batch, n, dtype, per_row_weights, noise)
    fused, eager = condition(belief, constraint), _eager(belief, constraint)
    assert isinstance(fused.covariance, RankOneDowndate)
    assert type(eager.covariance) is LowRankCovariance
    tolerance = {torch.float32: 1e-5, torch.float64: 1e-12}[dtype]
    torch.testing.assert_close(fused.mean, eager.mean, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(fused.variance(), eager.variance(), rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(fused.covariance.core, eager.covariance.core, rtol=tolerance, atol=0)
    # The factor is formed on demand by the eager product itself.
    assert torch.equal(fused.covariance.factor, eager.covariance.factor)
    torch.testing.assert_close(
        fused.covariance.to_dense(), eager.covariance.to_dense(), rtol=tolerance, atol=tolerance
    )
    if noise == 0.0:  # exact conservation, to the rounding of the constraint's own sum
        weights = constraint.weights.double()
        mass = (weights @ fused.mean.double().unsqueeze(-1)).squeeze(-1)
        scale = (weights.abs() @ fused.mean.double().abs().unsqueeze(-1)).squeeze(-1)
        error = (mass - constraint.values.double()).abs()
        assert bool((error <= 8 * torch.finfo(dtype).eps * (scale + 1)).all())


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("offset", [0, 1, 3])
def test_the_fused_pass_is_its_formula_to_the_bit(
    monkeypatch, three_threads, dtype, streaming, offset
):
    # Odd lengths and starts off the 16-byte grid exercise the scalar head and tail around the
    # streamed vectors; two rows of different gains check that each row takes its own.
    monkeypatch.setattr(native, "_STREAMING_BYTES", 0 if streaming else 2**62)
    generator = torch.Generator().manual_seed(1)
    storage = torch.randn(2 * 1001 + offset, generator=generator, dtype=dtype)
    mean = storage[offset:].view(2, 1001)
    variance = torch.rand(2, 1001, generator=generator, dtype=dtype)
    weights = torch.rand(2, 1001, generator=generator, dtype=dtype)
    gain = torch.tensor([0.37, -1.9], dtype=dtype)
    shrink = torch.tensor([-0.8, -2.5], dtype=dtype)  # large enough to clamp some variances
    new_mean, new_variance = native.rank_one_apply(mean, variance, weights, gain, shrink)
    scaled = weights * variance
    assert torch.equal(new_mean, mean + scaled * gain[:, None])  # each product rounded
    # The eager update's variance, operation for operation (LowRankCovariance.variance).
    expected = scaled.square().mul_(shrink[:, None]).add_(variance).clamp_min_(0)
    assert bool((expected == 0).any()), "the case must clamp"
    assert torch.equal(new_variance, expected)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_fused_sums_are_float64_sums_and_repeat_exactly(monkeypatch, dtype):
    generator = torch.Generator().manual_seed(2)
    mean = torch.randn(3, 5000, generator=generator, dtype=dtype)
    variance = torch.rand(3, 5000, generator=generator, dtype=dtype)
    weights = torch.rand(1, 5000, generator=generator, dtype=dtype)
    sums = native.rank_one_sums(mean, variance, weights)  # (3, 2)
    # The terms are rounded in the input's dtype, as the kernel forms them, then summed exactly.
    terms = torch.stack([weights * mean, (weights * variance) * weights], dim=-1).double()
    exact = terms.sum(-2)  # float64 sums of 5000 terms: exact to ~1e-13 relative
    torch.testing.assert_close(sums, exact, rtol=1e-12, atol=1e-12)
    assert torch.equal(native.rank_one_sums(mean, variance, weights), sums)
    # Two threads split the 15,000 values mid-row 1; each adds its part of that row.
    monkeypatch.setattr(native, "_VALUES_PER_THREAD", 1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        split = native.rank_one_sums(mean, variance, weights)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(split, exact, rtol=1e-12, atol=1e-12)


@needs_kernel
def test_long_rows_take_the_fused_path_at_the_real_threshold():
    points = update.FUSED_MIN_POINTS
    grid = torch.linspace(0, 1, points, dtype=torch.float64)
    generator = torch.Generator().manual_seed(3)
    mean = torch.randn(points, generator=generator)
    variance = torch.rand(points, generator=generator) + 0.1
    mass = mass_constraint(grid, torch.tensor(0.5, dtype=torch.float64))
    constraint = LinearConstraint(mass.weights.float(), mass.values.float())
    belief = GaussianBelief.diagonal(mean, variance)
    posterior = condition(belief, constraint)
    assert isinstance(posterior.covariance, RankOneDowndate)
    mass_after = (mass.weights @ posterior.mean.double()).item()
    assert abs(mass_after - 0.5) < 1e-6  # float32 values, float64 quadrature
    shorter = GaussianBelief.diagonal(mean[:-1], variance[:-1])
    eager = condition(shorter, mass_constraint(grid[:-1], torch.tensor(0.5, dtype=torch.float64)))
    assert type(eager.covariance) is LowRankCovariance


@needs_kernel
def test_where_the_kernel_does_not_apply_the_update_is_eager(short_rows_fused):
    belief, constraint = _problem((4,), 50, torch.float64)
    # Autograd: the kernel has no backward, so a belief that records a graph stays eager.
    mean = belief.mean.clone().requires_grad_()
    posterior = condition(GaussianBelief.diagonal(mean, belief.variance()), constraint)
    assert type(posterior.covariance) is LowRankCovariance
    posterior.mean.sum().backward()
    assert mean.grad is not None
    # Two rows, a broadcast variance, a non-contiguous mean: eager as well.
    two_rows = LinearConstraint(
        torch.cat([constraint.weights, constraint.weights.flip(-1)]), torch.zeros(4, 2)
    )
    assert type(condition(belief, two_rows).covariance) is LowRankCovariance
    shared = GaussianBelief.diagonal(belief.mean, belief.variance()[0].expand(4, 50))
    assert type(condition(shared, constraint).covariance) is LowRankCovariance
    strided = GaussianBelief.diagonal(belief.mean.mT.contiguous().mT, belief.variance())
    assert type(condition(strided, constraint).covariance) is LowRankCovariance


@needs_kernel
def test_a_fused_posterior_conditions_again_as_an_eager_one(short_rows_fused):
    belief, constraint = _problem((3,), 40, torch.float64)
    second = LinearConstraint(
        torch.linspace(-1, 1, 40, dtype=torch.float64)[None], torch.ones(3, 1)
    )
    fused = condition(condition(belief, constraint), second)
    eager = condition(_eager(belief, constraint), second)
    torch.testing.assert_close(fused.mean, eager.mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fused.variance(), eager.variance(), rtol=1e-12, atol=1e-12)


@needs_kernel
def test_a_fused_posterior_forms_its_factor_only_when_asked(short_rows_fused):
    belief, constraint = _problem((3,), 40, torch.float64, per_row_weights=True)
    posterior = condition(belief, constraint)
    assert posterior.batch_shape == (3,) and posterior.covariance.rank == 1
    posterior.variance()
    assert "factor" not in vars(posterior.covariance)  # no pass over the grid for these
    assert posterior.covariance.factor.shape == (3, 40, 1)
    assert posterior.covariance.batch_shape == (3,)


@needs_kernel
def test_the_kernels_refuse_an_array_they_would_misread():
    mean = torch.zeros(4, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="contiguous CPU arrays"):
        native.rank_one_sums(mean.mT.contiguous().mT, mean, mean[:1])


@needs_kernel
def test_the_fused_update_refuses_what_the_eager_one_refuses(short_rows_fused):
    # No variance where the row has weight and a mass defect: the same ConstraintError.
    mean = torch.zeros(2, 30, dtype=torch.float64)
    belief = GaussianBelief.diagonal(mean, torch.zeros(2, 30, dtype=torch.float64))
    constraint = LinearConstraint(torch.ones(1, 30, dtype=torch.float64), torch.ones(2, 1))
    with pytest.raises(ConstraintError) as fused_error:
        condition(belief, constraint)
    with pytest.raises(ConstraintError) as eager_error:
        _eager(belief, constraint)
    assert str(fused_error.value) == str(eager_error.value)
    assert "no variance" in str(fused_error.value)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_fused_update_refuses_a_variance_that_overflows_as_the_eager_one(
    short_rows_fused, dtype
):
    # Finite variances whose g^T D g exceeds the dtype. Before: a NaN posterior variance.
    variance = torch.full((2, 30), torch.finfo(dtype).max / 10, dtype=dtype)
    belief = GaussianBelief.diagonal(torch.zeros(2, 30, dtype=dtype), variance)
    constraint = mass_constraint(torch.linspace(0, 40, 30, dtype=dtype), torch.ones(2, dtype=dtype))
    assert update.fused_update_applies(belief, constraint)
    with pytest.raises(ConstraintError) as fused_error:
        condition(belief, constraint)
    with pytest.raises(ConstraintError) as eager_error:
        _eager(belief, constraint)
    assert str(fused_error.value) == str(eager_error.value)
    assert f"overflows {dtype}" in str(fused_error.value)
    assert "is too large" in str(fused_error.value)


@pytest.mark.parametrize(
    ("environment", "status"),
    [
        ({"LAWFUL_NATIVE": "0"}, "off"),
        ({"CC": "/nonexistent/cc"}, "no C compiler"),
        ({"CC": "false"}, "build failed"),  # a compiler that fails: nothing left behind
    ],
)
def test_without_the_kernel_the_update_is_eager_and_says_so(tmp_path, environment, status):
    script = (
        "import torch, lawful.native as native, lawful.constraints.update as update\n"
        "from lawful.beliefs import GaussianBelief, LowRankCovariance\n"
        "from lawful.constraints.conservation import LinearConstraint\n"
        "update.FUSED_MIN_POINTS = 1\n"
        "belief = GaussianBelief.diagonal(torch.zeros(8), torch.ones(8))\n"
        "posterior = update.condition(belief, LinearConstraint(torch.ones(1, 8), torch.ones(1)))\n"
        "assert type(posterior.covariance) is LowRankCovariance\n"
        "assert abs(posterior.mean.sum().item() - 1) < 1e-6\n"
        "print(native.native_status())\n"
    )
    env = {**os.environ, "LAWFUL_NATIVE_CACHE": str(tmp_path), **environment}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith(status)
    assert not list(tmp_path.iterdir())  # nothing built


def test_the_kernel_is_built_into_the_named_cache(tmp_path):
    env = {**os.environ, "LAWFUL_NATIVE_CACHE": str(tmp_path / "kernels")}
    script = "import lawful.native as native; print(native.native_status())"
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    if native.native_library() is None:
        assert "eager forms" in run.stdout
        return
    assert run.stdout.startswith("built into " + str(tmp_path / "kernels"))
    built = list((tmp_path / "kernels").iterdir())
    assert [path.suffix for path in built] == [".so"]  # no half-written file left beside it
    again = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert again.stdout.startswith("loaded from " + str(built[0]))
