import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from lawful.operators import (
    FNO1d,
    FNO2d,
    FNOxt,
    FNOxy,
    FNOxyt,
    FourierNeuralOperator,
    SpectralConv,
    SpectralConv1d,
    SpectralConv2d,
)


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


# --- Any number of axes: SpectralConv, FNOxy (x, y), FNOxyt (x, y, t) ------------------------


def _periodic_grid(*sizes):
    """Coordinates ``j / n`` of a periodic grid on [0, 1) per axis, each ``(*sizes)``."""
    axes = [torch.arange(n, dtype=torch.float64) / n for n in sizes]
    return torch.meshgrid(*axes, indexing="ij")


def _weight_at(conv, frequency):
    """``W_k`` for ``frequency`` k, ``(in, out)`` complex: on each axis but the last the weight
    holds the frequencies 0..m-1 and then -m..-1."""
    index = [f % (2 * m) for f, m in zip(frequency[:-1], conv.n_modes[:-1], strict=True)]
    return torch.view_as_complex(conv.weight)[(..., *index, frequency[-1])]


@pytest.mark.parametrize(
    ("make_conv", "sizes", "frequency"),
    [
        (lambda: SpectralConv(1, 2, (4, 3)), (16, 12), (-3, 2)),
        (lambda: SpectralConv(1, 2, (4, 3)), (16, 12), (2, 0)),  # last-axis frequency 0
        (lambda: SpectralConv2d(1, 2, modes_x=4, modes_t=3), (16, 12), (-4, 1)),
        (lambda: SpectralConv(1, 2, (3, 4, 2)), (16, 12, 5), (-2, 3, 1)),
        (lambda: SpectralConv(1, 2, (3, 4, 2)), (16, 12, 5), (1, -3, 0)),
    ],
)
def test_spectral_conv_multiplies_a_single_mode_by_its_weight(make_conv, sizes, frequency):
    # cos(theta) = (e^{i theta} + e^{-i theta}) / 2 with theta = 2 pi k . x. For k_last > 0 only
    # e^{i theta} is in the half-spectrum, and Hermitian symmetry gives Re(W_k e^{i theta}); for
    # k_last = 0 both k and -k are kept and each contributes half.
    conv = make_conv().double()  # random weights
    theta = 2 * math.pi * sum(k * c for k, c in zip(frequency, _periodic_grid(*sizes), strict=True))
    if frequency[-1] > 0:
        waves = [(frequency, theta, 1.0)]  # (k, phase, share)
    else:
        waves = [(frequency, theta, 0.5), (tuple(-k for k in frequency), -theta, 0.5)]
    expected = sum(
        share * (_weight_at(conv, k)[0].view(2, *(1 for _ in sizes)) * torch.exp(1j * phase)).real
        for k, phase, share in waves
    )  # (out, *sizes)
    out = conv(torch.cos(theta)[None, None])  # (1, 2, *sizes)
    torch.testing.assert_close(out[0], expected, rtol=0, atol=1e-12)


def test_spectral_conv_keeping_low_modes_drops_high_frequency_input():
    conv = SpectralConv(1, 2, (2, 2, 2)).double()  # x keeps -2..1, y -2..1, t 0..1
    x, y, t = _periodic_grid(16, 12, 5)
    low = torch.cos(2 * math.pi * (x - 2 * y + t))[None, None]
    # Frequencies 5 along x, 4 along y, 2 along t: each beyond the modes its axis keeps.
    high = torch.cos(10 * math.pi * x) + torch.cos(8 * math.pi * y) + torch.cos(4 * math.pi * t)
    high = high[None, None]  # (1, 1, x, y, t)
    torch.testing.assert_close(conv(high), torch.zeros_like(conv(high)), rtol=0, atol=1e-12)
    torch.testing.assert_close(conv(low + high), conv(low), rtol=0, atol=1e-12)
    assert float(conv(low).detach().abs().max()) > 1e-3


def _fnoxy():
    return FNOxy(2, 3, width=5, modes_x=3, modes_y=2, num_layers=2, projection_width=8)


def _fnoxyt(padding=0):
    modes = {"modes_x": 3, "modes_y": 2, "modes_t": 2}
    return FNOxyt(2, 3, width=5, **modes, num_layers=2, padding=padding, projection_width=8)


# (model, input shape): the (x, y) and (x, y, t) models on 16 x 12 (x 5) grids, batch 2, and the
# (x, t) model they generalise.
MODELS = {
    "xy": (_fnoxy, (2, 2, 16, 12)),
    "xyt": (_fnoxyt, (2, 2, 16, 12, 5)),
    "xyt-padded": (lambda: _fnoxyt(padding=3), (2, 2, 16, 12, 5)),
    "xt-padded": (lambda: FNOxt(2, 3, 5, 3, 2, num_layers=2, padding=2), (2, 2, 10, 4)),
}


