"""Tests for the figures: each returns a Figure that is titled, labelled and drawn without warnings."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

from mnist_helpers import plots
from mnist_helpers.plots import RIGHT, WRONG
from mnist_helpers.training import History

pytestmark = pytest.mark.filterwarnings("error")

IMAGES = torch.rand(20, 1, 28, 28)
LABELS = np.arange(20) % 10
PROBS = np.full((20, 10), 0.02)
PROBS[np.arange(20), LABELS] = 0.82  # right with 82 % ...
PROBS[3] = 0.02
PROBS[3, [5, 3]] = [0.6, 0.24]  # ... except image 3 (a 3), read as 5 with 3 second


def _drawn(fig: Figure) -> Figure:
    # Layout and text rendering are where warnings would surface. A detached figure's canvas is the no-op
    # FigureCanvasBase, so fig.canvas.draw() would draw nothing; this walks every artist with a renderer.
    fig.draw_without_rendering()
    assert isinstance(fig, Figure) and not plt.get_fignums()  # detached from pyplot
    return fig


def test_sample_grid_titles_every_image_with_its_label() -> None:
    fig = _drawn(
        plots.sample_grid(IMAGES, LABELS, nrows=2, ncols=3, title="Some digits")
    )
    assert fig.get_suptitle() == "Some digits"
    assert [ax.get_title() for ax in fig.axes] == [f"label {d}" for d in range(6)]


def test_sample_grid_accepts_uint8_flat_images() -> None:
    flat = (255 * IMAGES.flatten(1)).to(torch.uint8)
    _drawn(plots.sample_grid(flat, LABELS, nrows=1, ncols=4))


def _clims(fig: Figure) -> list[tuple[float, float]]:
    return [ax.get_images()[0].get_clim() for ax in fig.axes if ax.get_images()]


def test_uint8_digits_share_the_full_0_to_255_scale() -> None:
    faint = np.zeros((2, 28, 28), dtype=np.uint8)
    faint[0, 10:18, 10:18], faint[1, 10:18, 10:18] = 60, 255  # a faint and a bold digit
    fig = _drawn(plots.sample_grid(faint, [1, 1], nrows=1, ncols=2))
    assert (
        _clims(fig) == [(0.0, 255.0)] * 2
    )  # not stretched per image: the faint one stays faint


def test_float_digits_share_the_range_of_all_images_shown() -> None:
    images = torch.zeros(3, 1, 28, 28) - 0.42  # normalized background
    images[0, 0, 5, 5], images[1, 0, 5, 5], images[2, 0, 5, 5] = (
        1.0,
        2.8,
        9.0,
    )  # image 2 is not shown
    fig = _drawn(plots.sample_grid(images, [0, 1, 2], nrows=1, ncols=2))
    np.testing.assert_allclose(_clims(fig), [(-0.42, 2.8)] * 2, rtol=1e-6)
    gallery = _drawn(
        plots.misclassified_gallery(images[:2], [3, 3], np.eye(10)[[0, 1]])
    )
    np.testing.assert_allclose(_clims(gallery), [(-0.42, 2.8)] * 2, rtol=1e-6)


def test_class_counts_labels_axes() -> None:
    ax = _drawn(plots.class_counts(LABELS, title="Balance")).axes[0]
    assert ax.get_title() == "Balance"
    assert ax.get_xlabel() == "digit" and ax.get_ylabel() == "number of images"
    assert [bar.get_height() for bar in ax.patches] == [2] * 10


def test_training_curves_for_one_or_several_runs() -> None:
    history = History(
        train_loss=[1.0, 0.5],
        train_acc=[0.7, 0.9],
        val_loss=[0.8, 0.6],
        val_acc=[0.75, 0.85],
    )
    fig = _drawn(
        plots.training_curves({"adam": history, "sgd": history}, title="Two runs")
    )
    loss_ax, acc_ax = fig.axes
    assert fig.get_suptitle() == "Two runs"
    assert (loss_ax.get_title(), loss_ax.get_xlabel()) == (
        "Loss",
        "epoch",
    )  # 2 epochs: nothing to zoom
    assert acc_ax.get_ylabel() == "accuracy (%)" and len(acc_ax.get_lines()) == 4
    np.testing.assert_allclose(acc_ax.get_lines()[1].get_ydata(), [75, 85])
    assert len(_drawn(plots.training_curves(history)).axes[0].get_lines()) == 2


LONG_NAMES = [
    "784-256-512-344-10, Adam 1e-3, cosine schedule",
    "784-128-128-10, Adam 1e-2 (tutorial B)",
    "784-128-128-10, Adam 1e-3",
]


def _history(first_acc: float, final_acc: float, epochs: int = 6) -> History:
    acc = list(np.linspace(final_acc - 0.004, final_acc, epochs - 1))
    loss = list(np.linspace(0.08, 0.05, epochs - 1))
    return History(
        train_loss=[0.9, *loss],
        train_acc=[first_acc, *acc],
        val_loss=[0.7, *loss],
        val_acc=[0.9, *acc],
    )


def test_training_curves_legend_is_shared_below_the_panels() -> None:
    runs = {name: _history(0.8, 0.98 + i / 1000) for i, name in enumerate(LONG_NAMES)}
    fig = _drawn(plots.training_curves(runs))
    assert all(ax.get_legend() is None for ax in fig.axes)  # no legend inside a panel
    (legend,) = fig.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == [*LONG_NAMES, "train", "validation"]
    legend_top = legend.get_window_extent().y1
    assert all(
        legend_top <= ax.get_tightbbox().y0 for ax in fig.axes
    )  # entirely below: it covers no curve


def test_training_curves_zoom_past_a_poor_first_epoch() -> None:
    runs = {"a": _history(0.50, 0.980), "b": _history(0.60, 0.983)}
    loss_ax, acc_ax = _drawn(plots.training_curves(runs)).axes
    low, high = acc_ax.get_ylim()
    assert (
        97 < low < 97.6 and 98.3 < high < 98.6
    )  # the 0.3-point gap fills the panel; 50 % is off the scale
    assert loss_ax.get_ylim()[1] < 0.7 and "epoch 1" in acc_ax.get_title()
    whole_acc = _drawn(plots.training_curves(runs, zoom_from_epoch=1)).axes[1]
    assert whole_acc.get_ylim()[0] < 50 and whole_acc.get_title() == "Accuracy"


def _cell_texts(fig: Figure) -> dict[tuple[int, int], str]:
    """Each annotated cell's text by (row, column), whichever of the heatmap layers wrote it."""
    return {
        (int(t.get_position()[1]), int(t.get_position()[0])): t.get_text()
        for t in fig.axes[0].texts
    }


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_heatmap_is_titled_and_labelled(normalize: bool) -> None:
    cm = np.diag(np.arange(1, 11)) + 1
    fig = _drawn(
        plots.confusion_heatmap(cm, title="Where it errs", normalize=normalize)
    )
    ax, colorbar = fig.axes
    assert ax.get_title() == "Where it errs"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted digit", "true digit")
    assert colorbar.get_ylabel().startswith(
        "fraction of the true digit" if normalize else "number of images"
    )
    cells = _cell_texts(fig)
    assert len(cells) == 100  # every cell, diagonal included, shows its value
    assert cells[0, 0] == ("18.2%" if normalize else "2")  # 2 of 11 images of digit 0
    assert cells[0, 1] == ("9.1%" if normalize else "1")


