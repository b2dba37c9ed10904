"""Training steps of lawful's FNOs against baselines, measured in the same run: BOON's step
against the plain FNO's (time and peak memory), and the FNO's step against the textbook FNO
(lawful.bench.textbook) and against neuraloperator's ``neuralop.models.FNO``."""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from lawful.bench._timing import WARMUP_STEPS, adam_step, alternating_steps
from lawful.bench.textbook import TextbookFNO1d, TextbookFNO2d, TextbookFNO3d
from lawful.constraints.boundary import BoundaryConditions, Dirichlet
from lawful.constraints.walls import Walls
from lawful.operators.boon import BoundaryCorrectedFNO, BoundaryCorrectedFNO1d
from lawful.operators.fno import FNO1d, FNOxy, FNOxyt

__all__ = [
    "AXES",
    "boon_peak_memory",
    "boon_peak_memory_2d",
    "boon_step_ratio",
    "boon_step_ratio_2d",
    "fno_step_ratio",
    "mixed_precision_step_ratio",
    "neuralop_fno",
    "our_fno",
    "peak_allocated_bytes",
    "peak_cuda_bytes",
    "peak_training_step_bytes",
    "textbook_fno",
    "training_step",
]

#: The FNOs the speed rows compare, by the axes they span: in words, for the rows' names.
AXES = {"x": "1-D", "xy": "2-D", "xyt": "2-D + time"}


def training_step(
    model: nn.Module, x: Tensor, target: Tensor, autocast: torch.dtype | None = None
) -> Callable[[], None]:
    """One training step of ``model`` on ``x``, ``target`` per call (:func:`adam_step` on the
    mean squared error). With ``autocast`` (``torch.bfloat16``), the forward and the loss run
    under automatic mixed precision, as Lightning's ``bf16-mixed`` runs them (the backward
    outside it; no loss scaling, which bf16 does not need)."""
    mixed = torch.autocast(x.device.type, dtype=autocast, enabled=autocast is not None)

    def loss() -> Tensor:
        with mixed:
            return (model(x) - target).square().mean()

    return adam_step(model, loss)


def _on(device: str, *items: nn.Module | Tensor) -> tuple:
    """``items`` moved to ``device`` (models and tensors are made on the CPU from CPU seeds, so
    every device starts from the same weights and data)."""
    return tuple(item.to(device) for item in items)


def _boon_1d_models(
    width: int, modes: int, n: int, batch: int, seed: int, device: str = "cpu"
) -> tuple[nn.Module, nn.Module, Tensor, Tensor]:
    """An FNO1d, the same FNO with BOON Dirichlet corrections at both ends, an input and a
    target ``(batch, 1, n)``, on ``device``."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    fno = FNO1d(1, 1, width, modes)
    conditions = BoundaryConditions(Dirichlet(0.0), Dirichlet(0.0))
    boon = BoundaryCorrectedFNO1d(copy.deepcopy(fno), conditions)
    x = torch.randn(batch, 1, n, generator=generator)  # (batch, channels, x)
    target = torch.randn(batch, 1, n, generator=generator)
    return _on(device, fno, boon, x, target)


def _boon_walls_models(
    width: int,
    modes: int,
    grid: tuple[int, int],
    frames: int | None,
    padding: int,
    batch: int,
    seed: int,
    device: str = "cpu",
) -> tuple[nn.Module, nn.Module, Tensor, Tensor]:
    """An FNOxyt (or, with ``frames=None``, an FNOxy), the same FNO with BOON Dirichlet
    conditions on all four walls, an input and a target, on ``device``."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if frames is None:
        fno: nn.Module = FNOxy(1, 1, width, modes, modes)
        shape = (batch, 1, *grid)  # (batch, channels, x, y)
    else:
        fno = FNOxyt(1, 1, width, modes, modes, modes, padding=padding)
        shape = (batch, 1, *grid, frames)  # (batch, channels, x, y, t)
    walls = Walls(
        BoundaryConditions(Dirichlet(0.0), Dirichlet(0.0)),
        BoundaryConditions(Dirichlet(0.0), Dirichlet(0.0)),
    )
    boon = BoundaryCorrectedFNO(copy.deepcopy(fno), walls)
    x = torch.randn(shape, generator=generator)
    target = torch.randn(shape, generator=generator)
    return _on(device, fno, boon, x, target)


