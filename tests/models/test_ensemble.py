"""Ensemble beliefs: spread that is only rounding is no spread."""

import numpy as np
import pytest
import torch

from lawful.constraints.conservation import mass_constraint
from lawful.constraints.update import ConstraintError, condition
from lawful.models.ensemble import ensemble_belief

GRID = torch.linspace(0, 1, 11, dtype=torch.float64)


def _base():
    generator = torch.Generator().manual_seed(0)
    return torch.rand(3, 11, generator=generator, dtype=torch.float64) + 1  # (functions, n)


def test_members_equal_up_to_rounding_have_no_spread():
    # Members 1e-16 apart (under one ulp of values in [1, 2)): before, their rounding-made
    # spread let the update move the mean by ten times the data's range.
    generator = torch.Generator().manual_seed(1)
    base = _base()
    members = base + 1e-16 * torch.randn(4, 3, 11, generator=generator, dtype=torch.float64)
    equal = base.expand(4, 3, 11)
    mass = mass_constraint(GRID, torch.full((3,), 1.6, dtype=torch.float64))
    belief = ensemble_belief(members)
    assert bool((belief.variance() == 0).all())
    with pytest.raises(ConstraintError, match="no variance under the belief"):
        condition(belief, mass)
    with pytest.raises(ConstraintError, match="no variance under the belief"):
        condition(ensemble_belief(equal), mass)
    # With a noise variance both are the same prior: the noise carries the update.
    noisy = condition(ensemble_belief(members, 1e-2), mass)
    torch.testing.assert_close(noisy.mean, condition(ensemble_belief(equal, 1e-2), mass).mean)
    assert float((noisy.mean - members.mean(0)).abs().max()) < float(base.max() - base.min())


@pytest.mark.parametrize("shift", [0.0, -0.5])
def test_rounding_is_judged_on_the_fields_scale_where_values_cross_zero(shift):
    # Values in [0, 1) or [-0.5, 0.5): near zero a 1e-16 deviation is many ulp of the point's
    # own value. Judged per point, that let the update move the mean by 11 to 15 times the data's
    # range; judged on the field's scale (its largest magnitude) it is rounding, as it is.
    generator = torch.Generator().manual_seed(0)
    base = torch.rand(3, 11, generator=generator, dtype=torch.float64) + shift
    noise = 1e-16 * torch.randn(4, 3, 11, generator=torch.Generator().manual_seed(1))
    belief = ensemble_belief(base + noise.double())
    assert bool((belief.variance() == 0).all())
    mass = mass_constraint(GRID, torch.full((3,), 0.5, dtype=torch.float64))
    with pytest.raises(ConstraintError, match="no variance under the belief"):
        condition(belief, mass)


def test_a_point_at_zero_gets_no_spread_from_rounding():
    # The members pass through 0 at the middle point; 1e-16 there is not a spread of a field of
    # scale 1 (before, that point got variance 1e-32 and a mass of 0.5 sent it from 0 to 4).
    base = torch.linspace(-1, 1, 9, dtype=torch.float64)
    belief = ensemble_belief(torch.stack([base, base + 1e-16, base - 1e-16]))
    assert bool((belief.variance() == 0).all())


def test_the_scale_is_each_functions_own():
    # One function of scale 1e6 must not swallow the real spread of another of scale 1.
    generator = torch.Generator().manual_seed(3)
    small = 1 + 1e-6 * torch.randn(4, 11, generator=generator, dtype=torch.float64)
    large = torch.full((4, 11), 1e6, dtype=torch.float64)
    belief = ensemble_belief(torch.stack([small, large], dim=1))  # (K, functions, n)
    torch.testing.assert_close(belief.variance()[0], small.var(0), rtol=1e-6, atol=0)
    assert bool((belief.variance()[1] == 0).all())


def test_spread_above_rounding_is_kept():
    # 1e-12 on values near 1.5 is ~5000 ulp: a spread, known to the rounding of its deviations.
    generator = torch.Generator().manual_seed(2)
    members = _base() + 1e-12 * torch.randn(4, 3, 11, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(
        ensemble_belief(members).variance(), members.var(0), rtol=1e-3, atol=0
    )


@pytest.mark.parametrize(
    ("predictions", "noise", "error", "message"),
    [
        (
            torch.randn(3, 2, 5),
            torch.ones(3, 5),
            ValueError,
            r"noise variance of shape \(3, 5\) does not broadcast to the members' fields \(2, 5\)",
        ),
        (np.zeros((3, 4)), 0.0, TypeError, r"ensemble predictions must be a torch\.Tensor"),
        (torch.zeros(3, 4, dtype=torch.int32), 0.0, TypeError, "floating-point"),
        (torch.zeros(3, 4), torch.tensor(1e-40), ValueError, "subnormal"),
    ],
)
def test_ensemble_input_is_named(predictions, noise, error, message):
    with pytest.raises(error, match=message):
        ensemble_belief(predictions, noise)
