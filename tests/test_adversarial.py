"""Tests for FGSM: direction, size, clipping and the sweep, on a linear model whose gradient is known."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_helpers.adversarial import (
    epsilon_for_grey_levels,
    fgsm,
    fgsm_direction,
    fgsm_sweep,
    pixel_bounds,
)
from mnist_helpers.data import MNIST_MEAN, MNIST_STD


def _linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def test_grey_levels_and_pixel_bounds_in_normalized_units() -> None:
    assert epsilon_for_grey_levels(255 * MNIST_STD) == pytest.approx(1.0)
    assert epsilon_for_grey_levels(8) == pytest.approx(8 / 255 / MNIST_STD)
    low, high = pixel_bounds()
    assert low == pytest.approx(-MNIST_MEAN / MNIST_STD) and high == pytest.approx(
        (1 - MNIST_MEAN) / MNIST_STD
    )
    with pytest.raises(ValueError, match="negative"):
        epsilon_for_grey_levels(-1)


def test_fgsm_direction_is_the_sign_of_the_loss_gradient_of_a_linear_model() -> None:
    model, x, y = _linear(), torch.randn(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])
    weight = model[1].weight.detach()
    p = model(x).softmax(dim=1).detach()
    gradient = (p - F.one_hot(y, 3).float()) @ weight  # d CE / d x for logits = W x + b
    torch.testing.assert_close(
        fgsm_direction(model, x, y), gradient.sign().reshape(4, 1, 4, 4)
    )
    with pytest.raises(ValueError, match="one label per image"):
        fgsm_direction(model, x, y[:2])


def test_fgsm_moves_each_pixel_by_at_most_epsilon_stays_in_bounds_and_raises_the_loss() -> (
    None
):
    model, x, y = _linear(), torch.randn(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    adversarial = fgsm(model, x, y, epsilon=0.1, bounds=(-1.0, 1.0))
    assert float((adversarial - x.clamp(-1, 1)).abs().max()) <= 0.1 + 1e-6
    assert float(adversarial.min()) >= -1.0 and float(adversarial.max()) <= 1.0
    unclipped = fgsm(model, x, y, epsilon=0.1, bounds=(-10.0, 10.0))
    with torch.no_grad():
        assert F.cross_entropy(model(unclipped), y) > F.cross_entropy(model(x), y)
    with pytest.raises(ValueError, match="epsilon"):
        fgsm(model, x, y, epsilon=-0.1)


def test_fgsm_sweep_starts_from_the_clean_predictions_and_larger_steps_hurt(
    toy_split,
) -> None:
    split = toy_split(300)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        optimizer.zero_grad()
        F.cross_entropy(model(split.images), split.labels).backward()
        optimizer.step()
    predictions = fgsm_sweep(
        model,
        split.images,
        split.labels,
        [0.0, 0.05, 0.5],
        bounds=(-5.0, 5.0),
        batch_size=128,
    )
    assert predictions.shape == (3, 300)
    with torch.no_grad():
        torch.testing.assert_close(predictions[0], model(split.images).argmax(1))
    accuracy = (predictions == split.labels).float().mean(dim=1)
    assert accuracy[0] > 0.9 and accuracy[2] < accuracy[0]
    with pytest.raises(ValueError, match="every epsilon"):
        fgsm_sweep(model, split.images, split.labels, [0.1, -0.1])
