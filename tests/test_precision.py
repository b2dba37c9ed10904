"""Mixed-precision training of the neural operators (``--precision``): the boundaries stay exact
in float32, the precision reaches the training, and what cannot run is a named error."""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from lawful.cli import main
from lawful.constraints.boundary import (
    BoundaryConditions,
    Dirichlet,
    Neumann,
    Periodic,
    boundary_residuals,
)
from lawful.constraints.walls import Walls, wall_residuals
from lawful.experiments.registry import ExperimentError, RunSettings
from lawful.operators import BoundaryCorrectedFNO, BoundaryCorrectedFNO1d, FNO1d, FNOxyt
from lawful.operators.boon import _end_spectra, _end_system, _lu_factor, _solve
from lawful.training.operator import OperatorSettings, train_operator, with_precision

N, BATCH = 33, 4
BF16 = {"device_type": "cpu", "dtype": torch.bfloat16}


class _MatmulDtypes(TorchDispatchMode):
    """The dtypes that reach ``aten.bmm`` and ``aten.mm`` below autocast (which casts before
    dispatch)."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: set[torch.dtype] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.bmm.default, torch.ops.aten.mm.default):
            self.dtypes.add(args[0].dtype)
        return func(*args, **(kwargs or {}))


def _fno1d(seed: int = 0) -> FNO1d:
    torch.manual_seed(seed)
    return FNO1d(1, 1, 16, 8, projection_width=16)


CONDITIONS = {
    "dirichlet": BoundaryConditions(Dirichlet(1.5), Dirichlet(-0.5)),
    "neumann": BoundaryConditions(Dirichlet(0.0), Neumann(2.0)),
    "periodic": BoundaryConditions(Periodic(), Periodic()),
}


@pytest.mark.parametrize("name", sorted(CONDITIONS))
def test_boon_under_bf16_autocast_is_exact_in_float32(name):
    conditions = CONDITIONS[name]
    boon = BoundaryCorrectedFNO1d(_fno1d(), conditions)
    x = torch.randn(BATCH, 1, N, generator=torch.Generator().manual_seed(1))
    with _MatmulDtypes() as seen, torch.autocast(**BF16), torch.no_grad():
        output = boon(x)
    assert torch.bfloat16 in seen.dtypes  # the channel mixing did run in bf16
    assert output.dtype == torch.float32
    scale = 1 + float(output.abs().max())
    for residual in boundary_residuals(output, conditions, 1 / (N - 1)):
        # Neumann residuals are derivatives: h * residual is the field's rounding.
        assert float(residual.abs().max()) / (N - 1) <= 1e-6 * scale


def test_boon_on_walls_under_bf16_autocast_is_exact_in_float32():
    nx, ny, frames = 12, 10, 5
    torch.manual_seed(0)
    fno = FNOxyt(1, 1, 6, 4, 4, 3, num_layers=3, padding=2, projection_width=8)
    generator = torch.Generator().manual_seed(2)
    x_left, x_right = (torch.randn(BATCH, ny, frames, generator=generator) for _ in range(2))
    y_left, y_right = (torch.randn(BATCH, nx, frames, generator=generator) for _ in range(2))
    for y_wall, index in ((y_left, 0), (y_right, -1)):  # Dirichlet corners agree
        y_wall[:, 0], y_wall[:, -1] = x_left[:, index], x_right[:, index]
    walls = Walls(
        BoundaryConditions(Dirichlet(x_left), Dirichlet(x_right)),
        BoundaryConditions(Dirichlet(y_left), Dirichlet(y_right)),
    )
    boon = BoundaryCorrectedFNO(fno, walls)
    with torch.autocast(**BF16), torch.no_grad():
        output = boon(torch.randn(BATCH, 1, nx, ny, frames, generator=generator))
    assert output.dtype == torch.float32
    for name, residual in wall_residuals(output, walls, (1 / 11, 1 / 9)).items():
        assert bool((residual == 0).all()), name


def test_the_corrections_small_systems_are_solved_in_float32_under_autocast():
    """The near-end synthesis, the 2 x 2 end systems and their residuals (1-D and space + time
    layers) and the joint wall solve give inside a bf16 step the numbers they give outside one:
    autocast would run their products in bf16 (0.4 % per product) and the correction would then
    miss the boundary data by as much before the exact ends are written."""
    generator = torch.Generator().manual_seed(5)
    conditions = BoundaryConditions(Dirichlet(0.7), Neumann(-1.5))
    near = torch.randn(BATCH, 6, N, generator=generator)  # (batch, channels, x)
    responses = torch.randn(2, 6, N, generator=generator)
    system = _end_system(conditions, 1 / (N - 1), N, 2, near)
    spectra = _end_spectra(8, system, near)
    spectrum = torch.randn(BATCH, 6, 8, dtype=torch.complex64, generator=generator)
    factors, pivots = _lu_factor(torch.randn(3, 20, 20, generator=generator) + 5 * torch.eye(20))
    matrix = torch.randn(3, 20, 20, generator=generator)  # only its gradient's shape matters
    residuals = torch.randn(2, 3, 20, 15, generator=generator)  # (batch, channels, m, frames)

    def corrections() -> list[Tensor]:
        multiples, _ = system.multiples(system.gather(near), system.gather(responses), 1e-6)
        return [
            multiples,
            spectra.near_ends(spectrum),
            _solve(matrix, factors, pivots, residuals),  # 30 right-hand sides: through A^-1
            _solve(matrix, factors, pivots, residuals[..., :5]),  # 10: by lu_solve
        ]

    with torch.no_grad():
        outside = corrections()
        with _MatmulDtypes() as seen, torch.autocast(**BF16):
            inside = corrections()
    assert seen.dtypes == {torch.float32}
    for exact, mixed in zip(outside, inside, strict=True):
        assert mixed.dtype == torch.float32 and torch.equal(mixed, exact)


def test_the_fno_under_bf16_autocast_is_the_float32_fno_to_bf16_rounding():
    fno = _fno1d()
    x = torch.randn(BATCH, 1, N, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        exact = fno(x)
        with torch.autocast(**BF16):
            mixed = fno(x)
    relative = float((mixed - exact).norm() / exact.norm())
    assert 0 < relative < 3e-2  # bf16 keeps 8 bits: about 0.4 % per product, not 0


def _train_one_epoch(tmp_path, precision: str) -> tuple[set[torch.dtype], dict]:
    settings = OperatorSettings(
        num_train=8,
        width=8,
        modes=4,
        modes_time=1,
        time_padding=0,
        projection_width=8,
        epochs=1,
        batch_size=4,
        lr_step_epochs=1,
        precision=precision,
    )
    torch.manual_seed(0)
    model = BoundaryCorrectedFNO1d(FNO1d(1, 1, 8, 4, projection_width=8), CONDITIONS["dirichlet"])
    generator = torch.Generator().manual_seed(4)
    tensors = [torch.randn(8, 1, N, generator=generator) for _ in range(2)]
    with _MatmulDtypes() as seen:
        train_operator(
            model, tensors, settings, tmp_path / precision / "model.pt", seed=0, progress=False
        )
    return seen.dtypes, {name: p.detach().clone() for name, p in model.state_dict().items()}


def test_the_training_precision_reaches_the_training_step(tmp_path):
    full_dtypes, full = _train_one_epoch(tmp_path, "32-true")
    mixed_dtypes, mixed = _train_one_epoch(tmp_path, "bf16-mixed")
    assert full_dtypes == {torch.float32, torch.complex64}  # channel and spectral products
    # The spectral products stay complex64, the correction's small systems float32.
    assert mixed_dtypes == {torch.bfloat16, torch.complex64, torch.float32}
    assert all(weight.dtype == torch.float32 for weight in mixed.values())  # master weights
    assert any(not torch.equal(full[name], mixed[name]) for name in full)


def test_with_precision_reaches_every_operator_of_a_preset():
    from lawful.experiments.boundary import PRESETS
    from lawful.experiments.ensemble import PRESETS as ENSEMBLE_PRESETS

    boundary = with_precision(PRESETS["quick"], "bf16-mixed")
    ensemble = with_precision(ENSEMBLE_PRESETS["quick"], "bf16-mixed")
    for operators in (boundary, ensemble.operators):
        assert operators.single_step.precision == operators.multi_step.precision == "bf16-mixed"
    assert boundary.num_train == PRESETS["quick"].num_train  # the rest as it was
    assert with_precision({"epochs": 3}, "bf16-mixed") == {"epochs": 3}  # no operators in it


def test_a_mixed_precision_run_records_it_and_keeps_its_boundaries_exact(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "heat-neumann",
                "--preset",
                "tiny",
                "--precision",
                "bf16-mixed",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    settings = json.loads((out / "settings.json").read_text())
    assert settings["single_step"]["precision"] == settings["multi_step"]["precision"]
    assert settings["single_step"]["precision"] == "bf16-mixed"
    metrics = json.loads((out / "metrics.json").read_text())
    rows = {(row["task"], row["method"]): row for row in metrics["rows"]}
    for task in ("single-step", "multi-step"):
        for method in ("BOON", "FNO+overwrite"):
            assert rows[task, method]["boundary_error"] < 1e-6, (task, method)
    capsys.readouterr()
    # The same folder in full precision would mix two trainings: refused, naming why.
    assert (
        main(["run", "heat-neumann", "--preset", "tiny", "--out", str(out), "--no-progress"]) == 1
    )
    error = capsys.readouterr().err
    assert "single_step.precision 'bf16-mixed' there, '32-true' here" in error


def test_what_mixed_precision_cannot_do_is_a_named_error(tmp_path, capsys):
    with pytest.raises(ExperimentError, match="unknown precision 'fp8'"):
        RunSettings(out=tmp_path, precision="fp8")
    with pytest.raises(ExperimentError, match="16-mixed needs a CUDA device"):
        RunSettings(out=tmp_path, precision="16-mixed")
    assert (
        main(
            [
                "run",
                "stefan",
                "--preset",
                "tiny",
                "--precision",
                "bf16-mixed",
                "--out",
                str(tmp_path / "stefan"),
            ]
        )
        == 1
    )
    assert "mixed precision is for training neural operators" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "heat-neumann", "--precision", "fp8"])
    assert exit_info.value.code == 2
