"""The ProbConserv authors' published test set (``test.pt``).

The file is a pickled tuple ``(tensors, params)``: ``tensors`` maps ``input_contexts``
``(N, C, 2)``, ``output_contexts`` ``(N, C, 1)``, ``input_targets`` ``(N, T, 2)`` and
``output_targets`` ``(N, T, 1)``; inputs are ``(t, x)`` pairs; ``params`` is ``(N, P)`` with the
PDE parameter in column 0 (for the PME: ``(m, scale)``, 50 functions each for m = 1, 3, 6).
See shared/reference/README.md.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import Tensor

from lawful.data.sampling import FunctionSets
from lawful.data.store import DatasetError

__all__ = ["PUBLISHED_TENSOR_KEYS", "load_published_test_set"]

PUBLISHED_TENSOR_KEYS = ("input_contexts", "output_contexts", "input_targets", "output_targets")


def load_published_test_set(path: str | os.PathLike[str]) -> tuple[FunctionSets, Tensor]:
    """Read ``test.pt``: the function sets (``params`` = column 0) and the full ``(N, P)`` params.

    Raises :class:`DatasetError` naming the file for a missing file, a file that is not this
    format, or tensors whose shapes disagree.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (expected the ProbConserv test set test.pt)")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile) as error:
        raise DatasetError(f"{path}: not a readable torch file ({error})") from error

    if not (isinstance(content, tuple) and len(content) == 2):
        raise DatasetError(
            f"{path}: expected a pickled tuple (tensors, params), got {type(content).__name__}"
        )
    tensors, params = content
    if not isinstance(tensors, dict) or set(tensors) != set(PUBLISHED_TENSOR_KEYS):
        found = sorted(tensors) if isinstance(tensors, dict) else type(tensors).__name__
        raise DatasetError(
            f"{path}: the first element must be a dict with keys {list(PUBLISHED_TENSOR_KEYS)}, "
            f"got {found}"
        )
    for name, value in [*tensors.items(), ("params", params)]:
        if not (isinstance(value, Tensor) and value.is_floating_point()):
            raise DatasetError(f"{path}: {name} must be a floating-point tensor")
    if params.ndim != 2 or params.shape[1] < 1:
        raise DatasetError(f"{path}: params must have shape (N, P >= 1), got {tuple(params.shape)}")
    try:
        function_sets = FunctionSets(**tensors, params=params[:, :1])
    except ValueError as error:
        raise DatasetError(f"{path}: inconsistent shapes: {error}") from error
    return function_sets, params
