"""The figures people look at. Every function takes plain tensors and writes one PNG.

Matplotlib runs on the non-interactive Agg backend: the figures are files, never windows.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from torch import Tensor

__all__ = [
    "animate_field_images",
    "plot_error_over_time",
    "plot_field",
    "plot_field_images",
    "plot_mass_over_time",
    "plot_neumann_ends",
    "plot_profiles",
    "plot_profiles_over_time",
    "plot_scaling",
    "plot_shock_histograms",
]

_TRUTH_STYLE = {"color": "black", "linewidth": 2, "label": "exact"}
_DPI = 110
# Inches per panel of a methods grid: six methods by two cases stays under 18 x 6 in.
_PANEL_WIDTH, _PANEL_HEIGHT = 2.9, 2.3
_BAND_ALPHA = 0.25
# Characters per line of a row title, so that a rotated title fits beside one panel.
_ROW_TITLE_WIDTH = 26


def _panels(count: int, titles: Sequence[str]):
    figure, axes = plt.subplots(
        1, count, figsize=(4.5 * count, 3.6), squeeze=False, layout="constrained"
    )
    for axis, title in zip(axes[0], titles, strict=True):
        axis.set_title(title)
    return figure, axes[0]


def _method_color(column: int) -> str:
    """The colour of the ``column``-th method, as the one-panel figures cycle it."""
    return f"C{column % 10}"


def _method_grid(
    methods: Sequence[str], case_titles: Sequence[str], **share: bool | str
) -> tuple[Figure, np.ndarray]:
    """Rows of cases, columns of methods: the method names head the columns and each case's
    title labels its row. ``share`` goes to ``plt.subplots`` (``sharex``, ``sharey``).

    Returns the figure and its axes ``(cases, methods)``.
    """
    rows, columns = len(case_titles), len(methods)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(_PANEL_WIDTH * columns + 0.6, _PANEL_HEIGHT * rows + 0.8),
        squeeze=False,
        layout="constrained",
        **share,
    )
    for axis, method in zip(axes[0], methods, strict=True):
        axis.set_title(method, fontweight="bold")
    for axis, title in zip(axes[:, 0], case_titles, strict=True):
        # Left of the y label, so the row reads like a spreadsheet's row header.
        axis.annotate(
            textwrap.fill(title, _ROW_TITLE_WIDTH, break_on_hyphens=False),
            xy=(0, 0.5),
            xycoords=axis.yaxis.label,
            xytext=(-8, 0),
            textcoords="offset points",
            ha="right",
            va="center",
            rotation=90,
            fontweight="bold",
        )
    return figure, axes


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=_DPI)
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
    """The exact solution and each method's mean with its ±2σ band, one panel per method and
    case; see ``_profiles_figure``. Writes the PNG at ``path`` and returns it.
    """
    return _save(_profiles_figure(grid, truth, beliefs, titles, xlabel, ylabel), path)


def _profiles_figure(
    grid: Tensor,
    truth: Tensor,
    beliefs: Mapping[str, tuple[Tensor, Tensor]],
    titles: Sequence[str],
    xlabel: str = "x",
    ylabel: str = "u",
) -> Figure:
    """A grid of panels, rows = cases and columns = methods, as the ProbConserv paper lays them.

    Every panel holds the exact solution (black dashed, drawn on top so it shows even where the
    mean covers it) and one method's mean with its ±2σ band; a panel whose variance is zero
    (a deterministic operator) has no band. Methods run along a row because panels side by side
    share one horizontal scale for u: the y limits are shared within a row, so the methods of a
    case compare at a glance, while cases of different amplitude keep their own scale.

    ``grid`` ``(X,)``; ``truth`` ``(cases, X)``; ``beliefs`` method -> (mean, variance), each
    ``(cases, X)``; ``titles`` one per case.
    """
    figure, axes = _method_grid(list(beliefs), titles, sharex=True, sharey="row")
    banded = False
    for column, (mean, variance) in enumerate(beliefs.values()):  # (cases, X) each
        color = _method_color(column)
        for case, axis in enumerate(axes[:, column]):
            if variance[case].any():
                # Round-off can leave a variance a hair below zero: a zero-width band, not NaN.
                band = 2 * variance[case].clamp_min(0).sqrt()  # (X,)
                axis.fill_between(
                    grid,
                    mean[case] - band,
                    mean[case] + band,
                    color=color,
                    alpha=_BAND_ALPHA,
                    linewidth=0,
                )
                banded = True
            axis.plot(grid, mean[case], color=color, linewidth=1.5)
            axis.plot(grid, truth[case], linestyle="--", zorder=3, **_TRUTH_STYLE)
    for axis in axes[-1]:
        axis.set_xlabel(xlabel)
    for axis in axes[:, 0]:
        axis.set_ylabel(ylabel)
    # Grey stand-ins: each column has its own colour, the legend explains the marks.
    handles = [
        Line2D([], [], linestyle="--", **_TRUTH_STYLE),
        Line2D([], [], color="gray", linewidth=1.5, label="mean"),
    ]
    if banded:
        handles.append(Patch(color="gray", alpha=_BAND_ALPHA, linewidth=0, label="mean ± 2σ"))
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    return figure


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
    figure, axes = plt.subplots(
        2, cases, figsize=(4.5 * cases, 6.4), squeeze=False, sharex=True, layout="constrained"
    )
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
    """Histograms of the shock position, one panel per method and case, the true position marked
    in each; see ``_shock_histograms_figure``. Writes the PNG at ``path`` and returns it.
    """
    return _save(_shock_histograms_figure(positions, true_position, titles, bins), path)


def _shock_histograms_figure(
    positions: Mapping[str, Tensor],
    true_position: Tensor,
    titles: Sequence[str],
    bins: int = 30,
) -> Figure:
    """Rows = cases, columns = methods, as in ``_profiles_figure``: each panel is one method's
    histogram (a density) of the drawn shock positions with a black line at the true one.

    All panels of a case share their x limits and bin edges, which span every method's draws and
    the truth, so spread and bias compare across a row; the densities keep their own scale.

    ``positions`` method -> ``(cases, draws)``; ``true_position`` ``(cases,)``.
    """
    figure, axes = _method_grid(list(positions), titles, sharex="row")
    for case, row in enumerate(axes):
        truth = float(true_position[case])
        pooled = torch.cat([drawn[case].reshape(-1) for drawn in positions.values()])  # (M*draws,)
        edges = np.histogram_bin_edges([*pooled.tolist(), truth], bins=bins)  # (bins + 1,)
        for column, (axis, drawn) in enumerate(zip(row, positions.values(), strict=True)):
            axis.hist(drawn[case], bins=edges, density=True, color=_method_color(column))
            axis.axvline(truth, **_TRUTH_STYLE)
        row[0].set_ylabel("density")
    for axis in axes[-1]:
        axis.set_xlabel("shock position x")
    figure.legend(handles=[Line2D([], [], **_TRUTH_STYLE)], loc="outside lower center")
    return figure


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
    figure, axes = plt.subplots(
        2, columns, figsize=(4 * columns, 6), squeeze=False, layout="constrained"
    )
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


def plot_field_images(
    grid: Tensor,
    truth: Tensor,
    predictions: Mapping[str, Tensor],
    title: str,
    path: Path,
    label: str = "u",
) -> Path:
    """A 2-D field on the unit square: the truth and each method's prediction (top row, one
    colour scale), and each method's absolute error (bottom row, one scale), walls drawn.

    ``grid`` ``(n,)`` the node coordinates of x and y; ``truth`` and each prediction ``(n, n)``
    indexed [x, y] (shown with x to the right and y up); ``label`` names the field.
    """
    return _save(_field_images_figure(grid, truth, predictions, title, label), path)


def plot_field(grid: Tensor, field: Tensor, title: str, path: Path, label: str = "u") -> Path:
    """One 2-D field ``(n, n)`` indexed [x, y] on the node grid ``grid`` ``(n,)``, walls drawn."""
    return _save(_field_figure(grid, field, title, label), path)


def _field_figure(grid: Tensor, field: Tensor, title: str, label: str) -> Figure:
    figure, axis = plt.subplots(figsize=(4.2, 3.6), layout="constrained")
    image = _show_field(axis, field, grid, title, cmap="viridis")
    figure.colorbar(image, ax=axis, label=label)
    return figure


def animate_field_images(
    grid: Tensor,
    truth: Tensor,
    predictions: Mapping[str, Tensor],
    times: Tensor,
    title: str,
    path: Path,
    label: str = "u",
    seconds_per_frame: float = 0.25,
) -> Path:
    """:func:`plot_field_images` over time as an animated GIF: ``truth`` and each prediction
    ``(n, n, T)``, one frame per time of ``times`` ``(T,)``, colour scales fixed over all
    frames so that the frames compare."""
    from PIL import Image  # matplotlib's own dependency

    scales = _FieldScales.of(truth, predictions)
    frames = []
    for frame, t in enumerate(times.tolist()):
        figure = _field_images_figure(
            grid,
            truth[..., frame],
            {method: field[..., frame] for method, field in predictions.items()},
            f"{title}, t = {t:.3g}",
            label,
            scales,
        )
        figure.canvas.draw()
        frames.append(Image.fromarray(np.asarray(figure.canvas.buffer_rgba())).convert("RGB"))
        plt.close(figure)
    frames[0].save(
        path,
        save_all=True,
        append_images=frames[1:],
        duration=round(1000 * seconds_per_frame),
        loop=0,
    )
    return path


@dataclass(frozen=True)
class _FieldScales:
    """The colour limits of a field figure: the fields' common range, the errors' largest."""

    low: float
    high: float
    worst_error: float

    @classmethod
    def of(cls, truth: Tensor, predictions: Mapping[str, Tensor]) -> _FieldScales:
        fields = [truth, *predictions.values()]
        worst = max(float((field - truth).abs().max()) for field in predictions.values())
        return cls(
            min(float(field.min()) for field in fields),
            max(float(field.max()) for field in fields),
            worst or 1.0,
        )


def _show_field(axis, field: Tensor, grid: Tensor, title: str, **scale):
    """``field`` ``(n, n)`` [x, y] as an image with x to the right, y up and the walls drawn."""
    low, high = float(grid[0]), float(grid[-1])
    # imshow's rows are y and its columns x: the [x, y] field transposed, y increasing up.
    image = axis.imshow(
        field.T.detach().cpu().numpy(), origin="lower", extent=(low, high, low, high), **scale
    )
    walls = Rectangle((low, low), high - low, high - low, fill=False, edgecolor="black")
    walls.set_linewidth(1.5)
    axis.add_patch(walls)
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])
    return image


def _field_images_figure(
    grid: Tensor,
    truth: Tensor,
    predictions: Mapping[str, Tensor],
    title: str,
    label: str = "u",
    scales: _FieldScales | None = None,
) -> Figure:
    """The figure of :func:`plot_field_images`; ``scales`` by default those of these fields."""
    scales = scales or _FieldScales.of(truth, predictions)
    columns = 1 + len(predictions)
    figure, axes = plt.subplots(
        2, columns, figsize=(2.9 * columns, 5.4), squeeze=False, layout="constrained"
    )
    field_scale = {"vmin": scales.low, "vmax": scales.high, "cmap": "viridis"}
    values = _show_field(axes[0, 0], truth, grid, "exact", **field_scale)
    axes[1, 0].axis("off")
    for column, (method, field) in enumerate(predictions.items(), start=1):
        _show_field(axes[0, column], field, grid, method, **field_scale)
        error = _show_field(
            axes[1, column],
            (field - truth).abs(),
            grid,
            f"|{method} - exact|",
            vmin=0,
            vmax=scales.worst_error,
            cmap="magma",
        )
    figure.colorbar(values, ax=axes[0, :], shrink=0.8, label=label)
    figure.colorbar(error, ax=axes[1, 1:], shrink=0.8, label="absolute error")
    figure.suptitle(title, fontsize=10)
    return figure


def plot_scaling(series: Sequence[Mapping], path: Path) -> Path:
    """One log-log panel per operation: its measured seconds against size, with the fitted slope,
    and the complexity's predicted growth through the largest size's time (dashed).

    Each entry has ``name``, ``size_label``, ``sizes``, ``seconds``, ``complexity``, ``slope``
    and ``expected_slope`` (lawful.bench.scaling).
    """
    return _save(_scaling_figure(series), path)


def _scaling_figure(series: Sequence[Mapping]) -> Figure:
    columns = min(3, len(series))
    rows = -(-len(series) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.4 * columns, 3.4 * rows), squeeze=False, layout="constrained"
    )
    for axis, one in zip(axes.flat, series, strict=False):
        sizes, seconds = one["sizes"], one["seconds"]
        axis.loglog(sizes, seconds, "o-", label=f"measured, slope {one['slope']:.2f}")
        predicted = [seconds[-1] * (size / sizes[-1]) ** one["expected_slope"] for size in sizes]
        axis.loglog(
            sizes,
            predicted,
            "--",
            color="gray",
            label=f"O({one['complexity']}), slope {one['expected_slope']:.2f}",
        )
        axis.set_title(one["name"], fontsize=9)
        axis.set_xlabel(one["size_label"])
        axis.set_ylabel("seconds")
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(series) :]:
        axis.axis("off")
    return figure
