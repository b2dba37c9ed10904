"""Fourier neural operators (Li et al., ICLR 2021) over any number of spatial axes, with or
without time.

Layout everywhere: ``(batch, channels, *axes)``, e.g. ``(batch, channels, x, y, t)``. An FNO
lifts the input (with the grid coordinates appended as channels) pointwise to ``width`` channels,
applies ``num_layers`` Fourier layers ``v -> gelu(K v + W v)`` (no activation after the last) and
projects pointwise to ``projection_width`` then ``out_channels``. ``K`` is a spectral convolution
on the lowest modes of every axis, ``W`` a pointwise channel mix. Time, when there is one, is the
last axis, the only one that can be zero-padded (``padding``): it is not periodic, while the
spectral layers treat every unpadded axis as periodic.

One implementation serves every number of axes: :class:`SpectralConv` (``rfftn`` over the last
``len(n_modes)`` axes, a complex weight per (input channel, output channel, kept mode),
``irfftn``) and :class:`FourierNeuralOperator`. The named models only say which axes they span,
in layout order; ``x``, ``y`` are space and ``t`` is time:

- :class:`FNO1d` (x): single step, ``a(x) -> u(x)``;
- :class:`FNOxt` (x, t), also called :data:`FNO2d`, its first name: ``u0`` repeated over t ->
  ``u(x, t_1..t_T)``;
- :class:`FNOxy` (x, y): single step, ``a(x, y) -> u(x, y)``;
- :class:`FNOxyt` (x, y, t): ``u0`` repeated over t -> ``u(x, y, t_1..t_T)``.

Names list the axes because a count alone is ambiguous: "2d" was (x, t) here and is (x, y) in
the textbook FNO. ``FNO1d`` keeps its name: one axis can only be x. The state-dict keys and
shapes of ``FNO1d`` and ``FNO2d`` are those of the earlier per-dimension classes, so their saved
weights load unchanged.

The pieces are exposed (:meth:`FourierNeuralOperator.lift`, :attr:`layers` with
:meth:`FourierLayer.linear`, :meth:`FourierNeuralOperator.project`, and the stages
:meth:`SpectralConv.coefficients`, :meth:`SpectralConv.mix`, :meth:`SpectralConv.synthesize`) so
that BOON can correct each linear layer between them (lawful.operators.boon).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FNO1d",
    "FNO2d",
    "FNOxt",
    "FNOxy",
    "FNOxyt",
    "FourierLayer",
    "FourierNeuralOperator",
    "SpectralConv",
    "SpectralConv1d",
    "SpectralConv2d",
]

Domain = tuple[float, float]
UNIT_INTERVAL: Domain = (0.0, 1.0)


def _complex_weight(in_channels: int, out_channels: int, *modes: int) -> nn.Parameter:
    """Complex weights stored as real ``(..., 2)`` pairs, so ``.double()`` and ``.to`` cast them."""
    scale = 1 / (in_channels * out_channels)  # the reference FNO initialisation
    return nn.Parameter(scale * torch.rand(in_channels, out_channels, *modes, 2))


def _check_count(name: str, value: object, least: int = 1) -> None:
    """Raise unless ``value`` is an integer (a bool is not one) of at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be >= {least}, got {value}")


def _check_domain(name: str, domain: object) -> None:
    """Raise unless ``domain`` is a finite interval ``(low, high)`` with ``low < high``."""
    if (
        not isinstance(domain, Sequence)
        or len(domain) != 2
        or any(isinstance(end, bool) or not isinstance(end, numbers.Real) for end in domain)
    ):
        raise TypeError(f"{name} must be a pair of numbers (low, high), got {domain!r}")
    low, high = domain
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{name} must be a finite interval (low, high), low < high, got {domain}")


def fft_any_batch(transform: Callable[..., Tensor], v: Tensor, **kwargs: object) -> Tensor:
    """``transform(v, **kwargs)``, an FFT over trailing axes of ``v`` ``(batch, ...)``, also for
    an empty batch, which oneMKL's FFT rejects: that one is transformed with one zero sample
    appended, which is then dropped, so the result keeps its shape, dtype and autograd graph."""
    if v.shape[0]:
        return transform(v, **kwargs)
    one = torch.cat([v, v.new_zeros(1, *v.shape[1:])])  # (1, ...)
    return transform(one, **kwargs)[:0]  # (0, ...)


