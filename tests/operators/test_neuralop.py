import sys
import warnings

import pytest
import torch

with warnings.catch_warnings():
    # Importing neuralop.models adds a global "once" filter for UserWarning; keep it local.
    neuralop_models = pytest.importorskip("neuralop.models")
from neuralop.layers.embeddings import GridEmbeddingND
from neuralop.layers.spectral_convolution import SpectralConv

from lawful.constraints.boundary import (
    BoundaryConditions,
    Dirichlet,
    Neumann,
    Periodic,
    apply_boundary_conditions,
    boundary_residuals,
)
from lawful.operators import BoundaryCorrectedFNO1d, FNO1d
from lawful.operators.neuralop import BoundaryCorrectedNeuralopFNO

FNO = neuralop_models.FNO
TOLERANCE = {torch.float32: 1e-6, torch.float64: 1e-12}

# name -> (left, right) given per-sample data.
CONDITIONS = {
    "dirichlet": lambda g: (Dirichlet(g), Dirichlet(-g)),
    "neumann": lambda g: (Neumann(g, 1), Neumann(-g, 2)),
    "dirichlet-neumann": lambda g: (Dirichlet(g), Neumann(g, 2)),
    "neumann-dirichlet": lambda g: (Neumann(g, 1), Dirichlet(-g)),
    "periodic": lambda g: (Periodic(), Periodic()),
}


def assert_satisfies(field, conditions, spacing, dtype):
    """Dirichlet and periodic ends exact; Neumann stencil residuals at rounding, i.e. h times
    the residual relative to the field's size."""
    field = field.detach()
    scale = 1 + float(field.abs().max())
    residuals = boundary_residuals(field, conditions, spacing)
    for residual, condition in zip(residuals, (conditions.left, conditions.right), strict=True):
        if isinstance(condition, Neumann):
            assert float(residual.abs().max()) * spacing <= TOLERANCE[dtype] * scale
        else:
            assert bool((residual == 0).all())


def _float64(fno):
    """neuralop's ``.double()`` leaves the complex spectral weights complex64: cast them too."""
    fno.double()
    for parameter in fno.parameters():
        if parameter.is_complex():
            parameter.data = parameter.data.to(torch.complex128)
    return fno


def _small_fno(dtype=torch.float32, **options):
    fno = FNO(n_modes=(6,), in_channels=1, out_channels=2, hidden_channels=8, n_layers=3, **options)
    return _float64(fno) if dtype == torch.float64 else fno


