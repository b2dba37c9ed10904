"""``lawful solve cavity``: the steady fields and the centre lines, as the solver gives them."""

import json

import h5py
import pytest
import torch

from lawful.cli import main
from lawful.pdes import steady_cavity


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    out = tmp_path_factory.mktemp("cavity")
    args = ["solve", "cavity", "--re", "100", "--n", "17", "--steady", "--tolerance", "1e-3"]
    assert main([*args, "--out", str(out)]) == 0
    return out


def test_centre_lines_are_the_steady_fields_on_the_middle_lines(solved):
    lines = json.loads((solved / "centerlines.json").read_text())
    assert set(lines) == {"re", "n", "y", "u", "x", "v"} and (lines["re"], lines["n"]) == (100, 17)
    flow = steady_cavity(100.0, 17, tolerance=1e-3)
    torch.testing.assert_close(
        torch.tensor(lines["u"], dtype=torch.float64), flow.u[8], rtol=0, atol=0
    )
    torch.testing.assert_close(
        torch.tensor(lines["v"], dtype=torch.float64), flow.v[:, 8], rtol=0, atol=0
    )
    assert lines["y"][0] == 0 and lines["y"][-1] == 1 and lines["x"] == lines["y"]
    assert lines["u"][-1] == 1.0 and lines["u"][0] == 0.0  # the lid moves, the floor does not
    assert lines["v"][0] == 0.0 and lines["v"][-1] == 0.0  # no flow through the side walls
    # The primary vortex: u reverses below the centre, v rises left of it and sinks right.
    assert min(lines["u"]) < -0.1 and max(lines["v"]) > 0.1 and min(lines["v"]) < -0.1
    with h5py.File(solved / "cavity.h5") as file:
        assert file["u"].shape == (17, 17) and file.attrs["reynolds"] == 100
        torch.testing.assert_close(torch.from_numpy(file["v"][()]), flow.v, rtol=0, atol=0)


def test_an_out_that_is_a_file_is_named(tmp_path, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    args = ["solve", "cavity", "--n", "9", "--steady", "--out", str(not_a_folder)]
    assert main(args) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


def test_a_flow_that_is_not_steady_in_time_is_an_error(tmp_path, capsys):
    args = ["solve", "cavity", "--n", "9", "--steady", "--max-time", "0.5", "--out", str(tmp_path)]
    assert main(args) == 1
    assert capsys.readouterr().err.startswith("lawful: error: ")
