"""What the benchmarks share: the ways they time a piece of work (one call, or two training steps
alternating), the training step they time, and the update's problem."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from lawful.beliefs import GaussianBelief
from lawful.constraints.conservation import LinearConstraint, mass_constraint

__all__ = [
    "WARMUP_STEPS",
    "adam_step",
    "alternating_steps",
    "float32_mass_problem",
    "median_seconds",
    "synchronizer",
]

#: Training steps of each model run, untimed, before the timed ones. A fresh model's first
#: steps are not its steady pace: on a 50 x 50 x 25 field the first five alternated steps of our
#: FNO and the textbook FNO took 1.1 to 2.8 times their settled time in one process (the heap
#: growing to the step's working set), so with one warm-up step four of the seven timed repeats
#: fell in that phase and a row's median ratio ranged 0.84 to 1.35 between runs of the same code.
WARMUP_STEPS = 5


def synchronizer(device: torch.device | str) -> Callable[[], None]:
    """What waits for the work queued on ``device``: CUDA runs kernels asynchronously, so a
    timing waits for them before it reads the clock; on the CPU a call's work is done when it
    returns, and this does nothing."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def median_seconds(
    work: Callable[[], object], repeats: int, device: str = "cpu", warmup: int = 1
) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``work`` whose tensors are on
    ``device``, after ``warmup`` untimed calls (allocations, kernels, caches)."""
    synchronize = synchronizer(device)
    for _ in range(warmup):
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


def adam_step(model: nn.Module, loss: Callable[[], Tensor]) -> Callable[[], None]:
    """One training step of ``model`` per call: gradients dropped, ``loss()``, backward, an Adam
    step (learning rate 1e-3)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()

    return step


def alternating_steps(
    ours: Callable[[], None],
    baseline: Callable[[], None],
    device: torch.device | str,
    repeats: int,
    warmup: int,
) -> dict[str, float]:
    """Median seconds of two training steps run alternately (the baseline's first) after
    ``warmup`` untimed rounds, and the medians of the per-repeat ratios: ``ratio`` of
    ``ours_s / baseline_s``, ``speedup`` of ``baseline_s / ours_s``. Each step is waited for on
    ``device`` before the clock is read."""
    steps = {"baseline_s": baseline, "ours_s": ours}
    synchronize = synchronizer(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(warmup + repeats):
        for name, step in steps.items():
            synchronize()
            start = time.perf_counter()
            step()
            synchronize()
            if repeat >= warmup:
                times[name].append(time.perf_counter() - start)
    result = {name: statistics.median(seconds) for name, seconds in times.items()}
    # Medians of the per-repeat ratios: each pair ran back to back, so load changes cancel.
    pairs = list(zip(times["ours_s"], times["baseline_s"], strict=True))
    result["ratio"] = statistics.median(mine / theirs for mine, theirs in pairs)
    result["speedup"] = statistics.median(theirs / mine for mine, theirs in pairs)
    return result