def _shape_text(sizes: tuple[int, ...]) -> str:
    """``(16, 12) -> "16 x 12"``, and ``(16,) -> "16"``."""
    return " x ".join(str(size) for size in sizes)


def _kept_modes(spectrum: Tensor, n_modes: tuple[int, ...]) -> Tensor:
    """A view of the kept modes of an ``rfftn`` half-spectrum over its last ``k`` axes.

    ``(..., n_0, ..., n_{k-2}, n_last) -> (..., 2, m_0, ..., 2, m_{k-2}, m_{k-1})``: on each axis
    but the last, pair index 0 holds the frequencies ``0..m-1`` and index 1 the frequencies
    ``-m..-1``, both ascending; the last axis (halved by ``rfftn``) keeps ``0..m-1``. No copy:
    ``unfold`` with window ``m`` and step ``n - m`` is exactly the windows at 0 and at ``n - m``
    (the caller ensures ``2 m <= n``).
    """
    k, first = len(n_modes), spectrum.ndim - len(n_modes)
    kept = spectrum.narrow(-1, 0, n_modes[-1])  # (..., n_0, ..., n_{k-2}, m_last)
    for axis, m in enumerate(n_modes[:-1], start=first):
        kept = kept.unfold(axis, m, kept.shape[axis] - m)  # n at axis -> 2, m appended at the end
    # (..., 2, ..., 2, m_last, m_0, ..., m_{k-2}) -> (..., 2, m_0, ..., 2, m_{k-2}, m_last)
    pairs = [dim for j in range(k - 1) for dim in (first + j, first + k + j)]
    return kept.permute(*range(first), *pairs, first + k - 1)


class _BatchedProduct(torch.autograd.Function):
    """``x @ w`` for batches of complex matrices, ``(B, n, k) @ (B, k, m)``.

    Forward and backward multiply operands laid out for the batched product: given strided
    ones (a permuted view, a broadcast, the transposed conjugates autograd's own backward
    forms), the CPU's batched product of complex matrices falls back to one product per matrix
    with a copy of each operand. The same products either way, to the bit; forward and
    backward of the FNO's mixing at the 2-D + time size of lawful bench (2048 modes, batch 10,
    width 20) 30 -> 8.5 ms.
    """

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor) -> Tensor:
        # The inputs as given (not their copies), so that a second derivative reaches them;
        # each only where the other's gradient needs it (BOON's constant phases need none).
        needs_x, needs_w = ctx.needs_input_grad
        ctx.save_for_backward(x if needs_w else None, w if needs_x else None)
        return torch.bmm(x.contiguous(), w.contiguous())  # (B, n, m)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, w = ctx.saved_tensors
        grad = grad.contiguous()  # (B, n, m)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(grad, w.mH.resolve_conj().contiguous())  # (B, n, k)
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(x.mH.resolve_conj().contiguous(), grad)  # (B, k, m)
        return grad_x, grad_w


def batched_product(x: Tensor, w: Tensor) -> Tensor:
    """``torch.bmm(x, w)`` of complex ``(B, n, k)`` and ``(B, k, m)``, strided or not, at the
    speed of contiguous operands in the forward and the backward (:class:`_BatchedProduct`)."""
    return _BatchedProduct.apply(x, w)


