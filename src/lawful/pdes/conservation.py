"""The catalogue of conservation problems: exact solutions, exact total mass, fluxes.

Every problem is a one-parameter family of 1-D conservation laws ``u_t + F(u, u_x)_x = 0`` with
a closed-form solution ``u(t, x)`` and a closed-form total mass ``U(t) = integral of u over x``.
The exact mass is the right-hand side ``b`` of the ProbConserv constraint ``G u = b``; the
exact solution is the truth that data generation samples and that tests check against.

All methods are torch functions of ``(param, t, x)`` that broadcast their arguments against each
other, keep the floating dtype they are given (float64 stays float64), and are differentiable
wherever the solution is smooth (``torch.where`` is paired with a "safe" operand so a branch
that is not taken never puts ``inf`` or ``NaN`` into a gradient).

The geometry of a problem (its name, domains and parameter name) is part of its exact solution
and fixed; the experiment settings (training range, test parameters, evaluation time ``t_star``)
are fields that ``dataclasses.replace`` may change.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lawful.constraints.boundary import BoundaryConditions, Dirichlet, Periodic
from lawful.pdes.problem import NUM_FRAMES, Solution

__all__ = [
    "CONSERVATION_PROBLEMS",
    "AdvectionProblem",
    "BurgersProblem",
    "ConservationProblem",
    "HeatProblem",
    "PorousMediumProblem",
    "StefanProblem",
    "get_conservation_problem",
    "stefan_similarity_root",
]

_SQRT_PI = math.sqrt(math.pi)
# Halvings of the Stefan root's bracket: they shrink a bracket of width <= 2^8 to 2^-64.
_BISECTION_STEPS = 72


def _common_dtype_and_device(*values: Tensor | float) -> tuple[torch.dtype, torch.device | None]:
    """The widest floating dtype among the tensors given (else torch's default), and the first
    tensor's device."""
    tensors = [value for value in values if isinstance(value, Tensor)]
    float_dtypes = [tensor.dtype for tensor in tensors if tensor.is_floating_point()]
    dtype = (
        functools.reduce(torch.promote_types, float_dtypes)
        if float_dtypes
        else torch.get_default_dtype()
    )
    return dtype, (tensors[0].device if tensors else None)


def _broadcast(*values: Tensor | float) -> tuple[Tensor, ...]:
    """Tensors of one floating dtype (the widest given, else torch's default) and one device,
    broadcast against each other."""
    dtype, device = _common_dtype_and_device(*values)
    return torch.broadcast_tensors(
        *(torch.as_tensor(value, dtype=dtype, device=device) for value in values)
    )


@dataclass(frozen=True)
class ConservationProblem(ABC):
    """A one-parameter family ``u_t + F(u, u_x)_x = 0`` on ``x_domain x t_domain``.

    Attributes:
        name: registry key, e.g. ``"pme"``.
        param_name: the parameter's symbol in the papers (``"k"``, ``"m"``, ``"p_star"``, ``"a"``).
        x_domain, t_domain: closed intervals ``(low, high)``.
        param_range: training parameters are drawn from ``U[low, high]``.
        test_params: the parameters reported at evaluation (may lie outside ``param_range``).
        t_star: the evaluation time.
    """

    name: str
    param_name: str
    x_domain: tuple[float, float]
    t_domain: tuple[float, float]
    param_range: tuple[float, float]
    test_params: tuple[float, ...]
    t_star: float

    def __post_init__(self) -> None:
        low, high = self.param_range
        if not low < high:
            raise ValueError(f"{self.name}: param_range must satisfy low < high, got {(low, high)}")
        t_low, t_high = self.t_domain
        if not t_low <= self.t_star <= t_high:
            raise ValueError(
                f"{self.name}: t_star = {self.t_star} lies outside t_domain {self.t_domain}"
            )

    @abstractmethod
    def solution(self, param: Tensor | float, t: Tensor | float, x: Tensor | float) -> Tensor:
        """The exact solution ``u(t, x)`` for parameter ``param``."""

    @abstractmethod
    def total_mass(self, param: Tensor | float, t: Tensor | float) -> Tensor:
        """The exact ``U(t)``: the integral of ``u(t, .)`` over ``x_domain``."""

    @abstractmethod
    def flux(self, u: Tensor, u_x: Tensor, param: Tensor | float) -> Tensor:
        """The flux ``F`` in ``u_t + F_x = 0``, built from differentiable torch operations so a
        soft-constraint loss can take ``d/dx F(u, u_x)`` by autograd."""

    def shock_position(self, param: Tensor | float, t: Tensor | float) -> Tensor | None:
        """The moving front: the ``x`` right of which ``u = 0``, clipped to ``x_domain``.

        ``None`` for problems without a front.
        """
        return None

    def sample_params(
        self, n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
    ) -> Tensor:
        """``n`` training parameters drawn uniformly from ``param_range``; shape ``(n,)``."""
        low, high = self.param_range
        return low + (high - low) * torch.rand(n, generator=generator, dtype=dtype)

    @property
    def conditions(self) -> BoundaryConditions | None:
        """The kinds of the ends of x (:class:`~lawful.pdes.problem.Problem`); ``None`` where an
        end is an outflow end and carries no condition."""
        return None

    def times(self) -> Tensor:
        """``NUM_FRAMES`` equally spaced output times after the start of ``t_domain``: (T,)."""
        low, high = self.t_domain
        steps = torch.arange(1, NUM_FRAMES + 1, dtype=torch.float64) / NUM_FRAMES  # (T,)
        return low + (high - low) * steps

    def sample(
        self, num_samples: int, x: Tensor, times: Tensor, generator: torch.Generator, **options
    ) -> Solution:
        """Exact solutions for ``num_samples`` parameters drawn from ``param_range``, on ``x``
        (X,) at ``times`` (T,); the boundary data is the solution at the ends (none if periodic).

        The family has one parameter and no options: any are an error.
        """
        if options:
            raise ValueError(f"{self.name} takes no sampler options, got {sorted(options)}")
        params = self.sample_params(num_samples, generator)  # (B,)
        frames = self.solution(params[:, None, None], times[None, :, None], x)  # (B, T, X)
        initial = self.solution(params[:, None], self.t_domain[0], x)  # (B, X)
        periodic = self.conditions is not None and self.conditions.is_periodic
        left, right = (None, None) if periodic else (frames[..., 0], frames[..., -1])
        return Solution(initial, frames, left, right, {self.param_name: params})

    def _clip_to_domain(self, position: Tensor) -> Tensor:
        return position.clamp(*self.x_domain)


@dataclass(frozen=True)
class HeatProblem(ConservationProblem):
    """Heat equation ``u_t = k u_xx`` on ``[0, 2 pi]``, periodic, ``u0 = sin x``.

    ``u = exp(-k t) sin x``; the mass is zero at all times.
    """

    name: str = field(default="heat", init=False)
    param_name: str = field(default="k", init=False)
    x_domain: tuple[float, float] = field(default=(0.0, 2 * math.pi), init=False)
    t_domain: tuple[float, float] = field(default=(0.0, 1.0), init=False)
    param_range: tuple[float, float] = (1.0, 5.0)
    test_params: tuple[float, ...] = (1.0, 5.0)
    t_star: float = 0.5

    @property
    def conditions(self) -> BoundaryConditions:
        return BoundaryConditions(Periodic(), Periodic())

    def solution(self, param: Tensor | float, t: Tensor | float, x: Tensor | float) -> Tensor:
        k, t, x = _broadcast(param, t, x)
        return torch.exp(-k * t) * torch.sin(x)

    def total_mass(self, param: Tensor | float, t: Tensor | float) -> Tensor:
        k, t = _broadcast(param, t)
        return torch.zeros_like(k)

    def flux(self, u: Tensor, u_x: Tensor, param: Tensor | float) -> Tensor:
        return -param * u_x


@dataclass(frozen=True)
class PorousMediumProblem(ConservationProblem):
    """Porous medium equation ``u_t = (u^m u_x)_x`` on ``[0, 1]``, ``u0 = 0``,
    Dirichlet ``u(t, 0) = (m t)^(1/m)``.

    ``u = (m ReLU(t - x))^(1/m)``: a front at ``x = t`` with infinite slope behind it when
    ``m > 1``. ``U(t) = m^(1 + 1/m) / (m + 1) * (t^(1 + 1/m) - ReLU(t - 1)^(1 + 1/m))``; the second
    term, zero on ``t_domain``, keeps the formula exact once the front has left the domain.
    """

    name: str = field(default="pme", init=False)
    param_name: str = field(default="m", init=False)
    x_domain: tuple[float, float] = field(default=(0.0, 1.0), init=False)
    t_domain: tuple[float, float] = field(default=(0.0, 1.0), init=False)
    param_range: tuple[float, float] = (1.0, 6.0)
    test_params: tuple[float, ...] = (1.0, 3.0, 6.0)
    t_star: float = 0.5

    @property
    def conditions(self) -> BoundaryConditions:
        return BoundaryConditions(Dirichlet(), Dirichlet())  # (m t)^(1/m) at 0; 0 at 1

    def solution(self, param: Tensor | float, t: Tensor | float, x: Tensor | float) -> Tensor:
        m, t, x = _broadcast(param, t, x)
        behind_front = t - x
        wet = behind_front > 0
        # 0 ** (1/m - 1) = inf would turn the zero gradient of the dry side into NaN.
        safe_behind_front = torch.where(wet, behind_front, torch.ones_like(behind_front))
        return torch.where(wet, (m * safe_behind_front) ** (1 / m), 0.0)

    def total_mass(self, param: Tensor | float, t: Tensor | float) -> Tensor:
        m, t = _broadcast(param, t)
        exponent = 1 + 1 / m
        x_high = self.x_domain[1]
        return m**exponent / (m + 1) * (t.relu() ** exponent - (t - x_high).relu() ** exponent)

    def flux(self, u: Tensor, u_x: Tensor, param: Tensor | float) -> Tensor:
        # The diffusivity of a density: clamping keeps a model's slightly negative
        # prediction from raising a negative number to a fractional power (NaN).
        return -(u.clamp(min=0) ** param) * u_x

    def shock_position(self, param: Tensor | float, t: Tensor | float) -> Tensor:
        _, t = _broadcast(param, t)
        return self._clip_to_domain(t)


def _stefan_root_residual(z: Tensor, p_star: Tensor) -> Tensor:
    return p_star * torch.erf(z) * z * torch.exp(z**2) - (1 - p_star) / _SQRT_PI


def _stefan_root_residual_slope(z: Tensor, p_star: Tensor) -> Tensor:
    """d/dz of :func:`_stefan_root_residual`."""
    return p_star * (torch.exp(z**2) * torch.erf(z) * (1 + 2 * z**2) + 2 * z / _SQRT_PI)


def stefan_similarity_root(p_star: Tensor | float) -> Tensor:
    """The root ``z1 > 0`` of ``p* erf(z) z exp(z^2) = (1 - p*) / sqrt(pi)``, elementwise.

    The left side grows strictly from 0 on ``z > 0``, so the root is unique for ``0 < p* < 1``.
    Bisection in float64 finds it; one Newton step then runs inside the autograd graph: its
    value is the (polished) root and its derivative in ``p*`` is the implicit-function
    derivative ``-f_p / f_z``, so gradients flow without differentiating through the bisection.
    """
    (p_star,) = _broadcast(p_star)
    outside = ~((p_star > 0) & (p_star < 1))
    if bool(outside.any()):
        raise ValueError(
            f"the Stefan threshold p* must lie in (0, 1), got {p_star[outside][:5].tolist()}"
        )
    with torch.no_grad():
        p64 = p_star.detach().to(torch.float64)
        low = torch.zeros_like(p64)
        high = torch.ones_like(p64)
        while bool((too_low := _stefan_root_residual(high, p64) < 0).any()):
            high = torch.where(too_low, 2 * high, high)
        for _ in range(_BISECTION_STEPS):
            middle = (low + high) / 2
            root_above = _stefan_root_residual(middle, p64) < 0
            low = torch.where(root_above, middle, low)
            high = torch.where(root_above, high, middle)
        root = ((low + high) / 2).to(p_star.dtype)
    return root - _stefan_root_residual(root, p_star) / _stefan_root_residual_slope(root, p_star)


@dataclass(frozen=True)
class StefanProblem(ConservationProblem):
    """Stefan problem: ``u_t = (k(u) u_x)_x`` with ``k(u) = 1`` if ``u >= p*`` else 0, on
    ``[0, 1]``, ``u0 = 0``, ``u(t, 0) = 1``.

    Neumann's similarity solution: ``u = 1 - c1 erf(x / (2 sqrt t))`` for ``x <= alpha sqrt t``,
    else 0, with ``alpha = 2 z1`` (:func:`stefan_similarity_root`) and
    ``c1 = (1 - p*) / erf(z1)``, so ``u`` drops from ``p*`` to 0 at the front.
    ``U(t) = 2 c1 sqrt(t / pi)`` (this closed form holds because ``z1`` solves its equation).
    """

    name: str = field(default="stefan", init=False)
    param_name: str = field(default="p_star", init=False)
    x_domain: tuple[float, float] = field(default=(0.0, 1.0), init=False)
    t_domain: tuple[float, float] = field(default=(0.0, 0.1), init=False)
    param_range: tuple[float, float] = (0.55, 0.7)
    test_params: tuple[float, ...] = (0.5, 0.6)
    t_star: float = 0.05

    @property
    def conditions(self) -> BoundaryConditions:
        return BoundaryConditions(Dirichlet(), Dirichlet())  # 1 at 0; 0 at 1 (front inside)

    def solution(self, param: Tensor | float, t: Tensor | float, x: Tensor | float) -> Tensor:
        p_star, z1, t, x = _broadcast(*self._root(param, t, x), t, x)
        c1 = (1 - p_star) / torch.erf(z1)
        # At t = 0 the front sits at x = 0: u(0, 0) = 1 - c1 erf(0) = 1 from the safe time,
        # u(0, x > 0) = 0 from the front test; sqrt(0) never enters a division.
        safe_t = torch.where(t > 0, t, torch.ones_like(t))
        liquid = 1 - c1 * torch.erf(x / (2 * torch.sqrt(safe_t)))
        return torch.where(x <= 2 * z1 * torch.sqrt(t), liquid, 0.0)

    def total_mass(self, param: Tensor | float, t: Tensor | float) -> Tensor:
        p_star, z1, t = _broadcast(*self._root(param, t), t)
        c1 = (1 - p_star) / torch.erf(z1)
        return 2 * c1 * torch.sqrt(t / math.pi)

    def flux(self, u: Tensor, u_x: Tensor, param: Tensor | float) -> Tensor:
        return -torch.where(u >= param, u_x, 0.0)

    def shock_position(self, param: Tensor | float, t: Tensor | float) -> Tensor:
        _, z1, t = _broadcast(*self._root(param, t), t)
        return self._clip_to_domain(2 * z1 * torch.sqrt(t))

    @staticmethod
    def _root(param: Tensor | float, *others: Tensor | float) -> tuple[Tensor, Tensor]:
        """``p*`` and its root ``z1``, solved once per parameter value, before broadcasting over
        (t, x): the bisection costs 70 passes, over a whole grid 60 times slower."""
        dtype, device = _common_dtype_and_device(param, *others)
        p_star = torch.as_tensor(param, dtype=dtype, device=device)
        return p_star, stefan_similarity_root(p_star)


@dataclass(frozen=True)
class AdvectionProblem(ConservationProblem):
    """Linear advection ``u_t + a u_x = 0`` on ``[0, 1]``, ``u0 = 1`` for ``x <= 0.5`` else 0,
    inflow ``u(t, 0) = 1``.

    The step moves right at speed ``a``: ``u = 1`` for ``x <= 0.5 + a t``, else 0, and
    ``U(t) = 0.5 + min(a t, 0.5)`` (1 once the step has left the domain).
    """

    name: str = field(default="advection", init=False)
    param_name: str = field(default="a", init=False)
    x_domain: tuple[float, float] = field(default=(0.0, 1.0), init=False)
    t_domain: tuple[float, float] = field(default=(0.0, 1.0), init=False)
    param_range: tuple[float, float] = (1.0, 5.0)
    test_params: tuple[float, ...] = (1.0, 3.0)
    t_star: float = 0.1

    def solution(self, param: Tensor | float, t: Tensor | float, x: Tensor | float) -> Tensor:
        a, t, x = _broadcast(param, t, x)
        return (x <= 0.5 + a * t).to(x.dtype)

    def total_mass(self, param: Tensor | float, t: Tensor | float) -> Tensor:
        a, t = _broadcast(param, t)
        return 0.5 + (a * t).clamp(max=0.5)

    def flux(self, u: Tensor, u_x: Tensor, param: Tensor | float) -> Tensor:
        return param * u

    def shock_position(self, param: Tensor | float, t: Tensor | float) -> Tensor:
        a, t = _broadcast(param, t)
        return self._clip_to_domain(0.5 + a * t)


@dataclass(frozen=True)
class BurgersProblem(ConservationProblem):
    """Inviscid Burgers ``u_t + (u^2 / 2)_x = 0`` on ``[-1, 1]``, ``u0 = -a x`` on ``[-1, 0]``,
    0 for ``x > 0``, inflow ``u(t, -1) = a``.

    Characteristics: before ``t = 1/a``, ``u = a`` for ``x <= -1 + a t``, the ramp
    ``u = -a x / (1 - a t)`` up to ``x = 0``, and 0 beyond. The ramp steepens into a shock at
    ``x = 0``, ``t = 1/a`` that moves at the Rankine-Hugoniot speed ``a / 2``:
    ``s(t) = (a t - 1) / 2``, ``u = a`` left of it and 0 right. ``U(t) = (a / 2)(1 + a t)``
    until the shock leaves through ``x = 1`` (``a t = 3``), then ``2 a``.
    """

    name: str = field(default="burgers", init=False)
    param_name: str = field(default="a", init=False)
    x_domain: tuple[float, float] = field(default=(-1.0, 1.0), init=False)
    t_domain: tuple[float, float] = field(default=(0.0, 1.0), init=False)
    param_range: tuple[float, float] = (1.0, 4.0)
    test_params: tuple[float, ...] = (1.0, 3.0)
    t_star: float = 0.5

    def solution(self, param: Tensor | float, t: Tensor | float, x: Tensor | float) -> Tensor:
        a, t, x = _broadcast(param, t, x)
        before_shock = a * t < 1
        # 1 - a t reaches 0 at the shock time; the ramp branch is not taken from then on.
        ramp_width = torch.where(before_shock, 1 - a * t, torch.ones_like(t))
        ramp = -a * x / ramp_width
        compressing = torch.where(x <= -1 + a * t, a, torch.where(x <= 0, ramp, 0.0))
        shocked = torch.where(x <= (a * t - 1) / 2, a, 0.0)
        return torch.where(before_shock, compressing, shocked)

    def total_mass(self, param: Tensor | float, t: Tensor | float) -> Tensor:
        a, t = _broadcast(param, t)
        return a / 2 * (1 + a * t).clamp(max=4.0)

    def flux(self, u: Tensor, u_x: Tensor, param: Tensor | float) -> Tensor:
        return u**2 / 2

    def shock_position(self, param: Tensor | float, t: Tensor | float) -> Tensor:
        a, t = _broadcast(param, t)
        return self._clip_to_domain(((a * t - 1) / 2).clamp(min=0.0))


CONSERVATION_PROBLEMS: dict[str, ConservationProblem] = {
    problem.name: problem
    for problem in (
        HeatProblem(),
        PorousMediumProblem(),
        StefanProblem(),
        AdvectionProblem(),
        BurgersProblem(),
    )
}


def get_conservation_problem(name: str) -> ConservationProblem:
    """The registered problem called ``name``."""
    try:
        return CONSERVATION_PROBLEMS[name]
    except KeyError:
        valid = ", ".join(sorted(CONSERVATION_PROBLEMS))
        raise ValueError(f"unknown conservation problem {name!r}; valid names: {valid}") from None
