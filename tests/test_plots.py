"""The figures: what each panel draws, checked against the tensors it was given."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.collections import PolyCollection
from PIL import Image

from lawful.plots import (
    _field_figure,
    _profiles_figure,
    _shock_histograms_figure,
    animate_field_images,
    plot_error_over_time,
    plot_mass_over_time,
    plot_neumann_ends,
    plot_profiles,
    plot_profiles_over_time,
    plot_shock_histograms,
)

CASE_TITLES = ["p* = 0.6", "p* = 0.7"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def profiles():
    """Grid ``(X,)``, truth ``(cases, X)`` and three methods, the last one deterministic."""
    grid = torch.linspace(0, 1, 6, dtype=torch.float64)  # (X,)
    truth = torch.stack([1 - grid, 3 * (1 - grid)])  # (cases, X): the second case is taller
    beliefs = {
        "ANP": (truth + 0.1, torch.full_like(truth, 0.04)),
        "ProbConserv-ANP": (truth - 0.05, (0.01 + 0.1 * grid).square().expand_as(truth)),
        "FNO": (truth + 0.2 * grid, torch.zeros_like(truth)),
    }  # method -> (mean, variance), each (cases, X)
    return grid, truth, beliefs


def _band_extremes(band: PolyCollection, grid) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest vertex of the band's polygon above each grid point."""
    vertices = band.get_paths()[0].vertices  # (corners, 2)
    at = [vertices[np.isclose(vertices[:, 0], x), 1] for x in np.asarray(grid)]
    return np.array([y.min() for y in at]), np.array([y.max() for y in at])


def test_profiles_have_one_panel_per_method_and_case_with_titles(profiles):
    grid, truth, beliefs = profiles
    figure = _profiles_figure(grid, truth, beliefs, CASE_TITLES)
    axes = np.array(figure.axes).reshape(2, 3)  # (cases, methods)
    assert [axis.get_title() for axis in axes[0]] == list(beliefs)
    assert all(axis.get_title() == "" for axis in axes[1])
    for axis, title in zip(axes[:, 0], CASE_TITLES, strict=True):
        assert [text.get_text() for text in axis.texts] == [title]


def test_each_profile_panel_draws_the_truth_and_only_its_methods_mean(profiles):
    grid, truth, beliefs = profiles
    axes = np.array(_profiles_figure(grid, truth, beliefs, CASE_TITLES).axes).reshape(2, 3)
    for column, (mean, _) in enumerate(beliefs.values()):
        for case in range(2):
            mean_line, truth_line = axes[case, column].lines
            np.testing.assert_allclose(mean_line.get_xdata(), grid)
            np.testing.assert_allclose(mean_line.get_ydata(), mean[case])
            np.testing.assert_allclose(truth_line.get_ydata(), truth[case])
            assert truth_line.get_linestyle() == "--"
            assert truth_line.get_color() == "black"


def test_band_spans_two_standard_deviations_around_the_mean(profiles):
    grid, truth, beliefs = profiles
    axes = np.array(_profiles_figure(grid, truth, beliefs, CASE_TITLES).axes).reshape(2, 3)
    for column, (mean, variance) in enumerate(list(beliefs.values())[:2]):
        for case in range(2):
            (band,) = axes[case, column].collections
            lowest, highest = _band_extremes(band, grid)
            spread = 2 * variance[case].sqrt()  # (X,)
            np.testing.assert_allclose(lowest, mean[case] - spread)
            np.testing.assert_allclose(highest, mean[case] + spread)


def test_zero_variance_draws_no_band_but_keeps_its_own_panel(profiles):
    grid, truth, beliefs = profiles
    deterministic = {name: (mean, torch.zeros_like(mean)) for name, (mean, _) in beliefs.items()}
    figure = _profiles_figure(grid, truth, deterministic, CASE_TITLES)
    assert len(figure.axes) == 2 * 3
    assert all(len(axis.collections) == 0 and len(axis.lines) == 2 for axis in figure.axes)
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["exact", "mean"]


def test_profile_rows_share_y_limits_that_hold_every_band(profiles):
    grid, truth, beliefs = profiles
    axes = np.array(_profiles_figure(grid, truth, beliefs, CASE_TITLES).axes).reshape(2, 3)
    for case, row in enumerate(axes):
        limits = {axis.get_ylim() for axis in row}
        assert len(limits) == 1
        (bottom, top) = limits.pop()
        for mean, variance in beliefs.values():
            spread = 2 * variance[case].sqrt()
            assert bottom <= float((mean[case] - spread).min())
            assert top >= float((mean[case] + spread).max())
    assert axes[0, 0].get_ylim() != axes[1, 0].get_ylim()  # each case keeps its own scale


