"""The HDF5 dataset store and the published ProbConserv test set: exact round trips, and a
DatasetError naming the file for every kind of bad file."""

import os
import stat
from pathlib import Path

import h5py
import pytest
import torch

from lawful.data import (
    DatasetError,
    load_dataset,
    load_published_test_set,
    make_function_sets,
    save_dataset,
    store,
)
from lawful.data.store import write_text_atomically
from lawful.pdes import get_conservation_problem

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PUBLISHED_PME_TEST_SET = SHARED / "reference" / "probconserv-pme" / "test.pt"


def _example_contents() -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "arrays": {
            "u": torch.rand(3, 4, 5, generator=generator, dtype=torch.float32),
            "mass": torch.rand(3, 4, generator=generator, dtype=torch.float64),
        },
        "params": torch.tensor([[1.0, 0.5], [3.0, 0.25], [6.0, 1.0 / 3.0]], dtype=torch.float64),
        "param_names": ["m", "scale"],
        "problem": "pme",
        "grid": {"t": torch.linspace(0, 1, 4), "x": torch.linspace(0, 1, 5)},
        "metadata": {"seed": 7, "solver": {"name": "exact", "tolerance": 1e-12}},
    }


def _saved(tmp_path: Path, **changes) -> Path:
    return save_dataset(tmp_path / "data.h5", **{**_example_contents(), **changes})


def test_round_trip_keeps_values_and_dtypes_exactly(tmp_path: Path):
    contents = _example_contents()
    path = save_dataset(tmp_path / "nested" / "data.h5", **contents)
    loaded = load_dataset(path)
    assert set(loaded.arrays) == {"u", "mass"}
    for name, values in contents["arrays"].items():
        assert loaded.arrays[name].dtype == values.dtype
        assert torch.equal(loaded.arrays[name], values)
    assert torch.equal(loaded.params, contents["params"])
    assert loaded.param_names == ("m", "scale")
    assert loaded.problem == "pme"
    assert set(loaded.grid) == {"t", "x"}
    assert all(torch.equal(loaded.grid[axis], contents["grid"][axis]) for axis in ("t", "x"))
    assert loaded.metadata == contents["metadata"]
    assert len(loaded) == 3


def test_grid_and_metadata_are_optional(tmp_path: Path):
    loaded = load_dataset(_saved(tmp_path, grid=None, metadata=None))
    assert loaded.grid == {}
    assert loaded.metadata == {}


def test_saving_leaves_no_temporary_files(tmp_path: Path):
    _saved(tmp_path)
    _saved(tmp_path)  # overwrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5"]


def test_an_interrupted_write_keeps_the_previous_file(tmp_path: Path, monkeypatch):
    path = _saved(tmp_path)
    original_create_dataset = h5py.Group.create_dataset
    calls = []

    def failing_create_dataset(group, name, *args, **kwargs):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original_create_dataset(group, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing_create_dataset)
    with pytest.raises(KeyboardInterrupt):
        _saved(tmp_path, arrays={"u": torch.zeros(3, 2), "v": torch.ones(3)})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5"]
    assert torch.equal(load_dataset(path).arrays["u"], _example_contents()["arrays"]["u"])


