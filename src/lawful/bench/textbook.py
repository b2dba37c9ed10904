"""BASELINE for ``lawful bench``, not library code: textbook FNOs, written the original way.

These are the speed baselines of the rows "FNO vs textbook FNO training step". Nothing in
lawful uses them for anything else; train lawful's own :mod:`lawful.operators.fno` models.

They are written the way the reference FNO code of Li et al. (ICLR 2021) writes its models
(our own code, not a copy): channels-last input ``(batch, *axes, channels)``, the grid
coordinates appended as input channels, a pointwise ``fc0`` lifting, four Fourier layers
``gelu(conv_i(v) + w_i(v))`` (no activation after the last) whose spectral convolution
``torch.fft.rfft``/``rfftn``-transforms, multiplies the kept corner modes by one complex weight
tensor per corner (one in 1-D, two in 2-D, four in 3-D) with an ``einsum`` into a zero
``out_ft`` spectrum and transforms back with ``irfft``/``irfftn``, and whose pointwise part
``w_i`` is an ``nn.Conv{1,2,3}d(width, width, 1)``; then ``fc1 -> gelu -> fc2``.

They do the same computation as lawful's :class:`~lawful.operators.fno.FNO1d`,
:class:`~lawful.operators.fno.FNOxy` and :class:`~lawful.operators.fno.FNOxyt` with the same
width, modes (``modes`` of lawful's = ``modes`` here: frequencies ``0..m-1`` on the last axis,
``-m..m-1`` on the others), four layers and projection width, with the grid appended, and have
the same number of real parameters (a complex weight counts twice, see
:func:`real_parameter_count`). The layouts differ: lawful keeps channels first and stores each
layer's spectral weight as one real tensor ``(in, out, 2 m, ..., m, 2)`` holding all corners,
pointwise maps as ``nn.Linear``; here channels are last between the layers' permutes, the
corners are separate ``torch.cfloat`` parameters and the pointwise maps ``nn.Conv``. The
initialisations follow each original (``scale * rand`` spectral weights, PyTorch's default
linear and convolution initialisation), so the weights themselves differ.

``padding`` (zero-padding inside the network, cropped at the end) is the original's option for
non-periodic axes: both space axes in 2-D (9 points in the original Darcy script), time in 3-D
(6 in the original Navier-Stokes script). It defaults to 0 here, like lawful's FNOs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "TextbookFNO1d",
    "TextbookFNO2d",
    "TextbookFNO3d",
    "TextbookSpectralConv1d",
    "TextbookSpectralConv2d",
    "TextbookSpectralConv3d",
    "real_parameter_count",
]


def real_parameter_count(model: nn.Module) -> int:
    """The number of real parameters of ``model``: a complex entry counts as two."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())


