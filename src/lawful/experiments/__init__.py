"""Experiment definitions: data + models + presets, one runner per family."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lawful.experiments import boundary, conservation, ensemble

__all__ = ["EXPERIMENTS", "PRESET_NAMES", "run_experiment"]

EXPERIMENTS: dict[str, str] = {
    **{name: "conservation (ProbConserv)" for name in conservation.CONSERVATION_EXPERIMENTS},
    **{name: "boundary conditions (BOON)" for name in boundary.BOUNDARY_EXPERIMENTS},
    **{
        name: "boundaries and conservation (BOON ensemble + ProbConserv)"
        for name in ensemble.ENSEMBLE_EXPERIMENTS
    },
}
PRESET_NAMES = ("quick", "paper", "tiny")


def run_experiment(
    name: str,
    preset: str,
    out: Path,
    device: str = "cpu",
    seed: int = 0,
    reference: Path | None = None,
    stages: tuple[str, ...] = ("data", "train", "evaluate"),
    progress: bool = True,
    log: Callable[[str], None] = lambda message: None,
    num_devices: int = 1,
) -> dict | None:
    """Run ``stages`` of experiment ``name``; returns the metrics when it evaluated.

    ``num_devices > 1`` trains data-parallel; processes other than the main one return ``None``.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {sorted(EXPERIMENTS)}")
    if name in boundary.BOUNDARY_EXPERIMENTS:
        runner = boundary.run
    elif name in ensemble.ENSEMBLE_EXPERIMENTS:
        runner = ensemble.run
    else:
        runner = conservation.run
    return runner(
        name, preset, out, device, seed, reference, stages, progress, log, num_devices=num_devices
    )
