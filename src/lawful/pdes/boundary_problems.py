"""The catalogue of boundary-constrained problems for the BOON experiments, and their datasets.

Every problem lives on [0, 1], sampled on the uniform grid x_0 = 0 .. x_{N} = 1 with both ends
(``resolution`` = N + 1 points). Inputs are the initial condition u(x, 0); outputs are u at
``NUM_FRAMES`` equally spaced times ``t_j = j * frame_spacing`` (multi-step) or at the last of them
(single-step). The end conditions, which the BOON model reads from ``BoundaryProblem.conditions``
(:mod:`lawful.constraints.boundary` specs along the x axis; their values are placeholders, the
data per sample and output time is in ``BoundaryDataset["boundary"]``):

==================  ====================================  =====================================
name                left end (x = 0)                      right end (x = 1)
==================  ====================================  =====================================
heat-neumann        Neumann u_x = 0                       Neumann u_x = 5 sin(pi t)
burgers-dirichlet   Dirichlet u = u0(0), held in time     Dirichlet u = u0(1), held in time
burgers-periodic    periodic: u(0, t) = u(1, t)           periodic (x_N = 1 repeats x_0 = 0)
stokes              Dirichlet u = U cos(w t)              Dirichlet u = U exp(-k) cos(w t - k)
wave                Neumann u_x = 0                       Neumann u_x = 0
==================  ====================================  =====================================

Sizes: the quick preset is ~200 training samples at resolution ~100; the paper's is ~1000
training + 200 test samples at resolution ~500. Both are just the arguments ``num_samples`` and
``resolution``; the experiment files own the presets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

import torch
from torch import Tensor

from lawful.constraints.boundary import BoundaryConditions, Dirichlet, Neumann, Periodic
from lawful.pdes.burgers1d import solve_burgers, solve_burgers_periodic
from lawful.pdes.heat1d import solve_heat
from lawful.pdes.problem import NUM_FRAMES, Problem, Sampler, Solution
from lawful.pdes.random_fields import sample_periodic_gaussian_field
from lawful.pdes.stokes import stokes_second_problem
from lawful.pdes.wave1d import wave_cosine_series

NEUMANN_STENCIL_ORDER = 2
"""Order of the one-sided stencil of every Neumann end: that of the second-order solvers, so the
data obeys it to O(h^2)."""

# Neumann ends (data: the flux u_x per sample and time) and Dirichlet ends (data: the value).
_INSULATED = BoundaryConditions(
    Neumann(0.0, order=NEUMANN_STENCIL_ORDER), Neumann(0.0, order=NEUMANN_STENCIL_ORDER)
)
_HELD = BoundaryConditions(Dirichlet(), Dirichlet())

# Courant number |u| dt / h for the explicit Burgers flux: AB2 and ETDRK4 are both stable below it.
_BURGERS_COURANT = 0.5

__all__ = [
    "BOUNDARY_PROBLEMS",
    "NEUMANN_STENCIL_ORDER",
    "BoundaryDataset",
    "BoundaryProblem",
    "make_boundary_dataset",
]


class BoundaryDataset(TypedDict):
    """Samples of one problem. Single-step data has no time axis: ``t`` is 0-d, ``outputs``
    (batch, X) and boundary data (batch,); multi-step has ``t`` (T,), ``outputs`` (batch, T, X)
    and boundary data (batch, T). Everything is float64."""

    inputs: Tensor  # (batch, X) u(x, 0)
    outputs: Tensor  # (batch, X) or (batch, T, X)
    x: Tensor  # (X,)
    t: Tensor  # () or (T,)
    boundary: dict[str, Tensor | None]  # "left", "right": (batch,) or (batch, T); None if periodic
    conditions: BoundaryConditions | None  # kinds of the ends along x; data in ``boundary``
    parameters: dict[str, Tensor]  # per-sample problem parameters, each (batch,)


@dataclass(frozen=True)
class BoundaryProblem:
    """One catalogue entry: its end conditions, output times and sampler.

    A user's problem is one of these too: a name, the end conditions (their values are
    placeholders; the data per sample and time comes from the sampler), the spacing of the
    ``num_frames`` output times, and a :data:`Sampler`.

    ``mass_change(t, **options)`` (T,) -> (T,) is the exact change of the total mass (integral
    of u over [0, 1]) since t = 0, from the fluxes through the ends, the same for every sample;
    it takes the sampler's options (e.g. ``diffusivity``) with the same defaults. ``None`` where
    the fluxes through the ends are not known in advance (Dirichlet ends).
    """

    name: str
    conditions: BoundaryConditions
    frame_spacing: float
    sample: Sampler
    mass_change: Callable[..., Tensor] | None = None
    num_frames: int = NUM_FRAMES
    x_domain: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.frame_spacing <= 0 or self.num_frames < 1:
            raise ValueError(
                f"problem {self.name!r} needs frame_spacing > 0 and num_frames >= 1; got "
                f"{self.frame_spacing} and {self.num_frames}"
            )

    def times(self) -> Tensor:
        """The multi-step output times ``t_j = j * frame_spacing``, j = 1..num_frames: (T,)."""
        return self.frame_spacing * torch.arange(1, self.num_frames + 1, dtype=torch.float64)


def _uniform(num_samples: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    """(batch,) draws from U[low, high]."""
    return low + (high - low) * torch.rand(num_samples, generator=generator, dtype=torch.float64)


def _burgers_max_dt(u0: Tensor, x: Tensor) -> float:
    """The step keeping the explicit flux stable; |u| never exceeds its initial and end values."""
    spacing = float(x[1] - x[0])
    return _BURGERS_COURANT * spacing / max(float(u0.abs().max()), 1.0)


_HEAT_DIFFUSIVITY = 0.01
_HEAT_FLUX_AMPLITUDE = 5.0


def _sample_heat(
    num_samples: int,
    x: Tensor,
    times: Tensor,
    generator: torch.Generator,
    diffusivity: float = _HEAT_DIFFUSIVITY,
    flux_amplitude: float = _HEAT_FLUX_AMPLITUDE,
) -> Solution:
    """u0 = cos(w pi x), w ~ U[2.01, 3.99]; insulated left end, flux U sin(pi t) at the right."""
    frequency = _uniform(num_samples, 2.01, 3.99, generator)
    initial = torch.cos(frequency[:, None] * torch.pi * x)  # (batch, X)

    def left_flux(t: float) -> Tensor:
        return torch.zeros(num_samples, dtype=torch.float64)

    def right_flux(t: float) -> Tensor:
        return torch.full(
            (num_samples,), flux_amplitude * math.sin(math.pi * t), dtype=torch.float64
        )

    frames = solve_heat(
        initial, diffusivity, times, _INSULATED, left_flux, right_flux, max_dt=float(x[1] - x[0])
    )
    left, right = (
        torch.stack([flux(t) for t in times.tolist()], dim=1) for flux in (left_flux, right_flux)
    )  # (batch, T) each
    return Solution(initial, frames, left, right, {"frequency": frequency})


def _heat_mass_change(
    times: Tensor,
    diffusivity: float = _HEAT_DIFFUSIVITY,
    flux_amplitude: float = _HEAT_FLUX_AMPLITUDE,
) -> Tensor:
    """k * integral_0^t (u_x(1) - u_x(0)) dt = k A (1 - cos(pi t)) / pi (see _sample_heat)."""
    return diffusivity * flux_amplitude * (1 - torch.cos(torch.pi * times)) / torch.pi


def _no_mass_change(times: Tensor, **options: float) -> Tensor:
    """Periodic ends, or no flux through either end: the mass is that of u0, whatever the
    sampler's options."""
    return torch.zeros_like(times)


