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

A correction along one axis ``dim`` broadcasts over the other axes (e.g. every time frame of a
space + time model, each with its own boundary data, or each y slice of a model over (x, y)
whose x walls alone are constrained).

**Walls on x and y** (:class:`~lawful.constraints.walls.Walls` on an :class:`FNOxy` or
:class:`FNOxyt`) cannot be corrected one axis after the other: the correction that fixes the
y walls is not zero on the x walls, so a second pass undoes the first. Each layer solves the
equations of all walls together instead (:meth:`BoundaryCorrectedFNO._corrected_wall_layer`):

- Vectors: the spectral conv is exactly circular-shift-equivariant in (x, y) (neither axis is
  padded), so the layer's bias-free response to a unit impulse at wall entry ``w`` (in every
  input channel; with time, constant over time) is the shift by ``w`` of one *kernel image*
  per output channel, ``k_o = irfft2(sum_i K_io) + (W 1)_o delta_0``. The correction is
  ``sum_w c_w shift_w(k_o)``, one multiple per (sample, channel, wall entry, frame): the layer's
  own responses, as in BOON.
- System: one equation per wall entry, ``m = 2 nx + 2 ny - 4`` of them (a corner is one unknown
  with one equation, by the corner rule of lawful.constraints.walls): the 1-D boundary
  equations along each wall's normal. ``A[e, w] = l_e(shift_w k_o)`` is a gather from ``k_o``
  (no probes), depends on the weights alone, and is LU-factored once per layer and forward pass
  for all output channels; the residuals of every sample and frame are then one batched solve.
- With time the vectors are the responses to impulses constant over time (temporal mode 0):
  the same at every frame, only the multiples vary per frame, so one ``A`` serves every frame
  and the walls hold exactly at each. That is our choice of vectors, not an approximation of
  the conditions.
- Folded into the layer: the correction's spectrum is ``K~_o`` times the Fourier coefficients
  of the wall-supported multiples, which are separable line transforms along each wall; it is
  added to the layer's spectrum before its one inverse FFT. (With time, ``K~_o`` is the
  Hermitian part of the weights at temporal mode 0, on the kept (x, y) modes and their
  negatives, so the one 3-D inverse FFT applies the same real kernel image at every frame.)
  Only the strips, a few points wide along each wall, are needed besides: the plain layer and
  the correction there are the inverse transform evaluated on the strips (no second full
  one), and the strips are carried from layer to layer, so nothing is gathered back from a
  full field.
- Near-singular ``A`` (degenerate weights): an output channel whose LU pivots satisfy
  ``min |u_ii| <= pivot_tolerance * max |u_ii|`` uses unit impulses at the wall entries
  instead, i.e. overwrites its wall entries and leaves its interior alone (as in 1-D).
- After the activation the wall entries are set exactly
  (:func:`~lawful.constraints.walls.apply_walls` on the strips, then written into the field),
  and the output after the projection, so rounding and the nonlinearity never disturb them.

Cost per layer and forward pass on an ``nx x ny (x T)`` grid with ``m`` wall entries, width
``w``, batch ``B``: the plain layer's FFTs and matmuls (the folded correction enlarges the
spectrum the inverse FFT reads, not the FFT), plus an ``m x m`` LU per channel (``O(w m^3)``,
independent of the batch), one solve for ``B T`` right-hand sides (``O(w m^2 B T)``, and as
much in the backward, which reuses the factors; with ``B T >= m`` both go through ``A^-1``,
formed once from the factors, as matrix products), the inverse transform on the strips (one
small product per axis, ``O(B w r (nx + ny) T modes)`` for stencil reach ``r``, for the plain
layer and again for the correction), the line transforms (``O(B w T (nx + ny) modes)``), and
one write of the wall entries (one full-size pass in the backward). Measured against the
plain FNO's training step by ``lawful bench`` (the row for the cavity's FNOxyt: 50 x 50 x 25,
width 20, 8 modes, batch 10, Dirichlet on all four walls, where the ``B T`` frames amortise
the LU). An FNOxy's layers are cheap next to its LUs (32 of 252 x 252 on 64 x 64 at width 32),
so there the correction costs relatively more.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache, partial, wraps
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from lawful.constraints._checks import field_precision
from lawful.constraints.boundary import (
    BoundaryConditions,
    BoundaryEquation,
    BoundaryValue,
    apply_boundary_conditions,
    boundary_equations,
)
from lawful.constraints.walls import X_DIM, Y_DIM, WallLine, Walls, apply_walls, wall_equations
from lawful.native import (
    EndConstants,
    EndGrid,
    end_correction_backward,
    end_correction_forward,
    native_library,
)
from lawful.operators.fno import (
    FNO1d,
    FNO2d,
    FourierLayer,
    FourierNeuralOperator,
    batched_product,
    fft_any_batch,
    pointwise,
)

__all__ = [
    "BoundaryCorrectedFNO",
    "BoundaryCorrectedFNO1d",
    "BoundaryCorrectedFNO2d",
    "BoundaryOverwrite",
    "CorrectedOperator",
    "boundary_responses",
    "correct_boundary",
]

T = TypeVar("T")

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


def _near_both_ends(equations: tuple[BoundaryEquation, ...], n: int) -> Tensor:
    """``(P,)``: the indices along an axis that its two end equations read, both ends
    included (all of the axis when it is that short)."""
    reach = max(len(eq.from_left) + len(eq.from_right) for eq in equations)
    if 2 * reach < n:
        return torch.cat([torch.arange(reach), torch.arange(n - reach, n)])
    return torch.arange(n)


def _determinant(matrix: Tensor) -> Tensor:
    """``a d - b c`` of each 2 x 2 matrix ``(..., 2, 2)``: ``(...)``."""
    a, b, c, d = matrix.flatten(-2).unbind(-1)
    return a * d - b * c


def _shared(build: Callable[..., T]) -> Callable[..., T]:
    """``build``, cached: one object per arguments, shared by every forward pass. Built with
    autocast off, so that what is shared does not depend on the context of its first use (a
    system first built inside a bf16-autocast training step would otherwise carry bf16-rounded
    targets into float32 evaluation)."""

    @lru_cache(maxsize=32)
    @wraps(build)
    def shared(*arguments: object) -> T:
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return build(*arguments)

    return shared


def _without_data(conditions: BoundaryConditions) -> BoundaryConditions:
    """The same kinds of condition with zero boundary data: all that the equations' rows and
    the exact ends' linear part depend on (and, with float data, hashable)."""
    return conditions if conditions.is_periodic else conditions.with_values(0.0, 0.0)


