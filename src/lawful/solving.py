"""``lawful solve cavity``: our lid-driven cavity solver on its own, to its steady state.

``lawful solve cavity --re 1000 --n 129 --steady --out DIR`` marches the cavity (lid at y = 1
moving in +x at speed 1, the other walls at rest) from rest until the velocity's relative change
per unit time falls below ``--tolerance``, and writes

- ``DIR/cavity.h5``: the steady fields ``u``, ``v``, ``vorticity`` (n, n), indexed [x, y],
  the grids ``x``, ``y`` (n,), and attributes ``reynolds``, ``time``, ``change_rate``, ``dt``;
- ``DIR/centerlines.json``: ``{"re", "n", "y", "u", "x", "v"}``: u along the vertical centre line
  x = 0.5 as a function of y, and v along the horizontal centre line y = 0.5 as a function of x
  (linear interpolation between the two middle nodes when n is even), the form in which Ghia,
  Ghia and Shin (1982) tabulate the benchmark.

Both files are written atomically (a temporary file in ``DIR``, then renamed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import h5py
from torch import Tensor

from lawful.data.store import write_atomically, write_text_atomically
from lawful.pdes.cavity import SteadyCavity, steady_cavity

__all__ = ["add_solve_arguments", "centre_lines", "run_solve", "write_steady_cavity"]


def add_solve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("problem", choices=["cavity"], help="which solver")
    parser.add_argument("--re", type=float, default=100.0, help="Reynolds number (default 100)")
    parser.add_argument("--n", type=int, default=65, help="grid points per side (default 65)")
    parser.add_argument(
        "--steady", action="store_true", required=True, help="march to the steady state"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="relative change per unit time that counts as steady (default 1e-4)",
    )
    parser.add_argument(
        "--max-time", type=float, default=200.0, help="give up after this time (default 200)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def _at_middle(field: Tensor) -> Tensor:
    """``field`` (n, ...) at the middle of its first axis, interpolated when n is even."""
    n = field.shape[0]
    if n % 2:
        return field[n // 2]
    return 0.5 * (field[n // 2 - 1] + field[n // 2])


def centre_lines(flow: SteadyCavity) -> dict[str, Any]:
    """u on x = 0.5 against y, and v on y = 0.5 against x (fields indexed [x, y])."""
    return {
        "re": flow.reynolds,
        "n": flow.x.numel(),
        "y": flow.y.tolist(),
        "u": _at_middle(flow.u).tolist(),  # (n,) over y
        "x": flow.x.tolist(),
        "v": _at_middle(flow.v.T).tolist(),  # (n,) over x
    }


def write_steady_cavity(flow: SteadyCavity, out: Path) -> dict[str, Any]:
    """Write ``cavity.h5`` and ``centerlines.json`` into ``out``; returns the centre lines."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)

    def write_fields(path: Path) -> None:
        with h5py.File(path, "w") as file:
            for name in ("u", "v", "vorticity", "x", "y"):
                file[name] = getattr(flow, name).cpu().numpy()
            for name in ("reynolds", "time", "change_rate", "dt"):
                file.attrs[name] = getattr(flow, name)

    lines = centre_lines(flow)
    write_atomically(out / "cavity.h5", write_fields)
    write_text_atomically(out / "centerlines.json", json.dumps(lines) + "\n")
    return lines


def run_solve(args: argparse.Namespace) -> dict[str, Any]:
    """The solve the command asks for; a summary for the command line to print."""
    flow = steady_cavity(args.re, args.n, tolerance=args.tolerance, max_time=args.max_time)
    write_steady_cavity(flow, args.out)
    return {
        "out": str(args.out),
        "reynolds": flow.reynolds,
        "n": args.n,
        "time": flow.time,
        "change_rate": flow.change_rate,
    }
