"""How sure is the model, and should we believe it? Reliability, expected calibration error, temperature.

A classifier is *calibrated* when, of all the images it labels with 90% confidence, 90% are right. The
reliability bins group predictions by confidence and compare each group's mean confidence with its
accuracy; the expected calibration error (ECE) is the gap averaged over the images. Temperature scaling
divides the logits by one number ``T`` fitted on held-out data: it changes every confidence but no
prediction, because dividing by a positive number keeps the largest logit the largest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnist_helpers.evaluation import batched_logits


def collect_logits(model: nn.Module, images: Tensor, batch_size: int = 1024) -> Tensor:
    """The model's raw outputs (logits) for every image, in eval mode, on the CPU.

    Calibration works on logits rather than probabilities, because temperature scaling divides them.
    """
    if len(images) == 0:
        raise ValueError(
            "no images given: pass a tensor of shape (N, 1, 28, 28) with N >= 1"
        )
    return batched_logits(model, images.split(batch_size))


@dataclass(frozen=True)
class ReliabilityBins:
    """Predictions grouped by confidence into equal-width bins; empty bins hold NaN means."""

    edges: np.ndarray  # (n_bins + 1,) from 0 to 1
    counts: np.ndarray  # (n_bins,) images per bin
    confidence: np.ndarray  # (n_bins,) mean confidence of the bin's predictions
    accuracy: np.ndarray  # (n_bins,) fraction of them that are right

    @property
    def ece(self) -> float:
        """Expected calibration error: ``sum_bins (count / N) * |accuracy - confidence|``."""
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((self.counts[filled] * gaps).sum() / self.counts.sum())


def _as_numpy(values: Tensor | np.ndarray) -> np.ndarray:
    return (
        values.detach().cpu().numpy()
        if isinstance(values, Tensor)
        else np.asarray(values)
    )


def reliability_bins(
    probs: Tensor | np.ndarray, labels: Tensor | np.ndarray, n_bins: int = 15
) -> ReliabilityBins:
    """Bin the predictions ``probs.argmax(1)`` by their confidence ``probs.max(1)`` into ``n_bins`` bins.

    Bin ``i`` holds confidences in ``(edges[i], edges[i + 1]]``, so a confidence of exactly 1 lands in
    the last bin. 15 bins is the usual choice in the calibration literature.
    """
    probs, labels = (
        _as_numpy(probs).astype(np.float64),
        _as_numpy(labels).astype(np.int64),
    )
    if probs.ndim != 2 or len(probs) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"need probabilities (N, classes) and N labels with N >= 1, got {probs.shape} and "
            f"{labels.shape}"
        )
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = (
            np.bincount(which, weights=confidence, minlength=n_bins) / counts
        )
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / counts
    return ReliabilityBins(edges, counts, mean_confidence, accuracy)


def expected_calibration_error(
    probs: Tensor | np.ndarray, labels: Tensor | np.ndarray, n_bins: int = 15
) -> float:
    """ECE of the predictions (0 = perfectly calibrated; the average confidence-accuracy gap)."""
    return reliability_bins(probs, labels, n_bins).ece


def fit_temperature(logits: Tensor, labels: Tensor, max_iter: int = 200) -> float:
    """The temperature ``T > 0`` that minimises the cross-entropy of ``softmax(logits / T)`` on ``labels``.

    Fit it on data the model was not trained on and that is not the test set (the validation split), so
    the test set can still judge the result. ``T`` is optimised as ``log T`` so that it stays positive.
    """
    logits, labels = logits.detach().float().cpu(), labels.detach().cpu()
    if logits.ndim != 2 or len(logits) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"need logits (N, classes) and N labels with N >= 1, got {tuple(logits.shape)} "
            f"and {tuple(labels.shape)}"
        )
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())
