"""Attentive neural process (ANP), the probabilistic black box of ProbConserv.

Kim et al., "Attentive Neural Processes" (ICLR 2019), in the variant the ProbConserv authors
trained (Hansen et al., ICML 2023): a latent path (self-attention, mean over points, Gaussian over
a global latent ``z``), a deterministic path (self-attention over the context, then
cross-attention from the targets), and an MLP decoder giving a Gaussian per target point.

Submodule names follow the published state dicts (``latent_encoder.self_attentions.0.
encoder_key.linear_layer.weight``, ...), so the checkpoints in shared/reference load with
``strict=True`` (through :func:`load_published_state_dict` for ``pinp.pt`` and ``physnp.pt``).
The published model also had dropout (p = 0.1) on the attention weights and before the residual
add while training; it holds no weights and is not reproduced here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.distributions import Normal, kl_divergence
from torch.nn import functional

from lawful.beliefs import GaussianBelief
from lawful.models._attention import dot_product_attention
from lawful.models._dense import linear

__all__ = [
    "ANPOutput",
    "AttentiveNeuralProcess",
    "combine_samples",
    "load_published_state_dict",
]

# Floor on the decoder's standard deviation, as in the published model.
MIN_DECODER_STD = 1e-3


class _Linear(nn.Module):
    """``nn.Linear`` one level down, so that state-dict keys read ``<name>.linear_layer.weight``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(in_features, out_features, bias=bias)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.linear_layer(inputs)


