"""The shape every problem of the catalogue has, conservation and boundary problems alike.

A :class:`Problem` names its spatial domain, the conditions at the two ends of x in BOON's
vocabulary (:mod:`lawful.constraints.boundary`; ``None`` where an end carries no condition, such
as an outflow end), its multi-step output times, and a sampler: draws of the problem's random
parameters -> solutions on a grid at those times, with the boundary data of each end. So any
problem feeds the same dataset code (:func:`lawful.pdes.make_boundary_dataset`) and the same
experiments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from lawful.constraints.boundary import BoundaryConditions

__all__ = ["NUM_FRAMES", "Problem", "Sampler", "Solution"]

NUM_FRAMES = 25
"""Output frames of our problems' multi-step datasets; a single-step dataset keeps the last."""


class Solution(NamedTuple):
    """What a problem's sampler returns, always with the time axis; float64 throughout.

    ``left``/``right``: the boundary data at each end and output time (the Dirichlet value or
    the Neumann flux ``u_x``), ``None`` for periodic ends.
    """

    initial: Tensor  # (batch, X)
    frames: Tensor  # (batch, T, X)
    left: Tensor | None  # (batch, T)
    right: Tensor | None  # (batch, T)
    parameters: dict[str, Tensor]  # each (batch,)


Sampler = Callable[..., Solution]
"""(num_samples, x (X,), times (T,), generator, **problem options) -> Solution.

Deterministic given the generator; options have defaults (e.g. ``viscosity=0.1``)."""


@runtime_checkable
class Problem(Protocol):
    """A PDE of the catalogue: what the datasets and experiments need of it."""

    name: str
    x_domain: tuple[float, float]

    @property
    def conditions(self) -> BoundaryConditions | None:
        """The kinds of the two ends of x (values are placeholders: the data is per sample)."""
        ...

    def times(self) -> Tensor:
        """The multi-step output times, (T,) float64, increasing."""
        ...

    def sample(
        self, num_samples: int, x: Tensor, times: Tensor, generator: torch.Generator, **options
    ) -> Solution:
        """``num_samples`` solutions on ``x`` (X,) at ``times`` (T,)."""
        ...
