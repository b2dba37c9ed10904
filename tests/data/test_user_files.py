"""Reading a user's operator data: exact round trips through HDF5, .npz, a folder of .npy, MATLAB
v5 and v7.3 files, the seeded train/test split, and a DatasetError naming the problem for every
kind of bad file."""

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from lawful.data import DatasetError, OperatorSamples, load_operator_samples, split_train_test

Arrays = dict[str, np.ndarray]

# How MATLAB R2023b on Linux starts a v7.3 file: 116 bytes of text, 8 bytes of subsystem offset,
# version 0x0200 and the endian mark "IM", inside a 512-byte HDF5 userblock.
MATLAB_73_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 "
    b"HDF5 schema 1.00 .".ljust(116, b" ")
    + bytes(8)
    + b"\x00\x02IM"
)


def write_hdf5(path: Path, arrays: Arrays) -> Path:
    path = path / "data.h5"
    with h5py.File(path, "w") as file:
        for name, values in arrays.items():
            file.create_dataset(name, data=values)
    return path


def write_npz(path: Path, arrays: Arrays) -> Path:
    path = path / "data.npz"
    np.savez(path, **arrays)
    return path


def write_npy_folder(path: Path, arrays: Arrays) -> Path:
    folder = path / "data"
    folder.mkdir()
    for name, values in arrays.items():
        np.save(folder / f"{name}.npy", values)
    return folder


def write_mat_v5(path: Path, arrays: Arrays, compressed: bool = False) -> Path:
    """A MATLAB v5 file or, compressed, what MATLAB calls v7."""
    path = path / "data.mat"
    # 1-D arrays become (1, n) rows, as MATLAB has no vectors.
    scipy.io.savemat(path, arrays, do_compression=compressed)
    return path


def write_mat_v73(path: Path, arrays: Arrays) -> Path:
    """An HDF5 file laid out as MATLAB's ``save -v7.3`` writes it."""
    path = path / "data.mat"
    with h5py.File(path, "w", userblock_size=512) as file:
        for name, values in arrays.items():
            matrix = values.reshape(1, -1) if values.ndim == 1 else values  # a MATLAB row vector
            dataset = file.create_dataset(name, data=matrix.transpose())  # column-major order
            dataset.attrs["MATLAB_class"] = np.bytes_("double")
    with path.open("r+b") as file:
        file.write(MATLAB_73_HEADER)
    return path


WRITERS = {
    "hdf5": write_hdf5,
    "npz": write_npz,
    "npy-folder": write_npy_folder,
    "mat-v5": write_mat_v5,
    "mat-v7": partial(write_mat_v5, compressed=True),
    "mat-v7.3": write_mat_v73,
}


class Case(NamedTuple):
    arrays: Arrays
    walls: Arrays  # what the reader returns: data without a time axis repeated over time


def one_d_single_step() -> Case:
    rng = np.random.default_rng(0)
    arrays = {
        "inputs": rng.standard_normal((4, 9)),
        "outputs": rng.standard_normal((4, 9)),
        "x": np.linspace(-1.0, 2.0, 9),
        "x_left": rng.standard_normal(4),
        "x_right": rng.standard_normal(4),
    }
    return Case(arrays, {wall: arrays[wall] for wall in ("x_left", "x_right")})


def one_d_multi_step() -> Case:
    rng = np.random.default_rng(1)
    x_right = rng.standard_normal(4)  # the same at every time
    arrays = {
        "inputs": rng.standard_normal((4, 9)),
        "outputs": rng.standard_normal((4, 9, 3)),
        "x": np.linspace(0.0, 1.0, 9),
        "t": np.array([0.1, 0.25, 1.0]),
        "x_left": rng.standard_normal((4, 3)),
        "x_right": x_right,
    }
    walls = {"x_left": arrays["x_left"], "x_right": np.repeat(x_right[:, None], 3, axis=1)}
    return Case(arrays, walls)


