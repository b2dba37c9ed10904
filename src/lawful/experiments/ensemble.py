"""Composed experiments: boundary-corrected operator ensembles, then the conservation update.

Exact boundaries and exact conservation with uncertainty, in one pipeline. K Fourier neural
operators (plain ``FNO`` or boundary-corrected ``BOON``), trained from K seeds on the tasks of a
BOON problem (single-step ``u0 -> u(t_final)`` and multi-step ``u0 -> u(t_1..t_25)``), make a
Gaussian belief per output frame: the members' mean and sample covariance (low rank) plus a
diagonal noise variance, the ensemble mean's squared error on the training data. Each frame's
belief is then conditioned (ProbConserv) on its total mass, known exactly from the initial
condition and the fluxes through the ends
(:attr:`~lawful.pdes.boundary_problems.BoundaryProblem.mass_change`), stacked with the end
conditions as constraint rows, so the update conserves mass without moving the ends off their
conditions.

Methods: ``FNO-Ens``, ``ProbConserv-FNO-Ens``, ``BOON-Ens``, ``ProbConserv-BOON-Ens``.
Experiments: ``heat-neumann-ensemble`` (flux through the right end: the mass changes by a
known amount) and ``burgers-periodic-ensemble`` (the mass is that of u0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lawful.beliefs import GaussianBelief
from lawful.constraints.boundary import boundary_constraint
from lawful.constraints.conservation import mass_constraint, stack_constraints
from lawful.constraints.quadrature import trapezoid_weights
from lawful.constraints.update import condition
from lawful.experiments import boundary
from lawful.experiments._runs import begin_run
from lawful.experiments.boundary import BoundaryExperiment, Task
from lawful.experiments.registry import RunSettings, register
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
from lawful.plots import plot_profiles
from lawful.training.operator import predict_operator
from lawful.training.trainer import is_main_process

__all__ = [
    "ENSEMBLE_EXPERIMENTS",
    "METHODS",
    "PRESETS",
    "EnsembleExperiment",
    "EnsemblePreset",
]

MEMBER_METHODS = ("FNO", "BOON")
METHODS = ("FNO-Ens", "ProbConserv-FNO-Ens", "BOON-Ens", "ProbConserv-BOON-Ens")


@dataclass(frozen=True)
class EnsemblePreset:
    operators: boundary.BoundaryPreset  # data sizes and each member's architecture and budget
    num_members: int


PRESETS = {
    "quick": EnsemblePreset(boundary.PRESETS["quick"], num_members=5),
    "paper": EnsemblePreset(boundary.PRESETS["paper"], num_members=10),
    "tiny": EnsemblePreset(boundary.PRESETS["tiny"], num_members=2),
}


def _member_path(folder: Path, task: Task, method: str, member: int) -> Path:
    return folder / task.label / f"{method.lower()}-{member}.pt"


@dataclass
class _Split:
    """One split of a task's data, its fields laid out as frames: ``(N, F, X)``.

    Single-step tasks have one frame (the last output time); multi-step ones all of them.
    """

    model_inputs: list[Tensor]  # float32, as operator_tensors lays them out
    initial: Tensor  # (N, X)
    truth: Tensor  # (N, F, X)
    ends: list[Tensor]  # left, right boundary data, (N, F) each; empty if periodic
    x: Tensor  # (X,)
    times: Tensor  # (F,)
    options: dict[str, float]  # the sampler's options the data was made with (none: defaults)


def _as_frames(field: Tensor) -> Tensor:
    """An operator's field ``(N, 1, X)`` or ``(N, 1, X, T)`` as frames ``(N, F, X)``."""
    field = field[:, 0]
    return field.unsqueeze(1) if field.ndim == 2 else field.transpose(-1, -2)


@dataclass
class TaskEvaluation:
    task: Task
    rows: list[MetricRow]
    x: Tensor  # (X,)
    truth: Tensor  # (N, F, X)
    beliefs: dict[str, GaussianBelief]  # method -> over (N, F, X)
    data_floor: dict[str, float]  # the solver data's own boundary and mass errors


