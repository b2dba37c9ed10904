"""SoftC residual: zero on exact solutions, the right value otherwise, differentiable."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from lawful.models import AttentiveNeuralProcess, diffusive_flux, pde_residual, softc_penalty

DECAY = 0.7  # heat conductivity k in u = exp(-k t) sin x


def random_points(batch: int, points: int, seed: int, x_low: float = 0.0) -> Tensor:
    """(t, x) pairs with t in [0.5, 1] and x in [x_low, x_low + 0.4]: (batch, points, 2)."""
    generator = torch.Generator().manual_seed(seed)
    unit = torch.rand(batch, points, 2, generator=generator, dtype=torch.float64)
    return torch.stack([0.5 + 0.5 * unit[..., 0], x_low + 0.4 * unit[..., 1]], dim=-1)


def heat_solution(inputs: Tensor) -> Tensor:
    t, x = inputs.unbind(-1)
    return torch.exp(-DECAY * t) * torch.sin(x)


def heat_flux(conductivity: float):
    return diffusive_flux(lambda u: torch.full_like(u, conductivity))


def porous_medium_solution(inputs: Tensor, degree: float) -> Tensor:
    """u = (m relu(t - x))^(1/m), the travelling-wave PME solution (inline: no solver import)."""
    t, x = inputs.unbind(-1)
    return (degree * torch.relu(t - x)).pow(1 / degree)


def test_residual_vanishes_for_the_heat_equation() -> None:
    inputs = random_points(batch=3, points=50, seed=0, x_low=-2.0)
    residual = pde_residual(heat_solution, inputs, heat_flux(DECAY))
    assert residual.shape == (3, 50)
    assert residual.abs().max() < 1e-10


def test_residual_vanishes_for_the_porous_medium_equation_behind_the_front() -> None:
    degree = 2.0
    inputs = random_points(batch=2, points=50, seed=1)  # x <= 0.4 < 0.5 <= t: u > 0 here
    flux = diffusive_flux(lambda u: u.pow(degree))  # F = -u^m u_x
    residual = pde_residual(lambda p: porous_medium_solution(p, degree), inputs, flux)
    assert residual.abs().max() < 1e-10


def test_residual_of_a_wrong_solution_is_its_defect() -> None:
    inputs = random_points(batch=2, points=30, seed=2, x_low=-2.0)
    # u = exp(-k t) sin x with flux -2k u_x: u_t + F_x = -k u + 2k u = k u.
    residual = pde_residual(heat_solution, inputs, heat_flux(2 * DECAY))
    torch.testing.assert_close(residual, DECAY * heat_solution(inputs), rtol=1e-12, atol=1e-12)
    assert residual.abs().max() > 0.1


def test_penalty_gradient_with_respect_to_a_parameter_is_exact() -> None:
    amplitude = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    inputs = random_points(batch=2, points=40, seed=3, x_low=-2.0)
    # u = a exp(-k t) sin x under flux -2k u_x: residual k u, penalty a^2 k^2 mean(s^2), s = u / a.
    penalty = softc_penalty(lambda p: amplitude * heat_solution(p), inputs, heat_flux(2 * DECAY))
    (gradient,) = torch.autograd.grad(penalty, amplitude)
    shape_squared = heat_solution(inputs).square().mean()
    torch.testing.assert_close(penalty, amplitude.detach() ** 2 * DECAY**2 * shape_squared)
    torch.testing.assert_close(gradient, 2 * amplitude.detach() * DECAY**2 * shape_squared)


def tiny_anp_mean():
    torch.manual_seed(0)
    model = AttentiveNeuralProcess(
        input_dim=2, hidden_dim=16, latent_dim=8, num_heads=2, decoder_layers=2
    ).double()
    context_x = random_points(batch=2, points=8, seed=4)
    context_y = heat_solution(context_x)[..., None]  # (2, 8, 1)

    def predict_mean(inputs: Tensor) -> Tensor:
        torch.manual_seed(5)  # the same z at every call
        return model(context_x, context_y, inputs).mean[0]  # (batch, points)

    return model, predict_mean


def test_penalty_trains_an_anp_through_its_mean() -> None:
    model, predict_mean = tiny_anp_mean()
    inputs = random_points(batch=2, points=10, seed=6)
    penalty = softc_penalty(predict_mean, inputs, diffusive_flux(lambda u: u.square()))
    penalty.backward()
    assert penalty > 0
    for name in ("decoder.linears.0", "deterministic_encoder.cross_attentions.1.final_linear"):
        gradient = model.get_submodule(name).linear_layer.weight.grad
        assert gradient is not None and gradient.abs().max() > 0, name


def test_anp_residual_at_a_point_does_not_depend_on_the_other_targets() -> None:
    _, predict_mean = tiny_anp_mean()
    inputs = random_points(batch=2, points=6, seed=7)
    flux = diffusive_flux(lambda u: u.square())
    together = pde_residual(predict_mean, inputs, flux)
    alone = torch.cat([pde_residual(predict_mean, inputs[:, [n]], flux) for n in range(6)], -1)
    torch.testing.assert_close(together, alone)
    assert together.abs().max() > 1e-6


def test_inputs_must_be_time_space_pairs() -> None:
    with pytest.raises(ValueError, match=r"inputs must have shape \(batch, points, 2\)"):
        pde_residual(heat_solution, torch.zeros(2, 5, 3), heat_flux(DECAY))
