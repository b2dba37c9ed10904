import pytest
import torch
import torch.nn.functional as F

from lawful.constraints.boundary import BoundaryConditions, Dirichlet, Neumann, Periodic
from lawful.constraints.walls import Walls, apply_walls, wall_equations, wall_residuals
from lawful.operators import (
    BoundaryCorrectedFNO,
    BoundaryCorrectedFNO1d,
    BoundaryOverwrite,
    FNO1d,
    FNO2d,
    FNOxy,
    FNOxyt,
)
from lawful.operators.boon import _FrequencyAxis

NX, NY, FRAMES, BATCH = 12, 10, 5, 3
SPACINGS = (1 / (NX - 1), 1 / (NY - 1))
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


def _model(kind, dtype, padding=2, width=6):
    if kind == "xy":
        fno = FNOxy(1, 1, width, 4, 4, num_layers=3, projection_width=8)
    else:
        fno = FNOxyt(1, 1, width, 4, 4, 3, num_layers=3, padding=padding, projection_width=8)
    return fno.to(dtype)


def _input(kind, dtype, batch=BATCH):
    frames = () if kind == "xy" else (FRAMES,)
    return torch.randn(batch, 1, NX, NY, *frames, dtype=dtype)


def _walls(name, kind, dtype, batch=BATCH):
    """Walls of each kind with per-sample (and per-frame) data; Dirichlet corners agree."""
    frames = () if kind == "xy" else (FRAMES,)

    def data(along):
        return torch.randn(batch, along, *frames, dtype=dtype)

    x_left, x_right, y_left, y_right = data(NY), data(NY), data(NX), data(NX)
    for y_wall, index in ((y_left, 0), (y_right, -1)):
        y_wall[:, 0], y_wall[:, -1] = x_left[:, index], x_right[:, index]
    if name == "dirichlet":
        x = BoundaryConditions(Dirichlet(x_left), Dirichlet(x_right))
        y = BoundaryConditions(Dirichlet(y_left), Dirichlet(y_right))
    elif name == "mixed":
        x = BoundaryConditions(Dirichlet(x_left), Neumann(x_right, 2))
        y = BoundaryConditions(Neumann(y_left, 1), Dirichlet(y_right))
    elif name == "neumann":
        x = BoundaryConditions(Neumann(x_left, 1), Neumann(x_right, 2))
        y = BoundaryConditions(Neumann(y_left, 2), Neumann(y_right, 1))
    else:  # periodic x, Dirichlet y
        x = BoundaryConditions(Periodic(), Periodic())
        y = BoundaryConditions(Dirichlet(y_left), Dirichlet(y_right))
    return Walls(x, y)


def assert_meets_every_wall(field, walls, dtype):
    """Residuals at rounding level where the corner rule imposes them (Neumann residuals are
    derivatives: h * residual, relative to the field); Dirichlet and periodic walls exactly."""
    field = field.detach()
    scale = 1 + float(field.abs().max())
    for name, residual in wall_residuals(field, walls, SPACINGS).items():
        if isinstance(walls.condition(name), Neumann):
            spacing = SPACINGS[0 if name.startswith("x") else 1]
            assert float(residual.abs().max()) * spacing <= TOLERANCE[dtype] * scale, name
        else:
            assert bool((residual == 0).all()), name


WALLS = ["dirichlet", "mixed", "neumann", "periodic-x"]


