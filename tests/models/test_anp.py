"""Attentive neural process: behaviour of tiny models, and the published PME numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from lawful.models import AttentiveNeuralProcess, combine_samples, load_published_state_dict

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "probconserv-pme"


def tiny_anp(input_dim: int = 1) -> AttentiveNeuralProcess:
    torch.manual_seed(0)
    return AttentiveNeuralProcess(
        input_dim=input_dim,
        hidden_dim=16,
        latent_dim=8,
        num_heads=2,
        num_self_attention=1,
        num_cross_attention=2,
        decoder_layers=2,
    )


def sine_task(batch: int, points: int, seed: int) -> tuple[Tensor, Tensor]:
    """Random sines ``a sin(x + phase)``: inputs (batch, points, 1), outputs (batch, points, 1)."""
    generator = torch.Generator().manual_seed(seed)
    x = 6 * torch.rand(batch, points, 1, generator=generator) - 3
    amplitude = 0.5 + torch.rand(batch, 1, 1, generator=generator)
    phase = torch.rand(batch, 1, 1, generator=generator)
    return x, amplitude * torch.sin(x + phase)


def collapse_latent(model: AttentiveNeuralProcess) -> None:
    """Make the latent std ~1e-13, so every draw of z is its mean: predictions become repeatable."""
    with torch.no_grad():
        model.latent_encoder.log_sigma.linear_layer.weight.zero_()
        model.latent_encoder.log_sigma.linear_layer.bias.fill_(-60.0)


def test_elbo_loss_decreases_when_training_on_a_fixed_task() -> None:
    model = tiny_anp()
    context_x, context_y = sine_task(batch=8, points=10, seed=1)
    target_x, target_y = sine_task(batch=8, points=20, seed=1)  # same functions, more points
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss() -> Tensor:
        return model.elbo_loss(context_x, context_y, target_x, target_y)

    torch.manual_seed(2)
    initial = loss().item()
    for _ in range(40):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    torch.manual_seed(2)
    final = loss().item()
    assert final < initial - 0.5, (initial, final)


def test_elbo_loss_is_likelihood_plus_kl_per_target() -> None:
    model = tiny_anp()
    context_x, context_y = sine_task(batch=3, points=5, seed=3)
    target_x, target_y = sine_task(batch=3, points=7, seed=3)
    torch.manual_seed(4)
    loss = model.elbo_loss(context_x, context_y, target_x, target_y)
    torch.manual_seed(4)  # the same draw of z
    output = model(context_x, context_y, target_x, target_y)
    assert output.posterior is not None
    negative_log_likelihood = -torch.distributions.Normal(output.mean[0], output.std[0]).log_prob(
        target_y[..., 0]
    )
    # KL(q || p) between diagonal Gaussians, written out, summed over latent dimensions.
    q, p = output.posterior, output.prior
    kl = 0.5 * (
        (q.scale / p.scale) ** 2
        + ((q.loc - p.loc) / p.scale) ** 2
        - 1
        + 2 * (p.scale / q.scale).log()
    ).sum(-1)
    torch.testing.assert_close(loss, negative_log_likelihood.mean() + kl.mean() / 7)


def test_prediction_is_invariant_to_the_order_of_context_points() -> None:
    model = tiny_anp()
    context_x, context_y = sine_task(batch=2, points=12, seed=5)
    target_x, _ = sine_task(batch=2, points=9, seed=6)
    shuffle = torch.randperm(12, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(8)
    mean, variance = model.predict(context_x, context_y, target_x, num_samples=3)
    torch.manual_seed(8)
    shuffled_mean, shuffled_variance = model.predict(
        context_x[:, shuffle], context_y[:, shuffle], target_x, num_samples=3
    )
    torch.testing.assert_close(shuffled_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(shuffled_variance, variance, rtol=1e-5, atol=1e-6)
    assert mean.std() > 0.01  # a non-trivial prediction


def test_batched_prediction_equals_one_function_at_a_time() -> None:
    model = tiny_anp()
    collapse_latent(model)
    context_x, context_y = sine_task(batch=4, points=10, seed=9)
    target_x, _ = sine_task(batch=4, points=6, seed=10)
    mean, variance = model.predict(context_x, context_y, target_x, num_samples=2)
    assert mean.shape == variance.shape == (2, 4, 6)
    for function in range(4):
        one = slice(function, function + 1)
        single_mean, single_variance = model.predict(
            context_x[one], context_y[one], target_x[one], num_samples=2
        )
        torch.testing.assert_close(single_mean, mean[:, one], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(single_variance, variance[:, one], rtol=1e-5, atol=1e-6)
    # Different functions get different predictions: the batch is not mixed up or broadcast.
    assert (mean[:, 0] - mean[:, 1]).abs().max() > 1e-3


def test_decoder_std_has_its_floor_and_multi_output_keeps_its_dimension() -> None:
    torch.manual_seed(0)
    model = AttentiveNeuralProcess(
        input_dim=1, output_dim=2, hidden_dim=8, latent_dim=4, num_heads=2
    )
    with torch.no_grad():  # raw std -> -inf: softplus gives 0, the floor 1e-3 remains
        model.decoder.final_projection.linear_layer.weight[2:].zero_()
        model.decoder.final_projection.linear_layer.bias[2:].fill_(-200.0)
    context_x, context_y = torch.zeros(1, 3, 1), torch.zeros(1, 3, 2)
    output = model(context_x, context_y, torch.zeros(1, 4, 1), num_samples=5)
    assert output.mean.shape == (5, 1, 4, 2)
    torch.testing.assert_close(output.std, torch.full((5, 1, 4, 2), 1e-3))


def test_combine_samples_is_the_mixture_mean_and_variance() -> None:
    mean = torch.tensor([[0.0, 1.0], [2.0, 1.0]])  # (samples=2, points=2)
    variance = torch.tensor([[1.0, 0.5], [3.0, 0.5]])
    combined_mean, combined_variance = combine_samples(mean, variance)
    torch.testing.assert_close(combined_mean, torch.tensor([1.0, 1.0]))
    # mean of variances (2, 0.5) + population variance of means (1, 0)
    torch.testing.assert_close(combined_variance, torch.tensor([3.0, 0.5]))


def test_published_state_dict_drops_wrapper_prefix_and_extra_entries() -> None:
    model = tiny_anp()
    wrapped = {f"anp.{key}": value for key, value in model.state_dict().items()}
    wrapped["log_constraint_precision_train"] = torch.tensor(2.0)
    unwrapped = load_published_state_dict(wrapped)
    assert unwrapped.keys() == model.state_dict().keys()
    fresh = tiny_anp()
    fresh.load_state_dict(unwrapped, strict=True)
    with pytest.raises(ValueError, match="no ANP weights"):
        load_published_state_dict({"log_constraint_precision_train": torch.tensor(2.0)})


def test_mismatched_shapes_are_named() -> None:
    model = tiny_anp()
    with pytest.raises(ValueError, match=r"context_x .* and context_y .* disagree"):
        model(torch.zeros(2, 5, 1), torch.zeros(2, 4, 1), torch.zeros(2, 3, 1))


def published_model(file_name: str) -> AttentiveNeuralProcess:
    if not REFERENCE.is_dir():
        pytest.skip(f"published ProbConserv checkpoints not found at {REFERENCE}")
    model = AttentiveNeuralProcess()
    state_dict = torch.load(REFERENCE / file_name, map_location="cpu", weights_only=True)
    model.load_state_dict(load_published_state_dict(state_dict), strict=True)
    return model.eval()


def pme_metrics_at_half_time(
    model: AttentiveNeuralProcess, function_indices: Tensor, num_samples: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-function MSE and LL at t = 0.5 on 201 points of [0, 1], and the degrees m."""
    tensors, params = torch.load(REFERENCE / "test.pt", map_location="cpu", weights_only=True)
    x = torch.linspace(0, 1, 201)
    target_x = torch.stack([torch.full_like(x, 0.5), x], dim=-1)  # (201, 2) as (t, x)
    squared_errors, log_likelihoods = [], []
    with torch.no_grad():
        for chunk in function_indices.split(25):
            sample_means, sample_variances = model.predict(
                tensors["input_contexts"][chunk],
                tensors["output_contexts"][chunk],
                target_x.expand(len(chunk), -1, -1),
                num_samples=num_samples,
            )
            mean, variance = combine_samples(sample_means, sample_variances)  # (chunk, 201)
            degree = params[chunk, :1]  # (chunk, 1)
            exact = (degree * torch.relu(0.5 - x)).pow(1 / degree)  # PME solution, (chunk, 201)
            squared_errors.append((mean - exact).square().mean(-1))
            normal = torch.distributions.Normal(mean, variance.sqrt())
            log_likelihoods.append(normal.log_prob(exact).mean(-1))
    return torch.cat(squared_errors), torch.cat(log_likelihoods), params[function_indices, 0]


