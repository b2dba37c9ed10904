from functools import partial

import pytest
import torch
import torch.nn.functional as F

from lawful.constraints.boundary import (
    BoundaryConditions,
    Dirichlet,
    Neumann,
    Periodic,
    apply_boundary_conditions,
    boundary_residuals,
)
from lawful.operators import (
    BoundaryCorrectedFNO1d,
    BoundaryCorrectedFNO2d,
    BoundaryOverwrite,
    FNO1d,
    FNO2d,
    boundary_responses,
    correct_boundary,
)

TOLERANCE = {torch.float32: 1e-6, torch.float64: 1e-12}

# name -> (left, right) given per-sample data; Neumann orders vary across the battery.
CONDITIONS = {
    "dirichlet": lambda g: (Dirichlet(g), Dirichlet(-g)),
    "neumann": lambda g: (Neumann(g, 1), Neumann(-g, 3)),
    "dirichlet-neumann": lambda g: (Dirichlet(g), Neumann(g, 2)),
    "neumann-dirichlet": lambda g: (Neumann(g, 4), Dirichlet(g)),
    "periodic": lambda g: (Periodic(), Periodic()),
}


def assert_satisfies(field, conditions, spacing, dtype):
    """Residuals at rounding level. Neumann residuals are stencil derivatives, i.e. rounding
    divided by h: compare h * residual, relative to the field's size."""
    field = field.detach()
    scale = 1 + float(field.abs().max())
    for residual in boundary_residuals(field, conditions, spacing):
        assert float(residual.abs().max()) * spacing <= TOLERANCE[dtype] * scale
    for condition, index in ((conditions.left, 0), (conditions.right, -1)):
        if isinstance(condition, Dirichlet | Periodic):  # set exactly, not merely to rounding
            residuals = boundary_residuals(field, conditions, spacing)
            assert bool((residuals[index] == 0).all())


def _random_fno1d(in_channels, width, dtype):
    return FNO1d(in_channels, 2, width, modes=5, num_layers=3, projection_width=8).to(dtype)


