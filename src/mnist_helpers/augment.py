"""Data augmentation on whole batches: every training image gets its own small random affine transform.

Chapter 6 writes these lines out and shows that they are the same as this module; later chapters and the
recipes (:mod:`mnist_helpers.recipes`) import them. torchvision's ``RandomAffine`` applied to a batch tensor
draws *one* transform for the whole batch; here each image draws its own, on the batch's device.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from mnist_helpers.data import normalized_level
from mnist_helpers.training import Batches

# The value of a black pixel after Normalize(MNIST_MEAN, MNIST_STD): what "empty" means for the model.
MNIST_BACKGROUND = normalized_level(0)


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator,
    degrees: float = 10.0,
    scale: float = 0.1,
    shift: float = 2.0,
    background: float = MNIST_BACKGROUND,
) -> torch.Tensor:
    """Rotate (±``degrees``), scale (±``scale``) and shift (±``shift`` px) each image of a normalized
    (N, 1, H, W) batch by its own random amount; uncovered corners get the ``background`` value.
    """
    n, size = len(images), images.shape[-1]

    def uniform(limit: float) -> torch.Tensor:  # n random values in [-limit, limit]
        return (torch.rand(n, generator=generator) * 2 - 1) * limit

    angle = torch.deg2rad(uniform(degrees))
    zoom = 1 + uniform(scale)
    dx, dy = (
        uniform(2 * shift / size),
        uniform(2 * shift / size),
    )  # grid units: the image spans -1..1
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, dx], dim=1), torch.stack([sin, cos, dy], dim=1)], dim=1
    ).to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # grid_sample fills positions outside the image with 0, which after Normalize is grey, not black,
    # so sample the background-subtracted image and add the background back.
    return F.grid_sample(images - background, grid, align_corners=False) + background


class Augmented:
    """Training batches whose images are randomly transformed every time they are drawn.

    The generator is seeded, so a rerun sees the same transformed images; validation and test batches
    are never wrapped (augmenting them would measure a different task).
    """

    def __init__(
        self, batches: Batches, seed: int, background: float = MNIST_BACKGROUND
    ) -> None:
        self.batches, self.background = batches, background
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in self.batches:
            yield (
                random_affine(images, self.generator, background=self.background),
                labels,
            )