def test_confusion_heatmap_colours_errors_on_their_own_scale() -> None:
    cm = np.diag(np.full(10, 1000))
    cm[2, 7], cm[4, 9] = 3, 12
    fig = _drawn(plots.confusion_heatmap(cm))
    errors = fig.axes[0].collections[
        0
    ]  # the coloured (off-diagonal) layer, the one with the colour bar
    assert errors.norm.vmax == 12  # the diagonal's 1,000s no longer set the scale
    r, g, b, _ = errors.to_rgba(3)
    assert (
        min(r, g, b) < 0.8 and r - b > 0.2
    )  # three errors: visibly red, not near-white
    assert np.allclose(errors.to_rgba(0)[:3], 1, atol=0.06)  # no error: (almost) white


def test_prediction_grid_colours_right_green_and_wrong_red() -> None:
    y_pred = PROBS.argmax(axis=1)
    fig = _drawn(plots.prediction_grid(IMAGES, LABELS, y_pred, PROBS, n=5, ncols=5))
    titles = [ax.title for ax in fig.axes]
    assert (
        titles[0].get_text() == "true 0, pred 0\n(82% sure)"
    )  # the true label even when right
    assert to_rgba(titles[0].get_color()) == to_rgba(RIGHT)
    assert titles[3].get_text() == "true 3, pred 5\n(60% sure)"
    assert to_rgba(titles[3].get_color()) == to_rgba(WRONG)


def test_misclassified_gallery_shows_top_two_guesses() -> None:
    fig = _drawn(plots.misclassified_gallery(IMAGES, LABELS, PROBS))
    assert len(fig.axes) == 1  # only one mistake, so only one panel
    assert fig.axes[0].get_title() == "true 3\n5: 60%  3: 24%"


def test_misclassified_gallery_without_mistakes_says_so() -> None:
    fig = _drawn(plots.misclassified_gallery(IMAGES, PROBS.argmax(axis=1), PROBS))
    assert fig.axes[0].texts[0].get_text() == "no misclassified images"


def _write_run(run_dir: Path, losses: list[float]) -> None:
    writer = SummaryWriter(log_dir=str(run_dir))
    for epoch, loss in enumerate(losses, start=1):
        writer.add_scalar("loss/train", loss, epoch)
        writer.add_scalar("learning_rate", 0.1, epoch)
    writer.close()


def test_tensorboard_scalars_one_panel_per_tag_one_line_per_run(tmp_path: Path) -> None:
    _write_run(tmp_path / "a", [0.9, 0.5, 0.4])
    _write_run(tmp_path / "b", [0.8, 0.6, 0.3])
    runs = {"logits -> CE": tmp_path / "a", "softmax -> CE": str(tmp_path / "b")}
    fig = _drawn(
        plots.tensorboard_scalars(
            runs, tags=["loss/train", "learning_rate"], title="Logged"
        )
    )
    assert fig.get_suptitle() == "Logged"
    loss_ax, lr_ax = fig.axes
    assert (loss_ax.get_title(), loss_ax.get_xlabel(), lr_ax.get_ylabel()) == (
        "loss/train",
        "epoch (TensorBoard step)",
        "learning rate",
    )
    np.testing.assert_allclose(
        loss_ax.get_lines()[1].get_ydata(), [0.8, 0.6, 0.3], rtol=1e-6
    )
    assert list(loss_ax.get_lines()[0].get_xdata()) == [1, 2, 3]
    assert [text.get_text() for text in fig.legends[0].get_texts()] == list(runs)


def test_tensorboard_scalars_names_a_missing_tag(tmp_path: Path) -> None:
    _write_run(tmp_path / "a", [0.9])
    with pytest.raises(
        ValueError, match="accuracy/train.*its tags are: loss/train, learning_rate"
    ):
        plots.tensorboard_scalars({"a": tmp_path / "a"})
