"""The models' linear layers on oneDNN: functional.linear's values and derivatives to rounding,
taken only where it pays (large float32 products on the CPU, oneDNN on)."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional
from torch.utils._python_dispatch import TorchDispatchMode

from lawful.bench.anp import anp_task
from lawful.models import _dense
from lawful.models._dense import MIN_ONEDNN_MULTIPLY_ADDS, linear
from lawful.models.anp import AttentiveNeuralProcess

needs_onednn = pytest.mark.skipif(
    not (torch.backends.mkldnn.is_available() and torch.backends.mkl.is_available()),
    reason="this PyTorch has no oneDNN, or its BLAS is not MKL",
)


class _Products(TorchDispatchMode):
    """The products that reach dispatch: convolutions (oneDNN) and BLAS calls."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in ("convolution", "mm", "addmm", "bmm", "linear"):
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


def _operands(points: int, features: int, out: int, dtype=torch.float32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(points // 8, 8, features, generator=generator, dtype=dtype)
    weight = torch.randn(out, features, generator=generator, dtype=dtype) / features**0.5
    bias = torch.randn(out, generator=generator, dtype=dtype)
    return inputs, weight, bias


# 2,048 points x 96 x 112 multiply-adds: above the threshold.
LARGE = (2048, 96, 112)


def test_the_large_sizes_are_above_the_threshold_and_the_small_below():
    points, features, out = LARGE
    assert points * features * out >= MIN_ONEDNN_MULTIPLY_ADDS
    assert MIN_ONEDNN_MULTIPLY_ADDS > 64 * 16 * 16


@needs_onednn
@pytest.mark.parametrize("with_bias", [True, False])
def test_a_large_float32_product_is_a_convolution_with_linears_values(with_bias):
    inputs, weight, bias = _operands(*LARGE)
    bias = bias if with_bias else None
    with _Products() as products:
        result = linear(inputs, weight, bias)
    assert products.seen == ["convolution"]
    expected = functional.linear(
        inputs.double(), weight.double(), None if bias is None else bias.double()
    )
    assert result.shape == (LARGE[0] // 8, 8, LARGE[2]) and result.dtype == torch.float32
    assert result.is_contiguous()
    # float32 rounding of sums of 96 terms of size ~1: within a few ulps of the exact value.
    torch.testing.assert_close(result.double(), expected, rtol=0, atol=2e-5)


@needs_onednn
def test_its_gradients_and_second_derivatives_are_linears():
    """Gradients of all three operands, and a derivative of the input gradient (as SoftC's
    residual takes), against functional.linear in float64."""
    float32 = [t.requires_grad_() for t in _operands(*LARGE)]
    float64 = [t.detach().double().requires_grad_() for t in float32]
    upstream = torch.randn(LARGE[0] // 8, 8, LARGE[2], generator=torch.Generator().manual_seed(1))
    results = []
    for (inputs, weight, bias), product in ((float32, linear), (float64, functional.linear)):
        output = product(inputs, weight, bias)
        (input_gradient,) = torch.autograd.grad(
            (output * upstream.to(output.dtype)).sum(), inputs, create_graph=True
        )
        # d/dW of sum(dL/dx * x) = upstream^T x: a term only the double backward produces
        # (the output's own term gives the bias a gradient).
        ((input_gradient * inputs).sum() + output.square().sum()).backward()
        results.append([input_gradient, inputs.grad, weight.grad, bias.grad])
    for ours, exact in zip(*results, strict=True):
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours.double(), exact, rtol=1e-5, atol=1e-4)


@needs_onednn
def test_the_product_and_its_gradients_repeat_to_the_bit():
    inputs, weight, bias = (t.requires_grad_() for t in _operands(*LARGE))
    runs = []
    for _ in range(2):
        for tensor in (inputs, weight, bias):
            tensor.grad = None
        output = linear(inputs, weight, bias)
        output.square().sum().backward()
        runs.append([output.detach(), inputs.grad, weight.grad, bias.grad])
    for first, second in zip(*runs, strict=True):
        assert torch.equal(first, second)


@pytest.mark.parametrize(
    "case",
    ["small", "float64", "onednn off", "no MKL"],
)
def test_elsewhere_it_is_functional_linear_to_the_bit(case, monkeypatch):
    sizes = (64, 16, 16) if case == "small" else LARGE
    dtype = torch.float64 if case == "float64" else torch.float32
    inputs, weight, bias = _operands(*sizes, dtype=dtype)
    if case == "onednn off":
        monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    if case == "no MKL":  # another BLAS (ARM builds): the route is unmeasured there
        monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: False)
    with _Products() as products:
        result = linear(inputs, weight, bias)
    assert "convolution" not in products.seen
    assert torch.equal(result, functional.linear(inputs, weight, bias))


@needs_onednn
def test_a_strided_input_gives_the_contiguous_inputs_result():
    inputs, weight, bias = _operands(*LARGE)
    strided = inputs.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    assert not strided.is_contiguous()
    assert torch.equal(linear(strided, weight, bias), linear(inputs, weight, bias))


@needs_onednn
def test_the_anp_takes_it_and_gives_the_same_loss_and_gradients_to_rounding(monkeypatch):
    """The published sizes' ANP (hidden 128) in float32, with and without the oneDNN route:
    the same loss and gradients to float32 rounding, from the same weights and latent draw."""
    torch.manual_seed(0)
    model = AttentiveNeuralProcess()
    task = anp_task(batch=16, num_context=100, num_targets=100)
    results = []
    for threshold in (MIN_ONEDNN_MULTIPLY_ADDS, 2**62):
        monkeypatch.setattr(_dense, "MIN_ONEDNN_MULTIPLY_ADDS", threshold)
        model.zero_grad()
        torch.manual_seed(1)
        with _Products() as products:
            loss = model.elbo_loss(*task)
            loss.backward()
        grads = [parameter.grad.clone() for parameter in model.parameters()]
        results.append((products.seen.count("convolution"), loss.detach(), grads))
    (convolutions, loss, grads), (no_convolutions, reference_loss, reference_grads) = results
    # The 128-wide products over 1,600 points and more, the decoder's 384-wide layers.
    assert convolutions >= 20 and no_convolutions == 0
    torch.testing.assert_close(loss, reference_loss, rtol=1e-5, atol=0)
    for grad, reference in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(grad, reference, rtol=1e-3, atol=1e-5)


def test_mismatched_features_get_functional_linears_error():
    inputs, weight, bias = _operands(*LARGE)
    with pytest.raises(RuntimeError) as ours:
        linear(inputs[..., :-1], weight, bias)
    with pytest.raises(RuntimeError) as reference:
        functional.linear(inputs[..., :-1], weight, bias)
    assert str(ours.value) == str(reference.value)
