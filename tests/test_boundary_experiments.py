"""The boundary experiments end to end on the tiny preset (files, layout, exact boundaries,
resume), and the operator training module on a tiny problem."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lawful.cli import main
from lawful.experiments import RunSettings, run_experiment
from lawful.experiments.boundary import METHODS
from lawful.operators.fno import FNO1d
from lawful.training.operator import OperatorModule, relative_l2_loss
from lawful.training.trainer import IDENTITY_KEY, TrainSettings, fit


def _run(experiment: str, out: Path, command: str = "run") -> None:
    args = [command, experiment, "--preset", "tiny", "--out", str(out), "--no-progress"]
    assert main(args) == 0


@pytest.fixture(scope="module")
def stokes_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stokes")
    _run("stokes", out)
    return out


@pytest.fixture(scope="module")
def heat_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("heat")
    _run("heat-neumann", out)
    return out


def _rows(out: Path, experiment: str) -> list[dict]:
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["experiment"] == experiment and metrics["preset"] == "tiny"
    for row in metrics["rows"]:
        assert {"method", "param", "task", "rel_l2", "rel_l2_se", "boundary_error"} <= set(row)
    return metrics["rows"]


def test_stokes_rows_per_viscosity_with_exact_dirichlet_walls_for_boon(stokes_run):
    rows = _rows(stokes_run, "stokes")
    assert {(row["method"], row["param"]) for row in rows} == {
        (method, nu) for method in METHODS for nu in (0.1, 0.001)
    }
    for row in rows:
        assert row["task"] == "multi-step" and 0 < row["rel_l2"] < 10
        if row["method"] in ("BOON", "FNO+overwrite"):
            assert row["boundary_error"] < 1e-5, row
        else:  # an untrained FNO misses the wall velocity by O(U) ~ 1
            assert row["boundary_error"] > 1e-2, row
    report = (stokes_run / "report.md").read_text()
    assert "| multi-step | BOON | 0.001 |" in report
    over_time = json.loads((stokes_run / "error_over_time.json").read_text())
    assert len(over_time["multi-step-param0.001"]["BOON"]) == 25
    for figure in (
        "profiles_over_time-multi-step-param0.1.png",
        "profiles_over_time-multi-step-param0.001.png",
        "error_over_time.png",
    ):
        assert (stokes_run / figure).stat().st_size > 10_000


def test_heat_reports_both_tasks_and_boon_meets_the_flux_exactly(heat_run):
    rows = _rows(heat_run, "heat-neumann")
    assert {(row["task"], row["method"]) for row in rows} == {
        (task, method) for task in ("single-step", "multi-step") for method in METHODS
    }
    for row in rows:
        assert row["param"] is None
        assert row["flux_error_4th_order"] > 0  # a different stencil: not exact by construction
        if row["method"] in ("BOON", "FNO+overwrite"):
            assert row["boundary_error"] < 1e-5, row
        if row["method"] == "FNO":
            assert row["boundary_error"] > 1e-2, row
    for figure in ("heat_ends.png", "profiles-single-step.png", "error_over_time.png"):
        assert (heat_run / figure).stat().st_size > 10_000


def test_rerun_resumes_instead_of_regenerating_or_retraining(heat_run):
    kept = [heat_run / "data" / "train.h5", heat_run / "models" / "single-step" / "boon.pt"]
    before = [path.stat().st_mtime_ns for path in kept]
    metrics_before = json.loads((heat_run / "metrics.json").read_text())
    _run("heat-neumann", heat_run)
    assert [path.stat().st_mtime_ns for path in kept] == before
    assert json.loads((heat_run / "metrics.json").read_text()) == metrics_before


def test_a_missing_data_file_is_written_again_by_any_stage(heat_run):
    metrics_before = json.loads((heat_run / "metrics.json").read_text())
    (heat_run / "data" / "test.h5").unlink()  # the folder is there, one file is not
    _run("heat-neumann", heat_run, command="evaluate")
    assert (heat_run / "data" / "test.h5").exists()
    assert json.loads((heat_run / "metrics.json").read_text()) == metrics_before


def test_reference_checkpoints_are_refused_for_boundary_experiments(tmp_path):
    with pytest.raises(ValueError, match="--reference is not supported"):
        run_experiment("wave", RunSettings(tmp_path, "tiny", reference=tmp_path))


def test_operator_module_loss_decreases_on_a_tiny_problem(tmp_path):
    # Learn u -> 2 u on smooth inputs: a linear operator an FNO represents exactly.
    x = torch.linspace(0, 1, 16)
    frequencies = torch.arange(1, 9, dtype=torch.float32)[:, None]  # (8, 1)
    inputs = torch.sin(torch.pi * frequencies * x)[:, None]  # (8, 1, 16)
    data = TensorDataset(inputs, 2 * inputs)
    model = FNO1d(1, 1, width=8, modes=4, projection_width=16)
    module = OperatorModule(model, learning_rate=1e-2, weight_decay=0.0, lr_step_epochs=100)
    with torch.no_grad():
        before = float(relative_l2_loss(module(inputs), 2 * inputs))
    loader = DataLoader(
        data, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    fit(module, loader, TrainSettings(max_epochs=30, progress=False), tmp_path)
    with torch.no_grad():
        after = float(relative_l2_loss(module(inputs), 2 * inputs))
    assert before > 0.9  # an untrained FNO is about as far as predicting zero
    assert after < 0.5 * before


def test_operator_module_refuses_a_bad_schedule():
    with pytest.raises(ValueError, match="lr_step_epochs >= 1"):
        OperatorModule(FNO1d(1, 1, width=4, modes=2), lr_step_epochs=0)


def test_a_methods_weights_where_anothers_belong_are_named(heat_run, tmp_path, capsys):
    """A silent wrong answer before: FNO weights in BOON's place were loaded as BOON."""
    run = tmp_path / "run"
    shutil.copytree(heat_run, run)
    models = run / "models" / "single-step"
    shutil.copy(models / "fno.pt", models / "boon.pt")
    assert main(["evaluate", "heat-neumann", "--preset", "tiny", "--out", str(run)]) == 1
    error = capsys.readouterr().err
    assert "boon.pt holds the weights of" in error and "method FNO" in error
    assert "method BOON" in error


