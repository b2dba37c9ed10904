"""The 2-D wave problem: the exact cosine series against the PDE and the 1-D series; leapfrog
against the series, with its order, its wall flux and its energy; the sampler's data."""

import pytest
import torch
from torch import Tensor

from conftest import fitted_order
from lawful.constraints.boundary import one_sided_derivative
from lawful.constraints.quadrature import trapezoid_weights
from lawful.pdes.wave1d import wave_cosine_series
from lawful.pdes.wave2d import sample_wave_2d, solve_wave_neumann_2d, wave_cosine_series_2d

F64 = torch.float64
REFINEMENTS = (16, 32, 64)  # intervals N along x of the grid x_0..x_N
AMPLITUDES = torch.tensor(
    [
        [[0.0, 0.4, 0.1], [0.5, -0.3, 0.0], [0.2, 0.0, 0.15]],
        [[1.0, 0.0, -0.2], [0.0, 0.25, 0.0], [-0.1, 0.3, 0.0]],
    ],
    dtype=F64,
)  # (batch, M, N): a_mn of cos(m pi x) cos(n pi y)
SPEED = 1.3


def _grid(intervals: int) -> Tensor:
    return torch.linspace(0.0, 1.0, intervals + 1, dtype=F64)


def _times(*values: float) -> Tensor:
    return torch.tensor(values, dtype=F64)


def _leapfrog_and_series(intervals_x: int, intervals_y: int, times: Tensor):
    """Leapfrog from the series' u0 at Courant number 0.7, and the series: (batch, T, nx, ny)."""
    x, y = _grid(intervals_x), _grid(intervals_y)
    u0 = wave_cosine_series_2d(x, y, _times(0.0), SPEED, AMPLITUDES)[:, 0]  # (batch, nx, ny)
    courant_limit = (intervals_x**2 + intervals_y**2) ** -0.5 / SPEED  # c dt sqrt(hx^-2 + hy^-2)
    u = solve_wave_neumann_2d(u0, SPEED, times, max_dt=0.7 * courant_limit)
    return u, wave_cosine_series_2d(x, y, times, SPEED, AMPLITUDES)


# ----------------------------------------------------------------------------- exact series


def test_cosine_series_solves_the_wave_equation_with_zero_flux_walls_from_rest():
    def at_point(t: Tensor, x: Tensor, y: Tensor) -> Tensor:  # scalars -> (batch,)
        return wave_cosine_series_2d(x[None], y[None], t[None], SPEED, AMPLITUDES)[:, 0, 0, 0]

    def second(argnum: int):
        return torch.func.jacrev(torch.func.jacrev(at_point, argnums=argnum), argnums=argnum)

    u_tt, u_xx, u_yy = second(0), second(1), second(2)
    t, x, y = torch.rand(3, 50, dtype=F64) * torch.tensor([[2.0], [1.0], [1.0]], dtype=F64)
    residual = torch.func.vmap(
        lambda t, x, y: u_tt(t, x, y) - SPEED**2 * (u_xx(t, x, y) + u_yy(t, x, y))
    )(t, x, y)  # (points, batch)
    assert float(residual.abs().max()) < 1e-11

    u_t, u_x, u_y = (torch.func.jacrev(at_point, argnums=k) for k in range(3))
    wall = torch.rand(20, 2, dtype=F64)  # (time, coordinate along the wall)
    for side in (0.0, 1.0):
        side_value = torch.full((20,), side, dtype=F64)
        flux_x = torch.func.vmap(u_x)(wall[:, 0], side_value, wall[:, 1])  # (20, batch)
        flux_y = torch.func.vmap(u_y)(wall[:, 0], wall[:, 1], side_value)
        assert float(torch.cat([flux_x, flux_y]).abs().max()) < 1e-13
    at_rest = torch.func.vmap(u_t)(torch.zeros(20, dtype=F64), wall[:, 0], wall[:, 1])
    assert float(at_rest.abs().max()) == 0.0


