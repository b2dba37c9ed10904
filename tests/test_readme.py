"""The README's examples as written: every Python block runs and its assertions hold, and the
plugin example is the file ``lawful run --plugin`` is tested with."""

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
# The plugin example registers an experiment; tests/test_user_experiments.py runs that file.
PLUGIN = [block for block in BLOCKS if "register(" in block]
SNIPPETS = [block for block in BLOCKS if block not in PLUGIN]


def test_the_readme_has_its_examples():
    assert len(SNIPPETS) >= 4 and len(PLUGIN) == 1


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_every_python_block_runs_as_written(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(index)
    exec(compile(SNIPPETS[index], f"README.md block {index}", "exec"), {"__name__": "readme"})


def test_the_plugin_example_is_the_tested_file():
    assert [(ROOT / "examples" / "decay_problem.py").read_text()] == PLUGIN
