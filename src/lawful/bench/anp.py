"""The ANP's training step against the textbook ANP, the published layout computed as printed.

:func:`textbook_elbo_loss` is the BASELINE of the row "ANP vs textbook ANP training step", not
library code: the ELBO of an :class:`~lawful.models.anp.AttentiveNeuralProcess` computed from
the same weights the way the published model's code lays it out (our own code, not a copy):
every linear layer applied to its materialised input, the attention block's final layer to the
concatenation ``[query, attention]``, the decoder's first layer to ``[r, z, projected target]``
repeated at every target point. lawful's model computes the same numbers, to rounding, with the
liftings of raw coordinates folded into the layers that read them and the decoder's first
layer split by what varies per point and per function (lawful.models.anp).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor
from torch.distributions import Normal
from torch.nn import functional

from lawful.bench._timing import adam_step, alternating_steps
from lawful.models.anp import MIN_DECODER_STD, ANPOutput, AttentiveNeuralProcess

__all__ = ["anp_step_ratio", "anp_task", "textbook_elbo_loss"]

ANPTask = tuple[Tensor, Tensor, Tensor, Tensor]  # context_x, context_y, target_x, target_y


def _attend(block: torch.nn.Module, key: Tensor, value: Tensor, query: Tensor) -> Tensor:
    """One attention block as printed: (batch, queries, hidden)."""
    split_heads = "b n (h d) -> b h n d"
    key_heads, value_heads, query_heads = (
        rearrange(layer(features), split_heads, h=block.num_heads)
        for layer, features in (
            (block.encoder_key, key),
            (block.encoder_value, value),
            (block.encoder_query, query),
        )
    )
    attended = functional.scaled_dot_product_attention(query_heads, key_heads, value_heads)
    attended = rearrange(attended, "b h n d -> b n (h d)")
    return block.layer_norm(block.final_linear(torch.cat([query, attended], dim=-1)) + query)


def _latent(encoder: torch.nn.Module, x: Tensor, y: Tensor) -> Normal:
    hidden = encoder.input_projection(torch.cat([x, y], dim=-1))  # (batch, points, hidden)
    for block in encoder.self_attentions:
        hidden = _attend(block, hidden, hidden, hidden)
    pooled = torch.relu(encoder.penultimate_layer(hidden.mean(dim=1)))  # (batch, hidden)
    return Normal(encoder.mu(pooled), torch.exp(0.5 * encoder.log_sigma(pooled)))


def _deterministic(
    encoder: torch.nn.Module, context_x: Tensor, context_y: Tensor, target_x: Tensor
) -> Tensor:
    values = encoder.input_projection(torch.cat([context_x, context_y], dim=-1))
    for block in encoder.self_attentions:
        values = _attend(block, values, values, values)
    keys = encoder.context_projection(context_x)
    query = encoder.target_projection(target_x)
    for block in encoder.cross_attentions:
        query = _attend(block, keys, values, query)
    return query  # (batch, targets, hidden)


def _decode(
    decoder: torch.nn.Module, representation: Tensor, latent: Tensor, target_x: Tensor
) -> Normal:
    """``latent`` (samples, batch, latent) -> Gaussians (samples, batch, targets, outputs)."""
    samples, targets = latent.shape[0], target_x.shape[1]
    hidden = torch.cat(
        [
            representation.expand(samples, -1, -1, -1),
            latent[:, :, None, :].expand(-1, -1, targets, -1),
            decoder.target_projection(target_x).expand(samples, -1, -1, -1),
        ],
        dim=-1,
    )  # (samples, batch, targets, 2 hidden + latent)
    for linear in decoder.linears:
        hidden = torch.relu(linear(hidden))
    mean, raw_std = decoder.final_projection(hidden).split(decoder.output_dim, dim=-1)
    return Normal(mean, functional.softplus(raw_std) + MIN_DECODER_STD)


def textbook_elbo_loss(model: AttentiveNeuralProcess, *task: Tensor) -> Tensor:
    """``model.elbo_loss(context_x, context_y, target_x, target_y)`` with the forward pass
    computed as printed (BASELINE), the loss itself the model's
    (:meth:`~lawful.models.anp.ANPOutput.negative_elbo`): the same loss from the same weights
    and the same latent draw, to rounding."""
    context_x, context_y, target_x, target_y = task
    prior = _latent(model.latent_encoder, context_x, context_y)
    posterior = _latent(
        model.latent_encoder,
        torch.cat([context_x, target_x], dim=1),
        torch.cat([context_y, target_y], dim=1),
    )
    latent = posterior.rsample((1,))  # (1, batch, latent)
    representation = _deterministic(model.deterministic_encoder, context_x, context_y, target_x)
    prediction = _decode(model.decoder, representation, latent, target_x)
    return ANPOutput.of_prediction(prediction, prior, posterior).negative_elbo(target_y)


def anp_task(batch: int, num_context: int, num_targets: int, seed: int = 0) -> ANPTask:
    """Random (t, x) inputs in [0, 1)^2 and standard normal outputs (seed ``seed``)."""
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.rand(batch, num_context, 2, generator=generator),
        torch.randn(batch, num_context, 1, generator=generator),
        torch.rand(batch, num_targets, 2, generator=generator),
        torch.randn(batch, num_targets, 1, generator=generator),
    )


def anp_step_ratio(
    hidden: int,
    batch: int,
    num_points: int,
    repeats: int,
    warmup: int,
    device: str = "cpu",
) -> dict[str, float]:
    """Training steps of lawful's ANP and of the textbook ANP from the same weights, alternating
    (lawful.bench._timing.alternating_steps), on ``batch`` functions of ``num_points``
    context and as many target points."""
    torch.manual_seed(0)
    ours = AttentiveNeuralProcess(hidden_dim=hidden, latent_dim=hidden)
    baseline = AttentiveNeuralProcess(hidden_dim=hidden, latent_dim=hidden)
    baseline.load_state_dict(ours.state_dict())
    ours, baseline = ours.to(device), baseline.to(device)
    task = tuple(tensor.to(device) for tensor in anp_task(batch, num_points, num_points))
    return alternating_steps(
        adam_step(ours, lambda: ours.elbo_loss(*task)),
        adam_step(baseline, lambda: textbook_elbo_loss(baseline, *task)),
        device,
        repeats,
        warmup,
    )
