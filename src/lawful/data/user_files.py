"""Read a user's operator-learning data (for ``lawful train-operator``) from HDF5, NumPy or MATLAB.

Layout
------
A data file holds N samples of an operator, input function -> output function, on a grid with one
spatial axis, ``x``, or two, ``x`` and ``y`` (array axes 1 and 2). The keys, each followed by the
aliases tried when the key itself is absent:

- ``inputs`` (aliases ``a``, ``input``, ``coeff``, ``u0``): shape ``(N, X)`` or ``(N, X, Y)``; the
  input function (an initial condition or a coefficient field), one channel.
- ``outputs`` (aliases ``u``, ``output``, ``sol``): shape ``(N, X[, Y])`` for a single-step
  operator, or ``(N, X[, Y], T)`` for a multi-step one: time is the LAST axis, and needs ``t``.
- ``x``, ``y``: the spatial coordinates, shapes ``(X,)`` and ``(Y,)``, strictly increasing and
  uniformly spaced (BOON's boundary stencils assume one spacing), to within 1e-6 of the spacing
  plus the round-off of the file's float type. Optional: an absent grid is uniform on [0, 1]
  with both ends included, ``linspace(0, 1, X)``.
- ``t``: the output times, shape ``(T,)``, strictly increasing (not necessarily uniform); present
  exactly when ``outputs`` has a time axis.
- boundary data, one key per wall: ``x_left`` and ``x_right`` (aliases ``left``, ``right``) at the
  first and last x and, in 2-D, ``y_left`` and ``y_right`` at the first and last y. It is the
  condition's value at that wall (u at a Dirichlet wall; at a Neumann wall u_x at an x wall and
  u_y at a y wall, the derivative towards increasing x or y, not the outward normal one) for
  each sample and point along the wall: shape ``(N,)`` in 1-D; ``(N, Y)`` for an x wall and
  ``(N, X)`` for a y wall in 2-D; with time, either that shape (the same value at every time) or
  that shape with ``T`` last, e.g. ``(N, T)`` in 1-D. Optional: a wall without data has the value
  0 (u = 0 at a Dirichlet wall, a zero derivative at a Neumann wall); periodic walls take none.

Keys named by ``input_key`` / ``output_key`` (``--input-key`` / ``--output-key``) replace the
aliases for files that use other names, and are not taken for any other role (so
``input_key="x"`` leaves the x grid at its default). Other keys are ignored; two aliases of the
same thing in one file are refused as ambiguous. A vector may also be stored as a ``(1, n)`` or
``(n, 1)`` matrix, as MATLAB stores every vector. Arrays must hold real numbers (bool, integer or
float) and be finite; everything is read as float64.

Formats
-------
- HDF5, ``.h5`` / ``.hdf5``: the top-level datasets are the keys.
- NumPy: an ``.npz`` archive (``numpy.savez``), or a folder of ``<key>.npy`` files, one array per
  file (all a ``.npy`` holds). Pickled (object) arrays are never loaded.
- MATLAB ``.mat``: v4 to v7 through ``scipy.io.loadmat``. A v7.3 file is an HDF5 file behind a
  512-byte MATLAB header; it is recognised by the HDF5 signature (``h5py.is_hdf5``, which looks
  at offsets 0, 512, 1024, ...; scipy refuses such files with ``NotImplementedError``) and read
  with h5py. MATLAB writes arrays column-major, so h5py sees each array's axes reversed; the
  reader reverses them back (an N-by-X MATLAB array reads as ``(N, X)``), as the FNO authors'
  ``MatReader`` does.

Every problem with a file raises :class:`~lawful.data.store.DatasetError` naming the file, the key
and what is wrong.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import torch
from torch import Tensor

from lawful.data.store import DatasetError

__all__ = [
    "OPERATOR_FILE_SUFFIXES",
    "OperatorSamples",
    "check_splittable",
    "load_operator_samples",
    "split_train_test",
]

OPERATOR_FILE_SUFFIXES = (".h5", ".hdf5", ".npz", ".mat")
"""Suffixes of the files :func:`load_operator_samples` reads (besides a folder of ``.npy``)."""

INPUT_ALIASES = ("inputs", "a", "input", "coeff", "u0")
OUTPUT_ALIASES = ("outputs", "u", "output", "sol")
SPATIAL_AXES = ("x", "y")
TIME_KEY = "t"
WALL_SIDES = ("left", "right")

# Real numbers: bool, signed and unsigned integers, floats (numpy dtype kinds).
_REAL_KINDS = "biuf"
# A grid is uniform when every spacing is within this fraction of the mean spacing, plus round-off.
_UNIFORM_RELATIVE_TOLERANCE = 1e-6

# What scipy.io.loadmat raises on a corrupt or truncated file: it reads headers and tags as they
# come, so a bad byte fails wherever it is first used.
_MAT_READ_ERRORS = (
    scipy.io.matlab.MatReadError,
    OSError,
    ValueError,
    EOFError,
    IndexError,  # a header shorter than 128 bytes
    KeyError,  # a v4 header's unknown type code
    TypeError,  # a v5 tag of an unexpected type
    UnboundLocalError,  # a v5 array of an unknown class
    zlib.error,  # compressed (v7) data that does not decompress
    NotImplementedError,  # a v7.3 header without HDF5 data behind it
)

ArrayLoader = Callable[[], np.ndarray]


@dataclass(frozen=True)
class OperatorSamples:
    """N samples of an operator read from a user's file, in float64 (layout: module docstring)."""

    inputs: Tensor  # (N, *spatial)
    outputs: Tensor  # (N, *spatial) single-step, (N, *spatial, T) multi-step
    grids: dict[str, Tensor]  # axis name ("x", "y") -> coordinates (length,), in axis order
    t: Tensor | None  # (T,) output times; None for a single-step operator
    walls: dict[str, Tensor]  # "x_left", ... -> (N, *other spatial[, T]); only walls with data
    source: Path

    @property
    def num_samples(self) -> int:
        return self.inputs.shape[0]

    @property
    def spatial_ndim(self) -> int:
        return self.inputs.ndim - 1

    @property
    def is_time_dependent(self) -> bool:
        return self.t is not None

    def subset(self, indices: slice | Sequence[int] | Tensor) -> OperatorSamples:
        """The samples at ``indices``: a slice, a sequence of indices, or a tensor of indices or
        a boolean mask over N."""
        if isinstance(indices, Sequence):
            indices = torch.as_tensor(indices, dtype=torch.long)
        return replace(
            self,
            inputs=self.inputs[indices],
            outputs=self.outputs[indices],
            walls={name: values[indices] for name, values in self.walls.items()},
        )


