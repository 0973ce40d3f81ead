"""Tests for the evaluation helpers on hand-made labels whose answers can be counted by eye."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_helpers.data import TensorSplit
from mnist_helpers.evaluation import (
    classification_report,
    collect_predictions,
    confusion_matrix,
    most_confused_pairs,
    per_class_accuracy,
)

# 3 classes: class 0 always right; class 1 right once, twice mistaken for 2; class 2 once mistaken for 0.
Y_TRUE = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 2, 2, 2, 2, 2, 0])


def test_confusion_matrix_rows_are_true_columns_predicted() -> None:
    expected = np.array([[2, 0, 0], [0, 1, 2], [1, 0, 3]])
    np.testing.assert_array_equal(
        confusion_matrix(Y_TRUE, Y_PRED, num_classes=3), expected
    )


def test_confusion_matrix_rejects_labels_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        confusion_matrix(Y_TRUE, Y_PRED + 1, num_classes=3)


def test_per_class_accuracy_and_missing_class() -> None:
    cm = confusion_matrix(Y_TRUE, Y_PRED, num_classes=4)  # class 3 has no images
    np.testing.assert_allclose(per_class_accuracy(cm), [1.0, 1 / 3, 0.75, np.nan])


def test_most_confused_pairs_are_ordered_by_count_then_label() -> None:
    cm = confusion_matrix(Y_TRUE, Y_PRED, num_classes=3)
    assert most_confused_pairs(cm) == [(1, 2, 2), (2, 0, 1)]
    assert most_confused_pairs(cm, k=1) == [(1, 2, 2)]


def test_classification_report_lists_every_class_without_warnings(recwarn) -> None:
    report = classification_report(Y_TRUE, np.zeros_like(Y_TRUE), digits=3)
    assert "precision" in report and "0.222" in report  # accuracy 2/9
    assert not recwarn.list


class _LogSoftmaxNet(nn.Module):
    """Returns log-probabilities (like the book's CNN): the brightest of the first ten pixels wins."""

    def __init__(self) -> None:
        super().__init__()
        self.sharpness = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(x.flatten(1)[:, :10] * self.sharpness, dim=1)


def test_collect_predictions_returns_probabilities_in_order() -> None:
    labels = torch.tensor([3, 7, 1, 3])
    images = torch.zeros(4, 1, 28, 28)
    images[torch.arange(4), 0, 0, torch.tensor([3, 7, 2, 3])] = (
        1.0  # third image predicted as 2
    )
    predictions = collect_predictions(
        _LogSoftmaxNet(), TensorSplit(images, labels), batch_size=3
    )
    np.testing.assert_array_equal(predictions.y_pred, [3, 7, 2, 3])
    np.testing.assert_array_equal(predictions.y_true, labels.numpy())
    np.testing.assert_allclose(predictions.probs.sum(axis=1), 1.0, rtol=1e-5)
    assert predictions.probs.shape == (4, 10) and predictions.accuracy == 0.75
