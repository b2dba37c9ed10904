"""Experiment definitions: data + models + presets, found through one registry.

Importing this package registers our experiments (conservation, boundary, ensemble, the 2-D
walls, the cavity); a user's register the same way (:mod:`lawful.experiments.registry`).
"""

from lawful.experiments.boundary import BoundaryExperiment, BoundaryPreset, OperatorMethod, Task
from lawful.experiments.cavity import CavityExperiment, CavityPreset
from lawful.experiments.conservation import ConservationExperiment, ConservationPreset
from lawful.experiments.ensemble import EnsembleExperiment, EnsemblePreset
from lawful.experiments.registry import (
    PRESET_NAMES,
    STAGES,
    Experiment,
    ExperimentError,
    RunSettings,
    experiments,
    get_experiment,
    load_plugins,
    register,
    run_experiment,
)
from lawful.experiments.walls2d import WallExperiment, WallProblem

__all__ = [
    "PRESET_NAMES",
    "STAGES",
    "BoundaryExperiment",
    "BoundaryPreset",
    "CavityExperiment",
    "CavityPreset",
    "ConservationExperiment",
    "ConservationPreset",
    "EnsembleExperiment",
    "EnsemblePreset",
    "Experiment",
    "ExperimentError",
    "OperatorMethod",
    "RunSettings",
    "Task",
    "WallExperiment",
    "WallProblem",
    "experiments",
    "get_experiment",
    "load_plugins",
    "register",
    "run_experiment",
]
