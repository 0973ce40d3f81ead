"""Tests for chapter 10's figures: what each panel shows, its scale and its labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnist_helpers.calibration import reliability_bins
from mnist_helpers.inspection_plots import (
    PanelRow,
    accuracy_vs_epsilon,
    embedding_pair,
    feature_map_rows,
    filter_grid,
    panel_rows,
    reliability_diagrams,
)


def _images(fig):
    return [image for ax in fig.axes for image in ax.get_images()]


def test_panel_rows_share_one_scale_per_row_and_draw_the_colour_bars_asked_for() -> (
    None
):
    digits = PanelRow(
        "digit",
        np.random.default_rng(0).random((3, 5, 5)),
        titles=["a", "b", "c"],
        title_colors=["green", "red", "green"],
    )
    heat = PanelRow(
        "heat",
        np.random.default_rng(1).random((2, 5, 5)),
        cmap="inferno",
        limits=(0, 1),
        colorbar="importance",
    )
    fig = panel_rows([digits, heat], "title")
    images = _images(fig)
    assert len(images) == 5
    assert {image.get_clim() for image in images[3:]} == {(0, 1)}
    assert len({image.get_clim() for image in images[:3]}) == 1
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "importance" in labels and "digit" in labels and "heat" in labels
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    assert fig.axes[1].title.get_color() == "red"
    assert fig._suptitle.get_text() == "title"


def test_feature_map_rows_pick_the_most_active_maps_after_the_relu() -> None:
    maps = torch.zeros(1, 4, 3, 3)
    maps[0, 2] = 5.0
    maps[0, 0] = 1.0
    maps[0, 3] = -9.0  # negative everywhere: nothing survives the ReLU
    (row,) = feature_map_rows({"conv1": maps}, n_channels=2)
    assert row.titles == ["map 2", "map 0"]
    assert row.label == "conv1\n4×3×3" and row.limits == (0.0, 5.0)
    with pytest.raises(ValueError, match=r"one image's maps"):
        feature_map_rows({"conv1": torch.zeros(2, 4, 3, 3)})


def test_filter_grid_uses_a_symmetric_scale_around_zero() -> None:
    weights = torch.zeros(5, 1, 3, 3)
    weights[1, 0, 0, 0] = -0.4
    weights[3, 0, 1, 1] = 0.2
    fig = filter_grid(weights, "filters", ncols=4)
    images = _images(fig)
    assert len(images) == 5
    assert all(image.get_clim() == pytest.approx((-0.4, 0.4)) for image in images)
    assert any(ax.get_ylabel() == "weight" for ax in fig.axes)


def test_embedding_pair_circles_the_marked_points_and_counts_them_in_the_legend() -> (
    None
):
    points = np.random.default_rng(0).random((20, 2))
    marked = np.zeros(20, dtype=bool)
    marked[[3, 7]] = True
    fig = embedding_pair(
        {"pixels": points, "features": points}, np.arange(20) % 10, marked, "maps"
    )
    panels = [ax for ax in fig.axes if ax.get_title() in ("pixels", "features")]
    assert len(panels) == 2
    assert [len(c.get_offsets()) for c in panels[0].collections] == [20, 2]
    assert fig.legends[0].get_texts()[0].get_text() == "misclassified (2)"
    assert any(ax.get_ylabel() == "true digit" for ax in fig.axes)


def test_reliability_diagrams_title_each_panel_with_its_ece() -> None:
    probs = np.stack([np.full(4, 0.9), np.full(4, 0.1)], axis=1)
    bins = reliability_bins(probs, np.array([0, 0, 0, 1]), n_bins=10)
    fig = reliability_diagrams({"before": bins, "after": bins}, "calibration")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["before\nECE = 15.00%", "after\nECE = 15.00%"]


def test_accuracy_vs_epsilon_labels_its_axes_and_annotates_each_point() -> None:
    fig = accuracy_vs_epsilon([0, 4, 8], [99.0, 90.0, 50.0], "FGSM")
    ax = fig.axes[0]
    assert "grey levels" in ax.get_xlabel() and ax.get_ylabel() == "test accuracy (%)"
    assert [text.get_text() for text in ax.texts] == ["99.0%", "90.0%", "50.0%"]


def test_a_heatmap_row_with_an_underlay_draws_the_digit_beneath_a_transparent_heatmap() -> (
    None
):
    digits, heat = np.zeros((2, 4, 4)), np.ones((2, 4, 4))
    fig = panel_rows(
        [PanelRow("Grad-CAM", heat, cmap="jet", limits=(0, 1), underlay=digits)],
        "overlay",
    )
    first = fig.axes[0].get_images()
    assert [image.get_cmap().name for image in first] == ["gray", "jet"]
    assert first[0].get_alpha() is None and first[1].get_alpha() == 0.6


def test_eight_panels_a_row_wrap_into_two_blocks_that_fit_the_page() -> None:
    """Eight 1.15-inch panels plus labels would be 11.4 inches, shown shrunk below readable; two blocks of
    four keep every title, colour and underlay with its own panel."""
    rng = np.random.default_rng(0)
    digits = PanelRow(
        "digit",
        rng.random((8, 5, 5)),
        titles=[f"t{i}" for i in range(8)],
        title_colors=["green"] * 4 + ["red"] * 4,
    )
    heat = PanelRow(
        "heat", rng.random((8, 5, 5)), limits=(0, 1), underlay=rng.random((8, 5, 5))
    )
    fig = panel_rows([digits, heat], "title", panel_inches=1.15)
    assert fig.get_figwidth() <= 9.0
    panels = [ax for ax in fig.axes if ax.get_images()]
    titled = [ax for ax in panels if ax.get_title()]
    assert [ax.get_title() for ax in titled] == [f"t{i}" for i in range(8)]
    assert [ax.title.get_color() for ax in titled] == ["green"] * 4 + ["red"] * 4
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()] == [
        "digit",
        "heat",
        "digit",
        "heat",
    ]
    heat_axes = [ax for ax in panels if len(ax.get_images()) == 2]  # digit beneath heat
    assert len(heat_axes) == 8
