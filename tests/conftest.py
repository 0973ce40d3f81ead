"""Shared test helpers: a learnable toy split, and the marker for tests that need the real MNIST files."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from mnist_helpers.data import MNIST_FILES, TensorSplit, default_data_root

REAL_ROOT = default_data_root()
HAS_MNIST = all((REAL_ROOT / "MNIST" / "raw" / name).is_file() for name in MNIST_FILES)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_mnist: needs the four MNIST files in data/MNIST/raw"
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Skip, with the fix in the reason, the tests that read the real files when they are absent."""
    if HAS_MNIST:
        return
    skip = pytest.mark.skip(
        reason=f"MNIST raw files not in {REAL_ROOT}/MNIST/raw/ (see README: Getting MNIST)"
    )
    for item in items:
        if "needs_mnist" in item.keywords:
            item.add_marker(skip)


def make_toy_split(n: int = 200, seed: int = 0) -> TensorSplit:
    """Noisy images whose label is written as one bright row: learnable in a few steps."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = 0.3 * torch.randn(n, 1, 28, 28, generator=generator)
    images[torch.arange(n), 0, 2 * labels + 4, :] += 1.0
    return TensorSplit(images, labels)


@pytest.fixture
def toy_split() -> Callable[..., TensorSplit]:
    """``toy_split(n, seed)``: a fresh learnable toy split (see :func:`make_toy_split`)."""
    return make_toy_split