def two_d_multi_step() -> Case:
    rng = np.random.default_rng(2)
    x_right, y_left = rng.standard_normal((3, 5)), rng.standard_normal((3, 6))
    arrays = {
        "inputs": rng.standard_normal((3, 6, 5)),
        "outputs": rng.standard_normal((3, 6, 5, 2)),
        "x": np.linspace(0.0, 2.0, 6),
        "y": np.linspace(-1.0, 1.0, 5),
        "t": np.array([0.5, 1.0]),
        "x_left": rng.standard_normal((3, 5, 2)),
        "x_right": x_right,
        "y_left": y_left,
        "y_right": rng.standard_normal((3, 6, 2)),
    }
    walls = {
        "x_left": arrays["x_left"],
        "x_right": np.repeat(x_right[..., None], 2, axis=-1),
        "y_left": np.repeat(y_left[..., None], 2, axis=-1),
        "y_right": arrays["y_right"],
    }
    return Case(arrays, walls)


CASES = {
    "1d-single-step": one_d_single_step,
    "1d-multi-step": one_d_multi_step,
    "2d-multi-step": two_d_multi_step,
}


def exactly(tensor: torch.Tensor, values: np.ndarray) -> bool:
    return tensor.dtype == torch.float64 and torch.equal(tensor, torch.from_numpy(values))


@pytest.mark.parametrize("case_name", CASES)
@pytest.mark.parametrize("writer_name", WRITERS)
def test_every_format_reads_back_what_was_written(tmp_path: Path, writer_name, case_name):
    arrays, walls = CASES[case_name]()
    path = WRITERS[writer_name](tmp_path, arrays)
    samples = load_operator_samples(path)
    assert samples.source == path
    assert exactly(samples.inputs, arrays["inputs"])
    assert exactly(samples.outputs, arrays["outputs"])
    axes = ["x", "y"][: arrays["inputs"].ndim - 1]
    assert list(samples.grids) == axes
    assert all(exactly(samples.grids[axis], arrays[axis]) for axis in axes)
    assert samples.is_time_dependent == ("t" in arrays)
    assert samples.t is None if "t" not in arrays else exactly(samples.t, arrays["t"])
    assert samples.walls.keys() == walls.keys()
    assert all(exactly(samples.walls[wall], values) for wall, values in walls.items())
    assert samples.num_samples == arrays["inputs"].shape[0]
    assert samples.spatial_ndim == len(axes)


def test_matlab_73_files_are_hdf5_with_a_matlab_header_that_scipy_refuses(tmp_path: Path):
    path = write_mat_v73(tmp_path, {"a": np.ones((2, 3)), "u": np.ones((2, 3))})
    assert h5py.is_hdf5(path)
    assert scipy.io.matlab.matfile_version(path) == (2, 0)
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(path)
    with h5py.File(path, "r") as file:
        assert file["a"].shape == (3, 2)  # column-major: what MATLAB calls 2-by-3


def test_fno_style_names_and_default_grids(tmp_path: Path):
    rng = np.random.default_rng(3)
    burgers = {"a": rng.standard_normal((2, 16)), "u": rng.standard_normal((2, 16))}
    samples = load_operator_samples(write_mat_v73(tmp_path, burgers))
    assert exactly(samples.inputs, burgers["a"])
    assert exactly(samples.outputs, burgers["u"])
    assert torch.equal(samples.grids["x"], torch.linspace(0, 1, 16, dtype=torch.float64))
    assert samples.t is None
    assert samples.walls == {}

    darcy = {"coeff": rng.standard_normal((2, 7, 5)), "sol": rng.standard_normal((2, 7, 5))}
    samples = load_operator_samples(write_npz(tmp_path, darcy))
    assert exactly(samples.inputs, darcy["coeff"])
    assert exactly(samples.outputs, darcy["sol"])
    assert torch.equal(samples.grids["y"], torch.linspace(0, 1, 5, dtype=torch.float64))
    assert not samples.is_time_dependent


def test_left_and_right_name_the_x_walls(tmp_path: Path):
    arrays = one_d_single_step().arrays
    arrays["left"], arrays["right"] = arrays.pop("x_left"), arrays.pop("x_right")
    samples = load_operator_samples(write_hdf5(tmp_path, arrays))
    assert exactly(samples.walls["x_left"], arrays["left"])
    assert exactly(samples.walls["x_right"], arrays["right"])


