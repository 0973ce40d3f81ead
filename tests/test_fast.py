"""Tests for fast_fit: it is fit with a recipe, so it must behave exactly like fit does."""

from __future__ import annotations

import time

import pytest
import torch

from mnist_helpers.checkpoints import load_checkpoint
from mnist_helpers.data import MNISTSplits, TensorSplit
from mnist_helpers.fast import fast_fit
from mnist_helpers.models import MLP
from mnist_helpers.training import History, _StepTimer, fit, seed_everything


def toy_split(n: int, seed: int) -> TensorSplit:
    """Noisy images whose label is written as one bright row: learnable in a few steps."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = 0.3 * torch.randn(n, 1, 28, 28, generator=generator)
    images[torch.arange(n), 0, 2 * labels + 4, :] += 1.0
    return TensorSplit(images, labels)


SPLITS = MNISTSplits(train=toy_split(128, 0), val=toy_split(64, 1), test=toy_split(64, 2))


def _fast_run(**kwargs) -> tuple[MLP, History]:
    seed_everything(0)
    model = MLP((32,))
    return model, fast_fit(model, SPLITS, epochs=2, batch_size=64, device="cpu", **kwargs)


def test_fast_fit_returns_the_same_history_as_fit_and_checkpoints(tmp_path) -> None:
    _, history = _fast_run(checkpoint_path=tmp_path / "fast.pt")
    plain = MLP((32,))
    reference = fit(
        plain,
        SPLITS.train.batches(64),
        SPLITS.val.batches(64),
        epochs=1,
        optimizer=torch.optim.Adam(plain.parameters()),
        device="cpu",
    )
    assert history.as_dict().keys() == reference.as_dict().keys()
    assert history.epochs == 2 and history.compile_seconds == 0.0
    _, metadata = load_checkpoint(tmp_path / "fast.pt", expected=MLP)
    assert metadata["epoch"] == history.best_epoch


def test_fast_fit_follows_one_cycle_schedule() -> None:
    _, history = _fast_run(max_lr=3e-3)
    # OneCycle starts at max_lr / div_factor (25) and rises during the warm-up.
    assert history.lr[0] == pytest.approx(3e-3 / 25)
    assert history.lr[1] > history.lr[0]


def test_fast_fit_is_deterministic_on_cpu() -> None:
    (_, first), (_, second) = _fast_run(), _fast_run()
    first.seconds = second.seconds = []
    assert first == second


def test_compile_time_is_the_extra_time_of_slow_steps() -> None:
    timer = _StepTimer([1, 2, 3, 4, 5])
    for step in timer:
        time.sleep(0.2 if step == 1 else 0.01)  # the first step "compiles"
    assert timer.excess_seconds() == pytest.approx(0.19, abs=0.05)
