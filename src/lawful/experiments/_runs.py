"""What every experiment runner does first: refuse what it cannot do, pick its preset, and
record what it runs with."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterator
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from lawful.allocator import allocator_state
from lawful.data.store import write_text_atomically
from lawful.experiments.registry import Experiment, RunSettings, select_preset
from lawful.training.operator import with_precision

__all__ = ["begin_run", "in_precision", "record_settings", "run_environment"]

# The packages whose versions can move a run's numbers.
_PACKAGES = ("lawful", "torch", "numpy", "lightning", "gpytorch", "h5py")
# Environment variables that set the CPU libraries' threads or determinism.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG")


def run_environment(device: str) -> dict[str, Any]:
    """What shapes a run's numbers beyond its settings: versions, threads, machine, device.

    The same settings give bit-identical results on one machine and environment; another
    torch build, thread count or CPU can change the rounding, and with it the last digits.
    """

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    environment: dict[str, Any] = {
        "python": platform.python_version(),
        "packages": {package: version(package) for package in _PACKAGES},
        "machine": platform.machine(),
        "platform": platform.platform(),
        "processor": _processor_name(),
        # The vector instructions torch's CPU kernels use (e.g. AVX2, AVX512): they set how
        # sums are split, so machines with different ones round differently.
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "thread_variables": {name: os.environ.get(name) for name in _THREAD_VARIABLES},
        # Speed only (results are bit-identical either way): whether freed memory is kept.
        "allocator": allocator_state(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        environment["cuda"] = {
            "device_name": torch.cuda.get_device_name(),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    return environment


def _processor_name() -> str | None:
    """The CPU's model name (Linux's /proc/cpuinfo; elsewhere what ``platform`` knows)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def record_settings(
    out: Path, experiment: str, preset_name: str, preset, seed: int, device: str = "cpu"
) -> None:
    """Create ``out`` and write ``settings.json``: the experiment, preset sizes, seed and the
    environment (:func:`run_environment`), atomically.

    A folder that already holds another run's settings (another experiment, preset, size, seed
    or precision; the environment may differ, a resumed run's does) is refused with a
    ``ValueError`` before anything is written: its results would otherwise sit beside the
    settings of a run that never made them."""
    run = {"experiment": experiment, "preset": preset_name, "seed": seed, **asdict(preset)}
    run = json.loads(json.dumps(run))  # as the file holds it: tuples are lists
    path = out / "settings.json"
    if path.exists():
        _check_same_run(path, run)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps({**run, "environment": run_environment(device)}, indent=2) + "\n"
    write_text_atomically(path, text)


def _check_same_run(path: Path, run: dict[str, Any]) -> None:
    """Raise unless ``path`` records the run ``run`` describes (its environment aside), naming
    the settings that differ."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{path} cannot be read ({error}); give another --out, or delete it to start over"
        ) from error
    there = dict(_flattened({k: v for k, v in recorded.items() if k != "environment"}))
    here = dict(_flattened(run))
    named_first = ("experiment", "preset", "seed")  # what a user chose, before the sizes
    differing = sorted(
        (key for key in there.keys() | here.keys() if there.get(key) != here.get(key)),
        key=lambda key: (named_first.index(key) if key in named_first else len(named_first), key),
    )
    if differing:
        shown = "; ".join(
            f"{key} {there.get(key)!r} there, {here.get(key)!r} here" for key in differing[:4]
        )
        more = f"; and {len(differing) - 4} more" if len(differing) > 4 else ""
        raise ValueError(
            f"{path.parent} holds another run ({shown}{more}): give another --out, or delete "
            "that folder to start over"
        )


def _flattened(settings: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of nested settings: ``single_step.precision``."""
    for key, value in settings.items():
        if isinstance(value, dict):
            yield from _flattened(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def in_precision(experiment: Experiment, preset: Any, settings: RunSettings) -> Any:
    """``preset`` with its operators trained in the run's precision; mixed precision for an
    experiment that trains no neural operator (``preset`` holds no OperatorSettings) is an
    error."""
    if settings.precision == "32-true":
        return preset
    changed = with_precision(preset, settings.precision)
    if changed == preset:  # every preset trains in 32-true: unchanged, it has no operators
        raise ValueError(
            f"--precision {settings.precision} is not supported for {experiment.name!r}: mixed "
            "precision is for training neural operators, and it trains none"
        )
    return changed


def begin_run(experiment: Experiment, settings: RunSettings) -> Any:
    """The preset ``settings`` name in the run's precision (:func:`in_precision`), with
    ``settings.json`` written into ``settings.out``.

    For an experiment without published checkpoints, ``--reference`` is an error (the
    conservation experiments handle it before they get here).
    """
    if settings.reference is not None:
        raise ValueError(
            f"--reference is not supported for {experiment.name!r}: there are no published "
            "checkpoints for it; run without --reference to train"
        )
    preset = in_precision(experiment, select_preset(experiment, settings.preset), settings)
    record_settings(
        settings.out, experiment.name, settings.preset, preset, settings.seed, settings.device
    )
    return preset
