"""Solvers and datasets of the boundary problems: each solver against an exact solution, with its
order; each dataset against the exact facts its problem obeys (boundary data, mass, symmetry)."""

import math

import pytest
import torch
from torch import Tensor

from conftest import fitted_order
from lawful.constraints.boundary import BoundaryConditions, Dirichlet, Neumann, Periodic
from lawful.constraints.quadrature import trapezoid_weights
from lawful.pdes import NUM_FRAMES
from lawful.pdes._method_of_lines import uniform_steps
from lawful.pdes.boundary_problems import (
    BOUNDARY_PROBLEMS,
    NEUMANN_STENCIL_ORDER,
    make_boundary_dataset,
)
from lawful.pdes.burgers1d import (
    cole_hopf_solution,
    solve_burgers,
    solve_burgers_periodic,
)
from lawful.pdes.heat1d import (
    heat_cosine_solution,
    heat_cosine_solution_flux,
    solve_heat,
)
from lawful.pdes.random_fields import sample_periodic_gaussian_field
from lawful.pdes.stokes import stokes_second_problem
from lawful.pdes.wave1d import solve_wave, wave_cosine_series

F64 = torch.float64
REFINEMENTS = (20, 40, 80, 160)  # intervals N of the grid x_0..x_N
# The solvers take BOON's vocabulary for the kinds of the ends; their data comes per time.
NEUMANN = BoundaryConditions(Neumann(), Neumann())
DIRICHLET = BoundaryConditions(Dirichlet(), Dirichlet())


def no_flux(t: float) -> Tensor:
    return torch.zeros((), dtype=F64)


def _grid(intervals: int) -> Tensor:
    return torch.linspace(0.0, 1.0, intervals + 1, dtype=F64)


def _times(*values: float) -> Tensor:
    return torch.tensor(values, dtype=F64)


def _one_sided_derivative(u: Tensor, spacing: float) -> tuple[Tensor, Tensor]:
    """Second-order one-sided u_x at the left and right ends of u (..., X)."""
    left = (-3 * u[..., 0] + 4 * u[..., 1] - u[..., 2]) / (2 * spacing)
    right = (3 * u[..., -1] - 4 * u[..., -2] + u[..., -3]) / (2 * spacing)
    return left, right


# ----------------------------------------------------------------------------- time grid


def test_uniform_steps_hit_every_frame_with_the_largest_allowed_step():
    dt, steps_per_frame = uniform_steps(_times(0.1, 0.2, 0.3), max_dt=0.03)
    assert steps_per_frame == 4
    assert dt == pytest.approx(0.025, abs=1e-15)


def test_uniform_steps_reject_unequal_frames():
    with pytest.raises(ValueError, match="equally spaced"):
        uniform_steps(_times(0.1, 0.3), max_dt=0.01)


# ----------------------------------------------------------------------------- heat


@pytest.mark.parametrize(
    ("wavenumber", "phase"),
    [(math.pi, 0.0), (2.5, 0.3)],
    ids=["homogeneous-neumann", "time-dependent-flux-at-both-ends"],
)
def test_heat_crank_nicolson_is_second_order(wavenumber, phase):
    diffusivity = 0.5  # large enough that the time error counts as much as the space error
    times = _times(0.25, 0.5)
    spacings, errors = [], []
    for intervals in REFINEMENTS:
        x = _grid(intervals)
        u0 = heat_cosine_solution(x, _times(0.0), diffusivity, wavenumber, phase)  # (1, X)

        def flux_at(end: float):
            return lambda t: heat_cosine_solution_flux(end, t, diffusivity, wavenumber, phase)[None]

        u = solve_heat(u0, diffusivity, times, NEUMANN, flux_at(0.0), flux_at(1.0), 1 / intervals)
        exact = heat_cosine_solution(x, times, diffusivity, wavenumber, phase)  # (T, X)
        spacings.append(1 / intervals)
        errors.append(float((u[0] - exact).abs().max()))
    assert errors[-1] < 5e-5
    assert fitted_order(spacings, errors) == pytest.approx(2.0, abs=0.3)


