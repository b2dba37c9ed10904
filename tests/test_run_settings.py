"""settings.json records what shaped a run: the preset, the seed, and the environment."""

import json

import pytest
import torch

from lawful.allocator import allocator_state
from lawful.experiments._runs import record_settings, run_environment
from lawful.experiments.cavity import PRESETS


def test_settings_record_the_preset_seed_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    record_settings(tmp_path / "run", "cavity", "tiny", PRESETS["tiny"], seed=3, device="cpu")
    settings = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert settings["experiment"] == "cavity" and settings["seed"] == 3
    assert settings["resolution"] == PRESETS["tiny"].resolution
    environment = settings["environment"]
    assert environment["packages"]["torch"] == torch.__version__
    assert environment["torch_threads"] == torch.get_num_threads()
    assert environment["thread_variables"]["OMP_NUM_THREADS"] == "1"
    assert environment["device"] == "cpu"
    assert environment["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert environment["allocator"] == allocator_state()
    assert not list((tmp_path / "run").glob("*.partial"))  # written atomically


def test_the_environment_is_json_and_names_no_cuda_device_on_the_cpu():
    environment = run_environment("cpu")
    assert json.loads(json.dumps(environment)) == environment
    assert "cuda" not in environment


def test_a_folder_holding_another_runs_settings_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    record_settings(out, "cavity", "tiny", PRESETS["tiny"], seed=3)
    record_settings(out, "cavity", "tiny", PRESETS["tiny"], seed=3)  # the same run resumes
    written = (out / "settings.json").read_bytes()
    (out / "metrics.json").write_text("{}\n")  # that run's results
    for experiment, preset_name, seed, message in (
        ("cavity", "quick", 3, r"preset 'tiny' there, 'quick' here"),
        ("cavity", "tiny", 4, r"seed 3 there, 4 here"),
        ("darcy", "tiny", 3, r"experiment 'cavity' there, 'darcy' here"),
    ):
        with pytest.raises(ValueError, match=message):
            record_settings(out, experiment, preset_name, PRESETS[preset_name], seed=seed)
    assert (out / "settings.json").read_bytes() == written
    (out / "settings.json").write_text("{ not json")
    with pytest.raises(ValueError, match="cannot be read"):
        record_settings(out, "cavity", "tiny", PRESETS["tiny"], seed=3)
