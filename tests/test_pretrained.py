"""chapter07_simplecnn: reuse chapter 7's checkpoint only when the library's recipe made it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from mnist_helpers.checkpoints import save_checkpoint
from mnist_helpers.data import MNISTSplits, TensorSplit
from mnist_helpers.fingerprint import library_fingerprint
from mnist_helpers.models import SimpleCNN
from mnist_helpers.pretrained import chapter07_simplecnn
from mnist_helpers.recipes import RECIPES
from mnist_helpers.saving import TrainingRecord


def _record(description: str) -> TrainingRecord:
    return TrainingRecord(
        recipe="simplecnn",
        description=description,
        mean=0.1307,
        std=0.3081,
        profile="full",
        seed=42,
        best_epoch=3,
        val_acc=0.99,
        val_loss=0.03,
    )


@pytest.fixture
def toy_splits(toy_split: Callable[..., TensorSplit]) -> MNISTSplits:
    return MNISTSplits(
        train=toy_split(64, 0), val=toy_split(32, 1), test=toy_split(32, 2)
    )


def test_a_checkpoint_of_the_chapter_recipe_is_loaded_with_its_provenance(
    tmp_path: Path, toy_splits: MNISTSplits
) -> None:
    saved = SimpleCNN()
    record = _record(RECIPES["simplecnn"].describe())
    path = save_checkpoint(tmp_path / "simplecnn.pt", saved, **record.metadata())

    model, provenance = chapter07_simplecnn(toy_splits, "cpu", path)

    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(model(x), saved.eval()(x))
    assert provenance.source == "chapter 7's checkpoint"
    assert provenance.library == library_fingerprint() and provenance.same_library
    assert "seed 42" in provenance.describe()


def test_a_checkpoint_of_another_recipe_is_not_reused(
    tmp_path: Path, toy_splits: MNISTSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_BOOK_PROFILE", "smoke")
    path = save_checkpoint(
        tmp_path / "simplecnn.pt", SimpleCNN(), **_record("something else").metadata()
    )
    before = path.read_bytes()

    _, provenance = chapter07_simplecnn(toy_splits, "cpu", path)

    assert provenance.source == "trained in this notebook"
    assert (
        path.read_bytes() != before
    )  # replaced by the model trained with the chapter's recipe
