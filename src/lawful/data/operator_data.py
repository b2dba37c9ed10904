"""Operator-learning datasets laid out for a Fourier neural operator's training loop.

A stored operator dataset (:mod:`lawful.data.store`) holds, per sample, the input function and
the solution at every output time, with the boundary data of each constrained wall, on one or
two spatial axes (x, or x and y):

- ``inputs`` ``(N, *spatial)``: the input function (an initial condition u0, a coefficient
  field), ``spatial`` = ``(X,)`` or ``(X, Y)``;
- ``outputs`` ``(N, T, *spatial)``: the solution at the ``T`` output times ``grid["t"]``;
- boundary data at each output time: in 1-D ``left``, ``right`` ``(N, T)``; in 2-D, per wall,
  ``x_left``, ``x_right`` ``(N, T, Y)`` and ``y_left``, ``y_right`` ``(N, T, X)``. A wall without
  data (periodic, or data 0 throughout) has no array. Grids ``x`` ``(X,)`` [, ``y`` ``(Y,)``].

:func:`operator_tensors` turns it into the batch layout of :mod:`lawful.training.operator`:
``[inputs, targets, *boundary data]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lawful.data.store import StoredDataset

__all__ = ["BOUNDARY_ARRAYS", "operator_tensors"]

BOUNDARY_ARRAYS = ("left", "right", "x_left", "x_right", "y_left", "y_right")
"""The names of the boundary-data arrays, in the order the operators take them."""


def operator_tensors(
    stored: StoredDataset,
    multistep: bool,
    count: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> list[Tensor]:
    """``[inputs, targets, *boundary data]`` of the first ``count`` samples, in ``dtype``.

    Single-step (``u0 -> u(t_final)``): inputs and targets ``(N, 1, *spatial)``, boundary data
    ``(N, *other)`` (``(N,)`` in 1-D), all at the last output time. Multi-step
    (``u0 -> u(t_1..t_T)``, a space + time operator): inputs ``(N, 1, *spatial, T)`` (u0 repeated
    over t), targets ``(N, 1, *spatial, T)``, boundary data ``(N, *other, T)``.
    """
    initial = stored.arrays["inputs"][:count]  # (N, *spatial)
    frames = stored.arrays["outputs"][:count]  # (N, T, *spatial)
    data = [stored.arrays[name][:count] for name in BOUNDARY_ARRAYS if name in stored.arrays]
    if multistep:
        num_frames = frames.shape[1]
        inputs = initial[:, None, ..., None].expand(
            *initial.shape[:1], 1, *initial.shape[1:], num_frames
        )  # (N, 1, *spatial, T)
        targets = frames.movedim(1, -1)[:, None]  # (N, 1, *spatial, T)
        data = [values.movedim(1, -1) for values in data]  # (N, *other, T)
    else:
        inputs = initial[:, None]  # (N, 1, *spatial)
        targets = frames[:, None, -1]  # (N, 1, *spatial): the last frame
        data = [values[:, -1] for values in data]  # (N, *other)
    return [tensor.to(dtype).contiguous() for tensor in (inputs, targets, *data)]