@pytest.mark.parametrize("name", WALLS)
@pytest.mark.parametrize("kind", ["xy", "xyt"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_layer_and_the_output_meet_every_wall(name, kind, dtype):
    walls = _walls(name, kind, dtype)
    model = BoundaryCorrectedFNO(_model(kind, dtype), walls)
    x = _input(kind, dtype)
    for state in model.hidden_states(x):
        assert_meets_every_wall(state, walls, dtype)
    assert_meets_every_wall(model(x), walls, dtype)


def test_forward_data_override_the_default_data():
    walls = _walls("mixed", "xyt", torch.float64)
    model = BoundaryCorrectedFNO(_model("xyt", torch.float64), walls)
    new = _walls("mixed", "xyt", torch.float64)
    data = {name: value for name, value in new.data().items() if value is not None}
    assert_meets_every_wall(model(_input("xyt", torch.float64), **data), new, torch.float64)


def _wall_responses(layer, entries, width, grid_shape):
    """The layer's bias-free responses to unit impulses at each wall entry, in every input
    channel and constant over time: ``(m, width, nx ny)`` at one frame."""
    probes = torch.zeros(len(entries), width, NX * NY, *grid_shape[2:], dtype=torch.float64)
    probes[torch.arange(len(entries)), :, entries] = 1
    responses = layer.linear(probes.view(len(entries), width, *grid_shape), bias=False)
    return responses.flatten(2, 3)[..., 0] if len(grid_shape) > 2 else responses.flatten(2)


@pytest.mark.parametrize("name", WALLS)
@pytest.mark.parametrize("kind", ["xy", "xyt"])
def test_the_correction_is_a_combination_of_the_layers_own_shifted_responses(name, kind):
    # The last layer has no activation and its input is the previous hidden state (no padding,
    # so nothing is cropped): its output minus the plain layer's must lie, per output channel
    # and frame, in the span of the layer's responses to impulses at the wall entries.
    walls = _walls(name, kind, torch.float64)
    fno = _model(kind, torch.float64, padding=0)
    model = BoundaryCorrectedFNO(fno, walls)
    states = model.hidden_states(_input(kind, torch.float64))
    layer = fno.layers[-1]
    difference = (states[-1] - layer(states[-2])).detach()  # (batch, width, nx, ny[, T])
    entries = wall_equations(walls, (NX, NY), SPACINGS).entries
    responses = _wall_responses(layer, entries, fno.width, tuple(states[-1].shape[2:]))
    for channel in range(fno.width):
        vectors = responses[:, channel].T  # (nx ny, m)
        target = difference[:, channel].flatten(1, 2).movedim(1, 0).reshape(NX * NY, -1)
        multiples = torch.linalg.lstsq(vectors, target).solution
        torch.testing.assert_close(vectors @ multiples, target, rtol=0, atol=1e-11)
    assert float(difference.abs().max()) > 1e-2  # there was something to correct


@pytest.mark.parametrize("kind", ["xy", "xyt"])
def test_batched_equals_looped(kind):
    walls = _walls("mixed", kind, torch.float64)
    model = BoundaryCorrectedFNO(_model(kind, torch.float64), walls)
    x = _input(kind, torch.float64)
    data = {name: value for name, value in walls.data().items() if value is not None}
    looped = [model(x[i : i + 1], **{k: v[i : i + 1] for k, v in data.items()}) for i in range(3)]
    torch.testing.assert_close(model(x), torch.cat(looped), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["xy", "xyt"])
def test_float32_agrees_with_float64(kind):
    walls = _walls("mixed", kind, torch.float64)
    fno = _model(kind, torch.float64)
    x = _input(kind, torch.float64)
    high = BoundaryCorrectedFNO(fno, walls)(x)
    data = {name: value.float() for name, value in walls.data().items() if value is not None}
    low = BoundaryCorrectedFNO(fno.float(), walls.with_values(**data))(x.float())
    torch.testing.assert_close(low.double(), high, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["xy", "xyt"])
def test_gradients_pass_gradcheck(kind):
    walls = Walls(
        BoundaryConditions(Dirichlet(0.0), Neumann(0.0, 1)),
        BoundaryConditions(Neumann(0.0, 1), Dirichlet(0.0)),
    )
    nx, ny, frames = 6, 5, (3,) if kind == "xyt" else ()
    if kind == "xy":
        fno = FNOxy(1, 1, 2, 2, 2, num_layers=2, projection_width=2)
    else:
        fno = FNOxyt(1, 1, 2, 2, 2, 2, num_layers=2, padding=1, projection_width=2)
    model = BoundaryCorrectedFNO(fno.double(), walls)
    x = torch.randn(1, 1, nx, ny, *frames, dtype=torch.float64, requires_grad=True)
    x_right = torch.randn(1, ny, *frames, dtype=torch.float64, requires_grad=True)
    y_left = torch.randn(1, nx, *frames, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, a, b: model(x, x_right=a, y_left=b), (x, x_right, y_left)
    )
    # And through the weights, which enter the correction via the kernel images.
    for name in ("fno.layers.0.spectral.weight", "fno.layers.1.pointwise.weight"):
        weight = dict(model.named_parameters())[name]

        def of_weight(w, name=name):
            return torch.func.functional_call(model, {name: w}, (x.detach(),))

        assert torch.autograd.gradcheck(of_weight, (weight.detach().clone().requires_grad_(),))


def test_solving_through_the_inverse_matches_triangular_solves():
    # Five samples x 4 frames (3 and 1 padded) are more right-hand sides than the 18 wall
    # equations, so the solve and its backward go through A^-1; one sample (4 of them) takes
    # the triangular solves, which the gradcheck above covers. Samples are independent: the
    # batch's outputs and gradients must be the samples' own.
    walls = Walls(
        BoundaryConditions(Dirichlet(0.0), Neumann(0.0, 1)),
        BoundaryConditions(Neumann(0.0, 1), Dirichlet(0.0)),
    )
    nx, ny, batch = 6, 5, 5
    assert wall_equations(walls, (nx, ny), (1.0, 1.0)).size == 18 < batch * 4
    fno = FNOxyt(1, 1, 2, 2, 2, 2, num_layers=2, padding=1, projection_width=2).double()
    model = BoundaryCorrectedFNO(fno, walls)
    x = torch.randn(batch, 1, nx, ny, 3, dtype=torch.float64, requires_grad=True)
    x_right = torch.randn(batch, ny, 3, dtype=torch.float64)

    def outputs_and_gradients(samples):
        output = torch.cat([model(x[s], x_right=x_right[s]) for s in samples])
        gradients = torch.autograd.grad(output.square().sum(), [x, *model.parameters()])
        return output, gradients

    together, together_gradients = outputs_and_gradients([slice(0, batch)])
    alone, alone_gradients = outputs_and_gradients([slice(s, s + 1) for s in range(batch)])
    torch.testing.assert_close(together, alone, rtol=1e-10, atol=1e-12)
    for joint, single in zip(together_gradients, alone_gradients, strict=True):
        torch.testing.assert_close(joint, single, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("n", [9, 8])
def test_placing_a_spectrum_on_its_axis_is_adding_it_into_zeros(n):
    # The correction's region on x: frequencies -4..4. On 8 points +4 and -4 are one frequency
    # (they add); on 9 every frequency has its own place. Same values and gradients to the bit.
    frequencies = torch.tensor([0, 1, 2, 3, -4, -3, -2, -1, 4])
    axis = _FrequencyAxis(n, frequencies, halved=False)
    spectrum = torch.randn(2, 3, 9, 5, dtype=torch.complex64, requires_grad=True)
    weights = torch.randn(2, 3, n, 5, dtype=torch.complex64)
    placed = axis.place(spectrum, 2)  # (2, 3, n, 5)
    zeros = spectrum.new_zeros(2, 3, n, 5)
    added = zeros.index_add(2, frequencies % n, spectrum)
    assert torch.equal(placed, added)
    (gradient,) = torch.autograd.grad((placed * weights).sum().real, spectrum)
    (expected,) = torch.autograd.grad((added * weights).sum().real, spectrum)
    assert torch.equal(gradient, expected)


@pytest.mark.parametrize("kind", ["xy", "xyt"])
def test_degenerate_channel_falls_back_to_overwriting_its_walls(kind):
    # Output channel 0 of the first layer with zero weights: its kernel image is zero, so is
    # its A. It must keep the plain layer's interior and overwrite its wall entries.
    walls = _walls("mixed", kind, torch.float64)
    fno = _model(kind, torch.float64)
    with torch.no_grad():
        fno.layers[0].spectral.weight[:, 0] = 0
        fno.layers[0].pointwise.weight[0] = 0
    model = BoundaryCorrectedFNO(fno, walls)
    x = _input(kind, torch.float64)
    state = model.hidden_states(x)[0]  # (batch, width, nx, ny[, T])
    assert bool(state.isfinite().all())
    assert_meets_every_wall(state, walls, torch.float64)
    plain = F.gelu(fno.layers[0](fno.lift(x)))
    plain = plain.narrow(-1, 0, state.shape[-1])
    interior = (slice(None), 0, slice(1, -1), slice(1, -1))
    torch.testing.assert_close(state[interior], plain[interior], rtol=0, atol=1e-14)


def test_one_dimensional_walls_are_the_one_dimensional_model():
    conditions = BoundaryConditions(Dirichlet(torch.randn(2).double()), Neumann(0.5, 2))
    fno = FNO1d(1, 1, 4, modes=4, num_layers=2, projection_width=8).double()
    x = torch.randn(2, 1, 16, dtype=torch.float64)
    expected = BoundaryCorrectedFNO1d(fno, conditions)(x, right=-1.0)
    walls_model = BoundaryCorrectedFNO(fno, Walls(conditions))
    torch.testing.assert_close(walls_model(x, x_right=-1.0), expected, rtol=0, atol=0)
    torch.testing.assert_close(walls_model(x, None, -1.0), expected, rtol=0, atol=0)


def test_overwrite_baseline_sets_every_wall_of_any_model():
    walls = _walls("mixed", "xy", torch.float64)
    fno = _model("xy", torch.float64)
    baseline = BoundaryOverwrite(fno, walls, length=(1.0, 1.0))
    x = _input("xy", torch.float64)
    expected = apply_walls(fno(x), walls, SPACINGS)
    torch.testing.assert_close(baseline(x), expected, rtol=0, atol=0)
    assert_meets_every_wall(baseline(x), walls, torch.float64)


def test_bad_input_raises_naming_the_problem():
    walls = _walls("dirichlet", "xy", torch.float32, batch=2)
    model = BoundaryCorrectedFNO(_model("xy", torch.float32), walls)
    x = _input("xy", torch.float32, batch=2)
    with pytest.raises(ValueError, match="ambiguous"):
        model(x, torch.zeros(2))
    with pytest.raises(ValueError, match=r"y walls: Dirichlet data at the left end.*got \(2, 3\)"):
        model(x, y_left=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="disagree at the corner"):
        model(x, y_left=torch.ones(2, NX))
    with pytest.raises(ValueError, match="zero-pads its last spatial axis"):
        BoundaryCorrectedFNO(FNO2d(1, 1, 4, 2, 2, padding=2), walls)
    with pytest.raises(ValueError, match=r"over \(x, y\) or \(x, y, t\)"):
        BoundaryCorrectedFNO(FNO1d(1, 1, 4, 2), walls)
    one_axis = BoundaryCorrectedFNO1d(FNO1d(1, 1, 4, 2), walls.x)
    with pytest.raises(ValueError, match="pass its data as left/right"):
        one_axis(torch.randn(2, 1, 8), x_left=1.0)
