"""lawful: physics-constrained machine learning.

The public API, both halves in one vocabulary:

- conservation (ProbConserv): beliefs over a grid (:class:`GaussianBelief`), linear constraints
  on them (:func:`mass_constraint`, :func:`stack_constraints`), and the updates that enforce
  them (:func:`condition`, :func:`condition_within_bounds`, :func:`project_identity`);
- boundaries (BOON): conditions at the ends of an axis (:class:`Dirichlet`, :class:`Neumann`,
  :class:`Periodic` in :class:`BoundaryConditions`) or on the four walls of a 2-D field
  (:class:`Walls`, :func:`apply_walls`, :func:`wall_residuals`),
  Fourier neural operators corrected to meet them (:class:`BoundaryCorrectedFNO`,
  :class:`BoundaryOverwrite` for any model), and the same conditions as constraint rows
  (:func:`boundary_constraint`, :func:`walls_constraint`), so the two compose;
- models that answer with a belief: :func:`ensemble_belief` (any ensemble), and in
  :mod:`lawful.models` the ANP (``predict_belief``) and the GP (``gp_belief``).

Data, training, experiments and the command line live in their subpackages.
"""

from lawful.beliefs import (
    Covariance,
    DenseCovariance,
    DiagonalCovariance,
    GaussianBelief,
    LowRankCovariance,
)
from lawful.constraints.boundary import (
    BoundaryConditions,
    Dirichlet,
    Neumann,
    Periodic,
    apply_boundary_conditions,
    boundary_constraint,
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
from lawful.constraints.walls import Walls, apply_walls, wall_residuals, walls_constraint
from lawful.models.ensemble import ensemble_belief
from lawful.operators.boon import BoundaryCorrectedFNO, BoundaryOverwrite
from lawful.operators.fno import FNO1d, FNO2d

__version__ = "0.1.0"

__all__ = [
    "BoundaryConditions",
    "BoundaryCorrectedFNO",
    "BoundaryOverwrite",
    "ConstraintError",
    "Covariance",
    "DenseCovariance",
    "DiagonalCovariance",
    "Dirichlet",
    "FNO1d",
    "FNO2d",
    "GaussianBelief",
    "LinearConstraint",
    "LowRankCovariance",
    "Neumann",
    "Periodic",
    "Walls",
    "apply_boundary_conditions",
    "apply_walls",
    "boundary_constraint",
    "cell_volume_weights",
    "condition",
    "condition_within_bounds",
    "constrained_log_likelihood",
    "ensemble_belief",
    "mass_constraint",
    "mass_from_boundary_flux",
    "project_identity",
    "quadrature_weights",
    "riemann_weights",
    "sample_posterior",
    "stack_constraints",
    "trapezoid_weights",
    "wall_residuals",
    "walls_constraint",
]
