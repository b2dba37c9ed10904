"""The models' large linear layers on oneDNN, the CPU library PyTorch's convolutions run on.

On the CPU, ``functional.linear`` multiplies by the BLAS PyTorch was built with (MKL in the x86-64
wheels) and ``functional.conv2d`` by oneDNN. The two do not pick the same instructions
everywhere: on this project's AMD EPYC (Zen 5, AVX-512), MKL runs its AVX2 kernels, about 165
GFLOPS on two cores, while oneDNN's AVX-512 kernels reach about 300 on the same products, and
its backward passes 1.5 to 2 times MKL's.

A linear layer is a 1 x 1 convolution over its points: ``(..., in) -> (..., out)`` is a
convolution of one image whose pixels are the points, laid out channels-last, which is exactly
how the rows of ``(..., in)`` lie in memory, so neither side is copied. :func:`linear` takes
that route where PyTorch's BLAS is MKL and the product is large enough to repay the
convolution's fixed cost (about 0.1 ms a call), and ``functional.linear`` elsewhere. Values
equal ``functional.linear``'s to rounding (another order of summation); gradients, and the
second derivatives SoftC takes, are PyTorch's own convolution backward.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional

__all__ = ["MIN_ONEDNN_MULTIPLY_ADDS", "linear"]

#: Multiply-adds (points x in x out) from which a product goes through oneDNN. Measured here,
#: forward and backward: 1.6x faster at 1600 x 128 x 128 (2.6e7), break-even near 4e5 x 16,
#: 0.7x at 200 x 128 x 128 (3.3e6), where the convolution's fixed cost dominates.
MIN_ONEDNN_MULTIPLY_ADDS = 1 << 24


def _through_onednn(inputs: Tensor, weight: Tensor) -> bool:
    if weight.ndim != 2 or inputs.ndim == 0 or inputs.shape[-1] != weight.shape[1]:
        return False  # functional.linear's cases, or its error
    out_features, in_features = weight.shape
    points = inputs.numel() // max(in_features, 1)
    return (
        inputs.device.type == "cpu"
        and inputs.dtype == weight.dtype == torch.float32
        # The reason for the route: PyTorch's BLAS is MKL (x86-64 builds). Elsewhere (ARM's
        # BLAS and oneDNN builds) it is unmeasured, so the products stay with the BLAS.
        and torch.backends.mkl.is_available()
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled  # off: conv2d would take its slow fallback
        and points * in_features * out_features >= MIN_ONEDNN_MULTIPLY_ADDS
    )


def linear(inputs: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``functional.linear(inputs, weight, bias)``, by oneDNN where that is faster (module
    docstring): ``inputs`` (..., in), ``weight`` (out, in), ``bias`` (out,) -> (..., out)."""
    if not _through_onednn(inputs, weight):
        return functional.linear(inputs, weight, bias)
    *leading, in_features = inputs.shape
    # (..., in) as one channels-last image of (points x 1) pixels: shape (1, in, points, 1).
    image = inputs.reshape(1, -1, 1, in_features).permute(0, 3, 1, 2)
    convolved = functional.conv2d(image, weight[:, :, None, None], bias)  # (1, out, points, 1)
    # Channels-last output: back to rows of (..., out) without a copy.
    return convolved.permute(0, 2, 3, 1).reshape(*leading, weight.shape[0])