@pytest.mark.parametrize("name", list(CONDITIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_block_and_the_output_satisfy_the_conditions(name, dtype):
    batch, n = 3, 20
    conditions = BoundaryConditions(*CONDITIONS[name](torch.randn(batch, dtype=dtype)))
    model = BoundaryCorrectedNeuralopFNO(_small_fno(dtype), conditions)
    x = torch.randn(batch, 1, n, dtype=dtype)
    for state in model.hidden_states(x):
        assert_satisfies(state, conditions, 1 / (n - 1), dtype)
    assert_satisfies(model(x), conditions, 1 / (n - 1), dtype)


@pytest.mark.parametrize("name", ["dirichlet-neumann", "periodic"])
def test_2d_fno_holds_time_dependent_data_with_time_padding(name):
    batch, nx, nt = 2, 16, 10
    data = torch.randn(batch, nt)  # (batch, time)
    conditions = BoundaryConditions(*CONDITIONS[name](data), axis=2)
    fno = FNO(
        n_modes=(6, 4),
        in_channels=1,
        out_channels=1,
        hidden_channels=6,
        n_layers=2,
        domain_padding=[0.0, 0.2],
    )
    model = BoundaryCorrectedNeuralopFNO(fno, conditions, length=2.0)
    x = torch.randn(batch, 1, nx, nt)  # (batch, channels, x, t)
    spacing = 2.0 / (nx - 1)
    for state in model.hidden_states(x):
        assert state.shape == (batch, 6, nx, nt)
        assert_satisfies(state, conditions, spacing, torch.float32)
    assert_satisfies(model(x), conditions, spacing, torch.float32)


def test_one_block_fno_equals_lawfuls_boon():
    # With one block, no channel MLP, a single-layer lifting and the grid embedding spanning
    # [0, 1] endpoint included, neuralop's FNO is lawful's FNO1d: copy the weights over.
    n, modes = 20, 4
    theirs = FNO(
        n_modes=(2 * modes - 2,),
        in_channels=1,
        out_channels=2,
        hidden_channels=8,
        n_layers=1,
        lifting_channel_ratio=0,
        use_channel_mlp=False,
        positional_embedding=GridEmbeddingND(1, dim=1, grid_boundaries=[[0.0, n / (n - 1)]]),
    )
    ours = FNO1d(1, 2, width=8, modes=modes, num_layers=1, projection_width=16)
    layer, block = ours.layers[0], theirs.fno_blocks
    with torch.no_grad():
        for mine, conv in [
            (ours.lifting, theirs.lifting.fcs[0]),
            (ours.projection_hidden, theirs.projection.fcs[0]),
            (ours.projection_out, theirs.projection.fcs[1]),
        ]:
            mine.weight.copy_(conv.weight[..., 0])  # (out, in, 1) -> (out, in)
            mine.bias.copy_(conv.bias)
        layer.spectral.weight.copy_(torch.view_as_real(block.convs[0].weight.tensor))
        layer.pointwise.weight.copy_(block.fno_skips[0].conv.weight[..., 0])
        layer.pointwise.bias.copy_(block.convs[0].bias[:, 0])  # (out, 1) -> (out,)
    x = torch.randn(3, 1, n)
    data = torch.randn(3)
    conditions = BoundaryConditions(Neumann(data, 2), Dirichlet(data))
    mine, lawfuls = (
        BoundaryCorrectedNeuralopFNO(theirs, conditions),
        BoundaryCorrectedFNO1d(ours, conditions),
    )
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), ours(x), rtol=0, atol=1e-6)
        # float32 round-off of two orders of the same sums (lawful's correction may run
        # natively), relative to hidden values up to ~15
        torch.testing.assert_close(mine(x), lawfuls(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            mine.hidden_states(x)[0], lawfuls.hidden_states(x)[0], rtol=1e-5, atol=1e-5
        )
        # Not the overwrite baseline: BOON moves the interior.
        overwritten = apply_boundary_conditions(theirs(x), conditions, 1 / (n - 1))
        assert float((mine(x) - overwritten).abs().max()) > 1e-2


@pytest.mark.parametrize(
    "options",
    [
        {},  # neuralop's defaults: channel MLP with soft-gating skip, linear FNO skip
        {"preactivation": True},
        {"fno_skip": "identity", "channel_mlp_skip": "linear"},
        {"fno_skip": "soft-gating", "channel_mlp_skip": None},
        {"fno_skip": None, "use_channel_mlp": False},
        {"factorization": "tucker", "rank": 0.5},
    ],
)
def test_blocks_are_neuralops_own_away_from_the_ends(options):
    # An infinite pivot tolerance treats every system as singular, so each correction only
    # rewrites the end entries: the interior must be FNOBlocks.forward's, bit for bit.
    fno = _small_fno(**options)
    conditions = BoundaryConditions(Dirichlet(0.3), Neumann(0.1, 2))
    overwriting = BoundaryCorrectedNeuralopFNO(fno, conditions, pivot_tolerance=float("inf"))
    x = torch.randn(2, 1, 16)
    with torch.no_grad():
        v = fno.lifting(fno.positional_embedding(x))  # (batch, hidden, x)
        for index, state in enumerate(overwriting.hidden_states(x)):
            expected = fno.fno_blocks(v, index)  # (batch, hidden, x)
            torch.testing.assert_close(state[..., 1:-1], expected[..., 1:-1], rtol=0, atol=0)
            v = state
        output = overwriting(x)
        expected = fno.projection(v)  # (batch, out, x)
        torch.testing.assert_close(output[..., 1:-1], expected[..., 1:-1], rtol=0, atol=0)
        corrected = BoundaryCorrectedNeuralopFNO(fno, conditions)(x)
    assert float((corrected - output)[..., 1:-1].abs().max()) > 1e-4


class Float64SpectralConv(SpectralConv):
    """neuralop's 1-D SpectralConv with its spectrum in the input's precision: the stock layer
    rounds the spectrum to complex64 even in float64, too coarse for finite differences."""

    def forward(self, x, output_shape=None):
        weight = self.weight.to_tensor()  # (in, out, modes)
        spectrum = torch.fft.rfft(x, norm=self.fft_norm)[..., : weight.shape[-1]]
        mixed = torch.einsum("bik,iok->bok", spectrum, weight)  # (batch, out, modes)
        return torch.fft.irfft(mixed, n=x.shape[-1], norm=self.fft_norm) + self.bias


def test_gradients_pass_gradcheck():
    fno = FNO(
        n_modes=(4,),
        in_channels=1,
        out_channels=1,
        hidden_channels=3,
        n_layers=2,
        conv_module=Float64SpectralConv,
    )
    model = BoundaryCorrectedNeuralopFNO(_float64(fno), BoundaryConditions(Dirichlet(), Neumann()))
    conv = fno.fno_blocks.convs[0]
    v = torch.randn(2, 3, 8, dtype=torch.float64)
    torch.testing.assert_close(conv(v), SpectralConv.forward(conv, v), rtol=0, atol=1e-6)

    x = torch.randn(2, 1, 8, dtype=torch.float64, requires_grad=True)
    left = torch.randn(2, dtype=torch.float64, requires_grad=True)
    right = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x, left, right))
    # And through the weights that enter the responses, bias included (zeroed there).
    names = [
        "fno.fno_blocks.convs.0.weight.tensor",
        "fno.fno_blocks.convs.0.bias",
        "fno.fno_blocks.fno_skips.0.conv.weight",
    ]
    parameters = dict(model.named_parameters())

    def of_weights(*weights):
        return torch.func.functional_call(model, dict(zip(names, weights, strict=True)), x.detach())

    weights = tuple(parameters[name].detach().clone().requires_grad_() for name in names)
    assert torch.autograd.gradcheck(of_weights, weights)


