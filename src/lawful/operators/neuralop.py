"""BOON on the FNO a user already trains: ``neuralop.models.FNO`` from neuraloperator 2.x.

The wrapper runs the user's own modules (positional embedding, lifting, each block's spectral
conv, skips and channel MLP, projection) in the order ``FNOBlocks.forward`` does, and adds
BOON's correction (lawful.operators.boon) where a block is linear. neuraloperator is imported
only when a wrapper is built: ``import lawful`` does not need it (``pip install lawful[neuralop]``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from lawful.constraints.boundary import (
    BoundaryConditions,
    BoundaryValue,
    apply_boundary_conditions,
)
from lawful.operators.boon import (
    DEFAULT_PIVOT_TOLERANCE,
    CorrectedOperator,
    boundary_responses,
    correct_boundary,
)

if TYPE_CHECKING:
    from neuralop.models import FNO

__all__ = ["BoundaryCorrectedNeuralopFNO"]


def _neuralop_fno_class() -> type[FNO]:
    try:
        from neuralop.models import FNO
    except ImportError as error:
        raise ImportError(
            "BoundaryCorrectedNeuralopFNO wraps neuraloperator's FNO, which is not installed: "
            "pip install lawful[neuralop]"
        ) from error
    return FNO


def _without_bias(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """``module`` run with its ``bias`` parameters set to zero: the linear part of an affine map.

    Zeros, not a subtraction of the bias afterwards, so the responses are bias-free exactly.
    """
    zeros = {
        name: torch.zeros_like(parameter)
        for name, parameter in module.named_parameters()
        if name.rsplit(".", 1)[-1] == "bias"
    }
    return partial(torch.func.functional_call, module, zeros) if zeros else module


def _edge_extended(value: BoundaryValue, padding: tuple[int, ...]) -> BoundaryValue:
    """Data ``(batch, *other)`` continued over ``padding[i]`` frames at both ends of each other
    axis by its edge frames (neuraloperator pads symmetrically); scalars and ``(batch,)``
    broadcast and need nothing."""
    if not isinstance(value, Tensor) or value.ndim < 2:
        return value
    for axis, frames in enumerate(padding, start=1):
        n = value.shape[axis]
        index = torch.arange(-frames, n + frames, device=value.device).clamp(0, n - 1)
        value = value.index_select(axis, index)  # (batch, ..., n + 2 frames, ...)
    return value


class BoundaryCorrectedNeuralopFNO(CorrectedOperator):
    """A neuraloperator ``FNO`` whose every block, and output, satisfies ``conditions`` exactly.

    ``fno`` is a ``neuralop.models.FNO`` (or ``TFNO``) on ``(batch, channels, *spatial)``, 1-D or
    more; the conditions act along one spatial axis and broadcast over the others.
    ``length`` is the extent of that axis from its first to its last grid point (grid step
    ``length / (n - 1)``, used by Neumann stencils). ``forward(x, left, right)`` takes this batch's
    boundary data as :class:`~lawful.operators.boon.BoundaryCorrectedFNO` does (float,
    ``(batch,)`` or ``(batch, *other)``); hidden blocks are held to the same data in every channel.
    The FNO's own weights are used and trained.

    What is corrected, per neuraloperator feature:

    - **Spectral conv + skip** (``fno_blocks.convs[i]`` plus ``fno_skips[i]``: linear 1x1 conv,
      soft-gating, identity, or none), the block's layer ``L v = K v + S v + b``: BOON-corrected
      (:func:`~lawful.operators.boon.correct_boundary`) along the responses of its bias-free part
      ``K v + S v`` (the conv's ``bias`` zeroed) to impulses at the two ends. Any conv that is
      linear plus a ``bias`` qualifies: dense, factorised (TFNO), separable, ``max_n_modes``, a
      custom ``conv_module``. With ``preactivation`` the layer acts on ``sigma(v)``, as in
      neuraloperator.
    - **Everything after it in the block**: ``non_linearity`` (in every block but the last, and
      again after the channel MLP unless ``preactivation``), the channel MLP with its skip from
      the block input, dropout. These act pointwise along the axis, so their only boundary
      responses are the end entries themselves: correcting them means setting the end entries
      of the block's output, which is done exactly (:func:`~lawful.constraints.boundary.
      apply_boundary_conditions`); the interior is neuraloperator's.
    - **Positional embedding and lifting**: before the first block; nothing to correct, since
      each block is corrected for any input.
    - **Projection**: pointwise; the output's end entries are set exactly.
    - **Domain padding**: allowed on the other axes (their boundary data continued over the
      padded frames by the edge frames); refused on the constrained axis, whose ends would lie
      inside the padded grid.

    Refused with a ``ValueError``, because the block then has no linear layer ``L v`` to correct:
    ``norm`` (it sits between the conv and the skip sum, with input-dependent statistics),
    ``stabilizer="tanh"`` (the conv reads ``tanh(v)``, the skip ``v``), ``fno_block_precision``
    other than ``"full"``, ``complex_data``, and ``resolution_scaling_factor`` (the grid changes
    between blocks).

    Precision: neuraloperator's ``SpectralConv`` keeps its spectrum in complex64 whatever the
    input dtype, and ``.double()`` leaves its complex weights complex64 (cast them too); the
    conditions still hold to float64 rounding, since the correction is solved on the tensors the
    layer produced. Cost per block and forward pass: the layer applied once more to the two
    probes ``(2, width, *spatial)`` (the responses depend on the weights alone), plus 2 x 2
    solves near the ends. ``pivot_tolerance``: as in :func:`~lawful.operators.boon.
    correct_boundary` (a near-singular system overwrites that channel's ends instead).
    """

    def __init__(
        self,
        fno: FNO,
        conditions: BoundaryConditions,
        length: float = 1.0,
        pivot_tolerance: float = DEFAULT_PIVOT_TOLERANCE,
    ) -> None:
        super().__init__()
        if not isinstance(fno, _neuralop_fno_class()):
            raise TypeError(f"expected a neuralop.models.FNO, got {type(fno).__name__}")
        if not length > 0:
            raise ValueError(f"length must be positive, got {length}")
        self.dim = conditions.dim(2 + fno.n_dim)
        _check_correctable(fno, self.dim - 2)
        self.fno, self.conditions = fno, conditions
        self.length, self.pivot_tolerance = length, pivot_tolerance

    def _run(
        self,
        x: Tensor,
        left: BoundaryValue | None,
        right: BoundaryValue | None,
        keep_states: bool,
        **walls: BoundaryValue,
    ) -> tuple[Tensor, list[Tensor]]:
        if walls:
            raise ValueError(
                f"this wrapper constrains one axis; give its data as left/right, not "
                f"{', '.join(sorted(walls))}"
            )
        fno = self.fno
        if x.ndim != 2 + fno.n_dim or x.shape[1] != fno.in_channels:
            spatial = ", ".join(["n"] * fno.n_dim)
            raise ValueError(
                f"input must have shape (batch, {fno.in_channels}, {spatial}), got {tuple(x.shape)}"
            )
        conditions = self.conditions.with_values(left, right)
        conditions.validate(torch.Size((x.shape[0], fno.out_channels, *x.shape[2:])))
        spacing = self.length / (x.shape[self.dim] - 1)
        v = x if fno.positional_embedding is None else fno.positional_embedding(x)
        v = fno.lifting(v)  # (batch, hidden, *spatial)
        if fno.domain_padding is not None:
            v = fno.domain_padding.pad(v)  # (batch, hidden, *padded spatial), dim not padded
        hidden_conditions = self._on_padded_grid(conditions, x.shape[2:], v.shape[2:])
        states = []
        for index in range(fno.n_layers):
            v = self._corrected_block(index, v, hidden_conditions, spacing)
            if keep_states:
                states.append(self._unpadded(v))
        output = fno.projection(self._unpadded(v))  # (batch, out, *spatial)
        return apply_boundary_conditions(output, conditions, spacing), states

    def _corrected_block(
        self, index: int, v: Tensor, conditions: BoundaryConditions, spacing: float
    ) -> Tensor:
        """``FNOBlocks.forward(v, index)`` with its layer BOON-corrected and its ends exact."""
        blocks = self.fno.fno_blocks
        activated = index < blocks.n_layers - 1  # neuraloperator's last block has no activation
        if blocks.preactivation:
            v = blocks.non_linearity(v)
        conv = blocks.convs[index]
        skip = None if blocks.fno_skips is None else blocks.fno_skips[index]
        conv_linear = _without_bias(conv)

        def linear_part(probes: Tensor) -> Tensor:  # K v + S v: (2, hidden, *spatial)
            return conv_linear(probes) if skip is None else conv_linear(probes) + skip(probes)

        layer = conv(v) if skip is None else conv(v) + skip(v)  # (batch, hidden, *spatial)
        responses = boundary_responses(
            linear_part, blocks.in_channels, tuple(v.shape[2:]), self.dim, v
        )  # (2, hidden, *spatial)
        z = correct_boundary(layer, responses, conditions, spacing, self.pivot_tolerance)
        # The rest is pointwise along the axis: the interior never reads the end entries, so
        # setting them once, on the block's output, is exact.
        if activated:
            z = blocks.non_linearity(z)
        if blocks.use_channel_mlp:
            z = blocks.channel_mlp[index](z)
            if blocks.channel_mlp_skips is not None:
                z = z + blocks.channel_mlp_skips[index](v)
        if activated and not blocks.preactivation:
            z = blocks.non_linearity(z)
        return apply_boundary_conditions(z, conditions, spacing)

    def _unpadded(self, v: Tensor) -> Tensor:
        padding = self.fno.domain_padding
        return v if padding is None else padding.unpad(v)

    def _on_padded_grid(
        self, conditions: BoundaryConditions, shape: torch.Size, padded_shape: torch.Size
    ) -> BoundaryConditions:
        """The conditions on the hidden grid: data along the other axes extended over padding."""
        other = [axis for axis in range(len(shape)) if axis != self.dim - 2]
        padding = tuple((padded_shape[axis] - shape[axis]) // 2 for axis in other)
        if conditions.is_periodic or not any(padding):
            return conditions
        left, right = (
            _edge_extended(end.value, padding) for end in (conditions.left, conditions.right)
        )
        return conditions.with_values(left, right)


def _check_correctable(fno: FNO, axis: int) -> None:
    """Raise if ``fno`` has a feature that leaves its blocks without a linear layer to correct,
    or pads the constrained spatial ``axis``."""
    blocks = fno.fno_blocks
    refusals = {
        "norm": blocks.norm is not None,
        "stabilizer": blocks.stabilizer is not None,
        "fno_block_precision": blocks.fno_block_precision != "full",
        "complex_data": blocks.complex_data,
        "resolution_scaling_factor": blocks.resolution_scaling_factor is not None,
    }
    found = [name for name, present in refusals.items() if present]
    if found:
        raise ValueError(
            f"BOON cannot correct this FNO's blocks: {', '.join(found)} leave no linear layer "
            "K v + S v + b before the activation (see BoundaryCorrectedNeuralopFNO); "
            "build the FNO without them, or enforce the conditions at the output only "
            "(lawful.operators.BoundaryOverwrite)"
        )
    if fno.domain_padding is not None:
        fractions = fno.domain_padding.domain_padding
        fraction = fractions if isinstance(fractions, int | float) else fractions[axis]
        if fraction > 0:
            raise ValueError(
                f"the FNO's domain padding pads spatial axis {axis}, the constrained one, so its "
                "ends lie inside the padded grid; give that axis 0 padding "
                f"(domain_padding as a list with 0 at index {axis}) or use none"
            )