class _Projected:
    """``projection(inputs)`` left unevaluated: coordinates of a few features lifted to ``hidden``.

    The model lifts its raw inputs (2 or 3 numbers per point) to ``hidden`` features by a linear
    layer and applies more linear layers to the lifted points. Two affine maps compose into one,
    ``W (P u + p) + b = (W P) u + (W p + b)``, so :meth:`through` costs points x few x out
    instead of points x hidden x out (the folded weight ``W P`` is formed once per call, out x
    hidden x few). Equal to applying the layers one after the other, to rounding.
    """

    def __init__(self, inputs: Tensor, projection: _Linear) -> None:
        self.inputs = inputs  # (..., few)
        self.projection = projection.linear_layer

    def value(self) -> Tensor:
        """The lifted points themselves, (..., hidden)."""
        return self.projection(self.inputs)

    def through(self, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        """``functional.linear(self.value(), weight, bias)``, by the folded weight: (..., out)."""
        folded_bias = weight @ self.projection.bias  # (out,)
        if bias is not None:
            folded_bias = folded_bias + bias
        return functional.linear(self.inputs, weight @ self.projection.weight, folded_bias)


def _value(features: Tensor | _Projected) -> Tensor:
    return features.value() if isinstance(features, _Projected) else features


def _linear(features: Tensor | _Projected, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """:func:`~lawful.models._dense.linear` that folds into lifted inputs (:class:`_Projected`)."""
    if isinstance(features, _Projected):
        return features.through(weight, bias)
    return linear(features, weight, bias)


class _AttentionBlock(nn.Module):
    """Multi-head attention followed by ``LayerNorm(query + Linear([query, attention]))``.

    Keys, values and queries may be lifted inputs (:class:`_Projected`): the layers that read
    them then fold into the lifting.
    """

    def __init__(self, hidden_dim: int, num_heads: int) -> None:
        super().__init__()
        if hidden_dim % num_heads != 0:
            raise ValueError(
                f"hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})"
            )
        self.num_heads = num_heads
        self.encoder_key = _Linear(hidden_dim, hidden_dim, bias=False)
        self.encoder_value = _Linear(hidden_dim, hidden_dim, bias=False)
        self.encoder_query = _Linear(hidden_dim, hidden_dim, bias=False)
        self.final_linear = _Linear(2 * hidden_dim, hidden_dim)
        self.layer_norm = nn.LayerNorm(hidden_dim)

    def forward(
        self,
        key: Tensor | _Projected,
        value: Tensor | _Projected,
        query: Tensor | _Projected,
    ) -> Tensor:
        """``key``, ``value``: (batch, keys, hidden); ``query``: (batch, queries, hidden)."""
        split_heads = "b n (h d) -> b h n d"
        key_heads, value_heads, query_heads = (
            rearrange(_linear(features, layer.linear_layer.weight), split_heads, h=self.num_heads)
            for features, layer in (
                (key, self.encoder_key),
                (value, self.encoder_value),
                (query, self.encoder_query),
            )
        )
        # softmax(Q K^T / sqrt(head_dim)) V per head (lawful.models._attention).
        attended = dot_product_attention(
            query_heads, key_heads, value_heads
        )  # (batch, heads, queries, head_dim)
        attended = rearrange(attended, "b h n d -> b n (h d)")  # (batch, queries, hidden)
        # The final layer reads [query, attended] (the query first, as the published weights
        # expect), taken as two products so that a lifted query folds.
        final = self.final_linear.linear_layer
        query_weight, attended_weight = final.weight.split(attended.shape[-1], dim=1)
        mixed = _linear(query, query_weight, final.bias) + linear(attended, attended_weight)
        return self.layer_norm(mixed + _value(query))  # (batch, queries, hidden)


class _LatentEncoder(nn.Module):
    """Context points -> Normal over the global latent ``z``, shape (batch, latent)."""

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        hidden_dim: int,
        latent_dim: int,
        num_heads: int,
        num_self_attention: int,
    ) -> None:
        super().__init__()
        self.input_projection = _Linear(input_dim + output_dim, hidden_dim)
        self.self_attentions = nn.ModuleList(
            _AttentionBlock(hidden_dim, num_heads) for _ in range(num_self_attention)
        )
        self.penultimate_layer = _Linear(hidden_dim, hidden_dim)
        self.mu = _Linear(hidden_dim, latent_dim)
        # Named after the published weights, but it is the log *variance*: std = exp(0.5 * .).
        self.log_sigma = _Linear(hidden_dim, latent_dim)

    def forward(self, x: Tensor, y: Tensor) -> Normal:
        hidden = _Projected(torch.cat([x, y], dim=-1), self.input_projection)
        for attention in self.self_attentions:
            hidden = attention(hidden, hidden, hidden)  # (batch, points, hidden)
        # Mean over points makes the summary invariant to their order.
        pooled = torch.relu(self.penultimate_layer(_value(hidden).mean(dim=1)))  # (batch, hidden)
        log_variance = self.log_sigma(pooled)  # (batch, latent)
        return Normal(self.mu(pooled), torch.exp(0.5 * log_variance))


class _DeterministicEncoder(nn.Module):
    """Context and target inputs -> a representation per target point (batch, targets, hidden)."""

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        hidden_dim: int,
        num_heads: int,
        num_self_attention: int,
        num_cross_attention: int,
    ) -> None:
        super().__init__()
        self.self_attentions = nn.ModuleList(
            _AttentionBlock(hidden_dim, num_heads) for _ in range(num_self_attention)
        )
        self.cross_attentions = nn.ModuleList(
            _AttentionBlock(hidden_dim, num_heads) for _ in range(num_cross_attention)
        )
        self.input_projection = _Linear(input_dim + output_dim, hidden_dim)
        self.context_projection = _Linear(input_dim, hidden_dim)
        self.target_projection = _Linear(input_dim, hidden_dim)

    def forward(self, context_x: Tensor, context_y: Tensor, target_x: Tensor) -> Tensor:
        values = _Projected(torch.cat([context_x, context_y], dim=-1), self.input_projection)
        for attention in self.self_attentions:
            values = attention(values, values, values)  # (batch, context, hidden)
        keys = _Projected(context_x, self.context_projection)  # (batch, context, hidden)
        query = _Projected(target_x, self.target_projection)  # (batch, targets, hidden)
        # Each block's output is the next block's query.
        for attention in self.cross_attentions:
            query = attention(keys, values, query)
        return _value(query)  # (batch, targets, hidden)


