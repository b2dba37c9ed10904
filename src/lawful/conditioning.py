"""Exact conservation on any model's predictions, read from a file and written to a file.

A prediction file is HDF5 (``.h5``, ``.hdf5``; datasets at the top level) or NumPy ``.npz``.
``...`` is any batch shape (samples, times, ...), the same in every key; other keys are ignored.

    mean            (..., X)      the predicted mean on X grid points, with either
    variance        (..., X)        its marginal variances (a diagonal covariance), or
    covariance      (..., X, X)     its full covariance (symmetric, non-negative diagonal);
    members         (K, ..., X)   instead of mean: the fields of K >= 2 ensemble members, whose
                                  mean and sample covariance are the prior
                                  (lawful.models.ensemble.ensemble_belief), with optional
    noise_variance  () or (..., X)  a variance all members miss alike (default 0);
    grid (or x)     (X,)          strictly increasing coordinates, non-uniform allowed
                                  (trapezoid weights)
    mass            () or (...)   the known total mass per leading index (e.g. per sample and
                                  time); any shape that broadcasts to (...)
    left, right     () or (...)   wall data for ``--walls`` (default 0): the Dirichlet value or
                                  Neumann flux at x[0] and x[-1]; broadcasts to (...)

``--grid FILE.npy`` and ``--mass NUMBER|FILE.npy`` supply or override ``grid`` and ``mass``.

The posterior file takes the format of the ``--out`` suffix and holds, in float64:

    mean, variance  (..., X)      posterior mean and marginal variances
    grid            (X,)
    mass            (...)         the target mass
    ce, ce_prior    (...)         trapezoid mass of the posterior (prior) mean minus ``mass``
    left_residual,  (...)         with ``--walls``: the posterior mean's distance from each wall
    right_residual                condition (Dirichlet u - g, Neumann stencil u_x - g,
                                  periodic u[0] - u[-1])

Every problem with the inputs raises :class:`PredictionFileError`, naming the file or option
and what is wrong. Nothing here prints; the ``lawful condition`` command does.
"""

from __future__ import annotations

import argparse
import math
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from lawful.beliefs import GaussianBelief
from lawful.constraints.boundary import (
    BoundaryCondition,
    BoundaryConditions,
    Neumann,
    Periodic,
    boundary_constraint,
    boundary_residuals,
)
from lawful.constraints.bounds import condition_within_bounds
from lawful.constraints.conservation import LinearConstraint, mass_constraint, stack_constraints
from lawful.constraints.parsing import CONDITION_KINDS, parse_condition
from lawful.constraints.quadrature import check_grid
from lawful.constraints.update import ConstraintError, condition
from lawful.data.store import write_atomically
from lawful.metrics import conservation_error
from lawful.models.ensemble import ensemble_belief

__all__ = [
    "PredictionFileError",
    "add_condition_arguments",
    "condition_prediction_file",
    "format_summary",
    "read_prediction_file",
    "run_condition",
]

HDF5_SUFFIXES = (".h5", ".hdf5")
NPZ_SUFFIX = ".npz"
PREDICTION_KEYS = (
    "mean",
    "variance",
    "covariance",
    "members",
    "noise_variance",
    "grid",
    "x",
    "mass",
    "left",
    "right",
)
# Neumann stencils assume one spacing. The steps of a uniform grid stored in float32 differ by
# up to ~1e-4 of the step on thousands of points; a deliberately non-uniform grid by far more.
_UNIFORM_STEP_RTOL = 1e-3
# A covariance computed in float32 can be asymmetric at rounding level; it is symmetrised.
_SYMMETRY_RTOL = 1e-6


class PredictionFileError(ValueError):
    """A prediction file, an option or the output location is unusable; the message says why."""


