"""Kernels compiled from C on the user's machine, where eager PyTorch cannot reach the hardware.

Eager PyTorch makes one pass over memory per operation; where a computation is a few
operations on arrays far larger than the cache, the passes are its whole cost, and a loop that
does them together is several times faster. Such loops live here as plain C (no PyTorch
headers): built once per source, compiler and machine with the system's C compiler (``CC``,
else ``cc``; about a second), cached under ``LAWFUL_NATIVE_CACHE`` (default
``$XDG_CACHE_HOME/lawful/native``, else ``~/.cache/lawful/native``) and loaded by ctypes.

Where no compiler works, or with ``LAWFUL_NATIVE=0``, :func:`rank_one_update_library` is
``None`` and the callers use their eager form, which gives the same results to rounding;
:func:`native_status` says which. Every kernel works on contiguous CPU float32 or float64
arrays and leaves dtype, device and autograd checks to its caller.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch import Tensor

__all__ = [
    "NATIVE_VARIABLE",
    "native_status",
    "rank_one_apply",
    "rank_one_sums",
    "rank_one_update_library",
]

#: Set to ``0`` to use the eager forms everywhere (the native kernels are then never built).
NATIVE_VARIABLE = "LAWFUL_NATIVE"

_SOURCE = Path(__file__).with_name("rank_one_update.c")
# -ffp-contract=off: no fused multiply-adds, so the elementwise results are the eager ones.
# No -march=native: the cache may be shared by machines of one architecture but many CPUs.
_FLAGS = ("-O3", "-fPIC", "-shared", "-fopenmp", "-ffp-contract=off")
_BUILD_SECONDS = 120


def _cache_directory() -> Path:
    if os.environ.get("LAWFUL_NATIVE_CACHE"):
        return Path(os.environ["LAWFUL_NATIVE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lawful" / "native"


@functools.cache
def _build() -> tuple[ctypes.CDLL | None, str]:
    """The loaded library and how it was found, or ``None`` and why there is none."""
    if os.environ.get(NATIVE_VARIABLE, "1") == "0":
        return None, f"off ({NATIVE_VARIABLE}=0): eager update"
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        return None, f"no C compiler ({compiler!r} not found): eager update"
    source = _SOURCE.read_bytes()
    identity = [source, compiler.encode(), " ".join(_FLAGS).encode(), platform.machine().encode()]
    key = hashlib.sha256(b"\0".join(identity)).hexdigest()[:16]
    library = _cache_directory() / f"rank_one_update-{key}.so"
    how = f"loaded from {library}"
    if not library.exists():
        failure = _compile(compiler, library)
        if failure is not None:
            return None, f"build failed ({failure}): eager update"
        how = f"built into {library}"
    try:
        loaded = ctypes.CDLL(str(library))
    except OSError as error:
        return None, f"load failed ({error}): eager update"
    _declare(loaded)
    return loaded, how


def _compile(compiler: str, library: Path) -> str | None:
    """Compile the source into ``library``; ``None``, or what went wrong."""
    try:
        library.parent.mkdir(parents=True, exist_ok=True)
        # Built beside its final name and renamed: processes building at once (torchrun)
        # never load a half-written file, and an interrupted build leaves none.
        handle, partial = tempfile.mkstemp(suffix=".so.partial", dir=library.parent)
        os.close(handle)
    except OSError as error:
        return str(error)
    try:
        result = subprocess.run(
            [compiler, *_FLAGS, str(_SOURCE), "-o", partial],
            capture_output=True,
            text=True,
            timeout=_BUILD_SECONDS,
        )
        if result.returncode != 0:
            return f"{compiler}: " + (result.stderr.strip().splitlines() or ["no message"])[0]
        os.replace(partial, library)
        return None
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _declare(library: ctypes.CDLL) -> None:
    pointer, size, integer = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix in ("f32", "f64"):
        sums = getattr(library, f"lawful_rank_one_sums_{suffix}")
        sums.argtypes = [pointer] * 3 + [size] * 3 + [pointer, integer]
        sums.restype = integer
        apply = getattr(library, f"lawful_rank_one_apply_{suffix}")
        apply.argtypes = [pointer] * 3 + [size] * 3 + [pointer] * 4 + [integer, integer]
        apply.restype = integer


def rank_one_update_library() -> ctypes.CDLL | None:
    """The compiled rank-one update (built on first use), or ``None`` where there is none."""
    return _build()[0]


def native_status() -> str:
    """Whether the native kernels are in use: where they were loaded from, or why not."""
    return _build()[1]


_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
#: Outputs larger than this are written with streaming stores (past the cache): caching them
#: would only evict the inputs, and nothing reads them before they would be evicted anyway.
_STREAMING_BYTES = 16 * 2**20


#: Each thread takes at least this many values: waking a thread costs microseconds, and below
#: this a pass is over before a second thread would have paid for itself.
_VALUES_PER_THREAD = 2**15


def _threads(values: int) -> int:
    return max(1, min(torch.get_num_threads(), values // _VALUES_PER_THREAD))


def _pointer(tensor: Tensor) -> ctypes.c_void_p:
    """The address of ``tensor``'s first value; the kernels read it as one dense CPU array."""
    if tensor.device.type != "cpu" or not tensor.is_contiguous():
        raise ValueError(
            f"the native kernels read contiguous CPU arrays, got a {tensor.device.type} tensor "
            f"with strides {tensor.stride()}"
        )
    return ctypes.c_void_p(tensor.data_ptr())


