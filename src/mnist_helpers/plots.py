"""The book's figures: each helper builds one titled, labelled figure and returns it.

Figures are detached from pyplot's list of open figures before they are returned. In Jupyter a figure
still registered with pyplot is drawn once at the end of the cell *and* once more as the cell's value;
a detached one is drawn exactly once when it is the cell's last expression (or passed to ``display`` or
``glue``), and a chapter making many figures never hits pyplot's "too many open figures" warning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mnist_helpers.training import History

RIGHT, WRONG = "tab:green", "tab:red"


def _figure(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained", **kwargs)
    plt.close(fig)  # detach from pyplot (see module docstring); the figure itself stays fully usable
    return fig, axes


def _numpy(values: Any) -> np.ndarray:
    """Accept torch tensors (on any device) as well as arrays and lists."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _images(images: Any) -> np.ndarray:
    """(N, 28, 28) pixels from uint8 or normalized images shaped (N, 1, 28, 28), (N, 28, 28) or (N, 784)."""
    pixels = _numpy(images).astype(np.float32)
    side = math.isqrt(pixels[0].size)
    return pixels.reshape(len(pixels), side, side)


def _image_grid(count: int, ncols: int, title: str) -> tuple[Figure, list[Axes]]:
    """A grid of image panels without ticks (pixel coordinates say nothing) and a figure title."""
    ncols = max(1, min(ncols, count))
    nrows = max(1, math.ceil(count / ncols))
    fig, axes = _figure(nrows, ncols, figsize=(1.5 * ncols, 1.75 * nrows + 0.4))
    fig.suptitle(title, fontsize=13)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, list(axes.flat)


def _show_digit(ax: Axes, image: np.ndarray) -> None:
    # Per-image contrast stretch: uint8 and normalized images look the same, white digit on black.
    ax.imshow(image, cmap="gray")


def sample_grid(
    images: Any, labels: Any, *, nrows: int = 5, ncols: int = 5, title: str = "MNIST samples"
) -> Figure:
    """The first ``nrows * ncols`` images, each titled with its label."""
    pixels, labels = _images(images), _numpy(labels)
    count = min(nrows * ncols, len(pixels))
    fig, axes = _image_grid(nrows * ncols, ncols, title)
    for ax, image, label in zip(axes[:count], pixels[:count], labels[:count], strict=True):
        _show_digit(ax, image)
        ax.set_title(f"label {int(label)}", fontsize=10)
    return fig


def class_counts(labels: Any, *, title: str = "Images per digit") -> Figure:
    """Bar chart of how many images each digit has: MNIST is nearly, not exactly, balanced."""
    counts = np.bincount(_numpy(labels).astype(np.int64), minlength=10)
    fig, axes = _figure(figsize=(7, 4))
    ax = axes[0, 0]
    bars = ax.bar(range(len(counts)), counts, color="tab:blue")
    ax.bar_label(bars, fontsize=9)
    ax.set(title=title, xlabel="digit", ylabel="number of images", xticks=range(len(counts)))
    ax.margins(y=0.1)
    return fig


def training_curves(histories: History | Mapping[str, History], *, title: str = "Training curves") -> Figure:
    """Loss and accuracy per epoch, train (solid) vs validation (dashed), one colour per run."""
    runs = {"": histories} if isinstance(histories, History) else dict(histories)
    fig, axes = _figure(1, 2, figsize=(11, 4))
    loss_ax, acc_ax = axes[0]
    for index, (name, history) in enumerate(runs.items()):
        color, prefix = f"C{index}", f"{name} " if name else ""
        epochs = range(1, history.epochs + 1)
        loss_ax.plot(epochs, history.train_loss, color=color, marker="o", label=f"{prefix}train")
        loss_ax.plot(epochs, history.val_loss, color=color, marker="o", ls="--", label=f"{prefix}validation")
        train_pct, val_pct = 100 * np.asarray(history.train_acc), 100 * np.asarray(history.val_acc)
        acc_ax.plot(epochs, train_pct, color=color, marker="o", label=f"{prefix}train")
        acc_ax.plot(epochs, val_pct, color=color, marker="o", ls="--", label=f"{prefix}validation")
    loss_ax.set(title="Loss", xlabel="epoch", ylabel="cross-entropy loss")
    acc_ax.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle(title, fontsize=13)
    return fig


def confusion_heatmap(cm: Any, *, title: str = "Confusion matrix", normalize: bool = False) -> Figure:
    """Heatmap of a confusion matrix (rows true, columns predicted); ``normalize`` shows row fractions.

    Normalizing per true digit makes digits with fewer images comparable; raw counts show how many
    images each mistake costs.
    """
    counts = _numpy(cm).astype(np.int64)
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        fmt, bar_label = ".1%", "fraction of the true digit"
    else:
        values, fmt, bar_label = counts, "d", "number of images"
    fig, axes = _figure(figsize=(8, 6.5))
    ax = axes[0, 0]
    sns.heatmap(
        values,
        annot=True,
        fmt=fmt,
        cmap="Blues",
        square=True,
        ax=ax,
        annot_kws={"fontsize": 8},
        cbar_kws={"label": bar_label},
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
    """The first ``n`` images titled with the prediction and its confidence; green right, red wrong."""
    pixels, y_true, y_pred, probs = _images(images), _numpy(y_true), _numpy(y_pred), _numpy(probs)
    count = min(n, len(pixels))
    fig, axes = _image_grid(count, ncols, title)
    for i, ax in enumerate(axes[:count]):
        _show_digit(ax, pixels[i])
        pred, true = int(y_pred[i]), int(y_true[i])
        caption = f"pred {pred} ({probs[i, pred]:.0%})" + ("" if pred == true else f"\ntrue {true}")
        ax.set_title(caption, color=RIGHT if pred == true else WRONG, fontsize=10)
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
    pixels, y_true, probs = _images(images), _numpy(y_true), _numpy(probs)
    y_pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    shown = wrong[np.argsort(-probs[wrong, y_pred[wrong]], kind="stable")][:n]
    fig, axes = _image_grid(max(len(shown), 1), ncols, title)
    if len(shown) == 0:
        axes[0].text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=11)
    for ax, i in zip(axes[: len(shown)], shown, strict=True):
        _show_digit(ax, pixels[i])
        first, second = np.argsort(-probs[i], kind="stable")[:2]
        guesses = f"{first}: {probs[i, first]:.0%}  {second}: {probs[i, second]:.0%}"
        ax.set_title(f"true {int(y_true[i])}\n{guesses}", color=WRONG, fontsize=9)
    return fig
