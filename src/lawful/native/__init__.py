"""Kernels compiled from C on the user's machine, where eager PyTorch cannot reach the hardware.

Eager PyTorch makes one pass over memory per operation; where a computation is a few
operations on arrays far larger than the cache, the passes are its whole cost, and a loop that
does them together is several times faster. Such loops live here as plain C (no PyTorch
headers): built once per source, compiler and machine with the system's C compiler (``CC``,
else ``cc``; about ten seconds, once), cached under ``LAWFUL_NATIVE_CACHE`` (default
``$XDG_CACHE_HOME/lawful/native``, else ``~/.cache/lawful/native``) and loaded by ctypes.

The same holds where a computation is many operations on arrays so small that dispatching
each costs more than computing it (BOON's correction near the ends of a 1-D grid): one call
does them all, and one more their backward. And it holds where PyTorch's kernels do not use
the vector instructions the CPU has (the ANP's attention: PyTorch multiplies its small blocks
through a BLAS that runs AVX2 kernels on AMD CPUs with AVX-512): the kernel is compiled for
several instruction sets and the CPU's is chosen when it loads.

Where no compiler works, or with ``LAWFUL_NATIVE=0``, :func:`native_library` is ``None`` and
the callers use their eager forms, which give the same results to rounding;
:func:`native_status` says which. Every kernel works on CPU float32 or float64 arrays (the
attention on float32 alone; dense, unless its wrapper says otherwise) and leaves dtype, device
and autograd checks to its caller.
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
    "EndConstants",
    "EndGrid",
    "attention_backward",
    "attention_forward",
    "end_correction_backward",
    "end_correction_forward",
    "native_library",
    "native_status",
    "rank_one_apply",
    "rank_one_sums",
]

#: Set to ``0`` to use the eager forms everywhere (the native kernels are then never built).
NATIVE_VARIABLE = "LAWFUL_NATIVE"

_SOURCES = (
    Path(__file__).with_name("rank_one_update.c"),
    Path(__file__).with_name("end_correction.c"),
    Path(__file__).with_name("attention.c"),
)
#: Included by the sources: part of what a build is (the cache key), not compiled alone.
_HEADERS = (
    Path(__file__).with_name("end_correction_body.h"),
    Path(__file__).with_name("vectorised.h"),
)
# -ffp-contract=off: no fused multiply-adds, so the elementwise results are the eager ones.
# No -march=native: the cache may be shared by machines of one architecture but many CPUs.
_FLAGS = ("-O3", "-fPIC", "-shared", "-fopenmp", "-ffp-contract=off")
_LIBRARIES = ("-lm",)  # after the sources: a linker drops libraries nothing before them needs
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
        return None, f"off ({NATIVE_VARIABLE}=0): eager forms"
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        return None, f"no C compiler ({compiler!r} not found): eager forms"
    sources = [source.read_bytes() for source in _SOURCES + _HEADERS]
    flags = " ".join(_FLAGS + _LIBRARIES).encode()
    identity = [*sources, compiler.encode(), flags, platform.machine().encode()]
    key = hashlib.sha256(b"\0".join(identity)).hexdigest()[:16]
    library = _cache_directory() / f"lawful-native-{key}.so"
    how = f"loaded from {library}"
    if not library.exists():
        failure = _compile(compiler, library)
        if failure is not None:
            return None, f"build failed ({failure}): eager forms"
        how = f"built into {library}"
    try:
        loaded = ctypes.CDLL(str(library))
    except OSError as error:
        return None, f"load failed ({error}): eager forms"
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
            [compiler, *_FLAGS, *map(str, _SOURCES), "-o", partial, *_LIBRARIES],
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


class _EndShape(ctypes.Structure):
    """``EndShape`` of end_correction.c: the sizes of one call of the end correction."""

    _fields_ = [
        *((name, ctypes.c_int64) for name in ("batch", "channels", "in_channels", "modes")),
        ("near", ctypes.c_int64),
        ("mixed_stride", ctypes.c_int64 * 3),
        ("spectrum_stride", ctypes.c_int64 * 3),
        ("target_stride", ctypes.c_int64),
        ("end_value_stride", ctypes.c_int64),
        ("gelu", ctypes.c_int64),
        ("pivot_tolerance", ctypes.c_double),
    ]


class _EndConstantPointers(ctypes.Structure):
    """``EndConstants`` of end_correction.c: where the grid's and the conditions' arrays are."""

    _fields_ = [
        (name, ctypes.c_void_p)
        for name in (
            "synthesis",
            "coefficients",
            "rows",
            "residual_rows",
            "impulses",
            "targets",
            "end_rows",
            "end_values",
        )
    ]


def _declare(library: ctypes.CDLL) -> None:
    pointer, size, integer = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    library.lawful_attention_forward.argtypes = [pointer] * 6 + [integer]
    library.lawful_attention_forward.restype = integer
    library.lawful_attention_backward.argtypes = [pointer] * 10 + [integer]
    library.lawful_attention_backward.restype = integer
    library.lawful_end_state_size.argtypes = [pointer]
    library.lawful_end_state_size.restype = size
    for suffix in ("f32", "f64"):
        sums = getattr(library, f"lawful_rank_one_sums_{suffix}")
        sums.argtypes = [pointer] * 3 + [size] * 3 + [pointer, integer]
        sums.restype = integer
        apply = getattr(library, f"lawful_rank_one_apply_{suffix}")
        apply.argtypes = [pointer] * 3 + [size] * 3 + [pointer] * 4 + [integer, integer]
        apply.restype = integer
        forward = getattr(library, f"lawful_end_correction_forward_{suffix}")
        forward.argtypes = [pointer] * 10
        forward.restype = integer
        backward = getattr(library, f"lawful_end_correction_backward_{suffix}")
        backward.argtypes = [pointer] * 12
        backward.restype = integer


def native_library() -> ctypes.CDLL | None:
    """The compiled kernels (built on first use), or ``None`` where there are none."""
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


def _pointer(tensor: Tensor) -> int:
    """The address of ``tensor``'s first value; the kernels read it as one dense CPU array."""
    if tensor.device.type != "cpu" or not tensor.is_contiguous():
        raise ValueError(
            f"the native kernels read contiguous CPU arrays, got a {tensor.device.type} tensor "
            f"with strides {tensor.stride()}"
        )
    return tensor.data_ptr()


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
    library = native_library()
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
    library = native_library()
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