class EnsembleExperiment:
    """Ensembles of the FNOs and BOONs of boundary experiment ``base``, then the update.

    ``base``'s problem must know its mass: ``mass_change`` (the fluxes through its ends are
    known in advance).
    """

    kind = "boundaries and conservation (BOON ensemble + ProbConserv)"

    def __init__(
        self,
        name: str,
        base: BoundaryExperiment,
        presets: dict[str, EnsemblePreset] = PRESETS,
    ) -> None:
        if getattr(base.problem, "mass_change", None) is None:
            raise ValueError(
                f"experiment {name!r}: the problem of {base.name!r} has no known mass change, "
                "so there is no conservation constraint to condition on"
            )
        self.name, self.base, self.presets = name, base, presets

    def train(
        self, preset: EnsemblePreset, data_folder: Path, folder: Path, settings: RunSettings
    ) -> bool:
        """Train ``num_members`` FNOs and BOONs per task, member j from seed ``seed + j``.

        Returns whether this is the main process (which alone wrote the weights).
        """
        is_main = is_main_process()
        for task in self.base.tasks:
            stored = self.base.load_split(data_folder, "train", task)
            tensors = self.base.tensors(stored, task, preset.operators.operator(task).num_train)
            for method in MEMBER_METHODS:
                for member in range(preset.num_members):
                    is_main = self.base.train_model(
                        method,
                        task,
                        preset.operators,
                        tensors,
                        _member_path(folder, task, method, member),
                        settings.seed + member,
                        settings,
                    )
        return is_main

    def _load_split(self, data_folder: Path, split: str, task: Task, count: int | None) -> _Split:
        stored = self.base.load_split(data_folder, split, task)
        tensors = self.base.tensors(stored, task, count, dtype=torch.float64)
        ends = tensors[2:]  # (N, T) multi-step, (N,) single-step
        return _Split(
            [tensor.float() for tensor in tensors],
            stored.arrays["inputs"][:count],
            _as_frames(tensors[1]),
            [end if task.multistep else end.unsqueeze(-1) for end in ends],  # (N, F)
            stored.grid["x"],
            stored.grid["t"] if task.multistep else stored.grid["t"][-1:],
            {key: value for key, value in stored.metadata.items() if key not in ("split", "seed")},
        )

    def _member_predictions(
        self,
        preset: EnsemblePreset,
        folder: Path,
        task: Task,
        method: str,
        splits: tuple[_Split, ...],
    ) -> list[Tensor]:
        """Every member's prediction on each of ``splits``: ``(K, N, F, X)`` each, in float64.

        Each member is loaded once and predicts every split.
        """
        batch_size = preset.operators.operator(task).batch_size
        predictions: list[list[Tensor]] = [[] for _ in splits]
        for member in range(preset.num_members):
            path = _member_path(folder, task, method, member)
            model = self.base.load_model(method, task, preset.operators, path)
            for split, per_split in zip(splits, predictions, strict=True):
                prediction = predict_operator(model, split.model_inputs, batch_size)
                per_split.append(_as_frames(prediction))
        return [torch.stack(per_split) for per_split in predictions]  # (K, N, F, X) each

    def evaluate_task(
        self, preset: EnsemblePreset, data_folder: Path, model_folder: Path, task: Task
    ) -> TaskEvaluation:
        """Each ensemble before and after the update, on the test split; per-sample metrics.

        Every frame is conditioned on its own mass and end conditions; the ensemble's
        covariance is kept within frames (as ProbConserv treats each time slice). Coupling the
        frames through the members' sample covariance across time did worse on the quick runs
        (a five-member estimate of 1625 x 1625 correlations is mostly noise): relative L2
        1.91e-2 against 1.58e-2 for the heat FNOs, 2.06e-2 against 2.00e-2 for the Burgers
        BOONs.
        """
        num_train = preset.operators.operator(task).num_train
        train = self._load_split(data_folder, "train", task, num_train)
        test = self._load_split(data_folder, "test", task, None)
        x = test.x
        spacing = float(x[1] - x[0])
        conditions = self.base.conditions
        if test.ends:
            conditions = conditions.with_values(*test.ends)  # (N, F) per end
        mass_change = self.base.problem.mass_change  # not None: checked in __init__
        initial_mass = test.initial @ trapezoid_weights(x)  # (N,)
        true_mass = initial_mass[:, None] + mass_change(test.times, **test.options)  # (N, F)
        constraint = stack_constraints(
            mass_constraint(x, true_mass),  # 1 row per frame
            boundary_constraint(conditions, x.numel(), spacing),  # 1 (periodic) or 2 per frame
        )

        beliefs: dict[str, GaussianBelief] = {}
        for method in MEMBER_METHODS:
            on_train, members = self._member_predictions(
                preset, model_folder, task, method, (train, test)
            )  # (K, N_train, F, X), (K, N, F, X)
            noise_variance = (on_train.mean(0) - train.truth).square().mean()
            prior = ensemble_belief(members, noise_variance)  # over (N, F, X)
            beliefs[f"{method}-Ens"] = prior
            beliefs[f"ProbConserv-{method}-Ens"] = condition(prior, constraint)

        def end_errors(field: Tensor) -> Tensor:
            """Per-sample boundary error of frames ``(N, F, X)``, laid out as (N, 1, X, F)."""
            return boundary_error(field.transpose(-1, -2)[:, None], conditions, spacing)

        rows = []
        truth = test.truth
        for method in METHODS:
            mean, variance = beliefs[method].mean, beliefs[method].variance()  # (N, F, X) each
            per_sample = {
                "rel_l2": relative_l2(mean.flatten(1), truth.flatten(1)),
                "boundary_error": end_errors(mean),
                "ce": conservation_error(mean, x, true_mass).mean(-1),
                "ll": gaussian_log_likelihood(mean, variance, truth).mean(-1),
                "crps": crps_gaussian(mean, variance, truth).mean(-1),
                "coverage": interval_coverage(mean, variance, truth).mean(-1),
            }
            summaries = {name: summarize(values, name) for name, values in per_sample.items()}
            rows.append(MetricRow.from_summaries(method, None, summaries, task.kind))
        floor = {
            "boundary_error": float(end_errors(truth).mean()),
            "ce": float(conservation_error(truth, x, true_mass).abs().max()),
        }
        return TaskEvaluation(task, rows, x, truth, beliefs, floor)

    def run(self, settings: RunSettings) -> dict | None:
        """The whole job for one composed experiment; returns the ``metrics.json`` content."""
        preset = begin_run(self, settings)
        out, log = settings.out, settings.log
        data_folder, model_folder = out / "data", out / "models"
        # Every stage needs the data; files already there are kept, missing ones are written.
        log(f"{self.base.name} data in {data_folder}")
        self.base.generate_data(preset.operators, data_folder, settings.seed)
        if "train" in settings.stages:
            log(f"training {preset.num_members} FNOs and {preset.num_members} BOONs")
            if not self.train(preset, data_folder, model_folder, settings):
                return None
        if "evaluate" not in settings.stages:
            return None
        log("evaluating the ensembles before and after the conservation update")
        evaluations = [
            self.evaluate_task(preset, data_folder, model_folder, task) for task in self.base.tasks
        ]
        conditions = self.base.conditions
        ends = f"{type(conditions.left).__name__} / {type(conditions.right).__name__} ends"
        return _write_outputs(self.name, settings.preset, out, ends, evaluations)


