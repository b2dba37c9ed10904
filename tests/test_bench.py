"""lawful bench's baselines and measurements: the textbook FNOs compute what lawful's FNOs
compute, with as many parameters; the peak-memory tracker counts known allocations; rows that
cannot run say why. No timing is asserted (the whole quick bench runs in tests/test_cli.py)."""

import sys

import pytest
import torch

from lawful.bench import (
    bench_anp_training_step,
    bench_fno_training_step,
    bench_mixed_precision_step,
    format_table,
)
from lawful.bench._timing import median_seconds, synchronizer
from lawful.bench.anp import anp_task, textbook_elbo_loss
from lawful.bench.operators import (
    neuralop_fno,
    our_fno,
    peak_allocated_bytes,
    peak_training_step_bytes,
    textbook_fno,
)
from lawful.bench.textbook import TextbookFNO1d, TextbookFNO2d, TextbookFNO3d, real_parameter_count
from lawful.models.anp import AttentiveNeuralProcess

FLOAT32 = 4  # bytes


def _copy_weights(ours, textbook):
    """Load lawful's FNO weights into the textbook FNO of the same sizes."""
    dims = ours.spatial_ndim
    state = {
        "fc0.weight": ours.lifting.weight,
        "fc0.bias": ours.lifting.bias,
        "fc1.weight": ours.projection_hidden.weight,
        "fc1.bias": ours.projection_hidden.bias,
        "fc2.weight": ours.projection_out.weight,
        "fc2.bias": ours.projection_out.bias,
    }
    for index, layer in enumerate(ours.layers):
        weight = torch.view_as_complex(layer.spectral.weight)  # (in, out, 2 m_0, ..., m_last)
        m = layer.spectral.n_modes
        if dims == 1:
            corners = [weight]
        elif dims == 2:  # non-negative, then negative x-frequencies
            corners = [weight[:, :, : m[0]], weight[:, :, m[0] :]]
        else:
            corners = [
                weight[:, :, : m[0], : m[1]],
                weight[:, :, m[0] :, : m[1]],
                weight[:, :, : m[0], m[1] :],
                weight[:, :, m[0] :, m[1] :],
            ]
        for corner, tensor in enumerate(corners, start=1):
            state[f"convs.{index}.weights{corner}"] = tensor
        pointwise = layer.pointwise.weight  # (out, in) -> (out, in, 1, ...)
        state[f"ws.{index}.weight"] = pointwise.reshape(*pointwise.shape, *(1,) * dims)
        state[f"ws.{index}.bias"] = layer.pointwise.bias
    textbook.load_state_dict({key: value.detach().clone() for key, value in state.items()})


@pytest.mark.parametrize(
    ("axes", "modes", "grid"),
    [("x", 4, (20,)), ("xy", 3, (10, 12)), ("xyt", 3, (8, 9, 7))],
)
def test_the_textbook_fno_computes_what_ours_does(axes, modes, grid):
    ours, textbook = our_fno(axes, 6, modes), textbook_fno(axes, 6, modes)
    _copy_weights(ours, textbook)
    x = torch.randn(3, 1, *grid)  # (batch, channels, *grid)
    theirs = textbook(x.movedim(1, -1).contiguous())  # channels last
    assert theirs.shape == (3, *grid, 1)
    torch.testing.assert_close(theirs.movedim(-1, 1), ours(x), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("axes", "width", "modes"), [("x", 64, 16), ("xy", 32, 12), ("xyt", 20, 8)]
)
def test_the_baselines_have_our_parameter_count(axes, width, modes):
    """At the benchmark's sizes: lawful's, the textbook's and neuraloperator's FNO have the same
    number of real parameters (a complex weight counts twice)."""
    ours = real_parameter_count(our_fno(axes, width, modes))
    assert real_parameter_count(textbook_fno(axes, width, modes)) == ours
    pytest.importorskip("neuralop")
    theirs = neuralop_fno(axes, width, modes)
    assert real_parameter_count(theirs) == ours
    # neuraloperator keeps the same modes: (width, width, 2 m, ..., m) complex weights per layer.
    kept = (*(2 * modes for _ in axes[:-1]), modes)
    assert tuple(theirs.fno_blocks.convs[0].weight.shape) == (width, width, *kept)


