"""Conservation experiments (ProbConserv): data -> black boxes -> conservation update -> report.

One definition serves the five problems of the generalized porous-medium family and the paper's
appendix (``heat``, ``pme``, ``stefan``, ``advection``, ``burgers``). The stages are separate
functions so the command line can run them alone; each writes into the output folder and is
skipped when its output is already there (a rerun resumes instead of starting over).

Methods compared (names as the paper writes them):

- ``ANP``: the attentive neural process trained on the ELBO;
- ``SoftC-ANP``: the ANP trained with the PDE residual as a penalty;
- ``HardC-ANP``: the ANP's mean projected onto the constraint with an identity covariance;
- ``ProbConserv-ANP``: the ANP's Gaussian conditioned on the constraint (zero constraint noise);
- ``GP`` and ``ProbConserv-GP``: an exact GP on the context points, before and after the update.

The update is applied to each latent sample's Gaussian; the samples are then combined.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from lawful.beliefs import GaussianBelief
from lawful.constraints.conservation import LinearConstraint, mass_constraint
from lawful.constraints.quadrature import trapezoid_weights
from lawful.constraints.update import condition, project_identity, sample_posterior
from lawful.data.published import load_published_test_set
from lawful.data.sampling import FunctionSets, evaluation_grid, make_function_sets
from lawful.data.store import load_dataset, save_dataset
from lawful.experiments._runs import in_precision, record_settings
from lawful.experiments.registry import RunSettings, register, select_preset
from lawful.experiments.report import MetricRow, write_metrics, write_report
from lawful.metrics import (
    conservation_error,
    crps_gaussian,
    first_crossing,
    gaussian_log_likelihood,
    interval_coverage,
    mean_squared_error,
    summarize,
)
from lawful.models.anp import AttentiveNeuralProcess, combine_samples, load_published_state_dict
from lawful.models.gp import fit_gp, gp_belief
from lawful.pdes.conservation import ConservationProblem, get_conservation_problem
from lawful.plots import plot_mass_over_time, plot_profiles, plot_shock_histograms
from lawful.training.neural_process import NeuralProcessModule
from lawful.training.trainer import (
    TrainSettings,
    fit,
    is_main_process,
    load_weights,
    save_weights,
)

__all__ = [
    "CONSERVATION_EXPERIMENTS",
    "CONSTRAINED_METHODS",
    "PRESETS",
    "TRAINED_METHODS",
    "ConservationExperiment",
    "ConservationPreset",
    "ConstraintUpdate",
    "evaluate",
    "generate_data",
    "train",
]

METHOD_ORDER = ("ANP", "SoftC-ANP", "HardC-ANP", "ProbConserv-ANP", "GP", "ProbConserv-GP")
_ARRAY_NAMES = ("input_contexts", "output_contexts", "input_targets", "output_targets")


@dataclass(frozen=True)
class TrainedANP:
    """An ANP the experiment trains: its objective (lawful.training.neural_process) and file."""

    objective: str  # "elbo" or "softc"
    weights_file: str


TRAINED_METHODS = {
    "ANP": TrainedANP("elbo", "anp.pt"),
    "SoftC-ANP": TrainedANP("softc", "pinp.pt"),  # the published checkpoint's name
}


@dataclass(frozen=True)
class ConstraintUpdate:
    """A method made from another's belief and the constraint: its belief, and draws from it."""

    apply: Callable[[GaussianBelief, LinearConstraint], GaussianBelief]
    draw: Callable[[GaussianBelief, LinearConstraint, int, torch.Generator], Tensor]


def _draw_projected(
    prior: GaussianBelief, constraint: LinearConstraint, count: int, generator: torch.Generator
) -> Tensor:
    return project_identity(prior, constraint).sample(count, generator)


HARDC = ConstraintUpdate(project_identity, _draw_projected)
PROBCONSERV = ConstraintUpdate(condition, sample_posterior)
CONSTRAINED_METHODS: dict[str, dict[str, ConstraintUpdate]] = {
    # base method -> the methods made from its belief, in the order they draw.
    "ANP": {"HardC-ANP": HARDC, "ProbConserv-ANP": PROBCONSERV},
    "GP": {"ProbConserv-GP": PROBCONSERV},
}


