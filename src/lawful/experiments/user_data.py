"""A boundary experiment on a user's own data file: ``lawful train-operator``.

``lawful train-operator --data my.h5 --conditions dirichlet,neumann:2 --out DIR`` reads the
file (layout: :mod:`lawful.data.user_files`), splits it into training and test samples (seeded),
stores both splits in our dataset layout under ``DIR/data``, and then runs exactly what
``lawful run`` runs for our boundary experiments: the plain FNO, the FNO with overwritten ends
and BOON, trained on the same data for the same budget, with ``metrics.json``, ``report.md``
and figures. The preset chooses the operators' sizes and budget; the data sets the sample
counts and the grid.

A file without a time axis (``outputs`` ``(N, X)``) is a single-step task (a 1-D FNO); one with
``t`` (``outputs`` ``(N, X, T)``) a multi-step task (a space + time FNO, ``u0`` repeated over t).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from lawful.constraints.boundary import BoundaryConditions, Periodic
from lawful.constraints.parsing import CONDITION_KINDS, parse_conditions
from lawful.data.store import DatasetError, load_dataset, save_dataset
from lawful.data.user_files import (
    OperatorSamples,
    check_splittable,
    load_operator_samples,
    split_train_test,
)
from lawful.experiments.boundary import PRESETS, BoundaryExperiment, BoundaryPreset, Task
from lawful.experiments.registry import RunSettings
from lawful.training.operator import OperatorSettings

__all__ = ["FileOperatorExperiment", "add_train_operator_arguments", "user_experiment"]


class FileOperatorExperiment(BoundaryExperiment):
    """:class:`BoundaryExperiment` whose data is a user's file instead of a problem's sampler."""

    kind = "boundary conditions (BOON) on a user's data file"

    def __init__(
        self,
        name: str,
        samples: OperatorSamples,
        conditions: BoundaryConditions,
        test_fraction: float = 0.2,
    ) -> None:
        if samples.spatial_ndim != 1:
            raise DatasetError(
                f"{samples.source}: {samples.spatial_ndim}-D data; train-operator takes one "
                "spatial axis (x) so far"
            )
        self._check_walls(samples, conditions)
        check_splittable(samples, test_fraction)
        self.samples, self._conditions, self.test_fraction = samples, conditions, test_fraction
        task = Task("multi-step" if samples.is_time_dependent else "single-step")
        super().__init__(name, None, (task,), presets=self._fitted_presets(samples))

    @staticmethod
    def _check_walls(samples: OperatorSamples, conditions: BoundaryConditions) -> None:
        if conditions.is_periodic and samples.walls:
            raise DatasetError(
                f"{samples.source}: periodic ends take no boundary data, but the file has "
                f"{sorted(samples.walls)}"
            )
        points = samples.inputs.shape[1]
        if points < conditions.min_points():
            raise DatasetError(
                f"{samples.source}: {points} grid points are too few for these conditions; "
                f"need at least {conditions.min_points()}"
            )

    @property
    def x_domain(self) -> tuple[float, float]:
        x = self.samples.grids["x"]
        return (float(x[0]), float(x[-1]))

    @property
    def conditions(self) -> BoundaryConditions:
        return replace(self._conditions, axis=2)  # x is axis 2 of (batch, channels, x[, t])

    @staticmethod
    def _fitted_presets(samples: OperatorSamples) -> dict[str, BoundaryPreset]:
        """Our presets' operators with modes the file's grid can hold, training on every
        training sample (``num_train`` is a cap: the file's count, whatever the split)."""
        num_train = samples.num_samples
        points = samples.inputs.shape[1]
        frames = 1 if samples.t is None else samples.t.numel()

        def fitted(settings: OperatorSettings, multistep: bool) -> OperatorSettings:
            # SpectralConv.least_grid: m modes need 2 m points on every axis but the last and
            # 2 m - 2 on the last (an rfft over n points has n // 2 + 1 modes). x is the last
            # axis of the 1-D model, unpadded; the space + time model's last is t, padded.
            return replace(
                settings,
                num_train=num_train,
                modes=min(settings.modes, points // 2 if multistep else points // 2 + 1),
                modes_time=min(settings.modes_time, (frames + settings.time_padding) // 2 + 1),
            )

        return {
            name: replace(
                preset,
                num_train=num_train,
                num_test=0,  # the split decides
                resolution=points,
                single_step=fitted(preset.single_step, multistep=False),
                multi_step=fitted(preset.multi_step, multistep=True),
            )
            for name, preset in PRESETS.items()
        }

    def run(self, settings: RunSettings) -> dict | None:
        """:meth:`BoundaryExperiment.run`, refusing an output folder that holds splits of
        another file before anything, settings.json first, is written there."""
        self._check_stored_splits(settings.out / "data", settings.seed)
        return super().run(settings)

    def generate_data(self, preset: BoundaryPreset, folder: Path, seed: int) -> None:
        """Split the file's samples (by ``seed``) and store both splits in our layout."""
        paths = self._check_stored_splits(folder, seed)
        if all(path.exists() for path in paths.values()):
            return
        folder.mkdir(parents=True, exist_ok=True)
        train, test = split_train_test(self.samples, self.test_fraction, seed)
        for split, samples in (("train", train), ("test", test)):
            if not paths[split].exists():
                self._store(paths[split], split, samples, seed)

    def _origin(self, seed: int) -> dict:
        """What a stored split was made from: reusing one made from anything else is wrong."""
        return {
            "source": str(self.samples.source.resolve()),
            "num_samples": self.samples.num_samples,
            "test_fraction": self.test_fraction,
            "seed": seed,
        }

    def _check_stored_splits(self, folder: Path, seed: int) -> dict[str, Path]:
        """The paths of both splits in ``folder``; those already there must have been made from
        this file, split by ``seed``."""
        paths = {split: folder / f"{split}.h5" for split in ("train", "test")}
        for path in paths.values():
            if not path.exists():
                continue
            stored = load_dataset(path).metadata
            recorded = {key: stored.get(key) for key in self._origin(seed)}
            if recorded != self._origin(seed):
                raise DatasetError(
                    f"{path} was made from {recorded}, not from {self._origin(seed)}: give "
                    "another --out, or delete that folder's data to split this file again"
                )
        return paths

    def _store(self, path: Path, split: str, samples: OperatorSamples, seed: int) -> None:
        """One split as a stored operator dataset (lawful.data.operator_data)."""
        outputs = samples.outputs  # (N, X) or (N, X, T)
        frames = outputs.unsqueeze(1) if samples.t is None else outputs.transpose(1, 2)  # (N,T,X)
        num_samples, num_frames = frames.shape[:2]
        ends = {}
        if not isinstance(self._conditions.left, Periodic):
            no_data = torch.zeros(num_samples, num_frames, dtype=torch.float64)  # (N, T)
            for side in ("left", "right"):
                # The reader gives (N, T) with a time axis and (N,) without (one frame).
                data = samples.walls.get(f"x_{side}", no_data)
                ends[side] = data.reshape(num_samples, num_frames).contiguous()  # (N, T)
        # A single-step file has no times: its one output frame is labelled t = 1.
        t = torch.ones(1, dtype=torch.float64) if samples.t is None else samples.t
        save_dataset(
            path,
            {"inputs": samples.inputs, "outputs": frames.contiguous(), **ends},
            torch.zeros(num_samples, 0, dtype=torch.float64),
            [],
            problem=self.name,
            grid={"x": samples.grids["x"], "t": t},
            metadata={"split": split, **self._origin(seed)},
        )


def add_train_operator_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``lawful train-operator`` that say what to train on."""
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="the data file: .h5/.hdf5, .npz, .mat, or a folder of <key>.npy files",
    )
    parser.add_argument(
        "--conditions",
        required=True,
        help=f"the end conditions along x, [x=]LEFT,RIGHT with kinds {', '.join(CONDITION_KINDS)}",
    )
    parser.add_argument("--input-key", help="the file's name for the inputs (default: aliases)")
    parser.add_argument("--output-key", help="the file's name for the outputs (default: aliases)")
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="fraction of the samples held out for testing (default 0.2)",
    )
    parser.add_argument("--name", help="the experiment's name in the report (default: file name)")


def user_experiment(args: argparse.Namespace) -> FileOperatorExperiment:
    """The experiment ``lawful train-operator`` runs, from its parsed options."""
    samples = load_operator_samples(args.data, input_key=args.input_key, output_key=args.output_key)
    return FileOperatorExperiment(
        args.name or Path(args.data).stem,
        samples,
        parse_conditions(args.conditions),
        args.test_fraction,
    )