# (file, m, MSE, LL) measured by the ProbConserv authors (shared/reference/README.md).
PUBLISHED_NUMBERS = [
    ("anp.pt", 1, 4.66e-05, 3.793),
    ("anp.pt", 3, 1.79e-04, 3.683),
    ("anp.pt", 6, 7.37e-04, 3.804),
    ("pinp.pt", 1, 8.41e-05, 3.338),
    ("pinp.pt", 3, 2.31e-04, 3.432),
    ("pinp.pt", 6, 6.57e-04, 3.293),
]


@pytest.mark.slow
@pytest.mark.parametrize("file_name", ["anp.pt", "pinp.pt"])
def test_published_checkpoint_reproduces_paper_numbers(file_name: str) -> None:
    model = published_model(file_name)
    torch.manual_seed(0)
    mse, ll, degree = pme_metrics_at_half_time(model, torch.arange(150), num_samples=100)
    for name, m, paper_mse, paper_ll in PUBLISHED_NUMBERS:
        if name != file_name:
            continue
        of_degree = degree == m
        assert int(of_degree.sum()) == 50
        assert mse[of_degree].mean().item() == pytest.approx(paper_mse, rel=0.1), m
        assert ll[of_degree].mean().item() == pytest.approx(paper_ll, abs=0.1), m


def test_published_checkpoints_load_and_predict_the_pme_front() -> None:
    """A fast stand-in for the slow reproduction: a few functions, few samples, loose bounds."""
    for file_name in ("anp.pt", "pinp.pt", "physnp.pt"):
        model = published_model(file_name)
        torch.manual_seed(0)
        few = torch.tensor([0, 1, 50, 51, 100, 101])  # two functions of each degree m = 1, 3, 6
        mse, ll, _ = pme_metrics_at_half_time(model, few, num_samples=10)
        assert mse.max() < 1.5e-3, (file_name, mse)
        assert ll.min() > 3.0, (file_name, ll)
