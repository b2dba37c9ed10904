"""A user's own problem through the command line: their data file (``lawful train-operator``)
and their own PDE and experiment from a file outside the package (``lawful run --plugin``)."""

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from lawful.cli import main
from lawful.constraints.boundary import boundary_residuals
from lawful.constraints.parsing import parse_conditions
from lawful.data.operator_data import operator_tensors
from lawful.data.store import load_dataset
from lawful.data.user_files import load_operator_samples
from lawful.experiments import BoundaryExperiment, RunSettings, Task, experiments, get_experiment
from lawful.experiments.boundary import METHODS as BOUNDARY_METHODS
from lawful.experiments.boundary import PRESETS as BOUNDARY_PRESETS
from lawful.experiments.user_data import FileOperatorExperiment
from lawful.pdes import get_problem, make_boundary_dataset
from lawful.training.operator import build_fno, predict_operator

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "decay_problem.py"
METHODS = set(BOUNDARY_METHODS)


def _rows(out: Path) -> dict[tuple[str, str], dict]:
    metrics = json.loads((out / "metrics.json").read_text())
    return {(row["task"], row["method"]): row for row in metrics["rows"]}


@pytest.fixture(scope="module")
def dirichlet_file(tmp_path_factory) -> Path:
    """Burgers with per-sample Dirichlet ends, single-step, as a user's HDF5 file."""
    data = make_boundary_dataset("burgers-dirichlet", 14, 17, torch.Generator().manual_seed(5))
    path = tmp_path_factory.mktemp("user") / "burgers.h5"
    with h5py.File(path, "w") as file:
        file["a"] = data["inputs"].numpy()  # (N, X): the BOON authors' key names
        file["u"] = data["outputs"].numpy()  # (N, X)
        file["x"] = data["x"].numpy()
        file["x_left"] = data["boundary"]["left"].numpy()  # (N,)
        file["x_right"] = data["boundary"]["right"].numpy()
    return path


