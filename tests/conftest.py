"""Shared test settings: deterministic, single-threaded torch on small problems."""

import pytest
import torch

# The tensors in tests are tiny: a second thread buys nothing and, on a busy machine, stalls.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


def fitted_order(spacings, errors) -> float:
    """Slope of log(error) against log(spacing): the observed order of convergence."""
    log_h = torch.log(torch.as_tensor(spacings, dtype=torch.float64))
    log_e = torch.log(torch.as_tensor(errors, dtype=torch.float64))
    centred = log_h - log_h.mean()
    return float((centred * (log_e - log_e.mean())).sum() / centred.square().sum())