def test_checkpoints_of_another_method_are_not_resumed(heat_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(heat_run, run)
    models = run / "models" / "single-step"
    (models / "boon.pt").unlink()  # BOON is trained again, from its checkpoint folder ...
    shutil.rmtree(models / "checkpoints-boon")
    shutil.copytree(models / "checkpoints-fno", models / "checkpoints-boon")  # ... the FNO's
    assert main(["train", "heat-neumann", "--preset", "tiny", "--out", str(run)]) == 1
    error = capsys.readouterr().err
    assert "checkpoints-boon belong to" in error and "method FNO" in error


def test_a_checkpoint_file_moved_into_another_methods_folder_is_named(heat_run, tmp_path, capsys):
    """A silent wrong answer before: the folder's identity.json stays behind when only the file
    moves, and the FNO's last.ckpt was resumed as BOON's, finished, and saved as BOON."""
    run = tmp_path / "run"
    shutil.copytree(heat_run, run)
    models = run / "models" / "single-step"
    (models / "boon.pt").unlink()
    shutil.copy(models / "checkpoints-fno" / "last.ckpt", models / "checkpoints-boon" / "last.ckpt")
    assert main(["train", "heat-neumann", "--preset", "tiny", "--out", str(run)]) == 1
    error = capsys.readouterr().err
    assert "checkpoints-boon/last.ckpt is a checkpoint of" in error and "method FNO" in error
    assert not (models / "boon.pt").exists()  # nothing saved under the wrong name


def test_a_checkpoint_of_another_architecture_is_named(heat_run, tmp_path, capsys):
    # One without an identity (written before checkpoints recorded one) whose weights are
    # another model's: named before Lightning fails on it inside fit.
    run = tmp_path / "run"
    shutil.copytree(heat_run, run)
    models = run / "models" / "single-step"
    (models / "fno.pt").unlink()
    checkpoint = models / "checkpoints-fno" / "last.ckpt"
    saved = torch.load(checkpoint, weights_only=False)
    saved.pop(IDENTITY_KEY)
    name = next(iter(saved["state_dict"]))
    saved["state_dict"][name] = saved["state_dict"][name][..., :1]
    torch.save(saved, checkpoint)
    assert main(["train", "heat-neumann", "--preset", "tiny", "--out", str(run)]) == 1
    error = capsys.readouterr().err
    assert "holds weights of another model" in error and f"of another shape {name}" in error


@pytest.mark.parametrize("damage", [b"", b"not a checkpoint"], ids=["empty", "garbage"])
def test_a_damaged_checkpoint_is_named_in_one_line(heat_run, tmp_path, capsys, damage):
    run = tmp_path / "run"
    shutil.copytree(heat_run, run)
    models = run / "models" / "single-step"
    (models / "boon.pt").unlink()  # BOON is trained again, resuming from its checkpoint
    (models / "checkpoints-boon" / "last.ckpt").write_bytes(damage)
    assert main(["train", "heat-neumann", "--preset", "tiny", "--out", str(run)]) == 1
    error = capsys.readouterr().err
    last_line = error.strip().splitlines()[-1]
    assert last_line.startswith("lawful: error: ") and "Traceback" not in error
    assert "checkpoints-boon/last.ckpt is not a readable checkpoint" in last_line
