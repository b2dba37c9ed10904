"""Keeping freed memory: set where the C library is glibc, a named no-op elsewhere, and it stops
a training step's page faults. Fault counts, not timings: no timing is asserted."""

import platform

import pytest

from lawful import allocator
from lawful.bench import bench_kept_memory
from lawful.bench.allocator import fresh_process_step

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc switches")
def test_keeping_freed_memory_is_set_once_and_recorded(monkeypatch):
    monkeypatch.setattr(allocator, "_state", "default")
    assert allocator.keep_freed_memory()
    state = allocator.allocator_state()
    assert state.startswith("kept") and str(allocator.MMAP_THRESHOLD) in state
    assert allocator.keep_freed_memory() and allocator.allocator_state() == state


def test_another_c_library_is_left_alone_and_named(monkeypatch):
    monkeypatch.setattr(allocator, "_state", "default")
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert not allocator.keep_freed_memory()
    assert allocator.allocator_state().startswith("default (not glibc")


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc switches")
def test_kept_memory_stops_the_page_faults_of_a_training_step():
    # Fields of 8 x 32 x 500 float32 (500 KiB) are above glibc's initial mmap threshold.
    sizes = {"width": 32, "modes": 8, "num_points": 500, "batch": 8, "repeats": 5, "warmup": 3}
    default = fresh_process_step(False, **sizes)
    kept = fresh_process_step(True, **sizes)
    assert default["faults_per_step"] > 500  # every step faults its fields in again
    assert kept["faults_per_step"] < default["faults_per_step"] / 5


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc switches")
def test_the_bench_row_reports_both_steps_and_their_faults():
    row = bench_kept_memory(width=8, modes=4, num_points=32, batch=2, repeats=2)
    assert row["ours_s"] > 0 and row["baseline_s"] > 0
    assert row["ratio"] == pytest.approx(row["ours_s"] / row["baseline_s"], rel=1e-12)
    assert row["met"] == (row["ratio"] <= 1)
    assert row["ours_faults_per_step"] >= 0 and row["baseline_faults_per_step"] >= 0


def test_a_timing_process_that_fails_is_named(monkeypatch):
    monkeypatch.setattr(allocator, "_state", "default")
    with pytest.raises(RuntimeError, match="the timing process failed"):
        fresh_process_step(False, width=0)  # FNO1d(width=0) is refused in the child
