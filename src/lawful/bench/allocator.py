"""What keeping freed memory (lawful.allocator) does to a training step: the same 1-D FNO step
timed in two fresh Python processes, one with glibc's default malloc settings and one after
:func:`~lawful.allocator.keep_freed_memory`, each reporting its median step and its minor page
faults per step.

Fresh processes, because the setting is process-wide and cannot be undone, and because with the
defaults a step's faults depend on everything the process allocated before it.
"""

from __future__ import annotations

import json
import subprocess
import sys

__all__ = ["fresh_process_step"]

# Run in the child: build the bench's 1-D FNO step, time it, count its page faults, print JSON.
_CHILD = """
import json, resource, statistics, sys, time
import torch
from lawful.allocator import keep_freed_memory
kept = {kept}
if kept and not keep_freed_memory():
    sys.exit("lawful.allocator: freed memory cannot be kept on this C library")
from lawful.bench.operators import training_step
from lawful.operators.fno import FNO1d
torch.manual_seed(0)
fno = FNO1d(1, 1, {width}, {modes})
x, target = torch.randn(2, {batch}, 1, {num_points})  # (batch, channels, x) each
step = training_step(fno, x, target)
for _ in range({warmup}):
    step()
faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
seconds = []
for _ in range({repeats}):
    start = time.perf_counter()
    step()
    seconds.append(time.perf_counter() - start)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
print(json.dumps({{"seconds": statistics.median(seconds), "faults_per_step": faults / {repeats}}}))
"""


def fresh_process_step(
    kept: bool,
    width: int = 64,
    modes: int = 16,
    num_points: int = 500,
    batch: int = 20,
    repeats: int = 20,
    warmup: int = 3,
) -> dict[str, float]:
    """``{"seconds": median seconds per step, "faults_per_step": minor page faults}`` of the 1-D
    FNO training step (lawful.bench.operators) in a new Python process, with freed memory kept
    (``kept``) or glibc's defaults. Raises ``RuntimeError`` with the child's error if it fails."""
    code = _CHILD.format(
        kept=kept,
        width=width,
        modes=modes,
        num_points=num_points,
        batch=batch,
        repeats=repeats,
        warmup=warmup,
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if child.returncode:
        last_line = (child.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"the timing process failed: {last_line}")
    return json.loads(child.stdout.strip().splitlines()[-1])