def check_splittable(samples: OperatorSamples, test_fraction: float) -> None:
    """Raise unless :func:`split_train_test` can split ``samples`` so: ``ValueError`` for a
    ``test_fraction`` outside (0, 1) (NaN included), :class:`DatasetError` for fewer than two
    samples."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    if samples.num_samples < 2:
        raise DatasetError(
            f"{samples.source}: {samples.num_samples} sample(s) cannot be split into train and "
            "test sets"
        )


def split_train_test(
    samples: OperatorSamples, test_fraction: float = 0.2, seed: int = 0
) -> tuple[OperatorSamples, OperatorSamples]:
    """``(train, test)``: a seeded random ``test_fraction`` of the samples (rounded, at least one)
    for testing and the rest for training; each part keeps the file's order."""
    check_splittable(samples, test_fraction)
    num_samples = samples.num_samples
    num_test = min(max(round(test_fraction * num_samples), 1), num_samples - 1)
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))  # (N,)
    test_indices, _ = order[:num_test].sort()
    train_indices, _ = order[num_test:].sort()
    return samples.subset(train_indices), samples.subset(test_indices)


# ------------------------------------------------------------------------------------- formats


def _hdf5_loaders(file: h5py.File, matlab_order: bool) -> dict[str, ArrayLoader]:
    def load(dataset: h5py.Dataset) -> np.ndarray:
        values = np.asarray(dataset[()])
        return values.transpose() if matlab_order else values  # reverses all axes

    return {
        name: partial(load, item) for name, item in file.items() if isinstance(item, h5py.Dataset)
    }


