"""SoftC: the PDE residual as a soft penalty (physics-informed training of a neural process).

For a conservation law ``u_t + d/dx F(u, u_x) = 0`` in one space dimension, the residual of a
model's predicted mean is computed by automatic differentiation with respect to the input
coordinates ``(t, x)``. The graph is kept (``create_graph=True``), so the penalty
``mean(residual^2)`` can be added to a training loss and differentiated again. For the
generalised porous medium equation u_t = (k(u) u_x)_x the flux is ``F = -k(u) u_x``
(:func:`diffusive_flux`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

__all__ = ["Flux", "diffusive_flux", "pde_residual", "softc_penalty"]

# F(u, u_x) -> flux, elementwise: (batch, points) tensors in and out.
Flux = Callable[[Tensor, Tensor], Tensor]
# Inputs (batch, points, 2) as (t, x) -> predicted mean u (batch, points).
MeanFunction = Callable[[Tensor], Tensor]


def diffusive_flux(diffusivity: Callable[[Tensor], Tensor]) -> Flux:
    """The flux ``F(u, u_x) = -k(u) u_x`` of u_t = (k(u) u_x)_x, for ``diffusivity`` k.

    Porous medium equation of degree m: ``diffusive_flux(lambda u: u.clamp_min(0) ** m)``;
    heat equation: ``diffusive_flux(lambda u: conductivity * torch.ones_like(u))``.
    """

    def flux(u: Tensor, u_x: Tensor) -> Tensor:
        return -diffusivity(u) * u_x

    return flux


def _gradient(outputs: Tensor, inputs: Tensor) -> Tensor:
    """d outputs[b, n] / d inputs[b, n, :], valid because each output depends on its own point."""
    if not outputs.requires_grad:
        # No graph back to the inputs: a constant (e.g. u_x of a u linear in x) has no slope.
        return torch.zeros_like(inputs)
    (gradient,) = torch.autograd.grad(
        outputs.sum(), inputs, create_graph=True, materialize_grads=True
    )
    return gradient  # (batch, points, 2)


def pde_residual(predict_mean: MeanFunction, inputs: Tensor, flux: Flux) -> Tensor:
    """The residual ``u_t + d/dx F(u, u_x)`` of ``u = predict_mean(inputs)``, shape (batch, points).

    ``inputs`` (batch, points, 2) holds ``(t, x)`` pairs. ``predict_mean`` must be pointwise in
    its inputs: the prediction at one point may not depend on the coordinates of another (true of
    an ANP's targets, which attend to the context but not to each other), since derivatives are
    taken through the sum over points. Derivatives are with respect to the coordinates as given
    (their own autograd history, if any, is cut); gradients still reach the parameters of
    ``predict_mean``.
    """
    if inputs.ndim != 3 or inputs.shape[-1] != 2:
        raise ValueError(
            f"inputs must have shape (batch, points, 2) holding (t, x), got {tuple(inputs.shape)}"
        )
    coordinates = inputs.detach().requires_grad_(True)
    # Differentiating twice through attention needs its reference ("math") kernel: the fused
    # CPU kernels (PyTorch's, and lawful's native one, which follows this switch) have no
    # second derivative.
    with sdpa_kernel(SDPBackend.MATH):
        u = predict_mean(coordinates)  # (batch, points)
    if u.shape != coordinates.shape[:2]:
        raise ValueError(
            f"predict_mean must return shape (batch, points) = {tuple(coordinates.shape[:2])}, "
            f"got {tuple(u.shape)}"
        )
    u_t, u_x = _gradient(u, coordinates).unbind(-1)  # each (batch, points)
    flux_x = _gradient(flux(u, u_x), coordinates)[..., 1]  # (batch, points)
    return u_t + flux_x


def softc_penalty(predict_mean: MeanFunction, inputs: Tensor, flux: Flux) -> Tensor:
    """Mean squared PDE residual over all functions and points, a scalar to add to a loss."""
    return pde_residual(predict_mean, inputs, flux).square().mean()
