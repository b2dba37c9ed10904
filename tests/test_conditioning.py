"""`lawful condition` end to end: prediction file in, exactly conserving posterior file out."""

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import lawful
import lawful.constraints.update as update
import lawful.native as native
from lawful.cli import main
from lawful.constraints.boundary import BoundaryConditions, Dirichlet, boundary_constraint
from lawful.models.ensemble import ensemble_belief

SAMPLES, TIMES, POINTS = 3, 4, 17
# Non-uniform: the cells grow to the right, so trapezoid weights differ from a uniform rule.
GRID = np.linspace(0.0, 1.0, POINTS) ** 1.5  # (X,)


def diagonal_prediction(seed: int = 0) -> dict[str, np.ndarray]:
    """A smooth mean with noise, its variances and a known mass per (sample, time)."""
    rng = np.random.default_rng(seed)
    profile = np.exp(-4 * GRID)  # (X,)
    mean = profile + 0.1 * rng.standard_normal((SAMPLES, TIMES, POINTS))  # (S, T, X)
    variance = 0.01 + 0.05 * rng.random((SAMPLES, TIMES, POINTS))  # (S, T, X)
    mass = 0.25 + rng.random((SAMPLES, TIMES))  # (S, T)
    return {"mean": mean, "variance": variance, "grid": GRID, "mass": mass}