def _open_arrays(path: Path, stack: ExitStack) -> dict[str, ArrayLoader]:
    """Key -> loader of each array in the file or folder; open files are closed by ``stack``."""
    if path.is_dir():
        files = sorted(path.glob("*.npy"))
        if not files:
            raise DatasetError(f"{path}: the folder holds no <key>.npy files")
        return {file.stem: partial(np.load, file, allow_pickle=False) for file in files}
    suffix = path.suffix.lower()
    if suffix == ".npy":
        raise DatasetError(
            f"{path}: a .npy file holds one array; put each array in its own <key>.npy file "
            "in a folder and pass the folder"
        )
    if suffix in (".h5", ".hdf5"):
        return _hdf5_loaders(stack.enter_context(h5py.File(path, "r")), matlab_order=False)
    if suffix == ".npz":
        if not zipfile.is_zipfile(path):  # np.load would take it for a pickle
            raise DatasetError(
                f"{path}: unreadable, corrupt or truncated file (an .npz must be a zip archive)"
            )
        archive = stack.enter_context(np.load(path, allow_pickle=False))
        return {name: partial(archive.__getitem__, name) for name in archive.files}
    if suffix == ".mat":
        if h5py.is_hdf5(path):  # MATLAB v7.3
            return _hdf5_loaders(stack.enter_context(h5py.File(path, "r")), matlab_order=True)
        return {
            name: partial(np.asarray, values)
            for name, values in _load_mat(path).items()
            if not name.startswith("__")  # __header__, __version__, __globals__
        }
    raise DatasetError(
        f"{path}: unknown file type {path.suffix!r}; expected one of "
        f"{', '.join(OPERATOR_FILE_SUFFIXES)} or a folder of .npy files"
    )


def _load_mat(path: Path) -> dict[str, np.ndarray]:
    """``scipy.io.loadmat`` (MATLAB v4 to v7), with a :class:`DatasetError` for a file it cannot
    parse."""
    try:
        return scipy.io.loadmat(path)  # squeeze_me=False keeps N = 1 axes
    except _MAT_READ_ERRORS as error:
        raise DatasetError(
            f"{path}: unreadable, corrupt or truncated MATLAB file (scipy.io.loadmat: "
            f"{type(error).__name__}: {error})"
        ) from error


# ------------------------------------------------------------------------------------- keys


class _KeyResolver:
    """Finds each role's key among a file's keys; a key, once taken, is not offered again."""

    def __init__(self, path: Path, keys: Sequence[str], overrides: Mapping[str, str | None]):
        self.path = path
        self.keys = sorted(keys)
        self.overrides = {role: key for role, key in overrides.items() if key is not None}
        for role, key in self.overrides.items():
            if key not in self.keys:
                raise DatasetError(
                    f"{path}: {role} key {key!r} (given explicitly) not found; "
                    f"keys found: {self.keys}"
                )
        if len(set(self.overrides.values())) < len(self.overrides):
            raise DatasetError(f"{path}: one key given for several roles: {self.overrides}")
        self.untaken = set(self.keys) - set(self.overrides.values())

    def resolve(self, role: str, aliases: Sequence[str], required: bool = False) -> str | None:
        if role in self.overrides:
            return self.overrides[role]
        present = [alias for alias in aliases if alias in self.untaken]
        if len(present) > 1:
            raise DatasetError(
                f"{self.path}: ambiguous {role}: keys {present} are all aliases of it; keep one "
                "or name the one to use explicitly"
            )
        if not present:
            if required:
                raise DatasetError(
                    f"{self.path}: no {role} found; tried keys {list(aliases)}, file has "
                    f"{self.keys}; name the key explicitly"
                )
            return None
        self.untaken.remove(present[0])
        return present[0]


# ------------------------------------------------------------------------------------- arrays


def _fail(path: Path, key: str, problem: str) -> DatasetError:
    return DatasetError(f"{path}: key {key!r}: {problem}")


