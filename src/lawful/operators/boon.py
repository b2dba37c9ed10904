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

Cost: the solves need only the entries near the ends, and the responses' end values depend on
the weights alone (once per forward pass). In a 1-D FNO the correction is folded into the layer
itself: a response's spectrum is the spectral weights summed over input channels times the
impulse's known coefficients (no probe batch), it joins the layer's Fourier coefficients before
its one inverse FFT, its pointwise part touches only the end entry, and the near-end slices are
carried from layer to layer, so BOON adds no full-size pass to the layer beyond writing the two
end columns (see :meth:`BoundaryCorrectedFNO._corrected_spectral_layer`).

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
from lawful.operators.fno import FNO1d, FNO2d, FourierLayer, FourierNeuralOperator, pointwise

__all__ = [
    "BoundaryCorrectedFNO",
    "BoundaryCorrectedFNO1d",
    "BoundaryCorrectedFNO2d",
    "BoundaryOverwrite",
    "CorrectedOperator",
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


class _EndSystem:
    """The two boundary equations as rows acting on the entries near the ends of axis ``dim``.

    Only the first and last ``reach`` entries enter the equations, so the 2 x 2 solves work on
    those ``positions`` alone (all of the axis when it is that short): small near-end slices
    ``(..., P, ...)`` instead of full fields, so autograd moves small gradients.
    """

    def __init__(
        self, conditions: BoundaryConditions, spacing: float, n: int, dim: int, like: Tensor
    ) -> None:
        self.conditions, self.spacing, self.dim = conditions, spacing, dim
        self.equations = boundary_equations(conditions, spacing)
        reach = max(len(eq.from_left) + len(eq.from_right) for eq in self.equations)
        if 2 * reach < n:
            positions = torch.cat([torch.arange(reach), torch.arange(n - reach, n)])
        else:
            positions = torch.arange(n)
        self.positions = positions.to(like.device)  # (P,)
        count = len(positions)
        # (equation, P): l(u) = rows @ u_near
        self.rows = torch.stack([equation.row(count, like) for equation in self.equations])
        self.impulses = like.new_zeros(2, count)  # (end, P): 1 at index 0, resp. at index N
        self.impulses[0, 0] = self.impulses[1, -1] = 1
        self.impulse_matrix = self.rows @ self.impulses.T  # (equation, end)
        # The data once per forward pass, not once per layer: a residual is l(0) - l(u), where a
        # keep-current equation (target None) has residual 0 and so reads nothing (zero row).
        zero_shape = [*like.shape[:dim], count, *like.shape[dim + 1 :]]
        zero_shape[1] = 1  # the data are the same in every channel
        zero_field = like.new_zeros(()).expand(zero_shape)  # (batch, 1, ..., P, ...)
        self.targets = torch.stack(
            torch.broadcast_tensors(*(eq.residual(zero_field, dim) for eq in self.equations)), -1
        )  # (batch, 1, *other, 2) or (2,)
        read = like.new_tensor([eq.target is not None for eq in self.equations])  # (equation,)
        self.residual_rows = self.rows * read.unsqueeze(-1)  # (equation, P)
        self.n = n
        self.ends = torch.tensor([0, n - 1], device=like.device)  # (2,) in the field
        self.ends_near = torch.tensor([0, count - 1], device=like.device)  # (2,) in the slice

    def gather(self, field: Tensor) -> Tensor:
        """``field`` at the positions near the ends: ``(..., n, ...) -> (..., P, ...)`` on dim."""
        return field.index_select(self.dim, self.positions)

    def apply(self, near: Tensor) -> Tensor:
        """Both equations on a near-end field: ``(lead, P at dim, *other) -> (lead, *other, 2)``."""
        return near.movedim(self.dim, -1) @ self.rows.T  # (lead, *other, 2)

    def multiples(
        self, output_near: Tensor, responses_near: Tensor, pivot_tolerance: float
    ) -> tuple[Tensor, Tensor]:
        """The correction: ``(multiples, use_impulse)``.

        ``output_near``: the layer's output near the ends, ``(batch, channels, ..., P, ...)``;
        ``responses_near``: its end responses there, ``(2, channels, ..., P, ...)``, scaled to
        max-norm 1 along dim. ``use_impulse (channels, *other)`` is true where that system is
        near-singular and the end impulses replace the responses (see :func:`correct_boundary`);
        ``multiples (batch, channels, *other, 2)`` are those of the chosen vectors.
        """
        # matrix[..., e, j] = l_e(vector j): the weights alone, so the batch meets one matmul.
        matrix = self.apply(responses_near).movedim(0, -1)  # (channels, *other, 2 eq, 2 vectors)
        a, b, c, d = matrix.flatten(-2).unbind(-1)  # each (channels, *other)
        row_sizes = (a.abs() + b.abs()) * (c.abs() + d.abs())
        use_impulse = (a * d - b * c).abs() <= pivot_tolerance * row_sizes  # (channels, *other)
        matrix = torch.where(use_impulse[..., None, None], self.impulse_matrix, matrix)
        a, b, c, d = matrix.flatten(-2).unbind(-1)
        adjugate = torch.stack([d, -b, -c, a], -1).unflatten(-1, (2, 2))  # (channels, *other, 2, 2)
        inverse = adjugate / (a * d - b * c)[..., None, None]  # (channels, *other, vector, eq)
        residuals = self.targets - output_near.movedim(self.dim, -1) @ self.residual_rows.T
        return (inverse @ residuals.unsqueeze(-1)).squeeze(-1), use_impulse  # (batch, ch, .., 2)


def _response_scale(responses: Tensor, dim: int) -> Tensor:
    """Max-norm of each response along ``dim`` (kept), so the pivot tolerance is scale-free.

    Detached: the correction ``sum_j m_j q_j / s_j`` does not depend on the scales ``s_j``.
    """
    tiny = torch.finfo(responses.dtype).tiny
    return responses.detach().abs().amax(dim, keepdim=True).clamp_min(tiny)


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
    axes) has ``|det| <= pivot_tolerance * |row 1| |row 2|`` (responses scaled to max-norm 1),
    solving would add huge multiples of the responses to the interior. There we deliberately use
    the unit vectors ``e_0, e_N`` instead, i.e. overwrite that channel's boundary entries and
    leave its interior alone: exact, bounded, and only where BOON's correction is ill-posed (a
    clamp ``|p| >= tol`` would bound the correction too but no longer hit the boundary data).
    """
    dim = conditions.dim(output.ndim)
    system = _EndSystem(conditions, spacing, output.shape[dim], dim, output)
    responses = responses / _response_scale(responses, dim)
    multiples, use_impulse = system.multiples(
        system.gather(output), system.gather(responses), pivot_tolerance
    )
    impulses = torch.zeros_like(responses)  # (2, channels, *spatial)
    impulses[0].select(dim - 1, 0).fill_(1)
    impulses[1].select(dim - 1, -1).fill_(1)
    vectors = torch.where(use_impulse.unsqueeze(dim - 1), impulses, responses)
    left, right = multiples.unsqueeze(dim).unbind(-1)  # each (batch, channels, ..., 1, ...)
    return torch.addcmul(torch.addcmul(output, left, vectors[0]), right, vectors[1])


def _extend_over_padding(value: BoundaryValue, padding: int) -> BoundaryValue:
    """Time-dependent data ``(batch, time)`` continued over the padded frames by its last frame."""
    if not isinstance(value, Tensor) or value.ndim < 2 or padding == 0:
        return value
    return torch.cat([value, value[..., -1:].expand(*value.shape[:-1], padding)], dim=-1)


class _EndSpectra:
    """What a 1-D layer keeping ``modes`` modes needs about the ends of the grid of ``system``.

    ``impulses (2, modes)``: the kept Fourier coefficients of the unit impulses ``e_0, e_N``, so a
    response's spectrum is a product, not a spectral convolution of probes.
    ``waves (modes * 2, x)``: ``irfft`` of a unit real or imaginary coefficient on each kept mode,
    so ``irfft`` of a few spectra is one small matmul; ``synthesis (modes, 2, P)``: the same near
    the ends, so ``irfft(X)`` there is an O(modes) sum.
    """

    def __init__(self, modes: int, system: _EndSystem, like: Tensor) -> None:
        impulses = like.new_zeros(2, system.n)  # (end, x)
        impulses[0, 0] = impulses[1, -1] = 1
        self.impulses = torch.fft.rfft(impulses)[:, :modes]  # (end, modes)
        eye = torch.eye(modes, dtype=like.dtype, device=like.device)  # (modes, modes)
        units = torch.stack([torch.complex(eye, 0 * eye), torch.complex(0 * eye, eye)])
        waves = torch.fft.irfft(units, n=system.n).transpose(0, 1)  # (modes, 2, x)
        self.waves = waves.flatten(0, 1)  # (modes * 2, x): irfft as a matmul on view_as_real
        self.synthesis = system.gather(waves)  # (modes, 2, P)

    def near_ends(self, spectrum: Tensor) -> Tensor:
        """``irfft(spectrum)`` near the ends: ``(lead, channels, modes) -> (lead, channels, P)``."""
        return torch.einsum("lokr,krp->lop", torch.view_as_real(spectrum), self.synthesis)


def _identity(v: Tensor) -> Tensor:
    return v


class CorrectedOperator(nn.Module):
    """What every boundary-corrected operator answers: its output, or the output of each
    corrected layer, for this batch's boundary data; subclasses implement ``_run``."""

    def forward(
        self, x: Tensor, left: BoundaryValue | None = None, right: BoundaryValue | None = None
    ) -> Tensor:
        return self._run(x, left, right, keep_states=False)[0]

    def hidden_states(
        self, x: Tensor, left: BoundaryValue | None = None, right: BoundaryValue | None = None
    ) -> list[Tensor]:
        """The output of each corrected layer (after its activation), padding cropped."""
        return self._run(x, left, right, keep_states=True)[1]

    def _run(
        self, x: Tensor, left: BoundaryValue | None, right: BoundaryValue | None, keep_states: bool
    ) -> tuple[Tensor, list[Tensor]]:
        """The output, and the hidden states when ``keep_states`` (else an empty list)."""
        raise NotImplementedError


