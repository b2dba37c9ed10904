"""Scaled dot-product attention for the ANP's heads, by lawful's native kernel on the CPU.

PyTorch's CPU attention (its flash kernel) multiplies its blocks through the BLAS it was built
with, which on AMD CPUs runs AVX2 kernels on small blocks; the ANP's heads are small (100 to
200 points, 16 or 32 features), and attention was the largest part of its training step.
``lawful.native``'s kernel (attention.c) does a head's two products forward and five backward in
registers of 16 floats, compiled for the CPU at hand, and keeps only the rows' log-sum-exp
between the passes, as flash attention does.

:func:`dot_product_attention` takes it for CPU float32 tensors without autocast where the
native library is built, PyTorch's BLAS is MKL (what it was measured against) and PyTorch's
flash kernel is enabled: code that selects another kernel (SoftC, which differentiates twice,
takes ``sdpa_kernel(SDPBackend.MATH)``) gets PyTorch's. The kernel's backward is not
differentiable again, and says so if asked. Results equal PyTorch's to float32 rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable
from torch.nn import functional

from lawful.native import attention_backward, attention_forward, native_library

__all__ = ["dot_product_attention"]


class _NativeAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        scale = query.shape[-1] ** -0.5
        out, lse = attention_forward(query, key, value, scale)
        ctx.save_for_backward(query, key, value, out, lse)
        ctx.scale = scale
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, out_gradient: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        query, key, value, out, lse = ctx.saved_tensors
        if out_gradient.stride(-1) != 1:
            out_gradient = out_gradient.contiguous()
        return attention_backward(query, key, value, out, out_gradient, lse, ctx.scale)


def _native_applies(query: Tensor, key: Tensor, value: Tensor) -> bool:
    operands = (query, key, value)
    return (
        all(t.device.type == "cpu" and t.dtype == torch.float32 for t in operands)
        and all(t.ndim == 4 and t.stride(-1) == 1 for t in operands)
        # One (batch, heads) grid and one head size for all three (PyTorch's also broadcasts
        # batches and lets the values' size differ; it takes those).
        and key.shape == value.shape
        and query.shape[:2] == key.shape[:2]
        and query.shape[-1] == key.shape[-1]
        and min(query.shape) > 0
        and key.shape[2] > 0
        and not torch.is_autocast_enabled("cpu")
        # sdpa_kernel's switch (global, not CUDA's alone): off, the caller wants another kernel.
        and torch.backends.cuda.flash_sdp_enabled()
        # Measured against PyTorch's kernel where that multiplies through MKL (x86-64 builds);
        # elsewhere PyTorch's stays.
        and torch.backends.mkl.is_available()
        and native_library() is not None
    )


def dot_product_attention(query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    """``functional.scaled_dot_product_attention(query, key, value)`` (no mask, no dropout,
    scale ``1 / sqrt(d)``): ``query (batch, heads, n, d)``, ``key``/``value`` ``(batch, heads,
    m, d)`` -> ``(batch, heads, n, d)``, by the native kernel where it applies (module
    docstring)."""
    if _native_applies(query, key, value):
        return _NativeAttention.apply(query, key, value)
    return functional.scaled_dot_product_attention(query, key, value)
