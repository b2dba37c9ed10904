"""BOON: boundary-corrected Fourier neural operators (Saad et al., ICLR 2023).

Each Fourier layer ``z = L v`` (``L = K + W`` plus a bias) is refined so that ``z`` satisfies the
boundary conditions along one axis, for any input; the final output is then set exactly. See
shared/notes/boon.md for the method.

Our correction acts on the layer's *output*, one 2 x 2 system per output channel:

    z_corrected = L v + c_L q_L + c_R q_R,

where ``q_L = L_lin(e_0 1)`` and ``q_R = L_lin(e_N 1)`` are the layer's (bias-free) responses to a
unit impulse at each end, put in every input channel at once, and ``c_L, c_R`` solve the two
boundary equations (lawful.constraints.boundary.boundary_equations) for that output channel.
Why the output, not the input ``v + d_0 e_0 + d_N e_N`` of the note: with channel mixing, input
corrections per input channel give ``2 out`` equations in ``2 in`` unknowns, which has no exact
solution when ``in < out`` and is badly conditioned at width 64. Per output channel the system is
always 2 x 2, so the correction is exact for any channel mixing; on one channel it *is* the
note's correction (``K y = K v + d_0 K e_0 + d_N K e_N``). The interior moves only along the
layer's own boundary responses, as in BOON.

Cost: the two probes are one application of the layer to a batch of 2 (not the data batch), once
per forward pass; the rest is elementwise work on boundary slices.

Each correction acts along one axis ``dim`` and broadcasts over the others (e.g. every time frame
of a space + time model, each with its own boundary data), so a 2-D model can correct one axis
after the other.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lawful.constraints.boundary import (
    BoundaryConditions,
    BoundaryValue,
    apply_boundary_conditions,
    boundary_equations,
)
from lawful.operators.fno import FNO1d, FNO2d, FourierNeuralOperator

__all__ = [
    "BoundaryCorrectedFNO",
    "BoundaryCorrectedFNO1d",
    "BoundaryCorrectedFNO2d",
    "BoundaryOverwrite",
    "boundary_responses",
    "correct_boundary",
]

# At initialisation the systems are far from singular (|det| / (|row 1| |row 2|) ~ 0.997 for
# width 64, modes 16, n 500): the fallback below is for degenerate weights, not the common case.
DEFAULT_PIVOT_TOLERANCE = 1e-2


def boundary_responses(
    linear_map: Callable[[Tensor], Tensor],
    in_channels: int,
    spatial_shape: tuple[int, ...],
    dim: int,
    like: Tensor,
) -> Tensor:
    """``linear_map`` applied to unit impulses at the two ends of ``dim``: ``(2, out, *spatial)``.

    Probe 0 is 1 at index 0 of ``dim`` and probe 1 at index N, in every input channel and along
    every other axis, 0 elsewhere. ``dim`` indexes a field ``(batch, channels, *spatial)``;
    ``like`` gives the dtype and device. ``linear_map`` must be linear (no bias).
    """
    n = spatial_shape[dim - 2]
    probes = like.new_zeros(2, in_channels, *spatial_shape)  # (2, in, *spatial)
    probes[0].select(dim - 1, 0).fill_(1)
    probes[1].select(dim - 1, n - 1).fill_(1)
    return linear_map(probes)  # (2, out, *spatial)


def correct_boundary(
    output: Tensor,
    responses: Tensor,
    conditions: BoundaryConditions,
    spacing: float,
    pivot_tolerance: float = DEFAULT_PIVOT_TOLERANCE,
) -> Tensor:
    """A layer's ``output`` plus the multiples of its boundary ``responses`` that satisfy the
    conditions (module docstring), up to rounding: follow it with
    :func:`~lawful.constraints.boundary.apply_boundary_conditions` to make the ends exact.

    ``output``: ``(batch, channels, *spatial)``; ``responses``: ``(2, channels, *spatial)`` from
    :func:`boundary_responses`.

    Near-singular systems: where the 2 x 2 matrix of an output channel (and slice along the other
    axes) has ``|det| <= pivot_tolerance * |row 1| |row 2|``, solving would add huge multiples of
    the responses to the interior. There we deliberately use the unit vectors ``e_0, e_N``
    instead, i.e. overwrite that channel's boundary entries and leave its interior alone: exact,
    bounded, and only where BOON's correction is ill-posed (a clamp ``|p| >= tol`` would bound
    the correction too but no longer hit the boundary data).
    """
    dim = conditions.dim(output.ndim)
    n = output.shape[dim]
    # Scale each response to max-norm 1 along dim so the tolerance is scale-free.
    responses = responses / responses.abs().amax(dim, keepdim=True).clamp_min(
        torch.finfo(responses.dtype).tiny
    )
    unit = torch.zeros_like(responses)  # (2, channels, *spatial)
    unit[0].select(dim - 1, 0).fill_(1)
    unit[1].select(dim - 1, n - 1).fill_(1)

    first, second = boundary_equations(conditions, spacing)

    def system(vectors: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # Equation rows applied to the left/right correction vectors: each (channels, *other).
        return (
            first.evaluate(vectors[0], dim - 1),
            first.evaluate(vectors[1], dim - 1),
            second.evaluate(vectors[0], dim - 1),
            second.evaluate(vectors[1], dim - 1),
        )

    a, b, c, d = system(responses)
    row_sizes = (a.abs() + b.abs()) * (c.abs() + d.abs())
    singular = (a * d - b * c).abs() <= pivot_tolerance * row_sizes  # (channels, *other)
    vectors = torch.where(singular.unsqueeze(dim - 1), unit, responses)  # no host sync
    a, b, c, d = system(vectors)
    determinant = a * d - b * c

    # The equations read only the entries near the ends: gather those once, so the backward
    # pass scatters one small gradient instead of one full-size gradient per equation.
    reach = max(len(eq.from_left) + len(eq.from_right) for eq in (first, second))
    if 2 * reach < n:
        ends = torch.cat([torch.arange(reach), torch.arange(n - reach, n)]).to(output.device)
        output_near_ends = output.index_select(dim, ends)  # (batch, channels, ..., 2 reach, ...)
    else:
        output_near_ends = output
    r1 = first.residual(output_near_ends, dim)  # (batch, channels, *other)
    r2 = second.residual(output_near_ends, dim)
    left_multiple = ((r1 * d - r2 * b) / determinant).unsqueeze(dim)  # (batch, channels, 1...)
    right_multiple = ((a * r2 - c * r1) / determinant).unsqueeze(dim)
    corrected = torch.addcmul(output, left_multiple, vectors[0])
    return torch.addcmul(corrected, right_multiple, vectors[1])


def _extend_over_padding(value: BoundaryValue, padding: int) -> BoundaryValue:
    """Time-dependent data ``(batch, time)`` continued over the padded frames by its last frame."""
    if not isinstance(value, Tensor) or value.ndim < 2 or padding == 0:
        return value
    return torch.cat([value, value[..., -1:].expand(*value.shape[:-1], padding)], dim=-1)


class BoundaryCorrectedFNO(nn.Module):
    """An FNO whose every Fourier layer, and output, satisfies ``conditions`` exactly.

    The conditions give the kinds of condition and default boundary data; ``forward(x, left,
    right)`` takes this batch's data for either end (float, ``(batch,)`` or ``(batch, *other)``,
    e.g. ``(batch, time)`` for a space + time model; see lawful.constraints.boundary). Hidden
    layers are held to the same data in every channel; activations are followed by setting the
    boundary entries again, so no nonlinearity disturbs them. The FNO's own weights are used.
    """

    def __init__(
        self,
        fno: FourierNeuralOperator,
        conditions: BoundaryConditions,
        pivot_tolerance: float = DEFAULT_PIVOT_TOLERANCE,
    ) -> None:
        super().__init__()
        field_ndim = 2 + fno.spatial_ndim
        self.dim = conditions.dim(field_ndim)
        if fno.padding and self.dim == field_ndim - 1:
            raise ValueError(
                "the FNO zero-pads its last spatial axis, so that axis has no fixed ends to "
                f"constrain; pick another axis than {conditions.axis} or use padding=0"
            )
        self.fno, self.conditions, self.pivot_tolerance = fno, conditions, pivot_tolerance

    def forward(
        self, x: Tensor, left: BoundaryValue | None = None, right: BoundaryValue | None = None
    ) -> Tensor:
        return self._run(x, left, right)[0]

    def hidden_states(
        self, x: Tensor, left: BoundaryValue | None = None, right: BoundaryValue | None = None
    ) -> list[Tensor]:
        """The output of each corrected Fourier layer (after its activation), padding cropped."""
        return self._run(x, left, right)[1]

    def _run(
        self, x: Tensor, left: BoundaryValue | None, right: BoundaryValue | None
    ) -> tuple[Tensor, list[Tensor]]:
        conditions = self.conditions.with_values(left, right)
        conditions.validate(torch.Size((x.shape[0], self.fno.out_channels, *x.shape[2:])))
        n = x.shape[self.dim]
        spacing = self.fno.spacing(self.dim - 2, n)
        hidden_conditions = self._padded(conditions)
        v = self.fno.lift(x)  # (batch, width, *padded spatial)
        states = []
        for index, layer in enumerate(self.fno.layers):
            responses = boundary_responses(
                partial(layer.linear, bias=False),
                self.fno.width,
                tuple(v.shape[2:]),
                self.dim,
                v,
            )  # (2, width, *padded spatial)
            v = correct_boundary(
                layer(v), responses, hidden_conditions, spacing, self.pivot_tolerance
            )
            if index < len(self.fno.layers) - 1:
                v = F.gelu(v)  # then the ends are set again: no activation at boundary points
            v = apply_boundary_conditions(v, hidden_conditions, spacing)
            states.append(v.narrow(-1, 0, v.shape[-1] - self.fno.padding))
        return apply_boundary_conditions(self.fno.project(v), conditions, spacing), states

    def _padded(self, conditions: BoundaryConditions) -> BoundaryConditions:
        """The conditions on the padded hidden grid: time-dependent data gets padded frames."""
        if conditions.is_periodic or not self.fno.padding:
            return conditions
        left, right = (
            _extend_over_padding(end.value, self.fno.padding)
            for end in (conditions.left, conditions.right)
        )
        return conditions.with_values(left, right)


class BoundaryCorrectedFNO1d(BoundaryCorrectedFNO):
    """BOON on an :class:`FNO1d`: ``(batch, channels, x)``, conditions along x."""

    def __init__(
        self,
        fno: FNO1d,
        conditions: BoundaryConditions,
        pivot_tolerance: float = DEFAULT_PIVOT_TOLERANCE,
    ) -> None:
        super().__init__(fno, conditions, pivot_tolerance)


class BoundaryCorrectedFNO2d(BoundaryCorrectedFNO):
    """BOON on a space + time :class:`FNO2d`: conditions along x (``axis=2``) at every frame."""

    def __init__(
        self,
        fno: FNO2d,
        conditions: BoundaryConditions,
        pivot_tolerance: float = DEFAULT_PIVOT_TOLERANCE,
    ) -> None:
        super().__init__(fno, conditions, pivot_tolerance)


class BoundaryOverwrite(nn.Module):
    """The baseline: any ``model``'s output with its boundary entries overwritten.

    ``length`` is the extent of the constrained axis (grid step ``length / (n - 1)``, used by
    Neumann stencils). ``forward(x, left, right)`` takes boundary data as
    :class:`BoundaryCorrectedFNO` does.
    """

    def __init__(self, model: nn.Module, conditions: BoundaryConditions, length: float = 1.0):
        super().__init__()
        self.model, self.conditions, self.length = model, conditions, length

    def forward(
        self, x: Tensor, left: BoundaryValue | None = None, right: BoundaryValue | None = None
    ) -> Tensor:
        output = self.model(x)
        conditions = self.conditions.with_values(left, right)
        conditions.validate(output.shape)
        n = output.shape[conditions.dim(output.ndim)]
        return apply_boundary_conditions(output, conditions, self.length / (n - 1))
