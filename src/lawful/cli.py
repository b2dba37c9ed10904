"""The ``lawful`` command.

lawful run EXPERIMENT [--preset quick|paper] [--out DIR] [--device DEV] [--seed N]
                      [--seeds S,S,...] [--reference DIR] [--precision P]
lawful data|train|evaluate EXPERIMENT [same options]    one stage alone
lawful condition --prediction FILE --out FILE [--grid FILE.npy] [--mass NUMBER|FILE.npy]
                 [--walls LEFT,RIGHT] [--lower L] [--upper U]
                                                         exact mass on any model's predictions
lawful train-operator --data FILE --conditions KIND[,KIND] [--out DIR] [run options]
                                                         FNO and BOON on your own data
lawful solve cavity --re RE --n N --steady --out DIR   our cavity solver to its steady state
lawful bench [--json] [--quick] [--device DEV] [--scaling [--out DIR]]
lawful list

Every command takes ``--plugin FILE`` (repeatable; also ``LAWFUL_PLUGINS``, separated by
``os.pathsep``): a Python file whose experiments register themselves (lawful.experiments.registry).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from lawful.allocator import keep_freed_memory
from lawful.conditioning import add_condition_arguments, format_summary, run_condition
from lawful.experiments import (
    PRESET_NAMES,
    STAGES,
    ExperimentError,
    RunSettings,
    experiments,
    get_experiment,
    load_plugins,
)
from lawful.experiments.seeds import parse_seeds, run_seeds
from lawful.experiments.user_data import add_train_operator_arguments, user_experiment
from lawful.solving import add_solve_arguments, run_solve
from lawful.training.trainer import PRECISIONS

PLUGINS_VARIABLE = "LAWFUL_PLUGINS"


def _add_plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a Python file that registers experiments of its own (repeatable)",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """How to run: preset, output, device, seed, devices, progress."""
    parser.add_argument(
        "--preset", default="quick", choices=PRESET_NAMES, help="sizes (default quick)"
    )
    parser.add_argument("--out", type=Path, help="output folder (default runs/EXPERIMENT-PRESET)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    seeds.add_argument(
        "--seeds",
        type=parse_seeds,
        metavar="S,S,...",
        help="one run per seed into OUT/seed-S, then their metrics as mean and spread",
    )
    parser.add_argument(
        "--devices", type=int, default=1, help="train data-parallel on this many devices (DDP)"
    )
    parser.add_argument(
        "--precision",
        default="32-true",
        choices=PRECISIONS,
        help="training precision of neural operators: 32-true (default), bf16-mixed or "
        "16-mixed (CUDA); evaluation and boundaries stay float32",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_plugin_option(parser)


def _add_experiment_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", choices=sorted(experiments()), help="which experiment")
    _add_run_options(parser)


def build_parser() -> argparse.ArgumentParser:
    """The parser, with every experiment registered so far (load plugins first)."""
    parser = argparse.ArgumentParser(
        prog="lawful",
        description="Physics-constrained machine learning: exact conservation and boundaries.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="generate data, train, evaluate and report")
    _add_experiment_options(run)
    run.add_argument(
        "--reference",
        type=Path,
        help="evaluate published checkpoints in this folder instead of training (conservation)",
    )
    for stage, description in zip(
        STAGES, ("regenerate the data", "train the models", "evaluate and report"), strict=True
    ):
        _add_experiment_options(commands.add_parser(stage, help=description))
    condition = commands.add_parser(
        "condition", help="condition a prediction file on exact conservation (ProbConserv)"
    )
    add_condition_arguments(condition)
    train_operator = commands.add_parser(
        "train-operator", help="train an FNO and BOON on your own data file"
    )
    add_train_operator_arguments(train_operator)
    _add_run_options(train_operator)
    add_solve_arguments(commands.add_parser("solve", help="run one of our solvers on its own"))
    bench = commands.add_parser("bench", help="print the benchmark table")
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench.add_argument("--quick", action="store_true", help="smaller sizes (seconds, for tests)")
    bench.add_argument(
        "--device", default="cpu", help="where the tensors live: cpu or cuda (default cpu)"
    )
    bench.add_argument(
        "--scaling",
        action="store_true",
        help="how each cost grows with the grid: log-log plots and fitted slopes",
    )
    bench.add_argument(
        "--out", type=Path, help="folder for the scaling plot and JSON (default runs/bench-scaling)"
    )
    _add_plugin_option(commands.add_parser("list", help="list the experiments"))
    return parser


def _plugin_paths(argv: list[str]) -> list[Path]:
    """The plugin files named in ``argv`` and in the environment, before the full parse (the
    experiments they register are choices of the full parser)."""
    early = argparse.ArgumentParser(add_help=False)
    _add_plugin_option(early)
    named = early.parse_known_args(argv)[0].plugin
    from_environment = [Path(p) for p in os.environ.get(PLUGINS_VARIABLE, "").split(os.pathsep)]
    return [*(p for p in from_environment if str(p) not in ("", ".")), *named]


def _check_output_folder(out: Path) -> None:
    """A clear error now, not a traceback later, for an ``--out`` that cannot hold the run."""
    existing = next((folder for folder in (out, *out.parents) if folder.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise ValueError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: {existing} is not writable")


def _check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {device}: CUDA is not available on this machine (use --device cpu)"
            )


def _error(message: object) -> int:
    print(f"lawful: error: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    keep_freed_memory()  # every command trains, solves or times: no page faults between steps
    try:
        load_plugins(_plugin_paths(argv))
    except ExperimentError as error:
        return _error(error)
    args = build_parser().parse_args(argv)
    if args.command == "list":
        registered = experiments()
        width = max(len(name) for name in registered)
        for name, experiment in registered.items():
            print(f"{name:{width}s}  {experiment.kind}")
        return 0
    if args.command == "bench" and args.scaling:
        from lawful.bench.scaling import format_slopes, run_scaling, write_scaling

        if args.device != "cpu":
            return _error(f"--scaling times the CPU only; it cannot run on {args.device!r}")
        out = args.out or Path("runs") / "bench-scaling"
        try:
            _check_output_folder(out)
        except ValueError as error:
            return _error(error)
        series = run_scaling(quick=args.quick)
        json_path, figure_path = write_scaling(series, out)
        print(format_slopes(series))
        print(f"lawful: wrote {json_path} and {figure_path}", file=sys.stderr)
        return 0
    if args.command == "bench":
        if args.out is not None:
            return _error(
                "--out names the folder of --scaling's plot and JSON; the table prints to "
                "stdout (--json for JSON)"
            )
        import torch

        from lawful.bench import format_table, run_benchmarks

        try:
            _check_device(args.device)
            device = torch.device(args.device)  # a name torch does not know is an error here
        except (ValueError, RuntimeError) as error:
            return _error(error)
        results = run_benchmarks(quick=args.quick, device=str(device))
        print(json.dumps(results, indent=2) if args.json else format_table(results))
        return 0
    if args.command == "solve":
        try:
            _check_output_folder(args.out)  # before the solve, which may take minutes
            summary = run_solve(args)
        except (OSError, ValueError, RuntimeError, FloatingPointError) as error:
            return _error(error)
        print(
            f"lawful: wrote {summary['out']}/cavity.h5 and centerlines.json "
            f"(Re {summary['reynolds']:g}, n {summary['n']}, steady at t = {summary['time']:.3g}, "
            f"change rate {summary['change_rate']:.1e})",
            file=sys.stderr,
        )
        return 0
    if args.command == "condition":
        try:
            summary = run_condition(args)
        except (FileNotFoundError, ValueError) as error:  # PredictionFileError is a ValueError
            return _error(error)
        print(f"lawful: {format_summary(summary)}", file=sys.stderr)
        return 0

    try:
        if args.command == "train-operator":
            experiment = user_experiment(args)
        else:
            experiment = get_experiment(args.experiment)
        out = args.out or Path("runs") / f"{experiment.name}-{args.preset}"
        _check_output_folder(out)
        _check_device(args.device)
        if args.command in STAGES:
            stages: tuple[str, ...] = (args.command,)
            if args.command == "data":
                shutil.rmtree(out / "data", ignore_errors=True)  # regenerate, not resume
        else:
            stages = STAGES
        reference = getattr(args, "reference", None)
        if reference is not None and not Path(reference).is_dir():
            raise FileNotFoundError(f"reference folder {reference} does not exist")

        def run_one(seed: int, folder: Path) -> dict | None:
            settings = RunSettings(
                out=folder,
                preset=args.preset,
                device=args.device,
                seed=seed,
                reference=reference,
                stages=stages,
                progress=not args.no_progress,
                num_devices=args.devices,
                precision=args.precision,
                log=lambda message: print(f"lawful: {message}", file=sys.stderr, flush=True),
            )
            return experiment.run(settings)

        if args.seeds is None:
            metrics = run_one(args.seed, out)
        else:
            metrics = run_seeds(run_one, args.seeds, out)
    except (OSError, ValueError) as error:  # ExperimentError, DatasetError, WeightsError too
        return _error(error)
    if metrics is not None:
        print(f"lawful: wrote {out / 'metrics.json'} and {out / 'report.md'}", file=sys.stderr)
        print((out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
