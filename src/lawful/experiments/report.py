"""What every experiment writes: ``metrics.json`` (the layout of DESIGN.md) and ``report.md``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lawful.data.store import write_text_atomically
from lawful.metrics import Summary

__all__ = ["MetricRow", "format_value", "write_metrics", "write_report"]


@dataclass(frozen=True)
class MetricRow:
    """One method at one parameter value: metric name -> value, plus standard errors.

    ``task`` tells rows of one experiment apart beyond the parameter (e.g. single-step and
    multi-step); ``None`` leaves it out of ``metrics.json`` and the table.
    """

    method: str
    param: float | None
    values: dict[str, float]
    standard_errors: dict[str, float] = field(default_factory=dict)
    task: str | None = None

    @classmethod
    def from_summaries(
        cls,
        method: str,
        param: float | None,
        summaries: Mapping[str, Summary],
        task: str | None = None,
    ) -> MetricRow:
        return cls(
            method,
            param,
            {name: summary.mean for name, summary in summaries.items()},
            {name: summary.standard_error for name, summary in summaries.items()},
            task,
        )

    def to_json(self) -> dict:
        row: dict = {"method": self.method, "param": self.param}
        if self.task is not None:
            row["task"] = self.task
        row |= {name: _json_number(value) for name, value in self.values.items()}
        row |= {f"{name}_se": _json_number(value) for name, value in self.standard_errors.items()}
        return row


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def write_metrics(path: Path, experiment: str, preset: str, rows: Sequence[MetricRow]) -> dict:
    metrics = {"experiment": experiment, "preset": preset, "rows": [row.to_json() for row in rows]}
    # Atomically, as every record: a killed run leaves the old file or none, never half of one.
    write_text_atomically(path, json.dumps(metrics, indent=2) + "\n")
    return metrics


def format_value(value: float, standard_error: float | None = None) -> str:
    text = f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    if standard_error is None or math.isnan(standard_error):
        return text
    return f"{text} ± {standard_error:.1e}"


def markdown_table(rows: Sequence[MetricRow], columns: Sequence[str], param_name: str) -> str:
    with_task = any(row.task is not None for row in rows)
    header = [*(["task"] if with_task else []), "method", param_name, *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        param = "" if row.param is None else f"{row.param:g}"
        task = [row.task or ""] if with_task else []
        cells = [
            format_value(row.values[name], row.standard_errors.get(name))
            if name in row.values
            else "–"  # a metric this method has no value of (a deterministic model's CRPS)
            for name in columns
        ]
        lines.append("| " + " | ".join([*task, row.method, param, *cells]) + " |")
    return "\n".join(lines)


def write_report(
    path: Path,
    title: str,
    rows: Sequence[MetricRow],
    columns: Sequence[str],
    param_name: str,
    figures: Mapping[str, Path],
    notes: str,
) -> None:
    """One page: the table, what its columns mean, and the figures."""
    parts = [f"# {title}", "", markdown_table(rows, columns, param_name), "", notes, ""]
    for name, figure in figures.items():
        parts += [f"![{name}]({Path(figure).name})", ""]
    write_text_atomically(path, "\n".join(parts))
