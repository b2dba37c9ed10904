"""Boundary experiments (BOON): data from our solvers -> operators -> metrics and figures.

One definition, :class:`BoundaryExperiment`, serves the five problems of
:mod:`lawful.pdes.boundary_problems` and a user's own (a problem of their own, or their data
file: :mod:`lawful.experiments.user_data`). Each experiment has one or more *tasks*: single-step
(``u0 -> u(t_final)``, a 1-D FNO) or multi-step (``u0 -> u(t_1..t_25)``, a space + time FNO),
and for Stokes one task per viscosity. Every task trains the methods of :data:`METHODS` on the
same data, from the same initial weights, for the same budget:

- ``FNO``: the plain Fourier neural operator;
- ``FNO+overwrite``: the same architecture whose output boundary entries are overwritten with the
  boundary data (Dirichlet value, Neumann stencil value, periodic average), in training too;
- ``FNO+data``: the FNO given the boundary data as extra input channels (for a space + time
  task, the whole boundary history) but not held to it: it sees what BOON sees, so the table
  tells what BOON gains from its correction from what it gains from that information;
- ``BOON``: the boundary-corrected operator (every Fourier layer and the output obey the
  conditions; lawful.operators.boon).

Stages (``data``, ``train``, ``evaluate``) are separate, and ``data`` and ``train`` skip what is
already on disk, so a rerun resumes. One multi-step dataset per split and parameter is generated;
a single-step task reads its last frame (the same solve).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from lawful.constraints.boundary import BoundaryConditions, Neumann
from lawful.data.operator_data import operator_tensors
from lawful.data.store import StoredDataset, load_dataset, save_dataset, write_text_atomically
from lawful.experiments._runs import begin_run
from lawful.experiments.registry import RunSettings, register
from lawful.experiments.report import MetricRow, write_metrics, write_report
from lawful.metrics import boundary_error, neumann_flux_error, relative_l2, summarize
from lawful.operators.boon import BoundaryCorrectedFNO, BoundaryOverwrite
from lawful.operators.fno import FourierNeuralOperator
from lawful.pdes.boundary_problems import BOUNDARY_PROBLEMS, make_boundary_dataset
from lawful.pdes.problem import Problem
from lawful.plots import (
    plot_error_over_time,
    plot_neumann_ends,
    plot_profiles,
    plot_profiles_over_time,
)
from lawful.training.operator import (
    BoundaryDataInput,
    OperatorSettings,
    PlainOperator,
    build_fno,
    predict_operator,
    train_operator,
)
from lawful.training.trainer import is_main_process, load_weights

__all__ = [
    "BOUNDARY_EXPERIMENTS",
    "METHODS",
    "PRESETS",
    "BoundaryExperiment",
    "BoundaryPreset",
    "OperatorMethod",
    "Task",
]


@dataclass(frozen=True)
class OperatorMethod:
    """A method of the boundary experiments: how it wraps the task's FNO, where its weights go.

    ``wrap(fno, conditions)`` returns a model called as ``model(inputs, *boundary data)``.
    ``reads_boundary_data``: the FNO takes each end's data as one more input channel.
    """

    wrap: Callable[[FourierNeuralOperator, BoundaryConditions], nn.Module]
    weights_file: str
    reads_boundary_data: bool = False


def _x_extent(fno: FourierNeuralOperator) -> float:
    """The length of the interval the FNO's x axis spans: the overwrite's Neumann grid step."""
    low, high = fno.domains[0]
    return high - low


METHODS: dict[str, OperatorMethod] = {
    "FNO": OperatorMethod(lambda fno, conditions: PlainOperator(fno), "fno.pt"),
    "FNO+overwrite": OperatorMethod(
        lambda fno, conditions: BoundaryOverwrite(fno, conditions, length=_x_extent(fno)),
        "fno-overwrite.pt",
    ),
    "FNO+data": OperatorMethod(
        lambda fno, conditions: BoundaryDataInput(fno), "fno-data.pt", reads_boundary_data=True
    ),
    "BOON": OperatorMethod(BoundaryCorrectedFNO, "boon.pt"),
}


@dataclass(frozen=True)
class Task:
    """What the operators learn: one or all output frames, at one value of the parameter."""

    kind: str  # "single-step" or "multi-step"
    param: float | None = None  # the experiment's parameter (Stokes: viscosity nu)

    def __post_init__(self) -> None:
        if self.kind not in ("single-step", "multi-step"):
            raise ValueError(f"task kind must be 'single-step' or 'multi-step', got {self.kind!r}")

    @property
    def multistep(self) -> bool:
        return self.kind == "multi-step"

    @property
    def label(self) -> str:
        """A file-name-safe name, unique within the experiment."""
        return self.kind if self.param is None else f"{self.kind}-param{self.param:g}"


@dataclass(frozen=True)
class BoundaryPreset:
    num_train: int
    num_test: int
    resolution: int  # grid points on [0, 1], both ends included
    single_step: OperatorSettings
    multi_step: OperatorSettings

    def operator(self, task: Task) -> OperatorSettings:
        """The architecture and budget of the task's operators."""
        return self.multi_step if task.multistep else self.single_step


