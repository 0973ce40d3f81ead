"""Tests for the training loop: it learns, evaluates honestly, keeps the best epoch and fails loudly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_helpers.checkpoints import load_checkpoint
from mnist_helpers.data import TensorSplit
from mnist_helpers.devices import seed_everything
from mnist_helpers.models import MLP
from mnist_helpers.progress import progress_enabled
from mnist_helpers.training import (
    EarlyStopping,
    History,
    Hooks,
    TrainingDivergedError,
    evaluate,
    fit,
    train_one_epoch,
)


def small_mlp() -> MLP:
    seed_everything(0)
    return MLP((32,))


def dropout_mlp() -> nn.Module:
    """Tiny net whose dropout draws from the global RNG: train-mode passes differ, seeded runs must not."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10)
    )


def test_train_one_epoch_reduces_loss(toy_split) -> None:
    model, split = small_mlp(), toy_split()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_before, _ = evaluate(model, split.batches(50))
    for epoch in range(3):
        _, acc = train_one_epoch(
            model, split.batches(50, shuffle=True), optimizer, epoch=epoch + 1
        )
        assert 0.0 <= acc <= 1.0
    loss_after, acc_after = evaluate(model, split.batches(50))
    assert loss_after < loss_before / 2
    assert acc_after > 0.9


def test_evaluate_uses_eval_mode_and_no_grad(toy_split) -> None:
    model = dropout_mlp()
    model.train()
    split = toy_split(40)
    first = evaluate(model, split.batches(16))
    second = evaluate(model, split.batches(16))
    assert first == second
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_fit_history_has_one_entry_per_epoch(toy_split) -> None:
    model, split = small_mlp(), toy_split()
    history = fit(
        model,
        split.batches(50, shuffle=True),
        split.batches(100),
        epochs=2,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
        device="cpu",
    )
    per_epoch = ["train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
    assert set(per_epoch) <= set(history.as_dict())
    assert all(len(getattr(history, key)) == 2 for key in per_epoch)
    assert (
        history.epochs == 2
        and history.best_epoch in (1, 2)
        and not history.stopped_early
    )
    assert history.best_val_acc == history.val_acc[history.best_epoch - 1]


def _unlearn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Negated cross-entropy: training on it makes every epoch worse, so the best epoch is the first."""
    return -F.cross_entropy(logits, labels)


def test_fit_restores_best_weights_and_checkpoints_them(tmp_path, toy_split) -> None:
    model, split = small_mlp(), toy_split()
    path = tmp_path / "best.pt"
    history = fit(
        model,
        split.batches(50),
        split.batches(100),
        epochs=3,
        loss_fn=_unlearn,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
        hooks=Hooks(checkpoint_path=path, monitor="val_acc"),
        device="cpu",
    )
    assert history.val_acc[0] > history.val_acc[-1]
    assert history.best_epoch == 1
    saved, metadata = load_checkpoint(path, expected=MLP)
    assert metadata["epoch"] == 1 and metadata["val_acc"] == history.val_acc[0]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved.state_dict()[name]), name


def test_early_stopping_stops_when_nothing_improves(toy_split) -> None:
    model, split = small_mlp(), toy_split(100)
    frozen = torch.optim.SGD(
        model.parameters(), lr=0.0
    )  # weights never change: no epoch improves
    history = fit(
        model,
        split.batches(50),
        split.batches(100),
        epochs=10,
        optimizer=frozen,
        hooks=Hooks(early_stopping=EarlyStopping(patience=2, monitor="val_loss")),
        device="cpu",
    )
    assert history.epochs == 3 and history.stopped_early


def test_early_stopping_counts_epochs_since_best_of_its_own_monitor() -> None:
    history = History(val_loss=[1.0, 0.9, 0.95, 0.92], val_acc=[0.5, 0.6, 0.7, 0.8])
    assert EarlyStopping(patience=2, monitor="val_loss").should_stop(history)
    assert not EarlyStopping(patience=3, monitor="val_loss").should_stop(history)
    assert not EarlyStopping(patience=1, monitor="val_acc").should_stop(history)
    assert EarlyStopping(patience=2, monitor="val_acc", min_delta=0.35).should_stop(
        history
    )


class _StopAtEpoch:
    """A stopper of our own: fit accepts anything with ``should_stop(history)``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def should_stop(self, history: History) -> bool:
        return history.epochs >= self.epoch


def test_any_stopper_ends_training_after_the_epoch_it_says(toy_split) -> None:
    model, split = small_mlp(), toy_split(100)
    history = fit(
        model,
        split.batches(50),
        split.batches(100),
        epochs=5,
        hooks=Hooks(early_stopping=_StopAtEpoch(2)),
        optimizer=torch.optim.Adam(model.parameters()),
        device="cpu",
    )
    assert history.epochs == 2 and history.stopped_early


def test_nan_loss_raises_before_the_weights_are_touched(toy_split) -> None:
    model, split = small_mlp(), toy_split(100)
    split.images[60] = float("nan")  # second batch of 50
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainingDivergedError) as error:
        fit(
            model,
            split.batches(50),
            split.batches(100),
            epochs=2,
            optimizer=optimizer,
            device="cpu",
        )
    message = str(error.value)
    assert "nan" in message and "epoch 1, batch 2" in message and "lr 0.1" in message
    assert "lower learning rate" in message
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_epoch_scheduler_steps_after_each_epoch_and_lr_is_recorded(toy_split) -> None:
    model, split = small_mlp(), toy_split(100)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = fit(
        model,
        split.batches(50),
        split.batches(100),
        epochs=3,
        optimizer=optimizer,
        hooks=Hooks(scheduler=scheduler),
        device="cpu",
    )
    assert history.lr == pytest.approx([0.1, 0.05, 0.025])


def _seeded_run(split: TensorSplit) -> History:
    seed_everything(0)
    model = dropout_mlp()
    optimizer = torch.optim.Adam(model.parameters())
    return fit(
        model,
        split.batches(20, shuffle=True),
        split.batches(40),
        epochs=2,
        optimizer=optimizer,
        device="cpu",
    )


def test_same_seed_gives_identical_history_on_cpu(toy_split) -> None:
    first, second = _seeded_run(toy_split(40)), _seeded_run(toy_split(40))
    first.seconds = second.seconds = []
    assert first == second


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"monitor": "accuracy"}])
def test_fit_rejects_bad_arguments_clearly(bad: dict, toy_split) -> None:
    model, split = small_mlp(), toy_split(20)
    arguments = {
        "epochs": 1,
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.1),
    }
    with pytest.raises(ValueError, match=next(iter(bad))):
        if "monitor" in bad:
            arguments["hooks"] = Hooks(monitor=bad["monitor"])
        else:
            arguments.update(bad)
        fit(model, split.batches(10), split.batches(10), **arguments)


def test_progress_is_silent_when_quiet_or_smoke(monkeypatch) -> None:
    monkeypatch.setenv("MNIST_BOOK_PROFILE", "full")
    monkeypatch.setenv("MNIST_BOOK_QUIET", "1")
    assert not progress_enabled()
    assert progress_enabled(explicit=True)
    monkeypatch.delenv("MNIST_BOOK_QUIET")
    monkeypatch.setenv("MNIST_BOOK_PROFILE", "smoke")
    assert not progress_enabled()


def test_evaluate_rejects_empty_batches() -> None:
    with pytest.raises(ValueError, match="no batches"):
        evaluate(nn.Linear(784, 10), [])
