"""Bad input to the operators is a named error; an empty batch is valid input.

The constructors check their arguments and :meth:`FourierNeuralOperator.lift`, which every
forward pass goes through (BOON's included), checks the input: one test per kind of bad input,
over the operator classes.
"""

import math
import re

import pytest
import torch

from lawful.constraints.boundary import BoundaryConditions, Dirichlet, Neumann
from lawful.constraints.walls import Walls
from lawful.models.anp import AttentiveNeuralProcess
from lawful.operators import (
    BoundaryCorrectedFNO,
    FNO1d,
    FNOxt,
    FNOxy,
    FNOxyt,
    SpectralConv,
    SpectralConv1d,
)

SMALL = {"num_layers": 2, "projection_width": 4}

# Each plain FNO, small, with an input shape (batch 2) whose axes hold its modes.
FNOS = {
    "FNO1d": (lambda: FNO1d(1, 1, 3, 3, **SMALL), (2, 1, 8)),
    "FNOxt": (lambda: FNOxt(1, 1, 3, 2, 2, padding=2, **SMALL), (2, 1, 6, 3)),
    "FNOxy": (lambda: FNOxy(1, 1, 3, 2, 2, **SMALL), (2, 1, 6, 5)),
    "FNOxyt": (lambda: FNOxyt(1, 1, 3, 2, 2, 2, padding=1, **SMALL), (2, 1, 6, 5, 3)),
}
X_ENDS = BoundaryConditions(Dirichlet(), Neumann())
WALLS = Walls(X_ENDS, BoundaryConditions(Neumann(), Dirichlet()))
# BOON goes through its FNO's lift: the same checks.
OPERATORS = {
    **FNOS,
    "BOON 1-D": (lambda: BoundaryCorrectedFNO(FNOS["FNO1d"][0](), X_ENDS), FNOS["FNO1d"][1]),
    "BOON x-t": (
        lambda: BoundaryCorrectedFNO(
            FNOS["FNOxt"][0](), BoundaryConditions(Dirichlet(), Neumann(), axis=2)
        ),
        FNOS["FNOxt"][1],
    ),
    "BOON walls x-y": (lambda: BoundaryCorrectedFNO(FNOS["FNOxy"][0](), WALLS), FNOS["FNOxy"][1]),
    "BOON walls x-y-t": (
        lambda: BoundaryCorrectedFNO(FNOS["FNOxyt"][0](), WALLS),
        FNOS["FNOxyt"][1],
    ),
}


def _name(operator):
    """The class whose input the message names: the FNO, also inside BOON."""
    return type(getattr(operator, "fno", operator)).__name__


# --- Constructors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FNO1d(0, 1, 3, 3), "in_channels must be >= 1, got 0"),
        (lambda: FNO1d(1, 0, 3, 3), "out_channels must be >= 1, got 0"),
        (lambda: FNO1d(1, 1, 0, 3), "width must be >= 1, got 0"),
        (lambda: FNO1d(1, 1, 3, 0), "modes must be >= 1, got 0"),
        (lambda: FNO1d(1, 1, 3, 3, num_layers=0), "num_layers must be >= 1, got 0"),
        (lambda: FNO1d(1, 1, 3, 3, projection_width=0), "projection_width must be >= 1, got 0"),
        (lambda: FNOxt(1, 1, 3, 2, 2, padding=-1), "padding must be >= 0, got -1"),
        (lambda: FNOxt(1, 1, 3, 2, 0), "modes_t must be >= 1, got 0"),
        (lambda: FNOxy(1, 1, 3, 2, 0), "modes_y must be >= 1, got 0"),
        (lambda: FNOxyt(1, 1, 3, 0, 2, 2), "modes_x must be >= 1, got 0"),
        (lambda: SpectralConv(1, 0, (2,)), "out_channels must be >= 1, got 0"),
        (lambda: SpectralConv1d(1, 1, 0), "modes of axis 0 must be >= 1, got 0"),
    ],
)
def test_a_count_below_its_least_is_a_named_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FNO1d(1, 1, 2.5, 3), "width must be an integer, got 2.5"),
        (lambda: FNO1d(1, 1, 3, 3, num_layers=True), "num_layers must be an integer, got True"),
        (lambda: FNOxy(1, 1, 3, 2.0, 2), "modes_x must be an integer, got 2.0"),
        (lambda: SpectralConv(1, 1, (2, 1.5)), "modes of axis 1 must be an integer, got 1.5"),
    ],
)
def test_a_count_that_is_no_integer_is_a_named_error(make, message):
    with pytest.raises(TypeError, match=message):
        make()


@pytest.mark.parametrize(
    ("make", "name", "value"),
    [
        (lambda: FNO1d(1, 1, 3, 3, domain=(0.0, math.inf)), "domain", "(0.0, inf)"),
        (lambda: FNOxt(1, 1, 3, 2, 2, t_domain=(0.0, math.nan)), "t_domain", "(0.0, nan)"),
        (lambda: FNOxy(1, 1, 3, 2, 2, y_domain=(1.0, 0.0)), "y_domain", "(1.0, 0.0)"),
    ],
)
def test_a_domain_that_is_no_finite_interval_is_a_named_error(make, name, value):
    message = f"{name} must be a finite interval (low, high), low < high, got {value}"
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_a_domain_that_is_no_pair_of_numbers_is_a_named_error():
    with pytest.raises(TypeError, match=r"x_domain must be a pair of numbers \(low, high\)"):
        FNOxy(1, 1, 3, 2, 2, x_domain=(0.0, 0.5, 1.0))