def test_textbook_fnos_with_padding_keep_the_shape_and_train():
    for model, shape in [
        (TextbookFNO1d(3, 5), (2, 11, 1)),
        (TextbookFNO2d(3, 2, 5, padding=2), (2, 9, 8, 1)),
        (TextbookFNO3d(2, 2, 3, 5, padding=3), (2, 6, 5, 7, 1)),
    ]:
        x, target = torch.randn(shape), torch.randn(shape)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        before = (model(x) - target).square().mean()
        before.backward()
        optimizer.step()
        assert model(x).shape == shape
        assert all(p.grad is not None for p in model.parameters())


def test_the_peak_counts_live_allocations():
    n = 1 << 18
    size = n * FLOAT32

    def one_at_a_time():
        a = torch.ones(n)
        del a
        b = torch.ones(n)
        del b

    def two_at_once():
        a = torch.ones(n)
        b = torch.ones(n)
        del a, b

    one = peak_allocated_bytes(one_at_a_time)
    assert size <= one < 2 * size  # the first block was freed before the second was taken
    assert 2 * size <= peak_allocated_bytes(two_at_once) < 3 * size
    # Freeing blocks allocated before the measurement does not lower the work's count, also
    # where the allocator reports that free (the block was allocated in an earlier profile).
    held = [torch.ones(n)]
    peak_allocated_bytes(lambda: held.append(torch.ones(n)))

    def free_two_then_take_two():
        held.clear()
        a = torch.ones(n)
        b = torch.ones(n)
        del a, b

    assert 2 * size <= peak_allocated_bytes(free_two_then_take_two) < 3 * size


def test_the_peak_of_a_training_step_holds_its_gradients_and_is_reproducible():
    model = our_fno("x", 8, 4)
    x, target = torch.randn(4, 1, 32), torch.randn(4, 1, 32)
    gradients = sum(p.numel() for p in model.parameters()) * FLOAT32
    activation = 4 * 8 * 32 * FLOAT32  # one (batch, width, x) field
    peak = peak_training_step_bytes(model, x, target)
    assert peak >= gradients + activation
    assert peak_training_step_bytes(model, x, target) == peak  # bytes, not time


def test_the_peak_of_a_forward_pass_holds_what_autograd_saves():
    """An independent count: the storages autograd saves for the backward (less the parameters
    and the input, which were there before) are all live at the end of the forward pass."""
    model = our_fno("xy", 6, 3)
    x = torch.randn(3, 1, 10, 8)
    before = {t.untyped_storage().data_ptr() for t in (x, *model.parameters())}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in before:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x)
    forward = peak_allocated_bytes(lambda: model(x))
    assert sum(saved.values()) <= forward


@pytest.mark.parametrize(
    "layers",
    [
        {},
        {"num_self_attention": 0, "num_cross_attention": 1, "decoder_layers": 0},
        {"num_self_attention": 1, "num_cross_attention": 0, "decoder_layers": 1},
    ],
)
def test_the_textbook_anp_computes_what_ours_does(layers):
    """Our ANP folds liftings into the layers that read them; the textbook ANP applies every
    layer to its materialised input. Same weights, same latent draw: the same loss and
    gradients, to float64 rounding (and the folds are exercised with and without each block)."""
    torch.manual_seed(0)
    model = AttentiveNeuralProcess(hidden_dim=16, latent_dim=8, **layers).double()
    task = tuple(tensor.double() for tensor in anp_task(batch=3, num_context=7, num_targets=5))
    results = []
    for loss in (AttentiveNeuralProcess.elbo_loss, textbook_elbo_loss):
        model.zero_grad()
        torch.manual_seed(1)  # the latent draw
        value = loss(model, *task)
        value.backward()
        # A weight no path reads (the keys' lifting without cross-attention) has no gradient.
        grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
        results.append((value, {name: grad.clone() for name, grad in grads.items()}))
    (ours, our_grads), (textbook, textbook_grads) = results
    torch.testing.assert_close(ours, textbook, rtol=1e-12, atol=0)
    assert our_grads.keys() == textbook_grads.keys()
    for name, grad in our_grads.items():
        torch.testing.assert_close(grad, textbook_grads[name], rtol=1e-9, atol=1e-12, msg=name)


