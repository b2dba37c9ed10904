"""Operator-learning datasets laid out for a Fourier neural operator's training loop.

A stored operator dataset (:mod:`lawful.data.store`) holds, per sample, the input function and
the solution at every output time, with the boundary data of each constrained end:

- ``inputs`` ``(N, X)``: the input function (an initial condition u0, a coefficient field);
- ``outputs`` ``(N, T, X)``: the solution at the ``T`` output times ``grid["t"]``;
- ``left``, ``right`` ``(N, T)``: the data at the ends of x at each time (absent when the ends
  are periodic or carry no data); grid ``x`` ``(X,)``.

:func:`operator_tensors` turns it into the batch layout of :mod:`lawful.training.operator`:
``[inputs, targets, *boundary data]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lawful.data.store import StoredDataset

__all__ = ["BOUNDARY_ARRAYS", "operator_tensors"]

BOUNDARY_ARRAYS = ("left", "right")
"""The names of the boundary-data arrays, in the order the operators take them."""


def operator_tensors(
    stored: StoredDataset,
    multistep: bool,
    count: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> list[Tensor]:
    """``[inputs, targets, *boundary data]`` of the first ``count`` samples, in ``dtype``.

    Single-step (``u0 -> u(t_final)``, a 1-D operator): inputs and targets ``(N, 1, X)``, data
    ``(N,)``, all at the last output time. Multi-step (``u0 -> u(t_1..t_T)``, a space + time
    operator): inputs ``(N, 1, X, T)`` (u0 repeated over t), targets ``(N, 1, X, T)``, data
    ``(N, T)``.
    """
    initial = stored.arrays["inputs"][:count]  # (N, X)
    frames = stored.arrays["outputs"][:count]  # (N, T, X)
    ends = [stored.arrays[end][:count] for end in BOUNDARY_ARRAYS if end in stored.arrays]
    if multistep:
        num_frames = frames.shape[1]
        inputs = initial[:, None, :, None].expand(-1, -1, -1, num_frames)  # (N, 1, X, T)
        targets = frames.transpose(1, 2)[:, None]  # (N, 1, X, T)
    else:
        inputs = initial[:, None]  # (N, 1, X)
        targets = frames[:, None, -1]  # (N, 1, X): the last frame
        ends = [values[:, -1] for values in ends]  # (N,)
    return [tensor.to(dtype).contiguous() for tensor in (inputs, targets, *ends)]
