"""Input checks shared by lawful's public functions: each raises an error that names the argument
and the problem, where the value enters, so nothing deeper fails or silently returns garbage.

The conventions, decided here once:

- **Tensors only.** A NumPy array or a list is refused with a ``TypeError`` (convert it with
  ``torch.as_tensor``), not left to fail inside torch.
- **Real numbers only.** Complex tensors are refused.
- **Integer data is promoted, integer beliefs and fields are refused.** Grids, masses, constraint
  rows and values, times and fluxes are data: an integer is an exact value, so it becomes float64
  (which holds every integer up to 2^53 exactly). A belief's mean or a field must already be
  floating point: its dtype is the dtype of the result, and an integer field cannot hold the
  values written into it.
- **Variances** are finite, non-negative and not subnormal (below the dtype's smallest normal
  number they have lost precision, and the update's ``1 / variance`` overflows).
- **Shapes** must be equal or broadcast as documented; a mismatch names every shape involved.
- **Tolerances** are relative and stated where they are decided: :func:`rank_tolerance` for
  the rank of the update's Gram matrix, :func:`rounding_tolerance` for values and covariances
  that carry the rounding of earlier computations.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

# The Gram matrix's rank decision allows this many times the rounding of a k x k factorisation
# (k eps). Measured on diagonal, low-rank and ensemble beliefs in float32 and float64, with rows
# up to 1 - 1e-8 parallel: a posterior conditioned again on its own rows leaves pivots of at
# most 3 k eps, so 100 leaves a margin of 30 and still accepts float32 rows whose pivot is 1e-4.
RANK_SAFETY = 100


@contextlib.contextmanager
def field_precision(field: Tensor) -> Iterator[None]:
    """Autocast off on ``field``'s device for the block, where it is on: products inside run in
    their operands' own dtype (float32 inside a mixed-precision training step too), by the same
    operations as outside one (autocast would run them in bf16 or float16)."""
    device = field.device.type
    if not torch.is_autocast_enabled(device):
        yield
        return
    with torch.autocast(device, enabled=False):
        yield


def in_field_precision(function: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``function(field, ...)`` under :func:`field_precision` of the field: the values that must
    hold exactly (boundary entries, stencils, their residuals) are computed in the field's own
    dtype."""

    @functools.wraps(function)
    def in_dtype(field: object, *args: Any, **kwargs: Any) -> Tensor:
        if not isinstance(field, Tensor):
            return function(field, *args, **kwargs)
        with field_precision(field):
            return function(field, *args, **kwargs)

    return in_dtype


def check_tensor(value: object, name: str) -> Tensor:
    """``value`` if it is a real torch tensor; else a ``TypeError`` naming ``name``."""
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(value).__module__}.{type(value).__name__}; "
            "convert it with torch.as_tensor"
        )
    if value.is_complex():
        raise TypeError(f"{name} must be real, got complex dtype {value.dtype}")
    if value.dtype == torch.bool:
        raise TypeError(f"{name} must hold numbers, got dtype torch.bool")
    return value


def check_floating(value: object, name: str) -> Tensor:
    """``value`` if it is a real floating-point tensor (a belief, a field)."""
    tensor = check_tensor(value, name)
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {tensor.dtype}")
    return tensor


def as_floating(value: object, name: str) -> Tensor:
    """``value`` as a real floating-point tensor: integer data and Python numbers (a noise
    level, a bound) become float64."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float64)
    tensor = check_tensor(value, name)
    return tensor if tensor.is_floating_point() else tensor.to(torch.float64)


def check_finite(tensor: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``tensor`` holds NaN or infinite values."""
    if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
        kind = "NaN" if bool(tensor.isnan().any()) else "infinite"
        raise ValueError(f"{name} contains {kind} values")


