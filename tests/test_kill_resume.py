"""Interrupted work: a real ``lawful run``, killed with SIGKILL at several points and rerun in
the same folder each time, ends with the metrics and weights of an uninterrupted run, and no kill
leaves a partial file under a final name.

The run is a child process in its own process group. Near each point the test stops it (SIGSTOP)
and steps it on in slices of half a millisecond, reading the file system while it stands still:
each kill happens in exactly the state it is named after (a dataset half written, a model with a
checkpoint but no weights, ...), and the test checks that it did: the child died of SIGKILL,
before it wrote ``metrics.json``. A point the stepping cannot catch fails the test; none is
skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lawful.data.store import load_dataset
from lawful.experiments.boundary import BOUNDARY_EXPERIMENTS, PRESETS

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGKILL") or not hasattr(os, "killpg"), reason="needs POSIX signals"
)

# Two tasks x four methods: eight models of two epochs each, about 6 s a run on one thread.
EXPERIMENT = "heat-neumann"
PRESET = "tiny"
STEP_S = 0.0005  # how long the stopped child runs between two looks at its files
POLL_S = 0.002  # how often a freely running child's files are looked at
DEADLINE_S = 120.0  # for any one point (a run takes seconds)


class Child:
    """``lawful run`` in a process group of its own, which the test stops, steps and kills.

    The test reaps the child itself (``os.waitpid``, which also reports a stop), so it never
    asks ``Popen`` for the status.
    """

    def __init__(self, out: Path, log: Path) -> None:
        command = [sys.executable, "-m", "lawful.cli", "run", EXPERIMENT]
        command += ["--preset", PRESET, "--out", str(out), "--no-progress"]
        environment = {**os.environ, "OMP_NUM_THREADS": "1"}  # deterministic and fast
        environment.pop("LAWFUL_PLUGINS", None)
        self.log = log
        with log.open("ab") as stream:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stream,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,  # its own process group: a kill reaches any child of it
            )
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def _record(self, status: int) -> None:
        self.returncode = self.process.returncode = os.waitstatus_to_exitcode(status)

    def _signal(self, number: int) -> None:
        # The child itself first: until it has called setsid, its group does not exist yet.
        # Until it is reaped, its pid is its own (a zombie takes the signal and ignores it).
        os.kill(self.pid, number)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, number)  # and anything it started

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._record(status)
        return self.returncode

    def stop(self) -> bool:
        """Stop the child; whether it stands still (false: it has exited)."""
        if self.returncode is not None:
            return False
        self._signal(signal.SIGSTOP)
        _, status = os.waitpid(self.pid, os.WUNTRACED)
        if os.WIFSTOPPED(status):
            return True
        self._record(status)
        return False

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.returncode is None:
            self._signal(signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
            self._record(status)

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.returncode

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


class RunFiles:
    """Where ``lawful run`` puts its files (BoundaryExperiment, train_operator)."""

    def __init__(self, out: Path) -> None:
        experiment = BOUNDARY_EXPERIMENTS[EXPERIMENT]
        self.out, self.data = out, out / "data"
        self.metrics = out / "metrics.json"
        self.test_data = self.data / "test.h5"  # the last dataset written
        models = [(task, method) for task in experiment.tasks for method in experiment.methods]
        self.weights = [  # in the order they are trained
            out / "models" / task.label / experiment.methods[method].weights_file
            for task, method in models
        ]
        self.epochs = {  # how many each trains for
            path: PRESETS[PRESET].operator(task).epochs
            for path, (task, _) in zip(self.weights, models, strict=True)
        }

    @staticmethod
    def last_checkpoint(weights: Path) -> Path:
        return weights.parent / f"checkpoints-{weights.stem}" / "last.ckpt"

    def half_written_datasets(self) -> list[Path]:
        return sorted(self.data.glob(".*.h5.*.partial"))

    def trained(self) -> list[Path]:
        return [path for path in self.weights if path.exists()]

    def checkpointed_not_trained(self) -> list[Path]:
        """Models with a checkpoint but no weights yet: interrupted in the middle of training."""
        return [
            path
            for path in self.weights
            if self.last_checkpoint(path).exists() and not path.exists()
        ]

    def figures(self) -> list[Path]:
        return sorted(self.out.glob("*.png"))


def checkpoint_epoch(path: Path) -> int:
    """The (0-based) epoch at whose end ``path`` was saved."""
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def assert_complete(files: RunFiles) -> None:
    """Every file under a final name reads back whole: a kill left only ``.partial`` files."""
    for path in sorted(files.data.glob("*.h5")):
        load_dataset(path)  # a truncated or half-written file is a DatasetError
    for path in files.trained():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        assert set(saved) == {"identity", "state_dict"}, path
    for path in files.weights:
        checkpoint = files.last_checkpoint(path)
        if checkpoint.exists():
            checkpoint_epoch(checkpoint)
            json.loads((checkpoint.parent / "identity.json").read_text())


def kill_when(
    child: Child,
    what: str,
    reached: Callable[[], bool],
    passed: Callable[[], bool],
    near: Callable[[], bool] = lambda: True,
) -> None:
    """Let ``child`` run until ``near()``, then step it until it stands still in a state where
    ``reached()``, and SIGKILL it there. Fails if it gets ``passed()`` that state first (or
    finishes)."""
    deadline = time.monotonic() + DEADLINE_S
    while not near():
        assert child.poll() is None, f"the run ended before {what}:\n{child.log_tail()}"
        assert time.monotonic() < deadline, f"no sign of {what} in {DEADLINE_S} s"
        time.sleep(POLL_S)
    while True:
        assert child.stop(), f"the run ended before {what}:\n{child.log_tail()}"
        if reached():
            child.kill()
            assert child.returncode == -signal.SIGKILL, child.returncode
            return
        assert not passed(), f"stepped past {what} without stopping in it"
        assert time.monotonic() < deadline, f"no {what} in {DEADLINE_S} s"
        child.resume()
        time.sleep(STEP_S)


@pytest.fixture
def children():
    """Every child started; whatever a failing test left running is killed."""
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def test_a_run_killed_at_every_stage_resumes_to_the_uninterrupted_result(tmp_path, children):
    def start(out: Path) -> Child:
        child = Child(out, tmp_path / f"run-{len(children)}.log")
        children.append(child)
        return child

    reference = RunFiles(tmp_path / "reference")
    assert start(reference.out).wait(DEADLINE_S) == 0, children[-1].log_tail()

    files = RunFiles(tmp_path / "interrupted")
    settings = files.out / "settings.json"  # rewritten by every run before it generates data

    def interrupt(
        what: str,
        reached: Callable[[], bool],
        passed: Callable[[], bool],
        near: Callable[[], bool] = lambda: True,
    ) -> Child:
        """Run again in ``files.out`` and kill the run where ``reached()``."""
        before = settings.stat().st_mtime_ns if settings.exists() else None

        def begun() -> bool:  # this run has imported and started (not stepped through)
            return settings.exists() and settings.stat().st_mtime_ns != before

        child = start(files.out)
        kill_when(child, what, reached, passed, near=lambda: begun() and near())
        assert not files.metrics.exists(), f"killed after the end of the run ({what})"
        assert_complete(files)
        return child

    def everything_trained() -> bool:
        return len(files.trained()) == len(files.weights)

    # 1. Data generation, in the middle of writing a dataset file.
    interrupt(
        "a dataset being written",
        reached=lambda: bool(files.half_written_datasets()),
        passed=files.test_data.exists,
    )
    (half_written,) = files.half_written_datasets()
    final_name = files.data / (half_written.name[1:].split(".h5.")[0] + ".h5")  # .NAME.h5.*
    assert not final_name.exists(), "a half-written dataset is under its final name"

    # 2. Training, after a model's first checkpoint: more epochs to go.
    def mid_training() -> bool:
        return any(
            checkpoint_epoch(files.last_checkpoint(path)) < files.epochs[path] - 1
            for path in files.checkpointed_not_trained()
        )

    interrupt(
        "a model between two epochs",
        reached=mid_training,
        passed=everything_trained,
        near=(files.out / "models").exists,
    )
    (interrupted,) = files.checkpointed_not_trained()
    trained_before = len(files.trained())

    # 3. Between two models: the interrupted one finished, the next not yet checkpointed.
    child = interrupt(
        "the gap between two models",
        reached=lambda: (
            len(files.trained()) > trained_before and not files.checkpointed_not_trained()
        ),
        passed=everything_trained,
    )
    restored = f"Restored all states from the checkpoint at {files.last_checkpoint(interrupted)}"
    assert restored in child.log.read_text(), f"{interrupted} was trained again, not resumed"
    assert interrupted.exists()

    # 4. Evaluation, after its first figure, before metrics.json.
    interrupt(
        "the evaluation",
        reached=lambda: bool(files.figures()),
        passed=files.metrics.exists,
        near=everything_trained,
    )

    last = start(files.out)
    assert last.wait(DEADLINE_S) == 0, last.log_tail()
    assert_complete(files)

    # The same numbers as the uninterrupted run, to the bit: every weight and every metric.
    for ours, theirs in zip(files.weights, reference.weights, strict=True):
        resumed = torch.load(ours, weights_only=True)["state_dict"]
        expected = torch.load(theirs, weights_only=True)["state_dict"]
        assert resumed.keys() == expected.keys()
        for name in expected:
            assert torch.equal(resumed[name], expected[name]), f"{ours}: {name} differs"
    assert files.metrics.read_text() == reference.metrics.read_text()