class TextbookSpectralConv1d(nn.Module):
    """``x -> irfft(W * rfft(x)[:modes1])``: ``(batch, in, x) -> (batch, out, x)``."""

    def __init__(self, in_channels: int, out_channels: int, modes1: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.modes1 = in_channels, out_channels, modes1
        self.scale = 1 / (in_channels * out_channels)
        self.weights1 = nn.Parameter(
            self.scale * torch.rand(in_channels, out_channels, modes1, dtype=torch.cfloat)
        )

    def compl_mul1d(self, input: Tensor, weights: Tensor) -> Tensor:
        # (batch, in, x), (in, out, x) -> (batch, out, x)
        return torch.einsum("bix,iox->box", input, weights)

    def forward(self, x: Tensor) -> Tensor:
        batchsize = x.shape[0]
        x_ft = torch.fft.rfft(x)
        out_ft = torch.zeros(
            batchsize, self.out_channels, x.size(-1) // 2 + 1, device=x.device, dtype=torch.cfloat
        )
        out_ft[:, :, : self.modes1] = self.compl_mul1d(x_ft[:, :, : self.modes1], self.weights1)
        return torch.fft.irfft(out_ft, n=x.size(-1))


class TextbookSpectralConv2d(nn.Module):
    """The 2-D spectral convolution: two weights, for the corners of non-negative and of negative
    first-axis frequencies. ``(batch, in, x, y) -> (batch, out, x, y)``."""

    def __init__(self, in_channels: int, out_channels: int, modes1: int, modes2: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.modes1, self.modes2 = modes1, modes2
        self.scale = 1 / (in_channels * out_channels)
        shape = (in_channels, out_channels, modes1, modes2)
        self.weights1 = nn.Parameter(self.scale * torch.rand(*shape, dtype=torch.cfloat))
        self.weights2 = nn.Parameter(self.scale * torch.rand(*shape, dtype=torch.cfloat))

    def compl_mul2d(self, input: Tensor, weights: Tensor) -> Tensor:
        # (batch, in, x, y), (in, out, x, y) -> (batch, out, x, y)
        return torch.einsum("bixy,ioxy->boxy", input, weights)

    def forward(self, x: Tensor) -> Tensor:
        batchsize = x.shape[0]
        m1, m2 = self.modes1, self.modes2
        x_ft = torch.fft.rfft2(x)
        out_ft = torch.zeros(
            batchsize,
            self.out_channels,
            x.size(-2),
            x.size(-1) // 2 + 1,
            dtype=torch.cfloat,
            device=x.device,
        )
        out_ft[:, :, :m1, :m2] = self.compl_mul2d(x_ft[:, :, :m1, :m2], self.weights1)
        out_ft[:, :, -m1:, :m2] = self.compl_mul2d(x_ft[:, :, -m1:, :m2], self.weights2)
        return torch.fft.irfft2(out_ft, s=(x.size(-2), x.size(-1)))


class TextbookSpectralConv3d(nn.Module):
    """The 3-D spectral convolution: four weights, one per corner of the (x, y) frequencies.
    ``(batch, in, x, y, t) -> (batch, out, x, y, t)``."""

    def __init__(
        self, in_channels: int, out_channels: int, modes1: int, modes2: int, modes3: int
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.modes1, self.modes2, self.modes3 = modes1, modes2, modes3
        self.scale = 1 / (in_channels * out_channels)
        shape = (in_channels, out_channels, modes1, modes2, modes3)
        self.weights1 = nn.Parameter(self.scale * torch.rand(*shape, dtype=torch.cfloat))
        self.weights2 = nn.Parameter(self.scale * torch.rand(*shape, dtype=torch.cfloat))
        self.weights3 = nn.Parameter(self.scale * torch.rand(*shape, dtype=torch.cfloat))
        self.weights4 = nn.Parameter(self.scale * torch.rand(*shape, dtype=torch.cfloat))

    def compl_mul3d(self, input: Tensor, weights: Tensor) -> Tensor:
        # (batch, in, x, y, t), (in, out, x, y, t) -> (batch, out, x, y, t)
        return torch.einsum("bixyz,ioxyz->boxyz", input, weights)

    def forward(self, x: Tensor) -> Tensor:
        batchsize = x.shape[0]
        m1, m2, m3 = self.modes1, self.modes2, self.modes3
        x_ft = torch.fft.rfftn(x, dim=[-3, -2, -1])
        out_ft = torch.zeros(
            batchsize,
            self.out_channels,
            x.size(-3),
            x.size(-2),
            x.size(-1) // 2 + 1,
            dtype=torch.cfloat,
            device=x.device,
        )
        out_ft[:, :, :m1, :m2, :m3] = self.compl_mul3d(x_ft[:, :, :m1, :m2, :m3], self.weights1)
        out_ft[:, :, -m1:, :m2, :m3] = self.compl_mul3d(x_ft[:, :, -m1:, :m2, :m3], self.weights2)
        out_ft[:, :, :m1, -m2:, :m3] = self.compl_mul3d(x_ft[:, :, :m1, -m2:, :m3], self.weights3)
        out_ft[:, :, -m1:, -m2:, :m3] = self.compl_mul3d(x_ft[:, :, -m1:, -m2:, :m3], self.weights4)
        return torch.fft.irfftn(out_ft, s=(x.size(-3), x.size(-2), x.size(-1)))


class _TextbookFNO(nn.Module):
    """What the three textbook FNOs share: ``fc0`` on the input with the grid appended, four
    layers ``conv_i(v) + w_i(v)`` (GELU after all but the last) on channels-first ``v`` padded
    on ``padded_axes``, then ``fc1 -> gelu -> fc2``, channels last again."""

    def __init__(
        self,
        spectral: list[nn.Module],
        pointwise: type[nn.Module],
        num_axes: int,
        width: int,
        in_channels: int,
        out_channels: int,
        projection_width: int,
        padding: int,
        padded_axes: int,
    ) -> None:
        super().__init__()
        self.width, self.padding, self.padded_axes = width, padding, padded_axes
        self.fc0 = nn.Linear(in_channels + num_axes, width)  # input channels and the grid
        self.convs = nn.ModuleList(spectral)
        self.ws = nn.ModuleList(pointwise(width, width, 1) for _ in spectral)
        self.fc1 = nn.Linear(width, projection_width)
        self.fc2 = nn.Linear(projection_width, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc0(torch.cat((x, self.get_grid(x.shape, x.device, x.dtype)), dim=-1))
        x = x.movedim(-1, 1)  # (batch, width, *axes)
        if self.padding:
            x = F.pad(x, [0, self.padding] * self.padded_axes)  # the non-periodic axes
        for index, (conv, w) in enumerate(zip(self.convs, self.ws, strict=True)):
            x = conv(x) + w(x)
            if index < len(self.convs) - 1:
                x = F.gelu(x)
        if self.padding:
            for axis in range(x.ndim - self.padded_axes, x.ndim):
                x = x.narrow(axis, 0, x.shape[axis] - self.padding)
        x = x.movedim(1, -1)  # (batch, *axes, width)
        return self.fc2(F.gelu(self.fc1(x)))

    def get_grid(self, shape: torch.Size, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The coordinates of every point, each axis on ``[0, 1]``: ``(batch, *axes, axes)``."""
        batch, *sizes, _ = shape
        axes = [torch.linspace(0, 1, size, dtype=dtype) for size in sizes]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (*axes, axes)
        return grid.expand(batch, *grid.shape).to(device)


class TextbookFNO1d(_TextbookFNO):
    """The textbook 1-D FNO (BASELINE): ``(batch, x, in_channels) -> (batch, x, out_channels)``,
    channels last; ``x`` spans ``[0, 1]``, endpoints included (the appended grid channel)."""

    def __init__(
        self,
        modes: int,
        width: int,
        in_channels: int = 1,
        out_channels: int = 1,
        projection_width: int = 128,
    ) -> None:
        spectral = [TextbookSpectralConv1d(width, width, modes) for _ in range(4)]
        super().__init__(
            spectral, nn.Conv1d, 1, width, in_channels, out_channels, projection_width, 0, 0
        )
        self.modes1 = modes


class TextbookFNO2d(_TextbookFNO):
    """The textbook 2-D FNO (BASELINE): ``(batch, x, y, in_channels) -> (batch, x, y,
    out_channels)``, channels last; x and y span ``[0, 1]``. ``padding`` zero-pads both axes."""

    def __init__(
        self,
        modes1: int,
        modes2: int,
        width: int,
        in_channels: int = 1,
        out_channels: int = 1,
        projection_width: int = 128,
        padding: int = 0,
    ) -> None:
        spectral = [TextbookSpectralConv2d(width, width, modes1, modes2) for _ in range(4)]
        super().__init__(
            spectral, nn.Conv2d, 2, width, in_channels, out_channels, projection_width, padding, 2
        )
        self.modes1, self.modes2 = modes1, modes2


class TextbookFNO3d(_TextbookFNO):
    """The textbook 3-D FNO (BASELINE) over (x, y, t): ``(batch, x, y, t, in_channels) ->
    (batch, x, y, t, out_channels)``, channels last; every axis spans ``[0, 1]``. ``padding``
    zero-pads the last axis (time) only."""

    def __init__(
        self,
        modes1: int,
        modes2: int,
        modes3: int,
        width: int,
        in_channels: int = 1,
        out_channels: int = 1,
        projection_width: int = 128,
        padding: int = 0,
    ) -> None:
        spectral = [TextbookSpectralConv3d(width, width, modes1, modes2, modes3) for _ in range(4)]
        super().__init__(
            spectral, nn.Conv3d, 3, width, in_channels, out_channels, projection_width, padding, 1
        )
        self.modes1, self.modes2, self.modes3 = modes1, modes2, modes3