def _sample_burgers_dirichlet(
    num_samples: int,
    x: Tensor,
    times: Tensor,
    generator: torch.Generator,
    viscosity: float = 0.1,
    num_modes: int = 4,
) -> Solution:
    """u0 = a + (b - a) x + sum_m c_m sin(m pi x): a, b ~ U[-1, 1] held at the ends,
    c_m ~ U[-1, 1] / m for m = 1..num_modes."""
    left_value = _uniform(num_samples, -1.0, 1.0, generator)
    right_value = _uniform(num_samples, -1.0, 1.0, generator)
    mode = torch.arange(1, num_modes + 1, dtype=torch.float64)  # (M,)
    coefficients = (
        _uniform(num_samples * num_modes, -1.0, 1.0, generator).view(-1, num_modes) / mode
    )
    linear = left_value[:, None] + (right_value - left_value)[:, None] * x  # (batch, X)
    initial = linear + coefficients @ torch.sin(torch.pi * mode[:, None] * x)  # (batch, X)
    initial[:, 0], initial[:, -1] = left_value, right_value  # sin(m pi) is 1e-16, not 0
    frames = solve_burgers(
        initial,
        viscosity,
        times,
        _HELD,
        lambda t: left_value,
        lambda t: right_value,
        max_dt=_burgers_max_dt(initial, x),
    )
    return Solution(
        initial,
        frames,
        left_value[:, None].expand(-1, times.numel()),
        right_value[:, None].expand(-1, times.numel()),
        {"left_value": left_value, "right_value": right_value},
    )


def _sample_burgers_periodic(
    num_samples: int,
    x: Tensor,
    times: Tensor,
    generator: torch.Generator,
    viscosity: float = 0.1,
) -> Solution:
    """u0 ~ N(0, 625 (-Laplacian + 25)^-2), on the wavenumbers the 2/3 rule keeps.

    Solved on the N distinct points x_0..x_{N-1}; x_N = 1 repeats x_0's value exactly.
    """
    distinct = x[:-1]  # (N,) the periodic grid
    num_modes = (distinct.numel() + 2) // 3  # wavenumbers k with 3 k < N
    initial = sample_periodic_gaussian_field(num_samples, distinct, num_modes, generator)
    frames = solve_burgers_periodic(initial, viscosity, times, _burgers_max_dt(initial, x))

    def close_period(u: Tensor) -> Tensor:
        return torch.cat([u, u[..., :1]], dim=-1)  # (..., N) -> (..., N + 1)

    return Solution(close_period(initial), close_period(frames), None, None, {})


