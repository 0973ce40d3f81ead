"""Tests for reliability bins, ECE and temperature scaling on cases that can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mnist_helpers.calibration import (
    collect_logits,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)


def _two_class(confidence: list[float]) -> np.ndarray:
    """Probabilities for two classes whose predicted class is 0 with the given confidence."""
    c = np.asarray(confidence)
    return np.stack([c, 1 - c], axis=1)


def test_reliability_bins_and_ece_by_hand() -> None:
    probs = _two_class([0.95, 0.95, 0.55, 0.55])
    labels = np.array(
        [0, 1, 0, 0]
    )  # the 95% group is half right, the 55% group all right
    bins = reliability_bins(probs, labels, n_bins=10)
    assert bins.counts.tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    np.testing.assert_allclose(bins.confidence[[5, 9]], [0.55, 0.95])
    np.testing.assert_allclose(bins.accuracy[[5, 9]], [1.0, 0.5])
    assert np.isnan(bins.accuracy[0])
    assert bins.ece == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)
    assert (
        expected_calibration_error(
            torch.from_numpy(probs), torch.from_numpy(labels), n_bins=10
        )
        == bins.ece
    )


def test_bins_are_closed_on_the_right() -> None:
    bins = reliability_bins(_two_class([1.0, 0.5]), np.array([0, 0]), n_bins=4)
    assert bins.counts.tolist() == [0, 1, 0, 1]  # 0.5 in (0.25, 0.5], 1.0 in (0.75, 1]


def test_ece_is_small_when_confidence_matches_accuracy_and_large_when_it_does_not() -> (
    None
):
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, size=50_000)
    right = rng.random(50_000) < confidence
    labels = np.where(right, 0, 1)
    assert expected_calibration_error(_two_class(confidence.tolist()), labels) < 0.01
    overconfident = _two_class(np.full(50_000, 0.99).tolist())
    assert expected_calibration_error(overconfident, labels) == pytest.approx(
        0.99 - right.mean(), abs=1e-9
    )


def test_reliability_bins_reject_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="N labels"):
        reliability_bins(_two_class([0.9, 0.8]), np.array([0]))
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins(_two_class([0.9]), np.array([0]), n_bins=0)


def test_fit_temperature_recovers_the_factor_that_made_logits_overconfident() -> None:
    generator = torch.Generator().manual_seed(0)
    true_logits = 2 * torch.randn(20_000, 10, generator=generator)
    labels = torch.multinomial(true_logits.softmax(dim=1), 1, generator=generator)[:, 0]
    assert fit_temperature(3.0 * true_logits, labels) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(0.5 * true_logits, labels) == pytest.approx(0.5, rel=0.05)
    with pytest.raises(ValueError, match="N labels"):
        fit_temperature(true_logits, labels[:5])


def test_collect_logits_are_the_eval_mode_outputs_and_keep_the_training_mode() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.5), nn.Linear(8, 3)
    ).train()
    x = torch.randn(7, 1, 4, 4)
    logits = collect_logits(model, x, batch_size=3)
    assert model.training
    with torch.no_grad():
        torch.testing.assert_close(logits, model.eval()(x))