# --- Forward passes ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", OPERATORS)
def test_an_input_of_another_dtype_than_the_weights_is_a_named_error(kind):
    make, shape = OPERATORS[kind]
    operator = make()
    with pytest.raises(
        TypeError,
        match=rf"{_name(operator)} input must be float32 like the model's weights, got float64; "
        r"convert it with \.to\(torch\.float32\), or the model with \.to\(torch\.float64\)",
    ):
        operator(torch.randn(shape, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"must be float32 .* got int64; convert it with .*\)$"):
        operator(torch.ones(shape, dtype=torch.int64))  # no advice to make the model integer


@pytest.mark.parametrize("kind", OPERATORS)
def test_an_input_that_is_not_finite_is_a_named_error(kind):
    make, shape = OPERATORS[kind]
    operator = make()
    x = torch.randn(shape)
    x.view(-1)[1] = math.nan
    x.view(-1)[-1] = -math.inf
    with pytest.raises(
        ValueError,
        match=rf"{_name(operator)} input is not finite: 2 of its {x.numel()} entries are NaN or "
        "infinite",
    ):
        operator(x)


@pytest.mark.parametrize("kind", OPERATORS)
def test_an_input_on_another_device_than_the_weights_is_a_named_error(kind):
    make, shape = OPERATORS[kind]
    operator = make()
    with pytest.raises(
        ValueError,
        match=rf"{_name(operator)} input is on meta but the model's weights are on cpu; "
        r"move it with \.to\('cpu'\)",
    ):
        operator(torch.empty(shape, device="meta"))  # a second device on any machine


@pytest.mark.parametrize("kind", FNOS)
def test_an_input_that_is_no_tensor_is_a_named_error(kind):
    make, shape = FNOS[kind]
    with pytest.raises(TypeError, match=f"{kind} input must be a torch.Tensor, got list"):
        make()(torch.zeros(shape).tolist())


@pytest.mark.parametrize("kind", FNOS)
def test_an_input_of_the_wrong_layout_names_the_model(kind):
    make, shape = FNOS[kind]
    with pytest.raises(ValueError, match=rf"{kind} input must have shape \(batch, 1, n"):
        make()(torch.zeros(shape[0], 2, *shape[2:]))


@pytest.mark.parametrize(
    ("kind", "shape", "message"),
    [
        ("FNO1d", (2, 1, 3), "FNO1d input has 3 points, but 3 modes need at least 4 points"),
        (
            "FNOxt",  # padding 2 on t: 1 + 2 points there
            (2, 1, 3, 1),
            r"FNOxt input has 3 x 3 points \(1 \+ padding 2 on the last axis\), but 2 x 2 modes "
            "need at least 4 x 2 points",
        ),
        (
            "FNOxy",
            (2, 1, 6, 1),
            "FNOxy input has 6 x 1 points, but 2 x 2 modes need at least 4 x 2",
        ),
    ],
)
def test_too_few_points_for_the_kept_modes_is_a_named_error(kind, shape, message):
    # A non-last axis needs 2 m points (the positive and negative modes), the last 2 m - 2
    # (rfft of n points has n // 2 + 1 frequencies).
    with pytest.raises(ValueError, match=message):
        FNOS[kind][0]()(torch.zeros(shape))


def test_a_spectral_conv_needs_at_least_one_point_even_for_one_mode():
    # 2 m - 2 is 0 for one mode, but rfft of no points has no frequency at all.
    with pytest.raises(ValueError, match="1 modes need at least 1 points, got 0"):
        SpectralConv1d(1, 1, 1)(torch.zeros(2, 1, 0))


# --- The empty batch: valid input --------------------------------------------------------------


@pytest.mark.parametrize("kind", list(OPERATORS))
def test_an_empty_batch_gives_an_empty_output_and_a_backward_pass(kind):
    make, shape = OPERATORS[kind]
    operator = make()
    x = torch.zeros(0, *shape[1:], requires_grad=True)
    output = operator(x)
    assert output.shape == (0, 1, *shape[2:])
    output.sum().backward()
    assert x.grad.shape == x.shape
    # Every weight, the spectral ones included, is in the graph: its gradient is zero, not None.
    for name, parameter in operator.named_parameters():
        assert parameter.grad is not None, name
        assert not parameter.grad.any(), name


# --- The ANP -----------------------------------------------------------------------------------


@pytest.mark.parametrize("argument", ["context_x", "context_y", "target_x", "target_y"])
def test_an_anp_input_of_another_dtype_than_the_weights_is_a_named_error(argument):
    model = AttentiveNeuralProcess(hidden_dim=4, latent_dim=2, num_heads=1, decoder_layers=1)
    inputs = {
        "context_x": torch.randn(2, 3, 2),
        "context_y": torch.randn(2, 3, 1),
        "target_x": torch.randn(2, 4, 2),
        "target_y": torch.randn(2, 4, 1),
    }
    inputs[argument] = inputs[argument].double()
    with pytest.raises(
        TypeError,
        match=rf"{argument} must be float32 like the model's weights, got float64; "
        r"convert it with \.to\(torch\.float32\)",
    ):
        model(**inputs)
