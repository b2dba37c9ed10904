"""Composed experiments: boundary-corrected operator ensembles, then the conservation update.

Exact boundaries and exact conservation with uncertainty, in one pipeline. K Fourier neural
operators (plain ``FNO`` or boundary-corrected ``BOON``), trained from K seeds on the single-step
task of a BOON problem (``u0 -> u(t_final)``), make a Gaussian belief: the members' mean and
sample covariance (low rank) plus a diagonal noise variance, the ensemble mean's squared error
on the training data. The belief is then conditioned (ProbConserv) on the total mass, known
exactly from the initial condition and the fluxes through the ends
(:attr:`~lawful.pdes.boundary_problems.BoundaryProblem.mass_change`), stacked with the end
conditions as constraint rows, so the update conserves mass without moving the ends off their
conditions.

Methods: ``FNO-Ens``, ``ProbConserv-FNO-Ens``, ``BOON-Ens``, ``ProbConserv-BOON-Ens``.
Experiments: ``heat-neumann-ensemble`` (flux through the right end: the mass changes by a
known amount) and ``burgers-periodic-ensemble`` (the mass is that of u0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lawful.beliefs import GaussianBelief
from lawful.constraints.boundary import BoundaryConditions, boundary_constraint
from lawful.constraints.conservation import mass_constraint, stack_constraints
from lawful.constraints.quadrature import trapezoid_weights
from lawful.constraints.update import condition
from lawful.data.store import load_dataset
from lawful.experiments import boundary
from lawful.experiments._runs import record_settings, select_preset
from lawful.experiments.report import MetricRow, write_metrics, write_report
from lawful.metrics import (
    boundary_error,
    conservation_error,
    crps_gaussian,
    gaussian_log_likelihood,
    interval_coverage,
    relative_l2,
    summarize,
)
from lawful.models.ensemble import ensemble_belief
from lawful.pdes.boundary_problems import BOUNDARY_PROBLEMS
from lawful.plots import plot_profiles

__all__ = ["ENSEMBLE_EXPERIMENTS", "METHODS", "PRESETS", "EnsemblePreset", "evaluate", "run"]

# Experiment -> the BOON problem it is built on (one whose mass is known from its input).
ENSEMBLE_EXPERIMENTS = {
    "heat-neumann-ensemble": "heat-neumann",
    "burgers-periodic-ensemble": "burgers-periodic",
}
MEMBER_METHODS = ("FNO", "BOON")
METHODS = ("FNO-Ens", "ProbConserv-FNO-Ens", "BOON-Ens", "ProbConserv-BOON-Ens")
TASK = boundary.Task("single-step")


@dataclass(frozen=True)
class EnsemblePreset:
    operators: boundary.BoundaryPreset  # data sizes and each member's architecture and budget
    num_members: int


PRESETS = {
    "quick": EnsemblePreset(boundary.PRESETS["quick"], num_members=5),
    "paper": EnsemblePreset(boundary.PRESETS["paper"], num_members=10),
    "tiny": EnsemblePreset(boundary.PRESETS["tiny"], num_members=2),
}


def _member_path(folder: Path, method: str, member: int) -> Path:
    return folder / f"{method.lower()}-{member}.pt"


def train(
    problem: str,
    preset: EnsemblePreset,
    data_folder: Path,
    folder: Path,
    device: str,
    seed: int,
    progress: bool = True,
    log: Callable[[str], None] = lambda message: None,
    num_devices: int = 1,
) -> bool:
    """Train ``num_members`` FNOs and BOONs, member j from seed ``seed + j``; returns is-main."""
    settings = boundary.operator_settings(preset.operators, TASK)
    stored = load_dataset(boundary.dataset_path(data_folder, "train", TASK))
    tensors = boundary.task_tensors(stored, TASK, settings.num_train)
    is_main = True
    for method in MEMBER_METHODS:
        for member in range(preset.num_members):
            is_main = boundary.train_operator(
                method,
                problem,
                TASK,
                preset.operators,
                tensors,
                _member_path(folder, method, member),
                device,
                seed + member,
                progress,
                log,
                num_devices,
            )
    return is_main


def _member_predictions(
    problem: str, preset: EnsemblePreset, folder: Path, method: str, tensors: list[Tensor]
) -> Tensor:
    """Every member's prediction on ``tensors`` (as :func:`boundary.task_tensors` lays them
    out, float32): ``(K, N, X)`` in float64."""
    settings = boundary.operator_settings(preset.operators, TASK)
    predictions = []
    for member in range(preset.num_members):
        path = _member_path(folder, method, member)
        if not path.exists():
            raise FileNotFoundError(f"no trained {method} member at {path}: train first")
        model = boundary.build_model(method, problem, TASK, settings)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        prediction = boundary.predict(model.eval(), tensors, settings.batch_size)  # (N, 1, X)
        predictions.append(prediction[:, 0])
    return torch.stack(predictions)  # (K, N, X)


@dataclass
class EnsembleEvaluation:
    rows: list[MetricRow]
    x: Tensor  # (X,)
    truth: Tensor  # (N, X)
    beliefs: dict[str, GaussianBelief]  # method -> (N, X)
    data_floor: dict[str, float]  # the solver data's own boundary and mass errors


def _split(problem: str, data_folder: Path, split: str, count: int | None):
    """Float64 ``[inputs (N, 1, X), targets (N, 1, X), *end data (N,)]``, the grid and t."""
    stored = load_dataset(boundary.dataset_path(data_folder, split, TASK))
    tensors = boundary.task_tensors(stored, TASK, count, dtype=torch.float64)
    return tensors, stored.grid["x"], stored.grid["t"][-1]


def evaluate(
    problem: str, preset: EnsemblePreset, data_folder: Path, model_folder: Path
) -> EnsembleEvaluation:
    """Each ensemble before and after the update, on the test split; per-sample metrics."""
    settings = boundary.operator_settings(preset.operators, TASK)
    train_tensors, _, _ = _split(problem, data_folder, "train", settings.num_train)
    test_tensors, x, t_final = _split(problem, data_folder, "test", None)
    inputs, targets, *end_data = test_tensors
    truth = targets[:, 0]  # (N, X)
    spacing = float(x[1] - x[0])
    conditions = boundary.model_conditions(problem, TASK)
    if end_data:
        conditions = conditions.with_values(*end_data)  # (N,) per end
    mass_change = BOUNDARY_PROBLEMS[problem].mass_change
    assert mass_change is not None  # the registry lists only problems with a known mass
    true_mass = inputs[:, 0] @ trapezoid_weights(x) + mass_change(t_final)  # (N,)
    constraint = stack_constraints(
        mass_constraint(x, true_mass),  # 1 row
        boundary_constraint(conditions, x.numel(), spacing),  # 1 (periodic) or 2 rows
    )

    beliefs: dict[str, GaussianBelief] = {}
    for method in MEMBER_METHODS:
        on_train = _member_predictions(
            problem, preset, model_folder, method, [t.float() for t in train_tensors]
        )  # (K, N_train, X)
        noise_variance = (on_train.mean(0) - train_tensors[1][:, 0]).square().mean()
        members = _member_predictions(
            problem, preset, model_folder, method, [t.float() for t in test_tensors]
        )  # (K, N, X)
        prior = ensemble_belief(members, noise_variance)
        beliefs[f"{method}-Ens"] = prior
        beliefs[f"ProbConserv-{method}-Ens"] = condition(prior, constraint)

    rows = []
    for method in METHODS:
        mean, variance = beliefs[method].mean, beliefs[method].variance()  # (N, X) each
        per_sample = {
            "rel_l2": relative_l2(mean, truth),
            "boundary_error": boundary_error(mean[:, None], conditions, spacing),
            "ce": conservation_error(mean, x, true_mass),
            "ll": gaussian_log_likelihood(mean, variance, truth),
            "crps": crps_gaussian(mean, variance, truth),
            "coverage": interval_coverage(mean, variance, truth),
        }
        summaries = {name: summarize(values) for name, values in per_sample.items()}
        rows.append(MetricRow.from_summaries(method, None, summaries, TASK.kind))
    floor = {
        "boundary_error": float(boundary_error(truth[:, None], conditions, spacing).mean()),
        "ce": float(conservation_error(truth, x, true_mass).abs().max()),
    }
    return EnsembleEvaluation(rows, x, truth, beliefs, floor)


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
    """The whole job for one composed experiment; returns the ``metrics.json`` content."""
    if experiment not in ENSEMBLE_EXPERIMENTS:
        raise ValueError(
            f"unknown ensemble experiment {experiment!r}; choose one of "
            f"{sorted(ENSEMBLE_EXPERIMENTS)}"
        )
    if reference is not None:
        raise ValueError(
            f"--reference is not supported for {experiment!r}: there are no published "
            "checkpoints for it; run without --reference to train"
        )
    problem = ENSEMBLE_EXPERIMENTS[experiment]
    preset = select_preset(PRESETS, preset_name)
    record_settings(out, experiment, preset_name, preset, seed)
    data_folder, model_folder = out / "data", out / "models"
    if "data" in stages or not data_folder.exists():
        log(f"generating {problem} data into {data_folder}")
        boundary.generate_data(problem, preset.operators, data_folder, seed)
    if "train" in stages:
        log(f"training {preset.num_members} FNOs and {preset.num_members} BOONs")
        is_main = train(
            problem, preset, data_folder, model_folder, device, seed, progress, log, num_devices
        )
        if not is_main:
            return None
    if "evaluate" not in stages:
        return None
    log("evaluating the ensembles before and after the conservation update")
    evaluation = evaluate(problem, preset, data_folder, model_folder)
    return _write_outputs(experiment, preset_name, out, conditions_name(problem), evaluation)


def conditions_name(problem: str) -> str:
    conditions: BoundaryConditions = BOUNDARY_PROBLEMS[problem].conditions
    return f"{type(conditions.left).__name__} / {type(conditions.right).__name__} ends"


def _write_outputs(
    experiment: str, preset_name: str, out: Path, ends: str, evaluation: EnsembleEvaluation
) -> dict:
    # The methods agree to the eye on u itself: draw each mean's error, with its ±2σ band.
    cases = min(3, evaluation.truth.shape[0])
    truth = evaluation.truth[:cases]  # (cases, X)
    figure = plot_profiles(
        evaluation.x,
        torch.zeros_like(truth),
        {
            method: (belief.mean[:cases] - truth, belief.variance()[:cases])
            for method, belief in evaluation.beliefs.items()
        },
        [f"test sample {case}" for case in range(cases)],
        out / "errors.png",
        ylabel="mean - exact u",
    )
    metrics = write_metrics(out / "metrics.json", experiment, preset_name, evaluation.rows)
    notes = (
        f"Single-step task ({ends}), test-set means ± one standard error. rel_l2: relative L2 "
        "error of the mean. boundary_error: mean |residual| of the end conditions (as in the "
        "BOON experiments). ce: trapezoid mass of the mean minus the exact mass (signed). ll: "
        "mean over x of the Gaussian log-density of the truth. crps: continuous ranked "
        "probability score. coverage: fraction of x where the truth lies in the central 95 % "
        "interval (0.95 when calibrated). The ensembles' variance: the members' sample variance "
        "plus the ensemble mean's squared error on the training data. ProbConserv conditions on "
        "the mass and the end conditions together. The solver data itself scores boundary_error "
        f"{evaluation.data_floor['boundary_error']:.2e} and |ce| at most "
        f"{evaluation.data_floor['ce']:.2e}."
    )
    write_report(
        out / "report.md",
        title=f"lawful: {experiment} ({preset_name})",
        rows=evaluation.rows,
        columns=("rel_l2", "boundary_error", "ce", "ll", "crps", "coverage"),
        param_name="param",
        figures={"error of the mean": figure},
        notes=notes,
    )
    return metrics