@dataclass(frozen=True)
class ConservationPreset:
    num_train_functions: int
    num_test_functions: int  # per test parameter
    batch_size: int
    epochs: int
    learning_rate: float
    # Anneal the learning rate to zero over the run (cosine); the paper keeps it constant.
    cosine_decay: bool
    hidden_dim: int
    latent_dim: int
    num_heads: int
    num_eval_points: int  # x points at t*
    num_latent_samples: int  # at t*, for the metrics
    num_mass_samples: int  # at the other times, for the mass-over-time figure
    num_mass_times: int  # time slices of the mass-over-time figure
    num_shock_draws: int  # posterior draws per latent sample for the shock histogram
    # The residual of a sharp front is large; at weight 1 it swamps the likelihood and the
    # SoftC-ANP collapses to a constant (which solves the PDE). 0.01 keeps it a fair baseline.
    softc_weight: float
    gp_iterations: int


PRESETS = {
    # Minutes on 2 CPU cores, and already shows the effect.
    "quick": ConservationPreset(
        num_train_functions=400,
        num_test_functions=20,
        batch_size=40,
        epochs=40,
        # 400 steps: a high rate annealed to zero trains further than a low constant one, and
        # the last weights do not depend on where the final noisy step happened to land.
        learning_rate=1e-3,
        cosine_decay=True,
        hidden_dim=64,
        latent_dim=64,
        num_heads=4,
        num_eval_points=201,
        num_latent_samples=50,
        num_mass_samples=10,
        num_mass_times=11,
        num_shock_draws=20,
        softc_weight=0.01,
        gp_iterations=60,
    ),
    # The paper's settings; meant for a GPU (--device cuda).
    "paper": ConservationPreset(
        num_train_functions=10_000,
        num_test_functions=50,
        batch_size=250,
        epochs=500,
        learning_rate=1e-4,
        cosine_decay=False,
        hidden_dim=128,
        latent_dim=128,
        num_heads=4,
        num_eval_points=201,
        num_latent_samples=100,
        num_mass_samples=20,
        num_mass_times=21,
        num_shock_draws=20,
        softc_weight=0.01,
        gp_iterations=100,
    ),
    # For tests of the whole pipeline: seconds.
    "tiny": ConservationPreset(
        num_train_functions=16,
        num_test_functions=3,
        batch_size=8,
        epochs=1,
        learning_rate=1e-3,
        cosine_decay=True,
        hidden_dim=16,
        latent_dim=16,
        num_heads=2,
        num_eval_points=21,
        num_latent_samples=4,
        num_mass_samples=2,
        num_mass_times=3,
        num_shock_draws=2,
        softc_weight=0.01,
        gp_iterations=3,
    ),
}


# ---------------------------------------------------------------------------------- data