def test_training_lowers_the_loss_and_the_walls_still_hold():
    # u = f + the line between the boundary values; the data come with each batch (forward's
    # left/right), Dirichlet on the left and the target's slope on the right.
    batch, n = 16, 16
    s = torch.linspace(0, 1, n)  # (x,)
    amplitude, low, high = torch.randn(3, batch, 1)  # each (batch, 1)
    x = (amplitude * torch.sin(torch.pi * s)).unsqueeze(1)  # (batch, 1, x)
    target = x + (low + (high - low) * s).unsqueeze(1)  # (batch, 1, x)
    left, right = low[:, 0], (high - low - torch.pi * amplitude)[:, 0]  # u(0), u_x(1): (batch,)
    conditions = BoundaryConditions(Dirichlet(), Neumann(order=2))
    fno = FNO(n_modes=(6,), in_channels=1, out_channels=1, hidden_channels=8, n_layers=2)
    model = BoundaryCorrectedNeuralopFNO(fno, conditions)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        loss = (model(x, left, right) - target).square().mean()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]
    trained = conditions.with_values(left, right)
    with torch.no_grad():
        for state in model.hidden_states(x, left, right):
            assert_satisfies(state, trained, 1 / (n - 1), torch.float32)
        assert_satisfies(model(x, left, right), trained, 1 / (n - 1), torch.float32)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"norm": "group_norm"}, "norm leave no linear layer"),
        ({"stabilizer": "tanh"}, "stabilizer"),
        ({"resolution_scaling_factor": 1.0}, "resolution_scaling_factor"),
        ({"domain_padding": 0.25}, "pads spatial axis 0, the constrained one"),
    ],
)
def test_features_that_cannot_be_corrected_are_refused(options, message):
    conditions = BoundaryConditions(Dirichlet(), Dirichlet())
    with pytest.raises(ValueError, match=message):
        BoundaryCorrectedNeuralopFNO(_small_fno(**options), conditions)


def test_bad_arguments_raise_naming_the_problem():
    conditions = BoundaryConditions(Dirichlet(), Neumann(order=2))
    with pytest.raises(TypeError, match=r"expected a neuralop\.models\.FNO, got FNO1d"):
        BoundaryCorrectedNeuralopFNO(FNO1d(1, 1, width=4, modes=3), conditions)
    model = BoundaryCorrectedNeuralopFNO(_small_fno(), conditions)
    with pytest.raises(ValueError, match=r"input must have shape \(batch, 1, n\)"):
        model(torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match=r"Dirichlet data at the left end.*got \(3,\)"):
        model(torch.randn(2, 1, 16), left=torch.zeros(3))


def test_missing_neuralop_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "neuralop.models", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install lawful\[neuralop\]"):
        BoundaryCorrectedNeuralopFNO(
            torch.nn.Linear(1, 1), BoundaryConditions(Dirichlet(), Dirichlet())
        )


def test_wall_keywords_are_refused_by_name():
    conditions = BoundaryConditions(Dirichlet(), Dirichlet(), axis=2)
    model = BoundaryCorrectedNeuralopFNO(_small_fno(), conditions)
    with pytest.raises(ValueError, match="constrains one axis; give its data as left/right"):
        model(torch.randn(2, 1, 16), x_left=torch.ones(2))
