"""What every experiment runner does first: record what it runs with."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

__all__ = ["record_settings"]


def record_settings(out: Path, experiment: str, preset_name: str, preset, seed: int) -> None:
    """Create ``out`` and write ``settings.json``: the experiment, preset sizes and seed."""
    out.mkdir(parents=True, exist_ok=True)
    settings = {"experiment": experiment, "preset": preset_name, "seed": seed, **asdict(preset)}
    (out / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