class _Decoder(nn.Module):
    """``[r, z, projected target]`` -> Gaussian mean and std per target point."""

    def __init__(
        self, input_dim: int, output_dim: int, hidden_dim: int, latent_dim: int, num_layers: int
    ) -> None:
        super().__init__()
        width = 2 * hidden_dim + latent_dim
        self.output_dim = output_dim
        self.target_projection = _Linear(input_dim, hidden_dim)
        self.linears = nn.ModuleList(_Linear(width, width) for _ in range(num_layers))
        self.final_projection = _Linear(width, 2 * output_dim)

    def forward(self, representation: Tensor, latent: Tensor, target_x: Tensor) -> Normal:
        """``representation``: (batch, targets, hidden); ``latent``: (samples, batch, latent)."""
        layers = [linear.linear_layer for linear in self.linears]
        layers.append(self.final_projection.linear_layer)
        # The first layer reads [r, z, projected target] at every (sample, target). Taken as
        # three products: r's once for all samples, z's once per function (not per target),
        # the target's folded into its projection; the sum broadcasts.
        first = layers[0]
        widths = [representation.shape[-1], latent.shape[-1], representation.shape[-1]]
        representation_weight, latent_weight, target_weight = first.weight.split(widths, dim=1)
        per_point = linear(representation, representation_weight) + _Projected(
            target_x, self.target_projection
        ).through(target_weight)  # (batch, targets, width)
        per_function = linear(latent, latent_weight, first.bias)  # (samples, batch, width)
        hidden = per_point + per_function[:, :, None, :]  # (samples, batch, targets, width)
        for layer in layers[1:]:
            hidden = linear(torch.relu(hidden), layer.weight, layer.bias)
        mean, raw_std = hidden.split(self.output_dim, dim=-1)
        return Normal(mean, functional.softplus(raw_std) + MIN_DECODER_STD)


@dataclass
class ANPOutput:
    """What :meth:`AttentiveNeuralProcess.forward` returns.

    ``mean`` and ``std`` have shape (samples, batch, targets), one Gaussian per latent sample,
    or (samples, batch, targets, output_dim) when ``output_dim > 1``.
    """

    mean: Tensor
    std: Tensor
    prior: Normal  # over z given the context, batch shape (batch, latent)
    posterior: Normal | None  # over z given context and targets; None without target_y

    @classmethod
    def of_prediction(
        cls, prediction: Normal, prior: Normal, posterior: Normal | None
    ) -> ANPOutput:
        """The decoder's Gaussians ``(samples, batch, targets, output_dim)``, the last axis
        dropped when there is one output."""
        mean, std = prediction.loc, prediction.scale
        if mean.shape[-1] == 1:
            mean, std = mean.squeeze(-1), std.squeeze(-1)  # (samples, batch, targets)
        return cls(mean=mean, std=std, prior=prior, posterior=posterior)

    def kl(self) -> Tensor:
        """``KL(posterior || prior)`` summed over the latent dimensions: (batch,)."""
        if self.posterior is None:
            raise ValueError("the KL term needs the posterior: call the model with target_y")
        return kl_divergence(self.posterior, self.prior).sum(-1)

    def negative_elbo(self, target_y: Tensor) -> Tensor:
        """The loss of :meth:`AttentiveNeuralProcess.elbo_loss` from outputs of one latent
        draw from the posterior, at the targets ``target_y (batch, targets, output_dim)``."""
        observed = target_y.squeeze(-1) if self.mean.ndim == 3 else target_y
        log_likelihood = Normal(self.mean[0], self.std[0]).log_prob(observed)
        return -log_likelihood.mean() + self.kl().mean() / target_y.shape[1]