class SpectralConv(nn.Module):
    """``v -> irfftn(W_k * rfftn(v)_k)`` over the last ``len(n_modes)`` axes, on the low modes.

    Axis ``j`` keeps ``n_modes[j]`` frequencies: on every axis but the last both the lowest
    non-negative ``0..m-1`` and the most negative ``-m..-1`` (the FNO's choice; the last axis is
    halved by ``rfftn``, so its negative frequencies are the conjugates), on the last ``0..m-1``.
    Higher modes are dropped. ``W_k`` mixes channels: ``(in, out)`` complex entries per kept mode.
    ``weight`` is ``(in, out, 2 m_0, ..., 2 m_{k-2}, m_{k-1}, 2)`` (real and imaginary parts), on
    each of the first axes the non-negative frequencies first, then the negative ones.

    Cost per call, for a batch ``B`` on a grid of ``N`` points with ``M`` kept modes: one
    ``rfftn`` and one ``irfftn``, ``O(B (in + out) N log N)``, and one complex batched matmul over
    the kept modes, ``O(B in out M)`` (no loop over modes or axes). Gathering the kept modes is a
    view; scattering them back writes them once into a zero spectrum that is already truncated
    on the last axis (``irfftn`` zero-pads that axis itself). With one axis the kept modes are a
    prefix, so no zero spectrum is needed at all.
    """

    def __init__(self, in_channels: int, out_channels: int, n_modes: tuple[int, ...]) -> None:
        super().__init__()
        _check_count("in_channels", in_channels)
        _check_count("out_channels", out_channels)
        if not isinstance(n_modes, Sequence) or not n_modes:
            raise TypeError(
                f"n_modes must be a non-empty tuple, one count per axis, got {n_modes!r}"
            )
        for axis, m in enumerate(n_modes):
            _check_count(f"modes of axis {axis}", m)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.n_modes = tuple(n_modes)
        first_axes, last = self.n_modes[:-1], self.n_modes[-1]
        # (in, out, 2 m_0, ..., 2 m_{k-2}, m_last, 2)
        self.weight = _complex_weight(in_channels, out_channels, *(2 * m for m in first_axes), last)

    @property
    def axes(self) -> tuple[int, ...]:
        """The transformed axes of a field ``(batch, channels, *axes)``: the last ``k``."""
        return tuple(range(-len(self.n_modes), 0))

    @property
    def least_grid(self) -> tuple[int, ...]:
        """The fewest points per transformed axis that hold the kept modes: ``2 m`` on every axis
        but the last (the windows at 0 and ``n - m`` of :func:`_kept_modes` must not overlap),
        ``2 m - 2`` on the last (``rfft`` of ``n`` points has ``n // 2 + 1`` frequencies), and at
        least 1."""
        return (*(2 * m for m in self.n_modes[:-1]), max(2 * self.n_modes[-1] - 2, 1))

    def coefficients(self, v: Tensor) -> Tensor:
        """The kept Fourier coefficients of ``v``, a view (see :func:`_kept_modes` for the layout):
        ``(batch, in, *grid) -> (batch, in, 2, m_0, ..., 2, m_{k-2}, m_last)``; in 1-D
        ``(batch, in, x) -> (batch, in, modes)``."""
        grid = v.shape[-len(self.n_modes) :]
        least = self.least_grid
        if any(n < needed for n, needed in zip(grid, least, strict=True)):
            raise ValueError(
                f"{_shape_text(self.n_modes)} modes need at least {_shape_text(least)} points, "
                f"got {_shape_text(grid)}"
            )
        # (batch, in, n_0, ..., n_last // 2 + 1)
        spectrum = fft_any_batch(torch.fft.rfftn, v, dim=self.axes)
        return _kept_modes(spectrum, self.n_modes)  # (batch, in, 2, m_0, ..., m_last)

    def mix(self, coefficients: Tensor) -> Tensor:
        """``W_k`` on each kept mode: ``(batch, in, *kept) -> (batch, out, *kept)``."""
        batch, kept = coefficients.shape[0], coefficients.shape[2:]
        weight = torch.view_as_complex(self.weight)  # (in, out, 2 m_0, ..., m_last)
        # Both flatten their kept modes alike: the weight's axis of 2 m_j is the coefficients'
        # pair of axes (2, m_j) of _kept_modes.
        modes = math.prod(kept)
        per_mode = coefficients.reshape(batch, self.in_channels, modes).permute(2, 0, 1)
        weight = weight.reshape(self.in_channels, self.out_channels, modes).permute(2, 0, 1)
        mixed = batched_product(per_mode, weight)  # (modes, batch, out)
        return mixed.permute(1, 2, 0).reshape(batch, self.out_channels, *kept)

    def synthesize(self, mixed: Tensor, grid: tuple[int, ...]) -> Tensor:
        """The field whose spectrum is ``mixed`` on the kept modes and zero elsewhere:
        ``(batch, out, *kept) -> (batch, out, *grid)``."""
        if len(self.n_modes) == 1:
            spectrum = mixed  # (batch, out, m): irfftn zero-pads the rest of the axis
        else:
            # (batch, out, n_0, ..., n_{k-2}, m_last): the last axis is zero-padded by irfftn
            spectrum = mixed.new_zeros(*mixed.shape[:2], *grid[:-1], self.n_modes[-1])
            _kept_modes(spectrum, self.n_modes).copy_(mixed)
        return fft_any_batch(torch.fft.irfftn, spectrum, s=grid, dim=self.axes)  # (b, out, *grid)

    def forward(self, v: Tensor) -> Tensor:
        grid = tuple(v.shape[-len(self.n_modes) :])
        return self.synthesize(self.mix(self.coefficients(v)), grid)  # (batch, out, *grid)


