"""Time one training epoch fed by torchvision's DataLoader against the same epoch fed by tensor batches.

    python benchmarks/loaders.py            # full training set (minutes on a laptop CPU)
    python benchmarks/loaders.py --quick    # first 3000 images, under a minute on 2 CPU cores

The DataLoader rows are the reference tutorials' pipelines as written (seed 004: ToTensor + Normalize,
batch 128, shuffle, 2 workers, pin_memory on CUDA; seed 000: ToTensor, default workers, with the book's
batch 128 instead of the seed's 10,000). The tensor rows feed the same model, optimizer and loss from
``load_mnist_splits`` + ``TensorSplit.batches``. Both run in one process on one machine, so only the
feeding differs. The tensor split holds back 10% of the images for validation, so compare images/s.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

from mnist_helpers.benchmarking import seed004_train_one_epoch, seed004_transform
from mnist_helpers.data import MNIST_MEAN, MNIST_STD, TensorBatches, load_mnist, load_mnist_splits
from mnist_helpers.models import MLP, SimpleCNN

BATCH_SIZE = 128
QUICK_IMAGES = 3000


@dataclass
class Row:
    loop: str
    images: int
    setup_s: float
    epoch_s: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.epoch_s


def train_epoch(model: nn.Module, batches: DataLoader | TensorBatches, device: torch.device) -> int:
    """Seed 004's training loop as written (Adam 1e-3, its per-batch ``.item()`` calls); returns images seen."""
    seed004_train_one_epoch(model, batches, torch.optim.Adam(model.parameters(), lr=1e-3), device)
    return len(batches.dataset) if isinstance(batches, DataLoader) else len(batches.labels)


def warm_up(device: torch.device) -> None:
    """One throwaway step per model, so one-off kernel setup is not billed to whichever row runs first."""
    for make_model in (SimpleCNN, MLP):
        x, y = torch.zeros(BATCH_SIZE, 1, 28, 28), torch.zeros(BATCH_SIZE, dtype=torch.int64)
        train_epoch(make_model().to(device), TensorBatches(x.to(device), y.to(device), BATCH_SIZE), device)


def time_loop(
    name: str,
    make_model: Callable[[], nn.Module],
    make_batches: Callable[[], DataLoader | TensorBatches],
    device: torch.device,
) -> Row:
    """Build the data (timed as setup), seed and build the model, then time exactly one epoch."""
    start = time.perf_counter()
    batches = make_batches()
    setup_s = time.perf_counter() - start
    torch.manual_seed(42)
    model = make_model().to(device)
    start = time.perf_counter()
    images = train_epoch(model, batches, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return Row(name, images, setup_s, time.perf_counter() - start)


def dataloader(
    transform: transforms.Compose, limit: int | None, device: torch.device, workers: int
) -> DataLoader:
    """The seed's pipeline: PIL image -> transform, per image, every epoch."""
    dataset = load_mnist(train=True, transform=transform)
    if limit is not None:
        dataset = Subset(dataset, range(limit))
    return DataLoader(
        dataset, batch_size=BATCH_SIZE, shuffle=True, num_workers=workers, pin_memory=device.type == "cuda"
    )


def tensors(mean: float, std: float, limit: int | None, device: torch.device) -> TensorBatches:
    """The book's pipeline: normalized once, resident on ``device``, sliced into batches."""
    splits = load_mnist_splits(train_images=limit, test_images=100, mean=mean, std=std, device=device)
    return splits.train.batches(BATCH_SIZE, shuffle=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"use the first {QUICK_IMAGES} training images")
    limit = QUICK_IMAGES if parser.parse_args(argv).quick else None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    normalize = seed004_transform()
    plain = transforms.Compose([transforms.ToTensor()])
    warm_up(device)

    cnn, mlp = "seed 004 SimpleCNN", "seed 000 MLP"
    pairs = {
        cnn: (
            time_loop(f"{cnn}, DataLoader", SimpleCNN, lambda: dataloader(normalize, limit, device, 2), device),
            time_loop(f"{cnn}, tensors", SimpleCNN, lambda: tensors(MNIST_MEAN, MNIST_STD, limit, device), device),
        ),
        mlp: (
            time_loop(f"{mlp}, DataLoader", MLP, lambda: dataloader(plain, limit, device, 0), device),
            time_loop(f"{mlp}, tensors", MLP, lambda: tensors(0.0, 1.0, limit, device), device),
        ),
    }

    print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH_SIZE}")
    print(f"{'loop':<32}{'images':>8}{'setup s':>9}{'s/epoch':>9}{'images/s':>10}")
    for row in (row for pair in pairs.values() for row in pair):
        print(f"{row.loop:<32}{row.images:>8}{row.setup_s:>9.2f}{row.epoch_s:>9.2f}{row.images_per_s:>10.0f}")
    for model_name, (loader_row, tensor_row) in pairs.items():
        ratio = tensor_row.images_per_s / loader_row.images_per_s
        print(f"{model_name}: DataLoader/tensors time per image = {ratio:.2f}x")


if __name__ == "__main__":
    main()