class AttentiveNeuralProcess(nn.Module):
    """Attentive neural process with a latent path, a deterministic path and an MLP decoder.

    The defaults are the sizes of the published PME checkpoints (inputs ``(t, x)``, output ``u``).
    """

    def __init__(
        self,
        input_dim: int = 2,
        output_dim: int = 1,
        hidden_dim: int = 128,
        latent_dim: int = 128,
        num_heads: int = 4,
        num_self_attention: int = 2,
        num_cross_attention: int = 2,
        decoder_layers: int = 3,
    ) -> None:
        super().__init__()
        self.output_dim = output_dim
        self.latent_encoder = _LatentEncoder(
            input_dim, output_dim, hidden_dim, latent_dim, num_heads, num_self_attention
        )
        self.deterministic_encoder = _DeterministicEncoder(
            input_dim, output_dim, hidden_dim, num_heads, num_self_attention, num_cross_attention
        )
        self.decoder = _Decoder(input_dim, output_dim, hidden_dim, latent_dim, decoder_layers)

    def forward(
        self,
        context_x: Tensor,
        context_y: Tensor,
        target_x: Tensor,
        target_y: Tensor | None = None,
        num_samples: int = 1,
    ) -> ANPOutput:
        """Gaussians at the targets for ``num_samples`` draws of the latent ``z``.

        Shapes: ``context_x`` (batch, context, input_dim), ``context_y`` (batch, context,
        output_dim), ``target_x`` (batch, targets, input_dim), ``target_y`` (batch, targets,
        output_dim). Without ``target_y``, ``z`` is drawn from the prior p(z | context); with it,
        from the posterior q(z | context and targets), as in ANP training. Draws are
        reparameterised, so gradients flow through them.
        """
        self._check_inputs(context_x, context_y, target_x, target_y)
        prior = self.latent_encoder(context_x, context_y)
        posterior = None
        if target_y is not None:
            posterior = self.latent_encoder(
                torch.cat([context_x, target_x], dim=1), torch.cat([context_y, target_y], dim=1)
            )
        latent_distribution = prior if posterior is None else posterior
        latent = latent_distribution.rsample((num_samples,))  # (samples, batch, latent)
        representation = self.deterministic_encoder(context_x, context_y, target_x)
        prediction = self.decoder(representation, latent, target_x)
        return ANPOutput.of_prediction(prediction, prior, posterior)

    def elbo_loss(
        self, context_x: Tensor, context_y: Tensor, target_x: Tensor, target_y: Tensor
    ) -> Tensor:
        """Negative evidence lower bound per target point and function, a scalar.

        ``-mean_{batch, targets, outputs} log N(y; mean, std) + mean_batch KL(q || p) / targets``,
        with ``z`` drawn once from the posterior q(z | context and targets) and p the prior
        p(z | context); the KL is summed over latent dimensions. This is the published training
        loss (a sum over everything) divided by ``batch * targets``.
        """
        output = self(context_x, context_y, target_x, target_y, num_samples=1)
        return output.negative_elbo(target_y)

    def predict(
        self, context_x: Tensor, context_y: Tensor, target_x: Tensor, num_samples: int
    ) -> tuple[Tensor, Tensor]:
        """Per-latent-sample means and variances, each (samples, batch, targets), z from the prior.

        Combine them with :func:`combine_samples`, or update each sample's Gaussian first.
        """
        output = self(context_x, context_y, target_x, num_samples=num_samples)
        return output.mean, output.std.square()

    def predict_belief(
        self,
        context_x: Tensor,
        context_y: Tensor,
        target_x: Tensor,
        num_samples: int,
        chunk_size: int = 8,
    ) -> GaussianBelief:
        """The per-latent-sample diagonal Gaussians ``(samples, batch, targets)``, in float64,
        ready for :func:`lawful.condition` (one update per latent sample).

        Inputs as for :meth:`predict`, in any floating dtype (cast to the model's). Functions go
        through the model ``chunk_size`` at a time without gradients: the decoder's activations
        grow like samples x functions x points x hidden, gigabytes at the paper's sizes.
        """
        dtype = next(self.parameters()).dtype
        means, variances = [], []
        with torch.no_grad():
            for start in range(0, context_x.shape[0], chunk_size):
                chunk = slice(start, start + chunk_size)
                mean, variance = self.predict(
                    context_x[chunk].to(dtype),
                    context_y[chunk].to(dtype),
                    target_x[chunk].to(dtype),
                    num_samples,
                )  # (samples, chunk, targets) each
                means.append(mean)
                variances.append(variance)
        return GaussianBelief.diagonal(
            torch.cat(means, 1).double(), torch.cat(variances, 1).double()
        )

    def _check_inputs(
        self, context_x: Tensor, context_y: Tensor, target_x: Tensor, target_y: Tensor | None
    ) -> None:
        """Named errors for inputs of the wrong shape or dtype, before any layer sees them."""
        named = {"context_x": context_x, "context_y": context_y, "target_x": target_x}
        if target_y is not None:
            named["target_y"] = target_y
        dtype = next(self.parameters()).dtype
        for name, tensor in named.items():
            if tensor.ndim != 3:
                raise ValueError(
                    f"{name} must have shape (batch, points, features), got {tuple(tensor.shape)}"
                )
            if tensor.dtype != dtype:
                wanted, given = (str(d).removeprefix("torch.") for d in (dtype, tensor.dtype))
                raise TypeError(
                    f"{name} must be {wanted} like the model's weights, got {given}; convert it "
                    f"with .to(torch.{wanted}) (predict_belief converts its inputs itself)"
                )
        if context_x.shape[:2] != context_y.shape[:2]:
            raise ValueError(
                f"context_x {tuple(context_x.shape)} and context_y {tuple(context_y.shape)} "
                "disagree on (batch, points)"
            )
        if target_y is not None and target_x.shape[:2] != target_y.shape[:2]:
            raise ValueError(
                f"target_x {tuple(target_x.shape)} and target_y {tuple(target_y.shape)} "
                "disagree on (batch, points)"
            )
        if target_x.shape[0] != context_x.shape[0]:
            raise ValueError(
                f"context has batch size {context_x.shape[0]} but targets {target_x.shape[0]}"
            )


