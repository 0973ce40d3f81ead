"""Looking past the single accuracy number: which digits does the model get wrong, and as what?

:func:`collect_predictions` runs the model once over a split; everything else works on plain numpy
arrays, so a reader can inspect or reuse the predictions without touching the model again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from sklearn import metrics
from torch import Tensor, nn

from mnist_helpers.data import TensorSplit
from mnist_helpers.devices import model_device
from mnist_helpers.inspection import eval_mode


@dataclass
class Predictions:
    """True labels, predicted labels and class probabilities for every image of a split, in order."""

    y_true: np.ndarray  # (N,)
    y_pred: np.ndarray  # (N,)
    probs: np.ndarray  # (N, num_classes)

    @property
    def accuracy(self) -> float:
        return float((self.y_true == self.y_pred).mean())


def batched_logits(
    model: nn.Module, inputs: Iterable[Tensor], device: str | torch.device | None = None
) -> Tensor:
    """Logits ``(N, classes)`` in float32 on the CPU for batches of inputs: the library's one loop that
    runs a model for answers rather than for training.

    Eval mode (dropout off, BatchNorm's running statistics) and no autograd, so the answers do not depend
    on the batch or use memory for gradients; the model's train/eval mode is restored afterwards, so
    calling this mid-training changes nothing.
    """
    device = torch.device(device) if device is not None else model_device(model)
    with eval_mode(model), torch.no_grad():
        logits = [model(x.to(device)).float().cpu() for x in inputs]
    return torch.cat(logits) if logits else torch.empty(0, 0)


def predict_probabilities(
    model: nn.Module, inputs: Iterable[Tensor], device: str | torch.device | None = None
) -> Tensor:
    """Class probabilities ``(N, classes)`` on the CPU for batches of inputs, computed in eval mode.

    ``softmax`` turns logits into probabilities; for a model that already returns ``log_softmax`` (the
    book's CNN) it gives the same probabilities, because ``softmax(log_softmax(z)) == softmax(z)``.
    """
    return torch.softmax(batched_logits(model, inputs, device), dim=1)


def collect_predictions(
    model: nn.Module,
    split_or_batches: TensorSplit | Iterable[tuple[Tensor, Tensor]],
    *,
    device: str | torch.device | None = None,
    batch_size: int = 1024,
) -> Predictions:
    """Predict every image of a :class:`TensorSplit` (or of any ``(x, y)`` batches), in eval mode."""
    batches = (
        split_or_batches.batches(batch_size)
        if isinstance(split_or_batches, TensorSplit)
        else split_or_batches
    )
    labels: list[Tensor] = []

    def images() -> Iterator[Tensor]:
        for x, y in batches:
            labels.append(y.cpu())
            yield x

    probs = predict_probabilities(model, images(), device).numpy()
    if not labels:
        raise ValueError("no batches to predict: the split is empty")
    return Predictions(torch.cat(labels).numpy(), probs.argmax(axis=1), probs)


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10
) -> np.ndarray:
    """Count images per (true, predicted) pair: rows are true digits, columns predicted digits."""
    y_true, y_pred = (
        np.asarray(y_true, dtype=np.int64),
        np.asarray(y_pred, dtype=np.int64),
    )
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}"
        )
    for name, labels in [("y_true", y_true), ("y_pred", y_pred)]:
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name} has labels outside 0..{num_classes - 1}; pass num_classes="
            )
    counts = np.bincount(
        y_true * num_classes + y_pred, minlength=num_classes * num_classes
    )
    return counts.reshape(num_classes, num_classes)


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, digits: int = 4
) -> str:
    """scikit-learn's precision/recall/F1 table; a class never predicted scores 0 instead of warning."""
    return metrics.classification_report(y_true, y_pred, digits=digits, zero_division=0)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Fraction of each true digit classified correctly (the recall); NaN for a digit with no images."""
    cm = np.asarray(cm, dtype=float)
    totals = cm.sum(axis=1)
    return np.divide(
        np.diag(cm), totals, out=np.full(len(cm), np.nan), where=totals > 0
    )


def most_confused_pairs(cm: np.ndarray, k: int = 5) -> list[tuple[int, int, int]]:
    """The ``k`` most frequent mistakes as ``(true, predicted, count)``, most frequent first.

    Ties are broken by (true, predicted) so the list, and any prose built on it, is reproducible.
    """
    cm = np.asarray(cm)
    mistakes = [
        (int(t), int(p), int(cm[t, p]))
        for t in range(cm.shape[0])
        for p in range(cm.shape[1])
        if t != p and cm[t, p] > 0
    ]
    return sorted(mistakes, key=lambda m: (-m[2], m[0], m[1]))[:k]
