"""The lid-driven cavity end to end: BOON on the flow, and exact walls, zero flux through every
cut and calibrated uncertainty at once.

Data: flows from rest in the unit square (lawful.pdes.cavity), the lid at y = 1 driven at
``U(t) = 1 + a sin(2 pi f t)``, with the Reynolds number, ``a`` and ``f`` drawn per flow; 25
frames up to t = 2. The operators map what drives a flow (Re / 1000, a and f, as constant
channels over (x, y, t)) to its velocity (u, v) at the 25 frames, an FNO over (x, y, t)
zero-padded on t.

What we do differently from the published experiment, and why: BOON's paper learns the
vorticity and takes the wall vorticity from the true solution, at training and test time (an
oracle: a cavity's wall vorticity is not known in advance), on data of an unreleased solver. We
learn the velocity, whose wall data is known exactly in advance (the lid moves at U(t) on its
interior nodes; every other wall value, the corners included, is 0), and make the data with our
own validated solver.

Methods (:data:`METHODS`), trained on the same data from the same initial weights and batches:

- ``FNO``: the plain operator;
- ``FNO+overwrite``: its output's wall entries set to the wall data, in training too;
- ``FNO+data``: given the lid speed U(t) as one more input channel, not held to it;
- ``BOON``: every Fourier layer and the output meet the walls (lawful.operators.boon, the joint
  solve on four walls). u and v have different wall data and a hidden layer's channels are
  neither, so hidden layers are held to zero walls and the wall data is added at the output
  (:class:`WithWallData`; it is nonzero on wall nodes only): exact on every wall and frame.

Then the composition: ``num_members`` FNOs and BOONs (member 0 the table's model, member j from
seed ``seed + j``) make Gaussian beliefs over each frame's velocity (the members' low-rank
sample covariance plus the ensemble mean's squared training error on the diagonal), conditioned
(ProbConserv) on :func:`~lawful.pdes.cavity.cavity_constraint`: zero net flux through every cut
and the wall data, together, so the prediction has exact walls, no net flux and uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from lawful.constraints.update import condition
from lawful.data.store import StoredDataset, save_dataset
from lawful.experiments.boundary import (
    BoundaryExperiment,
    BoundaryPreset,
    OperatorMethod,
    Task,
    dataset_path,
)
from lawful.experiments.registry import RunSettings, register
from lawful.experiments.report import MetricRow, write_metrics, write_report
from lawful.metrics import crps_gaussian, interval_coverage, relative_l2, summarize
from lawful.models.ensemble import ensemble_belief
from lawful.operators.boon import BoundaryCorrectedFNO, BoundaryOverwrite
from lawful.operators.fno import FNOxyt
from lawful.pdes.cavity import (
    CAVITY_WALLS,
    OscillatingLid,
    cavity_constraint,
    cut_fluxes,
    divergence,
    sample_cavity_flows,
    solve_cavity,
    vorticity,
    wall_velocity,
)
from lawful.plots import animate_field_images, plot_error_over_time, plot_field, plot_field_images
from lawful.training.operator import (
    BoundaryDataInput,
    OperatorSettings,
    PlainOperator,
    predict_operator,
)

__all__ = ["CAVITY", "METHODS", "PRESETS", "CavityExperiment", "CavityPreset", "WithWallData"]

_REYNOLDS_SCALE = 1000.0  # Re / 1000 is the operators' input channel: order one
_PARAMETERS = ("reynolds", "amplitude", "frequency")
TASK = Task("multi-step")
MEMBER_METHODS = ("FNO", "BOON")


class WithWallData(nn.Module):
    """``model(x) + the velocity's wall data``: for a ``model`` held to zero on every wall (BOON
    or the overwrite on :data:`~lawful.pdes.cavity.CAVITY_WALLS`), the sum is the wall data on
    the walls and the model's output inside. Called as ``(x, lid_speed)``, ``lid_speed``
    ``(batch, T)``; ``model`` maps ``(batch, C, n, n, T)`` to ``(batch, 2, n, n, T)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, lid_speed: Tensor) -> Tensor:
        output = self.model(x)  # (batch, 2, n, n, T), zero on the walls
        return output + wall_velocity(lid_speed, x.shape[2]).to(output)


