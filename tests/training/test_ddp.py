"""Data-parallel training for real: two processes under torchrun, gloo on the CPU."""

import os
import subprocess
import sys

import torch

from lawful.experiments.conservation import PRESETS, build_anp


def test_two_process_training_under_torchrun(tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "lawful.cli", "train", "stefan", "--preset", "tiny", "--devices", "2",
        "--out", str(out), "--no-progress",
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=environment, check=False
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    # Both ranks joined one process group, and only the main one wrote the weights.
    assert "distributed_backend=gloo" in finished.stderr
    assert "All distributed processes registered" in finished.stderr
    for name in ("anp.pt", "pinp.pt"):
        trained = build_anp(PRESETS["tiny"])
        trained.load_state_dict(torch.load(out / "models" / name, weights_only=True))
        torch.manual_seed(0)
        initial = build_anp(PRESETS["tiny"])
        assert any(
            not torch.equal(a, b)
            for a, b in zip(
                trained.state_dict().values(), initial.state_dict().values(), strict=True
            )
        )