def _write_outputs(
    experiment: str,
    preset_name: str,
    out: Path,
    ends: str,
    evaluations: list[TaskEvaluation],
) -> dict:
    figures = {}
    for evaluation in evaluations:
        # The methods agree to the eye on u itself: draw each mean's error at the last frame,
        # with its ±2σ band.
        cases = min(3, evaluation.truth.shape[0])
        truth = evaluation.truth[:cases, -1]  # (cases, X)
        label = evaluation.task.label
        figures[f"error of the mean ({label}, last frame)"] = plot_profiles(
            evaluation.x,
            torch.zeros_like(truth),
            {
                method: (belief.mean[:cases, -1] - truth, belief.variance()[:cases, -1])
                for method, belief in evaluation.beliefs.items()
            },
            [f"{label}, test sample {case}" for case in range(cases)],
            out / f"errors-{label}.png",
            ylabel="mean - exact u",
        )
    rows = [row for evaluation in evaluations for row in evaluation.rows]
    metrics = write_metrics(out / "metrics.json", experiment, preset_name, rows)
    floors = "; ".join(
        f"{e.task.label}: boundary_error {e.data_floor['boundary_error']:.2e}, |ce| at most "
        f"{e.data_floor['ce']:.2e}"
        for e in evaluations
    )
    notes = (
        f"{ends}. Test-set means ± one standard error; multi-step metrics are means over the "
        "frames. rel_l2: relative L2 error of the mean over x (and t). boundary_error: mean "
        "|residual| of the end conditions (as in the BOON experiments). ce: trapezoid mass of "
        "the mean minus the exact mass (signed). ll: mean over x of the Gaussian log-density of "
        "the truth. crps: continuous ranked probability score. coverage: fraction of x where "
        "the truth lies in the central 95 % interval (0.95 when calibrated). The ensembles' "
        "variance: the members' sample variance plus the ensemble mean's squared error on the "
        "training data. ProbConserv conditions every frame on its mass and end conditions "
        f"together. The solver data itself scores {floors}."
    )
    write_report(
        out / "report.md",
        title=f"lawful: {experiment} ({preset_name})",
        rows=rows,
        columns=("rel_l2", "boundary_error", "ce", "ll", "crps", "coverage"),
        param_name="param",
        figures=figures,
        notes=notes,
    )
    return metrics


ENSEMBLE_EXPERIMENTS: dict[str, EnsembleExperiment] = {
    name: register(EnsembleExperiment(name, boundary.BOUNDARY_EXPERIMENTS[base]))
    for name, base in (
        ("heat-neumann-ensemble", "heat-neumann"),
        ("burgers-periodic-ensemble", "burgers-periodic"),
    )
}