def test_explicit_keys_replace_the_aliases_and_are_taken_for_nothing_else(tmp_path: Path):
    rng = np.random.default_rng(4)
    arrays = {"x": rng.standard_normal((3, 8)), "y": rng.standard_normal((3, 8))}
    samples = load_operator_samples(write_npz(tmp_path, arrays), input_key="x", output_key="y")
    assert exactly(samples.inputs, arrays["x"])
    assert exactly(samples.outputs, arrays["y"])
    assert torch.equal(samples.grids["x"], torch.linspace(0, 1, 8, dtype=torch.float64))


def test_single_precision_and_integer_arrays_are_read_exactly_in_float64(tmp_path: Path):
    arrays = {
        "inputs": np.arange(3 * 4097, dtype=np.int32).reshape(3, 4097),
        "outputs": np.random.default_rng(5).standard_normal((3, 4097)).astype(np.float32),
        "x": np.linspace(0.0, 1.0, 4097, dtype=np.float32),  # uniform up to float32 round-off
    }
    samples = load_operator_samples(write_hdf5(tmp_path, arrays))
    for name, tensor in [("inputs", samples.inputs), ("outputs", samples.outputs)]:
        assert exactly(tensor, arrays[name].astype(np.float64))
    assert exactly(samples.grids["x"], arrays["x"].astype(np.float64))


# ---------------------------------------------------------------------------------- splitting


def numbered_samples(tmp_path: Path, num_samples: int) -> OperatorSamples:
    """Samples whose inputs, outputs and wall data all hold the sample's index."""
    index = np.arange(num_samples, dtype=np.float64)
    arrays = {
        "inputs": np.repeat(index[:, None], 4, axis=1),
        "outputs": np.repeat(index[:, None], 4, axis=1),
        "x_left": index,
    }
    return load_operator_samples(write_npz(tmp_path, arrays))


def indices_of(samples: OperatorSamples) -> list[int]:
    indices = samples.inputs[:, 0].long().tolist()
    assert samples.outputs[:, 0].long().tolist() == indices
    assert samples.walls["x_left"].long().tolist() == indices
    return indices


def test_split_is_seeded_disjoint_and_covers_every_sample(tmp_path: Path):
    samples = numbered_samples(tmp_path, 10)
    train, test = split_train_test(samples, test_fraction=0.3, seed=5)
    train_indices, test_indices = indices_of(train), indices_of(test)
    assert len(test_indices) == 3
    assert sorted(train_indices + test_indices) == list(range(10))
    assert train_indices == sorted(train_indices)  # the file's order is kept
    again_train, again_test = split_train_test(samples, test_fraction=0.3, seed=5)
    assert (indices_of(again_train), indices_of(again_test)) == (train_indices, test_indices)
    assert indices_of(split_train_test(samples, test_fraction=0.3, seed=6)[1]) != test_indices
    assert train.grids is samples.grids and train.source == samples.source


def test_subset_takes_slices_index_lists_and_masks(tmp_path: Path):
    samples = numbered_samples(tmp_path, 5)
    assert indices_of(samples.subset(slice(1, 3))) == [1, 2]
    assert indices_of(samples.subset([4, 0])) == [4, 0]
    assert indices_of(samples.subset(torch.tensor([True, False, True, False, False]))) == [0, 2]


def test_split_refuses_bad_fractions_and_single_samples(tmp_path: Path):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        split_train_test(numbered_samples(tmp_path, 4), test_fraction=1.0)
    single = numbered_samples(tmp_path, 1)
    with pytest.raises(DatasetError, match=r"1 sample.* cannot be split"):
        split_train_test(single, test_fraction=0.5)


# ---------------------------------------------------------------------------------- bad arrays

