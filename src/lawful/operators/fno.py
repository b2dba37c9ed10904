"""Fourier neural operators (Li et al., ICLR 2021) on 1-D space and on space + time.

Layout everywhere: ``(batch, channels, *spatial)``, i.e. ``(batch, channels, x)`` in 1-D and
``(batch, channels, x, t)`` for space + time. An FNO lifts the input (with the grid coordinates
appended as channels) pointwise to ``width`` channels, applies ``num_layers`` Fourier layers
``v -> gelu(K v + W v)`` (no activation after the last) and projects pointwise to
``projection_width`` then ``out_channels``. ``K`` is a spectral convolution on the lowest
``modes`` frequencies, ``W`` a pointwise channel mix.

The pieces are exposed (:meth:`FourierNeuralOperator.lift`, :attr:`layers` with
:meth:`FourierLayer.linear`, :meth:`FourierNeuralOperator.project`) so that BOON can correct each
linear layer between them (lawful.operators.boon).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FNO1d",
    "FNO2d",
    "FourierLayer",
    "FourierNeuralOperator",
    "SpectralConv1d",
    "SpectralConv2d",
]

Domain = tuple[float, float]


def _complex_weight(in_channels: int, out_channels: int, *modes: int) -> nn.Parameter:
    """Complex weights stored as real ``(..., 2)`` pairs, so ``.double()`` and ``.to`` cast them."""
    scale = 1 / (in_channels * out_channels)  # the reference FNO initialisation
    return nn.Parameter(scale * torch.rand(in_channels, out_channels, *modes, 2))


class SpectralConv1d(nn.Module):
    """``v -> irfft(W_k * rfft(v)_k)`` on the lowest ``modes`` frequencies; higher ones are dropped.

    ``W_k`` mixes channels: ``(in_channels, out_channels)`` complex entries per frequency ``k``.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int) -> None:
        super().__init__()
        if modes < 1:
            raise ValueError(f"modes must be positive, got {modes}")
        self.in_channels, self.out_channels, self.modes = in_channels, out_channels, modes
        self.weight = _complex_weight(in_channels, out_channels, modes)  # (in, out, modes, 2)

    def coefficients(self, v: Tensor) -> Tensor:
        """The kept Fourier coefficients of ``v``: ``(batch, in, x) -> (batch, in, modes)``."""
        n = v.shape[-1]
        if self.modes > n // 2 + 1:
            raise ValueError(
                f"{self.modes} modes need at least {2 * self.modes - 2} points, got {n}"
            )
        return torch.fft.rfft(v)[..., : self.modes]  # (batch, in, modes)

    def mix(self, coefficients: Tensor) -> Tensor:
        """``W_k`` on each kept mode: ``(batch, in, modes) -> (batch, out, modes)``."""
        weight = torch.view_as_complex(self.weight)  # (in, out, modes)
        return torch.einsum("bik,iok->bok", coefficients, weight)  # (batch, out, modes)

    def forward(self, v: Tensor) -> Tensor:
        mixed = self.mix(self.coefficients(v))  # (batch, out, modes)
        return torch.fft.irfft(mixed, n=v.shape[-1])  # (batch, out, x); missing modes count as 0