class SpectralConv1d(SpectralConv):
    """:class:`SpectralConv` over x, keeping ``modes`` frequencies: ``weight`` is
    ``(in, out, modes, 2)``."""

    def __init__(self, in_channels: int, out_channels: int, modes: int) -> None:
        super().__init__(in_channels, out_channels, (modes,))
        self.modes = modes


class SpectralConv2d(SpectralConv):
    """:class:`SpectralConv` over the two axes of a space + time field ``(..., x, t)``:
    ``modes_x`` positive and negative x-frequencies times ``modes_t`` t-frequencies, ``weight``
    ``(in, out, 2 modes_x, modes_t, 2)``. Any other pair of axes is ``SpectralConv`` with two
    modes."""

    def __init__(self, in_channels: int, out_channels: int, modes_x: int, modes_t: int) -> None:
        super().__init__(in_channels, out_channels, (modes_x, modes_t))
        self.modes_x, self.modes_t = modes_x, modes_t


def pointwise(linear: nn.Linear, v: Tensor, bias: bool = True) -> Tensor:
    """``linear`` on the channel axis: ``(batch, in, *spatial) -> (batch, out, *spatial)``.

    One matrix product per sample on the field as it lies, ``(out, in) @ (in, points)``: an
    ``einsum`` over the batch and the points at once first copies the field into ``(in, batch
    points)`` and its result back, in the forward and again in the backward.
    """
    batch, out_channels = v.shape[0], linear.out_features
    points = math.prod(v.shape[2:])
    flat = v.reshape(batch, v.shape[1], points)  # (batch, in, points): a view of a contiguous field
    weight = linear.weight.expand(batch, *linear.weight.shape)  # (batch, out, in), no copy
    out = torch.bmm(weight, flat).view(batch, out_channels, *v.shape[2:])  # (batch, out, *spatial)
    if bias:
        out = out + linear.bias.view(-1, *(1 for _ in v.shape[2:]))  # (out, 1, ...)
    return out


class FourierLayer(nn.Module):
    """The linear part ``v -> K v + W v + b`` of a Fourier layer (activation is the caller's)."""

    def __init__(self, width: int, modes: tuple[int, ...]) -> None:
        super().__init__()
        # One axis: the 1-D class, whose int ``modes`` BOON's folded 1-D correction reads.
        if len(modes) == 1:
            self.spectral: SpectralConv = SpectralConv1d(width, width, *modes)
        else:
            self.spectral = SpectralConv(width, width, modes)
        self.pointwise = nn.Linear(width, width)

    def linear(self, v: Tensor, bias: bool = True) -> Tensor:
        """``K v + W v`` (+ ``b`` if ``bias``); without the bias the map is linear in ``v``."""
        return self.spectral(v) + pointwise(self.pointwise, v, bias)

    def forward(self, v: Tensor) -> Tensor:
        return self.linear(v)