BASE = one_d_multi_step().arrays
NOT_UNIFORM = np.linspace(0.0, 1.0, 9)
NOT_UNIFORM[4] += 0.01
WITH_NAN = BASE["outputs"].copy()
WITH_NAN[1, 2, 0] = np.nan
WITH_INF = BASE["x_left"].copy()
WITH_INF[3, 1] = -np.inf

# (changes to BASE, None removing a key; what the message must match)
BAD_ARRAYS = {
    "no inputs": (
        {"inputs": None},
        r"no inputs found; tried keys \['inputs', 'a', 'input', 'coeff', 'u0'\], "
        r"file has \['outputs', 't', 'x', 'x_left', 'x_right'\]",
    ),
    "no outputs": ({"outputs": None}, r"no outputs found; tried keys \['outputs', 'u'"),
    "two input aliases": ({"a": BASE["inputs"]}, r"ambiguous inputs: keys \['inputs', 'a'\]"),
    "two wall aliases": ({"left": BASE["x_left"]}, r"ambiguous x_left wall data"),
    "no spatial axis": ({"inputs": np.ones(4)}, r"'inputs': inputs must have shape \(N, X\)"),
    "three spatial axes": ({"inputs": np.ones((4, 9, 2, 2))}, r"inputs must have shape"),
    "no samples": ({"inputs": np.ones((0, 9))}, r"'inputs': holds no samples \(N = 0\)"),
    "one-point axis": ({"inputs": np.ones((4, 1))}, r"at least 2 points"),
    "outputs' N": ({"outputs": np.ones((5, 9, 3))}, r"'outputs': .* must lead with N = 4"),
    "outputs' X": ({"outputs": np.ones((4, 8, 3))}, r"'outputs': .*inputs' shape \(4, 9\)"),
    "time axis without t": ({"t": None}, r"'outputs': .* needs the output times 't'"),
    "t without time axis": ({"outputs": np.ones((4, 9))}, r"shape \(4, 9, T\), got \(4, 9\)"),
    "t's length": ({"t": np.array([0.1, 0.2])}, r"'t': must have shape \(3,\), got \(2,\)"),
    "t not increasing": ({"t": np.array([0.1, 0.3, 0.2])}, r"'t': must be strictly increasing"),
    "x's length": ({"x": np.linspace(0, 1, 8)}, r"'x': must have shape \(9,\)"),
    "x decreasing": ({"x": np.linspace(1, 0, 9)}, r"'x': must be strictly increasing"),
    "x not uniform": ({"x": NOT_UNIFORM}, r"'x': must be uniformly spaced.* up to 0.01 "),
    "NaN": ({"outputs": WITH_NAN}, r"'outputs': contains 1 NaN and 0 infinite"),
    "infinity": ({"x_left": WITH_INF}, r"'x_left': contains 0 NaN and 1 infinite"),
    "complex": ({"inputs": BASE["inputs"] + 1j}, r"'inputs': must hold real.* complex128"),
    "strings": ({"x": np.array([b"a"] * 9)}, r"'x': must hold real numbers.* \|S1"),
    "wall's N": ({"x_left": np.ones((5, 3))}, r"'x_left': .* shape \(4,\) or \(4, 3\)"),
    "wall's T": ({"x_right": np.ones((4, 2))}, r"'x_right': .* shape \(4,\) or \(4, 3\)"),
}


@pytest.mark.parametrize("problem", BAD_ARRAYS)
def test_bad_arrays_raise_a_dataset_error_naming_file_key_and_problem(tmp_path: Path, problem):
    changes, message = BAD_ARRAYS[problem]
    arrays = {**BASE, **changes}
    path = write_hdf5(
        tmp_path, {name: values for name, values in arrays.items() if values is not None}
    )
    with pytest.raises(DatasetError, match=message) as raised:
        load_operator_samples(path)
    assert str(raised.value).startswith(f"{path}: ")


def test_explicit_keys_must_exist_and_differ(tmp_path: Path):
    path = write_hdf5(tmp_path, BASE)
    with pytest.raises(DatasetError, match=r"inputs key 'coefficients' .* not found; keys found"):
        load_operator_samples(path, input_key="coefficients")
    with pytest.raises(DatasetError, match="one key given for several roles"):
        load_operator_samples(path, input_key="inputs", output_key="inputs")


