"""How much of the machine a benchmark row had to itself.

A ratio is only as steady as the machine under it: on a 2-core virtual machine a second torch
job slows a step 4-7x, and the hypervisor can take a third of the CPUs' time (steal) without
any process of ours running. Each row of ``lawful bench`` therefore records, from the kernel's
counters in ``/proc/stat`` read before and after it, the share of all CPUs' time in which they
ran other processes (``cpu_elsewhere``) and in which the hypervisor ran something else
(``cpu_stolen``). The table names the rows where either passed :data:`BUSY_SHARE`, so a ratio
measured on a busy machine is not read as a steady one. The counters see CPU time only: a row
not flagged can still be slowed by what they miss (a neighbour's memory traffic on the host,
its clock speed), so the ratios' spread over repeated runs stays the measure of their
steadiness. Off Linux the counters are not there and rows carry neither field.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUSY_SHARE", "CpuCounters", "busy_rows", "contention", "measured", "read_counters"]

#: Above this share of the CPUs' time spent elsewhere or stolen, a row's ratio is flagged.
BUSY_SHARE = 0.1

STAT = Path("/proc/stat")


@dataclass(frozen=True)
class CpuCounters:
    """All CPUs' time since boot, in clock ticks (``/proc/stat``'s first line), and this
    process's CPU time, in seconds, at one moment."""

    busy: int  # user, nice, system, irq and softirq: running anything (guest time is in user)
    stolen: int  # steal: a virtual CPU ready to run while the hypervisor ran something else
    total: int  # every state but guest: busy, idle, iowait and steal
    own_seconds: float  # this process, all its threads, user plus system


def read_counters(stat: Path = STAT) -> CpuCounters | None:
    """The counters now, or ``None`` where ``stat`` cannot be read (not Linux)."""
    try:
        first = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if first[0] != "cpu" or len(first) < 9:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    own = os.times()
    return CpuCounters(
        busy=user + nice + system + irq + softirq,
        stolen=steal,
        total=user + nice + system + idle + iowait + irq + softirq + steal,
        own_seconds=own.user + own.system,
    )


def contention(
    before: CpuCounters, after: CpuCounters, ticks_per_second: int | None = None
) -> dict[str, float]:
    """``cpu_elsewhere`` and ``cpu_stolen`` between two readings, each a share of all CPUs'
    time in ``[0, 1]``. Other processes' time is the busy time less this process's own; the
    two clocks tick at different resolutions, so it is clamped at zero."""
    ticks_per_second = ticks_per_second or os.sysconf("SC_CLK_TCK")
    total = after.total - before.total
    if total <= 0:  # no tick passed: nothing can be said
        return {"cpu_elsewhere": 0.0, "cpu_stolen": 0.0}
    own = (after.own_seconds - before.own_seconds) * ticks_per_second
    elsewhere = max(after.busy - before.busy - own, 0.0) / total
    return {
        "cpu_elsewhere": min(elsewhere, 1.0),
        "cpu_stolen": (after.stolen - before.stolen) / total,
    }


@contextlib.contextmanager
def measured() -> Iterator[dict[str, float]]:
    """A dict that holds, once the block ends, :func:`contention` over the block (empty where
    the counters cannot be read)."""
    shares: dict[str, float] = {}
    before = read_counters()
    yield shares
    after = read_counters()
    if before is not None and after is not None:
        shares.update(contention(before, after))


def busy_rows(results: list[dict]) -> list[str]:
    """One line per row measured while more than :data:`BUSY_SHARE` of the CPUs' time went to
    other processes or was stolen."""
    lines = []
    for result in results:
        elsewhere, stolen = result.get("cpu_elsewhere", 0.0), result.get("cpu_stolen", 0.0)
        if max(elsewhere, stolen) > BUSY_SHARE:
            lines.append(
                f"busy machine during {result['name']}: {elsewhere:.0%} of the CPUs' time "
                f"in other processes, {stolen:.0%} stolen by the hypervisor"
            )
    return lines
