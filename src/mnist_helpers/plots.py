"""The book's figures: each helper builds one titled, labelled figure and returns it.

Figures are detached from pyplot's list of open figures before they are returned. In Jupyter a figure
still registered with pyplot is drawn once at the end of the cell *and* once more as the cell's value;
a detached one is drawn exactly once when it is the cell's last expression (or passed to ``display`` or
``glue``), and a chapter making many figures never hits pyplot's "too many open figures" warning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, PowerNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from mnist_helpers.tensorboard_logs import BOOK_TAGS, read_scalars
from mnist_helpers.training import History

RIGHT, WRONG = "tab:green", "tab:red"
LEGEND_FONTSIZE = 9


def _figure(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(
        nrows, ncols, squeeze=False, layout="constrained", **kwargs
    )
    plt.close(
        fig
    )  # detach from pyplot (see module docstring); the figure itself stays fully usable
    return fig, axes


def _numpy(values: Any) -> np.ndarray:
    """Accept torch tensors (on any device) as well as arrays and lists."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _images(images: Any) -> tuple[np.ndarray, bool]:
    """(N, 28, 28) float pixels from images shaped (N, 1, 28, 28), (N, 28, 28) or (N, 784), and whether
    they were uint8 (their display range is then 0..255 by definition, see :func:`_display_range`)."""
    array = _numpy(images)
    pixels = array.astype(np.float32)
    side = math.isqrt(pixels[0].size)
    return pixels.reshape(len(pixels), side, side), array.dtype == np.uint8


def _display_range(shown: np.ndarray, from_uint8: bool) -> tuple[float, float]:
    """One grey scale for every panel of a figure, so a faint digit looks faint next to a bold one.

    Letting ``imshow`` stretch each image's own range (chapter 2 warns against it) makes every digit look
    equally bold. uint8 pixels mean 0..255; float pixels (scaled or normalized) have no fixed range, so the
    range over all the images shown is used, and their background (the minimum) stays black in every panel.
    """
    if from_uint8:
        return 0.0, 255.0
    return float(shown.min()), float(shown.max())


def _image_grid(count: int, ncols: int, title: str) -> tuple[Figure, list[Axes]]:
    """A grid of image panels without ticks (pixel coordinates say nothing) and a figure title."""
    ncols = max(1, min(ncols, count))
    nrows = max(1, math.ceil(count / ncols))
    fig, axes = _figure(nrows, ncols, figsize=(1.5 * ncols, 1.75 * nrows + 0.4))
    fig.suptitle(title, fontsize=13)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, list(axes.flat)


def _show_digit(
    ax: Axes, image: np.ndarray, display_range: tuple[float, float]
) -> None:
    vmin, vmax = display_range
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax)


