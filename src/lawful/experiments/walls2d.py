"""Boundary experiments in two space dimensions (BOON on four walls): Darcy flow and the 2-D wave
equation, with the methods of the 1-D experiments on the same data and budget.

- ``darcy``: ``-div(a grad u) = 1`` on the unit square, u = 0 on the four walls, a thresholded
  Gaussian random field ``a`` in {3, 12} (lawful.pdes.darcy); single-step ``a -> u`` with an
  operator over (x, y).
- ``wave-2d``: ``u_tt = u_xx + u_yy``, zero flux through the four walls, from rest at a random
  smooth displacement (the exact cosine series, lawful.pdes.wave2d); multi-step
  ``u0 -> u(t_1..t_25)`` with an operator over (x, y, t), zero-padded on t only.

The methods are :data:`lawful.experiments.boundary.METHODS`, on :class:`~lawful.constraints.walls.
Walls`: ``FNO``, ``FNO+overwrite`` (every wall set after the output), ``FNO+data`` and ``BOON``
(every Fourier layer and the output meet every wall: the joint solve of lawful.operators.boon).
Both problems' walls carry no data (u = 0; zero flux), so ``FNO+data`` gets no extra channel and
is the plain FNO; it is kept in the table as the issue's fourth column, and says so.

Stored layout (lawful.data.operator_data): ``inputs`` ``(N, X, Y)``, ``outputs`` ``(N, T, X, Y)``
(T = 1 for Darcy, labelled t = 1: steady), grids ``x``, ``y``, ``t``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from lawful.constraints.boundary import BoundaryConditions, Dirichlet, Neumann
from lawful.constraints.walls import Walls, wall_residuals
from lawful.data.store import save_dataset
from lawful.experiments.boundary import (
    BoundaryExperiment,
    BoundaryPreset,
    Task,
    TaskEvaluation,
)
from lawful.experiments.registry import register
from lawful.experiments.report import MetricRow, write_metrics, write_report
from lawful.metrics import relative_l2, summarize
from lawful.operators.fno import FNOxy, FNOxyt, FourierNeuralOperator
from lawful.pdes.darcy import sample_darcy
from lawful.pdes.wave2d import sample_wave_2d
from lawful.plots import plot_error_over_time, plot_field_images
from lawful.training.operator import OperatorSettings

__all__ = ["WALL_EXPERIMENTS", "WallExperiment", "WallProblem"]

WallSampler = Callable[[int, int, torch.Generator], tuple[Tensor, Tensor]]
"""(num_samples, n, generator) -> (inputs (N, n, n), outputs (N, T, n, n)), float64."""


@dataclass(frozen=True)
class WallProblem:
    """A 2-D problem on the unit square's n x n node grid: its walls and a sampler."""

    name: str
    walls: Walls
    sample: WallSampler
    times: Tensor  # (T,) output times; one (t = 1) for a steady problem


