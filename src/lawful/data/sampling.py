"""Context and target points for neural-process training, as in the ProbConserv paper.

Each function (one parameter value) is observed on a ``num_times x num_positions`` space-time
lattice: ``num_positions`` sorted positions drawn uniformly in ``x_domain``, the same positions
at each of ``num_times`` sorted times. Inputs are ``(t, x)`` pairs ordered time-major (all
positions of the first time, then the second time, ...). Context and target lattices are drawn
independently.

Times come in two flavours, both seen in the authors' published PME test set
(shared/reference/probconserv-pme/test.pt): ``"stratified"`` draws one time uniformly in each
of ``num_times`` equal slices of ``t_domain`` (every context set there), ``"uniform"`` draws
``num_times`` independent uniform times and sorts them (every target set there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from lawful.pdes.conservation import ConservationProblem

__all__ = [
    "FunctionSets",
    "TimeSampling",
    "evaluation_grid",
    "make_function_sets",
    "sample_inputs",
]

TimeSampling = Literal["stratified", "uniform"]


@dataclass(frozen=True)
class FunctionSets:
    """Context and target observations of a batch of functions.

    Attributes:
        input_contexts: ``(functions, contexts, 2)`` ``(t, x)`` pairs.
        output_contexts: ``(functions, contexts, 1)`` solution values there.
        input_targets: ``(functions, targets, 2)``.
        output_targets: ``(functions, targets, 1)``.
        params: ``(functions, 1)`` the parameter of each function.
    """

    input_contexts: Tensor
    output_contexts: Tensor
    input_targets: Tensor
    output_targets: Tensor
    params: Tensor

    def __post_init__(self) -> None:
        num_functions = self.params.shape[0]
        if self.params.shape != (num_functions, 1):
            raise ValueError(
                f"params must have shape (functions, 1), got {tuple(self.params.shape)}"
            )
        for kind in ("contexts", "targets"):
            inputs, outputs = getattr(self, f"input_{kind}"), getattr(self, f"output_{kind}")
            if inputs.ndim != 3 or inputs.shape[0] != num_functions or inputs.shape[2] != 2:
                raise ValueError(
                    f"input_{kind} must have shape (functions={num_functions}, points, 2), "
                    f"got {tuple(inputs.shape)}"
                )
            if tuple(outputs.shape) != (*inputs.shape[:2], 1):
                raise ValueError(
                    f"output_{kind} must have shape {(*inputs.shape[:2], 1)} to match "
                    f"input_{kind}, got {tuple(outputs.shape)}"
                )

    def __len__(self) -> int:
        return self.params.shape[0]


def _sample_times(
    problem: ConservationProblem,
    num_functions: int,
    num_times: int,
    time_sampling: TimeSampling,
    generator: torch.Generator | None,
    dtype: torch.dtype,
) -> Tensor:
    """Sorted times, shape ``(functions, times)``."""
    draws = torch.rand(num_functions, num_times, generator=generator, dtype=dtype)
    if time_sampling == "stratified":
        fractions = (torch.arange(num_times, dtype=dtype) + draws) / num_times  # one per slice
    elif time_sampling == "uniform":
        fractions = draws.sort(dim=1).values
    else:
        raise ValueError(f"time_sampling must be 'stratified' or 'uniform', got {time_sampling!r}")
    t_low, t_high = problem.t_domain
    return t_low + (t_high - t_low) * fractions


def sample_inputs(
    problem: ConservationProblem,
    num_functions: int,
    generator: torch.Generator | None = None,
    num_times: int = 10,
    num_positions: int = 10,
    time_sampling: TimeSampling = "stratified",
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Space-time lattices of ``(t, x)`` pairs, shape ``(functions, times * positions, 2)``.

    Draws the times first, then the positions, from ``generator``.
    """
    if num_functions < 0 or num_times < 1 or num_positions < 1:
        raise ValueError(
            "need num_functions >= 0, num_times >= 1 and num_positions >= 1, got "
            f"{num_functions}, {num_times}, {num_positions}"
        )
    t = _sample_times(problem, num_functions, num_times, time_sampling, generator, dtype)
    x_low, x_high = problem.x_domain
    draws = torch.rand(num_functions, num_positions, generator=generator, dtype=dtype)
    x = x_low + (x_high - x_low) * draws.sort(dim=1).values  # (functions, positions)
    lattice = torch.stack(
        [
            t[:, :, None].expand(-1, -1, num_positions),  # (functions, times, positions)
            x[:, None, :].expand(-1, num_times, -1),  # (functions, times, positions)
        ],
        dim=-1,
    )  # (functions, times, positions, 2)
    return lattice.reshape(num_functions, num_times * num_positions, 2)


def _exact_outputs(problem: ConservationProblem, params: Tensor, inputs: Tensor) -> Tensor:
    """The exact solution at ``inputs`` ``(functions, points, 2)``, computed in float64 and
    returned in the inputs' dtype; shape ``(functions, points, 1)``."""
    inputs64 = inputs.to(torch.float64)
    u = problem.solution(params.to(torch.float64)[:, None], inputs64[..., 0], inputs64[..., 1])
    return u.to(inputs.dtype)[..., None]


def make_function_sets(
    problem: ConservationProblem,
    params: Tensor,
    generator: torch.Generator | None = None,
    num_times: int = 10,
    num_positions: int = 10,
    dtype: torch.dtype = torch.float32,
    context_time_sampling: TimeSampling = "stratified",
    target_time_sampling: TimeSampling = "uniform",
) -> FunctionSets:
    """Context and target sets for the functions with parameters ``params`` ``(functions,)``.

    The inputs are rounded to ``dtype`` first and the exact solution is evaluated (in float64)
    at the rounded inputs, so every stored output is the solution at its stored input. The
    time-sampling defaults reproduce the published ProbConserv test set.
    """
    if params.ndim != 1:
        raise ValueError(f"params must be one-dimensional (functions,), got {tuple(params.shape)}")
    num_functions = params.shape[0]
    input_contexts = sample_inputs(
        problem, num_functions, generator, num_times, num_positions, context_time_sampling
    ).to(dtype)
    input_targets = sample_inputs(
        problem, num_functions, generator, num_times, num_positions, target_time_sampling
    ).to(dtype)
    return FunctionSets(
        input_contexts=input_contexts,
        output_contexts=_exact_outputs(problem, params, input_contexts),
        input_targets=input_targets,
        output_targets=_exact_outputs(problem, params, input_targets),
        params=params.to(dtype)[:, None],
    )


def evaluation_grid(
    problem: ConservationProblem, t: float, num_x: int = 201, dtype: torch.dtype = torch.float32
) -> Tensor:
    """``(t, x)`` pairs on ``num_x`` equally spaced points of ``x_domain``, shape ``(num_x, 2)``."""
    if num_x < 2:
        raise ValueError(f"an evaluation grid needs num_x >= 2 points, got {num_x}")
    x = torch.linspace(*problem.x_domain, num_x, dtype=torch.float64)
    grid = torch.stack([torch.full_like(x, t), x], dim=-1)  # (num_x, 2)
    return grid.to(dtype)
