"""PDE problems: parameters -> exact or numerical solutions, domains, conserved quantities."""

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
    "CONSERVATION_PROBLEMS",
    "AdvectionProblem",
    "BurgersProblem",
    "ConservationProblem",
    "HeatProblem",
    "PorousMediumProblem",
    "StefanProblem",
    "get_conservation_problem",
    "stefan_similarity_root",
]
