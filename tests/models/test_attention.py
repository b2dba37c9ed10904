"""The ANP's attention by lawful's native kernel: PyTorch's attention to float32 rounding,
forward and backward, on any layout the model makes; the same bits on any thread count; and
PyTorch's own kernel wherever the native one does not apply."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
from pathlib import Path

import pytest
import torch
from einops import rearrange
from torch.nn import functional
from torch.nn.attention import SDPBackend, sdpa_kernel

from lawful import native
from lawful.bench.anp import anp_task
from lawful.models import _attention
from lawful.models._attention import dot_product_attention
from lawful.models.anp import AttentiveNeuralProcess
from lawful.native import native_library

needs_native = pytest.mark.skipif(
    native_library() is None or not torch.backends.mkl.is_available(),
    reason="no native library built, or PyTorch's BLAS is not MKL",
)

# (batch, heads, queries, keys, head_dim): the ANP's heads (d = 32 at hidden 128, 16 at 64),
# and sizes off the kernel's vectors of 16 and blocks of 64 queries.
SHAPES = [
    (4, 4, 100, 100, 32),
    (2, 4, 200, 200, 16),
    (3, 2, 7, 5, 16),
    (2, 3, 130, 70, 20),
    (1, 1, 1, 1, 1),
    (2, 2, 65, 129, 48),
]


def _heads(shape, seed=0, magnitude=1.0):
    """Queries, keys and values as the ANP makes them: a head split of (batch, points, hidden),
    so strided views, in float64 (the reference) and float32 (the kernel's input)."""
    batch, heads, queries, keys, head_dim = shape
    generator = torch.Generator().manual_seed(seed)
    split = "b n (h d) -> b h n d"
    operands = [
        rearrange(
            magnitude * torch.randn(batch, points, heads * head_dim, generator=generator),
            split,
            h=heads,
        ).double()
        for points in (queries, keys, keys)
    ]
    upstream = torch.randn(batch, heads, queries, head_dim, generator=generator).double()
    return operands, upstream


def _value_and_gradients(attend, operands, upstream, dtype):
    leaves = [operand.detach().to(dtype).requires_grad_() for operand in operands]
    out = attend(*leaves)
    out.backward(upstream.to(dtype))
    return [out.detach(), *(leaf.grad for leaf in leaves)], out.grad_fn


@needs_native
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_the_kernel_gives_pytorchs_attention_and_gradients(shape):
    operands, upstream = _heads(shape)
    ours, grad_fn = _value_and_gradients(dot_product_attention, operands, upstream, torch.float32)
    assert type(grad_fn).__name__ == "_NativeAttentionBackward"
    exact, _ = _value_and_gradients(
        functional.scaled_dot_product_attention, operands, upstream, torch.float64
    )
    for name, value, reference in zip(("out", "dq", "dk", "dv"), ours, exact, strict=True):
        assert value.dtype == torch.float32 and value.shape == reference.shape, name
        torch.testing.assert_close(value.double(), reference, rtol=0, atol=2e-5, msg=name)


@needs_native
def test_sharp_softmaxes_stay_finite_and_exact():
    """Scores in the hundreds (queries and keys of size 10): the largest score is taken out
    before the exponential, and the weights far below it vanish instead of overflowing."""
    operands, upstream = _heads((2, 2, 50, 70, 32), magnitude=10.0)
    ours, _ = _value_and_gradients(dot_product_attention, operands, upstream, torch.float32)
    exact, _ = _value_and_gradients(
        functional.scaled_dot_product_attention, operands, upstream, torch.float64
    )
    for value, reference in zip(ours, exact, strict=True):
        assert torch.isfinite(value).all()
        scale = reference.abs().max().item()
        torch.testing.assert_close(value.double(), reference, rtol=0, atol=1e-4 * scale)


@needs_native
def test_the_result_is_the_same_to_the_bit_on_one_thread_and_on_two():
    operands, upstream = _heads((8, 4, 100, 100, 32))
    threads = torch.get_num_threads()
    runs = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            runs.append(
                _value_and_gradients(dot_product_attention, operands, upstream, torch.float32)[0]
            )
    finally:
        torch.set_num_threads(threads)
    for first, second in zip(*runs, strict=True):
        assert torch.equal(first, second)


@needs_native
def test_its_backward_refuses_to_be_differentiated_again():
    operands, _ = _heads((1, 2, 6, 6, 16))
    query, key, value = (operand.float().requires_grad_() for operand in operands)
    (gradient,) = torch.autograd.grad(
        dot_product_attention(query, key, value).square().sum(), query, create_graph=True
    )
    with pytest.raises(RuntimeError, match="once_differentiable"):
        gradient.sum().backward()


PYTORCH_CASES = [
    pytest.param({"dtype": torch.float64}, id="float64"),
    pytest.param({"context": lambda: sdpa_kernel(SDPBackend.MATH)}, id="math kernel selected"),
    pytest.param({"context": lambda: torch.autocast("cpu", dtype=torch.bfloat16)}, id="autocast"),
    pytest.param({"library": None}, id="no native library"),
    pytest.param({"no mkl": True}, id="no MKL"),
]


@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param(((2, 2, 9, 16), (2, 2, 11, 16), (2, 2, 11, 24)), id="values of another size"),
        pytest.param(((2, 2, 9, 16), (1, 2, 11, 16), (1, 2, 11, 16)), id="broadcast batch"),
    ],
)
def test_shapes_the_kernel_does_not_take_go_to_pytorch(sizes):
    """PyTorch's attention allows these; the kernel, which reads one (batch, heads) grid and
    one head size, hands them over instead of reading past its operands."""
    generator = torch.Generator().manual_seed(4)
    query, key, value = (torch.randn(*size, generator=generator) for size in sizes)
    ours = dot_product_attention(query, key, value)
    assert torch.equal(ours, functional.scaled_dot_product_attention(query, key, value))