def _textbook_fno(model, x):
    """The FNO as the reference code writes it, from the model's weights: grid channels, zero
    padding of the last axis, a full half-spectrum filled corner by corner (positive or negative
    frequencies on each axis but the last), crop."""
    k = model.spatial_ndim
    axes = tuple(range(-k, 0))
    coordinates = [
        torch.linspace(*domain, n, dtype=torch.float64)
        for domain, n in zip(model.domains, x.shape[2:], strict=True)
    ]
    grid = torch.stack(torch.meshgrid(*coordinates, indexing="ij"))  # (k, *spatial)
    grid = grid.expand(x.shape[0], *grid.shape)  # (batch, k, *spatial)
    v = model.lifting(torch.cat([x, grid], 1).movedim(1, -1)).movedim(-1, 1)  # (batch, width, ..)
    v = F.pad(v, (0, model.padding))  # (batch, width, *spatial, last + padding)
    for index, layer in enumerate(model.layers):
        modes = layer.spectral.n_modes
        weight = torch.view_as_complex(layer.spectral.weight)  # (in, out, 2 m_0, ..., m_last)
        spectrum = torch.fft.rfftn(v, dim=axes)  # (batch, width, n_0, ..., n_last // 2 + 1)
        mixed = torch.zeros_like(spectrum)
        for negative in itertools.product([False, True], repeat=k - 1):
            # (slice of the spectrum, slice of the weight) on each axis but the last
            corner = [
                (slice(-m, None), slice(m, 2 * m)) if n else (slice(m), slice(m))
                for n, m in zip(negative, modes[:-1], strict=True)
            ]
            field = (..., *(where for where, _ in corner), slice(modes[-1]))
            kept = (..., *(where for _, where in corner), slice(None))
            mixed[field] = torch.einsum("bi...,io...->bo...", spectrum[field], weight[kept])
        linear = layer.pointwise(v.movedim(1, -1)).movedim(-1, 1)
        v = torch.fft.irfftn(mixed, s=v.shape[2:], dim=axes) + linear
        v = F.gelu(v) if index < len(model.layers) - 1 else v
    v = v[..., : x.shape[-1]]  # crop the padding
    hidden = F.gelu(model.projection_hidden(v.movedim(1, -1)))
    return model.projection_out(hidden).movedim(-1, 1)


@pytest.mark.parametrize("name", list(MODELS))
def test_model_equals_the_textbook_fno_with_its_weights(name):
    make, shape = MODELS[name]
    model = make().double()
    x = torch.randn(*shape, dtype=torch.float64)
    out = model(x)
    assert out.shape == (shape[0], model.out_channels, *shape[2:])  # padding cropped back
    torch.testing.assert_close(out, _textbook_fno(model, x), rtol=0, atol=1e-12)


def test_padding_reaches_the_hidden_time_axis_only():
    model = _fnoxyt(padding=3).double()
    x = torch.randn(2, 2, 16, 12, 5, dtype=torch.float64)
    hidden = model.lift(x)
    assert hidden.shape == (2, 5, 16, 12, 8)
    assert bool((hidden[..., 5:] == 0).all())  # zero frames, not the lift of a zero input


@pytest.mark.parametrize("name", ["xy", "xyt"])
def test_unpadded_model_is_translation_equivariant_on_a_periodic_grid(name):
    # The grid coordinate channels are the one thing that is not shift-invariant: without them,
    # shifting the input by grid steps shifts the output the same way.
    make, shape = MODELS[name]
    model = make().double()
    with torch.no_grad():
        model.lifting.weight[:, model.in_channels :] = 0
    x = torch.randn(*shape, dtype=torch.float64)
    steps, dims = (1, -2, 1)[: len(shape) - 2], tuple(range(2, len(shape)))
    shifted = model(torch.roll(x, steps, dims))
    torch.testing.assert_close(shifted, torch.roll(model(x), steps, dims), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["xy", "xyt"])