class _EndGrid:
    """What the two end equations are on ``n`` points spaced ``spacing``, whatever the data:
    the part of :class:`_EndSystem` every forward pass shares, built once (:func:`_end_grid`)."""

    def __init__(
        self,
        kinds: BoundaryConditions,
        spacing: float,
        n: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        like = torch.empty((), dtype=dtype, device=device)
        self.n = n
        equations = boundary_equations(kinds, spacing)
        positions = _near_both_ends(equations, n)
        self.positions = positions.to(device)  # (P,)
        count = len(positions)
        # (equation, P): l(u) = rows @ u_near
        self.rows = torch.stack([equation.row(count, like) for equation in equations])
        self.impulses = like.new_zeros(2, count)  # (end, P): 1 at index 0, resp. at index N
        self.impulses[0, 0] = self.impulses[1, -1] = 1
        self.impulse_matrix = self.rows @ self.impulses.T  # (equation, end)
        self.impulse_determinant = _determinant(self.impulse_matrix)  # ()
        self.adjugate_signs = like.new_tensor([[1.0, -1.0], [-1.0, 1.0]])
        # A keep-current equation (target None) has residual 0 and so reads nothing (zero row).
        read = like.new_tensor([eq.target is not None for eq in equations])  # (equation,)
        self.residual_rows = self.rows * read.unsqueeze(-1)  # (equation, P)
        self.ends = torch.tensor([0, n - 1], device=device)  # (2,) in the field
        self.ends_near = torch.tensor([0, count - 1], device=device)  # (2,) in the slice
        # apply_boundary_conditions on a 1-D near-end slice is affine in it: its end entries are
        # end_rows @ a + (the data's part, per batch); the unit vectors under zero data give
        # the rows.
        probes = torch.eye(count, dtype=dtype, device=device).unsqueeze(1)  # (P, 1, P)
        along_probes = dataclasses.replace(kinds, axis=-1)
        exact = apply_boundary_conditions(probes, along_probes, spacing)[:, 0]  # (probe, P)
        self.end_rows = exact.index_select(1, self.ends_near).T  # (end, P)


@_shared
def _end_grid(
    kinds: BoundaryConditions, spacing: float, n: int, dtype: torch.dtype, device: torch.device
) -> _EndGrid:
    return _EndGrid(kinds, spacing, n, dtype, device)


class _EndSystem:
    """The two boundary equations as rows acting on the entries near the ends of axis ``dim``.

    Only the first and last ``reach`` entries enter the equations, so the 2 x 2 solves work on
    those ``positions`` alone (all of the axis when it is that short): small near-end slices
    ``(..., P, ...)`` instead of full fields, so autograd moves small gradients. The rows and
    positions are the grid's (:class:`_EndGrid`, shared); the targets are this batch's data.
    """

    def __init__(
        self, conditions: BoundaryConditions, spacing: float, n: int, dim: int, like: Tensor
    ) -> None:
        self.conditions, self.spacing, self.dim, self.n = conditions, spacing, dim, n
        grid = _end_grid(_without_data(conditions), spacing, n, like.dtype, like.device)
        self.grid, self.positions = grid, grid.positions
        self.ends, self.ends_near = grid.ends, grid.ends_near
        self.rows, self.residual_rows, self.impulses = grid.rows, grid.residual_rows, grid.impulses
        self.impulse_matrix = grid.impulse_matrix
        self.impulse_determinant, self.adjugate_signs = (
            grid.impulse_determinant,
            grid.adjugate_signs,
        )
        # The data once per forward pass, not once per layer: a residual is l(0) - l(u).
        count = len(self.positions)
        zero_shape = [*like.shape[:dim], count, *like.shape[dim + 1 :]]
        zero_shape[1] = 1  # the data are the same in every channel
        zero_field = like.new_zeros(()).expand(zero_shape)  # (batch, 1, ..., P, ...)
        equations = boundary_equations(conditions, spacing)
        self.targets = torch.stack(
            torch.broadcast_tensors(*(eq.residual(zero_field, dim) for eq in equations)), -1
        )  # (batch, 1, *other, 2) or (2,)

    def exact_end_values(self, batch: int) -> Tensor:
        """The data's part of the exact end entries of a 1-D near-end slice (the linear part is
        ``grid.end_rows``): ``(batch, 2)``, from a zero slice under the data."""
        zero = self.rows.new_zeros(batch, 1, len(self.positions))
        values = apply_boundary_conditions(zero, self.conditions, self.spacing)[:, 0]
        return values.index_select(1, self.ends_near)  # (batch, 2)

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
        ``multiples (batch, channels, *other, 2)`` are those of the chosen vectors. In the
        field's precision (float32 inside a mixed-precision step too): autocast would run the
        products in bf16, and the correction would miss the data by bf16's rounding.
        """
        with field_precision(output_near):  # its two products; the rest is elementwise
            # matrix[..., e, j] = l_e(vector j): the weights alone, so the batch meets one matmul.
            matrix = self.apply(responses_near).movedim(0, -1)  # (channels, *other, 2 eq, 2 vec)
            residuals = self.targets - output_near.movedim(self.dim, -1) @ self.residual_rows.T
        determinant = _determinant(matrix)  # (channels, *other)
        with torch.no_grad():  # a decision on the systems, not a function to differentiate
            row_sizes = matrix.abs().sum(-1).prod(-1)  # |row 1| |row 2|
            use_impulse = determinant.abs() <= pivot_tolerance * row_sizes  # (channels, *other)
        matrix = torch.where(use_impulse[..., None, None], self.impulse_matrix, matrix)
        determinant = torch.where(use_impulse, self.impulse_determinant, determinant)
        # adj [[a, b], [c, d]] = [[d, -b], [-c, a]]: flipped on both axes, transposed, signed
        adjugate = matrix.flip(-2, -1).mT * self.adjugate_signs  # (channels, *other, 2, 2)
        inverse = adjugate / determinant[..., None, None]  # (channels, *other, vector, eq)
        # The 2 x 2 products as a product and a sum: a broadcast matmul over the batch would
        # expand and reshape both operands first.
        multiples = (inverse * residuals.unsqueeze(-2)).sum(-1)  # (batch, channels, *other, 2)
        return multiples, use_impulse


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
    system = _end_system(conditions, spacing, output.shape[dim], dim, output)
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


def _constant_data(conditions: BoundaryConditions) -> bool:
    """Whether the boundary data are plain numbers, not per-sample tensors: then all the end
    corrections read about them is the same for every batch of one shape (and cached)."""
    ends = (conditions.left, conditions.right)
    return all(isinstance(getattr(end, "value", 0.0), (int, float)) for end in ends)


def _end_system(
    conditions: BoundaryConditions, spacing: float, n: int, dim: int, like: Tensor
) -> _EndSystem:
    """:class:`_EndSystem` of ``like``'s batch, shared by every forward pass of that shape where
    the data are numbers (:func:`_constant_data`)."""
    if not _constant_data(conditions):
        return _EndSystem(conditions, spacing, n, dim, like)
    shape = (*like.shape[:dim], *like.shape[dim + 1 :])  # what the targets' shape depends on
    return _shared_end_system(conditions, spacing, n, dim, shape, like.dtype, like.device)


@_shared
def _shared_end_system(
    conditions: BoundaryConditions,
    spacing: float,
    n: int,
    dim: int,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
) -> _EndSystem:
    like = torch.empty(()).to(dtype=dtype, device=device).expand(*shape[:dim], n, *shape[dim:])
    return _EndSystem(conditions, spacing, n, dim, like)


def _end_spectra(modes: int, system: _EndSystem, like: Tensor) -> _EndSpectra:
    """:class:`_EndSpectra` of ``system`` for ``like``'s batch, shared by every forward pass
    that has numbers for data and takes the same (native or eager) correction."""
    native = _native_end_correction_applies(system, like)
    if not _constant_data(system.conditions):
        return _EndSpectra(modes, system, like.shape[0], native)
    return _shared_end_spectra(modes, system, like.shape[0], native)


@_shared
def _shared_end_spectra(modes: int, system: _EndSystem, batch: int, native: bool) -> _EndSpectra:
    return _EndSpectra(modes, system, batch, native)


class _EndWaves:
    """What a 1-D layer keeping ``modes`` modes needs about the ends of ``grid``, whatever the
    data: built once (:func:`_end_waves`) and shared by every forward pass.

    ``impulses (2, modes)``: the kept Fourier coefficients of the unit impulses ``e_0, e_N``, so a
    response's spectrum is a product, not a spectral convolution of probes.
    ``waves (modes * 2, x)``: ``irfft`` of a unit real or imaginary coefficient on each kept mode,
    so ``irfft`` of a few spectra is one small matmul; ``synthesis (modes * 2, P)``: the same near
    the ends, so ``irfft(X)`` there is an O(modes) sum. ``native``: the same, held for the
    native end correction (:class:`~lawful.native.EndGrid`).
    """

    def __init__(self, modes: int, grid: _EndGrid) -> None:
        like = grid.rows
        impulses = like.new_zeros(2, grid.n)  # (end, x)
        impulses[0, 0] = impulses[1, -1] = 1
        self.end_impulses = impulses.unsqueeze(1)  # (end, 1, x)
        self.impulses = torch.fft.rfft(impulses)[:, :modes]  # (end, modes)
        eye = torch.eye(modes, dtype=like.dtype, device=like.device)  # (modes, modes)
        units = torch.stack([torch.complex(eye, 0 * eye), torch.complex(0 * eye, eye)])
        waves = torch.fft.irfft(units, n=grid.n).transpose(0, 1)  # (modes, 2, x)
        self.waves = waves.flatten(0, 1)  # (modes * 2, x): irfft as a matmul on view_as_real
        self.synthesis = waves.index_select(-1, grid.positions).flatten(0, 1)  # (modes * 2, P)
        self.grid = grid

    @cached_property
    def native(self) -> EndGrid:
        grid = self.grid
        return EndGrid(
            self.synthesis,
            self.impulses,
            grid.rows,
            grid.residual_rows,
            grid.impulses,
            grid.end_rows,
        )


@_shared
def _end_waves(modes: int, grid: _EndGrid) -> _EndWaves:
    return _EndWaves(modes, grid)


class _EndSpectra:
    """:class:`_EndWaves` of ``system``'s grid for a batch, and with ``native`` (where the native
    end correction applies, :func:`_native_end_correction_applies`) its constants with the
    batch's data (``native``; else ``None``)."""

    def __init__(self, modes: int, system: _EndSystem, batch: int, native: bool) -> None:
        waves = _end_waves(modes, system.grid)
        self.end_impulses, self.impulses = waves.end_impulses, waves.impulses
        self.waves, self.synthesis = waves.waves, waves.synthesis
        self.native = (
            EndConstants(waves.native, system.targets, system.exact_end_values(batch))
            if native
            else None
        )

    def near_ends(self, spectrum: Tensor) -> Tensor:
        """``irfft(spectrum)`` near the ends: ``(lead, channels, modes) -> (lead, channels, P)``.

        One matmul on the (real, imaginary) pairs as they lie: an einsum over the pair axis and
        the modes would permute and reshape its operands first (a dozen dispatches per call).
        In the spectrum's precision, as the layer's inverse FFT (autocast runs neither)."""
        with field_precision(spectrum):
            return torch.view_as_real(spectrum).flatten(-2) @ self.synthesis