class FourierNeuralOperator(nn.Module):
    """An FNO on ``len(modes)`` spatial axes (the named models below fix which ones).

    ``modes[i]`` is the number of kept frequencies along axis ``i`` (see :class:`SpectralConv`).
    ``domains[i]`` is the interval spanned by axis ``i``, endpoints included (its grid coordinate
    channel runs uniformly across it); default ``(0, 1)`` on every axis. ``padding`` zero-pads the
    last axis inside the network, for an axis that is not periodic (time); the output is cropped
    back.

    The constructor checks its arguments (counts are integers, at least 1; ``padding`` at least
    0; domains finite intervals) and :meth:`lift`, which every forward pass goes through, checks
    the input: a named ``ValueError`` or ``TypeError`` instead of an error deep in a layer.
    """

    #: The names of the named models' per-axis arguments, ``(modes, domain)`` for each axis in
    #: layout order, so that errors name the argument the caller passed; ``None`` here, where
    #: they are the entries of ``modes`` and ``domains``.
    axis_arguments: ClassVar[tuple[tuple[str, str], ...] | None] = None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        modes: tuple[int, ...],
        domains: tuple[Domain, ...] | None = None,
        num_layers: int = 4,
        padding: int = 0,
        projection_width: int = 128,
    ) -> None:
        super().__init__()
        if not isinstance(modes, Sequence) or not modes:
            raise TypeError(f"modes must be a non-empty tuple, one count per axis, got {modes!r}")
        domains = tuple(UNIT_INTERVAL for _ in modes) if domains is None else tuple(domains)
        if len(domains) != len(modes):
            raise ValueError(f"need one domain per spatial axis: {len(modes)}, got {len(domains)}")
        names = self.axis_arguments or tuple(
            (f"modes[{axis}]", f"domains[{axis}]") for axis in range(len(modes))
        )
        for (modes_name, domain_name), m, domain in zip(names, modes, domains, strict=True):
            _check_count(modes_name, m)
            _check_domain(domain_name, domain)
        for name, count in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("width", width),
            ("num_layers", num_layers),
            ("projection_width", projection_width),
        ):
            _check_count(name, count)
        _check_count("padding", padding, least=0)
        self.in_channels, self.out_channels, self.width = in_channels, out_channels, width
        self.domains, self.padding = domains, padding
        self.lifting = nn.Linear(in_channels + len(modes), width)
        self.layers = nn.ModuleList(FourierLayer(width, modes) for _ in range(num_layers))
        self.projection_hidden = nn.Linear(width, projection_width)
        self.projection_out = nn.Linear(projection_width, out_channels)

    @property
    def spatial_ndim(self) -> int:
        return len(self.domains)

    def spacing(self, axis: int, n: int) -> float:
        """Grid step along spatial ``axis`` (0 = x, ..., -1 = the last) for ``n`` points spanning
        its domain, endpoints included; a padded axis counts its ``n`` unpadded points."""
        if not -self.spatial_ndim <= axis < self.spatial_ndim:
            raise ValueError(f"axis {axis} is not one of the {self.spatial_ndim} spatial axes")
        if n < 2:
            raise ValueError(f"a grid step needs at least 2 points, got {n}")
        low, high = self.domains[axis]
        return (high - low) / (n - 1)

    def _check_input(self, x: Tensor) -> None:
        """Raise a named error unless ``x`` is an input this FNO can take: a tensor ``(batch,
        in_channels, *spatial)`` of its weights' dtype, on their device, finite, with enough
        points on each axis for the kept modes (after padding). An empty batch is valid.

        Shapes, dtype and device cost nothing; finiteness is one pass over ``x``, which has
        few channels (far less than one layer of ``width`` channels).
        """
        name = f"{type(self).__name__} input"
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 2 + self.spatial_ndim or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{name} must have shape (batch, {self.in_channels}, "
                f"{', '.join(['n'] * self.spatial_ndim)}), got {tuple(x.shape)}"
            )
        weight = self.lifting.weight
        if x.dtype != weight.dtype:
            wanted, given = (str(d).removeprefix("torch.") for d in (weight.dtype, x.dtype))
            # A floating input may be the right one and the model the wrong one.
            model = f", or the model with .to(torch.{given})" if x.is_floating_point() else ""
            raise TypeError(
                f"{name} must be {wanted} like the model's weights, got {given}; convert it "
                f"with .to(torch.{wanted}){model}"
            )
        if x.device != weight.device:
            raise ValueError(
                f"{name} is on {x.device} but the model's weights are on {weight.device}; "
                f"move it with .to({str(weight.device)!r})"
            )
        spectral = self.layers[0].spectral  # every layer keeps the same modes
        grid = (*x.shape[2:-1], x.shape[-1] + self.padding)
        if any(n < needed for n, needed in zip(grid, spectral.least_grid, strict=True)):
            padded = (
                f" ({x.shape[-1]} + padding {self.padding} on the last axis)"
                if self.padding
                else ""
            )
            raise ValueError(
                f"{name} has {_shape_text(grid)} points{padded}, but "
                f"{_shape_text(spectral.n_modes)} modes need at least "
                f"{_shape_text(spectral.least_grid)} points"
            )
        finite = torch.isfinite(x)  # (batch, in_channels, *spatial)
        if not bool(finite.all()):
            count = x.numel() - int(finite.sum())
            raise ValueError(
                f"{name} is not finite: {count} of its {x.numel()} entries are NaN or infinite"
            )

    def lift(self, x: Tensor) -> Tensor:
        """``(batch, in_channels, *spatial) -> (batch, width, *padded spatial)``, after
        :meth:`_check_input`."""
        v = pointwise(self.lifting, self.lifting_input(x))  # (batch, width, *spatial)
        if not self.padding:  # F.pad would copy even when it pads nothing
            return v
        return F.pad(v, (0, self.padding))  # (batch, width, ..., last + padding)

    def lifting_input(self, x: Tensor) -> Tensor:
        """What the lifting maps pointwise, after :meth:`_check_input`: ``x`` and the grid's
        coordinates, ``(batch, in_channels, *spatial) -> (batch, in_channels + ndim,
        *spatial)``."""
        self._check_input(x)
        axes = [
            torch.linspace(low, high, n, dtype=x.dtype, device=x.device)
            for (low, high), n in zip(self.domains, x.shape[2:], strict=True)
        ]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (ndim, *spatial)
        grid = grid.expand(x.shape[0], *grid.shape)  # (batch, ndim, *spatial)
        return torch.cat([x, grid], dim=1)

    def project(self, v: Tensor) -> Tensor:
        """``(batch, width, *padded spatial) -> (batch, out_channels, *spatial)``."""
        v = v.narrow(-1, 0, v.shape[-1] - self.padding)  # (batch, width, *spatial)
        return pointwise(self.projection_out, F.gelu(pointwise(self.projection_hidden, v)))

    def forward(self, x: Tensor) -> Tensor:
        v = self.lift(x)
        for index, layer in enumerate(self.layers):
            v = layer(v)
            if index < len(self.layers) - 1:
                v = F.gelu(v)
        return self.project(v)


