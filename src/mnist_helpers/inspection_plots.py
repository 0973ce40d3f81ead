"""Figures for looking inside a network (chapter 10): filters, feature maps, heatmaps, embeddings,
reliability diagrams and accuracy under attack.

Like :mod:`mnist_helpers.plots`, every helper returns one titled figure detached from pyplot, so a cell
shows it exactly once. Rows of small images share one colour scale per row, with a colour bar saying
what the colours mean, because a heatmap whose scale changes from panel to panel cannot be compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from torch import Tensor

from mnist_helpers.calibration import ReliabilityBins
from mnist_helpers.plots import _figure, _numpy

# The book's pages show a figure at most about 7.6 inches wide (760 px). A wider figure is scaled down, and
# its 9-point titles with it, until they are no longer readable; so figures stay within about 9 inches.
MAX_FIGURE_INCHES = 9.0


@dataclass(frozen=True)
class PanelRow:
    """One row of same-sized panels: a label on the left, one colour scale, optional colour bar."""

    label: str
    images: np.ndarray  # (panels, H, W)
    cmap: str = "gray"
    limits: tuple[float, float] | None = None  # None: the row's own minimum and maximum
    colorbar: str | None = None  # the colour bar's label; None draws no colour bar
    titles: Sequence[str] = ()  # one title per panel, or none
    title_colors: Sequence[str] = ()  # one colour per title, or none (black)
    underlay: np.ndarray | None = (
        None  # grey images drawn beneath half-transparent panels (heatmap on digit)
    )


def panel_rows(
    rows: Sequence[PanelRow], title: str, panel_inches: float = 1.25
) -> Figure:
    """A grid with one :class:`PanelRow` per row; shorter rows leave their last columns empty.

    Rows too long to fit :data:`MAX_FIGURE_INCHES` are cut into equal blocks stacked top to bottom (eight
    panels become two blocks of four), so the titles stay readable at the page's width.
    """
    rows = _wrap_rows(rows, panel_inches)
    ncols = max(len(row.images) for row in rows)
    fig, axes = _figure(
        len(rows),
        ncols,
        figsize=(panel_inches * ncols + 2.2, (panel_inches + 0.45) * len(rows) + 0.5),
    )
    for row, row_axes in zip(rows, axes):
        images = _numpy(row.images)
        low, high = (
            row.limits
            if row.limits is not None
            else (float(images.min()), float(images.max()))
        )
        shown = None
        for col, ax in enumerate(row_axes):
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(images):
                ax.set_axis_off()
                continue
            if row.underlay is not None:
                ax.imshow(_numpy(row.underlay)[col], cmap="gray")
            alpha = 0.6 if row.underlay is not None else None
            shown = ax.imshow(
                images[col], cmap=row.cmap, vmin=low, vmax=high, alpha=alpha
            )
            if row.titles:
                color = row.title_colors[col] if row.title_colors else "black"
                ax.set_title(row.titles[col], fontsize=9, color=color)
        row_axes[0].set_ylabel(row.label, fontsize=10)
        if row.colorbar is not None and shown is not None:
            bar = fig.colorbar(
                shown, ax=list(row_axes), shrink=0.85, aspect=12, pad=0.01
            )
            bar.set_label(row.colorbar, fontsize=8)
            bar.ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=13)
    return fig


def _wrap_rows(rows: Sequence[PanelRow], panel_inches: float) -> list[PanelRow]:
    """Cut every row into the same blocks of columns, each block's rows in order, when too wide."""
    ncols = max(len(row.images) for row in rows)
    fits = max(1, int((MAX_FIGURE_INCHES - 2.2) / panel_inches))
    blocks = math.ceil(ncols / fits)
    if blocks == 1:
        return list(rows)
    per_block = math.ceil(ncols / blocks)
    wrapped = []
    for start in range(0, ncols, per_block):
        part = slice(start, start + per_block)
        for row in rows:
            if start >= len(row.images):
                continue
            underlay = None if row.underlay is None else row.underlay[part]
            wrapped.append(
                replace(
                    row,
                    images=row.images[part],
                    titles=row.titles[part],
                    title_colors=row.title_colors[part],
                    underlay=underlay,
                )
            )
    return wrapped


def feature_map_rows(
    activations: Mapping[str, Tensor], n_channels: int = 8
) -> list[PanelRow]:
    """One :class:`PanelRow` per layer showing one image's ``n_channels`` most active feature maps.

    ``activations`` maps a layer name to its output for a *single* image, shape (1, C, H, W). The
    ReLU after a convolution is applied here, because that is what the next layer receives.
    """
    rows = []
    for name, output in activations.items():
        if output.ndim != 4 or output.shape[0] != 1:
            raise ValueError(
                f"{name}: expected one image's maps of shape (1, C, H, W), got {tuple(output.shape)}"
            )
        maps = output[0].relu().cpu()
        strongest = maps.mean(dim=(1, 2)).argsort(descending=True, stable=True)[
            :n_channels
        ]
        channels, height, width = maps.shape
        rows.append(
            PanelRow(
                label=f"{name}\n{channels}×{height}×{width}",
                images=maps[strongest].numpy(),
                cmap="viridis",
                limits=(0.0, float(maps.max()) or 1.0),
                colorbar="activation",
                titles=[f"map {int(c)}" for c in strongest],
            )
        )
    return rows


