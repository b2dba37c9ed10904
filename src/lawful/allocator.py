"""Keep freed memory in the process, so training steps stop paying page faults.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc's malloc maps a large block
with ``mmap`` and returns it to the kernel when it is freed, and trims the heap's free top the
same way; the next step allocates the same sizes again and the kernel zero-fills every page on
first touch. A training step frees nearly everything it allocates, so it pays this every
time, and how much depends on the heap's history: on this project's 2-core machine the 1-D FNO
step of ``lawful bench`` (width 64, 500 points, batch 20) took about 12,000 minor page faults
per step in a fresh process with glibc's defaults, and about 100 with freed memory kept.
Allocators such as jemalloc and tcmalloc keep freed memory by design; this does the same with
glibc's own switches.

:func:`keep_freed_memory` sets them for the whole process: blocks below
:data:`MMAP_THRESHOLD` come from the heap, and the heap is trimmed only when more than
:data:`TRIM_THRESHOLD` of it is free. The process then holds on to its peak heap (as a caching
allocator does) instead of giving memory back between steps. Arithmetic is untouched: tensors
keep PyTorch's alignment, so every result is bit-identical, only faster. ``lawful``'s commands
call it first; call it at the start of your own training script to get the same. Elsewhere than
glibc (macOS, musl) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "allocator_state", "keep_freed_memory"]

#: Bytes: blocks smaller than this are served from the heap and stay there when freed (glibc's
#: default starts at 128 KiB and grows only up to 32 MiB; the update's 10^7-point fields are 40 MB).
MMAP_THRESHOLD = 1 << 30
#: Bytes of free heap top kept before malloc gives any back (``mallopt`` takes an ``int``).
TRIM_THRESHOLD = (1 << 31) - 1

# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_state = "default"


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for the rest of the process (module docstring).

    Returns whether the settings took effect: ``False`` where the C library is not glibc or
    refuses them. Calling it again changes nothing.
    """
    global _state
    if _state.startswith("kept"):
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _state = f"default (not glibc: {platform.system()} {platform.libc_ver()[0] or 'libc'})"
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # mallopt returns 1 on success, 0 where the value is refused.
    if not (
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    ):
        _state = "default (glibc refused the thresholds)"
        return False
    _state = f"kept (glibc: mmap threshold {MMAP_THRESHOLD}, trim threshold {TRIM_THRESHOLD})"
    return True


def allocator_state() -> str:
    """How this process's malloc treats freed memory: ``"default"``, or ``"kept (...)"`` with
    the thresholds after :func:`keep_freed_memory`, or why it could not be set."""
    return _state