def generate_data(
    problem: ConservationProblem, preset: ConservationPreset, folder: Path, seed: int
) -> tuple[Path, Path]:
    """Write ``train.h5`` (parameters ~ U(param_range)) and ``test.h5`` (each test parameter).

    Both splits come from one generator, train first, so a split written alone (the other
    already on disk, e.g. after an interrupted run) is drawn as it would have been with both:
    the same seed always gives the same files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = {split: folder / f"{split}.h5" for split in ("train", "test")}
    if all(path.exists() for path in paths.values()):
        return paths["train"], paths["test"]
    generator = torch.Generator().manual_seed(seed)
    train_params = problem.sample_params(preset.num_train_functions, generator)
    test_params = torch.tensor(problem.test_params).repeat_interleave(preset.num_test_functions)
    for split, params in (("train", train_params), ("test", test_params)):
        sets = make_function_sets(problem, params, generator)
        if not paths[split].exists():
            save_dataset(
                paths[split],
                {name: getattr(sets, name) for name in _ARRAY_NAMES},
                sets.params,
                [problem.param_name],
                problem=problem.name,
                metadata={"split": split, "seed": seed},
            )
    return paths["train"], paths["test"]


def load_function_sets(path: Path) -> FunctionSets:
    stored = load_dataset(path)
    return FunctionSets(*(stored.arrays[name] for name in _ARRAY_NAMES), stored.params)


# ---------------------------------------------------------------------------------- train


def build_anp(preset: ConservationPreset) -> AttentiveNeuralProcess:
    return AttentiveNeuralProcess(
        hidden_dim=preset.hidden_dim, latent_dim=preset.latent_dim, num_heads=preset.num_heads
    )


def train(
    problem: ConservationProblem,
    preset: ConservationPreset,
    train_sets: FunctionSets,
    folder: Path,
    device: str,
    seed: int,
    progress: bool = True,
    num_devices: int = 1,
) -> dict[str, AttentiveNeuralProcess] | None:
    """Train the ANP (ELBO) and the SoftC-ANP; their weights land in ``folder/{anp,pinp}.pt``.

    Under data-parallel training every process trains; only the main one writes the weights,
    and the others get ``None``.
    """
    models = {}
    is_main = is_main_process()
    for method, trained in TRAINED_METHODS.items():
        objective, weights_path = trained.objective, folder / trained.weights_file
        torch.manual_seed(seed)  # the initial weights too: a rerun trains the same models
        model = build_anp(preset)
        identity = _anp_identity(problem, method, preset)
        if weights_path.exists():
            load_weights(model, weights_path, method, identity)
        else:
            module = NeuralProcessModule(
                model,
                problem,
                objective=objective,
                learning_rate=preset.learning_rate,
                softc_weight=preset.softc_weight,
                cosine_decay=preset.cosine_decay,
            )
            loader = DataLoader(
                TensorDataset(
                    *(getattr(train_sets, name).float() for name in (*_ARRAY_NAMES, "params"))
                ),
                batch_size=preset.batch_size,
                shuffle=True,
                generator=torch.Generator().manual_seed(seed),
            )
            settings = TrainSettings(
                max_epochs=preset.epochs,
                device=device,
                progress=progress,
                gradient_clip=1.0,
                num_devices=num_devices,
            )
            checkpoints = folder / f"checkpoints-{objective}"
            is_main = fit(module, loader, settings, checkpoints, identity=identity)
            if is_main:
                save_weights(model, weights_path, identity)
        models[method] = model.eval()
    return models if is_main else None


# ---------------------------------------------------------------------------------- evaluate


@dataclass
class MethodPrediction:
    """A method's combined Gaussian on the evaluation grid, and draws for the shock histogram."""

    mean: Tensor  # (B, times, X); the last time is t*
    variance: Tensor  # (B, times, X)
    draws: Tensor  # (draws, B, X) at t*


def _anp_predictions(
    problem: ConservationProblem,
    models: dict[str, AttentiveNeuralProcess],
    sets: FunctionSets,
    times: Tensor,
    grid: Tensor,
    true_mass: Tensor,
    preset: ConservationPreset,
    generator: torch.Generator,
    progress: bool,
) -> dict[str, MethodPrediction]:
    """ANP-family predictions at each of ``times`` (the last is t*) on ``grid``.

    At t* with ``num_latent_samples`` latent draws (the metrics); earlier times with
    ``num_mass_samples`` (only the mass of the mean is plotted there).
    """
    slices: dict[str, list[tuple[Tensor, Tensor]]] = {}
    draws: dict[str, Tensor] = {}
    progress_bar = tqdm(times.tolist(), desc="predict", leave=False, disable=not progress)
    for time_index, t in enumerate(progress_bar):
        at_t_star = time_index == times.numel() - 1
        num_samples = preset.num_latent_samples if at_t_star else preset.num_mass_samples
        constraint = mass_constraint(grid, true_mass[:, time_index])  # values (B, 1)
        for method, model in models.items():
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
            targets = evaluation_grid(problem, t, grid.numel())  # (X, 2) as (t, x)
            samples = model.predict_belief(
                sets.input_contexts,
                sets.output_contexts,
                targets.expand(sets.params.shape[0], -1, -1),
                num_samples,
            )  # (S, B, X)
            derived = CONSTRAINED_METHODS.get(method, {})
            beliefs = {method: samples}
            beliefs |= {name: update.apply(samples, constraint) for name, update in derived.items()}
            for name, belief in beliefs.items():
                slices.setdefault(name, []).append(combine_samples(belief.mean, belief.variance()))
            if at_t_star:
                # Draws per latent sample, (draws, S, B, X). ProbConserv's come from its full
                # (low-rank-updated) posterior covariance by Matheron's rule, in O(n) each.
                count = preset.num_shock_draws
                draws[method] = samples.sample(count, generator)
                for name, update in derived.items():
                    draws[name] = update.draw(samples, constraint, count, generator)
    return {
        name: MethodPrediction(
            torch.stack([mean for mean, _ in per_time], 1),
            torch.stack([variance for _, variance in per_time], 1),
            draws[name].reshape(-1, *draws[name].shape[-2:]),  # (draws * S, B, X)
        )
        for name, per_time in slices.items()
    }


