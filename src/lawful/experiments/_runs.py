"""What every experiment runner does first: pick its preset and record what it runs with."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

__all__ = ["record_settings", "select_preset"]

Preset = TypeVar("Preset")


def select_preset(presets: Mapping[str, Preset], name: str) -> Preset:
    """The preset called ``name``, or a ``ValueError`` naming the valid ones."""
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(presets)}")
    return presets[name]


def record_settings(out: Path, experiment: str, preset_name: str, preset, seed: int) -> None:
    """Create ``out`` and write ``settings.json``: the experiment, preset sizes and seed."""
    out.mkdir(parents=True, exist_ok=True)
    settings = {"experiment": experiment, "preset": preset_name, "seed": seed, **asdict(preset)}
    (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
