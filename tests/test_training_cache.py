"""Tests for the training cache: a result is reused exactly when nothing that decides it changed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from mnist_helpers import training_cache
from mnist_helpers.checkpoints import load_checkpoint
from mnist_helpers.data import MNISTSplits, TensorSplit
from mnist_helpers.models import MLP
from mnist_helpers.recipes import RECIPES
from mnist_helpers.training_cache import (
    REUSED,
    TRAINED,
    UNCACHED,
    cache_key,
    fit_recipe_cached,
)

TOY = replace(RECIPES["mlp"], model_config={"hidden": (16,)}, batch_size=32, epochs=2)


@pytest.fixture
def splits(toy_split) -> MNISTSplits:
    return MNISTSplits(
        train=toy_split(96, 0), val=toy_split(48, 1), test=toy_split(48, 2)
    )


@pytest.fixture(autouse=True)
def fresh_log(monkeypatch) -> None:
    monkeypatch.setattr(training_cache, "TRAINING_LOG", [])
    monkeypatch.delenv(training_cache.LOG_ENV, raising=False)


def _run(recipe, splits, cache: Path, **kwargs):
    model = recipe.build_model()
    history = fit_recipe_cached(
        recipe, model, splits, device="cpu", profile="full", cache_dir=cache, **kwargs
    )
    return model, history


def _outcomes() -> list[str]:
    return [entry["outcome"] for entry in training_cache.TRAINING_LOG]


def test_the_second_run_reuses_weights_history_and_random_state(
    splits: MNISTSplits, tmp_path: Path
) -> None:
    trained, first = _run(TOY, splits, tmp_path)
    after_training = torch.rand(3)
    reused, second = _run(TOY, splits, tmp_path)
    after_reuse = torch.rand(3)
    assert _outcomes() == [TRAINED, REUSED]
    assert first == second  # the same History, its seconds included
    for name, tensor in trained.state_dict().items():
        assert torch.equal(tensor, reused.state_dict()[name]), name
    assert torch.equal(after_training, after_reuse)
    assert len(list(tmp_path.glob("mlp-*.pt"))) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"lr": 2e-3},
        {"seed": 1},
        {"epochs": 1},
        {"batch_size": 16},
        {"augment": True},
    ],
)
def test_any_change_to_the_recipe_trains_again(
    splits: MNISTSplits, tmp_path: Path, change: dict
) -> None:
    _run(TOY, splits, tmp_path)
    _run(replace(TOY, **change), splits, tmp_path)
    assert _outcomes() == [TRAINED, TRAINED]


def test_the_key_covers_profile_data_device_and_training_code(
    splits: MNISTSplits, monkeypatch
) -> None:
    model, cpu = TOY.build_model(), torch.device("cpu")
    key = cache_key(TOY, model, splits, cpu, "full")
    assert key is not None
    assert cache_key(TOY, model, splits, cpu, "smoke") != key
    other_data = replace(
        splits, train=TensorSplit(splits.train.images[:-1], splits.train.labels[:-1])
    )
    assert cache_key(TOY, model, other_data, cpu, "full") != key
    one_label = splits.train.labels.clone()
    one_label[0] = (one_label[0] + 1) % 10
    relabelled = replace(splits, train=TensorSplit(splits.train.images, one_label))
    assert cache_key(TOY, model, relabelled, cpu, "full") != key
    assert (
        cache_key(TOY, MLP((16,)), splits, cpu, "full") != key
    )  # other initial weights
    monkeypatch.setattr(training_cache, "training_fingerprint", lambda: "edited")
    assert cache_key(TOY, model, splits, cpu, "full") != key


class _NotebookNet(nn.Module):
    """A class defined outside the library: its code is not in the key, so it is never cached."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = MLP((16,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


def test_a_model_class_from_outside_the_library_is_trained_every_time(
    splits: MNISTSplits, tmp_path: Path
) -> None:
    for _ in range(2):
        fit_recipe_cached(
            TOY,
            _NotebookNet(),
            splits,
            device="cpu",
            profile="full",
            cache_dir=tmp_path,
        )
    assert _outcomes() == [UNCACHED, UNCACHED]
    assert not list(tmp_path.iterdir())


def test_a_damaged_entry_is_trained_again_and_replaced(
    splits: MNISTSplits, tmp_path: Path
) -> None:
    _run(TOY, splits, tmp_path)
    (entry,) = tmp_path.glob("mlp-*.pt")
    entry.write_bytes(entry.read_bytes()[:100])
    _run(TOY, splits, tmp_path)
    _run(TOY, splits, tmp_path)
    assert _outcomes() == [TRAINED, TRAINED, REUSED]


def test_a_hit_writes_the_chapters_checkpoint_when_it_is_missing(
    splits: MNISTSplits, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "full" / "mlp.pt"
    _, history = _run(TOY, splits, tmp_path / "cache", checkpoint_path=checkpoint)
    written = checkpoint.read_bytes()
    _run(TOY, splits, tmp_path / "cache", checkpoint_path=checkpoint)
    assert checkpoint.read_bytes() == written  # unchanged: not rewritten, no backup
    checkpoint.unlink()
    _run(TOY, splits, tmp_path / "cache", checkpoint_path=checkpoint)
    assert _outcomes() == [TRAINED, REUSED, REUSED]
    _, metadata = load_checkpoint(checkpoint, expected=MLP)
    assert metadata["recipe_description"] == TOY.describe()
    assert metadata["val_acc"] == history.best_val_acc
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["mlp.pt"]


def test_every_training_is_appended_to_the_log_file_the_stamp_reads(
    splits: MNISTSplits, tmp_path: Path, monkeypatch
) -> None:
    log = tmp_path / "training.jsonl"
    monkeypatch.setenv(training_cache.LOG_ENV, str(log))
    _run(TOY, splits, tmp_path / "cache")
    _run(TOY, splits, tmp_path / "cache")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["outcome"] for line in lines] == [TRAINED, REUSED]
    assert lines[0]["key"] == lines[1]["key"] and lines[0]["profile"] == "full"
    assert lines[0]["code"] == training_cache.training_fingerprint()
