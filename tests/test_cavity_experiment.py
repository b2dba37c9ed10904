"""The cavity experiment end to end on the tiny preset: BOON and the overwritten FNO exact on every
wall and frame, the update exact on every cut and wall row in float64, the figures, a rerun that
trains nothing again; and the pieces: the wall-data wrapper, the preset's checks."""

import json

import pytest
import torch
from PIL import Image

from lawful.cli import main
from lawful.experiments.cavity import CAVITY, METHODS, CavityPreset, WithWallData
from lawful.operators.boon import BoundaryCorrectedFNO
from lawful.operators.fno import FNOxyt
from lawful.pdes.cavity import CAVITY_WALLS

ENSEMBLE_METHODS = ("FNO-Ens", "ProbConserv-FNO-Ens", "BOON-Ens", "ProbConserv-BOON-Ens")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cavity")
    assert main(["run", "cavity", "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0
    return out


def _rows(out) -> dict[str, dict]:
    metrics = json.loads((out / "metrics.json").read_text())
    return {row["method"]: row for row in metrics["rows"]}


def test_every_method_and_ensemble_has_a_row(tiny_run):
    rows = _rows(tiny_run)
    assert list(rows) == [*METHODS, *ENSEMBLE_METHODS]
    for method in ENSEMBLE_METHODS:
        assert 0 <= rows[method]["coverage"] <= 1 and rows[method]["crps"] > 0
    assert "crps" not in rows["BOON"]  # a deterministic model has no belief to score


def test_boon_and_the_overwrite_hold_every_wall_and_frame_the_plain_fno_does_not(tiny_run):
    rows = _rows(tiny_run)
    for method in ("BOON", "FNO+overwrite", "BOON-Ens"):
        assert rows[method]["wall_error"] < 1e-6, method  # float32 rounding of the lid speed
    for method in ("FNO", "FNO+data", "FNO-Ens"):
        assert rows[method]["wall_error"] > 1e-3, method


def test_the_update_makes_every_cut_flux_and_wall_row_hold_to_float64_round_off(tiny_run):
    rows = _rows(tiny_run)
    for method in ("ProbConserv-FNO-Ens", "ProbConserv-BOON-Ens"):
        assert rows[method]["flux_error"] < 1e-10, method
        assert rows[method]["wall_error"] < 1e-10, method
    for method in ("FNO-Ens", "BOON-Ens"):  # the priors carry net flux
        assert rows[method]["flux_error"] > 1e-4, method
    report = (tiny_run / "report.md").read_text()
    assert "discretisation error" in report and "17^2 grid" in report


def test_the_figures_and_the_animation_are_written(tiny_run):
    for name in (
        "vorticity-first-frame.png",
        "vorticity-t1.png",
        "vorticity-t5.png",
        "velocity_error_over_time.png",
        "vorticity_error_over_time.png",
    ):
        assert (tiny_run / name).stat().st_size > 10_000, name
    with Image.open(tiny_run / "vorticity.gif") as animation:
        assert animation.n_frames == CAVITY.presets["tiny"].num_frames


def test_a_rerun_trains_nothing_again_and_gives_the_same_metrics(tiny_run):
    weights = sorted(tiny_run.glob("models/**/*.pt"))
    assert len(weights) == 4 + 2 * (CAVITY.presets["tiny"].num_members - 1)
    stamps = [path.stat().st_mtime_ns for path in weights]
    before = (tiny_run / "metrics.json").read_text()
    args = ["run", "cavity", "--preset", "tiny", "--out", str(tiny_run), "--no-progress"]
    assert main(args) == 0
    assert [path.stat().st_mtime_ns for path in weights] == stamps
    assert (tiny_run / "metrics.json").read_text() == before


def test_with_wall_data_is_the_wall_data_on_the_walls_and_boon_inside():
    torch.manual_seed(0)
    n, frames = 9, 4
    boon = BoundaryCorrectedFNO(
        FNOxyt(3, 2, 6, 3, 3, 2, padding=1, projection_width=8), CAVITY_WALLS
    )
    model = WithWallData(boon)
    x = torch.randn(2, 3, n, n, frames, dtype=torch.float32)
    lid_speed = torch.tensor([[1.0, 1.2, 1.4, 1.1], [0.6, 0.8, 1.0, 0.9]])  # (B, T)
    with torch.no_grad():
        output, inside = model(x, lid_speed), boon(x)
    assert bool((output[:, 0, 1:-1, -1] == lid_speed[:, None]).all())  # exactly the lid speed
    corners_and_walls_at_rest = torch.cat(
        [output[:, :, 0], output[:, :, -1], output[:, :, :, 0], output[:, 1:, :, -1]], 1
    )
    assert bool((corners_and_walls_at_rest == 0).all())
    assert bool((output[:, 0, [0, -1], -1] == 0).all())  # the lid's corners are at rest
    torch.testing.assert_close(output[:, :, 1:-1, 1:-1], inside[:, :, 1:-1, 1:-1], rtol=0, atol=0)


def test_a_preset_the_flux_rule_or_the_reference_grid_cannot_serve_is_refused():
    tiny = CAVITY.presets["tiny"]
    sizes = {name: getattr(tiny, name) for name in ("num_train", "num_test")}
    operators = {"single_step": tiny.single_step, "multi_step": tiny.multi_step}
    with pytest.raises(ValueError, match="odd resolution"):
        CavityPreset(resolution=10, reference_resolution=19, **sizes, **operators)
    with pytest.raises(ValueError, match="multiple of resolution - 1"):
        CavityPreset(resolution=9, reference_resolution=20, **sizes, **operators)
    with pytest.raises(ValueError, match="at least 2 members"):
        CavityPreset(resolution=9, num_members=1, **sizes, **operators)
