"""lawful.bench.contention: the shares of the CPUs' time that went elsewhere while a row ran,
from /proc/stat's counters, and the table's note on rows measured on a busy machine."""

import os
import subprocess
import sys

import pytest

from lawful.bench import format_table
from lawful.bench.contention import (
    BUSY_SHARE,
    CpuCounters,
    busy_rows,
    contention,
    measured,
    read_counters,
)


def _stat(path, user, nice, system, idle, iowait, irq, softirq, steal, guest=0):
    path.write_text(
        f"cpu  {user} {nice} {system} {idle} {iowait} {irq} {softirq} {steal} {guest} 0\n"
        "cpu0 1 2 3 4 5 6 7 8 0 0\n"
    )
    return path


def test_the_counters_are_read_from_the_first_line(tmp_path):
    counters = read_counters(_stat(tmp_path / "stat", 100, 5, 30, 800, 7, 2, 3, 40, guest=60))
    # Guest time is already inside user: it is not counted twice.
    assert (counters.busy, counters.stolen, counters.total) == (140, 40, 987)
    own = os.times()
    assert 0 <= counters.own_seconds <= own.user + own.system


@pytest.mark.parametrize("text", ["", "intr 1 2 3\n", "cpu 1 2 3\n"])
def test_unreadable_counters_give_none(tmp_path, text):
    (tmp_path / "stat").write_text(text)
    assert read_counters(tmp_path / "stat") is None
    assert read_counters(tmp_path / "missing") is None


def test_the_shares_subtract_our_own_time_and_count_steal():
    # 1000 ticks of two CPUs pass: 600 busy, 200 of them this process's (2 s at 100 ticks/s),
    # 100 stolen.
    before = CpuCounters(busy=5000, stolen=700, total=20_000, own_seconds=10.0)
    after = CpuCounters(busy=5600, stolen=800, total=21_000, own_seconds=12.0)
    assert contention(before, after, ticks_per_second=100) == pytest.approx(
        {"cpu_elsewhere": 0.4, "cpu_stolen": 0.1}
    )
    # Our clock finer than the kernel's ticks: more own time than busy ticks is clamped at 0.
    ahead = CpuCounters(busy=5100, stolen=700, total=21_000, own_seconds=13.0)
    assert contention(before, ahead, ticks_per_second=100)["cpu_elsewhere"] == 0
    # No tick passed: nothing is claimed.
    assert contention(before, before, ticks_per_second=100) == {
        "cpu_elsewhere": 0.0,
        "cpu_stolen": 0.0,
    }


def test_a_measured_block_sees_another_process_busy():
    if read_counters() is None:
        pytest.skip("no /proc/stat on this system")
    spin = "import time\nend = time.perf_counter() + 0.5\nwhile time.perf_counter() < end: pass"
    with measured() as shares:
        subprocess.run([sys.executable, "-c", spin], check=True)  # another process, busy
    assert set(shares) == {"cpu_elsewhere", "cpu_stolen"}
    # About 0.5 s of one CPU in a window a little longer, on every CPU the machine has; half
    # of that share leaves room for time the hypervisor steals from the child.
    assert shares["cpu_elsewhere"] >= 0.5 / (os.cpu_count() or 1) * 0.5


def test_the_table_names_rows_measured_on_a_busy_machine():
    row = {
        "name": "quiet",
        "ours_s": 1.0,
        "baseline_s": 1.0,
        "ratio": 1.0,
        "target": "<= 1.1x the FNO",
        "met": True,
        "cpu_elsewhere": BUSY_SHARE,
        "cpu_stolen": 0.0,
    }
    busy = {**row, "name": "busy", "cpu_stolen": 0.33}
    assert busy_rows([row]) == []
    assert busy_rows([row, busy]) == [
        "busy machine during busy: 10% of the CPUs' time in other processes, 33% stolen by the "
        "hypervisor"
    ]
    lines = format_table([row, busy]).splitlines()
    assert len(lines) == 4 and lines[-1].startswith("busy machine during busy: ")
