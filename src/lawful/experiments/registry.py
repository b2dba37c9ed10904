"""Experiments as definitions: one protocol, one registry, one set of run settings.

An experiment is an object with a ``name``, a ``kind`` (one line for ``lawful list``), its
``presets`` (name -> frozen dataclass of sizes) and ``run(settings)``, which generates, trains,
evaluates and reports into ``settings.out``. Ours register themselves when
:mod:`lawful.experiments` is imported; a user's register the same way, from a file of their own::

    # my_experiment.py
    from lawful.experiments import BoundaryExperiment, Task, register
    register(BoundaryExperiment("my-pde", MyProblem(), tasks=(Task("single-step"),)))

and ``lawful run my-pde --plugin my_experiment.py`` (or ``LAWFUL_PLUGINS=my_experiment.py``, or
an installed package's entry point in the group ``lawful.experiments``) finds it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from lawful.training.trainer import PRECISIONS

__all__ = [
    "PRESET_NAMES",
    "STAGES",
    "Experiment",
    "ExperimentError",
    "RunSettings",
    "experiments",
    "get_experiment",
    "load_plugins",
    "register",
    "run_experiment",
    "select_preset",
]

STAGES = ("data", "train", "evaluate")
PRESET_NAMES = ("quick", "paper", "tiny")
ENTRY_POINT_GROUP = "lawful.experiments"


class ExperimentError(ValueError):
    """An unknown experiment or preset, a clash of names, or a plugin that cannot be loaded."""


def _silent(message: str) -> None:
    """The default log: says nothing."""


@dataclass(frozen=True)
class RunSettings:
    """How to run an experiment: where, on what, from which seed, which stages.

    ``num_devices > 1`` trains data-parallel (DDP); then only the main process evaluates and
    the others' ``run`` returns ``None``. ``reference`` names a folder of published checkpoints
    to evaluate instead of training (where an experiment has them). ``precision`` is the
    training precision of the neural operators (lawful.training.trainer.PRECISIONS): mixed
    precision needs an experiment that trains operators, and ``16-mixed`` a CUDA device.
    """

    out: Path
    preset: str = "quick"
    device: str = "cpu"
    seed: int = 0
    reference: Path | None = None
    stages: tuple[str, ...] = STAGES
    progress: bool = True
    num_devices: int = 1
    precision: str = "32-true"
    log: Callable[[str], None] = _silent

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        unknown = [stage for stage in self.stages if stage not in STAGES]
        if unknown:
            raise ExperimentError(f"unknown stages {unknown}; choose from {STAGES}")
        if self.num_devices < 1:
            raise ExperimentError(f"num_devices must be at least 1, got {self.num_devices}")
        if self.precision not in PRECISIONS:
            raise ExperimentError(
                f"unknown precision {self.precision!r}; choose one of {list(PRECISIONS)}"
            )
        if self.precision == "16-mixed" and not self.device.startswith("cuda"):
            raise ExperimentError(
                f"precision 16-mixed needs a CUDA device, not {self.device!r} (float16 autocast "
                "is for GPUs); on a CPU use bf16-mixed"
            )


@runtime_checkable
class Experiment(Protocol):
    """What the runner and the command line need of an experiment."""

    name: str
    kind: str
    presets: Mapping[str, Any]

    def run(self, settings: RunSettings) -> dict | None:
        """The stages of ``settings``; the ``metrics.json`` content when it evaluated."""
        ...


_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment, replace: bool = False) -> Experiment:
    """Add ``experiment`` under its name; a second one of the same name is an error unless
    ``replace``. Returns the experiment, so a definition can register as it is made."""
    if not isinstance(experiment, Experiment):
        raise ExperimentError(
            f"{experiment!r} is not an experiment: it needs name, kind, presets and run(settings)"
        )
    if (
        experiment.name in _REGISTRY
        and not replace
        and _REGISTRY[experiment.name] is not experiment
    ):
        raise ExperimentError(f"an experiment named {experiment.name!r} is already registered")
    _REGISTRY[experiment.name] = experiment
    return experiment


def experiments() -> dict[str, Experiment]:
    """Every registered experiment by name, in name order."""
    return dict(sorted(_REGISTRY.items()))


def get_experiment(name: str) -> Experiment:
    if name not in _REGISTRY:
        raise ExperimentError(f"unknown experiment {name!r}; choose one of {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def select_preset(experiment: Experiment, name: str) -> Any:
    """The experiment's preset called ``name``, or an error naming the valid ones."""
    if name not in experiment.presets:
        raise ExperimentError(
            f"unknown preset {name!r} for {experiment.name!r}; choose one of "
            f"{sorted(experiment.presets)}"
        )
    return experiment.presets[name]


def run_experiment(name: str, settings: RunSettings) -> dict | None:
    """Run the registered experiment ``name``; returns its metrics when it evaluated."""
    return get_experiment(name).run(settings)


def load_plugins(paths: Iterable[str | Path] = (), entry_point_group: str = ENTRY_POINT_GROUP):
    """Import experiment files (each registers what it defines) and installed entry points.

    A file is imported once however often it is named. Any error while importing it is
    reported as an :class:`ExperimentError` naming the file.
    """
    for path in paths:
        path = Path(path).resolve()
        module_name = f"lawful_plugin_{abs(hash(str(path)))}"
        if module_name in sys.modules:
            continue
        if not path.is_file():
            raise ExperimentError(f"plugin file {path} does not exist")
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ExperimentError(f"plugin {path} is not an importable Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[module_name]
            raise ExperimentError(f"plugin {path} failed to import: {error}") from error
    for entry_point in entry_points(group=entry_point_group):
        try:
            entry_point.load()  # importing the module registers its experiments
        except Exception as error:
            raise ExperimentError(
                f"plugin entry point {entry_point.name!r} ({entry_point.value}) failed to "
                f"import: {error}"
            ) from error