class EndGrid:
    """What the end correction reads about the grid and the kinds of condition, the same for
    every batch, held in float64: ``synthesis (2 modes, P)``, ``irfft`` near the ends of a unit
    real or imaginary coefficient on each kept mode; ``coefficients (2, modes)`` complex, the
    impulses' ``e_0, e_N``; ``rows``, ``residual_rows``, ``impulses`` ``(2, P)``; ``end_rows (2,
    P)``, the linear part of the exact end entries of a near-end slice."""

    def __init__(
        self,
        synthesis: Tensor,
        coefficients: Tensor,
        rows: Tensor,
        residual_rows: Tensor,
        impulses: Tensor,
        end_rows: Tensor,
    ) -> None:
        self.synthesis, self.coefficients, self.rows, self.residual_rows = (
            _held(synthesis),
            _held(torch.view_as_real(coefficients)),
            _held(rows),
            _held(residual_rows),
        )
        self.impulses, self.end_rows = _held(impulses), _held(end_rows)
        self.near = synthesis.shape[-1]


def _held(tensor: Tensor) -> Tensor:
    return tensor.detach().to(torch.float64).contiguous()


class EndConstants:
    """What one forward pass's end corrections read besides the layers: the ``grid``'s arrays
    and this batch's data, ``targets (batch or 1, 2)`` (the equations' right-hand sides) and
    ``end_values (batch or 1, 2)`` (the data's part of the exact end entries)."""

    def __init__(self, grid: EndGrid, targets: Tensor, end_values: Tensor) -> None:
        self.grid, self.near = grid, grid.near
        self.targets, self.end_values = (
            _held(targets.reshape(-1, 2)),
            _held(end_values.reshape(-1, 2)),
        )
        arrays = (
            grid.synthesis,
            grid.coefficients,
            grid.rows,
            grid.residual_rows,
            grid.impulses,
            self.targets,
            grid.end_rows,
            self.end_values,
        )
        self.pointers = _EndConstantPointers(*(array.data_ptr() for array in arrays))
        self.target_rows, self.end_value_rows = self.targets.shape[0], self.end_values.shape[0]
        self._shapes: dict[tuple, tuple[_EndShape, int]] = {}

    def shape(
        self,
        mixed: Tensor,
        spectrum: Tensor,
        near_input: Tensor,
        gelu: bool,
        pivot_tolerance: float = 0.0,
    ) -> tuple[_EndShape, int]:
        """The sizes of a call and its state's size: ``mixed`` the layer's kept spectrum
        ``(batch, channels, modes)`` (or its gradient), ``spectrum`` the corrected one (or its
        gradient), complex, any strides; ``near_input (batch, in, P)``; ``gelu``: the activation
        (else none). Each layout is described once: the layers of a forward pass share one."""
        key = (mixed.shape, mixed.stride(), spectrum.stride(), near_input.shape, gelu)
        if key not in self._shapes:
            shape = self._describe(mixed, spectrum, near_input, gelu, pivot_tolerance)
            size = native_library().lawful_end_state_size(ctypes.byref(shape))
            self._shapes[key] = shape, size
        return self._shapes[key]

    def _describe(
        self, mixed: Tensor, spectrum: Tensor, near_input: Tensor, gelu: bool, pivot: float
    ) -> _EndShape:
        batch, channels, modes = mixed.shape
        for rows in (self.target_rows, self.end_value_rows):
            if rows not in (1, batch):
                raise ValueError(f"boundary data for {rows} samples, batch {batch}")
        return _EndShape(
            batch,
            channels,
            near_input.shape[1],
            modes,
            self.near,
            (ctypes.c_int64 * 3)(*mixed.stride()),
            (ctypes.c_int64 * 3)(*spectrum.stride()),
            0 if self.target_rows == 1 else 2,
            0 if self.end_value_rows == 1 else 2,
            int(gelu),
            pivot,
        )