def test_the_anp_row_times_both_steps_and_their_ratio():
    row = bench_anp_training_step(hidden=8, batch=2, num_points=6, repeats=3, warmup=1)
    assert row["ours_s"] > 0 and row["baseline_s"] > 0
    # A speed-up: the median of per-repeat baseline / ours, near the ratio of the medians.
    assert row["ratio"] == pytest.approx(row["baseline_s"] / row["ours_s"], rel=0.5)
    assert row["met"] == (row["ratio"] >= 1.5) and "textbook ANP" in row["name"]


def test_a_missing_neuraloperator_skips_its_rows(monkeypatch):
    monkeypatch.setitem(sys.modules, "neuralop", None)  # import neuralop raises ImportError
    monkeypatch.setitem(sys.modules, "neuralop.models", None)
    row = bench_fno_training_step("neuralop", "x", 4, 3, (16,), batch=2, repeats=1)
    assert row["skipped"] == "not installed"
    assert "ratio" not in row and "met" not in row
    assert "neuraloperator" in row["name"] and row["target"].startswith("<= ")
    assert "skipped: not installed" in format_table([row])


def test_a_textbook_row_reports_both_timings_and_their_ratio():
    row = bench_fno_training_step("textbook", "xy", 4, 3, (8, 6), batch=2, repeats=3)
    assert row["ours_s"] > 0 and row["baseline_s"] > 0
    # The median of per-repeat ratios is near the ratio of the medians (the steps alternate).
    assert row["ratio"] == pytest.approx(row["ours_s"] / row["baseline_s"], rel=0.5)
    assert row["met"] == (row["ratio"] <= float(row["target"].split("x")[0].removeprefix("<= ")))


def test_the_mixed_precision_row_times_a_bf16_step_against_a_float32_one(monkeypatch):
    autocast_dtypes = []
    real_autocast = torch.autocast

    def recording_autocast(device_type, dtype=None, enabled=True, **kwargs):
        autocast_dtypes.append(dtype if enabled else None)
        return real_autocast(device_type, dtype=dtype, enabled=enabled, **kwargs)

    monkeypatch.setattr(torch, "autocast", recording_autocast)
    row = bench_mixed_precision_step("x", 4, 3, (16,), batch=2, repeats=3)
    assert sorted(autocast_dtypes, key=str) == [None, torch.bfloat16]  # one step each way
    assert row["ours_s"] > 0 and row["baseline_s"] > 0
    assert row["ratio"] == pytest.approx(row["ours_s"] / row["baseline_s"], rel=0.5)
    assert row["met"] == (row["ratio"] <= 1) and "bf16 mixed vs float32" in row["name"]


def test_the_table_prints_seconds_bytes_and_skipped_rows():
    rows = [
        {
            "name": "a timing",
            "ours_s": 0.5,
            "baseline_s": 0.25,
            "ratio": 2.0,
            "target": "<= 1.3x the FNO",
            "met": False,
        },
        {
            "name": "a peak",
            "ours_bytes": 3 * 2**20,
            "baseline_bytes": 2 * 2**20,
            "ratio": 1.5,
            "target": "<= 1.1x the FNO",
            "met": False,
        },
        {"name": "a skipped one", "target": "<= 1.05x the X", "skipped": "not installed"},
    ]
    lines = format_table(rows).splitlines()
    assert "0.5000 s" in lines[1] and "0.2500 s" in lines[1] and "NOT met" in lines[1]
    assert "3.00 MiB" in lines[2] and "2.00 MiB" in lines[2] and "1.50" in lines[2]
    assert "skipped: not installed" in lines[3] and "<= 1.05x the X" in lines[3]


def test_timings_on_cuda_wait_for_the_device_and_on_the_cpu_do_not(monkeypatch):
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    synchronizer("cpu")()
    assert waited == []
    synchronizer("cuda:1")()
    assert waited == [torch.device("cuda:1")]
    # median_seconds waits after the warm-up and after every timed call.
    waited.clear()
    assert median_seconds(lambda: None, repeats=3, device="cuda") >= 0
    assert len(waited) == 4