@pytest.mark.parametrize("name", list(CONDITIONS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("batch", "in_channels", "width"), [(1, 1, 4), (3, 2, 7)])
def test_every_layer_and_the_output_satisfy_the_conditions(name, dtype, batch, in_channels, width):
    data = torch.randn(batch, dtype=dtype)
    conditions = BoundaryConditions(*CONDITIONS[name](data))
    model = BoundaryCorrectedFNO1d(_random_fno1d(in_channels, width, dtype), conditions)
    x = torch.randn(batch, in_channels, 20, dtype=dtype)
    spacing = 1 / 19
    for state in model.hidden_states(x):
        assert_satisfies(state, conditions, spacing, dtype)
    assert_satisfies(model(x), conditions, spacing, dtype)


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_space_time_model_holds_time_dependent_data_at_every_frame(name):
    batch, frames = 2, 6
    data = torch.randn(batch, frames, dtype=torch.float64)  # (batch, time)
    conditions = BoundaryConditions(*CONDITIONS[name](data), axis=2)
    fno = FNO2d(1, 1, width=5, modes_x=4, modes_t=3, num_layers=2, padding=3, projection_width=8)
    model = BoundaryCorrectedFNO2d(fno.double(), conditions)
    x = torch.randn(batch, 1, 16, frames, dtype=torch.float64)  # (batch, channels, x, t)
    spacing = 1 / 15
    for state in model.hidden_states(x):
        assert_satisfies(state, conditions, spacing, torch.float64)
    assert_satisfies(model(x), conditions, spacing, torch.float64)


def _unfused_boon(model, x, conditions, spacing):
    """The previous formulation, from the public pieces: each layer's full output plus the
    multiples of its full probe responses, activation, then the ends set exactly."""
    fno = model.fno
    v, states = fno.lift(x), []
    for index, layer in enumerate(fno.layers):
        linear = partial(layer.linear, bias=False)
        responses = boundary_responses(linear, fno.width, tuple(v.shape[2:]), 2, v)
        v = correct_boundary(layer(v), responses, conditions, spacing)
        if index < len(fno.layers) - 1:
            v = F.gelu(v)
        v = apply_boundary_conditions(v, conditions, spacing)
        states.append(v)
    return apply_boundary_conditions(fno.project(v), conditions, spacing), states


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_fused_correction_equals_the_unfused_formulation(name):
    # The 1-D layers fold the correction into the inverse FFT and evaluate the ends as sums over
    # modes; values and gradients must be those of adding the full-size response vectors.
    data = torch.randn(3, dtype=torch.float64)
    conditions = BoundaryConditions(*CONDITIONS[name](data))
    fno = FNO1d(2, 2, width=6, modes=5, num_layers=3, projection_width=8).double()
    model = BoundaryCorrectedFNO1d(fno, conditions)
    x = torch.randn(3, 2, 24, dtype=torch.float64, requires_grad=True)
    output, states = model(x), model.hidden_states(x)
    expected_output, expected_states = _unfused_boon(model, x, conditions, spacing=1 / 23)
    for state, expected in zip(states, expected_states, strict=True):
        torch.testing.assert_close(state, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(output, expected_output, rtol=0, atol=1e-12)
    weights = torch.randn_like(output)
    gradients = torch.autograd.grad((output * weights).sum(), [x, *fno.parameters()])
    expected_gradients = torch.autograd.grad(
        (expected_output * weights).sum(), [x, *fno.parameters()]
    )
    for gradient, expected in zip(gradients, expected_gradients, strict=True):
        torch.testing.assert_close(gradient, expected, rtol=1e-10, atol=1e-12)


def test_forward_data_overrides_the_default_data():
    conditions = BoundaryConditions(Dirichlet(0.0), Neumann(0.0, 2))
    model = BoundaryCorrectedFNO1d(_random_fno1d(1, 4, torch.float64), conditions)
    x = torch.randn(2, 1, 12, dtype=torch.float64)
    left, right = torch.tensor([1.0, -2.0]).double(), 0.5
    output = model(x, left=left, right=right)
    assert_satisfies(output, conditions.with_values(left, right), 1 / 11, torch.float64)


def test_batched_equals_looped():
    data = torch.randn(4, dtype=torch.float64)
    conditions = BoundaryConditions(Neumann(data, 2), Dirichlet(data))
    model = BoundaryCorrectedFNO1d(_random_fno1d(2, 5, torch.float64), conditions)
    x = torch.randn(4, 2, 16, dtype=torch.float64)
    looped = [model(x[i : i + 1], left=data[i : i + 1], right=data[i : i + 1]) for i in range(4)]
    torch.testing.assert_close(model(x), torch.cat(looped), rtol=0, atol=1e-12)


def test_float32_agrees_with_float64():
    conditions = BoundaryConditions(Dirichlet(0.2), Neumann(-0.4, 2))
    fno = _random_fno1d(1, 4, torch.float64)
    x = torch.randn(2, 1, 16, dtype=torch.float64)
    high = BoundaryCorrectedFNO1d(fno, conditions)(x)
    low = BoundaryCorrectedFNO1d(fno.float(), conditions)(x.float())
    torch.testing.assert_close(low.double(), high, rtol=1e-4, atol=1e-5)


def test_single_channel_correction_is_the_notes_input_correction():
    # One channel: BOON changes the input only at its ends, y = x + d0 e0 + dN eN, and K y hits
    # the Dirichlet data; our output-side correction must give exactly K y.
    n = 12
    kernel = torch.randn(n, n, dtype=torch.float64)  # a dense linear layer along x
    x = torch.randn(3, 1, n, dtype=torch.float64)
    conditions = BoundaryConditions(Dirichlet(0.7), Dirichlet(-0.2))

    def layer(v):
        return v @ kernel.T  # (batch, 1, x)

    responses = boundary_responses(layer, 1, (n,), 2, x)  # (2, 1, x)
    corrected = correct_boundary(layer(x), responses, conditions, spacing=0.1)
    system = kernel[[0, -1]][:, [0, -1]]  # rows: outputs at the ends; columns: e0, eN
    targets = torch.tensor([0.7, -0.2], dtype=torch.float64)
    gaps = (targets - layer(x)[..., [0, -1]]).unsqueeze(-1)  # (batch, 1, 2, 1)
    shifts = torch.linalg.solve(system, gaps).squeeze(-1)  # (batch, 1, 2)
    y = x.clone()
    y[..., [0, -1]] += shifts
    torch.testing.assert_close(corrected, layer(y), rtol=0, atol=1e-12)


def test_channel_mixing_layer_is_corrected_exactly_per_output_channel():
    n, in_channels, out_channels = 10, 3, 5
    weights = torch.randn(out_channels, n, in_channels, n, dtype=torch.float64)

    def layer(v):
        return torch.einsum("oxiy,biy->box", weights, v)  # (batch, out, x)

    x = torch.randn(4, in_channels, n, dtype=torch.float64)
    conditions = BoundaryConditions(Neumann(0.3, 2), Dirichlet(torch.randn(4).double()))
    responses = boundary_responses(layer, in_channels, (n,), 2, x)
    corrected = correct_boundary(layer(x), responses, conditions, spacing=0.1)
    for residual in boundary_residuals(corrected, conditions, spacing=0.1):
        assert float(residual.abs().max()) * 0.1 < 1e-12


def test_singular_system_falls_back_to_overwriting_the_ends():
    # A layer whose responses are constant along x: both ends respond alike, the 2 x 2 system is
    # singular, and the correction must overwrite the ends and leave the interior alone.
    n = 9

    def layer(v):
        return v.sum(-1, keepdim=True).expand(-1, -1, n)  # (batch, channels, x)

    x = torch.randn(2, 1, n, dtype=torch.float64)
    conditions = BoundaryConditions(Dirichlet(1.0), Dirichlet(2.0))
    responses = boundary_responses(layer, 1, (n,), 2, x)
    corrected = correct_boundary(layer(x), responses, conditions, spacing=0.1)
    assert bool(corrected.isfinite().all())
    torch.testing.assert_close(corrected[..., 1:-1], layer(x)[..., 1:-1], rtol=0, atol=0)
    torch.testing.assert_close(
        corrected[..., [0, -1]], torch.tensor([1.0, 2.0]).double().expand(2, 1, 2)
    )


def test_gradients_pass_gradcheck():
    conditions = BoundaryConditions(Dirichlet(0.0), Neumann(0.0, 2))
    fno = FNO1d(1, 1, width=3, modes=3, num_layers=2, projection_width=4).double()
    model = BoundaryCorrectedFNO1d(fno, conditions)
    x = torch.randn(2, 1, 8, dtype=torch.float64, requires_grad=True)
    left = torch.randn(2, dtype=torch.float64, requires_grad=True)
    right = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x, left, right))
    # And through the weights, which enter the correction via the boundary responses.
    weight = fno.layers[0].spectral.weight

    def of_weight(w):
        return torch.func.functional_call(model, {"fno.layers.0.spectral.weight": w}, (x.detach(),))

    assert torch.autograd.gradcheck(of_weight, (weight.detach().clone().requires_grad_(),))