def test_model_with_only_low_modes_ignores_high_frequency_input(name):
    # Without the pointwise paths W, the input reaches the network only through the kept modes of
    # the (pointwise, frequency-preserving) lift.
    make, shape = MODELS[name]
    model = make().double()
    with torch.no_grad():
        for layer in model.layers:
            layer.pointwise.weight.zero_()
    coordinates = _periodic_grid(*shape[2:])
    high = torch.cos(10 * math.pi * coordinates[0]) + torch.cos(8 * math.pi * coordinates[1])
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(model(x + high), model(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(MODELS))
def test_batched_equals_looped(name):
    make, shape = MODELS[name]
    model = make().double()
    x = torch.randn(*shape, dtype=torch.float64)
    looped = torch.cat([model(x[i : i + 1]) for i in range(shape[0])])
    torch.testing.assert_close(model(x), looped, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(MODELS))
def test_float32_agrees_with_float64(name):
    make, shape = MODELS[name]
    model = make().double()
    x = torch.randn(*shape, dtype=torch.float64)
    high = model(x)
    low = model.float()(x.float())
    torch.testing.assert_close(low.double(), high, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (
            lambda: FNOxy(1, 1, 2, modes_x=2, modes_y=2, num_layers=2, projection_width=3),
            (2, 1, 4, 3),
        ),
        (
            lambda: FNOxyt(1, 1, 2, 1, 2, 2, num_layers=2, padding=1, projection_width=3),
            (2, 1, 2, 4, 2),
        ),
    ],
)
def test_gradients_pass_gradcheck(make, shape):
    model = make().double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,))
    # The mixing's backward is written by hand (lawful.operators.fno._BatchedProduct): its own
    # derivative must be right too, for losses on the model's derivatives.
    assert torch.autograd.gradgradcheck(model, (x,))
    weight = model.layers[0].spectral.weight

    def of_weight(w):
        return torch.func.functional_call(model, {"layers.0.spectral.weight": w}, (x.detach(),))

    assert torch.autograd.gradcheck(of_weight, (weight.detach().clone().requires_grad_(),))


@pytest.mark.parametrize("make", [SpectralConv1d, SpectralConv2d])
def test_mixing_is_one_complex_product_per_kept_mode(make):
    """The batched per-mode product equals the definition, an einsum over channels."""
    torch.manual_seed(0)
    conv = make(3, 4, 5) if make is SpectralConv1d else make(3, 4, 3, 2)
    coefficients = conv.coefficients(
        torch.randn(2, 3, 12) if make is SpectralConv1d else torch.randn(2, 3, 8, 6)
    )
    weight = torch.view_as_complex(conv.weight).reshape(3, 4, *coefficients.shape[2:])
    expected = torch.einsum("bi...,io...->bo...", coefficients, weight)
    torch.testing.assert_close(conv.mix(coefficients), expected)


def test_spacing_is_each_axis_extent_over_its_steps():
    model = FNOxyt(1, 1, 2, 1, 1, 1, x_domain=(-1.0, 1.0), t_domain=(0.0, 0.5), padding=2)
    assert model.spacing(0, 17) == pytest.approx(2 / 16)
    assert model.spacing(1, 11) == pytest.approx(1 / 10)  # default extent 1
    assert model.spacing(2, 6) == model.spacing(-1, 6) == pytest.approx(0.5 / 5)  # unpadded n
    assert FourierNeuralOperator(1, 1, 2, (1, 1)).spacing(1, 5) == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="not one of the 3 spatial axes"):
        model.spacing(3, 10)


def test_saved_weights_of_the_per_dimension_models_keep_their_keys_and_shapes():
    # Trained FNO1d / FNO2d weights in users' run folders must load: the layout is part of the API.
    fno1d = FNO1d(2, 3, width=4, modes=5, num_layers=1, projection_width=6)
    fno2d = FNO2d(2, 3, width=4, modes_x=5, modes_t=3, num_layers=1, projection_width=6)
    common = {
        "layers.0.pointwise.weight": (4, 4),
        "layers.0.pointwise.bias": (4,),
        "projection_hidden.weight": (6, 4),
        "projection_hidden.bias": (6,),
        "projection_out.weight": (3, 6),
        "projection_out.bias": (3,),
    }
    for model, lifting, spectral in ((fno1d, 3, (4, 4, 5, 2)), (fno2d, 4, (4, 4, 10, 3, 2))):
        expected = {
            "lifting.weight": (4, lifting),
            "lifting.bias": (4,),
            "layers.0.spectral.weight": spectral,
            **common,
        }
        assert {key: tuple(value.shape) for key, value in model.state_dict().items()} == expected
    assert FNO2d is FNOxt


def test_too_many_modes_for_a_multi_axis_grid_names_the_sizes():
    with pytest.raises(
        ValueError, match="3 x 4 x 2 modes need at least 6 x 8 x 2 points, got 16 x 6"
    ):
        SpectralConv(1, 1, (3, 4, 2))(torch.randn(1, 1, 16, 6, 5))
