"""``lawful bench``: speed targets, each a ratio of two timings measured in the same run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from lawful.beliefs import GaussianBelief
from lawful.bench.operators import boon_step_ratio, boon_step_ratio_2d
from lawful.constraints.conservation import LinearConstraint, mass_constraint
from lawful.constraints.update import condition

__all__ = ["format_table", "run_benchmarks"]


def _median_seconds(work: Callable[[], object], repeats: int) -> float:
    work()  # warm-up: allocations, kernels, caches
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def _textbook_update(mean, covariance, weights, values):
    """The dense formula as printed: n x n covariances, an explicit inverse, batched over slices.

    ``mean`` ``(T, n)``; ``covariance`` ``(T, n, n)``; ``weights`` ``(1, n)``; ``values`` ``(T, 1)``
    """
    gain = covariance @ weights.T @ torch.linalg.inv(weights @ covariance @ weights.T)  # (T, n, 1)
    residual = values - mean @ weights.T  # (T, 1)
    return mean + (gain @ residual.unsqueeze(-1)).squeeze(
        -1
    ), covariance - gain @ weights @ covariance


def bench_update_vs_dense(num_times: int = 201, num_points: int = 201, repeats: int = 5) -> dict:
    """The update of a diagonal belief on ``times x points`` against the dense textbook formula.

    One mass constraint per time slice (the evaluation grid of the ProbConserv paper); the
    dense formula works on each slice's ``points x points`` covariance.
    """
    generator = torch.Generator().manual_seed(0)
    shape = (num_times, num_points)
    mean = torch.randn(shape, generator=generator, dtype=torch.float64)
    variance = torch.rand(shape, generator=generator, dtype=torch.float64) + 0.1
    grid = torch.linspace(0, 1, num_points, dtype=torch.float64)
    total_mass = torch.randn(num_times, generator=generator, dtype=torch.float64)
    constraint = mass_constraint(grid, total_mass)  # weights (1, points), values (times, 1)
    belief = GaussianBelief.diagonal(mean, variance)
    dense_covariance = torch.diag_embed(variance)  # formed outside the timing: a GP hands it over

    def structured():
        posterior = condition(belief, constraint)
        return posterior.mean, posterior.variance()

    fast = _median_seconds(structured, repeats)
    slow = _median_seconds(
        lambda: _textbook_update(mean, dense_covariance, constraint.weights, constraint.values),
        repeats,
    )
    return {
        "name": f"update vs dense formula ({num_times} x {num_points} points)",
        "ours_s": fast,
        "baseline_s": slow,
        "ratio": slow / fast,
        "target": ">= 100x faster",
        "met": slow / fast >= 100,
    }


def bench_update_vs_bandwidth(num_points: int = 10_000_000, repeats: int = 7) -> dict:
    """The update of one float32 belief of ``num_points`` values against one elementwise pass.

    The floor: ``mean + variance * weights`` reads the three arrays the update must read and
    writes one. The update reads them again for its two reductions and writes mean and variance.
    """
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(num_points, generator=generator)
    variance = torch.rand(num_points, generator=generator) + 0.1
    grid = torch.linspace(0, 1, num_points, dtype=torch.float64)
    constraint = mass_constraint(grid, torch.tensor(0.5, dtype=torch.float64))
    # Weights built on the float64 grid (10 million float32 points would not stay increasing),
    # then stored in float32 once, so the timed update does not convert them on every call.
    constraint = LinearConstraint(constraint.weights.float(), constraint.values.float())
    weights = constraint.weights[0]
    belief = GaussianBelief.diagonal(mean, variance)

    def update():
        posterior = condition(belief, constraint)
        return posterior.mean, posterior.variance()

    ours = _median_seconds(update, repeats)
    floor = _median_seconds(lambda: torch.addcmul(mean, variance, weights), repeats)
    return {
        "name": f"update vs elementwise pass ({num_points:,} float32 points)",
        "ours_s": ours,
        "baseline_s": floor,
        "ratio": ours / floor,
        "target": "<= 5x the elementwise pass",
        "met": ours / floor <= 5,
    }


def bench_boon_training_step(
    width: int = 64, modes: int = 16, num_points: int = 500, batch: int = 20, repeats: int = 9
) -> dict:
    """A training step of the boundary-corrected FNO against the same FNO's."""
    timing = boon_step_ratio(width, modes, num_points, batch, repeats)
    return {
        "name": f"BOON vs FNO training step (width {width}, {modes} modes, {num_points} points)",
        "ours_s": timing["boon_s"],
        "baseline_s": timing["fno_s"],
        "ratio": timing["ratio"],
        "target": "<= 1.3x the FNO",
        "met": timing["ratio"] <= 1.3,
    }


def bench_boon_walls_training_step(
    width: int = 20,
    modes: int = 8,
    grid: tuple[int, int] = (50, 50),
    frames: int = 25,
    batch: int = 10,
    repeats: int = 3,
) -> dict:
    """A training step of BOON on four Dirichlet walls of an (x, y, t) FNO against the FNO's."""
    timing = boon_step_ratio_2d(width, modes, grid, frames, batch=batch, repeats=repeats)
    return {
        "name": (
            f"BOON vs FNO training step, 4 walls ({grid[0]} x {grid[1]} x {frames}, width {width})"
        ),
        "ours_s": timing["boon_s"],
        "baseline_s": timing["fno_s"],
        "ratio": timing["ratio"],
        "target": "<= 1.5x the FNO",
        "met": timing["ratio"] <= 1.5,
    }


def run_benchmarks(quick: bool = False) -> list[dict]:
    if quick:
        return [
            bench_update_vs_dense(num_times=21, num_points=21, repeats=2),
            bench_update_vs_bandwidth(num_points=100_000, repeats=3),
            bench_boon_training_step(width=8, modes=4, num_points=32, batch=2, repeats=2),
            bench_boon_walls_training_step(
                width=4, modes=3, grid=(12, 10), frames=5, batch=2, repeats=2
            ),
        ]
    return [
        bench_update_vs_dense(),
        bench_update_vs_bandwidth(),
        bench_boon_training_step(),
        bench_boon_walls_training_step(),
    ]


def format_table(results: list[dict]) -> str:
    lines = [
        f"{'benchmark':60s} {'ours (s)':>10s} {'baseline (s)':>13s} {'ratio':>8s}  target",
    ]
    for result in results:
        met = "met" if result["met"] else "NOT met"
        lines.append(
            f"{result['name']:60s} {result['ours_s']:10.4f} {result['baseline_s']:13.4f} "
            f"{result['ratio']:8.2f}  {result['target']} ({met})"
        )
    return "\n".join(lines)