def test_heat_batch_equals_one_sample_at_a_time():
    x, times = _grid(30), _times(0.1, 0.2)
    u0 = torch.stack([torch.cos(2.2 * torch.pi * x), torch.cos(3.7 * torch.pi * x)])  # (2, X)
    fluxes = torch.tensor([0.0, 1.5], dtype=F64)

    def solve(rows: slice) -> Tensor:
        return solve_heat(
            u0[rows],
            0.1,
            times,
            NEUMANN,
            lambda t: 0 * fluxes[rows],
            lambda t: t * fluxes[rows],
            0.01,
        )

    looped = torch.cat([solve(slice(0, 1)), solve(slice(1, 2))])
    torch.testing.assert_close(solve(slice(None)), looped, rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "conditions",
    [
        DIRICHLET,
        BoundaryConditions(Dirichlet(), Neumann()),
        BoundaryConditions(Neumann(), Dirichlet()),
    ],
    ids=["dirichlet", "dirichlet-neumann", "neumann-dirichlet"],
)
def test_heat_is_second_order_with_any_mix_of_dirichlet_and_neumann_ends(conditions):
    diffusivity, wavenumber, phase = 0.5, 2.5, 0.3
    times = _times(0.25, 0.5)

    def data_at(end: float, condition):
        if isinstance(condition, Neumann):
            return lambda t: heat_cosine_solution_flux(end, t, diffusivity, wavenumber, phase)
        point = torch.tensor([end], dtype=F64)
        return lambda t: heat_cosine_solution(point, _times(t), diffusivity, wavenumber, phase)[0]

    spacings, errors = [], []
    for intervals in REFINEMENTS:
        x = _grid(intervals)
        u0 = heat_cosine_solution(x, _times(0.0), diffusivity, wavenumber, phase)  # (1, X)
        left, right = data_at(0.0, conditions.left), data_at(1.0, conditions.right)
        u = solve_heat(u0, diffusivity, times, conditions, left, right, 1 / intervals)
        exact = heat_cosine_solution(x, times, diffusivity, wavenumber, phase)  # (T, X)
        if isinstance(conditions.left, Dirichlet):  # imposed exactly, not approximated
            assert torch.equal(u[0, :, 0], exact[:, 0])
        spacings.append(1 / intervals)
        errors.append(float((u[0] - exact).abs().max()))
    assert fitted_order(spacings, errors) == pytest.approx(2.0, abs=0.3)


def test_wave_with_dirichlet_ends_matches_the_sine_series_to_second_order():
    times = _times(0.35, 0.7)
    spacings, errors = [], []
    for intervals in REFINEMENTS:
        x = _grid(intervals)
        modes = torch.sin(torch.pi * x) - 0.4 * torch.sin(3 * torch.pi * x)  # (X,)
        u0 = modes[None]  # (1, X); exact: each mode swings at its own frequency
        exact = (
            torch.sin(torch.pi * x) * torch.cos(torch.pi * times)[:, None]
            - 0.4 * torch.sin(3 * torch.pi * x) * torch.cos(3 * torch.pi * times)[:, None]
        )  # (T, X)
        u = solve_wave(u0, 1.0, times, DIRICHLET, no_flux, no_flux, max_dt=0.5 / intervals)
        spacings.append(1 / intervals)
        errors.append(float((u[0] - exact).abs().max()))
    assert fitted_order(spacings, errors) == pytest.approx(2.0, abs=0.3)


def test_solvers_name_the_ends_they_cannot_take():
    x, times = _grid(10), _times(0.1)
    u0 = torch.sin(torch.pi * x)[None]
    with pytest.raises(ValueError, match="periodic problems have spectral solvers"):
        solve_heat(
            u0, 0.1, times, BoundaryConditions(Periodic(), Periodic()), no_flux, no_flux, 0.01
        )
    with pytest.raises(ValueError, match="solve_burgers takes Dirichlet ends"):
        solve_burgers(u0, 0.1, times, NEUMANN, no_flux, no_flux, 0.01)