def test_overwrite_baseline_sets_the_ends_of_any_model():
    conditions = BoundaryConditions(Dirichlet(1.0), Neumann(0.5, 1))
    fno = _random_fno1d(1, 4, torch.float64)
    baseline = BoundaryOverwrite(fno, conditions, length=2.0)
    x = torch.randn(3, 1, 11, dtype=torch.float64)
    expected = apply_boundary_conditions(fno(x), conditions, spacing=0.2)
    torch.testing.assert_close(baseline(x), expected, rtol=0, atol=0)
    assert_satisfies(baseline(x), conditions, 0.2, torch.float64)


def test_bad_input_raises_naming_the_problem():
    conditions = BoundaryConditions(Dirichlet(0.0), Neumann(0.0, 3))
    model = BoundaryCorrectedFNO1d(_random_fno1d(1, 4, torch.float32), conditions)
    x = torch.randn(2, 1, 12)
    with pytest.raises(ValueError, match=r"Dirichlet data at the left end.*got \(3,\)"):
        model(x, left=torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        model(x, right=torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match=r"too short.*need at least 5 points"):
        model(torch.randn(2, 1, 4))
    space_time = BoundaryConditions(Dirichlet(0.0), Dirichlet(0.0), axis=-1)
    with pytest.raises(ValueError, match="zero-pads its last spatial axis"):
        BoundaryCorrectedFNO2d(FNO2d(1, 1, 4, 2, 2, padding=2), space_time)


def test_the_overwrite_baseline_names_a_bad_length():
    conditions = BoundaryConditions(Dirichlet(), Neumann(), axis=2)
    fno = FNO1d(1, 1, width=4, modes=3)
    for length in (0.0, -1.0, (1.0, 2.0)):
        with pytest.raises(ValueError, match="one positive extent per constrained axis"):
            BoundaryOverwrite(fno, conditions, length=length)
