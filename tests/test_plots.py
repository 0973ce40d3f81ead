"""Tests for the figures: each returns a Figure that is titled, labelled and drawn without warnings."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

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
    fig.canvas.draw()  # layout and text rendering are where warnings would surface
    assert isinstance(fig, Figure) and not plt.get_fignums()  # detached from pyplot
    return fig


def test_sample_grid_titles_every_image_with_its_label() -> None:
    fig = _drawn(plots.sample_grid(IMAGES, LABELS, nrows=2, ncols=3, title="Some digits"))
    assert fig.get_suptitle() == "Some digits"
    assert [ax.get_title() for ax in fig.axes] == [f"label {d}" for d in range(6)]


def test_sample_grid_accepts_uint8_flat_images() -> None:
    flat = (255 * IMAGES.flatten(1)).to(torch.uint8)
    _drawn(plots.sample_grid(flat, LABELS, nrows=1, ncols=4))


def test_class_counts_labels_axes() -> None:
    ax = _drawn(plots.class_counts(LABELS, title="Balance")).axes[0]
    assert ax.get_title() == "Balance"
    assert ax.get_xlabel() == "digit" and ax.get_ylabel() == "number of images"
    assert [bar.get_height() for bar in ax.patches] == [2] * 10


def test_training_curves_for_one_or_several_runs() -> None:
    history = History(train_loss=[1.0, 0.5], train_acc=[0.7, 0.9], val_loss=[0.8, 0.6], val_acc=[0.75, 0.85])
    fig = _drawn(plots.training_curves({"adam": history, "sgd": history}, title="Two runs"))
    loss_ax, acc_ax = fig.axes
    assert fig.get_suptitle() == "Two runs"
    assert (loss_ax.get_title(), loss_ax.get_xlabel()) == ("Loss", "epoch")
    assert acc_ax.get_ylabel() == "accuracy (%)" and len(acc_ax.get_lines()) == 4
    np.testing.assert_allclose(acc_ax.get_lines()[1].get_ydata(), [75, 85])
    assert len(_drawn(plots.training_curves(history)).axes[0].get_lines()) == 2


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_heatmap_is_titled_and_labelled(normalize: bool) -> None:
    cm = np.diag(np.arange(1, 11)) + 1
    fig = _drawn(plots.confusion_heatmap(cm, title="Where it errs", normalize=normalize))
    ax = fig.axes[0]
    assert ax.get_title() == "Where it errs"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted digit", "true digit")
    first_cell = ax.texts[0].get_text()
    assert first_cell == ("18.2%" if normalize else "2")  # 2 of 11 images of digit 0


def test_prediction_grid_colours_right_green_and_wrong_red() -> None:
    y_pred = PROBS.argmax(axis=1)
    fig = _drawn(plots.prediction_grid(IMAGES, LABELS, y_pred, PROBS, n=5, ncols=5))
    titles = [ax.title for ax in fig.axes]
    assert titles[0].get_text() == "pred 0 (82%)" and to_rgba(titles[0].get_color()) == to_rgba(RIGHT)
    assert titles[3].get_text() == "pred 5 (60%)\ntrue 3"
    assert to_rgba(titles[3].get_color()) == to_rgba(WRONG)


def test_misclassified_gallery_shows_top_two_guesses() -> None:
    fig = _drawn(plots.misclassified_gallery(IMAGES, LABELS, PROBS))
    assert len(fig.axes) == 1  # only one mistake, so only one panel
    assert fig.axes[0].get_title() == "true 3\n5: 60%  3: 24%"


def test_misclassified_gallery_without_mistakes_says_so() -> None:
    fig = _drawn(plots.misclassified_gallery(IMAGES, PROBS.argmax(axis=1), PROBS))
    assert fig.axes[0].texts[0].get_text() == "no misclassified images"