PRESETS = {
    # Minutes on 2 CPU cores; the space + time operators are small to fit the budget.
    "quick": BoundaryPreset(
        num_train=160,
        num_test=50,
        resolution=65,
        single_step=OperatorSettings(
            num_train=160,
            width=32,
            modes=16,
            modes_time=1,
            time_padding=0,
            projection_width=64,
            epochs=150,
            batch_size=20,
            lr_step_epochs=40,
            learning_rate=2e-3,
        ),
        multi_step=OperatorSettings(
            num_train=100,
            width=16,
            modes=12,
            modes_time=8,
            time_padding=6,
            projection_width=32,
            epochs=40,
            batch_size=10,
            lr_step_epochs=12,
            learning_rate=2e-3,
        ),
    ),
    # The paper's settings; meant for a GPU (--device cuda).
    "paper": BoundaryPreset(
        num_train=1000,
        num_test=200,
        resolution=501,
        single_step=OperatorSettings(
            num_train=1000,
            width=64,
            modes=16,
            modes_time=1,
            time_padding=0,
            projection_width=128,
            epochs=500,
            batch_size=20,
            lr_step_epochs=50,
        ),
        multi_step=OperatorSettings(
            num_train=1000,
            width=32,
            modes=12,
            modes_time=12,
            time_padding=8,
            projection_width=128,
            epochs=500,
            batch_size=20,
            lr_step_epochs=50,
        ),
    ),
    # For tests of the whole pipeline: seconds.
    "tiny": BoundaryPreset(
        num_train=8,
        num_test=4,
        resolution=17,
        single_step=OperatorSettings(8, 8, 4, 1, 0, 16, epochs=2, batch_size=4, lr_step_epochs=1),
        multi_step=OperatorSettings(8, 8, 4, 4, 2, 16, epochs=2, batch_size=4, lr_step_epochs=1),
    ),
}


def dataset_path(folder: Path, split: str, task: Task) -> Path:
    return folder / (f"{split}.h5" if task.param is None else f"{split}-param{task.param:g}.h5")


@dataclass
class TaskEvaluation:
    task: Task
    x: Tensor  # (X,)
    t: Tensor  # (T,) multi-step, () single-step
    truth: Tensor  # (N, 1, X[, T]) float64
    predictions: dict[str, Tensor]  # method -> like truth
    boundary: list[Tensor]  # left, right data: (N[, T]) each; empty if periodic
    error_over_time: dict[str, Tensor]  # method -> (N, T), multi-step only
    data_floor: dict[str, float]  # the solver data's own boundary errors


