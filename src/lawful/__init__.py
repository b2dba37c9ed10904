"""lawful: physics-constrained machine learning.

The public API: beliefs over a grid, constraints on them, and the updates that enforce those
constraints. Models, data and experiments live in their subpackages.
"""

from lawful.beliefs import (
    Covariance,
    DenseCovariance,
    DiagonalCovariance,
    GaussianBelief,
    LowRankCovariance,
)
from lawful.constraints.bounds import condition_within_bounds
from lawful.constraints.conservation import (
    LinearConstraint,
    mass_constraint,
    mass_from_boundary_flux,
    stack_constraints,
)
from lawful.constraints.quadrature import (
    cell_volume_weights,
    quadrature_weights,
    riemann_weights,
    trapezoid_weights,
)
from lawful.constraints.update import (
    ConstraintError,
    condition,
    constrained_log_likelihood,
    project_identity,
    sample_posterior,
)

__version__ = "0.1.0"

__all__ = [
    "ConstraintError",
    "Covariance",
    "DenseCovariance",
    "DiagonalCovariance",
    "GaussianBelief",
    "LinearConstraint",
    "LowRankCovariance",
    "cell_volume_weights",
    "condition",
    "condition_within_bounds",
    "constrained_log_likelihood",
    "mass_constraint",
    "mass_from_boundary_flux",
    "project_identity",
    "quadrature_weights",
    "riemann_weights",
    "sample_posterior",
    "stack_constraints",
    "trapezoid_weights",
]
