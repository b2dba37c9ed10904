"""Training neural operators (FNO, BOON, ...) with Lightning on the relative L2 loss.

Batches are tuples ``(inputs, targets, *boundary_data)``: the model is called as
``model(inputs, *boundary_data)``, so a boundary-corrected operator receives this batch's data at
its ends (``left, right``) and a periodic or unconstrained one receives none.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn

from lawful.metrics import relative_l2

__all__ = ["OperatorModule", "relative_l2_loss"]


def relative_l2_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean over the batch of each sample's relative L2 error over all its other axes."""
    return relative_l2(prediction.flatten(1), target.flatten(1)).mean()  # (batch, -1) -> ()


class OperatorModule(L.LightningModule):
    """Adam with weight decay, learning rate halved (``lr_gamma``) every ``lr_step_epochs``."""

    def __init__(
        self,
        model: nn.Module,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        lr_step_epochs: int = 50,
        lr_gamma: float = 0.5,
    ) -> None:
        super().__init__()
        if learning_rate <= 0 or weight_decay < 0 or lr_step_epochs < 1 or not 0 < lr_gamma <= 1:
            raise ValueError(
                "need learning_rate > 0, weight_decay >= 0, lr_step_epochs >= 1 and "
                f"0 < lr_gamma <= 1; got {learning_rate}, {weight_decay}, {lr_step_epochs}, "
                f"{lr_gamma}"
            )
        self.model = model
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.lr_step_epochs, self.lr_gamma = lr_step_epochs, lr_gamma

    def forward(self, inputs: Tensor, *boundary_data: Tensor) -> Tensor:
        return self.model(inputs, *boundary_data)

    def training_step(self, batch: tuple[Tensor, ...], batch_index: int) -> Tensor:
        inputs, targets, *boundary_data = batch
        loss = relative_l2_loss(self(inputs, *boundary_data), targets)
        self.log("train_rel_l2", loss, prog_bar=True, batch_size=inputs.shape[0])
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=self.lr_step_epochs, gamma=self.lr_gamma
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
