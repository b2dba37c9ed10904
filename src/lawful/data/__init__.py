"""Data: point sampling for neural processes, the HDF5 dataset store, published test sets."""

from lawful.data.published import PUBLISHED_TENSOR_KEYS, load_published_test_set
from lawful.data.sampling import (
    FunctionSets,
    TimeSampling,
    evaluation_grid,
    make_function_sets,
    sample_inputs,
)
from lawful.data.store import (
    FORMAT_NAME,
    FORMAT_VERSION,
    DatasetError,
    StoredDataset,
    load_dataset,
    save_dataset,
)
from lawful.data.user_files import (
    OPERATOR_FILE_SUFFIXES,
    OperatorSamples,
    load_operator_samples,
    split_train_test,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "OPERATOR_FILE_SUFFIXES",
    "PUBLISHED_TENSOR_KEYS",
    "DatasetError",
    "FunctionSets",
    "OperatorSamples",
    "StoredDataset",
    "TimeSampling",
    "evaluation_grid",
    "load_dataset",
    "load_operator_samples",
    "load_published_test_set",
    "make_function_sets",
    "sample_inputs",
    "save_dataset",
    "split_train_test",
]
