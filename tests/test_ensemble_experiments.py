"""The composed experiments end to end on the tiny preset: an ensemble of FNOs or BOONs,
conditioned on its mass and end conditions together, meets both to round-off."""

import json

import pytest

from lawful.cli import main
from lawful.experiments import RunSettings, run_experiment
from lawful.experiments.ensemble import ENSEMBLE_EXPERIMENTS, METHODS


@pytest.mark.parametrize("experiment", sorted(ENSEMBLE_EXPERIMENTS))
def test_update_conserves_mass_and_keeps_the_ends(tmp_path, experiment):
    out = tmp_path / experiment
    args = ["run", experiment, "--preset", "tiny", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["experiment"] == experiment and metrics["preset"] == "tiny"
    rows = {(row["task"], row["method"]): row for row in metrics["rows"]}
    assert set(rows) == {
        (task.kind, method)
        for task in ENSEMBLE_EXPERIMENTS[experiment].base.tasks
        for method in METHODS
    }
    assert all(0 <= row["coverage"] <= 1 for row in rows.values())
    for task in ("single-step", "multi-step"):
        for method in ("ProbConserv-FNO-Ens", "ProbConserv-BOON-Ens"):
            assert abs(rows[task, method]["ce"]) < 1e-12, rows[task, method]
            assert rows[task, method]["boundary_error"] < 1e-12, rows[task, method]
        # Before the update: BOON's ends hold to float32 rounding, the plain FNO's do not;
        # neither ensemble knows the mass after two members and two epochs.
        assert rows[task, "BOON-Ens"]["boundary_error"] < 1e-5
        assert rows[task, "FNO-Ens"]["boundary_error"] > 1e-5
        assert abs(rows[task, "FNO-Ens"]["ce"]) > 1e-4
        assert abs(rows[task, "BOON-Ens"]["ce"]) > 1e-4
    for task in ("single-step", "multi-step"):
        assert (out / f"errors-{task}.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "| single-step | ProbConserv-BOON-Ens |" in report
    assert "| multi-step | ProbConserv-BOON-Ens |" in report
    # A rerun evaluates again without retraining.
    member = out / "models" / "multi-step" / "boon-1.pt"
    before = member.stat().st_mtime_ns
    args[0] = "evaluate"
    assert main(args) == 0
    assert member.stat().st_mtime_ns == before


def test_reference_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--reference is not supported"):
        run_experiment("heat-neumann-ensemble", RunSettings(tmp_path, "tiny", reference=tmp_path))
