"""Data-parallel training for real: two processes under torchrun, gloo on the CPU."""

import os
import subprocess
import sys

import torch
from lightning.pytorch.utilities import rank_zero_only

from lawful.experiments import RunSettings, Task, conservation
from lawful.experiments.boundary import BOUNDARY_EXPERIMENTS
from lawful.experiments.boundary import PRESETS as BOUNDARY_PRESETS
from lawful.experiments.conservation import PRESETS, build_anp
from lawful.pdes import get_conservation_problem
from lawful.training.trainer import load_weights, save_weights


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
        load_weights(trained, out / "models" / name, name)
        torch.manual_seed(0)
        initial = build_anp(PRESETS["tiny"])
        assert any(
            not torch.equal(a, b)
            for a, b in zip(
                trained.state_dict().values(), initial.state_dict().values(), strict=True
            )
        )


def test_a_rank_that_skips_training_still_answers_as_its_rank(tmp_path, monkeypatch):
    """Weights already on disk (a rerun): rank 1 must not take itself for the main process."""
    heat = BOUNDARY_EXPERIMENTS["heat-neumann"]
    task, preset = Task("single-step"), BOUNDARY_PRESETS["tiny"]
    weights = tmp_path / "fno.pt"
    save_weights(
        heat.build_model("FNO", task, preset), weights, heat.model_identity("FNO", task, preset)
    )
    models = tmp_path / "models"
    models.mkdir()
    for trained in conservation.TRAINED_METHODS.values():
        torch.save(build_anp(PRESETS["tiny"]).state_dict(), models / trained.weights_file)
    problem = get_conservation_problem("stefan")
    for rank, is_main in ((0, True), (1, False)):
        monkeypatch.setattr(rank_zero_only, "rank", rank)
        settings = RunSettings(tmp_path, "tiny", progress=False)
        args = ("FNO", task, preset, [], weights, 0, settings)
        assert heat.train_model(*args) is is_main
        trained = conservation.train(problem, PRESETS["tiny"], None, models, "cpu", 0, False)
        assert (trained is not None) is is_main