def _sample_stokes(
    num_samples: int,
    x: Tensor,
    times: Tensor,
    generator: torch.Generator,
    viscosity: float = 0.1,
) -> Solution:
    """The exact solution for w ~ U[2, 8] and U ~ U[0.5, 2]; nu = 0.1 or 0.001 in the paper."""
    frequency = _uniform(num_samples, 2.0, 8.0, generator)
    amplitude = _uniform(num_samples, 0.5, 2.0, generator)
    initial = stokes_second_problem(x, times.new_zeros(1), viscosity, frequency, amplitude)[:, 0]
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    walls = stokes_second_problem(ends, times, viscosity, frequency, amplitude)  # (batch, T, 2)
    frames = stokes_second_problem(x, times, viscosity, frequency, amplitude)
    return Solution(
        initial,
        frames,
        walls[..., 0],
        walls[..., 1],
        {"frequency": frequency, "amplitude": amplitude},
    )


def _sample_wave(
    num_samples: int,
    x: Tensor,
    times: Tensor,
    generator: torch.Generator,
    wave_speed: float = 1.0,
    num_modes: int = 4,
) -> Solution:
    """u0 = sum_n a_n cos(n pi x), a_n ~ U[-1, 1] / n, at rest; data from the exact series."""
    mode = torch.arange(1, num_modes + 1, dtype=torch.float64)  # (M,)
    amplitudes = _uniform(num_samples * num_modes, -1.0, 1.0, generator).view(-1, num_modes) / mode
    initial = wave_cosine_series(x, times.new_zeros(1), wave_speed, amplitudes)[:, 0]
    frames = wave_cosine_series(x, times, wave_speed, amplitudes)
    no_flux = torch.zeros(num_samples, times.numel(), dtype=torch.float64)
    return Solution(initial, frames, no_flux, no_flux.clone(), {})


BOUNDARY_PROBLEMS: dict[str, BoundaryProblem] = {
    problem.name: problem
    for problem in (
        BoundaryProblem(
            "heat-neumann",
            _INSULATED,
            frame_spacing=0.02,
            sample=_sample_heat,
            mass_change=_heat_mass_change,
        ),
        BoundaryProblem(
            "burgers-dirichlet",
            _HELD,
            frame_spacing=0.04,
            sample=_sample_burgers_dirichlet,
        ),
        BoundaryProblem(
            "burgers-periodic",
            BoundaryConditions(Periodic(), Periodic()),
            frame_spacing=0.04,
            sample=_sample_burgers_periodic,
            mass_change=_no_mass_change,
        ),
        BoundaryProblem(
            "stokes",
            BoundaryConditions(Dirichlet(), Dirichlet()),
            frame_spacing=0.08,
            sample=_sample_stokes,
        ),
        BoundaryProblem(
            "wave",
            _INSULATED,
            frame_spacing=0.04,
            sample=_sample_wave,
            mass_change=_no_mass_change,  # at rest, insulated ends: d^2U/dt^2 = 0, U'(0) = 0
        ),
    )
}


def make_boundary_dataset(
    problem: str | Problem,
    num_samples: int,
    resolution: int,
    generator: torch.Generator,
    multistep: bool = False,
    **options: float,
) -> BoundaryDataset:
    """Sample ``num_samples`` solutions of ``problem`` (a boundary problem of ours by name, or
    any :class:`~lawful.pdes.problem.Problem`: a conservation problem, a user's) on ``resolution``
    grid points spanning its ``x_domain``, both ends included.

    ``options`` override a problem's parameters, e.g. ``viscosity=0.001`` for ``stokes``.
    Deterministic given ``generator``.
    """
    if isinstance(problem, str):
        if problem not in BOUNDARY_PROBLEMS:
            raise ValueError(
                f"unknown boundary problem {problem!r}; choose from {sorted(BOUNDARY_PROBLEMS)}"
            )
        problem = BOUNDARY_PROBLEMS[problem]
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    if resolution < 4:
        raise ValueError(f"resolution must be at least 4 grid points, got {resolution}")
    x = torch.linspace(*problem.x_domain, resolution, dtype=torch.float64)  # (X,)
    times = problem.times()  # (T,)
    solution = problem.sample(num_samples, x, times, generator, **options)
    # Single-step data is the last frame: the same solve, so both kinds agree where they overlap.
    # Copies, not views: a single-step dataset must not keep every frame alive.
    frame = slice(None) if multistep else -1

    def at_frame(values: Tensor | None) -> Tensor | None:
        return None if values is None else values[:, frame].contiguous()

    return BoundaryDataset(
        inputs=solution.initial,
        outputs=solution.frames[:, frame].contiguous(),
        x=x,
        t=times[frame].contiguous(),
        boundary={"left": at_frame(solution.left), "right": at_frame(solution.right)},
        conditions=problem.conditions,
        parameters=solution.parameters,
    )
