"""``lawful bench --scaling``: how each operation's cost grows with the grid, on log-log axes.

Each series times one operation over a range of sizes (median of repeats, after the bench's
warm-up steps) and fits the slope of log(seconds) against log(size) on its upper half, where
fixed per-call costs no longer hide the growth; beside it stands the slope the operation's
complexity predicts over the same sizes:

- the conservation update of a diagonal float32 belief on one mass row, 1e3 to 1e7 points:
  O(n), slope 1;
- a training step (forward, backward, Adam) of the FNO and of BOON, 128 to 8192 points in 1-D
  and 32^2 to 256^2 in 2-D (sizes counted in grid points): O(n log n), the FFTs; the slope of
  n log n over the range is a little above 1;
- an ANP training step (its ELBO, backward, Adam) over the number of context = target points:
  attention compares every query with every key, O(n^2), slope 2.

At each size the FNO's and BOON's steps alternate, as in the bench's rows, so BOON's series also
records its step over the FNO's there (``ratios``, medians of the per-pair ratios), measured
under one load.

Writes ``scaling.json`` (sizes, seconds, fitted and expected slopes, BOON's ratios) and
``scaling.png``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from lawful.bench._timing import (
    WARMUP_STEPS,
    adam_step,
    alternating_steps,
    float32_mass_problem,
    median_seconds,
)
from lawful.bench.anp import anp_task
from lawful.bench.operators import training_step
from lawful.constraints.boundary import BoundaryConditions, Dirichlet
from lawful.constraints.update import condition
from lawful.constraints.walls import Walls
from lawful.data.store import write_text_atomically
from lawful.models.anp import AttentiveNeuralProcess
from lawful.operators.boon import BoundaryCorrectedFNO
from lawful.operators.fno import FNO1d, FNOxy

__all__ = [
    "ScalingSeries",
    "expected_slope",
    "fitted_slope",
    "format_slopes",
    "run_scaling",
    "write_scaling",
]

Complexity = str  # "n", "n log n" or "n^2"


@dataclass(frozen=True)
class ScalingSeries:
    """One operation's seconds at each size, with the fitted and the predicted slope."""

    name: str
    size_label: str  # what a size counts
    sizes: list[int]
    seconds: list[float]
    complexity: Complexity
    slope: float  # fitted on the upper half of the sizes
    expected_slope: float  # of the complexity, over the same sizes
    ratios: list[float] | None = None  # BOON: its step over the FNO's at each size


