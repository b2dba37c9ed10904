"""Runs over several seeds, and their metrics as mean and spread: ``lawful run X --seeds 0,1,2``.

Each seed is a whole run in ``OUT/seed-S`` (resumable like any other); ``OUT/metrics.json`` then
holds, per row (task, method, parameter) and metric, the mean over the seeds, their standard
deviation (``_sd``, with n - 1) and the per-seed values (``_seeds``), and ``OUT/report.md`` the
table as mean ± standard deviation. The spread is the seed's effect: a method's effect is one
larger than it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from lawful.data.store import write_text_atomically
from lawful.experiments.report import MetricRow, markdown_table

__all__ = ["aggregate_seeds", "parse_seeds", "run_seeds", "seed_folder"]

_KEY_FIELDS = ("task", "method", "param")


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``: distinct integers, at least two."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--seeds must be integers separated by commas, got {text!r}") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs at least two distinct seeds, got {text!r}")
    return seeds


def seed_folder(out: Path, seed: int) -> Path:
    return out / f"seed-{seed}"


def _key(row: dict) -> tuple:
    return tuple(row.get(name) for name in _KEY_FIELDS)


def _metric_names(row: dict) -> list[str]:
    """A row's metrics: every number that is not a key or a standard error."""
    return [
        name
        for name, value in row.items()
        if name not in _KEY_FIELDS
        and not name.endswith("_se")
        and (value is None or isinstance(value, int | float))
    ]


def aggregate_seeds(runs: Sequence[dict], seeds: Sequence[int]) -> dict:
    """The ``metrics.json`` contents of runs at ``seeds`` as one: per row and metric the mean,
    standard deviation and per-seed values. Every run must have the same rows."""
    if len(runs) != len(seeds) or len(runs) < 2:
        raise ValueError(f"need one metrics dict per seed, at least two; got {len(runs)}")
    keys = [_key(row) for row in runs[0]["rows"]]
    for seed, run in zip(seeds, runs, strict=True):
        if [_key(row) for row in run["rows"]] != keys:
            raise ValueError(f"the run of seed {seed} has other rows than that of seed {seeds[0]}")
    rows = []
    for index, first in enumerate(runs[0]["rows"]):
        row = {name: first[name] for name in _KEY_FIELDS if name in first}
        for name in _metric_names(first):
            values = [run["rows"][index].get(name) for run in runs]
            known = [float(v) for v in values if v is not None and not math.isnan(float(v))]
            mean = sum(known) / len(known) if known else None
            spread = (
                math.sqrt(sum((v - mean) ** 2 for v in known) / (len(known) - 1))
                if len(known) > 1
                else None
            )
            row |= {name: mean, f"{name}_sd": spread, f"{name}_seeds": values}
        rows.append(row)
    return {
        "experiment": runs[0]["experiment"],
        "preset": runs[0]["preset"],
        "seeds": list(seeds),
        "rows": rows,
    }


def _report(aggregated: dict) -> str:
    # Every metric of any row, in the order first met: rows differ (a deterministic model has
    # no CRPS; an ensemble has).
    names = dict.fromkeys(name for row in aggregated["rows"] for name in _metric_names(row))
    metrics = [name for name in names if not name.endswith("_sd")]
    rows = [
        MetricRow(
            row["method"],
            row.get("param"),
            {name: row[name] for name in metrics if row.get(name) is not None},
            {name: row[f"{name}_sd"] for name in metrics if row.get(f"{name}_sd") is not None},
            row.get("task"),
        )
        for row in aggregated["rows"]
    ]
    seeds = ", ".join(str(seed) for seed in aggregated["seeds"])
    reports = ", ".join(
        f"[seed {seed}]({seed_folder(Path('.'), seed) / 'report.md'})"
        for seed in aggregated["seeds"]
    )
    return "\n".join(
        [
            f"# lawful: {aggregated['experiment']} ({aggregated['preset']}), seeds {seeds}",
            "",
            markdown_table(rows, metrics, "param"),  # the spread where a run has its error
            "",
            f"Means over the seeds ± their standard deviation (n - 1). Each seed's run, with its "
            f"figures and the metrics' meaning: {reports}.",
            "",
        ]
    )


def run_seeds(
    run_one: Callable[[int, Path], dict | None], seeds: Sequence[int], out: Path
) -> dict | None:
    """``run_one(seed, folder)`` for each seed into ``OUT/seed-S``, then the aggregate into
    ``OUT/metrics.json`` and ``OUT/report.md``; ``None`` where a run did not evaluate."""
    runs = []
    for seed in seeds:
        metrics = run_one(seed, seed_folder(out, seed))
        if metrics is None:
            return None
        runs.append(metrics)
    aggregated = aggregate_seeds(runs, seeds)
    for name, text in (
        ("metrics.json", json.dumps(aggregated, indent=2) + "\n"),
        ("report.md", _report(aggregated)),
    ):
        write_text_atomically(out / name, text)
    return aggregated
