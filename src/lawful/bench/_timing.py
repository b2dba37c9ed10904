"""What the benchmarks share: the one way they time a piece of work, and the update's problem."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from lawful.beliefs import GaussianBelief
from lawful.constraints.conservation import LinearConstraint, mass_constraint

__all__ = ["float32_mass_problem", "median_seconds", "synchronizer"]


def synchronizer(device: torch.device | str) -> Callable[[], None]:
    """What waits for the work queued on ``device``: CUDA runs kernels asynchronously, so a
    timing waits for them before it reads the clock; on the CPU a call's work is done when it
    returns, and this does nothing."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def median_seconds(work: Callable[[], object], repeats: int, device: str = "cpu") -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``work`` whose tensors are on
    ``device``, after one warm-up call (allocations, kernels, caches)."""
    synchronize = synchronizer(device)
    work()
    synchronize()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        synchronize()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def float32_mass_problem(
    num_points: int, device: str = "cpu"
) -> tuple[GaussianBelief, LinearConstraint]:
    """A diagonal float32 belief over ``num_points`` values and its mass row (seed 0), on
    ``device``."""
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(num_points, generator=generator)
    variance = torch.rand(num_points, generator=generator) + 0.1
    grid = torch.linspace(0, 1, num_points, dtype=torch.float64)
    mass = mass_constraint(grid, torch.tensor(0.5, dtype=torch.float64))
    # Weights built on the float64 grid (10 million float32 points would not stay increasing),
    # then stored in float32 once, so the timed update does not convert them on every call.
    constraint = LinearConstraint(mass.weights.float().to(device), mass.values.float().to(device))
    return GaussianBelief.diagonal(mean.to(device), variance.to(device)), constraint
