"""The ``lawful`` command.

lawful run EXPERIMENT [--preset quick|paper] [--out DIR] [--device DEV] [--seed N]
                      [--reference DIR]
lawful data|train|evaluate EXPERIMENT [same options]    one stage alone
lawful bench [--json] [--quick]
lawful list
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from lawful.experiments import EXPERIMENTS, PRESET_NAMES, run_experiment

STAGES = ("data", "train", "evaluate")


def _add_experiment_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS), help="which experiment")
    parser.add_argument(
        "--preset", default="quick", choices=PRESET_NAMES, help="sizes (default quick)"
    )
    parser.add_argument("--out", type=Path, help="output folder (default runs/EXPERIMENT-PRESET)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--devices", type=int, default=1, help="train data-parallel on this many devices (DDP)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
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
    bench = commands.add_parser("bench", help="print the benchmark table")
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench.add_argument("--quick", action="store_true", help="smaller sizes (seconds, for tests)")
    commands.add_parser("list", help="list the experiments")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        width = max(len(name) for name in EXPERIMENTS)
        for name, kind in sorted(EXPERIMENTS.items()):
            print(f"{name:{width}s}  {kind}")
        return 0
    if args.command == "bench":
        from lawful.bench import format_table, run_benchmarks

        results = run_benchmarks(quick=args.quick)
        print(json.dumps(results, indent=2) if args.json else format_table(results))
        return 0

    out = args.out or Path("runs") / f"{args.experiment}-{args.preset}"
    if args.command == "run":
        stages = STAGES
    else:
        stages = (args.command,)
        if args.command == "data":
            shutil.rmtree(out / "data", ignore_errors=True)  # regenerate, not resume
    reference = getattr(args, "reference", None)
    if reference is not None and not Path(reference).is_dir():
        print(f"lawful: reference folder {reference} does not exist", file=sys.stderr)
        return 2
    try:
        metrics = run_experiment(
            args.experiment,
            preset=args.preset,
            out=out,
            device=args.device,
            seed=args.seed,
            reference=reference,
            stages=stages,
            progress=not args.no_progress,
            num_devices=args.devices,
            log=lambda message: print(f"lawful: {message}", file=sys.stderr, flush=True),
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"lawful: error: {error}", file=sys.stderr)
        return 1
    if metrics is not None:
        print(f"lawful: wrote {out / 'metrics.json'} and {out / 'report.md'}", file=sys.stderr)
        print((out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