def combine_samples(mean: Tensor, variance: Tensor) -> tuple[Tensor, Tensor]:
    """Moment-match a uniform mixture of Gaussians, one per latent sample along dim 0.

    mean = average of the means; variance = average of the variances + variance of the means,
    the latter the population variance (divided by S, not S - 1: the mixture's exact second
    moment). The published evaluation code divides by S - 1, which raises that term by 1 % at
    S = 100.
    """
    if mean.shape != variance.shape:
        raise ValueError(
            f"mean {tuple(mean.shape)} and variance {tuple(variance.shape)} differ in shape"
        )
    combined_variance = variance.mean(0) + mean.var(0, unbiased=False)
    return mean.mean(0), combined_variance


# Top-level submodules of AttentiveNeuralProcess: every weight of the model sits under one.
_ANP_SUBMODULES = ("latent_encoder", "deterministic_encoder", "decoder")
_WRAPPER_PREFIX = "anp."


def load_published_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The ANP weights of a published ProbConserv checkpoint, ready for ``load_state_dict``.

    The SoftC-ANP (``pinp.pt``) and ProbConserv-ANP (``physnp.pt``) checkpoints wrap the ANP,
    so their keys start with ``anp.``; the prefix is stripped. Entries outside the ANP, such as
    ``physnp.pt``'s ``log_constraint_precision_train``, are left out: read them from the
    original dict if needed. A plain ANP state dict (``anp.pt``) passes through unchanged.
    """
    weights = {}
    for key, tensor in state_dict.items():
        name = key.removeprefix(_WRAPPER_PREFIX)
        if name.split(".", 1)[0] in _ANP_SUBMODULES:
            weights[name] = tensor
    if not weights:
        raise ValueError(
            f"no ANP weights in the state dict: no key starts with one of {_ANP_SUBMODULES}, "
            f"optionally after {_WRAPPER_PREFIX!r}; keys seen: {sorted(state_dict)[:5]}"
        )
    return weights