def _native_end_correction_applies(system: _EndSystem, like: Tensor) -> bool:
    """Whether a forward pass takes the end correction of end_correction.c
    (:class:`_NativeEndCorrection`): CPU float32 or float64 layers outside autocast (whose
    products run in a lower precision the kernel does not), boundary data that needs no
    gradient (the kernel gives none), and a built kernel."""
    if like.device.type != "cpu" or like.dtype not in (torch.float32, torch.float64):
        return False
    if torch.is_autocast_enabled("cpu") or system.targets.requires_grad:
        return False
    return native_library() is not None


class _NativeEndCorrection(torch.autograd.Function):
    """A 1-D layer's correction near the ends in one native call each way
    (lawful.native.end_correction_forward and _backward): what the eager form computes
    (:meth:`BoundaryCorrectedFNO._end_correction`, then the activation and the exact ends), to
    rounding, and its gradients. Returns the layer's corrected spectrum (its kept spectrum plus
    the correction's) and the next layer's input near the ends.

    Eager, that is some ninety operations on arrays of a few thousand values and their backward
    twice as many, each costing more to dispatch than to compute. The kernel has no backward of
    its own backward: a second derivative through it raises.
    """

    @staticmethod
    def forward(
        ctx,
        mixed: Tensor,
        v_near: Tensor,
        spectral_weight: Tensor,
        pointwise_weight: Tensor,
        pointwise_bias: Tensor,
        constants: EndConstants,
        gelu: bool,
        pivot_tolerance: float,
    ) -> tuple[Tensor, Tensor]:
        v_near, pointwise_weight = v_near.contiguous(), pointwise_weight.contiguous()
        spectrum, next_near, state = end_correction_forward(
            constants,
            mixed,
            v_near,
            spectral_weight.contiguous(),
            pointwise_weight,
            pointwise_bias.contiguous(),
            gelu,
            pivot_tolerance,
        )
        ctx.constants, ctx.gelu = constants, gelu
        ctx.save_for_backward(v_near, pointwise_weight, state)
        return spectrum, next_near  # (batch, width, modes), (batch, width, P)

    @staticmethod
    @once_differentiable
    def backward(ctx, spectrum_grad: Tensor, near_grad: Tensor) -> tuple:
        v_near, pointwise_weight, state = ctx.saved_tensors
        gradients = end_correction_backward(
            ctx.constants,
            state,
            v_near,
            pointwise_weight,
            spectrum_grad,
            near_grad.contiguous(),
            ctx.gelu,
        )
        needed = ctx.needs_input_grad[:5]
        return (
            *(grad if need else None for grad, need in zip(gradients, needed, strict=True)),
            None,
            None,
            None,
        )


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.complex64)


class _IndexAdd(torch.autograd.Function):
    """``base.index_add(dim, index, source)`` whose backward keeps the index alone.

    PyTorch's own index_add saves ``source`` for its backward (to expand the gradient to its
    shape); here that is a spectrum or strip as large as a field per layer, held until the
    backward for nothing. Same forward, same gradients (``grad`` for ``base``, ``grad``
    gathered at ``index`` for ``source``), so the results are bit-identical.
    """

    @staticmethod
    def forward(ctx, base: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
        ctx.dim = dim
        ctx.save_for_backward(index)
        return base.index_add(dim, index, source)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None, None, Tensor | None]:
        (index,) = ctx.saved_tensors
        base_grad = grad if ctx.needs_input_grad[0] else None
        source_grad = grad.index_select(ctx.dim, index) if ctx.needs_input_grad[3] else None
        return base_grad, None, None, source_grad


def _index_add(base: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """``base.index_add(dim, index, source)``, saving only ``index`` for the backward."""
    return _IndexAdd.apply(base, dim, index, source)


class _Placement(torch.autograd.Function):
    """``zeros.index_add(dim, positions, source)`` with ``n`` entries at ``dim``: ``source``
    placed at ``positions``, where entries meeting at one position add.

    The same numbers as index_add, written by one slice copy per run of consecutive positions
    (a spectrum's non-negative and negative frequencies are two runs) and an index_add of the
    entries that meet one placed before: index_add's scatter took three to four times as long
    as the copies on the cavity model's spectra. The backward gathers the gradient at
    ``positions``, as index_add's does, saving only the positions.
    """

    @staticmethod
    def forward(
        ctx,
        source: Tensor,
        dim: int,
        n: int,
        positions: Tensor,
        runs: list[tuple[int, int, int]],
        meeting: list[tuple[int, int]],
    ) -> Tensor:
        ctx.dim = dim
        ctx.save_for_backward(positions)
        shape = list(source.shape)
        shape[dim] = n
        placed = source.new_zeros(shape)
        for first_source, first_position, length in runs:
            placed.narrow(dim, first_position, length).copy_(
                source.narrow(dim, first_source, length)
            )
        if meeting:
            sources = torch.tensor([index for index, _ in meeting], device=positions.device)
            targets = torch.tensor([position for _, position in meeting], device=positions.device)
            placed.index_add_(dim, targets, source.index_select(dim, sources))
        return placed

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None, None, None]:
        (positions,) = ctx.saved_tensors
        return grad.index_select(ctx.dim, positions), None, None, None, None, None


def _runs(
    positions: list[int],
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
    """Where each entry ``i`` of a source goes: ``(runs, meeting)``. ``runs``: ``(first
    source index, first position, length)`` of consecutive entries going to consecutive
    positions not taken before; ``meeting``: ``(source index, position)`` of the entries whose
    position an earlier entry took."""
    runs: list[tuple[int, int, int]] = []
    meeting: list[tuple[int, int]] = []
    taken: set[int] = set()
    for index, position in enumerate(positions):
        if position in taken:
            meeting.append((index, position))
            continue
        taken.add(position)
        if runs and runs[-1][0] + runs[-1][2] == index and runs[-1][1] + runs[-1][2] == position:
            first_source, first_position, length = runs[-1]
            runs[-1] = (first_source, first_position, length + 1)
        else:
            runs.append((index, position, 1))
    return runs, meeting


@dataclass(frozen=True)
class _FrequencyAxis:
    """One transformed axis of a spectrum: ``n`` grid points, the ``frequencies`` the spectrum
    holds along it, in its order ``(F,)``, and whether it is the halved last axis of ``irfftn``
    (then the frequencies are ``0..F-1``)."""

    n: int
    frequencies: Tensor  # (F,) int64
    halved: bool

    def place(self, spectrum: Tensor, dim: int) -> Tensor:
        """The spectrum on all ``n`` frequencies of a full axis: ``F -> n`` at ``dim``;
        coinciding frequencies (``+n/2`` and ``-n/2``) add."""
        runs, meeting = self.runs
        positions = self.positions.to(spectrum.device)
        return _Placement.apply(spectrum, dim, self.n, positions, runs, meeting)

    @cached_property
    def positions(self) -> Tensor:
        """Where the frequencies sit among the ``n`` of a full axis: ``(F,)``."""
        return self.frequencies % self.n

    @cached_property
    def runs(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]]]:
        """:func:`_runs` of :attr:`positions`, found once per axis (on the CPU, so placing a
        spectrum on a GPU waits for nothing)."""
        return _runs(self.positions.tolist())

    def synthesis(self, points: Tensor, like: Tensor) -> Tensor:
        """``(F, P)`` complex weights of the inverse transform at ``points``: on a full axis the
        value is ``sum_f w[f, p] X_f``; on the halved axis ``Re(sum_f w[f, p] X_f)``, taken
        after the full axes' transforms (``irfft`` reads only the real part of its zero and
        Nyquist frequencies). Made by transforming unit coefficients, so they are the FFT's."""
        count = self.n // 2 + 1 if self.halved else self.n
        units = torch.zeros(len(self.frequencies), count, dtype=_complex_dtype(like.dtype))
        units[torch.arange(len(self.frequencies)), self.positions] = 1
        units = units.to(like.device)
        if not self.halved:
            return torch.fft.ifft(units)[:, points]  # (F, P)
        real_part = torch.fft.irfft(units, n=self.n)[:, points]  # (F, P)
        imaginary_part = torch.fft.irfft(1j * units, n=self.n)[:, points]
        return torch.complex(real_part, -imaginary_part)  # Re(w X) = wr Re X + wi Im X

    def phases(self, index: Tensor, like: Tensor) -> Tensor:
        """``exp(-2 pi i f j / n)`` for grid indices ``j``: ``(J, F)``, forward-FFT coefficients
        of unit impulses at ``j``."""
        angle = torch.outer(index.double(), self.frequencies.double()) * (-2 * math.pi / self.n)
        return (
            torch.polar(torch.ones_like(angle), angle)
            .to(_complex_dtype(like.dtype))
            .to(like.device)
        )


