"""What every experiment runner does first: refuse what it cannot do, pick its preset, and
record what it runs with."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lawful.experiments.registry import Experiment, RunSettings, select_preset

__all__ = ["begin_run", "record_settings"]


def record_settings(out: Path, experiment: str, preset_name: str, preset, seed: int) -> None:
    """Create ``out`` and write ``settings.json``: the experiment, preset sizes and seed."""
    out.mkdir(parents=True, exist_ok=True)
    settings = {"experiment": experiment, "preset": preset_name, "seed": seed, **asdict(preset)}
    (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")


def begin_run(experiment: Experiment, settings: RunSettings) -> Any:
    """The preset ``settings`` name, with ``settings.json`` written into ``settings.out``.

    For an experiment without published checkpoints, ``--reference`` is an error (the
    conservation experiments handle it before they get here).
    """
    if settings.reference is not None:
        raise ValueError(
            f"--reference is not supported for {experiment.name!r}: there are no published "
            "checkpoints for it; run without --reference to train"
        )
    preset = select_preset(experiment, settings.preset)
    record_settings(settings.out, experiment.name, settings.preset, preset, settings.seed)
    return preset
