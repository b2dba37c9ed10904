"""Boundary experiments (BOON): data from our solvers -> three operators -> metrics and figures.

One definition serves the five problems of :mod:`lawful.pdes.boundary_problems`. Each experiment
has one or more *tasks*: single-step (``u0 -> u(t_final)``, a 1-D FNO) or multi-step
(``u0 -> u(t_1..t_25)``, a space + time FNO), and for Stokes one task per viscosity. Every task
trains three methods on the same data, from the same initial weights, for the same budget:

- ``FNO``: the plain Fourier neural operator;
- ``FNO+overwrite``: the same architecture whose output boundary entries are overwritten with the
  boundary data (Dirichlet value, Neumann stencil value, periodic average), in training too;
- ``BOON``: the boundary-corrected operator (every Fourier layer and the output obey the
  conditions; lawful.operators.boon).

Stages (``data``, ``train``, ``evaluate``) are separate, and ``data`` and ``train`` skip what is
already on disk, so a rerun resumes. One multi-step dataset per split and parameter is generated;
a single-step task reads its last frame (the same solve).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lawful.constraints.boundary import BoundaryConditions, Neumann
from lawful.data.store import StoredDataset, load_dataset, save_dataset
from lawful.experiments._runs import record_settings, select_preset
from lawful.experiments.report import MetricRow, write_metrics, write_report
from lawful.metrics import boundary_error, neumann_flux_error, relative_l2, summarize
from lawful.operators.boon import (
    BoundaryCorrectedFNO1d,
    BoundaryCorrectedFNO2d,
    BoundaryOverwrite,
)
from lawful.operators.fno import FNO1d, FNO2d
from lawful.pdes.boundary_problems import BOUNDARY_PROBLEMS, make_boundary_dataset
from lawful.plots import (
    plot_error_over_time,
    plot_neumann_ends,
    plot_profiles,
    plot_profiles_over_time,
)
from lawful.training.operator import OperatorModule
from lawful.training.trainer import TrainSettings, fit, is_main_process

__all__ = [
    "BOUNDARY_EXPERIMENTS",
    "METHODS",
    "PRESETS",
    "BoundaryPreset",
    "OperatorSettings",
    "Task",
    "build_model",
    "dataset_path",
    "evaluate",
    "generate_data",
    "load_operator",
    "operator_settings",
    "predict",
    "run",
    "task_tensors",
    "train",
    "train_operator",
]

METHODS = ("FNO", "FNO+overwrite", "BOON")
_WEIGHT_FILES = {"FNO": "fno.pt", "FNO+overwrite": "fno-overwrite.pt", "BOON": "boon.pt"}


@dataclass(frozen=True)
class Task:
    """What the operators learn: one or all output frames, at one value of the parameter."""

    kind: str  # "single-step" or "multi-step"
    param: float | None = None  # the experiment's parameter (Stokes: viscosity nu)

    @property
    def multistep(self) -> bool:
        return self.kind == "multi-step"

    @property
    def label(self) -> str:
        """A file-name-safe name, unique within the experiment."""
        return self.kind if self.param is None else f"{self.kind}-param{self.param:g}"


TASKS: dict[str, tuple[Task, ...]] = {
    "heat-neumann": (Task("single-step"), Task("multi-step")),
    "burgers-dirichlet": (Task("single-step"),),
    "burgers-periodic": (Task("single-step"), Task("multi-step")),
    "stokes": (Task("multi-step", 0.1), Task("multi-step", 0.001)),
    "wave": (Task("multi-step"),),
}
BOUNDARY_EXPERIMENTS = tuple(TASKS)
# The option of make_boundary_dataset a task's param sets, and its name in the report.
_PARAM_OPTIONS = {"stokes": ("viscosity", "nu")}


@dataclass(frozen=True)
class OperatorSettings:
    """Architecture and training budget of the operators of one kind of task."""

    num_train: int  # the first samples of the training split
    width: int
    modes: int  # along x
    modes_time: int  # along t (multi-step only)
    time_padding: int  # zero padding of the non-periodic time axis (multi-step only)
    projection_width: int
    epochs: int
    batch_size: int
    lr_step_epochs: int


@dataclass(frozen=True)
class BoundaryPreset:
    num_train: int
    num_test: int
    resolution: int  # grid points on [0, 1], both ends included
    learning_rate: float
    weight_decay: float
    lr_gamma: float
    single_step: OperatorSettings
    multi_step: OperatorSettings


PRESETS = {
    # Minutes on 2 CPU cores; the space + time operators are small to fit the budget.
    "quick": BoundaryPreset(
        num_train=160,
        num_test=50,
        resolution=65,
        learning_rate=2e-3,
        weight_decay=1e-4,
        lr_gamma=0.5,
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
        ),
    ),
    # The paper's settings; meant for a GPU (--device cuda).
    "paper": BoundaryPreset(
        num_train=1000,
        num_test=200,
        resolution=501,
        learning_rate=1e-3,
        weight_decay=1e-4,
        lr_gamma=0.5,
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
        learning_rate=1e-3,
        weight_decay=1e-4,
        lr_gamma=0.5,
        single_step=OperatorSettings(8, 8, 4, 1, 0, 16, epochs=2, batch_size=4, lr_step_epochs=1),
        multi_step=OperatorSettings(8, 8, 4, 4, 2, 16, epochs=2, batch_size=4, lr_step_epochs=1),
    ),
}


# ---------------------------------------------------------------------------------- data


def dataset_path(folder: Path, split: str, task: Task) -> Path:
    return folder / (f"{split}.h5" if task.param is None else f"{split}-param{task.param:g}.h5")


def generate_data(experiment: str, preset: BoundaryPreset, folder: Path, seed: int) -> None:
    """Write a multi-step ``train`` and ``test`` file per parameter value (skipping existing ones).

    Arrays: ``inputs`` (N, X), ``outputs`` (N, T, X) and, unless periodic, ``left``/``right``
    boundary data (N, T); grid ``x`` (X,), ``t`` (T,); params: the problem's per-sample draws.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for task in TASKS[experiment]:
        options = {}
        if task.param is not None:
            options[_PARAM_OPTIONS[experiment][0]] = task.param
        for split, num_samples, split_seed in (
            ("train", preset.num_train, seed),
            ("test", preset.num_test, seed + 1),  # other draws than training
        ):
            path = dataset_path(folder, split, task)
            if path.exists():
                continue
            data = make_boundary_dataset(
                experiment,
                num_samples,
                preset.resolution,
                torch.Generator().manual_seed(split_seed),
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
                problem=experiment,
                grid={"x": data["x"], "t": data["t"]},
                metadata={"split": split, "seed": split_seed, **options},
            )


