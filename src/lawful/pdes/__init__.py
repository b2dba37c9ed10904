"""PDE problems: parameters -> exact or numerical solutions, domains, conserved quantities and
boundary conditions."""

from lawful.pdes.boundary_problems import (
    BOUNDARY_PROBLEMS,
    NEUMANN_STENCIL_ORDER,
    NUM_FRAMES,
    BoundaryDataset,
    BoundaryProblem,
    Sampler,
    Solution,
    make_boundary_dataset,
)
from lawful.pdes.conservation import (
    CONSERVATION_PROBLEMS,
    AdvectionProblem,
    BurgersProblem,
    ConservationProblem,
    HeatProblem,
    PorousMediumProblem,
    StefanProblem,
    get_conservation_problem,
    stefan_similarity_root,
)

__all__ = [
    "BOUNDARY_PROBLEMS",
    "CONSERVATION_PROBLEMS",
    "NEUMANN_STENCIL_ORDER",
    "NUM_FRAMES",
    "AdvectionProblem",
    "BoundaryDataset",
    "BoundaryProblem",
    "BurgersProblem",
    "ConservationProblem",
    "HeatProblem",
    "PorousMediumProblem",
    "Sampler",
    "Solution",
    "StefanProblem",
    "get_conservation_problem",
    "make_boundary_dataset",
    "stefan_similarity_root",
]