@pytest.mark.parametrize("case", PYTORCH_CASES)
def test_elsewhere_it_is_pytorchs_attention_to_the_bit(case, monkeypatch):
    if "library" in case:
        monkeypatch.setattr(_attention, "native_library", lambda: None)
    if "no mkl" in case:  # another BLAS (ARM builds): PyTorch's kernel was not measured there
        monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: False)
    dtype = case.get("dtype", torch.float32)
    operands, _ = _heads((2, 2, 9, 11, 16))
    query, key, value = (operand.to(dtype) for operand in operands)
    context = case.get("context", torch.enable_grad)
    with context():
        ours = dot_product_attention(query, key, value)
        reference = functional.scaled_dot_product_attention(query, key, value)
    assert torch.equal(ours, reference)


@needs_native
def test_the_anp_gives_the_same_loss_and_gradients_with_either_kernel(monkeypatch):
    torch.manual_seed(0)
    model = AttentiveNeuralProcess(hidden_dim=32, latent_dim=16)
    task = anp_task(batch=4, num_context=30, num_targets=40)
    results = []
    for library in (native_library, lambda: None):
        monkeypatch.setattr(_attention, "native_library", library)
        model.zero_grad()
        torch.manual_seed(1)  # the latent draw
        loss = model.elbo_loss(*task)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss, grads), (reference_loss, reference_grads) = results
    torch.testing.assert_close(loss, reference_loss, rtol=1e-5, atol=0)
    for grad, reference in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(grad, reference, rtol=1e-3, atol=1e-5)


