"""Training neural processes with Lightning: plain, with a PDE-residual penalty, or through the
conservation constraint.

The three objectives of the ProbConserv paper share one module:

- ``"elbo"``: the attentive neural process's evidence lower bound (ANP);
- ``"softc"``: the ELBO plus ``softc_weight`` times the mean squared PDE residual
  ``u_t + F(u, u_x)_x`` of the predicted mean at the target points (SoftC-ANP);
- ``"probconserv"``: minus the log-likelihood of the targets under the model's Gaussian
  conditioned on their own mass (the constrained model trained end to end), with a learnable
  log precision of the constraint noise, plus the ELBO's KL term.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torch import Tensor, nn

from lawful.constraints.quadrature import trapezoid_weights
from lawful.constraints.update import constrained_log_likelihood
from lawful.models.anp import AttentiveNeuralProcess
from lawful.models.softc import softc_penalty
from lawful.pdes.conservation import ConservationProblem

Objective = Literal["elbo", "softc", "probconserv"]

__all__ = ["NeuralProcessModule", "Objective", "per_time_mass_weights"]


class NeuralProcessModule(L.LightningModule):
    """A Lightning wrapper around :class:`AttentiveNeuralProcess` for one of three objectives.

    Batches are tuples ``(input_contexts (B, C, 2), output_contexts (B, C, 1),
    input_targets (B, T, 2), output_targets (B, T, 1), params (B, P))`` as stored by
    :mod:`lawful.data`. Adam at ``learning_rate``, constant or, with ``cosine_decay``, annealed
    to zero over the run (per step).
    """

    def __init__(
        self,
        model: AttentiveNeuralProcess,
        problem: ConservationProblem,
        objective: Objective = "elbo",
        learning_rate: float = 1e-4,
        softc_weight: float = 1.0,
        num_target_times: int = 10,
        log_constraint_precision: float = 0.0,
        learn_constraint_precision: bool = True,
        cosine_decay: bool = False,
    ) -> None:
        super().__init__()
        if objective not in ("elbo", "softc", "probconserv"):
            raise ValueError(f"unknown objective {objective!r}; choose elbo, softc or probconserv")
        self.model = model
        self.problem = problem
        self.objective = objective
        self.learning_rate = learning_rate
        self.softc_weight = softc_weight
        self.num_target_times = num_target_times
        self.cosine_decay = cosine_decay
        # Used only by the "probconserv" objective; kept for all so checkpoints share a layout.
        self.log_constraint_precision = nn.Parameter(
            torch.tensor(float(log_constraint_precision)),
            requires_grad=learn_constraint_precision and objective == "probconserv",
        )
        self.save_hyperparameters(ignore=["model", "problem"])

    def training_step(self, batch: tuple[Tensor, ...], batch_index: int) -> Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch: tuple[Tensor, ...], batch_index: int) -> Tensor:
        loss = self.model.elbo_loss(*batch[:4])
        self.log("val_elbo_loss", loss, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.learning_rate)
        if not self.cosine_decay:
            return optimizer
        # Annealed to zero over every step of the run: a short run at a high rate still ends on
        # settled weights instead of wherever the last noisy step left them.
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=self.trainer.estimated_stepping_batches
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _loss(self, batch: tuple[Tensor, ...]) -> Tensor:
        context_x, context_y, target_x, target_y, params = batch
        if self.objective == "elbo":
            return self.model.elbo_loss(context_x, context_y, target_x, target_y)
        if self.objective == "softc":
            return self.model.elbo_loss(
                context_x, context_y, target_x, target_y
            ) + self.softc_weight * self._residual_penalty(context_x, context_y, target_x, params)
        return self._constrained_loss(context_x, context_y, target_x, target_y)

    def _residual_penalty(
        self, context_x: Tensor, context_y: Tensor, target_x: Tensor, params: Tensor
    ) -> Tensor:
        param = params[:, :1]  # (B, 1): the problem's parameter, broadcast over points

        def predicted_mean(points: Tensor) -> Tensor:
            return self.model(context_x, context_y, points).mean[0]  # (B, T)

        def flux(u: Tensor, u_x: Tensor) -> Tensor:
            return self.problem.flux(u, u_x, param)

        return softc_penalty(predicted_mean, target_x, flux)

    def _constrained_loss(
        self, context_x: Tensor, context_y: Tensor, target_x: Tensor, target_y: Tensor
    ) -> Tensor:
        output = self.model(context_x, context_y, target_x, target_y, num_samples=1)
        batch, points = target_x.shape[:2]
        per_time = (batch, self.num_target_times, points // self.num_target_times)
        weights = per_time_mass_weights(target_x[..., 1].reshape(per_time))  # (B, T, 1, P)
        log_likelihood = constrained_log_likelihood(
            target_y.reshape(per_time),
            output.mean[0].reshape(per_time),
            output.std[0].square().reshape(per_time),
            weights,
            torch.exp(-self.log_constraint_precision),
        )  # (B, T)
        return -log_likelihood.sum(-1).mean() / points + output.kl().mean() / points


def per_time_mass_weights(positions: Tensor) -> Tensor:
    """Trapezoid weights over each time slice's sorted positions ``(..., P)``; ``(..., 1, P)``.

    The constraint row used when training through the constraint: its right-hand side is the
    truth's own quadrature, so the rule only has to be the same on both sides.
    """
    return trapezoid_weights(positions).unsqueeze(-2)