# ----------------------------------------------------------------------------- Burgers


# Galilean-boosted Cole–Hopf solution: its end values change in time.
_DIRICHLET_EXACT = dict(
    viscosity=0.1, wavenumbers=[math.pi], amplitudes=[1.0], offset=1.5, drift=1.0
)


def _dirichlet_exact(x: Tensor, t: Tensor) -> Tensor:
    return cole_hopf_solution(x, t, **_DIRICHLET_EXACT)


def test_burgers_dirichlet_is_second_order_with_time_dependent_end_values():
    times = _times(0.25, 0.5)
    spacings, errors = [], []
    for intervals in REFINEMENTS:
        x = _grid(intervals)

        def value_at(end: float):
            return lambda t: _dirichlet_exact(_times(end), _times(t))[0]

        u0 = _dirichlet_exact(x, _times(0.0))  # (1, X)
        u = solve_burgers(u0, 0.1, times, DIRICHLET, value_at(0.0), value_at(1.0), 0.5 / intervals)
        exact = _dirichlet_exact(x, times)
        torch.testing.assert_close(u[0, :, 0], exact[:, 0], rtol=0, atol=0)
        spacings.append(1 / intervals)
        errors.append(float((u[0] - exact).abs().max()))
    assert errors[-1] < 1e-4
    assert fitted_order(spacings, errors) == pytest.approx(2.0, abs=0.3)


_PERIODIC_EXACT = dict(
    viscosity=0.1, wavenumbers=[2 * math.pi, 4 * math.pi], amplitudes=[1.0, 0.5], offset=2.0
)


def _periodic_setup(points: int) -> tuple[Tensor, Tensor]:
    x = torch.arange(points, dtype=F64) / points  # the periodic grid, x_N = 1 left out
    return x, cole_hopf_solution(x, _times(0.0), **_PERIODIC_EXACT)  # (1, N)


def test_burgers_periodic_is_spectrally_accurate():
    x, u0 = _periodic_setup(64)
    times = _times(0.25, 0.5)
    u = solve_burgers_periodic(u0, 0.1, times, max_dt=1e-3)
    exact = cole_hopf_solution(x, times, **_PERIODIC_EXACT)
    assert float((u[0] - exact).abs().max()) < 1e-8


def test_burgers_periodic_etdrk4_is_fourth_order_in_time():
    x, u0 = _periodic_setup(64)
    times = _times(0.5)
    exact = cole_hopf_solution(x, times, **_PERIODIC_EXACT)
    steps = (0.025, 0.0125, 0.00625, 0.003125)
    errors = [
        float((solve_burgers_periodic(u0, 0.1, times, dt)[0] - exact).abs().max()) for dt in steps
    ]
    assert fitted_order(steps, errors) == pytest.approx(4.0, abs=0.3)


# ----------------------------------------------------------------------------- wave


def test_wave_leapfrog_is_second_order_against_the_cosine_series():
    amplitudes = torch.tensor([[0.3, -0.5, 0.2, 0.1], [1.0, 0.0, 0.0, -0.25]], dtype=F64)
    times = _times(0.35, 0.7)
    spacings, errors = [], []
    for intervals in REFINEMENTS:
        x = _grid(intervals)
        u0 = wave_cosine_series(x, _times(0.0), 1.0, amplitudes)[:, 0]  # (batch, X)
        # Courant number 1/2: at exactly 1 leapfrog is exact in 1-D and shows no order.
        u = solve_wave(u0, 1.0, times, NEUMANN, no_flux, no_flux, max_dt=0.5 / intervals)
        spacings.append(1 / intervals)
        errors.append(float((u - wave_cosine_series(x, times, 1.0, amplitudes)).abs().max()))
    assert fitted_order(spacings, errors) == pytest.approx(2.0, abs=0.3)