class FNO1d(FourierNeuralOperator):
    """FNO on ``(batch, channels, x)``; x spans ``domain``."""

    axis_arguments = (("modes", "domain"),)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        modes: int,
        num_layers: int = 4,
        padding: int = 0,
        domain: Domain = UNIT_INTERVAL,
        projection_width: int = 128,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            width,
            (modes,),
            (domain,),
            num_layers,
            padding,
            projection_width,
        )


class FNOxt(FourierNeuralOperator):
    """FNO on ``(batch, channels, x, t)``, e.g. ``u0`` repeated over t -> ``u(x, t_1..t_T)``.

    ``padding`` zero-pads the non-periodic time axis, so x stays unpadded and a BOON correction can
    act along x at every time frame.
    """

    axis_arguments = (("modes_x", "x_domain"), ("modes_t", "t_domain"))

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        modes_x: int,
        modes_t: int,
        num_layers: int = 4,
        padding: int = 0,
        x_domain: Domain = UNIT_INTERVAL,
        t_domain: Domain = UNIT_INTERVAL,
        projection_width: int = 128,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            width,
            (modes_x, modes_t),
            (x_domain, t_domain),
            num_layers,
            padding,
            projection_width,
        )


#: The (x, t) model's first name, kept so existing code and configurations keep working.
FNO2d = FNOxt


class FNOxy(FourierNeuralOperator):
    """FNO on ``(batch, channels, x, y)``, single step: ``a(x, y) -> u(x, y)``.

    No padding: both axes are space, treated as periodic by the spectral layers (BOON corrects
    non-periodic walls).
    """

    axis_arguments = (("modes_x", "x_domain"), ("modes_y", "y_domain"))

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        modes_x: int,
        modes_y: int,
        num_layers: int = 4,
        x_domain: Domain = UNIT_INTERVAL,
        y_domain: Domain = UNIT_INTERVAL,
        projection_width: int = 128,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            width,
            (modes_x, modes_y),
            (x_domain, y_domain),
            num_layers,
            0,
            projection_width,
        )


class FNOxyt(FourierNeuralOperator):
    """FNO on ``(batch, channels, x, y, t)``, e.g. ``u0`` repeated over t ->
    ``u(x, y, t_1..t_T)``. ``padding`` zero-pads the non-periodic time axis only."""

    axis_arguments = (("modes_x", "x_domain"), ("modes_y", "y_domain"), ("modes_t", "t_domain"))

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        modes_x: int,
        modes_y: int,
        modes_t: int,
        num_layers: int = 4,
        padding: int = 0,
        x_domain: Domain = UNIT_INTERVAL,
        y_domain: Domain = UNIT_INTERVAL,
        t_domain: Domain = UNIT_INTERVAL,
        projection_width: int = 128,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            width,
            (modes_x, modes_y, modes_t),
            (x_domain, y_domain, t_domain),
            num_layers,
            padding,
            projection_width,
        )