def boon_step_ratio(
    width: int = 64,
    modes: int = 16,
    n: int = 500,
    batch: int = 20,
    repeats: int = 7,
    warmup: int = WARMUP_STEPS,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """Median seconds per training step (forward, backward, Adam) of an FNO1d and of the same FNO
    with BOON Dirichlet corrections at both ends, on ``device``, and the median ratio
    ``boon_s / fno_s``.

    Steps alternate between the two models so both see the same machine load.
    """
    fno, boon, x, target = _boon_1d_models(width, modes, n, batch, seed, device)
    return _as_boon_timing(_alternating_ratio(boon, fno, x, target, repeats, warmup))


def boon_step_ratio_2d(
    width: int = 20,
    modes: int = 8,
    grid: tuple[int, int] = (50, 50),
    frames: int | None = 25,
    padding: int = 0,
    batch: int = 10,
    repeats: int = 5,
    warmup: int = WARMUP_STEPS,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """:func:`boon_step_ratio` in two space dimensions: an :class:`FNOxyt` (``frames`` time
    frames, ``modes`` on every axis, ``padding`` on time) or, with ``frames=None``, an
    :class:`FNOxy`, against the same FNO with BOON Dirichlet conditions on all four walls
    (one joint solve per layer). The defaults are the cavity's model: 50 x 50 x 25, width 20,
    8 modes, batch 10.
    """
    fno, boon, x, target = _boon_walls_models(
        width, modes, grid, frames, padding, batch, seed, device
    )
    return _as_boon_timing(_alternating_ratio(boon, fno, x, target, repeats, warmup))


def _as_boon_timing(timing: dict[str, float]) -> dict[str, float]:
    return {"fno_s": timing["baseline_s"], "boon_s": timing["ours_s"], "ratio": timing["ratio"]}


def _alternating_ratio(
    ours: nn.Module,
    baseline: nn.Module,
    x: Tensor,
    target: Tensor,
    repeats: int,
    warmup: int,
    baseline_x: Tensor | None = None,
    baseline_target: Tensor | None = None,
    ours_autocast: torch.dtype | None = None,
) -> dict[str, float]:
    """:func:`alternating_steps` of training steps of both models on ``x``'s device.

    ``baseline_x`` and ``baseline_target`` (default ``x`` and ``target``) are the baseline's
    input and target when its layout differs (the textbook FNO's is channels-last);
    ``ours_autocast`` trains ours under mixed precision (:func:`training_step`).
    """
    baseline_x = x if baseline_x is None else baseline_x
    baseline_target = target if baseline_target is None else baseline_target
    return alternating_steps(
        training_step(ours, x, target, ours_autocast),
        training_step(baseline, baseline_x, baseline_target),
        x.device,
        repeats,
        warmup,
    )


def _check_axes(axes: str, grid: tuple[int, ...] | None = None) -> None:
    if axes not in AXES:
        raise ValueError(f"axes must be one of {', '.join(AXES)}, got {axes!r}")
    if grid is not None and len(grid) != len(axes):
        raise ValueError(f"an FNO over {axes} needs {len(axes)} grid sizes, got {grid}")


def our_fno(axes: str, width: int, modes: int) -> nn.Module:
    """lawful's FNO over ``axes`` (``"x"``, ``"xy"`` or ``"xyt"``), ``modes`` on every axis, four
    layers, no padding; input ``(batch, 1, *grid)``."""
    _check_axes(axes)
    if axes == "x":
        return FNO1d(1, 1, width, modes)
    if axes == "xy":
        return FNOxy(1, 1, width, modes, modes)
    return FNOxyt(1, 1, width, modes, modes, modes)


def textbook_fno(axes: str, width: int, modes: int) -> nn.Module:
    """The textbook FNO (lawful.bench.textbook) that computes what :func:`our_fno` does; input
    channels-last, ``(batch, *grid, 1)``."""
    _check_axes(axes)
    if axes == "x":
        return TextbookFNO1d(modes, width)
    if axes == "xy":
        return TextbookFNO2d(modes, modes, width)
    return TextbookFNO3d(modes, modes, modes, width)


def neuralop_fno(axes: str, width: int, modes: int) -> nn.Module:
    """neuraloperator 2.x's ``neuralop.models.FNO`` configured to compute what :func:`our_fno`
    does: the grid appended, a one-layer pointwise lifting, four blocks of spectral conv plus a
    linear skip (GELU between, none after the last; no channel MLP, no normalisation, dense
    weights), a projection through 128 channels; input ``(batch, 1, *grid)``. Raises
    ``ImportError`` without neuraloperator.

    neuraloperator counts ``n_modes`` over positive and negative frequencies and halves the last
    axis (``n // 2 + 1`` kept): our ``m`` frequencies ``-m..m-1`` are its ``2 m`` on every axis
    but the last, our ``0..m-1`` on the last its ``2 m - 1``. The parameter count is ours (its
    spectral conv's bias is our pointwise map's, its skip our pointwise weight). What differs
    costs nothing: its grid channels run over ``[0, 1)`` (ours over ``[0, 1]``), its FFTs are
    normalised forward (ours backward; the product is the same), its weights start otherwise.
    """
    _check_axes(axes)
    from neuralop.models import FNO

    projection_width = 128  # lawful's default, the textbook FNO's fc1
    return FNO(
        n_modes=(*(2 * modes for _ in axes[:-1]), 2 * modes - 1),
        in_channels=1,
        out_channels=1,
        hidden_channels=width,
        n_layers=4,
        lifting_channel_ratio=0,  # one pointwise layer, like fc0
        projection_channel_ratio=projection_width / width,
        positional_embedding="grid",
        use_channel_mlp=False,
        fno_skip="linear",
    )


def _input_and_target(batch: int, grid: tuple[int, ...], seed: int) -> tuple[Tensor, Tensor]:
    """A random input and target ``(batch, 1, *grid)`` each, from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, *grid, generator=generator)  # (batch, channels, *grid)
    return x, torch.randn(batch, 1, *grid, generator=generator)


def fno_step_ratio(
    baseline: str,
    axes: str,
    width: int,
    modes: int,
    grid: tuple[int, ...],
    batch: int,
    repeats: int = 7,
    warmup: int = WARMUP_STEPS,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """Median seconds per training step (forward, backward, Adam) of lawful's FNO over ``axes``
    (:func:`our_fno`) and of the ``baseline`` (``"textbook"``: :func:`textbook_fno`;
    ``"neuralop"``: :func:`neuralop_fno`, ``ImportError`` without neuraloperator) of the same
    width, modes and grid, on ``device``, steps alternating, and the median ratio
    ``ours_s / baseline_s``."""
    _check_axes(axes, grid)
    builders = {"textbook": textbook_fno, "neuralop": neuralop_fno}
    if baseline not in builders:
        raise ValueError(f"baseline must be one of {', '.join(builders)}, got {baseline!r}")
    torch.manual_seed(seed)
    theirs = builders[baseline](axes, width, modes)
    ours = our_fno(axes, width, modes)
    theirs, ours, x, target = _on(device, theirs, ours, *_input_and_target(batch, grid, seed))
    if baseline == "textbook":  # channels last: (batch, *grid, channels)
        layout = {
            "baseline_x": x.movedim(1, -1).contiguous(),
            "baseline_target": target.movedim(1, -1).contiguous(),
        }
    else:
        layout = {}
    return _alternating_ratio(ours, theirs, x, target, repeats, warmup, **layout)


def mixed_precision_step_ratio(
    axes: str,
    width: int,
    modes: int,
    grid: tuple[int, ...],
    batch: int,
    repeats: int = 7,
    warmup: int = WARMUP_STEPS,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """Median seconds per training step of lawful's FNO over ``axes`` under bf16 automatic
    mixed precision and of the same FNO (a copy, same weights) in float32, on ``device``, steps
    alternating, and the median ratio ``mixed_s / float32_s``."""
    _check_axes(axes, grid)
    torch.manual_seed(seed)
    full = our_fno(axes, width, modes)
    mixed = copy.deepcopy(full)
    mixed, full, x, target = _on(device, mixed, full, *_input_and_target(batch, grid, seed))
    return _alternating_ratio(mixed, full, x, target, repeats, warmup, ours_autocast=torch.bfloat16)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 sent to ``os.devnull`` for the block: the profiler's native library
    writes a line to it at every start and stop, which no Python setting turns off."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 at all: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_allocations(profile: torch.profiler.profile) -> list[tuple[int, int, int]]:
    """``(time_ns, pointer, bytes)`` of every CPU allocation (``bytes > 0``) and free
    (``bytes < 0``) the profile recorded, in time order."""
    events = []
    stack = list(profile.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        fields = node.extra_fields
        allocation = isinstance(fields, torch._C._profiler._ExtraFields_Allocation)
        if allocation and fields.device.type == "cpu":
            events.append((node.start_time_ns, fields.ptr, fields.alloc_size))
    events.sort(key=lambda event: event[0])
    return events


def peak_allocated_bytes(work: Callable[[], object]) -> int:
    """The peak, while ``work()`` runs, of the bytes it has allocated through PyTorch's CPU
    allocator and not yet freed: what it needs beyond what was live before it.

    Measured with ``torch.profiler.profile(profile_memory=True)``: PyTorch's CPU allocator then
    reports every allocation and free, with its address and size (the events that
    ``torch.profiler``'s own memory timeline is built from). Walking them in time order, the
    bytes allocated in ``work`` and not yet freed are summed at every event; the peak is the
    largest sum. A free is counted only if its block was allocated in ``work``, so freeing what
    was live before (a gradient of the previous step, say) does not lower the total.

    Caveats: only tensor memory is counted, the blocks of PyTorch's CPU allocator; memory that
    libraries take with their own ``malloc`` (MKL's FFT plans and workspaces, oneDNN's scratch
    space, Python objects) is not; nor are allocations on threads the profiler does not follow
    (CPU autograd runs the backward on the calling thread, so a training step is followed). The
    block sizes are those asked for (no allocator rounding or fragmentation). The result is the
    same on every run for the same shapes: it counts bytes, not time.
    """
    activities = [torch.profiler.ProfilerActivity.CPU]
    with (
        _native_stderr_silenced(),
        torch.profiler.profile(activities=activities, profile_memory=True) as profile,
    ):
        work()
    blocks: dict[int, int] = {}  # address -> bytes, of the blocks work() has allocated
    live = peak = 0
    for _, pointer, size in _cpu_allocations(profile):
        if size > 0:
            blocks[pointer] = size
            live += size
            peak = max(peak, live)
        elif pointer in blocks:
            live -= blocks.pop(pointer)
    return peak


def peak_cuda_bytes(work: Callable[[], object], device: torch.device) -> int:
    """The peak, while ``work()`` runs, of the bytes it has allocated on the CUDA ``device`` and
    not yet freed (PyTorch's caching allocator's count of tensor bytes, not its reserve)."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    work()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def peak_training_step_bytes(model: nn.Module, x: Tensor, target: Tensor) -> int:
    """The peak bytes of one training step of ``model`` on ``x``, ``target`` (forward, mean
    squared error, backward, Adam step) beyond what was live before it: on the CPU by
    :func:`peak_allocated_bytes`, on CUDA by :func:`peak_cuda_bytes`.

    One step runs first and is not measured (Adam's state, which lives across steps, is made
    there); the step measured drops that step's gradients (``zero_grad``, to ``None``) and
    allocates its activations, its gradients and its temporaries, as every step of a training
    run after the first does.
    """
    step = training_step(model, x, target)
    step()
    if x.device.type == "cuda":
        return peak_cuda_bytes(step, x.device)
    return peak_allocated_bytes(step)  # its zero_grad frees blocks from before: not counted


def boon_peak_memory(
    width: int = 64,
    modes: int = 16,
    n: int = 500,
    batch: int = 20,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, int]:
    """Peak bytes of a training step (:func:`peak_training_step_bytes`) of the FNO1d of
    :func:`boon_step_ratio` and of the same FNO with BOON at both ends, on ``device``."""
    return _peaks(*_boon_1d_models(width, modes, n, batch, seed, device))


def boon_peak_memory_2d(
    width: int = 20,
    modes: int = 8,
    grid: tuple[int, int] = (50, 50),
    frames: int | None = 25,
    padding: int = 0,
    batch: int = 10,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, int]:
    """:func:`boon_peak_memory` for the models of :func:`boon_step_ratio_2d` (BOON on four
    walls)."""
    return _peaks(*_boon_walls_models(width, modes, grid, frames, padding, batch, seed, device))


def _peaks(fno: nn.Module, boon: nn.Module, x: Tensor, target: Tensor) -> dict[str, int]:
    return {
        "fno_bytes": peak_training_step_bytes(fno, x, target),
        "boon_bytes": peak_training_step_bytes(boon, x, target),
    }