class SpectralConv2d(nn.Module):
    """The 2-D spectral convolution on ``(x, t)``: lowest ``modes_x`` positive and negative
    x-frequencies times the lowest ``modes_t`` t-frequencies (``rfft2`` halves the t-axis)."""

    def __init__(self, in_channels: int, out_channels: int, modes_x: int, modes_t: int) -> None:
        super().__init__()
        if modes_x < 1 or modes_t < 1:
            raise ValueError(f"modes must be positive, got modes_x={modes_x}, modes_t={modes_t}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.modes_x, self.modes_t = modes_x, modes_t
        # Positive x-frequencies first, then negative: (in, out, 2 modes_x, modes_t, 2).
        self.weight = _complex_weight(in_channels, out_channels, 2 * modes_x, modes_t)

    def forward(self, v: Tensor) -> Tensor:
        nx, nt = v.shape[-2:]
        mx, mt = self.modes_x, self.modes_t
        if 2 * mx > nx or mt > nt // 2 + 1:
            raise ValueError(
                f"modes ({mx}, {mt}) need a grid of at least ({2 * mx}, {2 * mt - 2}) points, "
                f"got ({nx}, {nt})"
            )
        spectrum = torch.fft.rfft2(v)  # (batch, in, nx, nt // 2 + 1)
        kept = torch.cat([spectrum[..., :mx, :mt], spectrum[..., -mx:, :mt]], dim=-2)
        weight = torch.view_as_complex(self.weight)  # (in, out, 2 mx, mt)
        mixed = torch.einsum("bixt,ioxt->boxt", kept, weight)  # (batch, out, 2 mx, mt)
        out = mixed.new_zeros(v.shape[0], self.out_channels, nx, nt // 2 + 1)
        out[..., :mx, :mt] = mixed[..., :mx, :]
        out[..., -mx:, :mt] = mixed[..., mx:, :]
        return torch.fft.irfft2(out, s=(nx, nt))  # (batch, out, x, t)


def pointwise(linear: nn.Linear, v: Tensor, bias: bool = True) -> Tensor:
    """``linear`` on the channel axis: ``(batch, in, *spatial) -> (batch, out, *spatial)``."""
    out = torch.einsum("oi,bi...->bo...", linear.weight, v)  # (batch, out, *spatial)
    if bias:
        out = out + linear.bias.view(-1, *(1 for _ in v.shape[2:]))  # (out, 1, ...)
    return out


class FourierLayer(nn.Module):
    """The linear part ``v -> K v + W v + b`` of a Fourier layer (activation is the caller's)."""

    def __init__(self, width: int, modes: tuple[int, ...]) -> None:
        super().__init__()
        if len(modes) == 1:
            self.spectral: nn.Module = SpectralConv1d(width, width, *modes)
        elif len(modes) == 2:
            self.spectral = SpectralConv2d(width, width, *modes)
        else:
            raise ValueError(f"Fourier layers exist in 1 or 2 dimensions, got modes {modes}")
        self.pointwise = nn.Linear(width, width)

    def linear(self, v: Tensor, bias: bool = True) -> Tensor:
        """``K v + W v`` (+ ``b`` if ``bias``); without the bias the map is linear in ``v``."""
        return self.spectral(v) + pointwise(self.pointwise, v, bias)

    def forward(self, v: Tensor) -> Tensor:
        return self.linear(v)


class FourierNeuralOperator(nn.Module):
    """An FNO on ``len(modes)`` spatial axes; see :class:`FNO1d` and :class:`FNO2d`.

    ``domains[i]`` is the interval spanned by spatial axis ``i`` (its grid coordinate channel runs
    uniformly across it). ``padding`` zero-pads the last spatial axis inside the network, for an
    axis that is not periodic; the output is cropped back.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        modes: tuple[int, ...],
        domains: tuple[Domain, ...],
        num_layers: int = 4,
        padding: int = 0,
        projection_width: int = 128,
    ) -> None:
        super().__init__()
        if len(domains) != len(modes):
            raise ValueError(f"need one domain per spatial axis: {len(modes)}, got {len(domains)}")
        if num_layers < 1 or padding < 0:
            raise ValueError(
                f"need num_layers >= 1 and padding >= 0, got {num_layers} and {padding}"
            )
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
        """Grid step along spatial ``axis`` (0 = x) for ``n`` points spanning its domain."""
        low, high = self.domains[axis]
        return (high - low) / (n - 1)

    def lift(self, x: Tensor) -> Tensor:
        """``(batch, in_channels, *spatial) -> (batch, width, *padded spatial)``."""
        if x.ndim != 2 + self.spatial_ndim or x.shape[1] != self.in_channels:
            raise ValueError(
                f"input must have shape (batch, {self.in_channels}, "
                f"{', '.join(['n'] * self.spatial_ndim)}), got {tuple(x.shape)}"
            )
        axes = [
            torch.linspace(low, high, n, dtype=x.dtype, device=x.device)
            for (low, high), n in zip(self.domains, x.shape[2:], strict=True)
        ]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (ndim, *spatial)
        grid = grid.expand(x.shape[0], *grid.shape)  # (batch, ndim, *spatial)
        v = pointwise(self.lifting, torch.cat([x, grid], dim=1))  # (batch, width, *spatial)
        return F.pad(v, (0, self.padding))  # (batch, width, ..., last + padding)

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

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        modes: int,
        num_layers: int = 4,
        padding: int = 0,
        domain: Domain = (0.0, 1.0),
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


class FNO2d(FourierNeuralOperator):
    """FNO on ``(batch, channels, x, t)``, e.g. ``u0`` repeated over t -> ``u(x, t_1..t_T)``.

    ``padding`` zero-pads the non-periodic time axis, so x stays unpadded and a BOON correction can
    act along x at every time frame.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        modes_x: int,
        modes_t: int,
        num_layers: int = 4,
        padding: int = 0,
        x_domain: Domain = (0.0, 1.0),
        t_domain: Domain = (0.0, 1.0),
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