METHODS: dict[str, OperatorMethod] = {
    "FNO": OperatorMethod(lambda fno, walls: PlainOperator(fno), "fno.pt"),
    "FNO+overwrite": OperatorMethod(
        lambda fno, walls: WithWallData(BoundaryOverwrite(fno, walls)), "fno-overwrite.pt"
    ),
    "FNO+data": OperatorMethod(
        lambda fno, walls: BoundaryDataInput(fno), "fno-data.pt", reads_boundary_data=True
    ),
    "BOON": OperatorMethod(
        lambda fno, walls: WithWallData(BoundaryCorrectedFNO(fno, walls)), "boon.pt"
    ),
}


@dataclass(frozen=True)
class CavityPreset(BoundaryPreset):
    """Sizes of the data (``resolution`` nodes per side, odd), operators and ensembles.

    ``reference_resolution``: a finer grid (``(r - 1)`` a multiple of ``(resolution - 1)``) on
    which the first ``reference_flows`` test flows are solved again, to state the data's own
    discretisation error beside the models'.
    """

    num_members: int = 3
    reynolds_range: tuple[float, float] = (100.0, 1000.0)
    num_frames: int = 25
    final_time: float = 2.0
    reference_resolution: int = 129
    reference_flows: int = 2

    def __post_init__(self) -> None:
        if self.resolution % 2 == 0 or (self.reference_resolution - 1) % (self.resolution - 1):
            raise ValueError(
                f"need an odd resolution (the cut-flux rule) and a reference resolution r with "
                f"r - 1 a multiple of resolution - 1; got {self.resolution}, "
                f"{self.reference_resolution}"
            )
        if self.num_members < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {self.num_members}")

    @property
    def times(self) -> Tensor:
        """The output times ``(T,)``: ``num_frames`` equal steps up to ``final_time``."""
        steps = torch.arange(1, self.num_frames + 1, dtype=torch.float64)
        return self.final_time * steps / self.num_frames