def _sample_darcy(num_samples: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    coefficient, solution = sample_darcy(num_samples, n, generator)  # (N, n, n) each
    return coefficient, solution[:, None]  # outputs (N, 1, n, n)


_WAVE_TIMES = 0.04 * torch.arange(1, 26, dtype=torch.float64)  # (25,) up to t = 1


def _sample_wave(num_samples: int, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    return sample_wave_2d(num_samples, n, _WAVE_TIMES, generator)  # (N, n, n), (N, T, n, n)


def _walls_of(condition) -> Walls:
    """The same condition on all four walls."""
    return Walls(
        x=BoundaryConditions(condition, condition), y=BoundaryConditions(condition, condition)
    )


DARCY = WallProblem(
    "darcy", _walls_of(Dirichlet()), _sample_darcy, torch.ones(1, dtype=torch.float64)
)
WAVE_2D = WallProblem("wave-2d", _walls_of(Neumann(0.0, order=2)), _sample_wave, _WAVE_TIMES)


def _settings(
    width: int, modes: int, epochs: int, batch: int, step: int, **rest
) -> OperatorSettings:
    return OperatorSettings(
        num_train=rest.pop("num_train"),
        width=width,
        modes=modes,
        modes_time=rest.pop("modes_time", 1),
        time_padding=rest.pop("time_padding", 0),
        projection_width=rest.pop("projection_width", 64),
        epochs=epochs,
        batch_size=batch,
        lr_step_epochs=step,
        **rest,
    )


PRESETS: dict[str, dict[str, BoundaryPreset]] = {
    "darcy": {
        # Minutes on 2 CPU cores.
        "quick": BoundaryPreset(
            num_train=200,
            num_test=50,
            resolution=33,
            single_step=_settings(24, 10, 60, 10, 20, num_train=200, learning_rate=2e-3),
            multi_step=_settings(8, 4, 1, 4, 1, num_train=0),  # unused: Darcy is single-step
        ),
        # The FNO benchmark's size; meant for a GPU (--device cuda).
        "paper": BoundaryPreset(
            num_train=1000,
            num_test=200,
            resolution=85,
            single_step=_settings(32, 12, 500, 20, 100, num_train=1000, projection_width=128),
            multi_step=_settings(8, 4, 1, 4, 1, num_train=0),
        ),
        "tiny": BoundaryPreset(
            num_train=8,
            num_test=4,
            resolution=13,
            single_step=_settings(6, 4, 2, 4, 1, num_train=8, projection_width=16),
            multi_step=_settings(6, 4, 1, 4, 1, num_train=0),
        ),
    },
    "wave-2d": {
        "quick": BoundaryPreset(
            num_train=100,
            num_test=30,
            resolution=25,
            single_step=_settings(8, 4, 1, 4, 1, num_train=0),  # unused: multi-step only
            multi_step=_settings(
                12,
                6,
                30,
                10,
                10,
                num_train=100,
                modes_time=6,
                time_padding=4,
                projection_width=32,
                learning_rate=2e-3,
            ),
        ),
        # The BOON paper's 2-D + time sizes (its cavity operator); meant for a GPU.
        "paper": BoundaryPreset(
            num_train=1000,
            num_test=200,
            resolution=50,
            single_step=_settings(8, 4, 1, 4, 1, num_train=0),
            multi_step=_settings(
                20,
                8,
                500,
                10,
                100,
                num_train=1000,
                modes_time=8,
                time_padding=6,
                projection_width=128,
            ),
        ),
        "tiny": BoundaryPreset(
            num_train=8,
            num_test=4,
            resolution=13,
            single_step=_settings(6, 4, 1, 4, 1, num_train=0),
            multi_step=_settings(
                6, 4, 2, 4, 1, num_train=8, modes_time=4, time_padding=2, projection_width=16
            ),
        ),
    },
}


class WallExperiment(BoundaryExperiment):
    """:class:`BoundaryExperiment` on a 2-D problem: four walls, operators over (x, y[, t])."""

    kind = "boundary conditions on four walls (BOON, 2-D)"

    def __init__(self, problem: WallProblem, presets: dict[str, BoundaryPreset]) -> None:
        task = Task("multi-step" if problem.times.numel() > 1 else "single-step")
        super().__init__(problem.name, None, (task,), presets=presets)
        self.wall_problem = problem

    @property
    def conditions(self) -> Walls:  # type: ignore[override]  # the 2-D walls
        return self.wall_problem.walls

    def write_split(
        self, path: Path, split: str, task: Task, num_samples: int, resolution: int, seed: int
    ) -> None:
        inputs, outputs = self.wall_problem.sample(
            num_samples, resolution, torch.Generator().manual_seed(seed)
        )  # (N, X, Y), (N, T, X, Y)
        grid = torch.linspace(0.0, 1.0, resolution, dtype=torch.float64)  # (n,)
        save_dataset(
            path,
            {"inputs": inputs, "outputs": outputs},
            torch.zeros(num_samples, 0, dtype=torch.float64),
            [],
            problem=self.name,
            grid={"x": grid, "y": grid, "t": self.wall_problem.times},
            metadata={"split": split, "seed": seed},
        )

    def build_model(self, method: str, task: Task, preset: BoundaryPreset) -> nn.Module:
        definition = self.method(method)
        settings = preset.operator(task)
        fno: FourierNeuralOperator
        if task.multistep:
            fno = FNOxyt(
                1,
                1,
                settings.width,
                settings.modes,
                settings.modes,
                settings.modes_time,
                padding=settings.time_padding,
                projection_width=settings.projection_width,
            )
        else:
            fno = FNOxy(
                1,
                1,
                settings.width,
                settings.modes,
                settings.modes,
                projection_width=settings.projection_width,
            )
        # No wall carries data, so FNO+data has no extra channel (module docstring).
        return definition.wrap(fno, self.conditions)

    def evaluate_task(
        self, preset: BoundaryPreset, data_folder: Path, model_folder: Path, task: Task
    ) -> tuple[list[MetricRow], TaskEvaluation]:
        stored = self.load_split(data_folder, "test", task)
        exact = self.tensors(stored, task, dtype=torch.float64)
        truth = exact[1]  # (N, 1, X, Y[, T])
        model_tensors = [tensor.float() for tensor in exact]
        x = stored.grid["x"]
        spacing = float(x[1] - x[0])
        rows, error_over_time = [], {}
        predictions = self.predict(preset, model_folder, task, model_tensors)
        for method, prediction in predictions.items():
            per_sample = {
                "rel_l2": relative_l2(prediction.flatten(1), truth.flatten(1)),  # (N,)
                **self._wall_errors(prediction, spacing),
            }
            if task.multistep:  # (N, T): relative L2 over (x, y) per frame
                error_over_time[method] = relative_l2(
                    prediction[:, 0].flatten(1, 2), truth[:, 0].flatten(1, 2), dims=(-2,)
                )
            summaries = {name: summarize(values, name) for name, values in per_sample.items()}
            rows.append(MetricRow.from_summaries(method, None, summaries, task.kind))
        floor = {
            name: float(values.mean()) for name, values in self._wall_errors(truth, spacing).items()
        }
        t = stored.grid["t"]
        evaluation = TaskEvaluation(
            task, x, t if task.multistep else t[-1], truth, predictions, [], error_over_time, floor
        )
        return rows, evaluation

    def _wall_errors(self, field: Tensor, spacing: float) -> dict[str, Tensor]:
        """Per-sample mean |residual| on each wall (and frame), and the worst wall's: (N,)."""
        residuals = wall_residuals(field, self.conditions, spacing)  # name -> (N, 1, n[, T])
        per_wall = {
            f"boundary_error_{name}": residual.abs().flatten(1).mean(1)
            for name, residual in residuals.items()
        }
        worst = torch.stack(list(per_wall.values())).amax(0)  # (N,)
        return {"boundary_error": worst, **per_wall}

    def _write_outputs(
        self, preset_name: str, out: Path, rows: list[MetricRow], evaluations: list[TaskEvaluation]
    ) -> dict:
        (evaluation,) = evaluations
        figures = {}
        truth = evaluation.truth[0, 0]  # (X, Y[, T]): the first test sample
        shown = ("FNO", "FNO+overwrite", "BOON")
        if evaluation.task.multistep:
            num_frames = evaluation.t.numel()
            for frame in (0, num_frames // 2, num_frames - 1):
                t = float(evaluation.t[frame])
                figures[f"fields at t = {t:.2g}"] = plot_field_images(
                    evaluation.x,
                    truth[..., frame],
                    {m: evaluation.predictions[m][0, 0, ..., frame] for m in shown},
                    f"{self.name}, test sample 0, t = {t:.2g}",
                    out / f"fields-t{frame + 1}.png",
                )
            figures["relative error over time"] = plot_error_over_time(
                evaluation.t,
                {m: e.mean(0)[None] for m, e in evaluation.error_over_time.items()},
                [evaluation.task.label],
                out / "error_over_time.png",
            )
        else:
            figures["fields"] = plot_field_images(
                evaluation.x,
                truth,
                {m: evaluation.predictions[m][0, 0] for m in shown},
                f"{self.name}, test sample 0",
                out / "fields.png",
            )
        metrics = write_metrics(out / "metrics.json", self.name, preset_name, rows)
        walls = ", ".join(
            f"{n} {type(self.conditions.condition(n)).__name__}" for n in self.conditions.names
        )
        floor = ", ".join(f"{name} {value:.2e}" for name, value in evaluation.data_floor.items())
        notes = (
            f"Walls: {walls}. Test-set means ± one standard error. rel_l2: per-sample relative L2 "
            "error over the field (and t). boundary_error: per sample, the worst wall's mean "
            "|residual| (Dirichlet |u - g|, Neumann |stencil derivative - g| with the walls' "
            "order-2 one-sided stencil, corners by the rule of lawful.constraints.walls); the "
            "per-wall columns follow in metrics.json. Predictions are float32, metrics float64. "
            "FNO+data is the plain FNO here: no wall carries data. The data itself scores: "
            f"{floor}."
        )
        write_report(
            out / "report.md",
            title=f"lawful: {self.name} ({preset_name})",
            rows=rows,
            columns=["rel_l2", "boundary_error"],
            param_name="param",
            figures=figures,
            notes=notes,
        )
        return metrics


WALL_EXPERIMENTS: dict[str, WallExperiment] = {
    problem.name: register(WallExperiment(problem, PRESETS[problem.name]))
    for problem in (DARCY, WAVE_2D)
}