def read_prediction_file(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The keys of :data:`PREDICTION_KEYS` present in ``path``, as finite float64 arrays."""
    path = Path(path)
    file_format = _file_format(path, "prediction file")
    # os.path's checks answer False where a lookup fails (e.g. a name too long), never raise.
    if not os.path.isfile(path):
        raise PredictionFileError(f"{path}: no such file")
    try:
        if file_format == "hdf5":
            with h5py.File(path, "r") as file:
                raw = {key: _hdf5_array(path, file, key) for key in PREDICTION_KEYS if key in file}
        else:
            # Our own handle: np.load leaks the one it opens when a corrupt archive fails.
            with path.open("rb") as handle:
                archive = np.load(handle, allow_pickle=False)
                if not isinstance(archive, np.lib.npyio.NpzFile):
                    raise PredictionFileError(f"{path}: a single .npy array, not an .npz archive")
                with archive:
                    raw = {key: archive[key] for key in PREDICTION_KEYS if key in archive.files}
    except PredictionFileError:
        raise
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise PredictionFileError(
            f"{path}: unreadable, empty or corrupt {file_format} file ({error})"
        ) from error
    if not raw:
        raise PredictionFileError(
            f"{path}: holds none of the prediction keys ({', '.join(PREDICTION_KEYS)})"
        )
    return {key: _checked(value, f"{path}: key {key!r}") for key, value in raw.items()}


def condition_prediction_file(
    prediction: str | os.PathLike[str],
    out: str | os.PathLike[str],
    grid: str | os.PathLike[str] | None = None,
    mass: float | str | os.PathLike[str] | None = None,
    walls: str | None = None,
    lower: float | None = None,
    upper: float | None = None,
) -> dict[str, Any]:
    """Condition the prediction in ``prediction`` on its mass and write the posterior to ``out``.

    ``grid``: a ``.npy`` file of coordinates, overriding the file's ``grid``/``x``. ``mass``: a
    number or a ``.npy`` file, overriding the file's ``mass``. ``walls``: ``"LEFT,RIGHT"`` with
    kinds from :data:`CONDITION_KINDS`, also held exactly. ``lower``/``upper``: bounds on the
    posterior mean (diagonal priors, no walls). Returns a summary for :func:`format_summary`.
    """
    prediction, out = Path(prediction), Path(out)
    if os.path.isdir(out):
        raise PredictionFileError(f"--out {out}: is a folder; name a file ending in {_suffixes()}")
    out_format = _file_format(out, "--out")
    if _same_file(prediction, out):
        raise PredictionFileError(
            f"--out {out}: is the prediction file {prediction}; name another file for the posterior"
        )
    bounded = lower is not None or upper is not None
    if bounded and walls is not None:
        raise PredictionFileError(
            "--lower/--upper cannot be combined with --walls: the bounded update takes the mass "
            "row alone"
        )
    lower_bound, upper_bound = _bounds(lower, upper)

    arrays = read_prediction_file(prediction)
    prior, prior_kind, leading_shape = _prior(arrays, prediction)  # belief over (B, X)
    if bounded and prior_kind != "diagonal":
        raise PredictionFileError(
            f"{prediction}: --lower/--upper need a diagonal prior ('mean' with 'variance'); "
            f"this file's prior is {prior_kind}"
        )
    num_points = prior.mean.shape[-1]
    grid_values = _grid(arrays, prediction, grid, num_points)  # (X,)
    target_mass = _mass(arrays, prediction, mass, leading_shape)  # (B,)
    constraint = mass_constraint(grid_values, target_mass)
    conditions = None
    if walls is not None:
        conditions = _wall_conditions(walls, arrays, prediction, leading_shape)
        spacing = _wall_spacing(conditions, grid_values, walls)
        try:
            walls_constraint = boundary_constraint(conditions, num_points, spacing)
        except ValueError as error:
            raise PredictionFileError(f"--walls {walls}: {error}") from error
        constraint = stack_constraints(constraint, walls_constraint)

    posterior = _posterior(prior, constraint, lower_bound, upper_bound, bounded, prediction)

    ce = conservation_error(posterior.mean, grid_values, target_mass)  # (B,)
    ce_prior = conservation_error(prior.mean, grid_values, target_mass)  # (B,)
    contents = {
        "mean": posterior.mean.reshape(*leading_shape, num_points),
        "variance": posterior.variance().reshape(*leading_shape, num_points),
        "grid": grid_values,
        "mass": target_mass.reshape(leading_shape),
        "ce": ce.reshape(leading_shape),
        "ce_prior": ce_prior.reshape(leading_shape),
    }
    summary: dict[str, Any] = {
        "prediction": str(prediction),
        "out": str(out),
        "prior": prior_kind,
        "method": "condition_within_bounds" if bounded else "condition",
        "leading_shape": list(leading_shape),
        "num_points": num_points,
        "constraint_rows": constraint.num_rows,
        "max_abs_ce_prior": float(ce_prior.abs().max()),
        "max_abs_ce": float(ce.abs().max()),
    }
    if conditions is not None:
        field = posterior.mean.unsqueeze(1)  # (B, 1, X): the (batch, channels, x) layout
        residuals = boundary_residuals(field, conditions, spacing)  # each (B, 1)
        for side, residual in zip(("left", "right"), residuals, strict=True):
            contents[f"{side}_residual"] = residual.reshape(leading_shape)
        summary["max_abs_wall_residual"] = max(float(r.abs().max()) for r in residuals)
    _write_atomically(out, out_format, {key: value.numpy() for key, value in contents.items()})
    return summary


def format_summary(summary: Mapping[str, Any]) -> str:
    """One line saying what :func:`condition_prediction_file` wrote."""
    rows = summary["constraint_rows"]
    line = (
        f"wrote {summary['out']} ({summary['method']}, {summary['prior']} prior, "
        f"leading shape {tuple(summary['leading_shape'])}, {summary['num_points']} points, "
        f"{rows} constraint row{'' if rows == 1 else 's'}): max |ce| "
        f"{summary['max_abs_ce_prior']:.3e} -> {summary['max_abs_ce']:.3e}"
    )
    if "max_abs_wall_residual" in summary:
        line += f", max |wall residual| {summary['max_abs_wall_residual']:.3e}"
    return line


def add_condition_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``lawful condition`` (the file layout is in this module's docstring)."""
    formats = _suffixes()
    parser.add_argument(
        "--prediction",
        required=True,
        type=Path,
        metavar="FILE",
        help=f"prediction file ({formats}): mean + variance | mean + covariance | members",
    )
    parser.add_argument(
        "--out", required=True, type=Path, metavar="FILE", help=f"posterior file ({formats})"
    )
    parser.add_argument(
        "--grid", type=Path, metavar="FILE.npy", help="grid coordinates (X,); overrides the file"
    )
    parser.add_argument(
        "--mass",
        metavar="NUMBER|FILE.npy",
        help="total mass, one number or an array of shape (...); overrides the file",
    )
    parser.add_argument(
        "--walls",
        metavar="LEFT,RIGHT",
        help=f"also hold wall conditions, each {' | '.join(CONDITION_KINDS)}; data from the file's "
        "left/right keys (default 0)",
    )
    parser.add_argument("--lower", type=float, metavar="L", help="lower bound on the mean")
    parser.add_argument("--upper", type=float, metavar="U", help="upper bound on the mean")


def run_condition(args: argparse.Namespace) -> dict[str, Any]:
    """``lawful condition`` on parsed arguments: :func:`condition_prediction_file`."""
    return condition_prediction_file(
        args.prediction,
        args.out,
        grid=args.grid,
        mass=args.mass,
        walls=args.walls,
        lower=args.lower,
        upper=args.upper,
    )


def _suffixes() -> str:
    return ", ".join((*HDF5_SUFFIXES, NPZ_SUFFIX))


def _same_file(first: Path, second: Path) -> bool:
    """Whether both name one existing file, by whatever path or link."""
    try:
        return os.path.samefile(first, second)
    except OSError:  # either is missing, or cannot be looked up
        return False


def _file_format(path: Path, role: str) -> str:
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    if suffix == NPZ_SUFFIX:
        return "npz"
    raise PredictionFileError(
        f"{role} {path}: unsupported suffix {path.suffix!r}; use one of {_suffixes()}"
    )


def _hdf5_array(path: Path, file: h5py.File, key: str) -> np.ndarray:
    dataset = file[key]
    if not isinstance(dataset, h5py.Dataset):
        raise PredictionFileError(f"{path}: key {key!r} is a group, not an array")
    return np.asarray(dataset[()])


def _checked(values: Any, source: str) -> np.ndarray:
    """``values`` as a float64 array, refusing non-numeric, empty, NaN and infinite data."""
    values = np.asarray(values)
    if values.dtype == np.bool_ or not (
        np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
    ):
        raise PredictionFileError(f"{source}: must hold real numbers, got dtype {values.dtype}")
    if values.size == 0:
        raise PredictionFileError(f"{source}: is empty (shape {values.shape})")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        kind = "NaN" if np.isnan(values).any() else "infinite"
        raise PredictionFileError(f"{source}: contains {kind} values")
    return values


def _check_nonnegative(values: np.ndarray, source: str) -> None:
    if (values < 0).any():
        index = np.unravel_index(np.argmin(values), values.shape)
        raise PredictionFileError(
            f"{source}: variances must be non-negative; entry {tuple(map(int, index))} is "
            f"{values[index]:.6g}"
        )


def _prior(
    arrays: Mapping[str, np.ndarray], path: Path
) -> tuple[GaussianBelief, str, tuple[int, ...]]:
    """The prior belief over ``(B, X)`` (leading axes flattened), its kind, the leading shape."""
    has = {key for key in ("mean", "variance", "covariance", "members") if key in arrays}
    if has == {"members"}:
        return _ensemble_prior(arrays, path)
    if "noise_variance" in arrays:
        raise PredictionFileError(
            f"{path}: key 'noise_variance' belongs to an ensemble ('members'); add it to "
            "'variance' or 'covariance' instead"
        )
    if has not in ({"mean", "variance"}, {"mean", "covariance"}):
        found = ", ".join(f"'{key}'" for key in sorted(has)) or "none of them"
        raise PredictionFileError(
            f"{path}: needs 'mean' with 'variance' or with 'covariance', or 'members' alone; "
            f"found {found}"
        )
    mean = arrays["mean"]
    if mean.ndim == 0:
        raise PredictionFileError(f"{path}: key 'mean' must be (..., X), got a scalar")
    leading_shape, num_points = mean.shape[:-1], mean.shape[-1]
    flat_mean = torch.from_numpy(mean.reshape(-1, num_points))  # (B, X)
    if "variance" in arrays:
        variance = arrays["variance"]
        if variance.shape != mean.shape:
            raise PredictionFileError(
                f"{path}: key 'variance' has shape {variance.shape}, but 'mean' has {mean.shape}"
            )
        _check_nonnegative(variance, f"{path}: key 'variance'")
        flat_variance = torch.from_numpy(variance.reshape(-1, num_points))  # (B, X)
        prior = _belief(
            GaussianBelief.diagonal, flat_mean, flat_variance, f"{path}: key 'variance'"
        )
        return prior, "diagonal", leading_shape
    covariance = arrays["covariance"]
    if covariance.shape != (*mean.shape, num_points):
        raise PredictionFileError(
            f"{path}: key 'covariance' has shape {covariance.shape}, but 'mean' {mean.shape} "
            f"needs {(*mean.shape, num_points)}"
        )
    _check_nonnegative(np.diagonal(covariance, axis1=-2, axis2=-1), f"{path}: key 'covariance'")
    transpose = covariance.swapaxes(-1, -2)  # (..., X, X)
    asymmetry = np.abs(covariance - transpose).max()
    if asymmetry > _SYMMETRY_RTOL * np.abs(covariance).max():
        raise PredictionFileError(
            f"{path}: key 'covariance' is not symmetric (largest |C - C^T| is {asymmetry:.3e})"
        )
    symmetric = (covariance + transpose) / 2  # (..., X, X)
    flat_covariance = torch.from_numpy(symmetric.reshape(-1, num_points, num_points))
    prior = _belief(GaussianBelief.dense, flat_mean, flat_covariance, f"{path}: key 'covariance'")
    return prior, "dense", leading_shape


def _ensemble_prior(
    arrays: Mapping[str, np.ndarray], path: Path
) -> tuple[GaussianBelief, str, tuple[int, ...]]:
    members = arrays["members"]
    if members.ndim < 2 or members.shape[0] < 2:
        raise PredictionFileError(
            f"{path}: key 'members' must be (K, ..., X) with K >= 2 members, got shape "
            f"{members.shape}"
        )
    num_members, num_points = members.shape[0], members.shape[-1]
    leading_shape = members.shape[1:-1]
    noise = arrays.get("noise_variance", np.zeros(()))
    noise = _broadcast(
        noise, (*leading_shape, num_points), f"{path}: key 'noise_variance'", "shape (..., X)"
    )
    _check_nonnegative(noise, f"{path}: key 'noise_variance'")
    flat_members = torch.from_numpy(members.reshape(num_members, -1, num_points))  # (K, B, X)
    flat_noise = torch.from_numpy(noise.reshape(-1, num_points))  # (B, X)
    source = f"{path}: keys 'members' and 'noise_variance'"
    prior = _belief(ensemble_belief, flat_members, flat_noise, source)
    return prior, "ensemble", leading_shape


def _belief(
    make: Callable[[Tensor, Tensor], GaussianBelief], first: Tensor, second: Tensor, source: str
) -> GaussianBelief:
    """``make(first, second)``, with what the belief refuses (a covariance that is not positive
    semi-definite, subnormal variances) named by ``source``, the file and key it came from."""
    try:
        return make(first, second)
    except ValueError as error:
        raise PredictionFileError(f"{source}: {error}") from error


def _broadcast(
    values: np.ndarray, shape: tuple[int, ...], source: str, meaning: str = "leading shape (...)"
) -> np.ndarray:
    """``values`` broadcast to ``shape`` (the prediction's ``meaning``), as a writable copy."""
    try:
        return np.broadcast_to(values, shape).copy()
    except ValueError as error:
        raise PredictionFileError(
            f"{source}: shape {values.shape} does not broadcast to the prediction's {meaning} "
            f"= {shape}"
        ) from error


def _read_npy(path: Path, option: str) -> np.ndarray:
    try:
        with path.open("rb") as handle:  # our own handle, as in read_prediction_file
            values = np.load(handle, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise PredictionFileError(f"{option} {path}: not a readable .npy file ({error})") from error
    if not isinstance(values, np.ndarray):
        values.close()
        raise PredictionFileError(f"{option} {path}: expected one .npy array, got an archive")
    return _checked(values, f"{option} {path}")


def _grid(
    arrays: Mapping[str, np.ndarray],
    path: Path,
    grid: str | os.PathLike[str] | None,
    num_points: int,
) -> Tensor:
    """The grid ``(X,)``: from ``--grid``, else the file's ``grid`` or ``x``."""
    if grid is not None:
        source = f"--grid {grid}"
        values = _read_npy(Path(grid), "--grid")
    else:
        in_file = [key for key in ("grid", "x") if key in arrays]
        if not in_file:
            raise PredictionFileError(f"{path}: no 'grid' (or 'x') key, and no --grid given")
        if len(in_file) > 1:
            raise PredictionFileError(f"{path}: holds both 'grid' and 'x'; keep one")
        source = f"{path}: key {in_file[0]!r}"
        values = arrays[in_file[0]]
    if values.shape != (num_points,):
        raise PredictionFileError(
            f"{source}: the grid must have shape ({num_points},) to match the prediction's "
            f"{num_points} points, got {values.shape}"
        )
    grid_values = torch.from_numpy(values)
    try:
        check_grid(grid_values, "grid")
    except ValueError as error:
        raise PredictionFileError(f"{source}: {error}") from error
    return grid_values


def _mass(
    arrays: Mapping[str, np.ndarray],
    path: Path,
    mass: float | str | os.PathLike[str] | None,
    leading_shape: tuple[int, ...],
) -> Tensor:
    """The target mass per leading index, flattened to ``(B,)``."""
    if mass is None:
        if "mass" not in arrays:
            raise PredictionFileError(f"{path}: no 'mass' key, and no --mass given")
        source, values = f"{path}: key 'mass'", arrays["mass"]
    else:
        source = f"--mass {mass}"
        values = _mass_option(mass, source)
    return torch.from_numpy(_broadcast(values, leading_shape, source).reshape(-1))


def _mass_option(mass: float | str | os.PathLike[str], source: str) -> np.ndarray:
    try:
        number = float(mass)  # a Path is no number either: TypeError
    except (TypeError, ValueError):
        if not os.path.isfile(mass):
            raise PredictionFileError(
                f"{source}: neither a number nor an existing .npy file"
            ) from None
        return _read_npy(Path(mass), "--mass")
    return _checked(number, source)


def _wall_conditions(
    walls: str,
    arrays: Mapping[str, np.ndarray],
    path: Path,
    leading_shape: tuple[int, ...],
) -> BoundaryConditions:
    kinds = walls.split(",")
    if len(kinds) != 2:
        raise PredictionFileError(
            f"--walls {walls}: give two kinds, LEFT,RIGHT (e.g. dirichlet,neumann:2)"
        )
    left, right = (
        _wall(kind, arrays, path, side, leading_shape, walls)
        for kind, side in zip(kinds, ("left", "right"), strict=True)
    )
    try:
        return BoundaryConditions(left, right)
    except ValueError as error:
        raise PredictionFileError(f"--walls {walls}: {error}") from error


def _wall(
    kind: str,
    arrays: Mapping[str, np.ndarray],
    path: Path,
    side: str,
    leading_shape: tuple[int, ...],
    walls: str,
) -> BoundaryCondition:
    """One wall's condition, with its data from the file's ``side`` key (default 0)."""
    try:
        condition = parse_condition(kind)
    except ValueError as error:
        raise PredictionFileError(f"--walls {walls}: {error}") from error
    if isinstance(condition, Periodic):
        if side in arrays:
            raise PredictionFileError(
                f"{path}: key {side!r} gives wall data, but the {side} wall is periodic"
            )
        return condition
    if side not in arrays:
        return condition  # the placeholder value 0
    source = f"{path}: key {side!r}"
    data = torch.from_numpy(_broadcast(arrays[side], leading_shape, source).reshape(-1))
    return replace(condition, value=data)


def _wall_spacing(conditions: BoundaryConditions, grid: Tensor, walls: str) -> float:
    """The grid step for Neumann stencils, which need a uniform grid."""
    steps = torch.diff(grid)  # (X - 1,)
    spacing = float((grid[-1] - grid[0]) / steps.numel())
    has_neumann = any(isinstance(c, Neumann) for c in (conditions.left, conditions.right))
    if has_neumann and not torch.allclose(
        steps, torch.full_like(steps, spacing), rtol=_UNIFORM_STEP_RTOL, atol=0
    ):
        raise PredictionFileError(
            f"--walls {walls}: a Neumann wall needs a uniform grid, but the steps range from "
            f"{float(steps.min()):.6g} to {float(steps.max()):.6g}"
        )
    return spacing


def _bounds(lower: float | None, upper: float | None) -> tuple[float, float]:
    lower_bound = -math.inf if lower is None else lower
    upper_bound = math.inf if upper is None else upper
    if math.isnan(lower_bound) or math.isnan(upper_bound):
        raise PredictionFileError("--lower/--upper must be numbers, got NaN")
    if lower_bound > upper_bound:
        raise PredictionFileError(f"--lower {lower_bound} exceeds --upper {upper_bound}")
    return lower_bound, upper_bound


def _posterior(
    prior: GaussianBelief,
    constraint: LinearConstraint,
    lower: float,
    upper: float,
    bounded: bool,
    path: Path,
) -> GaussianBelief:
    try:
        if bounded:
            return condition_within_bounds(prior, constraint, lower, upper)
        return condition(prior, constraint)
    except ConstraintError as error:
        raise PredictionFileError(f"{path}: {error}") from error


def _write_atomically(path: Path, file_format: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to a temporary file beside ``path``, then move it into place."""
    if os.path.exists(path.parent) and not os.path.isdir(path.parent):
        raise PredictionFileError(f"--out {path}: {path.parent} is a file, not a folder")

    def write(temporary: Path) -> None:
        if file_format == "hdf5":
            with h5py.File(temporary, "w") as file:
                for key, values in arrays.items():
                    file.create_dataset(key, data=values)
        else:
            # A file object, not a name: np.savez would append ".npz" to the temporary name.
            with open(temporary, "wb") as file:
                np.savez(file, **arrays)

    try:
        write_atomically(path, write)
    except OSError as error:
        raise PredictionFileError(f"--out {path}: cannot write there ({error})") from error
