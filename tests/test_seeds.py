"""Runs over several seeds: each a whole run, the metrics as mean, spread and per-seed values."""

import json
import math

import pytest

from lawful.cli import main
from lawful.experiments.seeds import aggregate_seeds, parse_seeds, run_seeds


def _metrics(mse: float, ce: float | None, rows=("ANP", "ProbConserv-ANP")) -> dict:
    return {
        "experiment": "stefan",
        "preset": "quick",
        "rows": [
            {"method": method, "param": 0.5, "mse": mse * (i + 1), "mse_se": 0.1, "ce": ce}
            for i, method in enumerate(rows)
        ],
    }


def test_each_metric_gets_the_mean_the_sample_spread_and_the_per_seed_values():
    aggregated = aggregate_seeds(
        [_metrics(1.0, 0.5), _metrics(2.0, None), _metrics(6.0, 1.5)], [0, 1, 2]
    )
    assert aggregated["seeds"] == [0, 1, 2]
    anp, probconserv = aggregated["rows"]
    assert (anp["method"], anp["param"]) == ("ANP", 0.5)
    assert anp["mse"] == pytest.approx(3.0)
    assert anp["mse_sd"] == pytest.approx(
        math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2)
    )
    assert anp["mse_seeds"] == [1.0, 2.0, 6.0]
    assert probconserv["mse"] == pytest.approx(6.0)
    # A value missing at one seed (NaN in metrics.json is null) is left out of the mean and spread.
    assert anp["ce"] == pytest.approx(1.0) and anp["ce_sd"] == pytest.approx(math.sqrt(0.5))
    assert "mse_se_sd" not in anp  # a per-run standard error is not a metric


def test_the_report_has_a_column_for_a_metric_only_some_rows_have(tmp_path):
    def run_one(seed, folder):
        metrics = _metrics(float(seed + 1), 0.0)
        metrics["rows"][1]["crps"] = 0.1 * (seed + 1)  # only the second method has a belief
        return metrics

    run_seeds(run_one, [0, 1], tmp_path)
    header, _, first, second = (tmp_path / "report.md").read_text().splitlines()[2:6]
    assert header.endswith("| mse | ce | crps |")
    assert first.endswith("| – |") and second.endswith("| 0.15 ± 7.1e-02 |")


def test_runs_with_other_rows_are_not_averaged():
    with pytest.raises(ValueError, match="the run of seed 1 has other rows than that of seed 0"):
        aggregate_seeds([_metrics(1.0, 0.0), _metrics(1.0, 0.0, rows=("ANP",))], [0, 1])


def test_run_seeds_writes_every_seed_and_the_aggregate(tmp_path):
    seen = []

    def run_one(seed, folder):
        seen.append((seed, folder))
        return _metrics(float(seed + 1), 0.0)

    aggregated = run_seeds(run_one, [3, 5], tmp_path)
    assert seen == [(3, tmp_path / "seed-3"), (5, tmp_path / "seed-5")]
    assert json.loads((tmp_path / "metrics.json").read_text()) == aggregated
    report = (tmp_path / "report.md").read_text()
    assert "seeds 3, 5" in report and "| ANP | 0.5 | 5 ± 1.4e+00 |" in report


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,x", "integers separated by commas"),
        ("1", "at least two distinct"),
        ("2,2", "at least two distinct"),
    ],
)
def test_bad_seed_lists_are_named_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_seeds(text)


def test_seed_and_seeds_together_are_refused_by_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "run",
                "cavity",
                "--preset",
                "tiny",
                "--seed",
                "1",
                "--seeds",
                "0,1",
                "--out",
                str(tmp_path),
            ]
        )
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_command_runs_each_seed_and_averages_them(tmp_path):
    out = tmp_path / "cavity"
    args = [
        "run",
        "cavity",
        "--preset",
        "tiny",
        "--seeds",
        "0,1",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    per_seed = [json.loads((out / f"seed-{s}" / "metrics.json").read_text()) for s in (0, 1)]
    aggregated = json.loads((out / "metrics.json").read_text())
    for index, row in enumerate(aggregated["rows"]):
        values = [run["rows"][index]["rel_l2"] for run in per_seed]
        assert row["rel_l2_seeds"] == values
        assert row["rel_l2"] == pytest.approx(sum(values) / 2)
    assert per_seed[0]["rows"][0]["rel_l2"] != per_seed[1]["rows"][0]["rel_l2"]  # other seeds