@needs_native
def test_the_weights_are_the_softmax_to_a_few_float32_roundings():
    """With the values the identity, each output row is its weights: the exponential and the
    normalisation against float64 softmax, relative to each weight (a tighter check than
    through the sums of the values). Scores of order 1 / 2, so that their own rounding stays
    below the exponential's error bound while e^x is still taken over its whole reduced range."""
    generator = torch.Generator().manual_seed(3)
    query = 0.5 * torch.randn(2, 3, 40, 32, generator=generator)
    key = 0.5 * torch.randn(2, 3, 32, 32, generator=generator)  # as many keys as features
    value = torch.eye(32).expand(2, 3, 32, 32)
    weights = dot_product_attention(query, key, value)  # (2, 3, 40, 32)
    exact = torch.softmax(query.double() @ key.double().transpose(-1, -2) / 32**0.5, dim=-1)
    torch.testing.assert_close(weights.double(), exact, rtol=4e-7, atol=1e-12)


@needs_native
def test_a_nan_spreads_as_in_pytorchs_attention():
    """A NaN in one key reaches every score of its head, so every output of that head is NaN
    (as PyTorch's), and no other head is touched."""
    operands, _ = _heads((2, 2, 20, 24, 32))
    query, key, value = (operand.float() for operand in operands)
    key = key.clone()
    key[1, 0, 5, 3] = float("nan")
    ours = dot_product_attention(query, key, value)
    reference = functional.scaled_dot_product_attention(query, key, value)
    assert torch.equal(ours.isnan(), reference.isnan())
    assert ours[1, 0].isnan().all() and not ours[0].isnan().any() and not ours[1, 1].isnan().any()


def _one_instruction_set_build(directory, target: str):
    """attention.c built alone for one instruction set (``target`` a GCC target attribute, or
    "" for the compiler's baseline), loaded with its two entry points declared."""
    library = directory / f"attention-{target or 'baseline'}.so"
    attribute = f'__attribute__((target("{target}")))' if target else ""
    subprocess.run(
        [
            os.environ.get("CC", "cc"),
            *native._FLAGS,
            f"-DPER_CPU={attribute}",
            str(Path(native.__file__).with_name("attention.c")),
            "-o",
            str(library),
            *native._LIBRARIES,
        ],
        check=True,
        capture_output=True,
    )
    loaded = ctypes.CDLL(str(library))
    pointer, integer = ctypes.c_void_p, ctypes.c_int
    loaded.lawful_attention_forward.argtypes = [pointer] * 6 + [integer]
    loaded.lawful_attention_forward.restype = integer
    loaded.lawful_attention_backward.argtypes = [pointer] * 10 + [integer]
    loaded.lawful_attention_backward.restype = integer
    return loaded


@needs_native
@pytest.mark.skipif(platform.machine() != "x86_64", reason="instruction sets of x86-64")
def test_every_instruction_set_gives_the_same_bits(tmp_path, monkeypatch):
    """The same operations in the same order in every clone: the library the CPU chose and
    builds for AVX2 and for the baseline alone give the same outputs and gradients to the bit
    (so results do not depend on which vector instructions a machine has)."""
    has_avx2 = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    targets = ["", "avx2"] if has_avx2 else [""]
    libraries = [native_library()] + [_one_instruction_set_build(tmp_path, t) for t in targets]
    operands, upstream = _heads((4, 3, 100, 70, 32))
    query, key, value = (operand.float() for operand in operands)
    runs = []
    for library in libraries:
        monkeypatch.setattr(native, "native_library", lambda library=library: library)
        out, lse = native.attention_forward(query, key, value, 32**-0.5)
        gradients = native.attention_backward(
            query, key, value, out, upstream.float(), lse, 32**-0.5
        )
        runs.append([out, lse, *gradients])
    for run in runs[1:]:
        for chosen, alone in zip(runs[0], run, strict=True):
            assert torch.equal(chosen, alone)


@needs_native
def test_the_backward_refuses_a_strided_log_sum_exp():
    """The kernel reads lse as (batch, heads, queries) in order; a strided one is refused, not
    misread."""
    operands, upstream = _heads((2, 2, 8, 8, 16))
    query, key, value = (operand.float() for operand in operands)
    out, lse = native.attention_forward(query, key, value, 0.25)
    strided = lse.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    with pytest.raises(ValueError, match="contiguous"):
        native.attention_backward(query, key, value, out, upstream.float(), strided, 0.25)
