"""One way to run Lightning for every experiment: checkpoints, resume, progress, devices, DDP.

``fit`` resumes from ``checkpoint_dir/last.ckpt`` when it exists, so an interrupted ``lawful run``
picks up where it stopped; a finished run is not trained again. A resumed run is the run it
interrupted, to the bit: the checkpoints also hold the random state (the training loader's
shuffling generator, torch's global generators), and they are written atomically.

With ``num_devices > 1`` training is data-parallel (DDP, one process per device; gloo on CPUs,
NCCL on GPUs). Under ``torchrun`` every process runs the whole command and Lightning joins the
processes torchrun started; otherwise Lightning starts the extra processes itself. Either way
``fit`` returns whether this process is the main one, which alone should write results.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torch.utils.data import DataLoader

from lawful.data.store import write_atomically

__all__ = [
    "PRECISIONS",
    "TrainSettings",
    "WeightsError",
    "fit",
    "is_main_process",
    "load_weights",
    "save_weights",
]


#: Training precisions, by Lightning's names: float32 throughout, or automatic mixed precision
#: with bfloat16 (CPUs and GPUs) or float16 (GPUs only; Lightning would run bf16 on a CPU).
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


@dataclass(frozen=True)
class TrainSettings:
    max_epochs: int
    device: str = "cpu"  # "cpu", "cuda", "auto"
    precision: str = "32-true"  # one of PRECISIONS
    progress: bool = True
    gradient_clip: float | None = None
    num_devices: int = 1


class _RandomState(Callback):
    """Keeps the random state in the checkpoints, so a resumed run draws what the interrupted
    one would have drawn next.

    Lightning restores weights, optimizer, scheduler and loop progress, not generators: without
    this, the loader's generator starts again from its seed, and every epoch after a resume
    shuffles as the first epochs did (the weights then differ from an uninterrupted run's).
    The last checkpoint is saved at the end of an epoch, after the epoch's draws, so its state
    is the next epoch's.
    """

    def __init__(self, loader_generator: torch.Generator | None) -> None:
        self.loader_generator = loader_generator

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state()}  # dropout, sampling, ...
        if self.loader_generator is not None:
            state["loader"] = self.loader_generator.get_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # A checkpoint from before this callback has no state: it resumes as it always did.
        if "torch" in state_dict:
            torch.set_rng_state(state_dict["torch"])
        if self.loader_generator is not None and "loader" in state_dict:
            self.loader_generator.set_state(state_dict["loader"])
        cuda = state_dict.get("cuda")
        if (
            cuda is not None
            and torch.cuda.is_available()
            and len(cuda) == torch.cuda.device_count()
        ):
            torch.cuda.set_rng_state_all(cuda)


#: The key under which a checkpoint records what it belongs to (see :func:`fit`).
IDENTITY_KEY = "lawful_identity"


class _Identity(Callback):
    """Writes what the checkpoints belong to into each of them, so a ``last.ckpt`` moved on its
    own into another model's folder is recognised (the folder's ``identity.json`` stays
    behind when only the file is moved)."""

    def __init__(self, identity: dict[str, Any]) -> None:
        self.identity = identity

    def on_save_checkpoint(
        self, trainer: L.Trainer, module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[IDENTITY_KEY] = self.identity


class _AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written beside their final name and moved into place (``os.replace``).

    Lightning's own save stages the file in the system's temporary folder and moves it, which
    is a copy, not a rename, when that folder is on another file system (a kill during the copy
    leaves a truncated ``last.ckpt`` that the next run fails to resume from), and a killed save
    leaves its stage file there.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        write_atomically(Path(path), lambda temporary: torch.save(checkpoint, temporary))


def fit(
    module: L.LightningModule,
    train_loader: DataLoader,
    settings: TrainSettings,
    checkpoint_dir: Path,
    val_loader: DataLoader | None = None,
    identity: Mapping[str, Any] | None = None,
) -> bool:
    """Train ``module`` in place (resuming if a checkpoint exists).

    ``identity`` says what the checkpoints belong to (experiment, method, the settings that
    shape them): it is recorded in ``checkpoint_dir/identity.json`` and in every checkpoint,
    and resuming from a folder or a checkpoint that records another is a :class:`WeightsError`,
    not a silent resume of the wrong model; so is a checkpoint whose weights do not fit
    ``module`` (another architecture), before Lightning fails on it inside ``fit``.
    Returns whether this process is the main one (rank 0; always true on one device).
    """
    checkpoint_dir = Path(checkpoint_dir)
    wanted = None if identity is None else _canonical(identity)
    if wanted is not None:
        _claim_folder(checkpoint_dir, wanted)
    last = checkpoint_dir / "last.ckpt"
    if last.exists():
        _check_resumable(last, module, wanted)
    trainer = L.Trainer(
        max_epochs=settings.max_epochs,
        accelerator=settings.device,
        devices=settings.num_devices,
        strategy="ddp" if settings.num_devices > 1 else "auto",
        precision=settings.precision,
        gradient_clip_val=settings.gradient_clip,
        callbacks=[
            # last.ckpt at the end of every epoch. (save_last=True with save_top_k=0 writes it
            # only when training ends, on Lightning 2.6: a killed model started over.)
            ModelCheckpoint(
                dirpath=checkpoint_dir,
                filename=last.stem,
                save_top_k=1,  # no monitor: the latest epoch's, overwritten in place
                enable_version_counter=False,  # not last-v1.ckpt beside a resumed last.ckpt
            ),
            _RandomState(train_loader.generator),
            *([_Identity(wanted)] if wanted is not None else []),
            *([TQDMProgressBar(refresh_rate=10)] if settings.progress else []),
        ],
        enable_progress_bar=settings.progress,
        logger=CSVLogger(checkpoint_dir, name="logs"),
        log_every_n_steps=max(1, min(50, len(train_loader))),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        plugins=[_AtomicCheckpointIO()],
    )
    trainer.fit(
        module,
        train_dataloaders=train_loader,
        val_dataloaders=val_loader,
        ckpt_path=str(last) if last.exists() else None,
    )
    return trainer.is_global_zero


def is_main_process() -> bool:
    """Whether this process writes results: rank 0 of a data-parallel run, or the only one.

    For code paths that skip :func:`fit` (weights already on disk), which must still answer
    as a rank, not assume they are the main process.
    """
    return rank_zero_only.rank == 0


class WeightsError(ValueError):
    """A weights file that is missing, unreadable, or made for another model."""


def _canonical(identity: Mapping[str, Any]) -> dict[str, Any]:
    """``identity`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(dict(identity), sort_keys=True))


def _describe(identity: Mapping[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in identity.items() if key != "settings")


def _mismatch(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    """``"X, not Y"`` for two identities, naming the settings that differ where the rest is
    the same (otherwise both sides would read alike)."""
    text = f"{_describe(recorded)}, not {_describe(wanted)}"
    old, new = recorded.get("settings") or {}, wanted.get("settings") or {}
    differing = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
    if differing:
        shown = "; ".join(
            f"{key} {_setting(old, key)} there, {_setting(new, key)} here" for key in differing
        )
        text += f" (settings differ: {shown})"
    return text


def _setting(settings: Mapping[str, Any], key: str) -> str:
    """One setting of an identity as the mismatch message shows it; an identity leaves out
    a setting at its default (e.g. a float32 model's precision)."""
    return str(settings[key]) if key in settings else "the default"


def _read_torch_file(path: Path, description: str, remedy: str, weights_only: bool) -> Any:
    """``torch.load`` of ``path``, or a :class:`WeightsError` naming it as a ``description``
    that is not readable (empty, truncated or corrupt), followed by the ``remedy``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as error:  # torch raises several kinds for a damaged file
        raise WeightsError(
            f"{path} is not a readable {description} (empty, truncated or corrupt: "
            f"{type(error).__name__}); {remedy}"
        ) from error


def _check_resumable(
    checkpoint: Path, module: L.LightningModule, wanted: dict[str, Any] | None
) -> None:
    """A :class:`WeightsError` naming ``checkpoint`` unless ``fit`` can resume ``module`` from
    it: a whole torch file (not empty, truncated, overwritten), recording ``wanted`` if it
    records an identity (checkpoints from before they did are judged by their folder), with
    weights of ``module``'s names and shapes."""
    # Our own checkpoint (its random state and loop progress are more than weights).
    saved = _read_torch_file(
        checkpoint, "checkpoint", "delete it to train this model from the start", False
    )
    recorded = saved.get(IDENTITY_KEY) if isinstance(saved, dict) else None
    if wanted is not None and recorded is not None and recorded != wanted:
        raise WeightsError(
            f"{checkpoint} is a checkpoint of {_mismatch(recorded, wanted)}: move it away to "
            "train this one"
        )
    state = saved.get("state_dict") if isinstance(saved, dict) else None
    expected = {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}
    found = (
        {name: tuple(tensor.shape) for name, tensor in state.items()}
        if isinstance(state, dict)
        else {}
    )
    if found != expected:
        missing = sorted(expected.keys() - found.keys())
        unexpected = sorted(found.keys() - expected.keys())
        reshaped = sorted(
            name for name in expected.keys() & found.keys() if expected[name] != found[name]
        )
        parts = [
            f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            for label, names in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("of another shape", reshaped),
            )
            if names
        ]
        raise WeightsError(
            f"{checkpoint} holds weights of another model ({'; '.join(parts)}): move it away "
            "to train this one"
        )


def _claim_folder(folder: Path, wanted: dict[str, Any]) -> None:
    """Record ``wanted`` (a canonical identity) in ``folder/identity.json``, or check the one
    recorded there."""
    path = folder / "identity.json"
    if path.exists():
        recorded = json.loads(path.read_text())
        if recorded != wanted:
            raise WeightsError(
                f"the checkpoints in {folder} belong to {_mismatch(recorded, wanted)}: move "
                "them away to train this one"
            )
        return
    write_atomically(path, lambda p: p.write_text(json.dumps(wanted, indent=2) + "\n"))


def save_weights(model: nn.Module, path: Path, identity: Mapping[str, Any]) -> None:
    """``model``'s weights at ``path`` with what they belong to, written atomically."""
    payload = {"identity": _canonical(identity), "state_dict": model.state_dict()}
    write_atomically(Path(path), lambda p: torch.save(payload, p))


def load_weights(
    model: nn.Module, path: Path, what: str, identity: Mapping[str, Any] | None = None
) -> nn.Module:
    """``model`` with the weights saved at ``path``, in eval mode.

    ``what`` names the model in the errors (e.g. "BOON (single-step)"): a missing file, one
    that is not a torch weights file (empty, truncated, corrupt), weights recorded for another
    ``identity`` (:func:`save_weights`; another method, experiment or preset), and weights of
    another shape are each a :class:`WeightsError` naming the file. A bare state dict (from an
    earlier version) carries no identity and is checked by shape alone.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no trained {what} at {path}: run the 'train' stage first")
    saved = _read_torch_file(
        path, f"weights file for {what}", "delete it and run the 'train' stage again", True
    )
    state = saved
    if isinstance(saved, dict) and set(saved) == {"identity", "state_dict"}:
        recorded, state = saved["identity"], saved["state_dict"]
        if identity is not None and recorded != _canonical(identity):
            raise WeightsError(
                f"{path} holds the weights of {_mismatch(recorded, _canonical(identity))} "
                "(trained under another preset or precision, or put in the wrong place): delete it "
                "and run "
                "the 'train' stage again"
            )
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise WeightsError(
            f"{path} holds weights that do not fit {what} as this preset builds it (trained "
            f"under another preset or version?): {first_line}"
        ) from error
    return model.eval()