class BoundaryExperiment:
    """A boundary experiment: a problem, its tasks, presets and methods.

    ``param_option`` names the sampler option a task's ``param`` sets and its name in the
    report (Stokes: ``("viscosity", "nu")``). Data is drawn by the problem's sampler; a
    subclass may take it from elsewhere (``problem=None``) by overriding :meth:`generate_data`
    and :attr:`conditions` (lawful.experiments.user_data).
    """

    kind = "boundary conditions (BOON)"

    def __init__(
        self,
        name: str,
        problem: Problem | None,
        tasks: tuple[Task, ...],
        presets: Mapping[str, BoundaryPreset] = PRESETS,
        methods: Mapping[str, OperatorMethod] = METHODS,
        param_option: tuple[str, str] | None = None,
    ) -> None:
        if not tasks:
            raise ValueError(f"experiment {name!r} needs at least one task")
        if any(task.param is not None for task in tasks) and param_option is None:
            raise ValueError(f"experiment {name!r}: tasks with a param need a param_option")
        self.name, self.problem, self.tasks = name, problem, tuple(tasks)
        self.presets, self.methods, self.param_option = presets, dict(methods), param_option

    @property
    def x_domain(self) -> tuple[float, float]:
        """The interval the data's x grid spans (its ends included)."""
        return (0.0, 1.0) if self.problem is None else tuple(self.problem.x_domain)

    @property
    def conditions(self) -> BoundaryConditions:
        """The problem's conditions along x of the task's field: ``(batch, 1, x[, t])``."""
        conditions = None if self.problem is None else self.problem.conditions
        if conditions is None:
            raise ValueError(
                f"experiment {self.name!r} needs a problem with conditions at both ends of x"
            )
        return replace(conditions, axis=2)  # x is axis 2 of (batch, channels, x..)

    # ------------------------------------------------------------------------------ data

    def generate_data(self, preset: BoundaryPreset, folder: Path, seed: int) -> None:
        """Write a multi-step ``train`` and ``test`` file per task parameter (skipping those
        already there): see :mod:`lawful.data.operator_data` for the layout."""
        folder.mkdir(parents=True, exist_ok=True)
        for task in self.tasks:
            for split, num_samples, split_seed in (
                ("train", preset.num_train, seed),
                ("test", preset.num_test, seed + 1),  # other draws than training
            ):
                path = dataset_path(folder, split, task)
                if not path.exists():
                    self.write_split(path, split, task, num_samples, preset.resolution, split_seed)

    def write_split(
        self, path: Path, split: str, task: Task, num_samples: int, resolution: int, seed: int
    ) -> None:
        """Draw one split from the problem's sampler and store it at ``path``."""
        if self.problem is None:
            raise ValueError(f"experiment {self.name!r} has no problem to draw data from")
        options = {}
        if task.param is not None:
            assert self.param_option is not None  # checked in __init__
            options[self.param_option[0]] = task.param
        data = make_boundary_dataset(
            self.problem,
            num_samples,
            resolution,
            torch.Generator().manual_seed(seed),
            multistep=True,
            **options,
        )
        ends = {end: value for end, value in data["boundary"].items() if value is not None}
        names = sorted(data["parameters"])
        params = torch.zeros(num_samples, len(names), dtype=torch.float64)  # (N, P), P >= 0
        for column, name in enumerate(names):
            params[:, column] = data["parameters"][name]
        save_dataset(
            path,
            {"inputs": data["inputs"], "outputs": data["outputs"], **ends},
            params,
            names,
            problem=self.problem.name,
            grid={"x": data["x"], "t": data["t"]},
            metadata={"split": split, "seed": seed, **options},
        )

    def load_split(self, folder: Path, split: str, task: Task) -> StoredDataset:
        return load_dataset(dataset_path(folder, split, task))

    def tensors(
        self,
        stored: StoredDataset,
        task: Task,
        count: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> list[Tensor]:
        """``[inputs, targets, *boundary data]`` of the task's operators (first ``count``)."""
        return operator_tensors(stored, task.multistep, count, dtype)

    # ------------------------------------------------------------------------------ models

    def method(self, name: str) -> OperatorMethod:
        """The method called ``name``, or an error naming the experiment's methods."""
        if name not in self.methods:
            raise ValueError(f"unknown method {name!r}; choose one of {sorted(self.methods)}")
        return self.methods[name]

    def build_model(self, method: str, task: Task, preset: BoundaryPreset) -> nn.Module:
        """A freshly initialised model of ``method`` for ``task`` (seed torch first)."""
        definition = self.method(method)
        conditions = self.conditions
        data_channels = 0 if conditions.is_periodic else 2  # one per end with data
        in_channels = 1 + (data_channels if definition.reads_boundary_data else 0)
        fno = build_fno(
            preset.operator(task), task.multistep, in_channels=in_channels, x_domain=self.x_domain
        )
        return definition.wrap(fno, conditions)

    def train_model(
        self,
        method: str,
        task: Task,
        preset: BoundaryPreset,
        tensors: list[Tensor],
        weights_path: Path,
        seed: int,
        settings: RunSettings,
    ) -> bool:
        """Train one model from seed ``seed`` (initial weights and batch order) into
        ``weights_path``; skipped if it is there. Returns whether this is the main process."""
        if weights_path.exists():
            self.load_model(method, task, preset, weights_path)  # what it is, not only that it is
            return is_main_process()
        torch.manual_seed(seed)
        return train_operator(
            self.build_model(method, task, preset),
            tensors,
            preset.operator(task),
            weights_path,
            seed,
            settings.device,
            settings.progress,
            settings.num_devices,
            settings.log,
            self.model_identity(method, task, preset),
        )

    def model_identity(self, method: str, task: Task, preset: BoundaryPreset) -> dict:
        """What a trained model is: recorded with its weights and checkpoints, checked on load."""
        settings = asdict(preset.operator(task))
        if settings["precision"] == "32-true":  # as recorded before models had a precision
            del settings["precision"]
        return {
            "experiment": self.name,
            "method": method,
            "task": task.label,
            "settings": settings,
        }

    def load_model(
        self, method: str, task: Task, preset: BoundaryPreset, weights_path: Path
    ) -> nn.Module:
        return load_weights(
            self.build_model(method, task, preset),
            weights_path,
            f"{method} ({task.label})",
            self.model_identity(method, task, preset),
        )

    def train(self, preset: BoundaryPreset, data_folder: Path, folder: Path, settings) -> bool:
        """Train every method of every task; weights land in ``folder/TASK/<weights file>``.

        Methods of a task start from the same initial FNO weights (same seed) and see the same
        batches in the same order. Returns whether this is the main process.
        """
        is_main = is_main_process()
        for task in self.tasks:
            stored = self.load_split(data_folder, "train", task)
            tensors = self.tensors(stored, task, preset.operator(task).num_train)
            for method, definition in self.methods.items():
                path = folder / task.label / definition.weights_file
                is_main = self.train_model(
                    method, task, preset, tensors, path, settings.seed, settings
                )
        return is_main

    # ------------------------------------------------------------------------------ evaluate

    def predict(
        self, preset: BoundaryPreset, model_folder: Path, task: Task, tensors: list[Tensor]
    ) -> dict[str, Tensor]:
        """Every method's trained model on ``tensors`` (float32): method -> prediction, float64."""
        batch_size = preset.operator(task).batch_size
        predictions = {}
        for method, definition in self.methods.items():
            path = model_folder / task.label / definition.weights_file
            model = self.load_model(method, task, preset, path)
            predictions[method] = predict_operator(model, tensors, batch_size)
        return predictions

    def evaluate_task(
        self, preset: BoundaryPreset, data_folder: Path, model_folder: Path, task: Task
    ) -> tuple[list[MetricRow], TaskEvaluation]:
        stored = self.load_split(data_folder, "test", task)
        # Metrics against the solver's float64 data; the models see it in float32, as in training.
        exact = self.tensors(stored, task, dtype=torch.float64)
        truth, boundary = exact[1], exact[2:]
        model_tensors = [tensor.float() for tensor in exact]
        conditions = self.conditions
        if boundary:
            conditions = conditions.with_values(*boundary)
        x, t = stored.grid["x"], stored.grid["t"]
        spacing = float(x[1] - x[0])
        rows, error_over_time = [], {}
        predictions = self.predict(preset, model_folder, task, model_tensors)
        for method, prediction in predictions.items():
            per_sample = {
                "rel_l2": relative_l2(prediction.flatten(1), truth.flatten(1)),  # (N,)
                **_boundary_metrics(prediction, conditions, spacing),
            }
            if task.multistep:
                error_over_time[method] = relative_l2(prediction[:, 0], truth[:, 0], dims=(-2,))
            summaries = {name: summarize(values, name) for name, values in per_sample.items()}
            rows.append(MetricRow.from_summaries(method, task.param, summaries, task.kind))
        floor = {
            name: float(values.mean())
            for name, values in _boundary_metrics(truth, conditions, spacing).items()
        }
        evaluation = TaskEvaluation(
            task,
            x,
            t if task.multistep else t[-1],
            truth,
            predictions,
            boundary,
            error_over_time,
            floor,
        )
        return rows, evaluation

    # ------------------------------------------------------------------------------ run

    def run(self, settings: RunSettings) -> dict | None:
        """The whole job; returns the ``metrics.json`` content (``None`` where it did not
        evaluate, or on processes other than the main one of a data-parallel run)."""
        preset = begin_run(self, settings)
        out, log = settings.out, settings.log
        data_folder, model_folder = out / "data", out / "models"
        # Every stage needs the data; files already there are kept, missing ones are written.
        log(f"{self.name} data in {data_folder}")
        self.generate_data(preset, data_folder, settings.seed)
        if "train" in settings.stages:
            log(f"training {', '.join(self.methods)}")
            if not self.train(preset, data_folder, model_folder, settings):
                return None  # not the main process of a data-parallel run
        if "evaluate" not in settings.stages:
            return None
        log("evaluating all methods")
        rows, evaluations = [], []
        for task in self.tasks:
            task_rows, evaluation = self.evaluate_task(preset, data_folder, model_folder, task)
            rows += task_rows
            evaluations.append(evaluation)
        return self._write_outputs(settings.preset, out, rows, evaluations)

    def _write_outputs(
        self, preset_name: str, out: Path, rows: list[MetricRow], evaluations: list[TaskEvaluation]
    ) -> dict:
        figures = _draw_figures(self.conditions, evaluations, out)
        over_time = {
            evaluation.task.label: {
                "t": evaluation.t.tolist(),
                **{m: e.mean(0).tolist() for m, e in evaluation.error_over_time.items()},
            }
            for evaluation in evaluations
            if evaluation.task.multistep
        }
        if over_time:
            text = json.dumps(over_time, indent=2) + "\n"
            write_text_atomically(out / "error_over_time.json", text)
        metrics = write_metrics(out / "metrics.json", self.name, preset_name, rows)
        columns = ["rel_l2", "boundary_error"]
        if any("flux_error_4th_order" in row.values for row in rows):
            columns.append("flux_error_4th_order")
        write_report(
            out / "report.md",
            title=f"lawful: {self.name} ({preset_name})",
            rows=rows,
            columns=columns,
            param_name=self.param_option[1] if self.param_option else "param",
            figures=figures,
            notes=_notes(evaluations),
        )
        return metrics


def _boundary_metrics(
    field: Tensor, conditions: BoundaryConditions, spacing: float
) -> dict[str, Tensor]:
    """Per-sample boundary errors: by the conditions' stencils, and (Neumann) a 4th-order flux."""
    metrics = {"boundary_error": boundary_error(field, conditions, spacing)}
    if any(isinstance(end, Neumann) for end in (conditions.left, conditions.right)):
        metrics["flux_error_4th_order"] = neumann_flux_error(field, conditions, spacing)
    return metrics


def _draw_figures(
    conditions: BoundaryConditions, evaluations: list[TaskEvaluation], out: Path
) -> dict[str, Path]:
    figures = {}
    multistep = [evaluation for evaluation in evaluations if evaluation.task.multistep]
    for evaluation in evaluations:
        label, x = evaluation.task.label, evaluation.x
        if evaluation.task.multistep:
            num_frames = evaluation.t.numel()
            frames = torch.tensor([0, num_frames // 3, 2 * num_frames // 3, num_frames - 1])
            figures[f"profiles over time ({label})"] = plot_profiles_over_time(
                x,
                evaluation.t[frames],
                evaluation.truth[0, 0, :, frames].T,  # (frames, X)
                {m: p[0, 0, :, frames].T for m, p in evaluation.predictions.items()},
                out / f"profiles_over_time-{label}.png",
            )
            continue
        cases = min(3, evaluation.truth.shape[0])
        figures[f"profiles ({label})"] = plot_profiles(
            x,
            evaluation.truth[:cases, 0],
            {
                m: (p[:cases, 0], torch.zeros_like(p[:cases, 0]))
                for m, p in evaluation.predictions.items()
            },
            [f"test sample {case}, t = {float(evaluation.t):.3g}" for case in range(cases)],
            out / f"profiles-{label}.png",
        )
        if isinstance(conditions.left, Neumann) or isinstance(conditions.right, Neumann):
            left, right = evaluation.boundary  # (N,) each
            figures["heat near the ends"] = plot_neumann_ends(
                x,
                evaluation.truth[0, 0],
                {m: p[0, 0] for m, p in evaluation.predictions.items()},
                (float(left[0]), float(right[0])),
                out / "heat_ends.png",
            )
    if multistep:
        methods = list(multistep[0].error_over_time)
        figures["relative error over time"] = plot_error_over_time(
            multistep[0].t,
            {
                m: torch.stack([e.error_over_time[m].mean(0) for e in multistep])  # (tasks, T)
                for m in methods
            },
            [e.task.label for e in multistep],
            out / "error_over_time.png",
        )
    return figures


def _notes(evaluations: list[TaskEvaluation]) -> str:
    floors = "; ".join(
        f"{e.task.label}: "
        + ", ".join(f"{name} {value:.2e}" for name, value in e.data_floor.items())
        for e in evaluations
    )
    return (
        "Test-set means ± one standard error. rel_l2: per-sample relative L2 error over x (and "
        "t for multi-step). boundary_error: per-sample mean over both ends (and all frames) of "
        "|u - g| (Dirichlet), |stencil u_x - g| with the conditions' own one-sided stencil "
        "(Neumann), |u_0 - u_N| (periodic), computed in float64 from the float32 predictions. "
        "flux_error_4th_order: |u_x - g| at Neumann ends with an independent 4th-order one-sided "
        "stencil. FNO+overwrite trains the FNO with its output ends overwritten. The solver data "
        f"itself scores: {floors} (the discretisation floor of the Neumann columns)."
    )


TASKS: dict[str, tuple[Task, ...]] = {
    "heat-neumann": (Task("single-step"), Task("multi-step")),
    "burgers-dirichlet": (Task("single-step"),),
    "burgers-periodic": (Task("single-step"), Task("multi-step")),
    "stokes": (Task("multi-step", 0.1), Task("multi-step", 0.001)),
    "wave": (Task("multi-step"),),
}
_PARAM_OPTIONS = {"stokes": ("viscosity", "nu")}
BOUNDARY_EXPERIMENTS: dict[str, BoundaryExperiment] = {
    name: register(
        BoundaryExperiment(
            name, BOUNDARY_PROBLEMS[name], tasks, param_option=_PARAM_OPTIONS.get(name)
        )
    )
    for name, tasks in TASKS.items()
}
