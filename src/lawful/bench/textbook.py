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


class TextbookFNO1d(nn.Module):
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
        super().__init__()
        self.modes1, self.width = modes, width
        self.fc0 = nn.Linear(in_channels + 1, width)  # input channels and x
        self.conv0 = TextbookSpectralConv1d(width, width, modes)
        self.conv1 = TextbookSpectralConv1d(width, width, modes)
        self.conv2 = TextbookSpectralConv1d(width, width, modes)
        self.conv3 = TextbookSpectralConv1d(width, width, modes)
        self.w0 = nn.Conv1d(width, width, 1)
        self.w1 = nn.Conv1d(width, width, 1)
        self.w2 = nn.Conv1d(width, width, 1)
        self.w3 = nn.Conv1d(width, width, 1)
        self.fc1 = nn.Linear(width, projection_width)
        self.fc2 = nn.Linear(projection_width, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        grid = self.get_grid(x.shape, x.device, x.dtype)
        x = torch.cat((x, grid), dim=-1)
        x = self.fc0(x)
        x = x.permute(0, 2, 1)

        x1 = self.conv0(x)
        x2 = self.w0(x)
        x = x1 + x2
        x = F.gelu(x)

        x1 = self.conv1(x)
        x2 = self.w1(x)
        x = x1 + x2
        x = F.gelu(x)

        x1 = self.conv2(x)
        x2 = self.w2(x)
        x = x1 + x2
        x = F.gelu(x)

        x1 = self.conv3(x)
        x2 = self.w3(x)
        x = x1 + x2

        x = x.permute(0, 2, 1)
        x = self.fc1(x)
        x = F.gelu(x)
        x = self.fc2(x)
        return x

    def get_grid(self, shape: torch.Size, device: torch.device, dtype: torch.dtype) -> Tensor:
        batchsize, size_x = shape[0], shape[1]
        gridx = torch.linspace(0, 1, size_x, dtype=dtype)
        gridx = gridx.reshape(1, size_x, 1).repeat([batchsize, 1, 1])
        return gridx.to(device)


class TextbookFNO2d(nn.Module):
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
        super().__init__()
        self.modes1, self.modes2, self.width, self.padding = modes1, modes2, width, padding
        self.fc0 = nn.Linear(in_channels + 2, width)  # input channels, x and y
        self.conv0 = TextbookSpectralConv2d(width, width, modes1, modes2)
        self.conv1 = TextbookSpectralConv2d(width, width, modes1, modes2)
        self.conv2 = TextbookSpectralConv2d(width, width, modes1, modes2)
        self.conv3 = TextbookSpectralConv2d(width, width, modes1, modes2)
        self.w0 = nn.Conv2d(width, width, 1)
        self.w1 = nn.Conv2d(width, width, 1)
        self.w2 = nn.Conv2d(width, width, 1)
        self.w3 = nn.Conv2d(width, width, 1)
        self.fc1 = nn.Linear(width, projection_width)
        self.fc2 = nn.Linear(projection_width, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        grid = self.get_grid(x.shape, x.device, x.dtype)
        x = torch.cat((x, grid), dim=-1)
        x = self.fc0(x)
        x = x.permute(0, 3, 1, 2)
        if self.padding:
            x = F.pad(x, [0, self.padding, 0, self.padding])

        x1 = self.conv0(x)
        x2 = self.w0(x)
        x = x1 + x2
        x = F.gelu(x)

        x1 = self.conv1(x)
        x2 = self.w1(x)
        x = x1 + x2
        x = F.gelu(x)

        x1 = self.conv2(x)
        x2 = self.w2(x)
        x = x1 + x2
        x = F.gelu(x)

        x1 = self.conv3(x)
        x2 = self.w3(x)
        x = x1 + x2

        if self.padding:
            x = x[..., : -self.padding, : -self.padding]
        x = x.permute(0, 2, 3, 1)
        x = self.fc1(x)
        x = F.gelu(x)
        x = self.fc2(x)
        return x

    def get_grid(self, shape: torch.Size, device: torch.device, dtype: torch.dtype) -> Tensor:
        batchsize, size_x, size_y = shape[0], shape[1], shape[2]
        gridx = torch.linspace(0, 1, size_x, dtype=dtype)
        gridx = gridx.reshape(1, size_x, 1, 1).repeat([batchsize, 1, size_y, 1])
        gridy = torch.linspace(0, 1, size_y, dtype=dtype)
        gridy = gridy.reshape(1, 1, size_y, 1).repeat([batchsize, size_x, 1, 1])
        return torch.cat((gridx, gridy), dim=-1).to(device)


class TextbookFNO3d(nn.Module):
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
        super().__init__()
        self.modes1, self.modes2, self.modes3 = modes1, modes2, modes3
        self.width, self.padding = width, padding
        self.fc0 = nn.Linear(in_channels + 3, width)  # input channels, x, y and t
        self.conv0 = TextbookSpectralConv3d(width, width, modes1, modes2, modes3)
        self.conv1 = TextbookSpectralConv3d(width, width, modes1, modes2, modes3)
        self.conv2 = TextbookSpectralConv3d(width, width, modes1, modes2, modes3)
        self.conv3 = TextbookSpectralConv3d(width, width, modes1, modes2, modes3)
        self.w0 = nn.Conv3d(width, width, 1)
        self.w1 = nn.Conv3d(width, width, 1)
        self.w2 = nn.Conv3d(width, width, 1)
        self.w3 = nn.Conv3d(width, width, 1)
        self.fc1 = nn.Linear(width, projection_width)
        self.fc2 = nn.Linear(projection_width, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        grid = self.get_grid(x.shape, x.device, x.dtype)
        x = torch.cat((x, grid), dim=-1)
        x = self.fc0(x)
        x = x.permute(0, 4, 1, 2, 3)
        if self.padding:
            x = F.pad(x, [0, self.padding])  # pad the domain: time is not periodic

        x1 = self.conv0(x)
        x2 = self.w0(x)
        x = x1 + x2
        x = F.gelu(x)

        x1 = self.conv1(x)
        x2 = self.w1(x)
        x = x1 + x2
        x = F.gelu(x)

        x1 = self.conv2(x)
        x2 = self.w2(x)
        x = x1 + x2
        x = F.gelu(x)

        x1 = self.conv3(x)
        x2 = self.w3(x)
        x = x1 + x2

        if self.padding:
            x = x[..., : -self.padding]
        x = x.permute(0, 2, 3, 4, 1)
        x = self.fc1(x)
        x = F.gelu(x)
        x = self.fc2(x)
        return x

    def get_grid(self, shape: torch.Size, device: torch.device, dtype: torch.dtype) -> Tensor:
        batchsize, size_x, size_y, size_z = shape[0], shape[1], shape[2], shape[3]
        gridx = torch.linspace(0, 1, size_x, dtype=dtype)
        gridx = gridx.reshape(1, size_x, 1, 1, 1).repeat([batchsize, 1, size_y, size_z, 1])
        gridy = torch.linspace(0, 1, size_y, dtype=dtype)
        gridy = gridy.reshape(1, 1, size_y, 1, 1).repeat([batchsize, size_x, 1, size_z, 1])
        gridz = torch.linspace(0, 1, size_z, dtype=dtype)
        gridz = gridz.reshape(1, 1, 1, size_z, 1).repeat([batchsize, size_x, size_y, 1, 1])
        return torch.cat((gridx, gridy, gridz), dim=-1).to(device)