def _synthesize(spectrum: Tensor, axes: tuple[_FrequencyAxis, ...]) -> Tensor:
    """The real field whose spectrum is ``spectrum`` ``(batch, channels, F_0, F_1, ...)`` on
    ``axes`` (zero at the frequencies it does not hold), i.e. the layer's inverse FFT:
    ``(batch, channels, n_0, n_1, ...)``."""
    full = [index for index, axis in enumerate(axes) if not axis.halved]
    for index in full:
        spectrum = axes[index].place(spectrum, 2 + index)  # (..., n at 2 + index, ...)
    dims = [2 + index for index in range(len(axes))]
    if len(full) < len(axes):  # the halved axis comes last
        sizes = [axis.n for axis in axes]
        return fft_any_batch(torch.fft.irfftn, spectrum, s=sizes, dim=dims)
    return fft_any_batch(torch.fft.ifftn, spectrum, dim=dims).real


class _StripSynthesis:
    """The inverse transform of a spectrum on ``axes`` at the grid points of a strip: along
    the axes in ``points`` (axis index -> ``(P,)`` grid indices) at those points, along the
    others at all of them. One small product per axis with the transform's own matrix
    (:meth:`_FrequencyAxis.synthesis`), made once per forward pass: a strip is a few points
    wide, so placing its spectrum on full axes and transforming them would cost more than
    the products, and run as many small operations again."""

    def __init__(
        self, axes: tuple[_FrequencyAxis, ...], points: dict[int, Tensor], like: Tensor
    ) -> None:
        steps = []
        for index, axis in enumerate(axes):
            where = points.get(index, torch.arange(axis.n))
            steps.append((2 + index, axis.synthesis(where, like)))  # (dim, (F, P))
        # The axes that shrink the spectrum most first, so the later products are smallest.
        self.steps = sorted(steps, key=lambda step: step[1].shape[1] / step[1].shape[0])

    def __call__(self, spectrum: Tensor) -> Tensor:
        """``(batch, channels, F_0, F_1, ...) -> (batch, channels, P_0 or n_0, ...)``, real.
        The real part is taken last, after every axis (see :meth:`_FrequencyAxis.synthesis`)."""
        for dim, weights in self.steps:
            spectrum = torch.tensordot(spectrum, weights, dims=([dim], [0])).movedim(-1, dim)
        return spectrum.real