def test_wave_leapfrog_refuses_an_unstable_step():
    x = _grid(10)
    with pytest.raises(ValueError, match="Courant"):
        solve_wave(torch.cos(torch.pi * x)[None], 1.0, _times(0.5), NEUMANN, no_flux, no_flux, 0.2)


# ----------------------------------------------------------------------------- Stokes


@pytest.mark.parametrize("viscosity", [0.1, 0.001])
def test_stokes_solution_satisfies_the_pde_and_its_plate_condition(viscosity):
    frequency = torch.tensor([2.0, 5.0, 8.0], dtype=F64)
    amplitude = torch.tensor([0.5, 1.0, 2.0], dtype=F64)

    def at_point(t: Tensor, y: Tensor) -> Tensor:  # scalars -> (batch,)
        return stokes_second_problem(y[None], t[None], viscosity, frequency, amplitude)[:, 0, 0]

    u_t = torch.func.jacrev(at_point, argnums=0)
    u_yy = torch.func.jacrev(torch.func.jacrev(at_point, argnums=1), argnums=1)
    t, y = (
        mesh.flatten()
        for mesh in torch.meshgrid(
            torch.linspace(0.0, 2.0, 9, dtype=F64),
            torch.linspace(0.0, 1.0, 41, dtype=F64),
            indexing="ij",
        )
    )  # (points,) each
    residual = torch.func.vmap(lambda t, y: u_t(t, y) - viscosity * u_yy(t, y))(t, y)
    typical_u_t = float((amplitude * frequency).max())
    assert float(residual.abs().max()) < 1e-12 * typical_u_t

    times = torch.linspace(0.0, 2.0, 9, dtype=F64)
    plate = stokes_second_problem(_times(0.0), times, viscosity, frequency, amplitude)[..., 0]
    expected = amplitude[:, None] * torch.cos(frequency[:, None] * times)  # (batch, T)
    torch.testing.assert_close(plate, expected, rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- random fields


def test_periodic_gaussian_field_has_the_declared_covariance():
    x = torch.linspace(0.0, 1.0, 17, dtype=F64)  # both ends: they must agree
    num_modes, num_samples = 8, 20_000
    samples = sample_periodic_gaussian_field(
        num_samples, x, num_modes, torch.Generator().manual_seed(1)
    )  # (batch, X)
    torch.testing.assert_close(samples[:, 0], samples[:, -1], rtol=0, atol=1e-12)
    wavenumber = 2 * torch.pi * torch.arange(num_modes, dtype=F64)
    eigenvalue = 625 * (wavenumber.square() + 25) ** -2  # (K,)
    multiplicity = torch.where(wavenumber > 0, 2.0, 1.0)  # cosine and sine for k >= 1
    lag = x[:, None] - x[None, :]  # (X, X)
    exact = torch.einsum(
        "k,k,kxy->xy", multiplicity, eigenvalue, torch.cos(wavenumber[:, None, None] * lag)
    )
    empirical = samples.T @ samples / num_samples  # (X, X); the mean is zero by construction
    # Sampling error of a covariance entry: about sqrt(2 / num_samples) * variance ~ 1.3e-2.
    assert float((empirical - exact).abs().max()) < 0.05


# ----------------------------------------------------------------------------- datasets

SMALL = dict(num_samples=4, resolution=41)


def _dataset(name: str, multistep: bool, seed: int = 0, **options):
    return make_boundary_dataset(
        name, generator=torch.Generator().manual_seed(seed), multistep=multistep, **SMALL, **options
    )


@pytest.mark.parametrize("name", sorted(BOUNDARY_PROBLEMS))
def test_dataset_single_step_is_the_last_frame_and_boundary_data_holds(name):
    single, frames = _dataset(name, multistep=False), _dataset(name, multistep=True)
    batch, points = SMALL["num_samples"], SMALL["resolution"]
    assert frames["outputs"].shape == (batch, NUM_FRAMES, points)
    assert single["outputs"].shape == (batch, points) and single["t"].ndim == 0
    torch.testing.assert_close(single["outputs"], frames["outputs"][:, -1], rtol=0, atol=0)
    torch.testing.assert_close(single["t"], frames["t"][-1], rtol=0, atol=0)
    torch.testing.assert_close(frames["t"][0] * NUM_FRAMES, frames["t"][-1], rtol=1e-14, atol=0)

    conditions, u = frames["conditions"], frames["outputs"]
    for end, column in (("left", 0), ("right", -1)):
        condition, data = getattr(conditions, end), frames["boundary"][end]
        if isinstance(condition, Periodic):
            assert data is None
            torch.testing.assert_close(u[..., 0], u[..., -1], rtol=0, atol=0)
        elif isinstance(condition, Dirichlet):
            torch.testing.assert_close(u[..., column], data, rtol=0, atol=0)
        else:  # Neumann data is u_x: its values are checked by convergence below
            assert isinstance(condition, Neumann)
            assert condition.order == NEUMANN_STENCIL_ORDER
            assert data.shape == (batch, NUM_FRAMES)


@pytest.mark.parametrize("name", ["heat-neumann", "wave"])
def test_neumann_data_matches_one_sided_differences_ever_better_on_finer_grids(name):
    spacings, errors = [], []
    for resolution in (41, 81, 161):
        data = make_boundary_dataset(
            name, 4, resolution, torch.Generator().manual_seed(0), multistep=True
        )
        late = slice(-5, None)  # the heat's initial flux mismatch leaves a thin layer early on
        ends = _one_sided_derivative(data["outputs"][:, late], 1 / (resolution - 1))
        flux = (data["boundary"][end][:, late] for end in ("left", "right"))
        spacings.append(1 / (resolution - 1))
        errors.append(max(float((e - g).abs().max()) for e, g in zip(ends, flux, strict=True)))
    assert fitted_order(spacings, errors) > 1.7


def test_dataset_is_deterministic_given_the_generator():
    first, again = (
        _dataset("burgers-periodic", False, seed=3),
        _dataset("burgers-periodic", False, 3),
    )
    other = _dataset("burgers-periodic", False, seed=4)
    torch.testing.assert_close(first["outputs"], again["outputs"], rtol=0, atol=0)
    assert float((first["outputs"] - other["outputs"]).abs().max()) > 0.1


def test_heat_dataset_gains_exactly_the_heat_let_in_at_the_right_end():
    data = _dataset("heat-neumann", multistep=True)
    weights = trapezoid_weights(data["x"])
    # d/dt integral(u) = k (u_x(1) - u_x(0)) = 0.01 * 5 sin(pi t)
    gained = 0.01 * 5 * (1 - torch.cos(torch.pi * data["t"])) / torch.pi  # (T,)
    torch.testing.assert_close(
        BOUNDARY_PROBLEMS["heat-neumann"].mass_change(data["t"]), gained, rtol=0, atol=1e-16
    )
    mass = data["outputs"] @ weights  # (batch, T)
    initial_mass = data["inputs"] @ weights  # (batch,)
    # The ghost-point scheme conserves trapezoid mass exactly; only the time quadrature of the
    # flux (trapezoid, steps dt <= h) errs, by at most k U pi^2 dt^2 t / 12.
    spacing = float(data["x"][1] - data["x"][0])
    bound = 0.01 * 5 * torch.pi**2 * spacing**2 * float(data["t"][-1]) / 12
    torch.testing.assert_close(mass, initial_mass[:, None] + gained, rtol=0, atol=bound)


def test_heat_mass_change_follows_the_sampler_options():
    options = {"diffusivity": 0.02, "flux_amplitude": 3.0}
    data = make_boundary_dataset(
        "heat-neumann", 3, 33, torch.Generator().manual_seed(0), multistep=True, **options
    )
    weights = trapezoid_weights(data["x"])
    change = BOUNDARY_PROBLEMS["heat-neumann"].mass_change(data["t"], **options)  # (T,)
    gained = data["outputs"] @ weights - (data["inputs"] @ weights)[:, None]  # (batch, T)
    spacing = float(data["x"][1] - data["x"][0])
    bound = 0.02 * 3.0 * torch.pi**2 * spacing**2 * float(data["t"][-1]) / 12
    torch.testing.assert_close(gained, change.expand_as(gained), rtol=0, atol=bound)


@pytest.mark.parametrize("name", ["burgers-periodic", "wave"])
def test_mass_change_of_closed_problems_is_zero_and_the_data_agrees(name):
    data = _dataset(name, multistep=True)
    weights = trapezoid_weights(data["x"])
    change = BOUNDARY_PROBLEMS[name].mass_change(data["t"])  # (T,)
    assert float(change.abs().max()) == 0.0
    mass = data["outputs"] @ weights  # (batch, T)
    initial_mass = data["inputs"] @ weights  # (batch,)
    torch.testing.assert_close(mass, (initial_mass[:, None] + change), rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", ["burgers-dirichlet", "stokes"])
def test_mass_change_is_unknown_where_the_ends_are_dirichlet(name):
    assert BOUNDARY_PROBLEMS[name].mass_change is None


def test_burgers_dirichlet_dataset_agrees_with_a_twice_finer_grid():
    coarse = _dataset("burgers-dirichlet", multistep=False)
    fine = make_boundary_dataset(
        "burgers-dirichlet", 4, 81, torch.Generator().manual_seed(0), multistep=False
    )  # same draws: the initial data does not depend on the resolution
    torch.testing.assert_close(coarse["inputs"], fine["inputs"][:, ::2], rtol=0, atol=1e-14)
    assert float((coarse["outputs"] - fine["outputs"][:, ::2]).abs().max()) < 2e-3


def test_burgers_periodic_dataset_keeps_its_mean():
    data = _dataset("burgers-periodic", multistep=True)
    mean = data["outputs"][..., :-1].mean(dim=-1)  # (batch, T), x_N repeats x_0
    initial_mean = data["inputs"][..., :-1].mean(dim=-1)  # (batch,)
    torch.testing.assert_close(mean, initial_mean[:, None].expand_as(mean), rtol=0, atol=1e-13)


def test_wave_dataset_at_t_1_is_the_mirror_image_of_its_initial_data():
    data = _dataset("wave", multistep=False)  # c = 1: cos(n pi (1 - x)) = (-1)^n cos(n pi x)
    assert float(data["t"]) == pytest.approx(1.0, abs=1e-14)
    torch.testing.assert_close(data["outputs"], data["inputs"].flip(-1), rtol=0, atol=1e-12)


def test_stokes_dataset_takes_the_viscosity_and_its_walls_follow_the_formula():
    thick, thin = _dataset("stokes", True), _dataset("stokes", True, viscosity=0.001)
    torch.testing.assert_close(thick["parameters"]["frequency"], thin["parameters"]["frequency"])
    frequency, amplitude = (thin["parameters"][key][:, None] for key in ("frequency", "amplitude"))
    torch.testing.assert_close(
        thin["boundary"]["left"], amplitude * torch.cos(frequency * thin["t"]), rtol=0, atol=1e-15
    )
    # Penetration depth sqrt(2 nu / w) < 0.03 at nu = 0.001: the far wall is still.
    assert float(thin["boundary"]["right"].abs().max()) < 1e-12
    assert float(thick["boundary"]["right"].abs().max()) > 1e-3


def test_unknown_problem_and_half_periodic_conditions_are_refused():
    with pytest.raises(ValueError, match="unknown boundary problem 'heat'"):
        make_boundary_dataset("heat", 2, 11, torch.Generator())
    with pytest.raises(ValueError, match="periodic condition must be on both ends"):
        BoundaryConditions(Periodic(), Dirichlet())