def test_cosine_series_with_modes_along_x_only_is_the_1d_series():
    amplitudes_1d = AMPLITUDES[:, 0]  # (batch, M): a_m of cos(m pi x), m = 1..M in 1-D
    amplitudes = torch.zeros(2, 4, 1, dtype=F64)
    amplitudes[:, 1:, 0] = amplitudes_1d  # m = 0 is the constant mode in 2-D
    x, y, times = _grid(20), _grid(7), _times(0.0, 0.3, 1.1)
    expected = wave_cosine_series(x, times, SPEED, amplitudes_1d)  # (batch, T, nx)
    u = wave_cosine_series_2d(x, y, times, SPEED, amplitudes)  # (batch, T, nx, ny)
    torch.testing.assert_close(u, expected[..., None].expand_as(u), rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- leapfrog


@pytest.mark.parametrize("aspect", [1, 2], ids=["square-cells", "cells-twice-as-fine-in-y"])
def test_leapfrog_is_second_order_in_space_and_time_against_the_cosine_series(aspect):
    times = _times(0.35, 0.7)
    spacings, errors = [], []
    for intervals in REFINEMENTS:
        u, exact = _leapfrog_and_series(intervals, aspect * intervals, times)
        spacings.append(1 / intervals)
        errors.append(float((u - exact).abs().max()))
    assert errors[-1] < 1e-3  # 5.2e-4 on square cells, 4.5e-4 on the finer ones
    assert fitted_order(spacings, errors) == pytest.approx(2.0, abs=0.3)


def test_leapfrog_meets_the_second_order_one_sided_zero_flux_condition_at_every_wall():
    # BOON reads a Neumann wall through Neumann(order=2)'s one-sided stencil; the ghost-point
    # solver imposes the centred one. Their gap is O(h^2) in general; observed O(h^3) (3.7e-2,
    # 4.8e-3, 6.0e-4 at N = 16, 32, 64): the reflection makes each discrete profile even about
    # the wall, and the one-sided stencil of an even profile is O(h^3).
    spacings, residuals = [], []
    for intervals in REFINEMENTS:
        u, _ = _leapfrog_and_series(intervals, intervals, _times(0.35, 0.7))
        spacings.append(1 / intervals)
        residuals.append(
            max(
                float(one_sided_derivative(u, 1 / intervals, 2, side, dim).abs().max())
                for side in ("left", "right")
                for dim in (-2, -1)  # the walls x = 0, 1 and y = 0, 1
            )
        )
    assert residuals[-1] < 1e-3
    assert fitted_order(spacings, residuals) == pytest.approx(3.0, abs=0.3)


def _discrete_energy(earlier: Tensor, later: Tensor, dt: float) -> Tensor:
    """Leapfrog's conserved energy between two steps (batch, nx, ny) -> (batch,):
    |(u^{k+1} - u^k) / dt|^2 / 2 + c^2 <grad u^{k+1}, grad u^k> / 2, with trapezoid weights
    across each edge (the inner product in which the ghost-point Laplacian is symmetric)."""
    nx, ny = earlier.shape[-2:]
    hx, hy = 1 / (nx - 1), 1 / (ny - 1)
    wx, wy = trapezoid_weights(_grid(nx - 1)), trapezoid_weights(_grid(ny - 1))
    velocity = (later - earlier) / dt
    kinetic = torch.einsum("bxy,x,y->b", velocity**2, wx, wy)
    along_x = torch.einsum("bxy,y->b", earlier.diff(dim=-2) * later.diff(dim=-2), wy) / hx
    along_y = torch.einsum("bxy,x->b", earlier.diff(dim=-1) * later.diff(dim=-1), wx) / hy
    return 0.5 * kinetic + 0.5 * SPEED**2 * (along_x + along_y)


def test_leapfrog_conserves_its_discrete_energy_and_the_exact_energy_to_second_order():
    intervals = 32
    dt = 0.7 / (SPEED * intervals * 2**0.5)
    times = dt * torch.arange(1, 41, dtype=F64)  # every step a frame, to t = 0.48
    x = _grid(intervals)
    u0 = wave_cosine_series_2d(x, x, _times(0.0), SPEED, AMPLITUDES)[:, 0]  # (batch, nx, ny)
    steps = torch.cat([u0[:, None], solve_wave_neumann_2d(u0, SPEED, times, dt)], dim=1)
    energy = torch.stack(
        [_discrete_energy(steps[:, k], steps[:, k + 1], dt) for k in range(times.numel())], dim=1
    )  # (batch, steps)
    torch.testing.assert_close(energy, energy[:, :1].expand_as(energy), rtol=1e-13, atol=0)
    # Exact, at rest: c^2 / 2 * integral |grad u0|^2 = c^2 pi^2 / 2 sum a_mn^2 (m^2 + n^2) w_m w_n,
    # w_0 = 1, w_k = 1/2 (the squared norms of the cosines).
    degree = torch.arange(3, dtype=F64)
    norms = torch.where(degree > 0, 0.5, 1.0)
    exact = (
        0.5
        * (SPEED * torch.pi) ** 2
        * torch.einsum(
            "bmn,mn,m,n->b", AMPLITUDES**2, degree[:, None] ** 2 + degree**2, norms, norms
        )
    )
    relative_gap = (energy[:, 0] - exact).abs() / exact  # (batch,), O(h^2): 0.3% and 0.5% here
    assert float(relative_gap.max()) < 1e-2


def test_leapfrog_batch_equals_one_sample_at_a_time():
    x, times = _grid(12), _times(0.1, 0.2)
    u0 = wave_cosine_series_2d(x, x, _times(0.0), SPEED, AMPLITUDES)[:, 0]  # (batch, nx, ny)
    looped = torch.cat([solve_wave_neumann_2d(u0[b : b + 1], SPEED, times, 0.02) for b in range(2)])
    torch.testing.assert_close(
        solve_wave_neumann_2d(u0, SPEED, times, 0.02), looped, rtol=0, atol=0
    )


def test_leapfrog_takes_the_largest_step_the_2d_courant_limit_allows_and_no_larger():
    intervals = 10
    x = _grid(intervals)
    u0 = wave_cosine_series_2d(x, x, _times(0.0), 1.0, AMPLITUDES)[:, 0]  # (batch, nx, ny)
    limit = 1 / (intervals * 2**0.5)  # c dt sqrt(2) / h = 1, c = 1
    solve_wave_neumann_2d(u0, 1.0, _times(limit), max_dt=limit)  # one step at the limit
    with pytest.raises(ValueError, match=r"Courant number 1\.01 > 1"):
        solve_wave_neumann_2d(u0, 1.0, _times(1.01 * limit), max_dt=1.01 * limit)


@pytest.mark.parametrize(
    ("u0", "times", "match"),
    [
        (torch.zeros(1, 2, 5, dtype=F64), _times(0.1), "at least 3 points per side"),
        (torch.zeros(5, 5, dtype=F64), _times(0.1), r"shape \(batch, nx, ny\)"),
        (torch.full((1, 5, 5), float("nan"), dtype=F64), _times(0.1), "u0 contains NaN"),
        (torch.zeros(1, 5, 5, dtype=F64), _times(0.2, 0.1), "strictly increasing"),
        (torch.zeros(1, 5, 5, dtype=F64), _times(0.1, 0.1), "strictly increasing"),
        (torch.zeros(1, 5, 5, dtype=F64), _times(0.1, 0.3), "equally spaced multiples"),
    ],
    ids=["grid-too-small", "no-batch-axis", "nan", "decreasing", "repeated", "unequal"],
)
def test_leapfrog_refuses_bad_input_naming_the_problem(u0, times, match):
    with pytest.raises(ValueError, match=match):
        solve_wave_neumann_2d(u0, 1.0, times, max_dt=0.01)


def test_wave_2d_refuses_a_speed_that_is_not_positive():
    with pytest.raises(ValueError, match="wave speed must be positive"):
        solve_wave_neumann_2d(torch.zeros(1, 5, 5, dtype=F64), 0.0, _times(0.1), 0.01)
    with pytest.raises(ValueError, match="wave speed must be positive"):
        wave_cosine_series_2d(_grid(4), _grid(4), _times(0.1), -1.0, AMPLITUDES)


# ----------------------------------------------------------------------------- sampler


def test_sampler_data_is_the_exact_series_and_leapfrog_reproduces_it():
    times = 0.04 * torch.arange(1, 26, dtype=F64)  # the 1-D wave problem's frames, to t = 1
    generator = torch.Generator().manual_seed(0)
    u0, frames = sample_wave_2d(3, 33, times, generator, speed=SPEED)
    assert u0.shape == (3, 33, 33) and frames.shape == (3, 25, 33, 33)
    # |a_mn| <= 1 / (m + n + 1): |u0| is at most their sum over m, n < 4, 5.08.
    assert 0.1 < float(u0.abs().max()) < 5.08
    again = sample_wave_2d(3, 33, times, torch.Generator().manual_seed(0), speed=SPEED)
    torch.testing.assert_close(frames, again[1], rtol=0, atol=0)
    # The trapezoid mean is a_00 at every time: every other mode sums to zero on the grid.
    weights = trapezoid_weights(_grid(32))  # (n,)
    mean = frames @ weights @ weights  # (batch, T)
    torch.testing.assert_close(mean, (u0 @ weights @ weights)[:, None].expand_as(mean))
    numerical = solve_wave_neumann_2d(u0, SPEED, times, max_dt=0.5 / (SPEED * 32))
    assert float((numerical - frames).abs().max()) < 2e-2 * float(u0.abs().max())
