"""Timing of a BOON training step against the plain FNO's, measured in the same run."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from lawful.constraints.boundary import BoundaryConditions, Dirichlet
from lawful.constraints.walls import Walls
from lawful.operators.boon import BoundaryCorrectedFNO, BoundaryCorrectedFNO1d
from lawful.operators.fno import FNO1d, FNOxy, FNOxyt

__all__ = ["boon_step_ratio", "boon_step_ratio_2d"]


def _training_step(model: nn.Module, x: Tensor, target: Tensor) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad()
        loss = (model(x) - target).square().mean()
        loss.backward()
        optimizer.step()

    return step


def boon_step_ratio(
    width: int = 64,
    modes: int = 16,
    n: int = 500,
    batch: int = 20,
    repeats: int = 7,
    warmup: int = 2,
    seed: int = 0,
) -> dict[str, float]:
    """Median seconds per training step (forward, backward, Adam) of an FNO1d and of the same FNO
    with BOON Dirichlet corrections at both ends, and the median ratio ``boon_s / fno_s``.

    Steps alternate between the two models so both see the same machine load.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    fno = FNO1d(1, 1, width, modes)
    conditions = BoundaryConditions(Dirichlet(0.0), Dirichlet(0.0))
    boon = BoundaryCorrectedFNO1d(copy.deepcopy(fno), conditions)
    x = torch.randn(batch, 1, n, generator=generator)  # (batch, channels, x)
    target = torch.randn(batch, 1, n, generator=generator)
    return _alternating_ratio(fno, boon, x, target, repeats, warmup)


def boon_step_ratio_2d(
    width: int = 20,
    modes: int = 8,
    grid: tuple[int, int] = (50, 50),
    frames: int | None = 25,
    padding: int = 0,
    batch: int = 10,
    repeats: int = 5,
    warmup: int = 1,
    seed: int = 0,
) -> dict[str, float]:
    """:func:`boon_step_ratio` in two space dimensions: an :class:`FNOxyt` (``frames`` time
    frames, ``modes`` on every axis, ``padding`` on time) or, with ``frames=None``, an
    :class:`FNOxy`, against the same FNO with BOON Dirichlet conditions on all four walls
    (one joint solve per layer). The defaults are the cavity's model: 50 x 50 x 25, width 20,
    8 modes, batch 10.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if frames is None:
        fno: nn.Module = FNOxy(1, 1, width, modes, modes)
        shape = (batch, 1, *grid)  # (batch, channels, x, y)
    else:
        fno = FNOxyt(1, 1, width, modes, modes, modes, padding=padding)
        shape = (batch, 1, *grid, frames)  # (batch, channels, x, y, t)
    walls = Walls(
        BoundaryConditions(Dirichlet(0.0), Dirichlet(0.0)),
        BoundaryConditions(Dirichlet(0.0), Dirichlet(0.0)),
    )
    boon = BoundaryCorrectedFNO(copy.deepcopy(fno), walls)
    x = torch.randn(shape, generator=generator)
    target = torch.randn(shape, generator=generator)
    return _alternating_ratio(fno, boon, x, target, repeats, warmup)


def _alternating_ratio(
    fno: nn.Module, boon: nn.Module, x: Tensor, target: Tensor, repeats: int, warmup: int
) -> dict[str, float]:
    """Median seconds per training step of both models, steps alternating, and the median of
    the per-repeat ratios ``boon_s / fno_s``."""
    steps = {"fno_s": _training_step(fno, x, target), "boon_s": _training_step(boon, x, target)}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(warmup + repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if repeat >= warmup:
                times[name].append(time.perf_counter() - start)
    result = {name: statistics.median(seconds) for name, seconds in times.items()}
    # Median of the per-repeat ratios: each pair ran back to back, so load changes cancel.
    result["ratio"] = statistics.median(
        boon / fno for boon, fno in zip(times["boon_s"], times["fno_s"], strict=True)
    )
    return result