@pytest.fixture
def shocks():
    """Drawn shock positions, method -> ``(cases, draws)``, and the true ones ``(cases,)``."""
    true_position = torch.tensor([0.5, 0.8], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    positions = {
        method: true_position[:, None] + bias + spread * torch.randn(2, 50, generator=generator)
        for method, bias, spread in (("ANP", 0.05, 0.02), ("GP", -0.02, 0.05), ("PC", 0.0, 0.01))
    }
    return positions, true_position


def test_histogram_panels_mark_the_true_position_and_count_their_methods_draws(shocks):
    positions, true_position = shocks
    figure = _shock_histograms_figure(positions, true_position, CASE_TITLES, bins=12)
    axes = np.array(figure.axes).reshape(2, 3)  # (cases, methods)
    assert [axis.get_title() for axis in axes[0]] == list(positions)
    for case, row in enumerate(axes):
        truth = float(true_position[case])
        pooled = torch.cat([drawn[case] for drawn in positions.values()]).tolist()
        edges = np.histogram_bin_edges([*pooled, truth], bins=12)  # one set for the whole row
        assert len({axis.get_xlim() for axis in row}) == 1
        for axis, drawn in zip(row, positions.values(), strict=True):
            (marker,) = axis.lines
            np.testing.assert_allclose(marker.get_xdata(), [truth, truth])
            expected, _ = np.histogram(drawn[case].numpy(), bins=edges, density=True)
            np.testing.assert_allclose([bar.get_height() for bar in axis.patches], expected)
            np.testing.assert_allclose([bar.get_x() for bar in axis.patches], edges[:-1])


def test_histogram_of_identical_draws_still_brackets_the_truth():
    # A deterministic method draws one position; the edges must not collapse to a point.
    positions = {"FNO": torch.full((1, 20), 0.3)}
    figure = _shock_histograms_figure(positions, torch.tensor([0.3]), ["case"], bins=5)
    (axis,) = figure.axes
    left, right = axis.get_xlim()
    assert left < 0.3 < right
    assert sum(bar.get_height() * bar.get_width() for bar in axis.patches) == pytest.approx(1.0)


def _assert_png(path, size):
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == size
        pixels = np.asarray(image.convert("RGB"))  # (height, width, 3)
    assert (pixels < 40).all(-1).any()  # the black truth is drawn
    assert (pixels.max(-1) - pixels.min(-1) > 100).any()  # and some method's colour


def test_saved_figures_are_pngs_of_the_panel_grid_size(profiles, shocks, tmp_path):
    grid, truth, beliefs = profiles
    # 3 methods x 2 cases at 2.9 x 2.3 in a panel plus margins, at dpi 110.
    expected = (round((2.9 * 3 + 0.6) * 110), round((2.3 * 2 + 0.8) * 110))
    path = plot_profiles(grid, truth, beliefs, CASE_TITLES, tmp_path / "profiles.png")
    assert path == tmp_path / "profiles.png"
    _assert_png(path, expected)
    positions, true_position = shocks
    path = plot_shock_histograms(positions, true_position, CASE_TITLES, tmp_path / "shock.png")
    _assert_png(path, expected)
    assert plt.get_fignums() == []  # saving closes the figure


def test_the_one_row_figures_still_save(tmp_path):
    grid, times = torch.linspace(0, 1, 9), torch.linspace(0, 1, 4)  # (X,), (T,)
    one = {"FNO": torch.rand(2, 4)}  # method -> (cases, T)
    paths = [
        plot_mass_over_time(times, torch.ones(2, 4), one, ["a", "b"], tmp_path / "mass.png"),
        plot_error_over_time(times, one, ["a", "b"], tmp_path / "error.png"),
        plot_neumann_ends(grid, grid, {"FNO": grid}, (1.0, 1.0), tmp_path / "ends.png", points=3),
        plot_profiles_over_time(
            grid, times[:2], torch.rand(2, 9), {"FNO": torch.rand(2, 9)}, tmp_path / "time.png"
        ),
    ]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert min(image.size) > 300


def test_field_images_show_each_field_and_its_error_with_the_walls():
    from lawful.plots import _field_images_figure

    grid = torch.linspace(0, 1, 9, dtype=torch.float64)
    truth = torch.outer(torch.sin(torch.pi * grid), grid)  # (x, y)
    predictions = {"FNO": truth + 0.1, "BOON": truth.clone()}
    figure = _field_images_figure(grid, truth, predictions, "sample")
    try:
        images = [axis.images[0] for axis in figure.axes if axis.images]
        assert len(images) == 1 + 2 * len(predictions)  # truth, then field and error per method
        shown = [torch.as_tensor(image.get_array().data) for image in images]
        torch.testing.assert_close(shown[0], truth.T, check_dtype=False)  # y up, x across
        errors = [
            array
            for array in shown[1:]
            if float(array.min()) >= 0 and float(array.max()) <= 0.1 + 1e-9
        ]
        assert any(torch.allclose(e, torch.full_like(e, 0.1)) for e in errors)
        assert any(float(e.abs().max()) == 0 for e in errors)
        walled = [axis for axis in figure.axes if axis.images and axis.patches]
        assert len(walled) == len(images)  # every panel draws the square's four walls
    finally:
        plt.close(figure)


def test_field_animation_has_one_frame_per_time_on_fixed_scales(tmp_path):
    grid = torch.linspace(0, 1, 9, dtype=torch.float64)
    times = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    truth = torch.outer(torch.sin(torch.pi * grid), grid)[..., None] * times  # (x, y, T)
    path = animate_field_images(
        grid, truth, {"BOON": truth + 0.01}, times, "sample", tmp_path / "flow.gif", "vorticity"
    )
    with Image.open(path) as animation:
        assert animation.n_frames == 3
        first = np.asarray(animation.convert("RGB"))
        animation.seek(2)
        last = np.asarray(animation.convert("RGB"))
    assert first.shape == last.shape and not np.array_equal(first, last)


def test_single_field_image_shows_the_field_with_the_walls():
    grid = torch.linspace(0, 1, 9, dtype=torch.float64)
    field = torch.outer(grid, 1 - grid)  # (x, y)
    figure = _field_figure(grid, field, "vorticity at t = 0.08", "vorticity")
    try:
        (axis, _) = figure.axes  # the field and its colour bar
        shown = torch.as_tensor(axis.images[0].get_array().data)
        torch.testing.assert_close(shown, field.T, check_dtype=False)  # y up, x across
        assert axis.patches  # the walls
    finally:
        plt.close(figure)