def _gp_predictions(
    problem: ConservationProblem,
    sets: FunctionSets,
    times: Tensor,
    grid: Tensor,
    true_mass: Tensor,
    preset: ConservationPreset,
    generator: torch.Generator,
) -> dict[str, MethodPrediction]:
    """Exact GP on the context points, and its conservation update with the full covariance."""
    fitted = fit_gp(
        sets.input_contexts.double(), sets.output_contexts[..., 0].double(), preset.gp_iterations
    )
    num_functions = sets.params.shape[0]
    num_draws = preset.num_shock_draws * preset.num_latent_samples
    derived = CONSTRAINED_METHODS["GP"]
    beliefs: dict[str, list[GaussianBelief]] = {name: [] for name in ("GP", *derived)}
    for time_index, t in enumerate(times.tolist()):
        targets = evaluation_grid(problem, t, grid.numel(), torch.float64)  # (X, 2)
        prior = gp_belief(fitted, targets.expand(num_functions, -1, -1))  # over (B, X), dense
        constraint = mass_constraint(grid, true_mass[:, time_index])
        beliefs["GP"].append(prior)
        for name, update in derived.items():
            beliefs[name].append(update.apply(prior, constraint))
    # From the last slice, t*.
    draws = {"GP": prior.sample(num_draws, generator)}
    draws |= {
        name: update.draw(prior, constraint, num_draws, generator)
        for name, update in derived.items()
    }
    return {
        name: MethodPrediction(
            torch.stack([belief.mean for belief in per_time], 1),
            torch.stack([belief.variance() for belief in per_time], 1),
            draws[name],
        )
        for name, per_time in beliefs.items()
    }


def _functions_at(params: Tensor, param: float) -> Tensor:
    """Mask of the test functions with parameter ``param`` (stored in float32: compare loosely)."""
    selected = torch.isclose(params, torch.tensor(param, dtype=params.dtype), rtol=1e-6)
    if not bool(selected.any()):
        raise ValueError(f"the test set has no function with parameter {param}")
    return selected


@dataclass
class Evaluation:
    rows: list[MetricRow]
    times: Tensor  # (times,)
    grid: Tensor  # (X,)
    truth: Tensor  # (B, times, X)
    true_mass: Tensor  # (B, times)
    params: Tensor  # (B,)
    predictions: dict[str, MethodPrediction]
    true_shock: Tensor | None  # (B,) at t*