def test_pickled_arrays_are_never_loaded(tmp_path: Path):
    path = write_npz(tmp_path, {**BASE, "inputs": np.array([{"a": 1}] * 4, dtype=object)})
    with pytest.raises(DatasetError, match=r"'inputs': unreadable array .*allow_pickle=False"):
        load_operator_samples(path)


# ---------------------------------------------------------------------------------- bad files


def truncated(writer: Callable[[Path, Arrays], Path]) -> Callable[[Path], Path]:
    def write(tmp_path: Path) -> Path:
        path = writer(tmp_path, {**BASE, "outputs": np.ones((4, 9, 300))})
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path

    return write


def file_with(name: str, content: bytes) -> Callable[[Path], Path]:
    def write(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path

    return write


def patched_mat(offset: int, value: int, **savemat_options) -> Callable[[Path], Path]:
    """A MATLAB file of BASE's inputs with the byte at ``offset`` set to ``value``."""

    def write(tmp_path: Path) -> Path:
        path = tmp_path / "data.mat"
        scipy.io.savemat(path, {"inputs": BASE["inputs"]}, **savemat_options)
        content = bytearray(path.read_bytes())
        assert content[offset] != value
        content[offset] = value
        path.write_bytes(content)
        return path

    return write


def empty_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "arrays"
    folder.mkdir()
    return folder


def folder_with_truncated_npy(tmp_path: Path) -> Path:
    folder = write_npy_folder(tmp_path, {**BASE, "inputs": np.ones((4, 900))})
    inputs = folder / "inputs.npy"
    inputs.write_bytes(inputs.read_bytes()[:500])
    return folder


BAD_FILES = {
    "missing": (lambda tmp_path: tmp_path / "absent.h5", "no such file or folder"),
    "unknown suffix": (file_with("data.csv", b"1,2\n"), r"unknown file type '.csv'"),
    "single .npy": (file_with("data.npy", b""), "a .npy file holds one array"),
    "empty folder": (empty_folder, "the folder holds no <key>.npy files"),
    "garbage .h5": (file_with("data.h5", b"not hdf5 " * 20), "unreadable, corrupt or truncated"),
    "empty .npz": (
        file_with("data.npz", b""),
        r"corrupt or truncated file \(an .npz must be a zip",
    ),
    "empty .mat": (file_with("data.mat", b""), "unreadable, corrupt or truncated"),
    "v7.3 header only": (file_with("data.mat", MATLAB_73_HEADER), "unreadable, corrupt"),
    "truncated .h5": (truncated(write_hdf5), "unreadable, corrupt or truncated"),
    "truncated .npz": (truncated(write_npz), "unreadable, corrupt or truncated"),
    "truncated .mat": (truncated(write_mat_v5), "unreadable, corrupt or truncated"),
    "truncated .npy": (folder_with_truncated_npy, r"key 'inputs': unreadable array"),
    # What scipy's loadmat raises on each, before: IndexError, TypeError, UnboundLocalError,
    # zlib.error, KeyError.
    "short .mat": (file_with("data.mat", b"MATLAB 5.0 garbage" * 2), "unreadable, corrupt"),
    "v5 variable tag": (patched_mat(128, 1), "unreadable, corrupt.*Expecting miMATRIX"),
    "v5 array class": (patched_mat(144, 0), "unreadable, corrupt or truncated"),
    "v7 checksum": (patched_mat(-1, 0, do_compression=True), "unreadable, corrupt.*decompress"),
    "v4 precision": (patched_mat(0, 70, format="4"), "unreadable, corrupt or truncated"),
}


@pytest.mark.parametrize("problem", BAD_FILES)
def test_bad_files_raise_a_dataset_error_naming_the_file(tmp_path: Path, problem):
    write, message = BAD_FILES[problem]
    path = write(tmp_path)
    with pytest.raises(DatasetError, match=message) as raised:
        load_operator_samples(path)
    assert str(raised.value).startswith(f"{path}: ")
