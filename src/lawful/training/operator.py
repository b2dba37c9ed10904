"""Training neural operators (FNO, BOON, ...) with Lightning on the relative L2 loss.

Batches are tuples ``(inputs, targets, *boundary_data)``: the model is called as
``model(inputs, *boundary_data)``, so a boundary-corrected operator receives this batch's data at
its ends (``left, right``) and a periodic or unconstrained one receives none. The tensors come
from :func:`lawful.data.operator_data.operator_tensors`.

:func:`build_fno` makes the operator of a task from its :class:`OperatorSettings`,
:func:`train_operator` trains any such model into a weights file (resuming from checkpoints),
``lawful.training.trainer.load_weights`` reads it back and :func:`predict_operator` runs it
in batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from lawful.metrics import relative_l2
from lawful.operators.fno import FNO1d, FNO2d, FourierNeuralOperator
from lawful.training.trainer import (
    TrainSettings,
    fit,
    is_main_process,
    save_weights,
)

__all__ = [
    "BoundaryDataInput",
    "OperatorModule",
    "OperatorSettings",
    "PlainOperator",
    "build_fno",
    "predict_operator",
    "relative_l2_loss",
    "train_operator",
    "with_precision",
]


@dataclass(frozen=True)
class OperatorSettings:
    """Architecture and training budget of the operator of one kind of task.

    Single-step operators are 1-D FNOs over x; multi-step ones space + time FNOs over (x, t),
    zero-padded on the non-periodic time axis. Adam with weight decay; the learning rate is
    multiplied by ``lr_gamma`` every ``lr_step_epochs`` epochs.

    ``precision`` is Lightning's training precision (:data:`PRECISIONS`). Under ``bf16-mixed``
    or ``16-mixed`` the channel-mixing products run in the lower precision while the FFTs, the
    spectral products (complex) and every boundary correction stay in float32 (the products'
    outputs are promoted back at their bias); the weights stay float32, and evaluation runs in
    float32, so the trained model is exact on its boundaries as in full precision.
    """

    num_train: int  # the first samples of the training split
    width: int
    modes: int  # along x
    modes_time: int  # along t (multi-step only)
    time_padding: int  # zero padding of the non-periodic time axis (multi-step only)
    projection_width: int
    epochs: int
    batch_size: int
    lr_step_epochs: int
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    lr_gamma: float = 0.5
    precision: str = "32-true"


def with_precision(preset: Any, precision: str) -> Any:
    """``preset`` with every :class:`OperatorSettings` in it (at any depth of dataclasses)
    training in ``precision``; other values as they are."""
    if isinstance(preset, OperatorSettings):
        return replace(preset, precision=precision)
    if not is_dataclass(preset) or isinstance(preset, type):
        return preset
    changed = {
        field.name: with_precision(getattr(preset, field.name), precision)
        for field in fields(preset)
    }
    return replace(preset, **changed)


def build_fno(
    settings: OperatorSettings,
    multistep: bool,
    in_channels: int = 1,
    out_channels: int = 1,
    x_domain: tuple[float, float] = (0.0, 1.0),
) -> FourierNeuralOperator:
    """A freshly initialised FNO of the settings' sizes: over (x, t) if ``multistep``, else x.

    ``x_domain``: the interval x spans, first and last grid point included; it sets the grid
    step the boundary stencils use (a Neumann end on x in [0, 2 pi] is not one on [0, 1]).
    """
    if multistep:
        return FNO2d(
            in_channels,
            out_channels,
            settings.width,
            settings.modes,
            settings.modes_time,
            padding=settings.time_padding,
            x_domain=x_domain,
            projection_width=settings.projection_width,
        )
    return FNO1d(
        in_channels,
        out_channels,
        settings.width,
        settings.modes,
        domain=x_domain,
        projection_width=settings.projection_width,
    )


class PlainOperator(nn.Module):
    """An FNO called like the boundary-aware models; it does not look at the boundary data."""

    def __init__(self, fno: nn.Module) -> None:
        super().__init__()
        self.fno = fno

    def forward(self, x: Tensor, *boundary_data: Tensor) -> Tensor:
        return self.fno(x)


class BoundaryDataInput(nn.Module):
    """The fair baseline for BOON: an FNO that is *given* the boundary data, as extra input
    channels, but not held to it. Each piece of data becomes one channel: ``(batch,)`` is
    constant over the field; ``(batch, time)`` (for a space + time model: the whole boundary
    history), like any ``(batch, *trailing)``, lines up with the field's trailing axes and is
    constant along the others (along x; along x and y for an (x, y, t) model).

    The FNO needs ``in_channels`` = the input's channels + the number of pieces of data.
    """

    def __init__(self, fno: nn.Module) -> None:
        super().__init__()
        self.fno = fno

    def forward(self, x: Tensor, *boundary_data: Tensor) -> Tensor:
        batch, _, *axes = x.shape  # (batch, channels, *axes)
        channels = []
        for data in boundary_data:
            leading = len(axes) - (data.ndim - 1)  # the field's axes the data is constant along
            if leading < 0 or tuple(data.shape[1:]) != tuple(axes[leading:]):
                raise ValueError(
                    f"boundary data of shape {tuple(data.shape)} does not line up with the "
                    f"trailing axes of an input of shape {tuple(x.shape)}"
                )
            shape = (batch, 1, *([1] * leading), *data.shape[1:])
            channels.append(data.reshape(shape).expand(batch, 1, *axes).to(x.dtype))
        return self.fno(torch.cat([x, *channels], dim=1))  # (batch, channels + data, *axes)


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


def train_operator(
    model: nn.Module,
    tensors: list[Tensor],
    settings: OperatorSettings,
    weights_path: Path,
    seed: int,
    device: str = "cpu",
    progress: bool = True,
    num_devices: int = 1,
    log: Callable[[str], None] | None = None,
    identity: Mapping[str, Any] | None = None,
) -> bool:
    """Train ``model`` on ``tensors`` (``[inputs, targets, *boundary data]``) into
    ``weights_path``; returns whether this is the main process (which alone writes).
    ``identity`` (what the model is: experiment, method, settings) is recorded with the
    checkpoints and the weights, and checked when they are resumed or loaded.

    ``seed`` sets the batch order (the caller seeds the initial weights when it builds the
    model). Skipped if the weights exist; Lightning checkpoints go beside them, so an interrupted
    run resumes where it stopped. ``log`` hears how long the training took.
    """
    if weights_path.exists():
        return is_main_process()
    module = OperatorModule(
        model,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        lr_step_epochs=settings.lr_step_epochs,
        lr_gamma=settings.lr_gamma,
    )
    loader = DataLoader(
        TensorDataset(*tensors),
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    train_settings = TrainSettings(
        max_epochs=settings.epochs,
        device=device,
        precision=settings.precision,
        progress=progress,
        num_devices=num_devices,
    )
    checkpoints = weights_path.parent / f"checkpoints-{weights_path.stem}"
    started = time.perf_counter()
    is_main = fit(module, loader, train_settings, checkpoints, identity=identity)
    if is_main:
        save_weights(model, weights_path, identity or {})
        if log is not None:
            log(f"trained {weights_path} in {time.perf_counter() - started:.0f} s")
    return is_main


def predict_operator(model: nn.Module, tensors: list[Tensor], batch_size: int) -> Tensor:
    """``model`` on ``[inputs, targets, *boundary data]`` in batches, in float64 afterwards."""
    inputs, _, *boundary = tensors
    with torch.no_grad():
        chunks = [
            model(
                inputs[start : start + batch_size],
                *(b[start : start + batch_size] for b in boundary),
            )
            for start in range(0, inputs.shape[0], batch_size)
        ]
    return torch.cat(chunks).double()
