"""PDE problems: parameters -> exact or numerical solutions, domains, conserved quantities and
boundary conditions.

One catalogue, :data:`PROBLEMS`: the conservation problems (exact solutions and masses) and the
boundary problems (samplers over our solvers), every entry a :class:`Problem`.
"""

from lawful.pdes.boundary_problems import (
    BOUNDARY_PROBLEMS,
    NEUMANN_STENCIL_ORDER,
    BoundaryDataset,
    BoundaryProblem,
    make_boundary_dataset,
)
from lawful.pdes.cavity import (
    CAVITY_WALLS,
    CavityFlow,
    OscillatingLid,
    SteadyCavity,
    cavity_constraint,
    cut_flux_weights,
    cut_fluxes,
    divergence,
    sample_cavity_flows,
    solve_cavity,
    stable_time_step,
    steady_cavity,
    vorticity,
    wall_velocity,
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
from lawful.pdes.darcy import sample_darcy, solve_darcy
from lawful.pdes.problem import NUM_FRAMES, Problem, Sampler, Solution
from lawful.pdes.random_fields import sample_gaussian_random_field_2d
from lawful.pdes.wave2d import sample_wave_2d, solve_wave_neumann_2d, wave_cosine_series_2d

PROBLEMS: dict[str, Problem] = {**CONSERVATION_PROBLEMS, **BOUNDARY_PROBLEMS}
"""Every problem of the catalogue by name (the names of the two kinds do not clash)."""


def get_problem(name: str) -> Problem:
    """The catalogue's problem called ``name``."""
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose one of {sorted(PROBLEMS)}")
    return PROBLEMS[name]


__all__ = [
    "BOUNDARY_PROBLEMS",
    "CAVITY_WALLS",
    "CONSERVATION_PROBLEMS",
    "NEUMANN_STENCIL_ORDER",
    "NUM_FRAMES",
    "PROBLEMS",
    "AdvectionProblem",
    "BoundaryDataset",
    "BoundaryProblem",
    "BurgersProblem",
    "CavityFlow",
    "ConservationProblem",
    "HeatProblem",
    "OscillatingLid",
    "PorousMediumProblem",
    "Problem",
    "Sampler",
    "Solution",
    "SteadyCavity",
    "StefanProblem",
    "cavity_constraint",
    "cut_flux_weights",
    "cut_fluxes",
    "divergence",
    "get_conservation_problem",
    "get_problem",
    "make_boundary_dataset",
    "sample_cavity_flows",
    "sample_darcy",
    "sample_gaussian_random_field_2d",
    "sample_wave_2d",
    "solve_cavity",
    "solve_darcy",
    "solve_wave_neumann_2d",
    "stable_time_step",
    "steady_cavity",
    "stefan_similarity_root",
    "vorticity",
    "wall_velocity",
    "wave_cosine_series_2d",
]