def _belief_arguments(mean: Tensor, variance: Tensor, weights: Tensor) -> tuple:
    """What both passes begin with: the three arrays, rows, points and the weights' row stride
    (0 where one row of weights serves every row)."""
    rows, points = mean.shape
    stride = 0 if weights.shape[0] == 1 else points
    return _pointer(mean), _pointer(variance), _pointer(weights), rows, points, stride


def rank_one_sums(mean: Tensor, variance: Tensor, weights: Tensor) -> Tensor:
    """``(sum_n g_n mu_n, sum_n (g_n d_n) g_n)`` per row, in float64: ``(rows, 2)``.

    ``mean`` and ``variance`` ``(rows, points)``; ``weights`` ``(1, points)`` (one row for all)
    or ``(rows, points)``; all contiguous, on the CPU, of one dtype (float32 or float64).
    """
    library = rank_one_update_library()
    assert library is not None, "rank_one_sums needs the native library"
    sums = torch.empty(mean.shape[0], 2, dtype=torch.float64)
    status = getattr(library, f"lawful_rank_one_sums_{_SUFFIX[mean.dtype]}")(
        *_belief_arguments(mean, variance, weights), _pointer(sums), _threads(mean.numel())
    )
    if status != 0:
        raise MemoryError("the native update could not allocate its partial sums")
    return sums


def rank_one_apply(
    mean: Tensor, variance: Tensor, weights: Tensor, gain: Tensor, shrink: Tensor
) -> tuple[Tensor, Tensor]:
    """``(mu + (g d) gain, max(d + (g d)^2 shrink, 0))`` per row: two ``(rows, points)``.

    Arrays as in :func:`rank_one_sums`; ``gain`` and ``shrink`` ``(rows,)`` in their dtype.
    """
    library = rank_one_update_library()
    assert library is not None, "rank_one_apply needs the native library"
    mean_out, variance_out = torch.empty_like(mean), torch.empty_like(variance)
    streaming = 2 * mean.numel() * mean.element_size() > _STREAMING_BYTES
    getattr(library, f"lawful_rank_one_apply_{_SUFFIX[mean.dtype]}")(
        *_belief_arguments(mean, variance, weights),
        _pointer(gain),
        _pointer(shrink),
        _pointer(mean_out),
        _pointer(variance_out),
        int(streaming),
        _threads(mean.numel()),
    )
    return mean_out, variance_out