def evaluate(
    problem: ConservationProblem,
    models: dict[str, AttentiveNeuralProcess],
    test_sets: FunctionSets,
    preset: ConservationPreset,
    seed: int,
    with_gp: bool,
    progress: bool = True,
) -> Evaluation:
    """Every method's metrics at t*, per test parameter, and the data the figures draw."""
    generator = torch.Generator().manual_seed(seed)
    t_lo = problem.t_domain[0]
    grid = evaluation_grid(problem, problem.t_star, preset.num_eval_points, torch.float64)[:, 1]
    # The last time slice is t*; earlier ones trace the mass over time.
    times = torch.cat(
        [
            torch.linspace(t_lo, problem.t_domain[1], preset.num_mass_times, dtype=torch.float64)[
                1:
            ],
            torch.tensor([problem.t_star], dtype=torch.float64),
        ]
    )
    params = test_sets.params[:, 0].double()
    truth = problem.solution(params[:, None, None], times[None, :, None], grid)  # (B, times, X)
    true_mass = problem.total_mass(params[:, None], times[None, :])  # (B, times)
    predictions = _anp_predictions(
        problem, models, test_sets, times, grid, true_mass, preset, generator, progress
    )
    if with_gp:
        predictions |= _gp_predictions(
            problem, test_sets, times, grid, true_mass, preset, generator
        )
    rows = []
    predictions = {method: predictions[method] for method in METHOD_ORDER if method in predictions}
    for method, prediction in predictions.items():
        mean, variance = prediction.mean[:, -1], prediction.variance[:, -1]  # (B, X) at t*
        per_function = {
            "mse": mean_squared_error(mean, truth[:, -1]),
            "ce": conservation_error(mean, grid, true_mass[:, -1]),
            "ll": gaussian_log_likelihood(mean, variance, truth[:, -1]),
            "crps": crps_gaussian(mean, variance, truth[:, -1]),
            "coverage": interval_coverage(mean, variance, truth[:, -1]),
        }
        for param in problem.test_params:
            selected = _functions_at(params, param)
            summaries = {
                name: summarize(values[selected], name) for name, values in per_function.items()
            }
            rows.append(MetricRow.from_summaries(method, param, summaries))
    true_shock = problem.shock_position(params, torch.tensor(problem.t_star, dtype=torch.float64))
    return Evaluation(rows, times, grid, truth, true_mass, params, predictions, true_shock)


# ---------------------------------------------------------------------------------- run


class ConservationExperiment:
    """A conservation experiment on ``problem``: data, the ANPs, the updates, the report."""

    kind = "conservation (ProbConserv)"

    def __init__(
        self,
        problem: ConservationProblem,
        presets: Mapping[str, ConservationPreset] = PRESETS,
        name: str | None = None,
    ) -> None:
        self.problem, self.presets = problem, presets
        self.name = problem.name if name is None else name

    def run(self, settings: RunSettings) -> dict | None:
        """The whole job; returns the ``metrics.json`` content.

        With ``num_devices > 1`` every process generates the same data (atomic writes make
        that safe) and trains; only the main process evaluates. The others return ``None``.
        """
        problem, out, log = self.problem, settings.out, settings.log
        preset = in_precision(self, select_preset(self, settings.preset), settings)
        if settings.reference is not None:
            return _run_reference(
                problem, out, settings.reference, settings.seed, settings.progress, log
            )
        record_settings(out, self.name, settings.preset, preset, settings.seed, settings.device)
        train_path, test_path = out / "data" / "train.h5", out / "data" / "test.h5"
        if "data" in settings.stages or not (train_path.exists() and test_path.exists()):
            log(f"generating {problem.name} data into {out / 'data'}")
            generate_data(problem, preset, out / "data", settings.seed)
        models = None
        if "train" in settings.stages:
            log(f"training {', '.join(TRAINED_METHODS)}")
            models = train(
                problem,
                preset,
                load_function_sets(train_path),
                out / "models",
                settings.device,
                settings.seed,
                settings.progress,
                settings.num_devices,
            )
            if models is None:
                return None  # not the main process of a data-parallel run
        if "evaluate" not in settings.stages:
            return None
        if models is None:
            models = _load_trained(problem, preset, out / "models")
        log("evaluating all methods")
        evaluation = evaluate(
            problem,
            models,
            load_function_sets(test_path),
            preset,
            settings.seed,
            with_gp=True,
            progress=settings.progress,
        )
        return _write_outputs(problem, settings.preset, out, evaluation)


def _anp_identity(problem: ConservationProblem, method: str, preset: ConservationPreset) -> dict:
    """What a trained ANP is: recorded with its weights and checkpoints, checked on load."""
    return {"experiment": problem.name, "method": method, "settings": asdict(preset)}


def _load_trained(
    problem: ConservationProblem, preset: ConservationPreset, folder: Path
) -> dict[str, AttentiveNeuralProcess]:
    models = {}
    for method, trained in TRAINED_METHODS.items():
        identity = _anp_identity(problem, method, preset)
        path = folder / trained.weights_file
        models[method] = load_weights(build_anp(preset), path, method, identity)
    return models