def _complex_pointer(tensor: Tensor) -> int:
    """The address of a complex CPU array, read or written through its strides."""
    if tensor.device.type != "cpu" or not tensor.is_complex():
        raise ValueError(f"expected a complex CPU tensor, got {tensor.dtype} on {tensor.device}")
    return tensor.data_ptr()


def _end_call(
    library: ctypes.CDLL,
    direction: str,
    dtype: torch.dtype,
    shape: _EndShape,
    constants: EndConstants,
    *arrays: int,
) -> None:
    """The end correction's ``direction`` (``"forward"`` or ``"backward"``) in ``dtype`` on
    ``arrays`` (addresses, in the C signature's order)."""
    kernel = getattr(library, f"lawful_end_correction_{direction}_{_SUFFIX[dtype]}")
    if kernel(ctypes.byref(shape), ctypes.byref(constants.pointers), *arrays) != 0:
        raise MemoryError("the native end correction could not allocate its work arrays")


def end_correction_forward(
    constants: EndConstants,
    mixed: Tensor,
    near_input: Tensor,
    spectral_weight: Tensor,
    pointwise_weight: Tensor,
    pointwise_bias: Tensor,
    gelu: bool,
    pivot_tolerance: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """BOON's correction of a 1-D layer near the ends (end_correction.c): ``(spectrum,
    next_near, state)``.

    ``mixed (batch, channels, modes)`` complex, any strides: the layer's kept spectrum;
    ``near_input (batch, in, P)``: its input near the ends; ``spectral_weight (in, channels,
    modes, 2)``; ``pointwise_weight (channels, in)``, ``pointwise_bias (channels,)``; dense, of
    one real dtype (``mixed`` its complex one). ``spectrum``: ``mixed`` plus the correction's
    spectrum, laid out as ``mixed``; ``next_near (batch, channels, P)``: the corrected layer
    near the ends after the activation (GELU with ``gelu``, else none) with its end entries
    exact, the next layer's input there; ``state``: what :func:`end_correction_backward` reads.
    """
    library = native_library()
    assert library is not None, "end_correction_forward needs the native library"
    shape, state_size = constants.shape(mixed, mixed, near_input, gelu, pivot_tolerance)
    state = near_input.new_empty(state_size)
    spectrum = torch.empty_strided(mixed.shape, mixed.stride(), dtype=mixed.dtype)
    next_near = near_input.new_empty(*mixed.shape[:2], constants.near)
    _end_call(
        library,
        "forward",
        near_input.dtype,
        shape,
        constants,
        _complex_pointer(mixed),
        _pointer(near_input),
        _pointer(spectral_weight),
        _pointer(pointwise_weight),
        _pointer(pointwise_bias),
        _complex_pointer(spectrum),
        _pointer(next_near),
        _pointer(state),
    )
    return spectrum, next_near, state


def end_correction_backward(
    constants: EndConstants,
    state: Tensor,
    near_input: Tensor,
    pointwise_weight: Tensor,
    spectrum_gradient: Tensor,
    near_gradient: Tensor,
    gelu: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The gradients of :func:`end_correction_forward`'s inputs from those of its outputs:
    ``(mixed, near_input, spectral_weight, pointwise_weight, pointwise_bias)``.

    ``state``, ``near_input``, ``pointwise_weight`` and ``gelu`` as the forward had them;
    ``spectrum_gradient (batch, channels, modes)`` complex, any strides; ``near_gradient
    (batch, channels, P)`` dense.
    """
    library = native_library()
    assert library is not None, "end_correction_backward needs the native library"
    mixed_gradient = torch.empty_like(spectrum_gradient, memory_format=torch.contiguous_format)
    shape, _ = constants.shape(mixed_gradient, spectrum_gradient, near_input, gelu)
    channels, modes = mixed_gradient.shape[1:]
    spectral_weight_gradient = near_input.new_empty(near_input.shape[1], channels, modes, 2)
    pointwise_weight_gradient = torch.empty_like(pointwise_weight)
    pointwise_bias_gradient = pointwise_weight.new_empty(channels)
    near_input_gradient = torch.empty_like(near_input)
    _end_call(
        library,
        "backward",
        near_input.dtype,
        shape,
        constants,
        _pointer(state),
        _pointer(near_input),
        _pointer(pointwise_weight),
        _complex_pointer(spectrum_gradient),
        _pointer(near_gradient),
        _complex_pointer(mixed_gradient),
        _pointer(near_input_gradient),
        _pointer(spectral_weight_gradient),
        _pointer(pointwise_weight_gradient),
        _pointer(pointwise_bias_gradient),
    )
    return (
        mixed_gradient,
        near_input_gradient,
        spectral_weight_gradient,
        pointwise_weight_gradient,
        pointwise_bias_gradient,
    )


class _Strides(ctypes.Structure):
    """``Strides`` of attention.c: a (batch, heads, rows, d) operand's strides but the last."""

    _fields_ = [(name, ctypes.c_int64) for name in ("batch", "head", "row")]


_ATTENTION_OPERANDS = (
    "query",
    "key",
    "value",
    "out",
    "out_gradient",
    "query_gradient",
    "key_gradient",
    "value_gradient",
)


class _AttentionShape(ctypes.Structure):
    """``AttentionShape`` of attention.c: the sizes, the scale and every operand's strides."""

    _fields_ = [
        *((name, ctypes.c_int64) for name in ("batch", "heads", "queries", "keys", "head_dim")),
        ("scale", ctypes.c_double),
        *((name, _Strides) for name in _ATTENTION_OPERANDS),
    ]


def _attention_shape(scale: float, **operands: Tensor) -> _AttentionShape:
    """The shape of a call on ``query (B, H, n, d)``, ``key``/``value`` ``(B, H, m, d)`` and
    the other operands named, each with unit stride along d (any strides elsewhere)."""
    query, key = operands["query"], operands["key"]
    batch, heads, queries, head_dim = query.shape
    shape = _AttentionShape(batch, heads, queries, key.shape[2], head_dim, scale)
    for name, tensor in operands.items():
        if tensor.device.type != "cpu" or tensor.dtype != torch.float32 or tensor.stride(-1) != 1:
            raise ValueError(
                f"the native attention reads CPU float32 operands with unit stride along d; "
                f"{name} is {tensor.dtype} on {tensor.device.type} with strides {tensor.stride()}"
            )
        setattr(shape, name, _Strides(*tensor.stride()[:3]))
    return shape


def _attention_threads(query: Tensor) -> int:
    return max(1, min(torch.get_num_threads(), query.shape[0] * query.shape[1]))


def attention_forward(query: Tensor, key: Tensor, value: Tensor, scale: float) -> tuple:
    """``softmax(scale q k^T) v`` per head and the rows' log-sum-exp of the scores: ``out (B,
    H, n, d)``, laid out as ``(B, n, H, d)`` (so that merging the heads is a view), and ``lse
    (B, H, n)``. Operands as :func:`_attention_shape` takes them."""
    library = native_library()
    assert library is not None, "attention_forward needs the native library"
    batch, heads, queries, head_dim = query.shape
    out = query.new_empty(batch, queries, heads, head_dim).transpose(1, 2)
    lse = query.new_empty(batch, heads, queries)
    shape = _attention_shape(scale, query=query, key=key, value=value, out=out)
    status = library.lawful_attention_forward(
        ctypes.byref(shape),
        *(tensor.data_ptr() for tensor in (query, key, value, out, lse)),
        _attention_threads(query),
    )
    if status != 0:
        raise MemoryError("the native attention could not allocate its work arrays")
    return out, lse


def attention_backward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    out: Tensor,
    out_gradient: Tensor,
    lse: Tensor,
    scale: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients of :func:`attention_forward`'s ``out`` with respect to ``query``, ``key``
    and ``value`` (each laid out like its operand), from ``out``'s gradient and ``lse``."""
    library = native_library()
    assert library is not None, "attention_backward needs the native library"
    gradients = tuple(torch.empty_like(tensor) for tensor in (query, key, value))
    shape = _attention_shape(
        scale,
        query=query,
        key=key,
        value=value,
        out=out,
        out_gradient=out_gradient,
        **dict(zip(_ATTENTION_OPERANDS[5:], gradients, strict=True)),
    )
    status = library.lawful_attention_backward(
        ctypes.byref(shape),
        *(tensor.data_ptr() for tensor in (query, key, value, out, out_gradient)),
        _pointer(lse),  # read as (B, H, n) in order: dense, or refused
        *(gradient.data_ptr() for gradient in gradients),
        _attention_threads(query),
    )
    if status != 0:
        raise MemoryError("the native attention could not allocate its work arrays")
    return gradients
