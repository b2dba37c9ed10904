import math

import pytest
import torch

from lawful.operators import FNO1d, FNO2d, SpectralConv1d, SpectralConv2d


def _identity_on_modes(conv: torch.nn.Module) -> None:
    """Set a spectral convolution's weights to the identity on every kept mode."""
    with torch.no_grad():
        conv.weight.zero_()
        channels = conv.weight.shape[0]
        conv.weight[range(channels), range(channels), ..., 0] = 1.0


def test_spectral_conv1d_passes_band_limited_input_and_drops_higher_modes():
    conv = SpectralConv1d(2, 2, modes=5).double()
    _identity_on_modes(conv)
    x = torch.linspace(0, 1, 64 + 1, dtype=torch.float64)[:-1]  # periodic grid
    band_limited = torch.stack([torch.cos(2 * math.pi * 3 * x), 1 + torch.sin(2 * math.pi * 4 * x)])
    high = torch.sin(2 * math.pi * 9 * x)
    out = conv((band_limited + high)[None])  # (1, 2, 64)
    torch.testing.assert_close(out[0], band_limited, rtol=0, atol=1e-12)


def test_spectral_conv1d_multiplies_each_mode_by_its_weight():
    # Weight i*k on mode k turns the Fourier series into its derivative (x in [0, 2 pi)).
    conv = SpectralConv1d(1, 1, modes=6).double()
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, :, 1] = torch.arange(6, dtype=torch.float64)
    x = torch.linspace(0, 2 * math.pi, 48 + 1, dtype=torch.float64)[:-1]
    out = conv(torch.sin(3 * x)[None, None])
    torch.testing.assert_close(out[0, 0], 3 * torch.cos(3 * x), rtol=0, atol=1e-12)


def test_spectral_conv2d_passes_band_limited_input():
    conv = SpectralConv2d(1, 1, modes_x=4, modes_t=3).double()
    _identity_on_modes(conv)
    x = torch.linspace(0, 1, 16 + 1, dtype=torch.float64)[:-1, None]
    t = torch.linspace(0, 1, 12 + 1, dtype=torch.float64)[None, :-1]
    band_limited = torch.cos(2 * math.pi * (3 * x - 2 * t)) + torch.sin(2 * math.pi * x)
    high = torch.cos(2 * math.pi * 6 * x)  # beyond modes_x
    out = conv((band_limited + high)[None, None])
    torch.testing.assert_close(out[0, 0], band_limited, rtol=0, atol=1e-12)


def test_too_many_modes_for_the_grid_is_an_error():
    with pytest.raises(ValueError, match="modes need at least"):
        SpectralConv1d(1, 1, modes=10)(torch.randn(1, 1, 12))


def test_fno1d_learns_the_antiderivative():
    # Operator: u -> integral_0^x u, on random band-limited inputs u = sum_k a_k cos(2 pi k x).
    n, batch = 32, 32
    x = torch.linspace(0, 1, n)
    k = torch.arange(1, 4)[:, None]  # (modes, 1)
    amplitudes = torch.randn(batch, 3, 1)  # (batch, modes, 1)
    u = (amplitudes * torch.cos(2 * torch.pi * k * x)).sum(1)  # (batch, x)
    antiderivative = (amplitudes * torch.sin(2 * torch.pi * k * x) / (2 * torch.pi * k)).sum(1)
    model = FNO1d(1, 1, width=16, modes=8, num_layers=2, projection_width=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(300):
        optimizer.zero_grad()
        loss = (model(u[:, None]) - antiderivative[:, None]).square().mean()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        relative = (model(u[:, None]) - antiderivative[:, None]).norm() / antiderivative.norm()
    assert float(relative) < 0.1


@pytest.mark.parametrize("padding", [0, 3])
def test_fno2d_batched_equals_looped_and_padding_is_cropped(padding):
    model = FNO2d(2, 1, width=6, modes_x=3, modes_t=2, num_layers=2, padding=padding).double()
    x = torch.randn(3, 2, 10, 5, dtype=torch.float64)  # (batch, channels, x, t)
    batched = model(x)
    assert batched.shape == (3, 1, 10, 5)
    looped = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, looped, rtol=0, atol=1e-12)


def test_fno_rejects_input_of_the_wrong_layout():
    with pytest.raises(ValueError, match=r"input must have shape \(batch, 2, n\)"):
        FNO1d(2, 1, width=4, modes=2)(torch.randn(3, 1, 16))
