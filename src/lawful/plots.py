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

__all__ = ["plot_mass_over_time", "plot_profiles", "plot_shock_histograms"]

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
        axis.set_ylabel("u")
    axes[0].legend(fontsize=7)
    return _save(figure, path)


def plot_mass_over_time(
    times: Tensor,
    true_mass: Tensor,
    masses: Mapping[str, Tensor],
    titles: Sequence[str],
    path: Path,
) -> Path:
    """One panel per case: total mass of each method's mean over time against the exact mass.

    ``times`` ``(T,)``; ``true_mass`` ``(cases, T)``; ``masses`` method -> ``(cases, T)``.
    """
    figure, axes = _panels(true_mass.shape[0], titles)
    for case, axis in enumerate(axes):
        for method, mass in masses.items():
            axis.plot(times, mass[case], marker="o", markersize=3, label=method)
        axis.plot(times, true_mass[case], **_TRUTH_STYLE)
        axis.set_xlabel("t")
        axis.set_ylabel("total mass U(t)")
    axes[0].legend(fontsize=7)
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