class BoundaryCorrectedFNO(CorrectedOperator):
    """An FNO whose every Fourier layer, and output, satisfies ``conditions`` exactly.

    The conditions give the kinds of condition and default boundary data; ``forward(x, left,
    right)`` takes this batch's data for either end (float, ``(batch,)`` or ``(batch, *other)``,
    e.g. ``(batch, time)`` for a space + time model; see lawful.constraints.boundary). Hidden
    layers are held to the same data in every channel; after the activation the boundary entries
    are set again, so no nonlinearity disturbs them. The FNO's own weights are used.

    On 1-D FNOs the correction is folded into the layer (:meth:`_corrected_spectral_layer`):
    no full-size pass beyond the plain layer's. Other layers (space + time) add the corrections
    to the layer's output (:func:`correct_boundary`).
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

    def _run(
        self, x: Tensor, left: BoundaryValue | None, right: BoundaryValue | None, keep_states: bool
    ) -> tuple[Tensor, list[Tensor]]:
        conditions = self.conditions.with_values(left, right)
        conditions.validate(torch.Size((x.shape[0], self.fno.out_channels, *x.shape[2:])))
        n = x.shape[self.dim]
        spacing = self.fno.spacing(self.dim - 2, n)
        v = self.fno.lift(x)  # (batch, width, *padded spatial)
        system = _EndSystem(self._padded(conditions), spacing, n, self.dim, v)
        if self.fno.spatial_ndim == 1:
            return self._run_spectral(v, system, keep_states)
        states = []
        for index, layer in enumerate(self.fno.layers):
            activation = F.gelu if index < len(self.fno.layers) - 1 else _identity
            v = self._with_exact_ends(activation(self._corrected_layer(layer, v, system)), system)
            if keep_states:
                states.append(v.narrow(-1, 0, v.shape[-1] - self.fno.padding))
        return apply_boundary_conditions(self.fno.project(v), conditions, spacing), states

    def _run_spectral(
        self, v: Tensor, system: _EndSystem, keep_states: bool
    ) -> tuple[Tensor, list[Tensor]]:
        """The 1-D layers with the correction folded in; the exact end entries are carried, not
        written: ``v`` is the field except at its two ends, where it is off by ``end_delta``
        ``(batch, width, 2)``. The next layer adds that to its Fourier coefficients (a rank-2
        term) and reads its near-end slice from ``v_near``, which is exact; so no full-size
        field is ever rewritten (a write and its backward cost two passes per layer)."""
        spectra = _EndSpectra(self.fno.layers[0].spectral.modes, system, v)
        v_near = system.gather(v)  # (batch, width, P)
        end_delta = None
        states = []
        for index, layer in enumerate(self.fno.layers):
            output, output_near = self._corrected_spectral_layer(
                layer, v, v_near, end_delta, system, spectra
            )
            activation = F.gelu if index < len(self.fno.layers) - 1 else _identity
            v, v_near = activation(output), activation(output_near)
            v_near = apply_boundary_conditions(v_near, system.conditions, system.spacing)
            exact_ends = v_near.index_select(-1, system.ends_near)  # (batch, width, 2)
            end_delta = exact_ends - v.index_select(-1, system.ends)  # (batch, width, 2)
            if keep_states:
                states.append(v.index_copy(-1, system.ends, exact_ends))
        # The projection is pointwise: only its end entries need the exact ends of v.
        output = self.fno.project(v)  # (batch, out, x), off at its two end entries
        output_ends = self.fno.project(v_near.index_select(-1, system.ends_near))  # (b, out, 2)
        output = output.index_copy(-1, system.ends, output_ends)  # out has few channels: cheap
        # A 1-D FNO has no padding: the system's conditions and spacing are the output's.
        return apply_boundary_conditions(output, system.conditions, system.spacing), states

    def _corrected_layer(self, layer: FourierLayer, v: Tensor, system: _EndSystem) -> Tensor:
        """The layer's output plus the correction, added as full-size vectors."""
        responses = boundary_responses(
            partial(layer.linear, bias=False), self.fno.width, tuple(v.shape[2:]), self.dim, v
        )  # (2, width, *padded spatial)
        return correct_boundary(
            layer(v), responses, system.conditions, system.spacing, self.pivot_tolerance
        )

    def _corrected_spectral_layer(
        self,
        layer: FourierLayer,
        v: Tensor,
        v_near: Tensor,
        end_delta: Tensor | None,
        system: _EndSystem,
        ends: _EndSpectra,
    ) -> tuple[Tensor, Tensor]:
        """A 1-D layer ``irfft(X) + W v + b`` with the correction folded in: returns the corrected
        output ``(batch, width, x)``, except at its two end entries (the caller tracks those), and
        the corrected output near the ends ``(batch, width, P)``, end entries included.

        ``v_near`` is the layer's input near the ends; ``v`` is that input except at its two end
        entries, which are off by ``end_delta`` ``(batch, width, 2)`` (``None``: not off). A
        response ``q = L_lin(e 1)`` (an impulse ``e`` in every input channel) is
        ``irfft(Q) + W e 1``: its spectrum is the spectral weights summed over input channels
        times ``e``'s coefficients, and its pointwise part is ``W``'s row sums on the end entry
        alone. So the multiples of the spectral parts join ``X`` before the one inverse FFT, and
        everything near the ends is computed from small tensors: O(modes) sums
        (:meth:`_EndSpectra.near_ends`) instead of inverse FFTs, ``v_near`` instead of ``v``.
        """
        spectral, n = layer.spectral, v.shape[-1]
        coefficients = spectral.coefficients(v)  # (batch, width, modes)
        if end_delta is not None:  # the input's true ends: add their impulses' coefficients
            coefficients = coefficients + end_delta.to(coefficients.dtype) @ ends.impulses
        mixed = spectral.mix(coefficients)  # (batch, width, modes)
        # (batch, width, P): the layer's output near the ends, before the correction.
        output_near = ends.near_ends(mixed) + pointwise(layer.pointwise, v_near)

        weight = torch.view_as_complex(spectral.weight)  # (in, width, modes)
        response_spectra = weight.sum(0) * ends.impulses.unsqueeze(1)  # (2, width, modes)
        response_ends = layer.pointwise.weight.sum(1)  # (width,): W 1, on the end entry
        with torch.no_grad():  # the correction is independent of the scale (_response_scale)
            responses = torch.view_as_real(response_spectra).flatten(-2) @ ends.waves  # (2, w, x)
            responses[0, :, 0] += response_ends
            responses[1, :, -1] += response_ends
            scale = _response_scale(responses, -1)  # (2, width, 1)
        response_spectra = response_spectra / scale  # (2, width, modes)
        pointwise_near = response_ends.unsqueeze(-1) * system.impulses.unsqueeze(1) / scale
        responses_near = ends.near_ends(response_spectra) + pointwise_near  # (2, width, P)

        multiples, use_impulse = system.multiples(output_near, responses_near, self.pivot_tolerance)
        keep = (~use_impulse).unsqueeze(-1)  # (width, 1): channels corrected along the responses
        spectra = torch.where(keep, response_spectra, 0).transpose(0, 1)  # (width, 2, modes)
        # Real multiples times complex spectra, summed over the two responses: no complex matmul.
        correction = (multiples.unsqueeze(-1) * spectra).sum(-2)  # (batch, width, modes)
        output = torch.fft.irfft(mixed + correction, n=n) + pointwise(layer.pointwise, v)
        vectors_near = torch.where(keep, responses_near, system.impulses.unsqueeze(1))
        corrected_near = output_near + torch.einsum("boj,jop->bop", multiples, vectors_near)
        return output, corrected_near  # (batch, width, x), (batch, width, P)

    def _with_exact_ends(self, field: Tensor, system: _EndSystem) -> Tensor:
        """``field`` with its end entries set so the conditions hold exactly."""
        exact_near = apply_boundary_conditions(
            system.gather(field), system.conditions, system.spacing
        )
        ends = exact_near.index_select(self.dim, system.ends_near)  # (batch, width, ..2..)
        return field.index_copy_(self.dim, system.ends, ends)  # 2 columns written in place

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