@pytest.fixture
def umask():
    """Sets the process's umask for one test and restores it afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("mask", "mode"),
    [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)],
    ids=["umask 022", "umask 002", "umask 077"],
)
def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path: Path, umask, mask: int, mode: int):
    """As open(path, "w") would make it; before, every file was 0600 (mkstemp's mode)."""
    umask(mask)
    write_text_atomically(tmp_path / "metrics.json", "{}\n")
    assert _mode(_saved(tmp_path)) == mode
    assert _mode(tmp_path / "metrics.json") == mode


def test_a_rewritten_file_keeps_its_mode(tmp_path: Path, umask):
    umask(0o077)
    path = tmp_path / "report.md"
    path.write_text("earlier\n")
    path.chmod(0o640)
    write_text_atomically(path, "later\n")
    assert path.read_text() == "later\n" and _mode(path) == 0o640


def test_without_a_reported_umask_the_one_at_import_is_used(tmp_path: Path, monkeypatch, umask):
    monkeypatch.setattr(store, "_PROCESS_STATUS", tmp_path / "absent")
    umask(0o022 if store._UMASK_AT_IMPORT == 0o077 else 0o077)  # not the one at import: unread
    write_text_atomically(tmp_path / "settings.json", "{}\n")
    assert _mode(tmp_path / "settings.json") == 0o666 & ~store._UMASK_AT_IMPORT


def test_missing_file(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"absent\.h5: no such dataset file"):
        load_dataset(tmp_path / "absent.h5")


def test_truncated_file(tmp_path: Path):
    path = _saved(tmp_path)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(DatasetError, match=r"data\.h5: unreadable or truncated dataset file"):
        load_dataset(path)


def test_a_file_that_is_not_hdf5(tmp_path: Path):
    path = tmp_path / "notes.h5"
    path.write_text("not hdf5")
    with pytest.raises(DatasetError, match=r"notes\.h5: unreadable or truncated"):
        load_dataset(path)


@pytest.mark.parametrize("format_name", [None, "some-other-format"])
def test_foreign_hdf5_file(tmp_path: Path, format_name: str | None):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("u", data=[1.0, 2.0])
        if format_name is not None:
            file.attrs["format"] = format_name
    with pytest.raises(DatasetError, match=rf"foreign\.h5: not a lawful dataset .*{format_name}"):
        load_dataset(path)


def test_newer_format_version(tmp_path: Path):
    path = _saved(tmp_path)
    with h5py.File(path, "a") as file:
        file.attrs["format_version"] = 2
    with pytest.raises(DatasetError, match=r"format_version 2 is newer .*upgrade lawful"):
        load_dataset(path)


def test_leading_dimensions_must_agree_on_save_and_on_load(tmp_path: Path):
    arrays = {"u": torch.zeros(3, 5), "mass": torch.zeros(2)}
    with pytest.raises(DatasetError, match=r"data\.h5: array 'mass' has shape \(2,\).*N = 3"):
        _saved(tmp_path, arrays=arrays)
    assert list(tmp_path.iterdir()) == []
    path = _saved(tmp_path)
    with h5py.File(path, "a") as file:  # a file edited by someone else
        del file["arrays/mass"]
        file["arrays"].create_dataset("mass", data=torch.zeros(4).numpy())
    with pytest.raises(DatasetError, match=r"array 'mass' has shape \(4,\)"):
        load_dataset(path)


@pytest.mark.parametrize(("bad_value", "kind"), [(float("nan"), "NaN"), (float("inf"), "infinite")])
def test_non_finite_arrays_are_refused_on_save(tmp_path: Path, bad_value: float, kind: str):
    u = torch.zeros(3, 4)
    u[1, 2] = bad_value
    with pytest.raises(DatasetError, match=rf"data\.h5: array 'u' contains {kind} values"):
        _saved(tmp_path, arrays={"u": u})
    assert list(tmp_path.iterdir()) == []


def test_inconsistent_arguments_are_refused_on_save(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"params must have shape \(N, 1\)"):
        _saved(tmp_path, param_names=["m"])
    with pytest.raises(DatasetError, match="must be a floating-point tensor"):
        _saved(tmp_path, arrays={"index": torch.arange(3)})
    with pytest.raises(DatasetError, match="free of '/'"):
        _saved(tmp_path, arrays={"a/b": torch.zeros(3)})
    with pytest.raises(DatasetError, match="metadata must be JSON-serialisable"):
        _saved(tmp_path, metadata={"tensor": torch.zeros(1)})
    assert issubclass(DatasetError, ValueError)


# The published ProbConserv test set.


def _skip_without_published_test_set() -> None:
    if not PUBLISHED_PME_TEST_SET.is_file():
        pytest.skip(f"the published ProbConserv test set is not at {PUBLISHED_PME_TEST_SET}")


def test_published_pme_test_set_is_the_exact_pme_solution():
    _skip_without_published_test_set()
    sets, params = load_published_test_set(PUBLISHED_PME_TEST_SET)
    degrees = torch.tensor([1.0, 3.0, 6.0]).repeat_interleave(50)
    assert torch.equal(params, torch.stack([degrees, torch.ones(150)], dim=1))
    assert torch.equal(sets.params, degrees[:, None])
    pme = get_conservation_problem("pme")
    for inputs, outputs in [
        (sets.input_contexts, sets.output_contexts),
        (sets.input_targets, sets.output_targets),
    ]:
        assert inputs.shape == (150, 100, 2)
        inputs64 = inputs.double()
        exact = pme.solution(degrees.double()[:, None], inputs64[..., 0], inputs64[..., 1])
        torch.testing.assert_close(outputs[..., 0].double(), exact, rtol=0, atol=1e-5)
    # The published contexts have one time in each tenth of [0, 1].
    context_times = sets.input_contexts.reshape(150, 10, 10, 2)[:, :, 0, 0]
    assert torch.equal((10 * context_times).floor(), torch.arange(10.0).expand(150, -1))


def _published_format() -> tuple[dict, torch.Tensor]:
    problem = get_conservation_problem("pme")
    sets = make_function_sets(problem, torch.tensor([1.0, 3.0]), torch.Generator().manual_seed(1))
    tensors = {
        name: getattr(sets, name)
        for name in ("input_contexts", "output_contexts", "input_targets", "output_targets")
    }
    return tensors, torch.tensor([[1.0, 1.0], [3.0, 1.0]])


def test_published_format_round_trip(tmp_path: Path):
    tensors, params = _published_format()
    torch.save((tensors, params), tmp_path / "test.pt")
    sets, loaded_params = load_published_test_set(tmp_path / "test.pt")
    assert torch.equal(loaded_params, params)
    assert torch.equal(sets.params, params[:, :1])
    assert all(torch.equal(getattr(sets, name), value) for name, value in tensors.items())


def test_published_loader_errors_name_the_file_and_the_problem(tmp_path: Path):
    tensors, params = _published_format()
    path = tmp_path / "test.pt"
    with pytest.raises(DatasetError, match=r"test\.pt: no such file"):
        load_published_test_set(path)

    torch.save(tensors, path)
    with pytest.raises(DatasetError, match=r"test\.pt: expected a pickled tuple .*got dict"):
        load_published_test_set(path)

    torch.save(({"inputs": tensors["input_contexts"]}, params), path)
    with pytest.raises(DatasetError, match=r"keys \['input_contexts'.*got \['inputs'\]"):
        load_published_test_set(path)

    torch.save(({**tensors, "output_targets": tensors["output_targets"][:, :7]}, params), path)
    with pytest.raises(DatasetError, match=r"inconsistent shapes: output_targets must have shape"):
        load_published_test_set(path)

    torch.save((tensors, params[:1]), path)
    with pytest.raises(DatasetError, match="inconsistent shapes: input_contexts"):
        load_published_test_set(path)

    path.write_text("not a torch file")
    with pytest.raises(DatasetError, match=r"test\.pt: not a readable torch file"):
        load_published_test_set(path)