def _legend_columns(handles: Sequence[Line2D], fig_width: float) -> int:
    """As many legend columns as the longest label leaves room for across the figure's width."""
    glyph, sample_and_gap = (
        0.6 * LEGEND_FONTSIZE / 72,
        0.9,
    )  # inches: average character; line sample + gap
    column_width = (
        max(len(str(handle.get_label())) for handle in handles) * glyph + sample_and_gap
    )
    return max(1, min(len(handles), int(fig_width // column_width)))


def _legend_height(handles: Sequence[Line2D], fig_width: float) -> float:
    """Inches the shared legend takes, so a figure grows by that much instead of squashing its panels."""
    rows = math.ceil(len(handles) / _legend_columns(handles, fig_width))
    return 0.25 * rows + 0.2


def _shared_legend(fig: Figure, handles: list[Line2D]) -> None:
    """One legend below all panels: it never covers a curve, however many runs or how long their names.

    Entries fill column by column, so three runs named like "784-256-512-344-10, Adam 1e-3, cosine
    schedule" stack in one column and the line-style entries sit in the next.
    """
    ncols = _legend_columns(handles, fig.get_figwidth())
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=ncols,
        fontsize=LEGEND_FONTSIZE,
        frameon=False,
    )


def _zoom_y(ax: Axes, curves: Sequence[np.ndarray], from_epoch: int) -> bool:
    """Fit ``ax``'s y-limits to the points from epoch ``from_epoch`` on; return whether that hides any.

    Nothing changes when fewer than two epochs would be left to fit (the panel would say nothing).
    """
    kept = [curve[from_epoch - 1 :] for curve in curves]
    if from_epoch <= 1 or max(len(values) for values in kept) < 2:
        return False
    low, high = float(np.min(np.concatenate(kept))), float(np.max(np.concatenate(kept)))
    pad = 0.08 * (high - low) or 0.05 * max(
        abs(high), 1e-3
    )  # flat curves still get a visible band
    ax.set_ylim(low - pad, high + pad)
    earlier = np.concatenate([curve[: from_epoch - 1] for curve in curves])
    return bool(np.any((earlier < low - pad) | (earlier > high + pad)))


def sample_grid(
    images: Any,
    labels: Any,
    *,
    nrows: int = 5,
    ncols: int = 5,
    title: str = "MNIST samples",
) -> Figure:
    """The first ``nrows * ncols`` images, each titled with its label, all on one grey scale."""
    (pixels, from_uint8), labels = _images(images), _numpy(labels)
    count = min(nrows * ncols, len(pixels))
    display_range = _display_range(pixels[:count], from_uint8)
    fig, axes = _image_grid(nrows * ncols, ncols, title)
    for ax, image, label in zip(
        axes[:count], pixels[:count], labels[:count], strict=True
    ):
        _show_digit(ax, image, display_range)
        ax.set_title(f"label {int(label)}", fontsize=10)
    return fig


def class_counts(labels: Any, *, title: str = "Images per digit") -> Figure:
    """Bar chart of how many images each digit has: MNIST is nearly, not exactly, balanced."""
    counts = np.bincount(_numpy(labels).astype(np.int64), minlength=10)
    fig, axes = _figure(figsize=(7, 4))
    ax = axes[0, 0]
    bars = ax.bar(range(len(counts)), counts, color="tab:blue")
    ax.bar_label(bars, fontsize=9)
    ax.set(
        title=title,
        xlabel="digit",
        ylabel="number of images",
        xticks=range(len(counts)),
    )
    ax.margins(y=0.1)
    return fig


def training_curves(
    histories: History | Mapping[str, History],
    *,
    title: str = "Training curves",
    zoom_from_epoch: int = 2,
) -> Figure:
    """Loss and accuracy per epoch, train (solid) vs validation (dashed), one colour per run.

    Epoch 1 is usually far worse than every later one, and scaling the y-axes to include it squeezes the
    differences that a comparison of recipes is about (a few tenths of a percentage point) into a flat
    band. So both y-axes are fitted to the epochs from ``zoom_from_epoch`` on; an earlier point that falls
    outside leaves the panel, whose title then says so. ``zoom_from_epoch=1`` fits every epoch; runs with
    too few epochs are always shown whole.

    The legend sits below both panels, shared by them, so it never covers a curve: one entry per run (its
    colour) and one per line style.
    """
    runs = {"": histories} if isinstance(histories, History) else dict(histories)
    style_color = "C0" if len(runs) == 1 else "0.3"
    handles = [
        Line2D([], [], color=f"C{i}", marker="o", label=name)
        for i, name in enumerate(runs)
        if name
    ]
    handles += [
        Line2D([], [], color=style_color, marker="o", label="train"),
        Line2D([], [], color=style_color, marker="o", ls="--", label="validation"),
    ]
    width = 11.0
    fig, axes = _figure(1, 2, figsize=(width, 4 + _legend_height(handles, width)))
    loss_ax, acc_ax = axes[0]
    loss_curves: list[np.ndarray] = []
    acc_curves: list[np.ndarray] = []
    for index, history in enumerate(runs.values()):
        color, epochs = f"C{index}", range(1, history.epochs + 1)
        for values, style in ((history.train_loss, "-"), (history.val_loss, "--")):
            loss_curves.append(np.asarray(values, dtype=float))
            loss_ax.plot(epochs, loss_curves[-1], color=color, marker="o", ls=style)
        for values, style in ((history.train_acc, "-"), (history.val_acc, "--")):
            acc_curves.append(100 * np.asarray(values, dtype=float))
            acc_ax.plot(epochs, acc_curves[-1], color=color, marker="o", ls=style)
    off_scale = "epoch 1" if zoom_from_epoch == 2 else f"epochs 1-{zoom_from_epoch - 1}"
    for ax, curves, name, ylabel in (
        (loss_ax, loss_curves, "Loss", "cross-entropy loss"),
        (acc_ax, acc_curves, "Accuracy", "accuracy (%)"),
    ):
        hidden = _zoom_y(ax, curves, zoom_from_epoch)
        ax.set(
            title=f"{name} (zoomed: {off_scale} partly off the scale)"
            if hidden
            else name
        )
        ax.set(xlabel="epoch", ylabel=ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    _shared_legend(fig, handles)
    fig.suptitle(title, fontsize=13)
    return fig


def confusion_heatmap(
    cm: Any, *, title: str = "Confusion matrix", normalize: bool = False
) -> Figure:
    """Heatmap of a confusion matrix (rows true, columns predicted); ``normalize`` shows row fractions.

    Normalizing per true digit makes digits with fewer images comparable; raw counts show how many
    images each mistake costs.

    The mistakes are what a reader looks for, but the diagonal (~1,000 right answers per digit) would take
    the whole colour scale and leave every error cell white. So only the off-diagonal cells are coloured,
    on their own square-root scale (a single error is already visibly tinted), and the diagonal is drawn
    in neutral grey with its count written in.
    """
    counts = _numpy(cm).astype(np.int64)
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        fmt, bar_label, bar_format = (
            ".1%",
            "fraction of the true digit",
            PercentFormatter(1.0, decimals=1),
        )
    else:
        values, fmt, bar_label, bar_format = counts, "d", "number of images", None
    diagonal = np.eye(*values.shape, dtype=bool)
    worst_error = (
        values[~diagonal].max(initial=0) or 1
    )  # a perfect matrix still needs a non-empty scale
    fig, axes = _figure(figsize=(8, 6.5))
    ax = axes[0, 0]
    cell = {
        "annot": True,
        "fmt": fmt,
        "square": True,
        "ax": ax,
        "annot_kws": {"fontsize": 8},
    }
    sns.heatmap(
        values,
        mask=diagonal,
        cmap="Reds",
        norm=PowerNorm(0.5, vmin=0, vmax=worst_error),
        cbar_kws={
            "label": f"{bar_label} (mistakes; diagonal in grey)",
            "format": bar_format,
        },
        **cell,
    )
    sns.heatmap(
        values, mask=~diagonal, cmap=ListedColormap(["0.85"]), cbar=False, **cell
    )
    ax.set(title=title, xlabel="predicted digit", ylabel="true digit")
    ax.tick_params(axis="y", labelrotation=0)
    return fig


def prediction_grid(
    images: Any,
    y_true: Any,
    y_pred: Any,
    probs: Any,
    *,
    n: int = 20,
    ncols: int = 5,
    title: str = "Predictions (green = right, red = wrong)",
) -> Figure:
    """The first ``n`` images titled with the true label, the prediction and its confidence.

    Every title states both labels, so a right answer can be checked too; green right, red wrong.
    """
    pixels, from_uint8 = _images(images)
    y_true, y_pred, probs = _numpy(y_true), _numpy(y_pred), _numpy(probs)
    count = min(n, len(pixels))
    display_range = _display_range(pixels[:count], from_uint8)
    fig, axes = _image_grid(count, ncols, title)
    for i, ax in enumerate(axes[:count]):
        _show_digit(ax, pixels[i], display_range)
        pred, true = int(y_pred[i]), int(y_true[i])
        # Two lines: "true 7, pred 7 (100%)" on one would touch the next panel's title.
        caption = f"true {true}, pred {pred}\n({probs[i, pred]:.0%} sure)"
        ax.set_title(caption, color=RIGHT if pred == true else WRONG, fontsize=9)
    return fig


def misclassified_gallery(
    images: Any,
    y_true: Any,
    probs: Any,
    *,
    n: int = 16,
    ncols: int = 8,
    title: str = "Misclassified digits (most confident mistakes first)",
) -> Figure:
    """The ``n`` most confident mistakes, each with the model's top-2 guesses and their probabilities.

    The second guess often shows the mistake was a near miss (e.g. a 4 read as 9 with a 4 close behind).
    """
    (pixels, from_uint8), y_true, probs = _images(images), _numpy(y_true), _numpy(probs)
    y_pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    shown = wrong[np.argsort(-probs[wrong, y_pred[wrong]], kind="stable")][:n]
    fig, axes = _image_grid(max(len(shown), 1), ncols, title)
    if len(shown) == 0:
        axes[0].text(
            0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=11
        )
        return fig
    display_range = _display_range(pixels[shown], from_uint8)
    for ax, i in zip(axes[: len(shown)], shown, strict=True):
        _show_digit(ax, pixels[i], display_range)
        first, second = np.argsort(-probs[i], kind="stable")[:2]
        guesses = f"{first}: {probs[i, first]:.0%}  {second}: {probs[i, second]:.0%}"
        ax.set_title(f"true {int(y_true[i])}\n{guesses}", color=WRONG, fontsize=9)
    return fig


def tensorboard_scalars(
    runs: Mapping[str, str | Path],
    *,
    tags: Sequence[str] = BOOK_TAGS,
    title: str = "What TensorBoard would show",
    ncols: int = 3,
) -> Figure:
    """Each run's logged scalars against the epoch (the step), one panel per tag, one colour per run.

    A web page cannot embed a live TensorBoard, and the ``runs/...`` folders it reads are build products a
    reader of the book never sees; this draws the same curves from the same event files
    (:func:`~mnist_helpers.tensorboard_logs.read_scalars`), values exactly as logged (accuracy as a
    fraction), panel titles being the tags TensorBoard shows. A run lacking one of ``tags`` is an error
    naming the tags it has, rather than a silently missing curve.
    """
    scalars = {name: read_scalars(run_dir) for name, run_dir in runs.items()}
    for name, logged in scalars.items():
        missing = [tag for tag in tags if tag not in logged]
        if missing:
            raise ValueError(
                f"run {name!r} ({Path(runs[name]).as_posix()}) logged no {', '.join(missing)}; "
                f"its tags are: {', '.join(logged)}"
            )
    handles = [
        Line2D([], [], color=f"C{i}", marker="o", label=name)
        for i, name in enumerate(scalars)
    ]
    ncols = max(1, min(ncols, len(tags)))
    nrows = math.ceil(len(tags) / ncols)
    width = 3.8 * ncols
    fig, axes = _figure(
        nrows,
        ncols,
        figsize=(width, 3.0 * nrows + 0.4 + _legend_height(handles, width)),
    )
    for ax in axes.flat[len(tags) :]:
        ax.remove()  # a partly filled last row leaves no empty frames
    for ax, tag in zip(axes.flat[: len(tags)], tags, strict=True):
        for index, logged in enumerate(scalars.values()):
            steps, values = logged[tag]
            ax.plot(steps, values, color=f"C{index}", marker="o", markersize=4)
        ax.set(
            title=tag,
            xlabel="epoch (TensorBoard step)",
            ylabel=tag.split("/")[0].replace("_", " "),
        )
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    _shared_legend(fig, handles)
    fig.suptitle(title, fontsize=13)
    return fig