def check_nonnegative(tensor: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``tensor`` has a negative entry (a variance, a noise level)."""
    if bool((tensor < 0).any()):
        raise ValueError(f"{name} must be non-negative; smallest entry is {float(tensor.min())}")


def check_variance(tensor: Tensor, name: str) -> None:
    """Raise ``ValueError`` unless every entry is finite and zero or at least the dtype's
    smallest normal number: one pass over the values when they are valid."""
    smallest_normal = torch.finfo(tensor.dtype).tiny
    if bool((tensor.isfinite() & ((tensor == 0) | (tensor >= smallest_normal))).all()):
        return
    check_finite(tensor, name)
    check_nonnegative(tensor, name)
    positive = tensor[tensor > 0]
    raise ValueError(
        f"{name} has subnormal entries (smallest {float(positive.min()):.3g}, below the smallest "
        f"normal {tensor.dtype} number {smallest_normal:.3g}): they have lost precision and the "
        "update would overflow; use float64, rescale the problem or set them to zero"
    )


def check_same_shape(tensors: Mapping[str, Tensor]) -> None:
    """Raise ``ValueError`` unless all ``tensors`` (name -> tensor) have one shape."""
    shapes = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"shapes must be equal, got {listed}")


def check_same_dtype(tensors: Mapping[str, Tensor]) -> None:
    """Raise ``TypeError`` unless all ``tensors`` (name -> tensor) have one dtype."""
    dtypes = {name: tensor.dtype for name, tensor in tensors.items()}
    if len(set(dtypes.values())) > 1:
        listed = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
        raise TypeError(f"dtypes must be equal, got {listed}")


def check_broadcast(shapes: Mapping[str, Sequence[int]]) -> torch.Size:
    """The broadcast of ``shapes`` (name -> shape); ``ValueError`` naming them all if none.

    In plain Python: ``torch.broadcast_shapes`` costs as much as a small update.
    """
    ndim = max((len(shape) for shape in shapes.values()), default=0)
    result = [1] * ndim
    for shape in shapes.values():
        for axis, size in enumerate(shape, start=ndim - len(shape)):
            if size != 1:
                if result[axis] not in (1, size):
                    listed = ", ".join(f"{name} {tuple(shape)}" for name, shape in shapes.items())
                    raise ValueError(f"shapes do not broadcast: {listed}")
                result[axis] = size
    return torch.Size(result)


def check_broadcasts_to(
    shape: Sequence[int], target: Sequence[int], name: str, target_name: str
) -> None:
    """Raise ``ValueError`` unless ``shape`` broadcasts to ``target`` (without growing it).

    In plain Python, as :func:`check_broadcast`: constraints and the training loss check this.
    """
    extra = len(target) - len(shape)
    if extra < 0 or any(
        size not in (1, goal) for size, goal in zip(shape, target[extra:], strict=True)
    ):
        raise ValueError(
            f"{name} of shape {tuple(shape)} does not broadcast to {target_name} {tuple(target)}"
        )


def check_spacing(spacing: float | Tensor, name: str = "grid spacing") -> None:
    """Raise ``ValueError`` unless ``spacing`` is a positive finite number."""
    value = float(spacing)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")


def check_count(value: object, name: str) -> None:
    """Raise unless ``value`` is a non-negative integer (a number of samples)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")


def rank_tolerance(dtype: torch.dtype, num_rows: int) -> float:
    """Pivots of a normalised ``k x k`` Gram matrix at or below this are rounding, not rank.

    ``RANK_SAFETY * k * eps``: a Cholesky factorisation of ``k`` rows is exact to ``k eps`` of
    the terms it sums (Higham, ch. 10), times a margin for the rounding that earlier updates
    leave in a posterior (module constant ``RANK_SAFETY``). 6.7e-14 for three float64 rows,
    3.6e-5 for three float32 rows. Dense covariances use :func:`rounding_tolerance` instead
    (:meth:`lawful.beliefs.DenseCovariance.gram_tolerance`).
    """
    return RANK_SAFETY * num_rows * torch.finfo(dtype).eps


def rounding_tolerance(dtype: torch.dtype) -> float:
    """``sqrt(eps)``: the relative size up to which a value or a matrix may carry the rounding
    of the computations that made it (1.5e-8 in float64, 3.5e-4 in float32).

    An input is the result of computations lawful cannot see (a GP's solve, an earlier update):
    their rounding grows with their condition number, and ``sqrt(eps)`` is the crossover where a
    condition number that large would leave a result with no correct digits in half its
    precision. Used for a pinned constraint's mass defect, a covariance's asymmetry and its
    negative eigenvalues.
    """
    return math.sqrt(torch.finfo(dtype).eps)


def check_covariance_matrix(matrix: Tensor, name: str) -> None:
    """Raise ``ValueError`` unless the ``(..., m, m)`` ``matrix`` is symmetric and positive
    semi-definite to :func:`rounding_tolerance` of its largest diagonal entry.

    One Cholesky factorisation of ``matrix + tolerance * max_diagonal * I`` in float64 decides
    definiteness: it succeeds exactly when no eigenvalue is below ``-tolerance * max_diagonal``
    (up to the factorisation's own rounding, far smaller).
    """
    tolerance = rounding_tolerance(matrix.dtype)
    diagonal = torch.diagonal(matrix, dim1=-2, dim2=-1).double()  # (..., m)
    scale = diagonal.abs().amax(-1).clamp_min(torch.finfo(torch.float64).tiny)  # (...)
    asymmetry = (matrix - matrix.transpose(-1, -2)).abs().amax((-2, -1)).double()  # (...)
    if bool((asymmetry > tolerance * scale).any()):
        index = first_index(asymmetry > tolerance * scale)
        raise ValueError(
            f"{name} is not symmetric: |A - A^T| reaches {float(asymmetry[index]):.3g} at batch "
            f"index {index}, against a largest variance of {float(scale[index]):.3g}"
        )
    eye = torch.eye(matrix.shape[-1], dtype=torch.float64, device=matrix.device)
    shifted = matrix.double() + (tolerance * scale)[..., None, None] * eye  # (..., m, m)
    _, info = torch.linalg.cholesky_ex(shifted)
    if bool((info > 0).any()):
        index = first_index(info > 0)
        smallest = float(torch.linalg.eigvalsh(matrix.double()[index]).min())
        raise ValueError(
            f"{name} is not positive semi-definite: at batch index {index} its smallest "
            f"eigenvalue is {smallest:.3g}, against a largest variance of "
            f"{float(scale[index]):.3g}"
        )


def first_index(mask: Tensor) -> tuple[int, ...]:
    """The index of the first ``True`` entry of ``mask``."""
    return tuple(int(i) for i in torch.nonzero(mask)[0])
