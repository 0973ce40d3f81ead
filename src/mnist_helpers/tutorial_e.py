"""Tutorial E's training pipeline exactly as the reference tutorial wrote it, kept as the yardstick.

Chapter 9 times this code against the book's own path (tensors on the device, :func:`mnist_helpers.
training.fit`, the fast recipe). It stays verbatim, including what the book would do differently, because
the point is to measure the tutorial's code, not an idealised version of it: torchvision's dataset with
``ToTensor`` + ``Normalize`` on every image of every epoch, ``DataLoader(batch 128, shuffle, 2 workers)``,
Adam 1e-3 with StepLR(5, 0.5), and two ``.item()`` calls per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

from mnist_helpers.data import MNIST_MEAN, MNIST_STD, load_mnist, train_val_split

TUTORIAL_E_SEED = 42  # the tutorial's torch.manual_seed(42)
TUTORIAL_E_BATCH_SIZE = 128
TUTORIAL_E_NUM_WORKERS = 2
SPLIT_SEED = 0  # the book's train/validation split (load_mnist_splits' default)


def tutorial_e_transform() -> transforms.Compose:
    """``ToTensor`` + ``Normalize(0.1307, 0.3081)``: run on each image, in Python, every epoch."""
    return transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]
    )


def tutorial_e_loaders(
    device: torch.device | str,
    *,
    train_images: int | None = None,
    val_fraction: float = 0.1,
    split_seed: int = SPLIT_SEED,
    batch_size: int = TUTORIAL_E_BATCH_SIZE,
    num_workers: int = TUTORIAL_E_NUM_WORKERS,
    root: str | Path | None = None,
) -> tuple[DataLoader, DataLoader]:
    """Tutorial E's ``(train_loader, val_loader)`` over the book's train/validation split.

    The seed builds ``DataLoader(MNIST(transform=...), batch_size=128, shuffle=True, num_workers=2,
    pin_memory=True)``; here the two loaders read :class:`~torch.utils.data.Subset`\\ s of the torchvision
    dataset with the indices of :func:`~mnist_helpers.data.train_val_split`, so they hold exactly the images
    of ``load_mnist_splits(train_images=..., seed=split_seed)``. ``pin_memory`` is only asked for on CUDA,
    where it does something (on CPU PyTorch warns that it is ignored).
    """
    device = torch.device(device)
    dataset = load_mnist(True, root=root, transform=tutorial_e_transform())
    n_images = len(dataset) if train_images is None else train_images
    train_idx, val_idx = train_val_split(
        n_images, val_fraction=val_fraction, seed=split_seed
    )
    pin = device.type == "cuda"

    def loader(indices: Tensor, shuffle: bool) -> DataLoader:
        return DataLoader(
            Subset(dataset, indices.tolist()),
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=num_workers,
            pin_memory=pin,
        )

    return loader(train_idx, shuffle=True), loader(val_idx, shuffle=False)


def tutorial_e_optimizer(
    model: nn.Module,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The seed's Adam(lr=1e-3) and StepLR(step_size=5, gamma=0.5), stepped once per epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)


def tutorial_e_train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> tuple[float, float]:
    """Tutorial E's ``train_one_epoch``, statement for statement; returns (mean loss, accuracy in [0, 1]).

    Kept verbatim (including the two ``.item()`` calls per batch, which make a GPU wait for every batch)
    because the point is to time the seed's code, not an idealised version of it.
    """
    model.train()
    running_loss, correct, total, n_batches = 0.0, 0, 0, 0
    for data, target in batches:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.cross_entropy(output, target)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        _, predicted = torch.max(output.data, 1)
        total += target.size(0)
        correct += (predicted == target).sum().item()
        n_batches += 1
    return running_loss / n_batches, correct / total


def tutorial_e_evaluate(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], device: torch.device
) -> tuple[float, float]:
    """Tutorial E's ``evaluate`` (eval mode, no_grad); returns (mean loss, accuracy in [0, 1])."""
    model.eval()
    running_loss, correct, total, n_batches = 0.0, 0, 0, 0
    with torch.no_grad():
        for data, target in batches:
            data, target = data.to(device), target.to(device)
            output = model(data)
            running_loss += F.cross_entropy(output, target).item()
            _, predicted = torch.max(output.data, 1)
            total += target.size(0)
            correct += (predicted == target).sum().item()
            n_batches += 1
    return running_loss / n_batches, correct / total