def fitted_slope(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """Least-squares slope of log(seconds) against log(size) over the upper half of the sizes
    (at least two points)."""
    if len(sizes) != len(seconds) or len(sizes) < 2:
        raise ValueError(
            f"need two or more (size, seconds) pairs, got {len(sizes)} and {len(seconds)}"
        )
    if min(sizes) <= 0 or min(seconds) <= 0:
        raise ValueError("sizes and seconds must be positive to fit on log-log axes")
    start = min(len(sizes) // 2, len(sizes) - 2)
    x = [math.log(size) for size in sizes[start:]]
    y = [math.log(second) for second in seconds[start:]]
    x_mean, y_mean = statistics.fmean(x), statistics.fmean(y)
    spread = sum((a - x_mean) ** 2 for a in x)
    return sum((a - x_mean) * (b - y_mean) for a, b in zip(x, y, strict=True)) / spread


def expected_slope(complexity: Complexity, sizes: Sequence[float]) -> float:
    """The slope :func:`fitted_slope` finds for exact costs of this complexity at these sizes."""
    cost: Callable[[float], float] = {
        "n": lambda n: n,
        "n log n": lambda n: n * math.log(n),
        "n^2": lambda n: n * n,
    }[complexity]
    return fitted_slope(sizes, [cost(size) for size in sizes])


def _fitted(
    name: str,
    size_label: str,
    sizes: Sequence[int],
    seconds: Sequence[float],
    complexity: Complexity,
    ratios: Sequence[float] | None = None,
) -> ScalingSeries:
    return ScalingSeries(
        name,
        size_label,
        list(sizes),
        list(seconds),
        complexity,
        fitted_slope(sizes, seconds),
        expected_slope(complexity, sizes),
        None if ratios is None else list(ratios),
    )


def _series(
    name: str,
    size_label: str,
    sizes: Sequence[int],
    complexity: Complexity,
    make_work: Callable[[int], Callable[[], object]],
    repeats: int,
    warmup: int,
) -> ScalingSeries:
    seconds = [median_seconds(make_work(size), repeats, warmup=warmup) for size in sizes]
    return _fitted(name, size_label, sizes, seconds, complexity)


def _operator_series(
    label: str,
    sizes: Sequence[int],
    two_dimensional: bool,
    width: int,
    modes: int,
    batch: int,
    repeats: int,
    warmup: int,
) -> list[ScalingSeries]:
    """The FNO's and BOON's training steps at each size, alternating (:func:`alternating_steps`):
    the FNO's series, then BOON's with its ratios to the FNO's."""
    fno_seconds, boon_seconds, ratios = [], [], []
    for size in sizes:
        timing = alternating_steps(
            _operator_step(two_dimensional, True, width, modes, batch, size),
            _operator_step(two_dimensional, False, width, modes, batch, size),
            "cpu",
            repeats,
            warmup,
        )
        fno_seconds.append(timing["baseline_s"])
        boon_seconds.append(timing["ours_s"])
        ratios.append(timing["ratio"])
    settings = f"{label} (width {width}, {modes} modes, batch {batch})"
    return [
        _fitted(f"FNO training step, {settings}", "grid points", sizes, fno_seconds, "n log n"),
        _fitted(
            f"BOON training step, {settings}",
            "grid points",
            sizes,
            boon_seconds,
            "n log n",
            ratios,
        ),
    ]


def _update_work(num_points: int) -> Callable[[], object]:
    belief, constraint = float32_mass_problem(num_points)

    def update() -> object:
        posterior = condition(belief, constraint)
        return posterior.mean, posterior.variance()

    return update


_ENDS = BoundaryConditions(Dirichlet(0.0), Dirichlet(0.0))


def _operator_step(
    two_dimensional: bool, corrected: bool, width: int, modes: int, batch: int, num_points: int
) -> Callable[[], None]:
    """A training step of the FNO (or BOON on its ends or four walls) on ``num_points`` grid
    points: a line in 1-D, a square in 2-D."""
    torch.manual_seed(0)
    if two_dimensional:
        side = math.isqrt(num_points)
        fno: nn.Module = FNOxy(1, 1, width, modes, modes, projection_width=2 * width)
        shape: tuple[int, ...] = (batch, 1, side, side)
        conditions: BoundaryConditions | Walls = Walls(_ENDS, _ENDS)
    else:
        fno = FNO1d(1, 1, width, modes, projection_width=2 * width)
        shape = (batch, 1, num_points)
        conditions = _ENDS
    model = BoundaryCorrectedFNO(fno, conditions) if corrected else fno
    generator = torch.Generator().manual_seed(0)
    x, target = (torch.randn(shape, generator=generator) for _ in range(2))
    return training_step(model, x, target)


def _anp_work(hidden: int, batch: int) -> Callable[[int], Callable[[], object]]:
    def make(num_points: int) -> Callable[[], object]:
        torch.manual_seed(0)
        model = AttentiveNeuralProcess(hidden_dim=hidden, latent_dim=hidden)
        half = num_points // 2  # context and targets
        task = anp_task(batch, half, half)
        return adam_step(model, lambda: model.elbo_loss(*task))

    return make


def run_scaling(quick: bool = False) -> list[ScalingSeries]:
    """Every series; ``quick``: a few small sizes each (seconds, for tests)."""
    if quick:
        update_sizes, line, square, anp = (
            [10**3, 10**4, 10**5],
            [64, 128, 256],
            [144, 256],
            [32, 64],
        )
        width, modes, repeats, warmup = 4, 3, 1, 1
        batches = {"1-D": 2, "2-D": 2, "ANP": 2}
    else:
        update_sizes = [10**k for k in range(3, 8)]
        line = [128 * 2**k for k in range(7)]  # 128 .. 8192
        square = [side * side for side in (32, 64, 128, 256)]
        anp = [100, 200, 400, 800, 1600]
        width, modes, repeats, warmup = 16, 8, 7, WARMUP_STEPS
        # A 1-D step at a few hundred points is all fixed cost at a small batch: 32 samples
        # let the FFTs' growth show within the issue's 128 to 8192 points.
        batches = {"1-D": 32, "2-D": 4, "ANP": 4}
    series = [
        _series("conservation update", "points", update_sizes, "n", _update_work, repeats, warmup)
    ]
    for label, sizes, two_dimensional in (("1-D", line, False), ("2-D", square, True)):
        series += _operator_series(
            label, sizes, two_dimensional, width, modes, batches[label], repeats, warmup
        )
    anp_hidden = 16 if quick else 128
    series.append(
        _series(
            f"ANP training step (hidden {anp_hidden})",
            "context + target points",
            anp,
            "n^2",
            _anp_work(anp_hidden, batches["ANP"]),
            repeats,
            warmup,
        )
    )
    return series


def write_scaling(series: Sequence[ScalingSeries], out: Path) -> tuple[Path, Path]:
    """``out/scaling.json`` and ``out/scaling.png`` (one log-log panel per series)."""
    from lawful.plots import plot_scaling

    out.mkdir(parents=True, exist_ok=True)
    records = [asdict(one) for one in series]
    json_path = out / "scaling.json"
    write_text_atomically(json_path, json.dumps(records, indent=2) + "\n")
    return json_path, plot_scaling(records, out / "scaling.png")


def format_slopes(series: Sequence[ScalingSeries]) -> str:
    """One line per series: its sizes, the fitted slope and the complexity's; BOON's ratios to
    the FNO's step on a line below its own."""
    lines = [f"{'operation':55s} {'sizes':>17s} {'slope':>6s}  expected"]
    for one in series:
        sizes = f"{one.sizes[0]:,}..{one.sizes[-1]:,}"
        lines.append(
            f"{one.name:55s} {sizes:>17s} {one.slope:6.2f}  "
            f"{one.expected_slope:.2f} (O({one.complexity}))"
        )
        if one.ratios is not None:
            ratios = " ".join(f"{ratio:.2f}" for ratio in one.ratios)
            lines.append(f"  its step over the FNO's, size by size: {ratios}")
    return "\n".join(lines)