def _read_real(path: Path, key: str, loader: ArrayLoader) -> np.ndarray:
    """The array, checked to hold finite real numbers."""
    try:
        values = np.asarray(loader())
    except (OSError, ValueError, EOFError) as error:
        raise _fail(path, key, f"unreadable array ({error})") from error
    if values.dtype.kind not in _REAL_KINDS:
        raise _fail(
            path, key, f"must hold real numbers (bool, integer or float), got dtype {values.dtype}"
        )
    finite = np.isfinite(values)
    if not finite.all():
        num_nan = int(np.isnan(values).sum())
        raise _fail(
            path,
            key,
            f"contains {num_nan} NaN and {finite.size - finite.sum() - num_nan} infinite values",
        )
    return values


def _float64(values: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))


def _as_shape(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``values`` if it has ``shape``, or a MATLAB-style ``(1, n)`` / ``(n, 1)`` matrix given for a
    vector of shape ``(n,)``; else None."""
    if values.shape == shape:
        return values
    if len(shape) == 1 and values.ndim == 2 and sorted(values.shape) == [1, shape[0]]:
        return values.reshape(shape)
    return None


def _coordinates(path: Path, key: str, values: np.ndarray, length: int, uniform: bool) -> Tensor:
    """A grid of ``length`` strictly increasing (and, if asked, uniformly spaced) coordinates."""
    vector = _as_shape(values, (length,))
    if vector is None:
        raise _fail(path, key, f"must have shape ({length},), got {values.shape}")
    coordinates = _float64(vector)  # (length,)
    steps = coordinates.diff()  # (length - 1,)
    if (steps <= 0).any():
        index = int((steps <= 0).nonzero()[0])
        raise _fail(
            path,
            key,
            f"must be strictly increasing, but entry {index + 1} "
            f"({coordinates[index + 1].item():g}) follows {coordinates[index].item():g}",
        )
    if uniform:
        spacing = (coordinates[-1] - coordinates[0]).item() / (length - 1)
        deviations = (steps - spacing).abs()  # (length - 1,)
        # Coordinates stored in float32 (say) carry that type's round-off, not a real deviation.
        round_off = 4 * np.finfo(vector.dtype).eps if vector.dtype.kind == "f" else 0.0
        tolerance = _UNIFORM_RELATIVE_TOLERANCE * spacing
        tolerance += round_off * coordinates.abs().max().item()
        if deviations.max().item() > tolerance:
            raise _fail(
                path,
                key,
                f"must be uniformly spaced (BOON's boundary stencils assume one "
                f"spacing): spacings deviate from the mean spacing {spacing:g} by up to "
                f"{deviations.max().item():.3g} (at step {int(deviations.argmax())}), "
                f"tolerance {tolerance:.3g}",
            )
    return coordinates


def _check_inputs(path: Path, key: str, values: np.ndarray) -> None:
    if not 2 <= values.ndim <= 1 + len(SPATIAL_AXES):
        raise _fail(path, key, f"inputs must have shape (N, X) or (N, X, Y), got {values.shape}")
    if values.shape[0] == 0:
        raise _fail(path, key, "holds no samples (N = 0)")
    if min(values.shape[1:]) < 2:
        raise _fail(path, key, f"every spatial axis needs at least 2 points, got {values.shape}")


def _check_outputs(
    path: Path, key: str, values: np.ndarray, inputs_shape: tuple[int, ...], time_key: str | None
) -> None:
    num_samples, spatial = inputs_shape[0], inputs_shape[1:]
    with_time = f"({', '.join(map(str, inputs_shape))}, T)"
    if values.ndim == 0 or values.shape[0] != num_samples:
        raise _fail(
            path,
            key,
            f"outputs of shape {values.shape} must lead with N = {num_samples}, "
            f"the number of inputs",
        )
    if values.shape[1 : 1 + len(spatial)] != spatial or values.ndim > len(inputs_shape) + 1:
        raise _fail(
            path,
            key,
            f"outputs must have the inputs' shape {inputs_shape} or {with_time} (time last), "
            f"got {values.shape}",
        )
    has_time_axis = values.ndim == len(inputs_shape) + 1
    if has_time_axis and time_key is None:
        raise _fail(
            path,
            key,
            f"outputs of shape {values.shape} have a time axis of length "
            f"{values.shape[-1]} (last), so the file needs the output times {TIME_KEY!r}",
        )
    if time_key is not None and not has_time_axis:
        raise _fail(
            path,
            key,
            f"the file has output times {time_key!r}, so outputs need a time axis last: "
            f"shape {with_time}, got {values.shape}",
        )


def _wall_data(
    path: Path, key: str, values: np.ndarray, wall_shape: tuple[int, ...], num_times: int | None
) -> Tensor:
    """Data of ``wall_shape`` = ``(N, *other spatial)``, or that with ``T`` last when there are
    ``num_times``; data without the time axis holds at every time (and is repeated over it)."""
    with_time = None if num_times is None else (*wall_shape, num_times)
    constant = _as_shape(values, wall_shape)
    if constant is not None:
        data = _float64(constant)  # (N, *other)
        return data if with_time is None else data[..., None].expand(with_time).contiguous()
    if with_time is not None and values.shape == with_time:
        return _float64(values)  # (N, *other, T)
    accepted = wall_shape if with_time is None else f"{wall_shape} or {with_time}"
    raise _fail(path, key, f"wall data must have shape {accepted}, got {values.shape}")


# ------------------------------------------------------------------------------------- reader


def load_operator_samples(
    path: str | os.PathLike[str],
    *,
    input_key: str | None = None,
    output_key: str | None = None,
) -> OperatorSamples:
    """Read operator samples laid out as the module docstring says from ``path``: an ``.h5`` /
    ``.hdf5``, ``.npz`` or ``.mat`` file, or a folder of ``<key>.npy`` files.

    ``input_key`` / ``output_key`` name the inputs and outputs where the file's names are not
    among the aliases. Raises :class:`DatasetError` naming the file, the key and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    with ExitStack() as stack:
        try:
            loaders = _open_arrays(path, stack)
        except DatasetError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise DatasetError(
                f"{path}: unreadable, corrupt or truncated file ({error})"
            ) from error
        keys = _KeyResolver(path, list(loaders), {"inputs": input_key, "outputs": output_key})

        def read(key: str) -> np.ndarray:
            return _read_real(path, key, loaders[key])

        input_name = keys.resolve("inputs", INPUT_ALIASES, required=True)
        inputs = read(input_name)
        _check_inputs(path, input_name, inputs)
        num_samples, *spatial = inputs.shape

        output_name = keys.resolve("outputs", OUTPUT_ALIASES, required=True)
        time_name = keys.resolve("output times", (TIME_KEY,))
        outputs = read(output_name)
        _check_outputs(path, output_name, outputs, inputs.shape, time_name)
        num_times = None if time_name is None else outputs.shape[-1]
        t = None
        if time_name is not None:
            t = _coordinates(path, time_name, read(time_name), num_times, uniform=False)  # (T,)

        grids = {}
        walls = {}
        for axis_index in range(len(spatial)):
            axis = SPATIAL_AXES[axis_index]
            grid_name = keys.resolve(f"{axis} grid", (axis,))
            if grid_name is None:
                grids[axis] = torch.linspace(0.0, 1.0, spatial[axis_index], dtype=torch.float64)
            else:
                grids[axis] = _coordinates(
                    path, grid_name, read(grid_name), spatial[axis_index], uniform=True
                )
            # A wall is the slice at one end of this axis: the other spatial axes remain.
            wall_shape = (num_samples, *spatial[:axis_index], *spatial[axis_index + 1 :])
            for side in WALL_SIDES:
                wall = f"{axis}_{side}"
                aliases = (wall, side) if axis == SPATIAL_AXES[0] else (wall,)
                wall_name = keys.resolve(f"{wall} wall data", aliases)
                if wall_name is not None:
                    walls[wall] = _wall_data(
                        path, wall_name, read(wall_name), wall_shape, num_times
                    )
    return OperatorSamples(
        inputs=_float64(inputs),
        outputs=_float64(outputs),
        grids=grids,
        t=t,
        walls=walls,
        source=path,
    )