def _operator(num_train: int, width: int, modes: int, epochs: int, **rest) -> OperatorSettings:
    return OperatorSettings(
        num_train=num_train,
        width=width,
        modes=modes,
        modes_time=rest.pop("modes_time", modes),
        time_padding=rest.pop("time_padding", 4),
        projection_width=rest.pop("projection_width", 32),
        epochs=epochs,
        batch_size=rest.pop("batch_size", 10),
        lr_step_epochs=rest.pop("lr_step_epochs", max(1, epochs // 3)),
        **rest,
    )


_UNUSED = _operator(0, 4, 2, 1)  # the cavity task is multi-step only

PRESETS: dict[str, CavityPreset] = {
    # Minutes on 2 CPU cores.
    "quick": CavityPreset(
        num_train=80,
        num_test=30,
        resolution=33,
        single_step=_UNUSED,
        multi_step=_operator(80, 10, 6, 14, learning_rate=3e-3),
    ),
    # About the published experiment's sizes; meant for a GPU (--device cuda).
    "paper": CavityPreset(
        num_train=1000,
        num_test=200,
        resolution=65,
        single_step=_UNUSED,
        multi_step=_operator(
            1000, 20, 12, 300, modes_time=8, time_padding=6, projection_width=128, batch_size=20
        ),
        num_members=5,
        reference_resolution=257,
    ),
    # For tests of the whole pipeline: seconds.
    "tiny": CavityPreset(
        num_train=6,
        num_test=3,
        resolution=9,
        single_step=_UNUSED,
        multi_step=_operator(6, 6, 3, 2, time_padding=2, projection_width=8, batch_size=3),
        num_frames=5,
        final_time=0.5,
        reference_resolution=17,
        reference_flows=1,
    ),
}


@dataclass
class CavityEvaluation:
    """What the figures and the report need from one evaluation of the test split."""

    x: Tensor  # (n,)
    t: Tensor  # (T,)
    truth: Tensor  # (N, 2, n, n, T) float64
    predictions: dict[str, Tensor]  # method -> like truth
    error_over_time: dict[str, dict[str, Tensor]]  # quantity -> method -> (N, T)
    data_floor: dict[str, float]  # the solver data's own scores
    discretisation_error: float  # the data against a finer solve, relative L2
    reference_resolution: int  # the finer solve's nodes per side


class CavityExperiment(BoundaryExperiment):
    """``lawful run cavity``: the lid-driven cavity (module docstring)."""

    kind = "lid-driven cavity (BOON on four walls, ensembles + ProbConserv)"

    def __init__(self) -> None:
        super().__init__("cavity", None, (TASK,), presets=PRESETS, methods=METHODS)

    @property
    def conditions(self):  # type: ignore[override]  # the walls the operators hold (zero data)
        return CAVITY_WALLS

    # ------------------------------------------------------------------------------ data

    def generate_data(self, preset: CavityPreset, folder: Path, seed: int) -> None:  # type: ignore[override]
        """A ``train`` and a ``test`` file of flows (skipping those already there)."""
        folder.mkdir(parents=True, exist_ok=True)
        for split, num_samples, split_seed in (
            ("train", preset.num_train, seed),
            ("test", preset.num_test, seed + 1),
        ):
            path = dataset_path(folder, split, TASK)
            if path.exists():
                continue
            flow, lid = sample_cavity_flows(
                num_samples,
                preset.resolution,
                preset.times,
                torch.Generator().manual_seed(split_seed),
                reynolds_range=preset.reynolds_range,
            )
            params = torch.stack([flow.reynolds, lid.amplitude, lid.frequency], -1)  # (N, 3)
            save_dataset(
                path,
                {"u": flow.u, "v": flow.v, "lid_speed": flow.lid_speed},
                params,
                list(_PARAMETERS),
                problem=self.name,
                grid={"x": flow.x, "y": flow.y, "t": flow.t},
                metadata={"split": split, "seed": split_seed},
            )

    def tensors(
        self,
        stored: StoredDataset,
        task: Task,
        count: int | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> list[Tensor]:
        """``[inputs (N, 3, n, n, T), velocity (N, 2, n, n, T), lid speed (N, T)]``."""
        u, v = stored.arrays["u"][:count], stored.arrays["v"][:count]  # (N, T, n, n)
        velocity = torch.stack([u, v], 1).permute(0, 1, 3, 4, 2)  # (N, 2, n, n, T)
        drive = stored.params[:count] / torch.tensor([_REYNOLDS_SCALE, 1.0, 1.0])  # (N, 3)
        inputs = drive[:, :, None, None, None].expand(-1, -1, *velocity.shape[2:])
        lid_speed = stored.arrays["lid_speed"][:count]  # (N, T)
        return [t.to(dtype).contiguous() for t in (inputs, velocity, lid_speed)]

    # ------------------------------------------------------------------------------ models

    def build_model(self, method: str, task: Task, preset: BoundaryPreset) -> nn.Module:
        definition = self.method(method)
        settings = preset.operator(task)
        fno = FNOxyt(
            len(_PARAMETERS) + (1 if definition.reads_boundary_data else 0),
            2,
            settings.width,
            settings.modes,
            settings.modes,
            settings.modes_time,
            padding=settings.time_padding,
            projection_width=settings.projection_width,
        )
        return definition.wrap(fno, CAVITY_WALLS)

    def _member_path(self, folder: Path, method: str, member: int) -> Path:
        """Member 0 is the method's own model; the others are ensemble members only."""
        if member == 0:
            return folder / TASK.label / self.method(method).weights_file
        return folder / TASK.label / "members" / f"{method.lower()}-{member}.pt"

    def train(  # type: ignore[override]
        self, preset: CavityPreset, data_folder: Path, folder: Path, settings: RunSettings
    ) -> bool:
        """The four methods, then the other ensemble members of the FNO and BOON."""
        is_main = super().train(preset, data_folder, folder, settings)
        tensors = self.tensors(
            self.load_split(data_folder, "train", TASK), TASK, preset.operator(TASK).num_train
        )
        for method in MEMBER_METHODS:
            for member in range(1, preset.num_members):
                is_main = self.train_model(
                    method,
                    TASK,
                    preset,
                    tensors,
                    self._member_path(folder, method, member),
                    settings.seed + member,
                    settings,
                )
        return is_main

    # ------------------------------------------------------------------------------ evaluate

    def evaluate_task(  # type: ignore[override]
        self, preset: CavityPreset, data_folder: Path, model_folder: Path, task: Task
    ) -> tuple[list[MetricRow], CavityEvaluation]:
        stored = self.load_split(data_folder, "test", task)
        exact = self.tensors(stored, task, dtype=torch.float64)
        truth, lid_speed = exact[1], exact[2]  # (N, 2, n, n, T), (N, T)
        model_tensors = [tensor.float() for tensor in exact]
        x, t = stored.grid["x"], stored.grid["t"]
        predictions = self.predict(preset, model_folder, task, model_tensors)
        rows = []
        error_over_time: dict[str, dict[str, Tensor]] = {"velocity": {}, "vorticity": {}}
        for method, prediction in predictions.items():
            rows.append(_row(method, _scores(prediction, truth, lid_speed)))
            error_over_time["velocity"][method] = _velocity_error_over_time(prediction, truth)
            error_over_time["vorticity"][method] = _vorticity_error_over_time(prediction, truth)
        state_truth = _state(truth)  # (N, T, 2 n^2)
        beliefs = self._beliefs(
            preset, data_folder, model_folder, model_tensors, lid_speed, predictions
        )
        for method, (mean, variance) in beliefs.items():
            scores = _scores(_from_state(mean, truth.shape[2]), truth, lid_speed)
            scores["crps"] = crps_gaussian(mean, variance, state_truth).mean(-1)
            scores["coverage"] = interval_coverage(mean, variance, state_truth).mean(-1)
            rows.append(_row(method, scores))
        floor = {name: float(values.mean()) for name, values in _floor(truth, lid_speed).items()}
        evaluation = CavityEvaluation(
            x,
            t,
            truth,
            predictions,
            error_over_time,
            floor,
            _discretisation_error(preset, stored, truth),
            preset.reference_resolution,
        )
        return rows, evaluation

    def _beliefs(
        self,
        preset: CavityPreset,
        data_folder: Path,
        model_folder: Path,
        test: list[Tensor],
        lid_speed: Tensor,
        predictions: dict[str, Tensor],
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """The FNO and BOON ensembles over each test frame's velocity, before and after the
        update on :func:`~lawful.pdes.cavity.cavity_constraint`: method -> (mean, variance),
        each ``(N, T, 2 n^2)``.

        A posterior's covariance holds one factor column per constraint row, ``(T, 2 n^2, k)``
        per flow (0.14 GB for one quick flow), so flows are conditioned one at a time and only
        their means and variances kept. ``test`` is the models' float32 input, ``lid_speed`` the
        float64 wall data ``(N, T)``; member 0 of each ensemble is the method's own model, whose
        test ``predictions`` are at hand.
        """
        num_train = preset.operator(TASK).num_train
        train = self.tensors(self.load_split(data_folder, "train", TASK), TASK, num_train)
        train_truth = _state(train[1].double())  # (N_train, T, 2 n^2)
        n = test[1].shape[2]
        batch_size = preset.operator(TASK).batch_size
        beliefs = {}
        for method in MEMBER_METHODS:
            on_train, on_test = [], [_state(predictions[method])]
            for member in range(preset.num_members):
                path = self._member_path(model_folder, method, member)
                model = self.load_model(method, TASK, preset, path)
                on_train.append(_state(predict_operator(model, train, batch_size)))
                if member > 0:
                    on_test.append(_state(predict_operator(model, test, batch_size)))
            noise_variance = (torch.stack(on_train).mean(0) - train_truth).square().mean()
            members = torch.stack(on_test)  # (K, N, T, 2 n^2)
            priors, posteriors = [], []
            for flow in range(members.shape[1]):
                one = slice(flow, flow + 1)
                prior = ensemble_belief(members[:, one], noise_variance)  # over (1, T, 2 n^2)
                posterior = condition(prior, cavity_constraint(lid_speed[one], n))
                priors.append((prior.mean, prior.variance()))
                posteriors.append((posterior.mean, posterior.variance()))
            for name, moments in (
                (f"{method}-Ens", priors),
                (f"ProbConserv-{method}-Ens", posteriors),
            ):
                means, variances = zip(*moments, strict=True)
                beliefs[name] = (torch.cat(means), torch.cat(variances))  # (N, T, 2 n^2) each
        return beliefs

    # ------------------------------------------------------------------------------ outputs

    def _write_outputs(  # type: ignore[override]
        self,
        preset_name: str,
        out: Path,
        rows: list[MetricRow],
        evaluations: list[CavityEvaluation],
    ) -> dict:
        (evaluation,) = evaluations
        figures = _draw_figures(evaluation, out)
        metrics = write_metrics(out / "metrics.json", self.name, preset_name, rows)
        floor = ", ".join(f"{name} {value:.2e}" for name, value in evaluation.data_floor.items())
        notes = (
            "Test-set means ± one standard error over the flows. rel_l2: relative L2 error of "
            "the velocity (u, v) over the grid and the frames; vorticity_rel_l2: the same for "
            "the vorticity v_x - u_y the velocity implies (central differences, interior "
            "nodes). wall_error: the largest |velocity - wall data| on any wall node and "
            "frame. flux_error: the largest |net flux| through any cut (integral of u dy at "
            "each x, of v dx at each y; the odd-node rule, by which the solver's flows carry "
            "none) over the frames. divergence: root mean square of the central-difference "
            "divergence. crps and coverage (of the central 95 % interval; 0.95 when "
            "calibrated): the ensembles' Gaussian beliefs per velocity entry. ProbConserv "
            "conditions each frame of an ensemble on zero flux through every cut and the wall "
            "data together. Predictions are float32, metrics and the update float64. The "
            f"solver's data itself scores {floor}; against the same flows solved on a "
            f"{evaluation.reference_resolution}^2 grid it is off by "
            f"{evaluation.discretisation_error:.2e} (relative L2 of the velocity): the data's "
            "own discretisation error."
        )
        write_report(
            out / "report.md",
            title=f"lawful: {self.name} ({preset_name})",
            rows=rows,
            columns=(
                "rel_l2",
                "vorticity_rel_l2",
                "wall_error",
                "flux_error",
                "divergence",
                "crps",
                "coverage",
            ),
            param_name="param",
            figures=figures,
            notes=notes,
        )
        return metrics


def _state(field: Tensor) -> Tensor:
    """A velocity ``(N, 2, n, n, T)`` as frames of states ``(N, T, 2 n^2)``, [component, x, y]
    flattened, the layout of :func:`~lawful.pdes.cavity.cavity_constraint`."""
    return field.permute(0, 4, 1, 2, 3).flatten(2)


def _from_state(state: Tensor, n: int) -> Tensor:
    """:func:`_state` undone: ``(N, T, 2 n^2)`` -> ``(N, 2, n, n, T)``."""
    return state.unflatten(-1, (2, n, n)).permute(0, 2, 3, 4, 1)


def _vorticity(field: Tensor) -> Tensor:
    """The vorticity of a velocity ``(N, 2, n, n, T)`` at the interior nodes ``(N, n-2, n-2,
    T)``."""
    frames = field.movedim(-1, 1)  # (N, T, 2, n, n)
    w = vorticity(frames[:, :, 0], frames[:, :, 1], 1 / (field.shape[2] - 1))  # (N, T, ., .)
    return w.movedim(1, -1)


def _wall_error(field: Tensor, lid_speed: Tensor) -> Tensor:
    """Per flow, the largest |velocity - wall data| on a wall node: ``(N,)``."""
    gap = (field - wall_velocity(lid_speed, field.shape[2]).to(field)).abs()  # (N, 2, n, n, T)
    walls = torch.cat(
        [gap[:, :, 0], gap[:, :, -1], gap[:, :, :, 0], gap[:, :, :, -1]], -2
    )  # (N, 2, 4n, T)
    return walls.flatten(1).amax(1)


def _flux_error(field: Tensor) -> Tensor:
    """Per flow, the largest |net flux| through a cut (odd-node rule) over the frames: ``(N,)``."""
    frames = field.movedim(-1, 1)  # (N, T, 2, n, n)
    grid = torch.linspace(0, 1, field.shape[2], dtype=field.dtype)
    fluxes = cut_fluxes(frames[:, :, 0], frames[:, :, 1], grid, grid, rule="odd-nodes")
    return torch.cat(fluxes, -1).abs().flatten(1).amax(1)  # (N, T, 2n) -> (N,)


def _divergence(field: Tensor) -> Tensor:
    """Per flow, the root mean square of the central-difference divergence: ``(N,)``."""
    frames = field.movedim(-1, 1)  # (N, T, 2, n, n)
    div = divergence(frames[:, :, 0], frames[:, :, 1], 1 / (field.shape[2] - 1))
    return div.square().flatten(1).mean(1).sqrt()


def _floor(truth: Tensor, lid_speed: Tensor) -> dict[str, Tensor]:
    return {
        "wall_error": _wall_error(truth, lid_speed),
        "flux_error": _flux_error(truth),
        "divergence": _divergence(truth),
    }


def _scores(field: Tensor, truth: Tensor, lid_speed: Tensor) -> dict[str, Tensor]:
    """Per-flow scores of a predicted velocity ``(N, 2, n, n, T)``: name -> ``(N,)``."""
    return {
        "rel_l2": relative_l2(field.flatten(1), truth.flatten(1)),
        "vorticity_rel_l2": relative_l2(_vorticity(field).flatten(1), _vorticity(truth).flatten(1)),
        **_floor(field, lid_speed),
    }


def _row(method: str, scores: dict[str, Tensor]) -> MetricRow:
    summaries = {name: summarize(values, name) for name, values in scores.items()}
    return MetricRow.from_summaries(method, None, summaries, TASK.kind)


def _velocity_error_over_time(field: Tensor, truth: Tensor) -> Tensor:
    """Relative L2 of the velocity per flow and frame: ``(N, T)``."""
    return relative_l2(field.flatten(1, 3), truth.flatten(1, 3), dims=(-2,))


def _vorticity_error_over_time(field: Tensor, truth: Tensor) -> Tensor:
    """Relative L2 of the implied vorticity per flow and frame: ``(N, T)``."""
    return relative_l2(_vorticity(field).flatten(1, 2), _vorticity(truth).flatten(1, 2), dims=(-2,))


def _discretisation_error(preset: CavityPreset, stored: StoredDataset, truth: Tensor) -> float:
    """Mean relative L2 of the data's velocity against the same flows (the first
    ``reference_flows`` test flows) solved on the reference grid, at the data's nodes."""
    count = min(preset.reference_flows, truth.shape[0])
    reynolds, amplitude, frequency = stored.params[:count].unbind(-1)  # (count,) each
    lid = OscillatingLid(torch.ones_like(amplitude), amplitude, frequency)
    fine = solve_cavity(reynolds, lid, preset.reference_resolution, stored.grid["t"])
    stride = (preset.reference_resolution - 1) // (preset.resolution - 1)
    reference = torch.stack([fine.u, fine.v], 1)[..., ::stride, ::stride]  # (c, 2, T, n, n)
    reference = reference.permute(0, 1, 3, 4, 2)  # (c, 2, n, n, T)
    return float(relative_l2(truth[:count].flatten(1), reference.flatten(1)).mean())


def _draw_figures(evaluation: CavityEvaluation, out: Path) -> dict[str, Path]:
    """The first frame's vorticity; truth, FNO, FNO+data and BOON vorticity with their errors at
    three frames and as an animation; the relative errors over time (test flow 0 and mean)."""
    x, t = evaluation.x, evaluation.t
    interior = x[1:-1]  # the vorticity's nodes
    truth = _vorticity(evaluation.truth[:1])[0]  # (n-2, n-2, T): test flow 0
    shown = {
        method: _vorticity(evaluation.predictions[method][:1])[0]
        for method in ("FNO", "FNO+data", "BOON")
    }
    figures = {
        "vorticity at the first frame": plot_field(
            interior,
            truth[..., 0],
            f"test flow 0: vorticity at t = {float(t[0]):.3g} (from rest)",
            out / "vorticity-first-frame.png",
            "vorticity",
        )
    }
    num_frames = t.numel()
    for frame in dict.fromkeys((0, num_frames // 2, num_frames - 1)):
        label = f"{float(t[frame]):.3g}"
        figures[f"vorticity at t = {label}"] = plot_field_images(
            interior,
            truth[..., frame],
            {method: field[..., frame] for method, field in shown.items()},
            f"cavity, test flow 0, vorticity at t = {label}",
            out / f"vorticity-t{frame + 1}.png",
            "vorticity",
        )
    for quantity, errors in evaluation.error_over_time.items():
        figures[f"{quantity} error over time"] = plot_error_over_time(
            t,
            {method: torch.stack([e[0], e.mean(0)]) for method, e in errors.items()},
            [f"{quantity}: test flow 0", f"{quantity}: test mean"],
            out / f"{quantity}_error_over_time.png",
        )
    animate_field_images(
        interior,
        truth,
        shown,
        t,
        "cavity, test flow 0, vorticity",
        out / "vorticity.gif",
        "vorticity",
    )
    figures["animation"] = out / "vorticity.gif"
    return figures


CAVITY = register(CavityExperiment())
