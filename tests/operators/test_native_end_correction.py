"""BOON's native end correction (lawful.native, end_correction.c): the eager correction's values
and gradients to rounding, its own gradients against finite differences, where it is taken and
where the eager form is, and the near-singular fallback."""

import contextlib
import os
import subprocess
import sys

import pytest
import torch

import lawful.native as native
import lawful.operators.boon as boon
from lawful.constraints.boundary import (
    BoundaryConditions,
    Dirichlet,
    Neumann,
    Periodic,
    boundary_residuals,
)
from lawful.operators import BoundaryCorrectedFNO1d, FNO1d

pytestmark = pytest.mark.skipif(
    native.native_library() is None, reason=f"native kernels unavailable: {native.native_status()}"
)

CONDITIONS = {
    "dirichlet": lambda g: (Dirichlet(g), Dirichlet(-g)),
    "neumann": lambda g: (Neumann(g, 1), Neumann(-g, 3)),
    "dirichlet-neumann": lambda g: (Dirichlet(g), Neumann(g, 2)),
    "periodic": lambda g: (Periodic(), Periodic()),
}


@pytest.fixture
def eager(monkeypatch):
    """A context in which models take the eager correction (undoing only its own patch)."""

    @contextlib.contextmanager
    def eagerly():
        with monkeypatch.context() as patch:
            patch.setattr(boon, "_native_end_correction_applies", lambda *_: False)
            yield

    return eagerly


class _CountedCalls:
    """Counts the forward calls of the native correction."""

    def __init__(self, monkeypatch):
        self.calls, apply = 0, boon._NativeEndCorrection.apply

        def counted(*args):
            self.calls += 1
            return apply(*args)

        monkeypatch.setattr(boon._NativeEndCorrection, "apply", counted)


def _model(conditions, dtype, width=6, in_channels=2, layers=3):
    torch.manual_seed(0)
    fno = FNO1d(in_channels, 2, width, modes=5, num_layers=layers, projection_width=8)
    return BoundaryCorrectedFNO1d(fno.to(dtype), conditions)


def _outputs_and_gradients(model, x):
    output, states = model(x), model.hidden_states(x)
    weights = torch.randn_like(output, generator=torch.Generator().manual_seed(1))
    loss = (output * weights).sum() + sum(state.square().sum() for state in states)
    gradients = torch.autograd.grad(loss, [x, *model.parameters()])
    return [output.detach(), *(state.detach() for state in states), *gradients]


