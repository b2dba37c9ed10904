"""What the benchmarks share: the one way they time a piece of work, and the update's problem."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from lawful.beliefs import GaussianBelief
from lawful.constraints.conservation import LinearConstraint, mass_constraint

__all__ = ["float32_mass_problem", "median_seconds"]


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``work``, after one warm-up call
    (allocations, kernels, caches)."""
    work()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def float32_mass_problem(num_points: int) -> tuple[GaussianBelief, LinearConstraint]:
    """A diagonal float32 belief over ``num_points`` values and its mass row (seed 0)."""
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(num_points, generator=generator)
    variance = torch.rand(num_points, generator=generator) + 0.1
    grid = torch.linspace(0, 1, num_points, dtype=torch.float64)
    mass = mass_constraint(grid, torch.tensor(0.5, dtype=torch.float64))
    # Weights built on the float64 grid (10 million float32 points would not stay increasing),
    # then stored in float32 once, so the timed update does not convert them on every call.
    constraint = LinearConstraint(mass.weights.float(), mass.values.float())
    return GaussianBelief.diagonal(mean, variance), constraint
