"""The figures people look at. Every function takes plain tensors and writes one PNG.

Matplotlib runs on the non-interactive Agg backend: the figures are files, never windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from torch import Tensor

__all__ = [
    "plot_error_over_time",
    "plot_mass_over_time",
    "plot_neumann_ends",
    "plot_profiles",
    "plot_profiles_over_time",
    "plot_shock_histograms",
]

_TRUTH_STYLE = {"color": "black", "linewidth": 2, "label": "exact"}


def _panels(count: int, titles: Sequence[str]):
    figure, axes = plt.subplots(1, count, figsize=(4.5 * count, 3.6), squeeze=False)
    for axis, title in zip(axes[0], titles, strict=True):
        axis.set_title(title)
    return figure, axes[0]


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_profiles(
    grid: Tensor,
    truth: Tensor,
    beliefs: Mapping[str, tuple[Tensor, Tensor]],
    titles: Sequence[str],
    path: Path,
    xlabel: str = "x",
    ylabel: str = "u",
) -> Path:
    """One panel per case: the exact solution and each method's mean with a ±2σ band.

    ``grid`` ``(X,)``; ``truth`` ``(cases, X)``; ``beliefs`` method -> (mean, variance), each
    ``(cases, X)``.
    """
    figure, axes = _panels(truth.shape[0], titles)
    for case, axis in enumerate(axes):
        for method, (mean, variance) in beliefs.items():
            band = 2 * variance[case].sqrt()
            (line,) = axis.plot(grid, mean[case], label=method, linewidth=1.2)
            axis.fill_between(
                grid, mean[case] - band, mean[case] + band, color=line.get_color(), alpha=0.15
            )
        axis.plot(grid, truth[case], linestyle="--", **_TRUTH_STYLE)
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
    axes[0].legend(fontsize=7)
    return _save(figure, path)


def plot_mass_over_time(
    times: Tensor,
    true_mass: Tensor,
    masses: Mapping[str, Tensor],
    titles: Sequence[str],
    path: Path,
) -> Path:
    """Per case: each method's total mass over time against the exact one (top), and its
    error, the conservation violation itself (bottom, on a symmetric log scale).

    ``times`` ``(T,)``; ``true_mass`` ``(cases, T)``; ``masses`` method -> ``(cases, T)``.
    """
    cases = true_mass.shape[0]
    figure, axes = plt.subplots(2, cases, figsize=(4.5 * cases, 6.4), squeeze=False, sharex=True)
    for case in range(cases):
        total_axis, error_axis = axes[0, case], axes[1, case]
        total_axis.set_title(titles[case])
        for method, mass in masses.items():
            total_axis.plot(times, mass[case], marker="o", markersize=3, label=method)
            error_axis.plot(times, mass[case] - true_mass[case], marker="o", markersize=3)
        total_axis.plot(times, true_mass[case], **_TRUTH_STYLE)
        error_axis.axhline(0.0, color="black", linewidth=1)
        error_axis.set_yscale("symlog", linthresh=1e-6)
        total_axis.set_ylabel("total mass U(t)")
        error_axis.set_ylabel("mass error")
        error_axis.set_xlabel("t")
    axes[0, 0].legend(fontsize=7)
    return _save(figure, path)


def plot_shock_histograms(
    positions: Mapping[str, Tensor],
    true_position: Tensor,
    titles: Sequence[str],
    path: Path,
    bins: int = 30,
) -> Path:
    """Histograms of the shock position per method, one panel per case, the truth marked.

    ``positions`` method -> ``(cases, draws)``; ``true_position`` ``(cases,)``.
    """
    figure, axes = _panels(true_position.shape[0], titles)
    for case, axis in enumerate(axes):
        for method, drawn in positions.items():
            axis.hist(drawn[case], bins=bins, alpha=0.45, density=True, label=method)
        axis.axvline(float(true_position[case]), color="black", linewidth=2, label="exact")
        axis.set_xlabel("shock position x")
        axis.set_ylabel("density")
    axes[0].legend(fontsize=7)
    return _save(figure, path)


def plot_neumann_ends(
    grid: Tensor,
    truth: Tensor,
    predictions: Mapping[str, Tensor],
    flux: tuple[float, float],
    path: Path,
    points: int = 8,
) -> Path:
    """The solution near each end of one sample, with the prescribed flux drawn as a tangent.

    ``grid`` ``(X,)``; ``truth`` and each prediction ``(X,)``; ``flux`` the data ``u_x`` at
    (left, right). A prediction that bends away from the tangent lets heat through the boundary.
    """
    figure, axes = _panels(2, [f"left end, u_x = {flux[0]:.3g}", f"right end, u_x = {flux[1]:.3g}"])
    ends = (slice(0, points), slice(grid.numel() - points, None))
    for axis, end, slope, index in zip(axes, ends, flux, (0, -1), strict=True):
        for method, prediction in predictions.items():
            axis.plot(grid[end], prediction[end], marker="o", markersize=3, label=method)
        axis.plot(grid[end], truth[end], linestyle="--", **_TRUTH_STYLE)
        anchor = float(truth[index])
        tangent = anchor + slope * (grid[end] - grid[index])  # the line the flux prescribes
        axis.plot(grid[end], tangent, color="gray", linestyle=":", label="prescribed flux")
        axis.set_xlabel("x")
        axis.set_ylabel("u")
    axes[0].legend(fontsize=7)
    return _save(figure, path)


def plot_profiles_over_time(
    grid: Tensor,
    times: Tensor,
    truth: Tensor,
    predictions: Mapping[str, Tensor],
    path: Path,
) -> Path:
    """Profiles of one sample at a few times (top row) and each method's absolute error (bottom).

    ``grid`` ``(X,)``; ``times`` ``(cols,)``; ``truth`` and each prediction ``(cols, X)``.
    """
    columns = times.numel()
    figure, axes = plt.subplots(2, columns, figsize=(4 * columns, 6), squeeze=False)
    for column in range(columns):
        top, bottom = axes[0, column], axes[1, column]
        top.set_title(f"t = {float(times[column]):.3g}")
        for method, prediction in predictions.items():
            (line,) = top.plot(grid, prediction[column], label=method, linewidth=1.2)
            error = (prediction[column] - truth[column]).abs()
            bottom.semilogy(grid, error, color=line.get_color(), label=method, linewidth=1)
        top.plot(grid, truth[column], linestyle="--", **_TRUTH_STYLE)
        top.set_xlabel("x")
        bottom.set_xlabel("x")
    axes[0, 0].set_ylabel("u")
    axes[1, 0].set_ylabel("|error|")
    axes[0, 0].legend(fontsize=7)
    return _save(figure, path)


def plot_error_over_time(
    times: Tensor, errors: Mapping[str, Tensor], titles: Sequence[str], path: Path
) -> Path:
    """Relative L2 error against time, one panel per case: ``errors`` method -> ``(cases, T)``."""
    figure, axes = _panels(len(titles), titles)
    for case, axis in enumerate(axes):
        for method, error in errors.items():
            axis.semilogy(times, error[case], marker="o", markersize=3, label=method)
        axis.set_xlabel("t")
        axis.set_ylabel("relative L2 error")
    axes[0].legend(fontsize=7)
    return _save(figure, path)
