"""The 2-D boundary experiments end to end on the tiny preset: four walls, four methods, BOON and
the overwritten FNO on every wall to float32 rounding, the plain FNO off them."""

import json

import pytest
import torch

from lawful.cli import main
from lawful.data.store import load_dataset
from lawful.experiments.boundary import METHODS
from lawful.experiments.walls2d import WALL_EXPERIMENTS

WALLS = ("x_left", "x_right", "y_left", "y_right")


@pytest.mark.parametrize("experiment", sorted(WALL_EXPERIMENTS))
def test_every_wall_holds_for_boon_and_the_overwritten_fno(tmp_path, experiment):
    out = tmp_path / experiment
    assert main(["run", experiment, "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    rows = {row["method"]: row for row in metrics["rows"]}
    assert set(rows) == set(METHODS)
    for method in ("BOON", "FNO+overwrite"):
        for wall in WALLS:
            assert rows[method][f"boundary_error_{wall}"] < 1e-5, (method, wall)
    assert rows["FNO"]["boundary_error"] > 1e-4
    # No wall carries data: FNO+data is the plain FNO, trained the same way.
    assert rows["FNO+data"]["rel_l2"] == rows["FNO"]["rel_l2"]
    for row in rows.values():
        worst = max(row[f"boundary_error_{wall}"] for wall in WALLS)
        assert row["boundary_error"] >= worst * (1 - 1e-12)  # per sample worst, then averaged
    figures = sorted(path.name for path in out.glob("*.png"))
    assert figures and all((out / name).stat().st_size > 10_000 for name in figures)


def test_darcy_data_is_zero_on_the_walls_and_positive_inside(tmp_path):
    out = tmp_path / "darcy"
    WALL_EXPERIMENTS["darcy"].generate_data(WALL_EXPERIMENTS["darcy"].presets["tiny"], out, seed=0)
    stored = load_dataset(out / "train.h5")
    u = stored.arrays["outputs"][:, 0]  # (N, X, Y)
    assert u.shape == (8, 13, 13)
    for wall in (u[:, 0], u[:, -1], u[:, :, 0], u[:, :, -1]):
        assert float(wall.abs().max()) == 0.0
    assert bool((u[:, 1:-1, 1:-1] > 0).all())  # f = 1 pushes u up everywhere inside
    assert set(torch.unique(stored.arrays["inputs"]).tolist()) == {3.0, 12.0}