def task_tensors(
    stored: StoredDataset,
    task: Task,
    count: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> list[Tensor]:
    """``[inputs, targets, *boundary data]`` of the first ``count`` samples, in ``dtype``, laid
    out for the task's operator: single-step ``(N, 1, X)`` with data ``(N,)``; multi-step
    ``(N, 1, X, T)`` (u0 repeated over t) with data ``(N, T)``."""
    initial = stored.arrays["inputs"][:count]  # (N, X)
    frames = stored.arrays["outputs"][:count]  # (N, T, X)
    ends = [stored.arrays[end][:count] for end in ("left", "right") if end in stored.arrays]
    if task.multistep:
        num_frames = frames.shape[1]
        inputs = initial[:, None, :, None].expand(-1, -1, -1, num_frames)  # (N, 1, X, T)
        targets = frames.transpose(1, 2)[:, None]  # (N, 1, X, T)
    else:
        inputs = initial[:, None]  # (N, 1, X)
        targets = frames[:, None, -1]  # (N, 1, X): the last frame
        ends = [values[:, -1] for values in ends]  # (N,)
    return [tensor.to(dtype).contiguous() for tensor in (inputs, targets, *ends)]


# ---------------------------------------------------------------------------------- train


class PlainOperator(nn.Module):
    """An FNO called like the boundary-aware models; it does not look at the boundary data."""

    def __init__(self, fno: nn.Module) -> None:
        super().__init__()
        self.fno = fno

    def forward(self, x: Tensor, left: Tensor | None = None, right: Tensor | None = None) -> Tensor:
        return self.fno(x)


def model_conditions(experiment: str) -> BoundaryConditions:
    """The problem's conditions along x of the task's field: ``(batch, 1, x[, t])``."""
    conditions = BOUNDARY_PROBLEMS[experiment].conditions
    return replace(conditions, axis=2)  # x is axis 2 of (batch, channels, x) and (..., x, t)


def build_model(method: str, experiment: str, task: Task, settings: OperatorSettings) -> nn.Module:
    conditions = model_conditions(experiment)
    if task.multistep:
        fno: FNO1d | FNO2d = FNO2d(
            1,
            1,
            settings.width,
            settings.modes,
            settings.modes_time,
            padding=settings.time_padding,
            projection_width=settings.projection_width,
        )
    else:
        fno = FNO1d(
            1, 1, settings.width, settings.modes, projection_width=settings.projection_width
        )
    if method == "FNO":
        return PlainOperator(fno)
    if method == "FNO+overwrite":
        return BoundaryOverwrite(fno, conditions)
    if method == "BOON":
        if isinstance(fno, FNO2d):
            return BoundaryCorrectedFNO2d(fno, conditions)
        return BoundaryCorrectedFNO1d(fno, conditions)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def operator_settings(preset: BoundaryPreset, task: Task) -> OperatorSettings:
    return preset.multi_step if task.multistep else preset.single_step


def train(
    experiment: str,
    preset: BoundaryPreset,
    data_folder: Path,
    folder: Path,
    device: str,
    seed: int,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: None,
    num_devices: int = 1,
) -> bool:
    """Train every method of every task; weights land in ``folder/TASK/{fno,...}.pt``.

    Methods of a task start from the same initial FNO weights (same seed) and see the same
    batches in the same order. Existing weights are kept (a rerun resumes). Returns whether
    this is the main process (always, unless training data-parallel), which alone writes.
    """
    is_main = is_main_process()
    for task in TASKS[experiment]:
        settings = operator_settings(preset, task)
        tensors = task_tensors(
            load_dataset(dataset_path(data_folder, "train", task)), task, settings.num_train
        )
        for method in METHODS:
            is_main = train_operator(
                method,
                experiment,
                task,
                preset,
                tensors,
                folder / task.label / _WEIGHT_FILES[method],
                device,
                seed,
                progress,
                log,
                num_devices,
            )
    return is_main


def train_operator(
    method: str,
    experiment: str,
    task: Task,
    preset: BoundaryPreset,
    tensors: list[Tensor],
    weights_path: Path,
    device: str,
    seed: int,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: None,
    num_devices: int = 1,
) -> bool:
    """Train one operator on ``tensors`` (see :func:`task_tensors`) into ``weights_path``.

    ``seed`` sets the initial weights and the batch order. Skipped if the weights exist;
    checkpoints go beside them, so an interrupted run resumes. Returns whether this is the
    main process.
    """
    if weights_path.exists():
        return is_main_process()
    settings = operator_settings(preset, task)
    torch.manual_seed(seed)
    model = build_model(method, experiment, task, settings)
    module = OperatorModule(
        model,
        learning_rate=preset.learning_rate,
        weight_decay=preset.weight_decay,
        lr_step_epochs=settings.lr_step_epochs,
        lr_gamma=preset.lr_gamma,
    )
    loader = DataLoader(
        TensorDataset(*tensors),
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    started = time.perf_counter()
    train_settings = TrainSettings(
        max_epochs=settings.epochs, device=device, progress=progress, num_devices=num_devices
    )
    checkpoints = weights_path.parent / f"checkpoints-{weights_path.stem}"
    is_main = fit(module, loader, train_settings, checkpoints)
    if is_main:
        torch.save(model.state_dict(), weights_path)
        log(f"trained {method} ({task.label}) in {time.perf_counter() - started:.0f} s")
    return is_main


def load_operator(
    method: str, experiment: str, task: Task, settings: OperatorSettings, path: Path
) -> nn.Module:
    """A trained operator from ``path``, in eval mode; a named error if it is not there."""
    if not path.exists():
        raise FileNotFoundError(f"no trained {method} at {path}: run the 'train' stage first")
    model = build_model(method, experiment, task, settings)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def load_trained(
    experiment: str, preset: BoundaryPreset, folder: Path, task: Task
) -> dict[str, nn.Module]:
    settings = operator_settings(preset, task)
    return {
        method: load_operator(
            method, experiment, task, settings, folder / task.label / _WEIGHT_FILES[method]
        )
        for method in METHODS
    }


# ---------------------------------------------------------------------------------- evaluate


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


def predict(model: nn.Module, tensors: list[Tensor], batch_size: int) -> Tensor:
    """The model on ``[inputs, targets, *boundary]`` in batches, in float64 afterwards."""
    inputs, _, *boundary = tensors
    with torch.no_grad():
        chunks = [
            model(
                inputs[start : start + batch_size],
                *(b[start : start + batch_size] for b in boundary),
            )
            for start in range(0, inputs.shape[0], batch_size)
        ]
    return torch.cat(chunks).double()


def _boundary_metrics(
    field: Tensor, conditions: BoundaryConditions, spacing: float
) -> dict[str, Tensor]:
    """Per-sample boundary errors: by the conditions' stencils, and (Neumann) a 4th-order flux."""
    metrics = {"boundary_error": boundary_error(field, conditions, spacing)}
    if any(isinstance(end, Neumann) for end in (conditions.left, conditions.right)):
        metrics["flux_error_4th_order"] = neumann_flux_error(field, conditions, spacing)
    return metrics


def evaluate_task(
    experiment: str, preset: BoundaryPreset, data_folder: Path, model_folder: Path, task: Task
) -> tuple[list[MetricRow], TaskEvaluation]:
    stored = load_dataset(dataset_path(data_folder, "test", task))
    # Metrics against the solver's float64 data; the models see it in float32, as in training.
    exact = task_tensors(stored, task, dtype=torch.float64)
    truth, boundary = exact[1], exact[2:]
    model_tensors = [tensor.float() for tensor in exact]
    models = load_trained(experiment, preset, model_folder, task)
    settings = operator_settings(preset, task)
    conditions = model_conditions(experiment)
    if boundary:
        conditions = conditions.with_values(*boundary)
    x, t = stored.grid["x"], stored.grid["t"]
    spacing = float(x[1] - x[0])
    rows, predictions, error_over_time = [], {}, {}
    for method, model in models.items():
        prediction = predict(model, model_tensors, settings.batch_size)
        predictions[method] = prediction
        per_sample = {
            "rel_l2": relative_l2(prediction.flatten(1), truth.flatten(1)),  # (N,)
            **_boundary_metrics(prediction, conditions, spacing),
        }
        if task.multistep:
            error_over_time[method] = relative_l2(prediction[:, 0], truth[:, 0], dims=(-2,))
        summaries = {name: summarize(values) for name, values in per_sample.items()}
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


def evaluate(
    experiment: str, preset: BoundaryPreset, data_folder: Path, model_folder: Path
) -> tuple[list[MetricRow], list[TaskEvaluation]]:
    rows, evaluations = [], []
    for task in TASKS[experiment]:
        task_rows, evaluation = evaluate_task(experiment, preset, data_folder, model_folder, task)
        rows += task_rows
        evaluations.append(evaluation)
    return rows, evaluations


# ---------------------------------------------------------------------------------- run


def run(
    experiment: str,
    preset_name: str,
    out: Path,
    device: str = "cpu",
    seed: int = 0,
    reference: Path | None = None,
    stages: tuple[str, ...] = ("data", "train", "evaluate"),
    progress: bool = True,
    log: Callable[[str], None] = lambda message: None,
    num_devices: int = 1,
) -> dict | None:
    """The whole job for one boundary experiment; returns the ``metrics.json`` content.

    With ``num_devices > 1`` only the main process evaluates; the others return ``None``.
    """
    if experiment not in TASKS:
        raise ValueError(
            f"unknown boundary experiment {experiment!r}; choose one of {BOUNDARY_EXPERIMENTS}"
        )
    if reference is not None:
        raise ValueError(
            f"--reference is not supported for the boundary experiment {experiment!r}: there are "
            "no published checkpoints for it; run without --reference to train"
        )
    preset = select_preset(PRESETS, preset_name)
    record_settings(out, experiment, preset_name, preset, seed)
    data_folder, model_folder = out / "data", out / "models"
    # Every stage needs the data; files already there are kept, missing ones are written.
    log(f"{experiment} data in {data_folder}")
    generate_data(experiment, preset, data_folder, seed)
    if "train" in stages:
        log(f"training {', '.join(METHODS)}")
        is_main = train(
            experiment, preset, data_folder, model_folder, device, seed, progress, log, num_devices
        )
        if not is_main:
            return None  # not the main process of a data-parallel run
    if "evaluate" not in stages:
        return None
    log("evaluating all methods")
    rows, evaluations = evaluate(experiment, preset, data_folder, model_folder)
    return _write_outputs(experiment, preset_name, out, rows, evaluations)


def _write_outputs(
    experiment: str,
    preset_name: str,
    out: Path,
    rows: list[MetricRow],
    evaluations: list[TaskEvaluation],
) -> dict:
    figures = _draw_figures(experiment, evaluations, out)
    over_time = {
        evaluation.task.label: {
            "t": evaluation.t.tolist(),
            **{m: e.mean(0).tolist() for m, e in evaluation.error_over_time.items()},
        }
        for evaluation in evaluations
        if evaluation.task.multistep
    }
    if over_time:
        (out / "error_over_time.json").write_text(json.dumps(over_time, indent=2) + "\n")
    metrics = write_metrics(out / "metrics.json", experiment, preset_name, rows)
    columns = ["rel_l2", "boundary_error"]
    if any("flux_error_4th_order" in row.values for row in rows):
        columns.append("flux_error_4th_order")
    write_report(
        out / "report.md",
        title=f"lawful: {experiment} ({preset_name})",
        rows=rows,
        columns=columns,
        param_name=_PARAM_OPTIONS.get(experiment, ("", "param"))[1],
        figures=figures,
        notes=_notes(evaluations),
    )
    return metrics


def _draw_figures(experiment: str, evaluations: list[TaskEvaluation], out: Path) -> dict[str, Path]:
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
        if experiment == "heat-neumann":
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
