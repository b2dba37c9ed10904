"""Input checks shared by the constraint modules: each raises an error that names the problem."""

from __future__ import annotations

from torch import Tensor


def check_finite(tensor: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``tensor`` holds NaN or infinite values."""
    if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
        kind = "NaN" if bool(tensor.isnan().any()) else "infinite"
        raise ValueError(f"{name} contains {kind} values")


def check_nonnegative(tensor: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``tensor`` has a negative entry (a variance, a noise level)."""
    if bool((tensor < 0).any()):
        raise ValueError(f"{name} must be non-negative; smallest entry is {float(tensor.min())}")
