"""One way to run Lightning for every experiment: checkpoints, resume, progress, devices.

``fit`` resumes from ``checkpoint_dir/last.ckpt`` when it exists, so an interrupted ``lawful run``
picks up where it stopped; a finished run is not trained again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

__all__ = ["TrainSettings", "fit"]


@dataclass(frozen=True)
class TrainSettings:
    max_epochs: int
    device: str = "cpu"  # "cpu", "cuda", "auto"
    precision: str = "32-true"
    progress: bool = True
    gradient_clip: float | None = None


def fit(
    module: L.LightningModule,
    train_loader: DataLoader,
    settings: TrainSettings,
    checkpoint_dir: Path,
    val_loader: DataLoader | None = None,
) -> L.LightningModule:
    """Train ``module`` (resuming if a checkpoint exists) and return it with its final weights."""
    checkpoint_dir = Path(checkpoint_dir)
    last = checkpoint_dir / "last.ckpt"
    trainer = L.Trainer(
        max_epochs=settings.max_epochs,
        accelerator=settings.device,
        devices=1,
        precision=settings.precision,
        gradient_clip_val=settings.gradient_clip,
        callbacks=[
            ModelCheckpoint(dirpath=checkpoint_dir, save_last=True, save_top_k=0),
            *([TQDMProgressBar(refresh_rate=10)] if settings.progress else []),
        ],
        enable_progress_bar=settings.progress,
        logger=CSVLogger(checkpoint_dir, name="logs"),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=False,
    )
    trainer.fit(
        module,
        train_dataloaders=train_loader,
        val_dataloaders=val_loader,
        ckpt_path=str(last) if last.exists() else None,
    )
    return module