def write(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    else:
        with h5py.File(path, "w") as file:
            for key, values in arrays.items():
                file.create_dataset(key, data=values)
    return path


def read(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npz":
        with np.load(path) as archive:
            return {key: archive[key] for key in archive.files}
    with h5py.File(path, "r") as file:
        return {key: file[key][()] for key in file}


def condition_files(capsys, prediction: Path, out: Path, *options: str) -> dict[str, np.ndarray]:
    code = main(["condition", "--prediction", str(prediction), "--out", str(out), *options])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.startswith(f"lawful: wrote {out}")
    return read(out)


def trapezoid_mass(field: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    return field @ lawful.trapezoid_weights(torch.from_numpy(grid)).numpy()  # (...)


def assert_mass_exact(posterior: dict[str, np.ndarray], mass: np.ndarray) -> None:
    scale = np.abs(mass).max()
    np.testing.assert_allclose(posterior["mass"], np.broadcast_to(mass, posterior["ce"].shape))
    assert np.abs(posterior["ce"]).max() <= 1e-12 * scale
    recomputed = trapezoid_mass(posterior["mean"], posterior["grid"]) - posterior["mass"]
    assert np.abs(recomputed).max() <= 1e-12 * scale


def test_diagonal_hdf5_on_a_non_uniform_grid(tmp_path, capsys):
    contents = diagonal_prediction()
    prediction = write(tmp_path / "pred.h5", contents)
    posterior = condition_files(capsys, prediction, tmp_path / "post.h5")

    assert posterior["mean"].shape == (SAMPLES, TIMES, POINTS)
    assert_mass_exact(posterior, contents["mass"])
    np.testing.assert_allclose(
        posterior["ce_prior"], trapezoid_mass(contents["mean"]) - contents["mass"], rtol=1e-12
    )
    assert np.abs(posterior["ce_prior"]).min() > 1e-4  # the prior did not conserve
    assert (posterior["variance"] >= 0).all()
    assert (posterior["variance"] <= contents["variance"]).all()
    np.testing.assert_array_equal(posterior["grid"], GRID)

    prior = lawful.GaussianBelief.diagonal(
        torch.from_numpy(contents["mean"]), torch.from_numpy(contents["variance"])
    )
    direct = lawful.condition(
        prior, lawful.mass_constraint(torch.from_numpy(GRID), torch.from_numpy(contents["mass"]))
    )
    np.testing.assert_allclose(posterior["mean"], direct.mean.numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(posterior["variance"], direct.variance().numpy(), atol=1e-15)


@pytest.mark.skipif(
    native.native_library() is None, reason=f"no fused kernel: {native.native_status()}"
)
def test_long_rows_go_through_the_fused_kernel_and_still_conserve(tmp_path, capsys, monkeypatch):
    points = update.FUSED_MIN_POINTS + 3
    grid = np.linspace(0.0, 1.0, points) ** 1.5
    rng = np.random.default_rng(2)
    mean = np.exp(-4 * grid) + 0.1 * rng.standard_normal((2, points))  # (S, X)
    variance = 0.01 + 0.05 * rng.random((2, points))
    mass = np.array([0.3, 0.7])
    fused_calls = []
    fused = update._condition_fused
    monkeypatch.setattr(
        update, "_condition_fused", lambda *args: fused_calls.append(1) or fused(*args)
    )
    prediction = write(
        tmp_path / "pred.npz", {"mean": mean, "variance": variance, "grid": grid, "mass": mass}
    )
    posterior = condition_files(capsys, prediction, tmp_path / "post.npz")

    assert fused_calls == [1]
    scale = np.abs(mass).max()
    assert np.abs(posterior["ce"]).max() <= 1e-12 * scale
    recomputed = trapezoid_mass(posterior["mean"], grid) - mass
    assert np.abs(recomputed).max() <= 1e-12 * scale
    monkeypatch.setattr(update, "FUSED_MIN_POINTS", 2**62)  # the eager update, for comparison
    eager = lawful.condition(
        lawful.GaussianBelief.diagonal(torch.from_numpy(mean), torch.from_numpy(variance)),
        lawful.mass_constraint(torch.from_numpy(grid), torch.from_numpy(mass)),
    )
    np.testing.assert_allclose(posterior["mean"], eager.mean.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(posterior["variance"], eager.variance().numpy(), atol=1e-14)


def test_ensemble_npz_with_noise_and_mass_from_npy(tmp_path, capsys):
    rng = np.random.default_rng(1)
    members = np.exp(-4 * GRID) + 0.1 * rng.standard_normal((5, SAMPLES, TIMES, POINTS))
    mass = 0.5 + rng.random(TIMES)  # (T,): the same mass for every sample
    np.save(tmp_path / "mass.npy", mass)
    prediction = write(
        tmp_path / "pred.npz", {"members": members, "noise_variance": 1e-3, "x": GRID}
    )
    out = tmp_path / "post.npz"
    posterior = condition_files(capsys, prediction, out, "--mass", str(tmp_path / "mass.npy"))

    assert_mass_exact(posterior, mass)
    prior = ensemble_belief(torch.from_numpy(members), 1e-3)
    direct = lawful.condition(
        prior, lawful.mass_constraint(torch.from_numpy(GRID), torch.from_numpy(mass).expand(3, 4))
    )
    np.testing.assert_allclose(posterior["mean"], direct.mean.numpy(), rtol=0, atol=1e-13)
    assert (posterior["variance"] >= 0).all()
    assert (posterior["variance"] <= prior.variance().numpy() + 1e-15).all()
    assert not list(tmp_path.glob(".*partial"))


def test_one_field_without_leading_axes(tmp_path, capsys):
    contents = {"mean": np.ones(POINTS), "variance": np.full(POINTS, 0.1), "grid": GRID}
    prediction = write(tmp_path / "pred.npz", {**contents, "mass": np.array(0.5)})
    posterior = condition_files(capsys, prediction, tmp_path / "post.npz")

    assert posterior["mean"].shape == (POINTS,) and posterior["ce"].shape == ()
    assert_mass_exact(posterior, np.array(0.5))
    np.testing.assert_allclose(posterior["ce_prior"], trapezoid_mass(contents["mean"]) - 0.5)


def test_dense_covariance(tmp_path, capsys):
    rng = np.random.default_rng(2)
    mean = np.sin(3 * GRID) + 0.1 * rng.standard_normal((2, POINTS))  # (B, X)
    distance = GRID[:, None] - GRID[None, :]  # (X, X)
    kernel = 0.04 * np.exp(-0.5 * (distance / 0.2) ** 2) + 1e-6 * np.eye(POINTS)  # (X, X)
    covariance = np.stack([kernel, 2 * kernel])  # (B, X, X)
    prediction = write(tmp_path / "pred.hdf5", {"mean": mean, "covariance": covariance})
    np.save(tmp_path / "grid.npy", GRID)
    options = ("--grid", str(tmp_path / "grid.npy"), "--mass", "0.6")
    posterior = condition_files(capsys, prediction, tmp_path / "post.h5", *options)

    assert_mass_exact(posterior, np.array(0.6))
    prior = lawful.GaussianBelief.dense(torch.from_numpy(mean), torch.from_numpy(covariance))
    direct = lawful.condition(
        prior,
        lawful.mass_constraint(torch.from_numpy(GRID), torch.full((2,), 0.6, dtype=torch.float64)),
    )
    np.testing.assert_allclose(posterior["mean"], direct.mean.numpy(), rtol=0, atol=1e-13)
    assert (posterior["variance"] >= 0).all()
    assert (posterior["variance"] <= np.diagonal(covariance, axis1=-2, axis2=-1)).all()


def test_dirichlet_walls_hold_their_data_and_the_mass(tmp_path, capsys):
    contents = diagonal_prediction()
    left = np.linspace(0.8, 1.2, SAMPLES * TIMES).reshape(SAMPLES, TIMES)  # (S, T)
    right = np.full(TIMES, 0.05)  # (T,): broadcast over samples
    prediction = write(tmp_path / "pred.h5", {**contents, "left": left, "right": right})
    out = tmp_path / "post.h5"
    posterior = condition_files(capsys, prediction, out, "--walls", "dirichlet,dirichlet")

    assert_mass_exact(posterior, contents["mass"])
    np.testing.assert_allclose(posterior["mean"][..., 0], left, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        posterior["mean"][..., -1], np.broadcast_to(right, left.shape), rtol=0, atol=1e-12
    )
    assert np.abs(posterior["left_residual"]).max() <= 1e-12
    assert np.abs(posterior["right_residual"]).max() <= 1e-12
    assert (posterior["variance"] <= contents["variance"]).all()

    conditions = BoundaryConditions(
        Dirichlet(torch.from_numpy(left)),
        Dirichlet(torch.from_numpy(np.broadcast_to(right, left.shape).copy())),
    )
    constraint = lawful.stack_constraints(
        lawful.mass_constraint(torch.from_numpy(GRID), torch.from_numpy(contents["mass"])),
        boundary_constraint(conditions, POINTS, spacing=1.0),
    )
    prior = lawful.GaussianBelief.diagonal(
        torch.from_numpy(contents["mean"]), torch.from_numpy(contents["variance"])
    )
    direct = lawful.condition(prior, constraint)
    np.testing.assert_allclose(posterior["mean"], direct.mean.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("walls", ["neumann:2,neumann", "periodic,periodic"])
def test_neumann_and_periodic_walls_on_a_uniform_grid(tmp_path, capsys, walls):
    contents = {**diagonal_prediction(), "grid": np.linspace(0.0, 2.0, POINTS)}
    if walls.startswith("neumann"):
        contents["right"] = np.array(0.3)  # the flux u_x at the right wall
    prediction = write(tmp_path / "pred.npz", contents)
    posterior = condition_files(capsys, prediction, tmp_path / "post.npz", "--walls", walls)

    assert_mass_exact(posterior, contents["mass"])
    assert np.abs(posterior["left_residual"]).max() <= 1e-11
    assert np.abs(posterior["right_residual"]).max() <= 1e-11
    if walls.startswith("neumann"):  # second-order stencil at the left end, u_x = 0
        spacing = contents["grid"][1] - contents["grid"][0]
        u = posterior["mean"]
        slope = (-1.5 * u[..., 0] + 2 * u[..., 1] - 0.5 * u[..., 2]) / spacing
        assert np.abs(slope).max() <= 1e-10
        assert np.abs((u[..., -1] - u[..., -2]) / spacing - 0.3).max() <= 1e-10


def test_bounds_keep_the_mean_in_range_and_the_mass_exact(tmp_path, capsys):
    contents = diagonal_prediction()
    contents["mean"] = contents["mean"] + 0.3 * np.sin(12 * GRID)  # below 0 and above 1 somewhere
    assert contents["mean"].min() < 0 and contents["mean"].max() > 1
    contents["mass"] = 0.2 + 0.5 * np.random.default_rng(3).random((SAMPLES, TIMES))
    prediction = write(tmp_path / "pred.h5", contents)
    out = tmp_path / "post.h5"
    posterior = condition_files(capsys, prediction, out, "--lower", "0", "--upper", "1")

    assert_mass_exact(posterior, contents["mass"])
    assert posterior["mean"].min() >= 0 and posterior["mean"].max() <= 1
    prior = lawful.GaussianBelief.diagonal(
        torch.from_numpy(contents["mean"]), torch.from_numpy(contents["variance"])
    )
    constraint = lawful.mass_constraint(torch.from_numpy(GRID), torch.from_numpy(contents["mass"]))
    direct = lawful.condition_within_bounds(prior, constraint, 0.0, 1.0)
    np.testing.assert_allclose(posterior["mean"], direct.mean.numpy(), rtol=0, atol=1e-13)


def _replace(**changes):
    """A diagonal prediction with keys changed (``None`` removes one)."""

    def build(tmp_path: Path) -> dict[str, np.ndarray]:
        contents = {**diagonal_prediction(), **changes}
        return {key: value for key, value in contents.items() if value is not None}

    return build


def _with(key, transform):
    def build(tmp_path: Path) -> dict[str, np.ndarray]:
        contents = diagonal_prediction()
        contents[key] = transform(contents[key].copy())
        return contents

    return build


def _set(values, index, value):
    values[index] = value
    return values


BAD_PREDICTIONS = {
    "missing keys": (_replace(mean=None), [], "needs 'mean' with 'variance'"),
    "nan mean": (_with("mean", lambda m: _set(m, (1, 2, 3), np.nan)), [], "'mean': contains NaN"),
    "inf variance": (
        _with("variance", lambda v: _set(v, (0, 0, 0), np.inf)),
        [],
        "'variance': contains infinite",
    ),
    "negative variance": (
        _with("variance", lambda v: _set(v, (2, 1, 5), -0.5)),
        [],
        "'variance': variances must be non-negative; entry (2, 1, 5) is -0.5",
    ),
    "variance shape": (_with("variance", lambda v: v[..., 1:]), [], "'variance' has shape"),
    "grid not increasing": (
        _with("grid", lambda g: _set(g, 4, g[3])),
        [],
        "'grid': grid must be strictly increasing",
    ),
    "grid length": (_with("grid", lambda g: g[:-1]), [], "the grid must have shape (17,)"),
    "no grid": (_replace(grid=None), [], "no 'grid' (or 'x') key, and no --grid given"),
    "no mass": (_replace(mass=None), [], "no 'mass' key, and no --mass given"),
    "mass shape": (_with("mass", lambda m: m[:, :2]), [], "'mass': shape (3, 2) does not"),
    "mass option": (_replace(), ["--mass", "heavy"], "neither a number nor an existing .npy"),
    "wall data shape": (
        _replace(left=np.zeros(5)),
        ["--walls", "dirichlet,dirichlet"],
        "key 'left': shape (5,) does not broadcast",
    ),
    "unknown wall kind": (
        _replace(),
        ["--walls", "dirichlet,robin"],
        "unknown boundary condition 'robin'",
    ),
    "one wall": (_replace(), ["--walls", "dirichlet"], "give two kinds, LEFT,RIGHT"),
    "half periodic": (_replace(), ["--walls", "periodic,dirichlet"], "periodic condition"),
    "neumann order": (_replace(), ["--walls", "neumann:9,dirichlet"], "order must be between"),
    "neumann non-uniform": (_replace(), ["--walls", "neumann,dirichlet"], "uniform grid"),
    "bounds and walls": (
        _replace(),
        ["--walls", "dirichlet,dirichlet", "--lower", "0"],
        "cannot be combined with --walls",
    ),
    "infeasible bounds": (_replace(), ["--lower", "5"], "bounds cannot be met"),
    "bounds reversed": (_replace(), ["--lower", "1", "--upper", "0"], "--lower 1.0 exceeds"),
    "noise without members": (
        _replace(noise_variance=np.array(0.1)),
        [],
        "'noise_variance' belongs to an ensemble",
    ),
    # The belief's own refusals, with the file and key named (before, neither was).
    "covariance not psd": (
        _replace(
            variance=None,
            covariance=np.broadcast_to(
                0.01 * np.eye(POINTS) - 0.005, (SAMPLES, TIMES, POINTS, POINTS)
            ),
        ),
        [],
        "pred.h5: key 'covariance': covariance is not positive semi-definite",
    ),
    "subnormal variance": (
        _with("variance", lambda v: _set(v, (0, 1, 2), 1e-310)),
        [],
        "pred.h5: key 'variance': variance has subnormal entries",
    ),
    "subnormal ensemble noise": (
        _replace(
            mean=None,
            variance=None,
            members=np.stack([diagonal_prediction(seed)["mean"] for seed in range(3)]),
            noise_variance=np.array(1e-310),
        ),
        [],
        "pred.h5: keys 'members' and 'noise_variance': ensemble noise variance has subnormal",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PREDICTIONS))
def test_bad_predictions_fail_with_a_clear_message(tmp_path, capsys, case):
    build, options, message = BAD_PREDICTIONS[case]
    prediction = write(tmp_path / "pred.h5", build(tmp_path))
    out = tmp_path / "post.h5"
    code = main(["condition", "--prediction", str(prediction), "--out", str(out), *options])
    error = capsys.readouterr().err
    assert code == 1
    assert error.startswith("lawful: error: ") and message in error, error
    assert "Traceback" not in error
    assert not out.exists()


def _file_with_bytes(content: bytes):
    def make(tmp_path: Path) -> Path:
        path = tmp_path / "pred.npz"
        path.write_bytes(content)
        return path

    return make


def _ensemble_file(tmp_path: Path) -> Path:
    members = np.stack([diagonal_prediction(seed)["mean"] for seed in range(3)])
    return write(tmp_path / "pred.npz", {"members": members, "grid": GRID, "mass": 1.0})


def _folder(tmp_path: Path) -> str:
    (tmp_path / "posterior.h5").mkdir()
    return str(tmp_path / "posterior.h5")


def _under_a_file(tmp_path: Path) -> str:
    (tmp_path / "plain").write_text("not a folder")
    return str(tmp_path / "plain" / "post.h5")


def _good_file(tmp_path: Path) -> Path:
    return write(tmp_path / "pred.h5", diagonal_prediction())


BAD_FILES = {
    "missing file": (lambda tmp_path: tmp_path / "absent.h5", None, [], "no such file"),
    "empty file": (_file_with_bytes(b""), None, [], "unreadable, empty or corrupt npz"),
    "corrupt file": (_file_with_bytes(b"PK\x03\x04garbage"), None, [], "unreadable"),
    "corrupt hdf5": (
        lambda tmp_path: _file_with_bytes(b"\x89HDF")(tmp_path).rename(tmp_path / "p.h5"),
        None,
        [],
        "unreadable, empty or corrupt hdf5",
    ),
    "prediction suffix": (
        lambda tmp_path: tmp_path / "pred.csv",
        None,
        [],
        "prediction file",
    ),
    "bounds on an ensemble": (_ensemble_file, None, ["--upper", "1"], "need a diagonal prior"),
    "out suffix": (_good_file, lambda tmp_path: str(tmp_path / "post.txt"), [], "unsupported"),
    "out folder": (_good_file, _folder, [], "is a folder"),
    "out under a file": (_good_file, _under_a_file, [], "plain is a file, not a folder"),
    "out unwritable": (
        _good_file,
        lambda tmp_path: str(tmp_path / f"{'p' * 300}.h5"),  # longer than a file name may be
        [],
        "cannot write there",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_and_locations_fail_with_a_clear_message(tmp_path, capsys, case):
    make_prediction, make_out, options, message = BAD_FILES[case]
    prediction = make_prediction(tmp_path)
    out = make_out(tmp_path) if make_out else str(tmp_path / "post.h5")
    code = main(["condition", "--prediction", str(prediction), "--out", out, *options])
    error = capsys.readouterr().err
    assert code == 1
    assert error.startswith("lawful: error: ") and message in error, error
    assert "Traceback" not in error
    assert not list(tmp_path.glob(".*partial"))


def _the_same_path(prediction: Path) -> Path:
    return prediction


def _through_another_folder(prediction: Path) -> Path:
    (prediction.parent / "sub").mkdir()
    return prediction.parent / "sub" / ".." / prediction.name


def _hard_link(prediction: Path) -> Path:
    link = prediction.with_name("linked.npz")
    os.link(prediction, link)
    return link


def _symbolic_link(prediction: Path) -> Path:
    link = prediction.with_name("symlinked.npz")
    link.symlink_to(prediction.name)
    return link


@pytest.mark.parametrize(
    "name_out", [_the_same_path, _through_another_folder, _hard_link, _symbolic_link]
)
def test_out_naming_the_prediction_file_is_refused_before_anything_is_written(
    tmp_path, capsys, name_out
):
    """Before, the posterior silently replaced the prediction."""
    prediction = write(tmp_path / "pred.npz", diagonal_prediction())
    before = hashlib.sha256(prediction.read_bytes()).hexdigest()
    out = name_out(prediction)
    code = main(["condition", "--prediction", str(prediction), "--out", str(out)])
    error = capsys.readouterr().err
    assert code == 1
    assert error.startswith(f"lawful: error: --out {out}: is the prediction file {prediction}")
    assert hashlib.sha256(prediction.read_bytes()).hexdigest() == before
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    assert not list(tmp_path.glob(".*partial"))
