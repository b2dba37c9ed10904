"""HDF5 storage of generated datasets.

Layout of a lawful dataset file (format_version 1)::

    /                   attrs: format = "lawful-dataset", format_version = 1,
                               problem = str (e.g. "pme"), metadata = JSON string
    /arrays/<name>      float arrays, all with the same leading dimension N (functions / samples)
    /params             (N, P) float64, attrs: names = JSON list of the P parameter names
    /grid/<axis>        optional 1-D coordinate arrays (e.g. x, t)

Arrays keep their floating dtype (float32 stays float32); parameters are stored in float64.
Files are written to a temporary file in the destination folder and moved into place with
``os.replace``, so an interrupted write never leaves a partial file under the final name.
Every problem with a file raises :class:`DatasetError`, naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "DatasetError",
    "StoredDataset",
    "load_dataset",
    "save_dataset",
    "write_atomically",
    "write_text_atomically",
]

FORMAT_NAME = "lawful-dataset"
FORMAT_VERSION = 1
# Where Linux reports the process's umask (among other things), without changing it.
_PROCESS_STATUS = Path("/proc/self/status")


class DatasetError(ValueError):
    """A dataset file is missing, unreadable, foreign, too new, or inconsistent."""


@dataclass(frozen=True)
class StoredDataset:
    """The contents of a lawful dataset file (see the module docstring for the layout)."""

    arrays: dict[str, Tensor]
    params: Tensor  # (N, P) float64
    param_names: tuple[str, ...]
    problem: str
    grid: dict[str, Tensor] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.params.shape[0]


def _check_contents(
    path: Path,
    arrays: Mapping[str, Tensor],
    params: Tensor,
    param_names: Sequence[str],
    grid: Mapping[str, Tensor],
) -> None:
    """Raise :class:`DatasetError` unless the contents follow the documented layout."""

    def fail(problem: str) -> DatasetError:
        return DatasetError(f"{path}: {problem}")

    if not arrays:
        raise fail("a dataset needs at least one array")
    if params.ndim != 2 or params.shape[1] != len(param_names):
        raise fail(
            f"params must have shape (N, {len(param_names)}) for parameter names "
            f"{list(param_names)}, got {tuple(params.shape)}"
        )
    checked = [("array", name, values) for name, values in arrays.items()]
    checked += [("grid axis", axis, values) for axis, values in grid.items()]
    checked.append(("params", "params", params))
    for kind, name, values in checked:
        if not name or "/" in name:
            raise fail(f"{kind} name {name!r} must be non-empty and free of '/'")
        if not values.is_floating_point():
            raise fail(f"{kind} {name!r} must be a floating-point tensor, got {values.dtype}")
        if not bool(values.isfinite().all()):
            bad = "NaN" if bool(values.isnan().any()) else "infinite"
            raise fail(f"{kind} {name!r} contains {bad} values")
    num_samples = params.shape[0]
    for name, values in arrays.items():
        if values.ndim == 0 or values.shape[0] != num_samples:
            raise fail(
                f"array {name!r} has shape {tuple(values.shape)}, but every array must lead "
                f"with N = {num_samples} (the number of parameter rows)"
            )
    for axis, values in grid.items():
        if values.ndim != 1:
            raise fail(
                f"grid axis {axis!r} must be one-dimensional, got shape {tuple(values.shape)}"
            )


def save_dataset(
    path: str | os.PathLike[str],
    arrays: Mapping[str, Tensor],
    params: Tensor,
    param_names: Sequence[str],
    problem: str,
    grid: Mapping[str, Tensor] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a dataset atomically to ``path`` and return the path."""
    path = Path(path)
    grid = dict(grid or {})
    _check_contents(path, arrays, params, param_names, grid)
    try:
        metadata_json = json.dumps(dict(metadata or {}))
    except TypeError as error:
        raise DatasetError(f"{path}: metadata must be JSON-serialisable ({error})") from error

    def write(temporary: Path) -> None:
        with h5py.File(temporary, "w") as file:
            file.attrs["format"] = FORMAT_NAME
            file.attrs["format_version"] = FORMAT_VERSION
            file.attrs["problem"] = problem
            file.attrs["metadata"] = metadata_json
            arrays_group = file.create_group("arrays")
            for name, values in arrays.items():
                arrays_group.create_dataset(name, data=values.detach().cpu().numpy())
            params_dataset = file.create_dataset(
                "params", data=params.detach().cpu().to(torch.float64).numpy()
            )
            params_dataset.attrs["names"] = json.dumps(list(param_names))
            grid_group = file.create_group("grid")
            for axis, values in grid.items():
                grid_group.create_dataset(axis, data=values.detach().cpu().numpy())

    write_atomically(path, write)
    return path


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write(temporary)`` to a temporary file beside ``path``, then move it into place:
    an interrupted write never leaves a partial file under the final name.

    The file gets the mode of the one it replaces, or for a new file the mode ``open(path,
    "w")`` gives (0666 less the umask), not the temporary file's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".partial"
    )
    os.close(descriptor)
    try:
        write(Path(temporary))
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)  # gone already after os.replace


def _reported_umask() -> int | None:
    """The process's umask as Linux reports it (since 4.7), or None where it does not."""
    try:
        lines = _PROCESS_STATUS.read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1], 8) for line in lines if line.startswith("Umask:")), None)


def _umask() -> int:
    """The process's umask now where the system reports it, else as it was at import."""
    reported = _reported_umask()
    return _UMASK_AT_IMPORT if reported is None else reported


def _umask_at_import() -> int:
    reported = _reported_umask()
    if reported is not None:
        return reported
    # os.umask reads the umask only by setting it, which races with threads creating files
    # meanwhile: done once, at import, where the system does not report it.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK_AT_IMPORT = _umask_at_import()


def write_text_atomically(path: Path, text: str) -> None:
    """:func:`write_atomically` for a text file (a report, a JSON record)."""
    write_atomically(path, lambda temporary: temporary.write_text(text))


def _read_group(group: h5py.Group) -> dict[str, Tensor]:
    return {name: torch.from_numpy(np.asarray(dataset[()])) for name, dataset in group.items()}


def load_dataset(path: str | os.PathLike[str]) -> StoredDataset:
    """Read a dataset written by :func:`save_dataset`, checking its format and consistency."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    try:
        with h5py.File(path, "r") as file:
            format_name = file.attrs.get("format")
            if format_name != FORMAT_NAME:
                raise DatasetError(
                    f"{path}: not a lawful dataset (format attribute is {format_name!r}, "
                    f"expected {FORMAT_NAME!r})"
                )
            version = int(file.attrs.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise DatasetError(
                    f"{path}: format_version {version} is newer than this lawful reads "
                    f"({FORMAT_VERSION}); upgrade lawful"
                )
            if version < 1:
                raise DatasetError(f"{path}: missing or invalid format_version ({version})")
            dataset = StoredDataset(
                arrays=_read_group(file["arrays"]),
                params=torch.from_numpy(np.asarray(file["params"][()])),
                param_names=tuple(json.loads(file["params"].attrs["names"])),
                problem=str(file.attrs["problem"]),
                grid=_read_group(file["grid"]) if "grid" in file else {},
                metadata=json.loads(file.attrs["metadata"]),
            )
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise DatasetError(f"{path}: unreadable or truncated dataset file ({error})") from error
    _check_contents(path, dataset.arrays, dataset.params, dataset.param_names, dataset.grid)
    return dataset