class _WallSystem:
    """The joint wall equations of a forward pass on an ``(nx, ny)`` grid
    (:func:`~lawful.constraints.walls.wall_equations`, one per wall entry) and what the layers
    do with them: build ``A`` from a kernel image, evaluate residuals and exact wall values on
    *strips*, the points near the x walls ``(..., P_x, ny, ...)`` and near the y walls
    ``(..., nx, P_y, ...)`` that the equations read.

    ``walls`` hold the hidden layers' data (continued over padded frames); ``like`` gives the
    dtype and device.
    """

    def __init__(
        self, walls: Walls, spacings: tuple[float, float], grid: tuple[int, int], like: Tensor
    ) -> None:
        nx, ny = grid
        self.spacings = spacings
        self.equations = wall_equations(walls, grid, spacings)
        device = like.device
        self.lines = self.equations.lines
        self.alongs = [line.along.to(device) for line in self.lines]  # per wall: (k,)
        self.entries = self.equations.entries.to(device)  # (m,) flat x-major
        self.strips = {
            X_DIM: _near_both_ends(boundary_equations(walls.x, spacings[0]), nx).to(device),
            Y_DIM: _near_both_ends(boundary_equations(walls.y, spacings[1]), ny).to(device),
        }
        self.strip_walls = {dim: walls.select(dim, index) for dim, index in self.strips.items()}
        # Per strip: which wall entries lie in it, and where (flat in the strip).
        i, j = self.entries // ny, self.entries % ny  # (m,) each
        self.strip_entries = {}
        for dim, index in self.strips.items():
            normal, along = (i, j) if dim == X_DIM else (j, i)
            where = torch.full((nx if dim == X_DIM else ny,), -1, device=device)
            where[index] = torch.arange(len(index), device=device)  # grid index -> strip index
            inside = torch.nonzero(where[normal] >= 0).squeeze(-1)  # (k,)
            local = where[normal[inside]]
            flat = (
                local * ny + along[inside] if dim == X_DIM else along[inside] * len(index) + local
            )
            self.strip_entries[dim] = (inside, flat)
        # shifts[e, w, r]: flat index of (positions[e, r] - entry w) mod grid, so that
        # A[e, w] = sum_r coefficients[e, r] k[shifts[e, w, r]] = l_e(shift_w k).
        positions, entries = self.equations.positions, self.equations.entries
        di = (
            positions.div(ny, rounding_mode="floor")[:, None] - (entries // ny)[None, :, None]
        ) % nx
        dj = (positions[:, None] % ny - (entries % ny)[None, :, None]) % ny
        self.shifts = (di * ny + dj).to(device)  # (m, m, reach)
        self.coefficients = self.equations.coefficients.to(like)  # (m, reach)
        impulse = like.new_zeros(1, nx * ny)  # (1, nx ny): delta_0
        impulse[0, 0] = 1
        self.impulse_matrix = self.matrix(impulse)[0]  # (m, m): l_e(e_w), the overwrite

    @property
    def size(self) -> int:
        return self.equations.size

    def matrix(self, kernels: Tensor) -> Tensor:
        """``A[o, e, w] = l_e(shift_w k_o)`` from kernel images ``(channels, nx ny)``:
        ``(channels, m, m)``."""
        m = self.size
        return sum(  # one term per stencil entry: a gather and a row scaling
            self.coefficients[:, term, None]
            * kernels.index_select(1, self.shifts[..., term].flatten()).view(-1, m, m)
            for term in range(self.shifts.shape[-1])
        )

    def gather(self, field: Tensor) -> dict[int, Tensor]:
        """The strips of ``field`` ``(batch, channels, nx, ny, *other)``: dim -> strip."""
        return {dim: field.index_select(dim, index) for dim, index in self.strips.items()}

    def _per_line(
        self, strips: dict[int, Tensor], line_values: Callable[[WallLine, Tensor], Tensor]
    ) -> Tensor:
        """``line_values(line, strip) -> (batch, channels, n_along, *other)`` on every wall,
        at the points where its equations are imposed: ``(batch, channels, m, *other)``."""
        return torch.cat(
            [
                line_values(line, strips[line.dim]).index_select(2, along)
                for line, along in zip(self.lines, self.alongs, strict=True)
            ],
            2,
        )

    def residuals(self, strips: dict[int, Tensor]) -> Tensor:
        """``target_e - l_e(z)`` for a layer output ``z`` given by its strips (zero for the
        keep-the-sum equations): ``(batch, channels, m, *other)``."""

        def line_residual(line: WallLine, strip: Tensor) -> Tensor:
            slice_shape = strip.select(line.dim, 0).shape  # (batch, channels, n_along, *other)
            return line.equation.residual(strip, line.dim).expand(slice_shape)

        return self._per_line(strips, line_residual)

    def exact_strips(self, strips: dict[int, Tensor]) -> dict[int, Tensor]:
        """Each strip with its wall entries set so that every wall's condition holds
        (:func:`~lawful.constraints.walls.apply_walls` on the strip)."""
        return {
            dim: apply_walls(strip, self.strip_walls[dim], self.spacings, validated=True)
            for dim, strip in strips.items()
        }

    def wall_values(self, strips: dict[int, Tensor]) -> Tensor:
        """The wall entries read from the strips, in the order of :attr:`entries`: ``(batch,
        channels, m, *other)``."""

        def wall_slice(line: WallLine, strip: Tensor) -> Tensor:
            return strip.select(line.dim, 0 if line.side == "left" else -1)

        return self._per_line(strips, wall_slice)

    def add_at_entries(self, strip: Tensor, dim: int, values: Tensor) -> Tensor:
        """``strip`` (of ``dim``) plus ``values (batch, channels, m, *other)`` at the wall
        entries that lie in it."""
        entries, positions = self.strip_entries[dim]
        flat = strip.flatten(X_DIM, Y_DIM)  # (batch, channels, strip points, *other)
        added = _index_add(flat, 2, positions, values.index_select(2, entries))
        return added.view(strip.shape)


def _lu_factor(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """LU factors with partial pivoting of each ``(channels, m, m)`` matrix: ``(factors,
    pivots)``. One channel at a time: batched CPU getrf returns garbage pivots in some MKL
    builds once ``torch.set_num_threads`` has been called (seen with torch 2.13 and MKL 2024.2
    for m >= ~150); the unbatched call, and batched ``lu_solve``, are sound. The factors are
    stacked column-major, as LAPACK lays each out: stacked row-major, every ``lu_solve`` would
    copy them back first (a third of its time at m = 252)."""
    factors, pivots = zip(*(torch.linalg.lu_factor_ex(a)[:2] for a in matrix), strict=True)
    return torch.stack([factor.mT for factor in factors]).mT, torch.stack(pivots)


def _factor(
    matrix: Tensor, impulse_matrix: Tensor, pivot_tolerance: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each channel's ``A`` ``(channels, m, m)`` and its LU factors: ``(matrix, factors,
    pivots, use_impulse)``.

    A channel whose pivots have ``min |u_ii| <= pivot_tolerance * max |u_ii|`` is near-singular
    (``use_impulse (channels,)``): its ``A`` becomes ``impulse_matrix``, the equations on unit
    impulses at the wall entries (invertible: each equation has weight 1 on its own entry, and
    the other wall entries it reads belong to equations that do not read it back).
    """
    with torch.no_grad():  # the factors only serve the solve, whose backward is explicit
        factors, pivots = _lu_factor(matrix)
        diagonal = factors.diagonal(dim1=-2, dim2=-1).abs()  # (channels, m)
        use_impulse = diagonal.amin(-1) <= pivot_tolerance * diagonal.amax(-1)
        if bool(use_impulse.any()):
            matrix = torch.where(use_impulse.view(-1, 1, 1), impulse_matrix, matrix)
            factors, pivots = _lu_factor(matrix)
    if bool(use_impulse.any()):  # again outside no_grad: the kept channels keep their graph
        matrix = torch.where(use_impulse.view(-1, 1, 1), impulse_matrix, matrix)
    return matrix, factors, pivots, use_impulse


class _FactoredSolve(torch.autograd.Function):
    """``A^-1 b`` per channel from the LU factors of ``A``: ``(channels, m, n)``.

    The backward reuses the factors instead of differentiating the factorisation:
    ``lambda = A^-T g``, ``grad b = lambda``, ``grad A = -lambda x^T``. With at least as many
    right-hand sides as equations (``n >= m``: every sample and frame of an (x, y, t) batch),
    both solves go through ``A^-1``, formed once from the factors: a solve of ``m`` right-hand
    sides, after which each of the two ``m x m x n`` products runs at matrix-product speed,
    several times the triangular solves' on a CPU.
    """

    @staticmethod
    def forward(ctx, matrix: Tensor, right: Tensor, factors: Tensor, pivots: Tensor) -> Tensor:
        m, count = right.shape[-2:]
        ctx.through_inverse = count >= m
        if ctx.through_inverse:
            identity = torch.eye(m, dtype=factors.dtype, device=factors.device)
            inverse = torch.linalg.lu_solve(factors, pivots, identity.expand_as(factors))
            with field_precision(right):  # as lu_solve: autocast would run it in bf16
                solution = inverse @ right
            ctx.save_for_backward(solution, inverse)
        else:
            solution = torch.linalg.lu_solve(factors, pivots, right)
            ctx.save_for_backward(solution, factors, pivots)
        return solution

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        if ctx.through_inverse:
            solution, inverse = ctx.saved_tensors
            adjoint = inverse.mT @ grad  # A^-T g
        else:
            solution, factors, pivots = ctx.saved_tensors
            adjoint = torch.linalg.lu_solve(factors, pivots, grad, adjoint=True)
        return -adjoint @ solution.mT, adjoint, None, None


def _solve(matrix: Tensor, factors: Tensor, pivots: Tensor, residuals: Tensor) -> Tensor:
    """``A^-1 residuals`` per channel for every sample and frame at once: ``residuals (batch,
    channels, m, *frames) -> (batch, channels, m, *frames)``."""
    batch, channels, m, *frames = residuals.shape
    right = residuals.movedim(1, 0).movedim(2, 1).reshape(channels, m, -1)  # (ch, m, batch F)
    solution = _FactoredSolve.apply(matrix, right, factors, pivots)  # (channels, m, batch F)
    return solution.reshape(channels, m, batch, *frames).movedim(1, 2).movedim(0, 1)


def _line_transform(lines: Tensor, phases: Tensor) -> Tensor:
    """``lines @ phases``: ``(batch, channels, [frames,] L) @ (L, F) -> (batch, channels,
    [frames,] F)``. Without frames ``matmul`` folds the lines into one matrix product, whose
    backward is sound. With frames the lines are a strided view, which ``matmul`` multiplies
    by the phases broadcast over samples and channels, and whose backward would then run one
    product per matrix with copies (some 10,000 small operations per training step of a
    cavity-sized model): the same product by :func:`batched_product`."""
    if lines.ndim == 3:
        return lines @ phases
    batched = lines.reshape(-1, *lines.shape[-2:])  # (batch channels, frames, L)
    broadcast = phases.expand(len(batched), *phases.shape)  # (batch channels, L, F)
    return batched_product(batched, broadcast).view(*lines.shape[:-1], phases.shape[-1])


class _WallSpectra:
    """What the Fourier layers of a forward pass need about the walls' spectra, for layers
    over ``(x, y)`` (``n_modes = (mx, my)``) or ``(x, y, t)`` (``(mx, my, mt)``) on a hidden grid
    ``(nx, ny[, T])``.

    ``kept``: the layer's spectrum axes (its kept modes, in the weight's order: non-negative
    frequencies first, then negative, on every axis but the halved last). ``region``: the
    correction's spectrum axes. Without time it is ``kept`` (the correction joins the layer's
    kept modes); with time it adds ``+mx`` and ``+my``, where the Hermitian part of the
    weights lives, and every temporal frequency, where the per-frame multiples live.
    """

    def __init__(
        self, n_modes: tuple[int, ...], grid: tuple[int, ...], system: _WallSystem, like: Tensor
    ) -> None:
        self.timed = len(n_modes) == 3
        self.system = system

        def signed(m: int) -> Tensor:
            return torch.cat([torch.arange(m), torch.arange(-m, 0)])

        mx, my = n_modes[:2]
        nx, ny = grid[:2]
        x_axis = _FrequencyAxis(nx, signed(mx), halved=False)
        if self.timed:
            y_axis = _FrequencyAxis(ny, signed(my), halved=False)
            t_axis = _FrequencyAxis(grid[2], torch.arange(n_modes[2]), halved=True)
            self.kept = (x_axis, y_axis, t_axis)
            self.region = (
                _FrequencyAxis(nx, torch.cat([signed(mx), torch.tensor([mx])]), halved=False),
                _FrequencyAxis(ny, torch.cat([signed(my), torch.tensor([my])]), halved=False),
                _FrequencyAxis(grid[2], torch.arange(grid[2] // 2 + 1), halved=True),
            )
            # Where -f sits in the region's lists, for the Hermitian part (-f is in [-m, m]).
            self.negated = tuple(
                torch.tensor([axis.frequencies.tolist().index(-f) for f in axis.frequencies])
                for axis in self.region[:2]
            )
        else:
            self.kept = (x_axis, _FrequencyAxis(ny, torch.arange(my), halved=True))
            self.region = self.kept
        self.kept_strips, self.region_strips = (
            {
                dim: _StripSynthesis(axes, {dim - 2: index}, like)
                for dim, index in system.strips.items()
            }
            for axes in (self.kept, self.region)
        )
        # Per wall: where its multiples lie among the m entries and its coefficients along it
        # (k, F_along); per normal axis, the phases of its walls' positions on it (walls,
        # F_normal). The multiples' spectrum is then a sum of line transforms, the walls of
        # one axis joined by one product.
        offsets = [0, *itertools.accumulate(len(line.along) for line in system.lines)]
        self.wall_axes = []  # per normal axis: (dim, [(first, last, (k, F_along))], normals)
        for dim in (X_DIM, Y_DIM):
            normal, along = (self.region[0], self.region[1]) if dim == X_DIM else self.region[1::-1]
            walls = [
                (offsets[index], offsets[index + 1], line)
                for index, line in enumerate(system.lines)
                if line.dim == dim
            ]
            if not walls:
                continue
            at = torch.tensor([0 if line.side == "left" else normal.n - 1 for *_, line in walls])
            lines = [(first, last, along.phases(line.along, like)) for first, last, line in walls]
            self.wall_axes.append((dim, lines, normal.phases(at, like)))  # (walls, F_normal)

    def kernel(self, layer: FourierLayer) -> tuple[Tensor, Tensor]:
        """The layer's kernel: ``(spectrum, pointwise)``, the spectral part of its bias-free
        response to a unit impulse at (0, 0) in every input channel (constant over time) on
        the ``region`` ``(channels, F_x, F_y)``, and ``W 1`` ``(channels,)``."""
        weight = torch.view_as_complex(layer.spectral.weight).sum(0)  # (out, *kept modes)
        pointwise_sum = layer.pointwise.weight.sum(1)  # (out,): W 1
        if not self.timed:
            return weight, pointwise_sum  # (out, 2 mx, my): the region is the kept modes
        weight = F.pad(weight[..., 0], (0, 1, 0, 1))  # (out, 2 mx + 1, 2 my + 1), t mode 0
        negated_x, negated_y = self.negated
        mirrored = weight.index_select(1, negated_x).index_select(2, negated_y).conj()
        return (weight + mirrored) / 2, pointwise_sum  # Hermitian: a real image per frame

    def image(self, spectrum: Tensor, pointwise_sum: Tensor) -> Tensor:
        """The kernel image ``k_o`` on the grid, flattened x-major: ``(channels, nx ny)``."""
        image = _synthesize(spectrum.unsqueeze(0), self.region[:2])[0]  # (channels, nx, ny)
        image = image.flatten(1)
        return torch.cat([image[:, :1] + pointwise_sum.unsqueeze(1), image[:, 1:]], 1)

    def near_walls(self, mixed: Tensor) -> dict[int, Tensor]:
        """The spectral part of the layer's output on the strips, from its kept spectrum
        ``(batch, channels, *kept)``: dim -> ``(batch, channels, P_x, ny, ...)`` or
        ``(batch, channels, nx, P_y, ...)``."""
        return {dim: synthesis(mixed) for dim, synthesis in self.kept_strips.items()}

    def correction(self, spectrum: Tensor, multiples: Tensor) -> Tensor:
        """The spectrum of ``sum_w c_w`` times the spectral part of ``shift_w k`` on the
        ``region``: ``spectrum`` from :meth:`kernel`, ``multiples (batch, channels, m,
        *frames)`` -> ``(batch, channels, F_x, F_y[, F_t])``. The multiples' own coefficients
        are a sum of line transforms, one per wall."""
        if self.timed:  # one set of multiples per frame: their temporal spectrum
            multiples = fft_any_batch(torch.fft.rfft, multiples, dim=-1)  # (b, c, m, T // 2 + 1)
        else:
            multiples = multiples.to(spectrum.dtype)  # (batch, channels, m)
        trailing = (1,) * (multiples.ndim - 3)
        coefficients = 0
        for dim, lines, normals in self.wall_axes:
            # Each wall's line transform (batch, channels, *frames, F_along), stacked over the
            # walls of this axis, times their phases on the normal axis.
            transforms = [
                _line_transform(multiples[:, :, first:last].movedim(2, -1), phases)
                for first, last, phases in lines
            ]
            along = torch.stack(transforms, -1)  # (batch, channels, *frames, F_along, walls)
            part = along @ normals  # (batch, channels, *frames, F_along, F_normal)
            x_and_y = (-1, -2) if dim == X_DIM else (-2, -1)  # where F_x and F_y are in part
            coefficients = coefficients + part.movedim(x_and_y, (2, 3))  # (b, c, F_x, F_y, ...)
        return spectrum.view(1, *spectrum.shape, *trailing) * coefficients

    def corrected(self, mixed: Tensor, correction: Tensor) -> Tensor:
        """The layer's spectral part plus the correction, with one inverse FFT:
        ``mixed (batch, channels, *kept)`` and :meth:`correction` ->
        ``(batch, channels, nx, ny, *frames)``."""
        if self.timed:  # the layer's modes as part of the region: +m at the end of x and y
            sizes = [
                len(a.frequencies) - k for a, k in zip(self.region, mixed.shape[2:], strict=True)
            ]
            mixed = F.pad(mixed, (0, sizes[2], 0, sizes[1], 0, sizes[0]))
        return _synthesize(mixed + correction, self.region)

    def correction_near_walls(self, correction: Tensor) -> dict[int, Tensor]:
        """:meth:`correction` synthesised on the strips, as :meth:`near_walls`."""
        return {dim: synthesis(correction) for dim, synthesis in self.region_strips.items()}


def _identity(v: Tensor) -> Tensor:
    return v


class CorrectedOperator(nn.Module):
    """What every boundary-corrected operator answers: its output, or the output of each
    corrected layer, for this batch's boundary data; subclasses implement ``_run``.

    ``left``, ``right``: the data at the two ends of a constrained axis (positional, as the
    training loop passes them). ``x_left``, ``x_right``, ``y_left``, ``y_right``: the data on
    named walls (lawful.constraints.walls), for operators that take walls; they reach ``_run``
    as keywords only when given.
    """

    def forward(
        self,
        x: Tensor,
        left: BoundaryValue | None = None,
        right: BoundaryValue | None = None,
        *,
        x_left: BoundaryValue | None = None,
        x_right: BoundaryValue | None = None,
        y_left: BoundaryValue | None = None,
        y_right: BoundaryValue | None = None,
    ) -> Tensor:
        walls = _given(x_left=x_left, x_right=x_right, y_left=y_left, y_right=y_right)
        return self._run(x, left, right, keep_states=False, **walls)[0]

    def hidden_states(
        self,
        x: Tensor,
        left: BoundaryValue | None = None,
        right: BoundaryValue | None = None,
        *,
        x_left: BoundaryValue | None = None,
        x_right: BoundaryValue | None = None,
        y_left: BoundaryValue | None = None,
        y_right: BoundaryValue | None = None,
    ) -> list[Tensor]:
        """The output of each corrected layer (after its activation), padding cropped."""
        walls = _given(x_left=x_left, x_right=x_right, y_left=y_left, y_right=y_right)
        return self._run(x, left, right, keep_states=True, **walls)[1]

    def _run(
        self, x: Tensor, left: BoundaryValue | None, right: BoundaryValue | None, keep_states: bool
    ) -> tuple[Tensor, list[Tensor]]:
        """The output, and the hidden states when ``keep_states`` (else an empty list)."""
        raise NotImplementedError


def _given(**walls: BoundaryValue | None) -> dict[str, BoundaryValue]:
    """The wall data that was given (not ``None``)."""
    return {name: value for name, value in walls.items() if value is not None}


class BoundaryCorrectedFNO(CorrectedOperator):
    """An FNO whose every Fourier layer, and output, satisfies ``conditions`` exactly.

    ``conditions``: a :class:`~lawful.constraints.boundary.BoundaryConditions` (the two ends of
    one axis) or :class:`~lawful.constraints.walls.Walls` (the x walls and optionally the y
    walls, corners by the walls' rule); they give the kinds of condition and default boundary
    data. ``forward(x, left, right)`` takes this batch's data for the ends of the axis (float,
    ``(batch,)`` or ``(batch, *other)``, e.g. ``(batch, time)`` for a space + time model; see
    lawful.constraints.boundary); with walls on x and y,
    ``forward(x, x_left=..., x_right=..., y_left=..., y_right=...)`` (each ``(batch, ny[, T])``
    or ``(batch, nx[, T])``, ``(batch,)`` or a float). Hidden layers are held to the same data
    in every channel; after the activation the boundary entries are set again, so no
    nonlinearity disturbs them. The FNO's own weights are used.

    On 1-D FNOs the correction is folded into the layer (:meth:`_corrected_spectral_layer`):
    no full-size pass beyond the plain layer's. Walls on x and y (an :class:`FNOxy` or
    :class:`FNOxyt`) are solved jointly and folded likewise (:meth:`_corrected_wall_layer`,
    module docstring). Other layers with one constrained axis (space + time) add the
    corrections to the layer's output (:func:`correct_boundary`).
    """

    def __init__(
        self,
        fno: FourierNeuralOperator,
        conditions: BoundaryConditions | Walls,
        pivot_tolerance: float = DEFAULT_PIVOT_TOLERANCE,
    ) -> None:
        super().__init__()
        field_ndim = 2 + fno.spatial_ndim
        self.walls = conditions if isinstance(conditions, Walls) else None
        if self.walls is not None and self.walls.y is not None:
            if not 2 <= fno.spatial_ndim <= 3:
                raise ValueError(
                    "walls on x and y need an FNO over (x, y) or (x, y, t), got one over "
                    f"{fno.spatial_ndim} axes"
                )
            if fno.padding and fno.spatial_ndim == 2:
                raise ValueError(
                    "the FNO zero-pads its last spatial axis, y here, so the y walls are not its "
                    "ends; use padding=0"
                )
            self.conditions, self.dim = None, None
        else:
            self.conditions = conditions.x if isinstance(conditions, Walls) else conditions
            self.dim = self.conditions.dim(field_ndim)
            if fno.padding and self.dim == field_ndim - 1:
                raise ValueError(
                    "the FNO zero-pads its last spatial axis, so that axis has no fixed ends to "
                    f"constrain; pick another axis than {self.conditions.axis} or use padding=0"
                )
        self.fno, self.pivot_tolerance = fno, pivot_tolerance

    def _run(
        self,
        x: Tensor,
        left: BoundaryValue | None,
        right: BoundaryValue | None,
        keep_states: bool,
        **walls: BoundaryValue,
    ) -> tuple[Tensor, list[Tensor]]:
        if self.walls is None:
            if walls:
                raise ValueError(
                    f"this model constrains one axis (BoundaryConditions); pass its data as "
                    f"left/right, not {', '.join(walls)}"
                )
            return self._run_axis(x, self.conditions.with_values(left, right), keep_states)
        named = self.walls.with_values(left=left, right=right, **walls)
        if named.y is None:
            return self._run_axis(x, named.x, keep_states)
        return self._run_walls(x, named, keep_states)

    def _run_axis(
        self, x: Tensor, conditions: BoundaryConditions, keep_states: bool
    ) -> tuple[Tensor, list[Tensor]]:
        """The conditions along one axis, with this batch's data."""
        conditions.validate(torch.Size((x.shape[0], self.fno.out_channels, *x.shape[2:])))
        n = x.shape[self.dim]
        spacing = self.fno.spacing(self.dim - 2, n)
        if self.fno.spatial_ndim == 1:
            return self._run_spectral(self.fno.lifting_input(x), conditions, spacing, keep_states)
        v = self.fno.lift(x)  # (batch, width, *padded spatial)
        system = _end_system(self._padded(conditions), spacing, n, self.dim, v)
        states = []
        for index, layer in enumerate(self.fno.layers):
            activation = F.gelu if index < len(self.fno.layers) - 1 else _identity
            v = self._with_exact_ends(activation(self._corrected_layer(layer, v, system)), system)
            if keep_states:
                states.append(v.narrow(-1, 0, v.shape[-1] - self.fno.padding))
        return apply_boundary_conditions(self.fno.project(v), conditions, spacing), states

    def _run_walls(self, x: Tensor, walls: Walls, keep_states: bool) -> tuple[Tensor, list[Tensor]]:
        """Walls on x and y, with this batch's data: every layer solved jointly.

        The strips of each layer's input are carried along (exact, from the previous layer),
        not gathered from the full field, and the full field's wall entries are written once
        per layer, in place on a tensor that is no view: one full-size pass in the backward.
        """
        fno = self.fno
        walls.validate(torch.Size((x.shape[0], fno.out_channels, *x.shape[2:])))
        nx, ny = x.shape[X_DIM], x.shape[Y_DIM]
        spacings = (fno.spacing(0, nx), fno.spacing(1, ny))
        v = fno.lift(x)  # (batch, width, nx, ny[, T + padding])
        system = _WallSystem(self._padded_walls(walls), spacings, (nx, ny), v)
        spectra = _WallSpectra(fno.layers[0].spectral.n_modes, tuple(v.shape[2:]), system, v)
        v_strips = system.gather(v)  # dim -> strip
        rows, columns = system.entries // ny, system.entries % ny  # (m,) each
        states = []
        for index, layer in enumerate(fno.layers):
            activation = F.gelu if index < len(fno.layers) - 1 else _identity
            output, strips = self._corrected_wall_layer(layer, v, v_strips, system, spectra)
            v_strips = system.exact_strips({dim: activation(s) for dim, s in strips.items()})
            v = activation(output)
            v[:, :, rows, columns] = system.wall_values(v_strips)  # (batch, width, m, *frames)
            if keep_states:
                states.append(v.narrow(-1, 0, v.shape[-1] - fno.padding))
        return apply_walls(fno.project(v), walls, spacings, validated=True), states

    def _corrected_wall_layer(
        self,
        layer: FourierLayer,
        v: Tensor,
        v_strips: dict[int, Tensor],
        system: _WallSystem,
        spectra: _WallSpectra,
    ) -> tuple[Tensor, dict[int, Tensor]]:
        """A layer over (x, y[, t]) plus the multiples of its shifted kernel images that meet
        every wall's equations (module docstring): the corrected output ``(batch, width, nx,
        ny[, T])``, except at its wall entries (the caller sets those), and the corrected
        output on the strips, wall entries included.

        ``v_strips`` are the input's strips. ``A`` per output channel from the kernel image,
        one LU; the plain layer's residuals from its strips; the multiples' spectrum joins the
        layer's before its inverse FFT; their pointwise part (``W 1`` at the wall entries) only
        touches wall entries, so only the strips get it.
        """
        spectral = layer.spectral
        mixed = spectral.mix(spectral.coefficients(v))  # (batch, width, *kept, pairs split)
        kept_sizes = [len(axis.frequencies) for axis in spectra.kept]
        mixed = mixed.reshape(*mixed.shape[:2], *kept_sizes)  # (batch, width, 2mx, F_y[, mt])
        spectrum, pointwise_sum = spectra.kernel(layer)  # (width, F_x, F_y), (width,)
        matrix = system.matrix(spectra.image(spectrum, pointwise_sum))  # (width, m, m)
        matrix, factors, pivots, use_impulse = _factor(
            matrix, system.impulse_matrix, self.pivot_tolerance
        )
        # Channels on impulses: no spectral part, the impulse itself on the wall entries.
        keep = (~use_impulse).view(-1, 1, 1)  # (width, 1, 1)
        spectrum = torch.where(keep, spectrum, 0)
        pointwise_sum = torch.where(keep.view(-1), pointwise_sum, 1)

        plain = {
            dim: strip + pointwise(layer.pointwise, v_strips[dim])
            for dim, strip in spectra.near_walls(mixed).items()
        }
        residuals = system.residuals(plain)  # (batch, width, m, *frames)
        multiples = _solve(matrix, factors, pivots, residuals)  # (batch, width, m, *frames)
        correction = spectra.correction(spectrum, multiples)  # (batch, width, *region)
        output = spectra.corrected(mixed, correction) + pointwise(layer.pointwise, v)
        extra = pointwise_sum.view(-1, 1, *(1 for _ in multiples.shape[3:])) * multiples
        strips = {
            dim: system.add_at_entries(plain[dim] + near, dim, extra)
            for dim, near in spectra.correction_near_walls(correction).items()
        }
        return output, strips  # (batch, width, nx, ny[, T]), dim -> strip

    def _run_spectral(
        self,
        lifting_input: Tensor,
        conditions: BoundaryConditions,
        spacing: float,
        keep_states: bool,
    ) -> tuple[Tensor, list[Tensor]]:
        """The 1-D layers with the correction folded in. Each layer's near-end slice comes out of
        the correction exact (:meth:`_corrected_spectral_layer`) and is carried to the next
        layer; its two end entries are written into the full field in place: two columns in
        the forward, one pass in the backward (out-of-place writes, or carrying the full
        field's error at the ends into the next layer's coefficients, cost more). The lifting
        is pointwise, so the first near-end slice is the lifting of the input's, not a gather
        from the lifted field (whose backward would be a full-size pass)."""
        v = pointwise(self.fno.lifting, lifting_input)  # (batch, width, x): 1-D FNOs don't pad
        system = _end_system(conditions, spacing, v.shape[-1], self.dim, v)
        spectra = _end_spectra(self.fno.layers[0].spectral.modes, system, v)
        v_near = pointwise(self.fno.lifting, system.gather(lifting_input))  # (batch, width, P)
        states = []
        for index, layer in enumerate(self.fno.layers):
            hidden = index < len(self.fno.layers) - 1  # GELU after every layer but the last
            output, v_near = self._corrected_spectral_layer(
                layer, v, v_near, system, spectra, hidden
            )
            v = F.gelu(output) if hidden else output  # GELU saves its input, not v
            v.index_copy_(-1, system.ends, v_near.index_select(-1, system.ends_near))
            if keep_states:
                states.append(v)
        # A 1-D FNO has no padding: the system's conditions and spacing are the output's.
        output = self.fno.project(v)  # (batch, out, x)
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
        system: _EndSystem,
        ends: _EndSpectra,
        hidden: bool,
    ) -> tuple[Tensor, Tensor]:
        """A 1-D layer ``irfft(X) + W v + b`` with the correction folded in: returns the corrected
        output ``(batch, width, x)``, except at its two end entries (the caller writes those), and
        the next layer's input near the ends ``(batch, width, P)``: the corrected output there
        after the activation (GELU if ``hidden``, else none), its end entries set exactly.

        ``v`` is the layer's input, ``v_near`` the same near the ends. A response ``q =
        L_lin(e 1)`` (an impulse ``e`` in every input channel) is ``irfft(Q) + W e 1``: its
        spectrum is the spectral weights summed over input channels
        times ``e``'s coefficients, and its pointwise part is ``W``'s row sums on the end entry
        alone. So the multiples of the spectral parts join ``X`` before the one inverse FFT, and
        everything near the ends is computed from small tensors: O(modes) sums
        (:meth:`_EndSpectra.near_ends`) instead of inverse FFTs, ``v_near`` instead of ``v``;
        natively in one call where :class:`_NativeEndCorrection` applies.
        """
        spectral, n = layer.spectral, v.shape[-1]
        mixed = spectral.mix(spectral.coefficients(v))  # (batch, width, modes)
        if ends.native is not None:
            spectrum, next_near = _NativeEndCorrection.apply(
                mixed,
                v_near,
                spectral.weight,
                layer.pointwise.weight,
                layer.pointwise.bias,
                ends.native,
                hidden,
                self.pivot_tolerance,
            )
        else:
            correction, corrected_near = self._end_correction(layer, mixed, v_near, system, ends)
            spectrum = mixed + correction  # (batch, width, modes)
            activated = F.gelu(corrected_near) if hidden else corrected_near
            next_near = apply_boundary_conditions(activated, system.conditions, system.spacing)
        output = fft_any_batch(torch.fft.irfft, spectrum, n=n)  # (batch, width, x)
        return output + pointwise(layer.pointwise, v), next_near

    def _end_correction(
        self,
        layer: FourierLayer,
        mixed: Tensor,
        v_near: Tensor,
        system: _EndSystem,
        ends: _EndSpectra,
    ) -> tuple[Tensor, Tensor]:
        """The correction's spectrum ``(batch, width, modes)`` and the corrected output near the
        ends ``(batch, width, P)`` of a layer whose kept spectrum is ``mixed``, in eager
        operations (end_correction.c does the same in one call, :class:`_NativeEndCorrection`).
        """
        spectral = layer.spectral
        # (batch, width, P): the layer's output near the ends, before the correction.
        output_near = ends.near_ends(mixed) + pointwise(layer.pointwise, v_near)

        weight = torch.view_as_complex(spectral.weight)  # (in, width, modes)
        response_spectra = weight.sum(0) * ends.impulses.unsqueeze(1)  # (2, width, modes)
        response_ends = layer.pointwise.weight.sum(1)  # (width,): W 1, on the end entry
        with torch.no_grad():  # the correction is independent of the scale (_response_scale)
            responses = torch.view_as_real(response_spectra).flatten(-2) @ ends.waves  # (2, w, x)
            responses.addcmul_(ends.end_impulses, response_ends.unsqueeze(-1))  # on the end entry
            scale = _response_scale(responses, -1)  # (2, width, 1)
        response_spectra = response_spectra / scale  # (2, width, modes)
        pointwise_near = response_ends.unsqueeze(-1) * system.impulses.unsqueeze(1) / scale
        responses_near = ends.near_ends(response_spectra) + pointwise_near  # (2, width, P)

        multiples, use_impulse = system.multiples(output_near, responses_near, self.pivot_tolerance)
        keep = (~use_impulse).unsqueeze(-1)  # (width, 1): channels corrected along the responses
        spectra = torch.where(keep, response_spectra, 0).transpose(0, 1)  # (width, 2, modes)
        # Real multiples times complex spectra, summed over the two responses: no complex matmul.
        correction = (multiples.unsqueeze(-1) * spectra).sum(-2)  # (batch, width, modes)
        vectors_near = torch.where(keep, responses_near, system.impulses.unsqueeze(1))
        # (width, batch, 2) @ (width, 2, P): one bmm over the channels, the einsum's own product
        with field_precision(multiples):  # the correction's products in its precision
            near_correction = multiples.transpose(0, 1) @ vectors_near.transpose(0, 1)
        corrected_near = output_near + near_correction.transpose(0, 1)  # (batch, width, P)
        return correction, corrected_near  # (batch, width, modes), (batch, width, P)

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

    def _padded_walls(self, walls: Walls) -> Walls:
        """The walls on the padded hidden grid: time-dependent data gets padded frames."""
        data = {
            name: _extend_over_padding(value, self.fno.padding)
            for name, value in walls.data().items()
            if value is not None
        }
        return walls.with_values(**data)


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

    ``conditions``: the ends of one axis (:class:`~lawful.constraints.boundary.
    BoundaryConditions`) or :class:`~lawful.constraints.walls.Walls`. ``length`` is the extent
    of each constrained axis (grid step ``length / (n - 1)``, used by Neumann stencils): one
    number, or one per axis with walls. ``forward(x, left, right)`` or ``forward(x, x_left=...,
    ...)`` takes boundary data as :class:`BoundaryCorrectedFNO` does.
    """

    def __init__(
        self,
        model: nn.Module,
        conditions: BoundaryConditions | Walls,
        length: float | Sequence[float] = 1.0,
    ):
        super().__init__()
        axes = 1 if isinstance(conditions, BoundaryConditions) else len(conditions.axes)
        lengths = tuple(length) if isinstance(length, Sequence) else (length,) * axes
        if len(lengths) != axes or not all(value > 0 for value in lengths):
            raise ValueError(
                f"length must be one positive extent per constrained axis ({axes}), got {length}"
            )
        self.model, self.conditions, self.length = model, conditions, lengths

    def forward(
        self,
        x: Tensor,
        left: BoundaryValue | None = None,
        right: BoundaryValue | None = None,
        *,
        x_left: BoundaryValue | None = None,
        x_right: BoundaryValue | None = None,
        y_left: BoundaryValue | None = None,
        y_right: BoundaryValue | None = None,
    ) -> Tensor:
        output = self.model(x)
        walls = _given(x_left=x_left, x_right=x_right, y_left=y_left, y_right=y_right)
        if isinstance(self.conditions, Walls):
            named = self.conditions.with_values(left=left, right=right, **walls)
            named.validate(output.shape)
            spacings = [
                length / (output.shape[dim] - 1)
                for length, dim in zip(self.length, (X_DIM, Y_DIM)[: len(named.axes)], strict=True)
            ]
            return apply_walls(output, named, spacings)
        if walls:
            raise ValueError(
                f"these conditions constrain one axis; pass their data as left/right, not "
                f"{', '.join(walls)}"
            )
        conditions = self.conditions.with_values(left, right)
        conditions.validate(output.shape)
        n = output.shape[conditions.dim(output.ndim)]
        return apply_boundary_conditions(output, conditions, self.length[0] / (n - 1))