def _run_reference(
    problem: ConservationProblem,
    out: Path,
    reference: Path,
    seed: int,
    progress: bool,
    log: Callable[[str], None],
) -> dict:
    """Evaluate published checkpoints on the published test set, at the paper's settings."""
    reference = Path(reference)
    models = {}
    for method, trained in TRAINED_METHODS.items():
        path = reference / trained.weights_file
        if path.exists():
            state = torch.load(path, map_location="cpu", weights_only=True)
            model = AttentiveNeuralProcess()  # the published architecture (sizes of the paper)
            model.load_state_dict(load_published_state_dict(state))
            models[method] = model.eval()
        elif method == "ANP":
            raise FileNotFoundError(f"reference folder {reference} has no {trained.weights_file}")
    sets, _ = load_published_test_set(reference / "test.pt")
    log(f"evaluating published checkpoints from {reference} on {sets.params.shape[0]} functions")
    # The paper's evaluation at t* (the paper preset's 100 latent samples); the mass-over-time
    # figure uses fewer latent draws.
    paper = replace(
        PRESETS["paper"],
        num_mass_samples=5,
        num_mass_times=11,
        num_shock_draws=5,
    )
    record_settings(out, problem.name, "reference", paper, seed)
    evaluation = evaluate(problem, models, sets, paper, seed, with_gp=False, progress=progress)
    return _write_outputs(problem, "reference", out, evaluation)


def _write_outputs(
    problem: ConservationProblem, preset_name: str, out: Path, evaluation: Evaluation
) -> dict:
    figures = _draw_figures(problem, evaluation, out)
    metrics = write_metrics(out / "metrics.json", problem.name, preset_name, evaluation.rows)
    write_report(
        out / "report.md",
        title=f"lawful: {problem.name} ({preset_name})",
        rows=evaluation.rows,
        columns=("mse", "ce", "ll", "crps", "coverage"),
        param_name=problem.param_name,
        figures=figures,
        notes=_CONSERVATION_NOTES,
    )
    return metrics


def _draw_figures(
    problem: ConservationProblem, evaluation: Evaluation, out: Path
) -> dict[str, Path]:
    """Profiles, mass over time and shock histograms for the first function of each parameter."""
    first = torch.stack(
        [
            torch.nonzero(_functions_at(evaluation.params, param))[0, 0]
            for param in problem.test_params
        ]
    )  # (cases,)
    titles = [f"{problem.param_name} = {param:g}" for param in problem.test_params]
    predictions = evaluation.predictions
    figures = {
        "profiles": plot_profiles(
            evaluation.grid,
            evaluation.truth[first, -1],
            {name: (p.mean[first, -1], p.variance[first, -1]) for name, p in predictions.items()},
            [f"{title}, t = {problem.t_star:g}" for title in titles],
            out / "profiles.png",
        ),
        "mass over time": plot_mass_over_time(
            evaluation.times[:-1],
            evaluation.true_mass[first, :-1],
            {
                name: p.mean[first, :-1] @ trapezoid_weights(evaluation.grid)
                for name, p in predictions.items()
            },
            titles,
            out / "mass_over_time.png",
        ),
    }
    if evaluation.true_shock is not None:
        figures["shock position"] = plot_shock_histograms(
            {
                name: first_crossing(p.draws[:, first], evaluation.grid).T
                for name, p in predictions.items()
            },
            evaluation.true_shock[first],
            [f"{title}, t = {problem.t_star:g}" for title in titles],
            out / "shock_position.png",
        )
    return figures


_CONSERVATION_NOTES = (
    "Metrics at t*, averaged over the test functions of each parameter (± one standard error). "
    "MSE: mean squared error of the predicted mean over x. CE: trapezoid mass of the mean minus "
    "the exact mass (signed). LL: mean over x of the Gaussian log-density of the truth. CRPS: "
    "continuous ranked probability score (lower is better). coverage: fraction of x where the "
    "truth lies in the central 95 % interval (0.95 when calibrated)."
)


CONSERVATION_EXPERIMENTS: dict[str, ConservationExperiment] = {
    name: register(ConservationExperiment(get_conservation_problem(name)))
    for name in ("heat", "pme", "stefan", "advection", "burgers")
}