def test_train_operator_on_a_users_hdf5_file_holds_boons_walls(dirichlet_file, tmp_path):
    out = tmp_path / "run"
    args = [
        "train-operator",
        "--data",
        str(dirichlet_file),
        "--conditions",
        "x=dirichlet,dirichlet",
    ]
    assert main([*args, "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0
    rows = _rows(out)
    assert {method for _, method in rows} == METHODS
    assert json.loads((out / "metrics.json").read_text())["experiment"] == "burgers"
    for method in ("BOON", "FNO+overwrite"):
        assert rows["single-step", method]["boundary_error"] < 1e-6
    assert rows["single-step", "FNO"]["boundary_error"] > 1e-3  # two epochs miss the ends
    assert (out / "profiles-single-step.png").stat().st_size > 10_000

    # The held-out samples are the file's own: BOON meets their walls, sample by sample.
    test = load_dataset(out / "data" / "test.h5")
    with h5py.File(dirichlet_file) as file:
        inputs = torch.from_numpy(file["a"][()])
        left = torch.from_numpy(file["x_left"][()])
    assert len(test) == 3 and len(load_dataset(out / "data" / "train.h5")) == 11
    held_out = [int(torch.nonzero((inputs == row).all(1))[0]) for row in test.arrays["inputs"]]
    torch.testing.assert_close(test.arrays["left"][:, -1], left[held_out], rtol=0, atol=0)

    experiment = FileOperatorExperiment(
        "burgers", load_operator_samples(dirichlet_file), parse_conditions("dirichlet,dirichlet")
    )
    preset = experiment.presets["tiny"]
    (task,) = experiment.tasks
    boon = experiment.load_model("BOON", task, preset, out / "models" / task.label / "boon.pt")
    inputs, _, *ends = operator_tensors(test, multistep=False)  # float32, as in training
    prediction = predict_operator(boon, [inputs, None, *ends], batch_size=2)  # (N, 1, X)
    conditions = experiment.conditions.with_values(*(end.double() for end in ends))
    residuals = boundary_residuals(prediction, conditions, spacing=1 / 16)
    assert max(float(r.abs().max()) for r in residuals) < 1e-6


def test_train_operator_on_a_matlab_file_with_time_and_neumann_ends(tmp_path):
    data = make_boundary_dataset(
        "heat-neumann", 10, 17, torch.Generator().manual_seed(2), multistep=True
    )
    path = tmp_path / "heat.mat"
    scipy.io.savemat(
        path,
        {
            "u0": data["inputs"].numpy(),  # (N, X)
            "sol": data["outputs"].transpose(1, 2).numpy(),  # (N, X, T): time last
            "t": data["t"].numpy(),
            "left": data["boundary"]["left"].numpy(),  # (N, T) fluxes u_x
            "right": data["boundary"]["right"].numpy(),
        },
    )
    out = tmp_path / "run"
    args = ["train-operator", "--data", str(path), "--conditions", "neumann:2,neumann:2"]
    assert main([*args, "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0
    rows = _rows(out)
    assert set(rows) == {("multi-step", method) for method in METHODS}
    assert rows["multi-step", "BOON"]["boundary_error"] < 1e-5  # the stencil flux, per frame
    assert rows["multi-step", "FNO"]["boundary_error"] > 1e-2
    assert len(json.loads((out / "error_over_time.json").read_text())["multi-step"]["BOON"]) == 25


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        ("dirichlet", "give the two ends as LEFT,RIGHT"),
        ("dirichlet,,neumann", "an empty entry"),
        ("dirichlet,robin", "unknown boundary condition 'robin'"),
        ("y=dirichlet,dirichlet", "only the x axis"),
        ("neumann:9,dirichlet", "order must be between 1 and 4"),
        ("periodic,dirichlet", "periodic condition must be on both ends"),
    ],
)
def test_bad_conditions_are_named(dirichlet_file, tmp_path, capsys, conditions, message):
    args = ["train-operator", "--data", str(dirichlet_file), "--conditions", conditions]
    assert main([*args, "--preset", "tiny", "--out", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("lawful: error: ") and message in error, error


def test_periodic_ends_with_wall_data_are_refused(dirichlet_file, tmp_path, capsys):
    args = ["train-operator", "--data", str(dirichlet_file), "--conditions", "periodic"]
    assert main([*args, "--out", str(tmp_path)]) == 1
    assert "periodic ends take no boundary data" in capsys.readouterr().err


def test_a_missing_data_file_is_named(tmp_path, capsys):
    missing = tmp_path / "nope.h5"
    args = ["train-operator", "--data", str(missing), "--conditions", "dirichlet,dirichlet"]
    assert main(args) == 1
    assert f"{missing}: no such file" in capsys.readouterr().err


def test_a_users_pde_and_experiment_from_their_own_file_run_through_lawful_run(tmp_path):
    out = tmp_path / "decay"
    args = ["run", "decay", "--plugin", str(EXAMPLE), "--preset", "tiny", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    assert "decay" in experiments() and get_experiment("decay").kind.startswith("boundary")
    rows = _rows(out)
    assert set(rows) == {(task, m) for task in ("single-step", "multi-step") for m in METHODS}
    for task in ("single-step", "multi-step"):
        assert rows[task, "BOON"]["boundary_error"] < 1e-6
        assert rows[task, "FNO"]["boundary_error"] > 1e-4
    # The data is the file's exact solution: u = 0 at both ends, decaying modes.
    train = load_dataset(out / "data" / "train.h5")
    assert train.problem == "decay" and train.arrays["outputs"].shape == (8, 25, 17)
    assert float(train.arrays["outputs"][..., [0, -1]].abs().max()) < 1e-15
    first, last = train.arrays["outputs"][:, 0], train.arrays["outputs"][:, -1]
    assert bool((last.square().sum(-1) < first.square().sum(-1)).all())


def test_plugins_are_named_when_they_cannot_be_loaded(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('no such thing')\n")
    assert main(["list", "--plugin", str(broken)]) == 1
    assert f"plugin {broken} failed to import: no such thing" in capsys.readouterr().err
    assert main(["list", "--plugin", str(tmp_path / "missing.py")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_plugins_come_from_the_environment_too(tmp_path, monkeypatch, capsys):
    plugin = tmp_path / "env_plugin.py"
    plugin.write_text(EXAMPLE.read_text().replace('"decay"', '"decay-from-env"'))
    monkeypatch.setenv("LAWFUL_PLUGINS", str(plugin))
    assert main(["list"]) == 0
    assert "decay-from-env" in capsys.readouterr().out


def test_a_conservation_problem_drives_the_boon_experiment_through_the_one_catalogue(tmp_path):
    """Stefan (a conservation problem, Dirichlet ends: 1 at the left, 0 at the right) trained
    with the FNO, the overwritten FNO and BOON: the same Problem shape feeds both halves."""
    stefan = BoundaryExperiment("stefan-boon", get_problem("stefan"), (Task("single-step"),))
    metrics = stefan.run(RunSettings(tmp_path, "tiny", progress=False))
    rows = {row["method"]: row for row in metrics["rows"]}
    assert set(rows) == METHODS
    assert rows["BOON"]["boundary_error"] < 1e-6
    assert rows["FNO"]["boundary_error"] > 1e-3
    train = load_dataset(tmp_path / "data" / "train.h5")
    assert train.param_names == ("p_star",)
    torch.testing.assert_close(train.arrays["left"], torch.ones_like(train.arrays["left"]))


def test_a_users_grid_off_the_unit_interval_sets_boons_stencil_step(tmp_path):
    """x on [0, 2]: the Neumann stencil's step is 2 / (n - 1), not 1 / (n - 1)."""
    data = make_boundary_dataset(
        "heat-neumann", 10, 17, torch.Generator().manual_seed(2), multistep=True
    )
    path = tmp_path / "stretched.npz"
    np.savez(
        path,
        inputs=data["inputs"].numpy(),
        outputs=data["outputs"].transpose(1, 2).numpy(),  # (N, X, T)
        t=data["t"].numpy(),
        x=(2 * data["x"]).numpy(),  # the same fields on x in [0, 2] ...
        left=(data["boundary"]["left"] / 2).numpy(),  # ... so u_x is halved
        right=(data["boundary"]["right"] / 2).numpy(),
    )
    out = tmp_path / "run"
    args = ["train-operator", "--data", str(path), "--conditions", "neumann:2,neumann:2"]
    assert main([*args, "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0
    rows = _rows(out)
    for method in ("BOON", "FNO+overwrite"):
        assert rows["multi-step", method]["boundary_error"] < 1e-5, method


def test_a_broken_installed_plugin_is_named_not_a_traceback(monkeypatch, capsys):
    class BrokenEntryPoint:
        name, value = "mine", "my_package.experiments"

        def load(self):
            raise ImportError("No module named 'my_package'")

    monkeypatch.setattr(
        "lawful.experiments.registry.entry_points", lambda group: [BrokenEntryPoint()]
    )
    assert main(["list"]) == 1
    error = capsys.readouterr().err
    assert "plugin entry point 'mine' (my_package.experiments) failed to import" in error


def test_another_file_under_an_existing_output_folder_is_named(dirichlet_file, tmp_path, capsys):
    """Before, the splits of the first file were reused silently for the second."""
    out = tmp_path / "run"
    args = ["train-operator", "--conditions", "dirichlet,dirichlet", "--preset", "tiny"]
    assert main([*args, "--data", str(dirichlet_file), "--out", str(out), "--no-progress"]) == 0
    other = tmp_path / "other" / dirichlet_file.name  # same name, other samples
    other.parent.mkdir()
    with h5py.File(dirichlet_file) as source, h5py.File(other, "w") as copy:
        for key in source:
            copy[key] = source[key][()] if key == "x" else source[key][()][:12]  # 12 samples
    capsys.readouterr()
    assert main([*args, "--data", str(other), "--out", str(out), "--no-progress"]) == 1
    assert "was made from" in capsys.readouterr().err
    again = [*args, "--test-fraction", "0.5", "--data", str(dirichlet_file), "--out", str(out)]
    assert main(again) == 1
    assert "was made from" in capsys.readouterr().err


def _multi_step_file(path: Path, num_samples: int = 6, points: int = 7, frames: int = 3) -> Path:
    rng = np.random.default_rng(4)
    np.savez(
        path,
        inputs=rng.random((num_samples, points)),
        outputs=rng.random((num_samples, points, frames)),
        t=np.linspace(0.1, 0.5, frames),
    )
    return path


def test_a_multi_step_file_of_few_points_trains(tmp_path):
    """7 x points hold 3 x modes on the space + time model, whose last axis is t: before, the
    tiny preset's 4 were capped at 7 // 2 + 1 = 4 and training failed after the data was
    written."""
    path = _multi_step_file(tmp_path / "few.npz")
    out = tmp_path / "run"
    args = ["train-operator", "--data", str(path), "--conditions", "dirichlet,neumann:2"]
    assert main([*args, "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0
    assert set(_rows(out)) == {("multi-step", method) for method in METHODS}


@pytest.mark.parametrize("preset_name", ["tiny", "quick", "paper"])
@pytest.mark.parametrize(("points", "frames"), [(4, 1), (7, 2), (16, 5)])
def test_every_presets_operators_fit_the_files_grid(tmp_path, preset_name, points, frames):
    path = _multi_step_file(tmp_path / "grid.npz", points=points, frames=frames)
    samples = load_operator_samples(path)
    experiment = FileOperatorExperiment("grid", samples, parse_conditions("dirichlet,dirichlet"))
    preset = experiment.presets[preset_name]
    for task in (Task("single-step"), Task("multi-step")):
        settings = preset.operator(task)
        model = build_fno(settings, task.multistep)
        grid = (points, frames) if task.multistep else (points,)
        assert model(torch.zeros(1, 1, *grid)).shape == (1, 1, *grid)
        # As many modes as the grid holds: where the preset's own were cut, one more would not fit.
        wanted = BOUNDARY_PRESETS[preset_name].operator(task)
        for field in ("modes", "modes_time") if task.multistep else ("modes",):
            if getattr(settings, field) < getattr(wanted, field):
                more = replace(settings, **{field: getattr(settings, field) + 1})
                with pytest.raises(ValueError, match="modes need at least"):
                    build_fno(more, task.multistep)(torch.zeros(1, 1, *grid))


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path, with a hash of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def earlier_run(tmp_path) -> Path:
    """An output folder holding an earlier run's data split of ``a.npz``, its settings and
    metrics (the data as a run makes it; settings and metrics stand-ins)."""
    source = _multi_step_file(tmp_path / "a.npz")
    experiment = FileOperatorExperiment(
        "a", load_operator_samples(source), parse_conditions("dirichlet,dirichlet")
    )
    out = tmp_path / "out"
    experiment.generate_data(experiment.presets["tiny"], out / "data", seed=0)
    (out / "settings.json").write_text('{"earlier": "run"}\n')
    (out / "metrics.json").write_text("{}\n")
    return out


def _train_operator(data: Path, out: Path, *options: str) -> int:
    args = ["train-operator", "--data", str(data), "--conditions", "dirichlet,dirichlet"]
    return main([*args, "--preset", "tiny", "--out", str(out), "--no-progress", *options])


@pytest.mark.parametrize(
    ("make_data", "options", "message"),
    [
        (lambda folder: _multi_step_file(folder / "b.npz"), [], "was made from"),
        (lambda folder: folder / "a.npz", ["--test-fraction", "0.5"], "was made from"),
        (lambda folder: folder / "a.npz", ["--test-fraction", "0"], "strictly between 0 and 1"),
        (lambda folder: folder / "a.npz", ["--test-fraction", "1.5"], "strictly between 0 and 1"),
        (lambda folder: folder / "a.npz", ["--test-fraction", "nan"], "strictly between 0 and 1"),
        (
            lambda folder: _multi_step_file(folder / "one.npz", num_samples=1),
            [],
            r"1 sample\(s\) cannot be split",
        ),
    ],
    ids=["another file", "another split", "fraction 0", "fraction 1.5", "fraction nan", "1 sample"],
)
def test_a_refused_run_changes_nothing_in_the_output_folder(
    earlier_run, capsys, make_data, options, message
):
    """Before, settings.json was rewritten first, beside the earlier run's metrics."""
    before = _snapshot(earlier_run)
    data = make_data(earlier_run.parent)
    assert _train_operator(data, earlier_run, *options) == 1
    assert re.search(message, capsys.readouterr().err)
    assert _snapshot(earlier_run) == before


@pytest.mark.parametrize("test_fraction", ["0", "1", "-0.2", "inf", "nan"])
def test_a_bad_test_fraction_is_refused_before_the_output_folder_is_made(
    tmp_path, capsys, test_fraction
):
    out = tmp_path / "run"
    data = _multi_step_file(tmp_path / "a.npz")
    assert _train_operator(data, out, "--test-fraction", test_fraction) == 1
    error = capsys.readouterr().err
    assert f"test_fraction must lie strictly between 0 and 1, got {float(test_fraction)}" in error
    assert not out.exists()