@pytest.mark.parametrize("name", list(CONDITIONS))
@pytest.mark.parametrize("data", ["number", "per-sample"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_native_correction_is_the_eager_one_to_rounding(monkeypatch, eager, name, data, dtype):
    values = 0.3 if data == "number" else torch.randn(3, dtype=dtype)
    model = _model(BoundaryConditions(*CONDITIONS[name](values)), dtype)
    x = torch.randn(3, 2, 24, dtype=dtype, requires_grad=True)
    counted = _CountedCalls(monkeypatch)
    natively = _outputs_and_gradients(model, x)
    assert counted.calls == 2 * 3  # model() and hidden_states(), three layers each
    with eager():
        eagerly = _outputs_and_gradients(model, x)
    assert counted.calls == 6
    # float32: two orders of the same sums, and the eager form scales the responses first
    tolerance = 1e-12 if dtype == torch.float64 else 2e-5
    for mine, expected in zip(natively, eagerly, strict=True):
        scale = float(expected.abs().max())
        assert float((mine - expected).abs().max()) <= tolerance * (1 + scale)


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_native_layers_and_output_meet_the_conditions(name):
    data = torch.randn(3)
    conditions = BoundaryConditions(*CONDITIONS[name](data))
    model = _model(conditions, torch.float32)
    x = torch.randn(3, 2, 30)
    spacing = 1 / 29
    for field in (model(x).detach(), *(state.detach() for state in model.hidden_states(x))):
        scale = 1 + float(field.abs().max())
        for residual in boundary_residuals(field, conditions, spacing):
            assert float(residual.abs().max()) * spacing <= 1e-6 * scale


def _function_inputs(name, gelu, n=16, batch=2, width=3, modes=4):
    """Inputs of the native correction of one layer of a float64 BOON over ``n`` points."""
    conditions = BoundaryConditions(*CONDITIONS[name](torch.randn(batch, dtype=torch.float64)))
    generator = torch.Generator().manual_seed(2)
    like = torch.zeros(batch, width, n, dtype=torch.float64)
    system = boon._EndSystem(conditions, 1 / (n - 1), n, 2, like)
    spectra = boon._EndSpectra(modes, system, batch, native=True)
    count = len(system.positions)

    def random(*shape, dtype=torch.float64):
        return torch.randn(*shape, dtype=dtype, generator=generator).requires_grad_()

    tensors = (
        random(batch, width, modes, dtype=torch.complex128),  # mixed spectrum
        random(batch, width, count),  # input near the ends
        random(width, width, modes, 2),  # spectral weight
        random(width, width),  # pointwise weight
        random(width),  # pointwise bias
    )
    return tensors, (spectra.native, gelu, boon.DEFAULT_PIVOT_TOLERANCE)


@pytest.mark.parametrize("name", list(CONDITIONS))
@pytest.mark.parametrize("gelu", [True, False])
def test_native_backward_passes_gradcheck(name, gelu):
    tensors, constants = _function_inputs(name, gelu)

    def correction(*inputs):
        return boon._NativeEndCorrection.apply(*inputs, *constants)

    assert torch.autograd.gradcheck(correction, tensors)


def test_native_backward_passes_gradcheck_on_an_axis_its_stencils_cover():
    # Neumann of order 3 at both ends reads 4 points from each: on 6 points P is all of them.
    tensors, constants = _function_inputs("neumann", True, n=6, modes=3)
    assert constants[0].near == 6

    def correction(*inputs):
        return boon._NativeEndCorrection.apply(*inputs, *constants)

    assert torch.autograd.gradcheck(correction, tensors)


def test_near_singular_channel_overwrites_its_ends_natively_as_eagerly(eager):
    # One output channel without weights: its responses vanish, its 2 x 2 system is singular, and
    # both forms must fall back to the impulses on that channel alone.
    conditions = BoundaryConditions(Dirichlet(0.5), Neumann(-0.2, 2))
    model = _model(conditions, torch.float64)
    layer = model.fno.layers[1]
    with torch.no_grad():
        layer.spectral.weight[:, 2].zero_()
        layer.pointwise.weight[2].zero_()
    x = torch.randn(3, 2, 24, dtype=torch.float64, requires_grad=True)
    natively = _outputs_and_gradients(model, x)
    with eager():
        eagerly = _outputs_and_gradients(model, x)
    for mine, expected in zip(natively, eagerly, strict=True):
        torch.testing.assert_close(mine, expected, rtol=1e-10, atol=1e-12)
    assert all(bool(tensor.isfinite().all()) for tensor in natively)


def test_eager_where_the_kernel_cannot_serve(monkeypatch):
    counted = _CountedCalls(monkeypatch)
    x = torch.randn(2, 2, 20)
    model = _model(BoundaryConditions(Dirichlet(0.0), Dirichlet(0.0)), torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # lower-precision products
        model(x)
    data = torch.randn(2, requires_grad=True)  # boundary data that wants a gradient
    model(x, left=data).sum().backward()
    assert data.grad is not None
    assert counted.calls == 0
    model(x)
    assert counted.calls == 3


def test_a_second_derivative_through_the_kernel_raises():
    model = _model(BoundaryConditions(Dirichlet(0.0), Dirichlet(0.0)), torch.float64)
    x = torch.randn(2, 2, 20, dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        gradient.sum().backward()


def test_numbers_as_data_share_one_system_per_value_tensors_do_not():
    model = _model(BoundaryConditions(Dirichlet(0.0), Dirichlet(0.0)), torch.float32)
    x = torch.randn(2, 2, 20)
    for left in (0.3, 0.5, 0.3):  # each value its own (cached) targets
        assert torch.equal(model(x, left=left)[..., 0], torch.full((2, 2), left))
    before = boon._shared_end_system.cache_info().currsize
    for _ in range(2):
        data = torch.randn(2)
        assert torch.equal(model(x, left=data)[..., 0], data[:, None].expand(2, 2))
    assert boon._shared_end_system.cache_info().currsize == before


def test_without_the_kernel_boon_runs_eagerly():
    script = (
        "import torch, lawful.operators.boon as boon\n"
        "from lawful.constraints.boundary import BoundaryConditions, Dirichlet\n"
        "from lawful.operators import BoundaryCorrectedFNO1d, FNO1d\n"
        "conditions = BoundaryConditions(Dirichlet(1.0), Dirichlet(0.0))\n"
        "model = BoundaryCorrectedFNO1d(FNO1d(1, 1, 4, 3), conditions)\n"
        "spectra = boon._end_spectra(3, boon._end_system(conditions, 0.1, 12, 2,"
        " torch.zeros(2, 4, 12)), torch.zeros(2, 4, 12))\n"
        "assert spectra.native is None\n"
        "assert torch.equal(model(torch.randn(2, 1, 12))[..., 0], torch.ones(2, 1))\n"
    )
    env = {**os.environ, "LAWFUL_NATIVE": "0"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True)


def test_a_shared_system_does_not_keep_the_precision_of_its_first_use():
    # Built first inside a bf16 autocast step, then served to float32 evaluation: its targets
    # must be the data in float32, not rounded to bf16 (0.1234567 -> 0.12353515625).
    conditions = BoundaryConditions(Dirichlet(0.1234567), Dirichlet(0.0), axis=-2)
    field = torch.zeros(3, 4, 20, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = boon._end_system(conditions, 0.1, 20, 2, field)
    outside = boon._end_system(conditions, 0.1, 20, 2, field)
    assert outside is inside  # one shared system
    assert outside.targets.dtype == torch.float32
    assert float(outside.targets.flatten()[0]) == torch.tensor(0.1234567).item()