def filter_grid(weights: Tensor, title: str, ncols: int = 6) -> Figure:
    """A first convolution's kernels (C, 1, k, k) on one symmetric blue-white-red scale.

    White is zero; red weights add the pixel's brightness to the feature, blue ones subtract it.
    """
    kernels = _numpy(weights)[:, 0]
    limit = float(np.abs(kernels).max()) or 1.0
    nrows = math.ceil(len(kernels) / ncols)
    fig, axes = _figure(nrows, ncols, figsize=(1.2 * ncols + 1.2, 1.3 * nrows + 0.6))
    shown = None
    for index, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if index >= len(kernels):
            ax.set_axis_off()
            continue
        shown = ax.imshow(kernels[index], cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"filter {index}", fontsize=9)
    fig.colorbar(shown, ax=list(axes.flat), shrink=0.8, label="weight")
    fig.suptitle(title, fontsize=13)
    return fig


def embedding_pair(
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray,
    marked: np.ndarray,
    title: str,
    marked_label: str = "misclassified",
) -> Figure:
    """2-D embeddings side by side, points coloured by digit, the ``marked`` ones (a bool mask) circled."""
    labels, marked = _numpy(labels).astype(int), _numpy(marked).astype(bool)
    cmap = ListedColormap([f"C{digit}" for digit in range(10)])
    norm = BoundaryNorm(np.arange(-0.5, 10.5), cmap.N)
    fig, axes = _figure(1, len(embeddings), figsize=(4.0 * len(embeddings) + 1.0, 4.9))
    shown = None
    for ax, (name, points) in zip(axes[0], embeddings.items()):
        points = _numpy(points)
        shown = ax.scatter(
            points[:, 0],
            points[:, 1],
            c=labels,
            cmap=cmap,
            norm=norm,
            s=6,
            alpha=0.7,
            linewidths=0,
        )
        ax.scatter(
            points[marked, 0],
            points[marked, 1],
            s=60,
            facecolors="none",
            edgecolors="black",
            linewidths=1.2,
        )
        ax.set(xlabel="t-SNE dimension 1", ylabel="t-SNE dimension 2")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(shown, ax=list(axes[0]), ticks=range(10), shrink=0.8)
    bar.set_label("true digit")
    circle = Line2D(
        [],
        [],
        marker="o",
        ls="",
        markerfacecolor="none",
        markeredgecolor="black",
        markersize=8,
        label=f"{marked_label} ({int(marked.sum())})",
    )
    fig.legend(handles=[circle], loc="outside lower center", frameon=False)
    fig.suptitle(title, fontsize=13)
    return fig


def reliability_diagrams(bins: Mapping[str, ReliabilityBins], title: str) -> Figure:
    """One reliability diagram per entry: accuracy per confidence bin against the diagonal of perfect
    calibration, with the number of images per bin underneath on a log scale (most sit near 100%)."""
    fig, axes = _figure(
        2,
        len(bins),
        figsize=(4.3 * len(bins), 6.2),
        height_ratios=[3, 1.2],
        sharex=True,
    )
    for col, (name, b) in enumerate(bins.items()):
        top, bottom = axes[0, col], axes[1, col]
        centres, width = (b.edges[:-1] + b.edges[1:]) / 2, np.diff(b.edges)
        filled = b.counts > 0
        top.bar(
            centres[filled],
            b.accuracy[filled],
            width=width[filled],
            color="tab:blue",
            edgecolor="white",
            label="accuracy in the bin",
        )
        top.scatter(
            b.confidence[filled],
            b.accuracy[filled],
            color="black",
            s=12,
            zorder=3,
            label="(mean confidence, accuracy)",
        )
        top.plot([0, 1], [0, 1], color="tab:red", ls="--", label="perfect calibration")
        top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02))
        top.set_title(f"{name}\nECE = {100 * b.ece:.2f}%", fontsize=10)
        top.grid(alpha=0.3)
        bottom.bar(
            centres,
            np.maximum(b.counts, 0.8),
            width=width,
            color="tab:gray",
            edgecolor="white",
        )
        bottom.set(
            yscale="log",
            xlabel="confidence (probability of the predicted digit)",
            ylabel="images",
            ylim=(0.8, None),
        )
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncols=3, fontsize=9, frameon=False
    )
    fig.suptitle(title, fontsize=13)
    return fig


def accuracy_vs_epsilon(
    grey_levels: Sequence[float], accuracy: Sequence[float], title: str
) -> Figure:
    """Test accuracy (%) against the FGSM step measured in grey levels out of 255.

    Steps usually double from one to the next, so the x-axis is logarithmic (linear between 0 and 1, so
    that the clean accuracy at a step of 0 still has a place) with a tick at every step measured.
    """
    fig, axes = _figure(figsize=(7.5, 4.2))
    ax = axes[0, 0]
    ax.plot(grey_levels, accuracy, marker="o", color="tab:red")
    for x, y in zip(grey_levels, accuracy):
        ax.annotate(
            f"{y:.1f}%", (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8
        )
    ax.set_xscale("symlog", linthresh=1, linscale=0.5)
    ax.set_xticks(list(grey_levels), [f"{level:g}" for level in grey_levels])
    ax.minorticks_off()
    ax.set(
        title=title,
        xlabel="FGSM step ε (grey levels out of 255 per pixel, log scale)",
        ylabel="test accuracy (%)",
        ylim=(0, 105),
    )
    ax.grid(alpha=0.3)
    return fig
