"""Adversarial examples with the fast gradient sign method (FGSM, Goodfellow et al. 2015).

FGSM moves every pixel by the same small amount ``epsilon`` in the direction that increases the loss
most: ``x + epsilon * sign(d loss / d x)``. The chapters feed the model *normalized* inputs, so epsilon
is measured in normalized units here; :func:`epsilon_for_grey_levels` converts from the scale a person
understands, grey levels out of 255. The result is clipped back to the range of real pixels (black to
white), so an adversarial image is still an image a scanner could have produced.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnist_helpers.data import MNIST_MEAN, MNIST_STD, normalized_level
from mnist_helpers.devices import model_device
from mnist_helpers.inspection import eval_mode


def epsilon_for_grey_levels(levels: float, std: float = MNIST_STD) -> float:
    """Normalized epsilon of a change of ``levels`` grey levels (0..255): ``levels / 255 / std``."""
    if levels < 0:
        raise ValueError(
            f"a perturbation size cannot be negative, got {levels} grey levels"
        )
    return levels / 255 / std


def pixel_bounds(
    mean: float = MNIST_MEAN, std: float = MNIST_STD
) -> tuple[float, float]:
    """The normalized values of a black and of a white pixel: the range an adversarial image must keep."""
    return normalized_level(0, mean, std), normalized_level(255, mean, std)


def fgsm_direction(model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    """``sign(d cross_entropy / d image)`` for each image (eval mode), on the images' device.

    The direction does not depend on epsilon, so one backward pass serves every epsilon of a sweep.
    """
    if images.shape[:1] != labels.shape:
        raise ValueError(
            f"{len(images)} images but labels of shape {tuple(labels.shape)}: pass one label per image"
        )
    device = model_device(model)
    inputs = images.detach().to(device).requires_grad_(True)
    with eval_mode(model):
        loss = F.cross_entropy(model(inputs), labels.to(device), reduction="sum")
        (gradient,) = torch.autograd.grad(loss, inputs)
    return gradient.sign().to(images.device)


def fgsm(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    epsilon: float,
    bounds: tuple[float, float] | None = None,
) -> Tensor:
    """FGSM adversarial images: one step of size ``epsilon`` (normalized units), clipped to ``bounds``
    (default: :func:`pixel_bounds` of MNIST's normalization)."""
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    low, high = bounds if bounds is not None else pixel_bounds()
    return (images.detach() + epsilon * fgsm_direction(model, images, labels)).clamp(
        low, high
    )


def fgsm_sweep(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    epsilons: Sequence[float],
    bounds: tuple[float, float] | None = None,
    batch_size: int = 1000,
) -> Tensor:
    """Predicted class of every image under FGSM at each epsilon: an int64 tensor (len(epsilons), N).

    Row ``i`` holds the predictions for ``epsilons[i]``; an epsilon of 0 gives the clean predictions.
    """
    if any(epsilon < 0 for epsilon in epsilons):
        raise ValueError(f"every epsilon must be >= 0, got {list(epsilons)}")
    low, high = bounds if bounds is not None else pixel_bounds()
    device = model_device(model)
    rows: list[list[Tensor]] = [[] for _ in epsilons]
    for x, y in zip(images.split(batch_size), labels.split(batch_size)):
        x = x.to(device)
        direction = fgsm_direction(model, x, y)
        with eval_mode(model), torch.no_grad():
            for row, epsilon in zip(rows, epsilons):
                row.append(
                    model((x + epsilon * direction).clamp(low, high))
                    .argmax(dim=1)
                    .cpu()
                )
    return torch.stack([torch.cat(row) for row in rows])
