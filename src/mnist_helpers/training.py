"""The book's training loop, written once.

Chapter 4 writes the loop inline so a reader sees every line; later chapters call :func:`fit`, which is
the same loop plus the bookkeeping a careful experiment needs: validation every epoch, the best epoch
chosen on *validation* (never on the test set), its weights restored at the end, early stopping and a
clear error when the loss explodes. Speed-ups (chapter 9) do not live here: :mod:`mnist_helpers.fast`
wraps the model and the batches, so this loop stays the one a reader compares with chapter 4's.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnist_helpers.checkpoints import save_checkpoint
from mnist_helpers.devices import model_device, pick_device
from mnist_helpers.progress import progress_bar

LossFn = Callable[[Tensor, Tensor], Tensor]
Monitor = Literal["val_loss", "val_acc"]
_MONITORS: dict[str, str] = {"val_acc": "max", "val_loss": "min"}


class Batches(Protocol):
    """Re-iterable ``(images, labels)`` batches with a length: a TensorBatches or a DataLoader."""

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]: ...

    def __len__(self) -> int: ...


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite: the weights are now garbage, so training cannot usefully go on."""


def _check_not_empty(seen: int, what: str) -> None:
    if seen == 0:
        raise ValueError(
            f"{what} yielded no batches; check that the split is not empty and batch_size > 0"
        )


def train_one_epoch(
    model: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn = F.cross_entropy,
    *,
    device: str | torch.device | None = None,
    epoch: int = 1,
    progress: bool | None = None,
) -> tuple[float, float]:
    """Train for one pass over ``batches``; return (mean loss per image, accuracy in [0, 1]).

    The loss is checked before each ``optimizer.step()`` so a NaN never reaches the weights.
    """
    device = torch.device(device) if device is not None else model_device(model)
    model.train()
    total_loss, correct, seen = 0.0, torch.zeros((), dtype=torch.long, device=device), 0
    bar = progress_bar(
        batches, enabled=progress, desc=f"epoch {epoch}", total=len(batches)
    )
    for batch_index, (x, y) in enumerate(bar, start=1):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            lr = optimizer.param_groups[0]["lr"]
            raise TrainingDivergedError(
                f"loss became {loss_value} at epoch {epoch}, batch {batch_index} (lr {lr:g}): "
                "try a lower learning rate"
            )
        loss.backward()
        optimizer.step()
        total_loss += loss_value * len(y)
        correct += (logits.argmax(dim=1) == y).sum()
        seen += len(y)
        if (
            not bar.disable
        ):  # reading `correct` waits for the GPU: only pay that when someone watches
            bar.set_postfix(
                loss=f"{total_loss / seen:.4f}",
                acc=f"{correct.item() / seen:.4f}",
                refresh=False,
            )
    _check_not_empty(seen, "train_batches")
    return total_loss / seen, correct.item() / seen


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Batches,
    loss_fn: LossFn = F.cross_entropy,
    *,
    device: str | torch.device | None = None,
) -> tuple[float, float]:
    """Return (mean loss per image, accuracy) with dropout off and batch-norm statistics frozen.

    ``eval()`` makes the answer deterministic and independent of batch composition; ``no_grad`` skips
    the autograd bookkeeping we would never use.
    """
    device = torch.device(device) if device is not None else model_device(model)
    model.eval()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        total_loss += loss_fn(logits, y).float() * len(y)
        correct += (logits.argmax(dim=1) == y).sum()
        seen += len(y)
    _check_not_empty(seen, "val/test batches")
    return total_loss.item() / seen, correct.item() / seen


@dataclass
class History:
    """Per-epoch record of one :func:`fit` run; every list has one entry per completed epoch.

    ``lr`` is the learning rate at the *start* of each epoch; ``seconds`` the wall time of train + val.
    ``best_epoch`` (1-based) is chosen on validation. ``stopped_early`` is True when training ended before
    the requested number of epochs (a stopper such as :class:`EarlyStopping` said so).
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_acc: float | None = None
    best_val_loss: float | None = None
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    def as_dict(self) -> dict[str, Any]:
        """Plain Python data, e.g. for JSON or a checkpoint's metadata."""
        return asdict(self)


def _check_monitor(monitor: str) -> None:
    if monitor not in _MONITORS:
        raise ValueError(
            f"monitor={monitor!r} is not supported; use one of {', '.join(_MONITORS)}"
        )


def _improved(
    value: float, best: float | None, monitor: str, min_delta: float = 0.0
) -> bool:
    """Higher accuracy or lower loss, by more than ``min_delta``; the first value always counts."""
    if best is None:
        return True
    if _MONITORS[monitor] == "max":
        return value > best + min_delta
    return value < best - min_delta


@dataclass
class EarlyStopping:
    """Stop once ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    It reads the :class:`History` instead of keeping its own state, so one instance can be reused by
    several :func:`fit` calls without leaking a previous run's best value.
    """

    patience: int = 5
    monitor: Monitor = "val_loss"
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        _check_monitor(self.monitor)
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1 epoch, got {self.patience}")

    def should_stop(self, history: History) -> bool:
        best, epochs_without_improvement = None, 0
        for value in getattr(history, self.monitor):
            if _improved(value, best, self.monitor, self.min_delta):
                best, epochs_without_improvement = value, 0
            else:
                epochs_without_improvement += 1
        return epochs_without_improvement >= self.patience


class Stopper(Protocol):
    """Anything that decides from the :class:`History` so far whether training should end now."""

    def should_stop(self, history: History) -> bool: ...


def _step_epoch_scheduler(scheduler: Any, val_loss: float) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(val_loss)
    else:
        scheduler.step()


@dataclass(frozen=True)
class Hooks:
    """What :func:`fit` does around each epoch besides training and validating, grouped so that ``fit``
    keeps the handful of arguments a reader compares with chapter 4's loop.

    ``scheduler`` steps once per epoch (ReduceLROnPlateau receives the validation loss; for one that steps
    every batch, wrap the batches in :class:`mnist_helpers.fast.SchedulerEveryBatch`). ``monitor`` picks
    the best epoch on validation; ``early_stopping`` may end the run; ``checkpoint_path``, if given,
    receives every new best epoch. ``progress`` shows progress bars (None: unless the profile is quiet);
    ``on_epoch`` is called with the history after each epoch's bookkeeping.
    """

    scheduler: Any = None
    monitor: Monitor = "val_acc"
    early_stopping: Stopper | None = None
    checkpoint_path: str | Path | None = None
    progress: bool | None = None
    on_epoch: Callable[[History], None] | None = None

    def __post_init__(self) -> None:
        _check_monitor(self.monitor)


def _record_epoch(
    history: History, losses: tuple[float, float, float, float], seconds: float
) -> None:
    """Append one epoch's (train loss, train acc, val loss, val acc) and its wall time."""
    history.seconds.append(seconds)
    names = ("train_loss", "train_acc", "val_loss", "val_acc")
    for name, value in zip(names, losses):
        getattr(history, name).append(value)


def _keep_if_best(
    model: nn.Module, history: History, hooks: Hooks, best: list[Any]
) -> None:
    """If the last epoch is the best so far by ``hooks.monitor``, remember its weights (``best`` holds
    [value, state]) and save them when asked."""
    epoch, val_acc, val_loss = history.epochs, history.val_acc[-1], history.val_loss[-1]
    value = val_acc if hooks.monitor == "val_acc" else val_loss
    if not _improved(value, best[0], hooks.monitor):
        return
    best[:] = [value, copy.deepcopy(model.state_dict())]
    history.best_epoch, history.best_val_acc, history.best_val_loss = (
        epoch,
        val_acc,
        val_loss,
    )
    if hooks.checkpoint_path is not None:
        save_checkpoint(
            hooks.checkpoint_path,
            model,
            epoch=epoch,
            val_acc=val_acc,
            val_loss=val_loss,
        )


def fit(
    model: nn.Module,
    train_batches: Batches,
    val_batches: Batches,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn = F.cross_entropy,
    device: str | torch.device | None = None,
    hooks: Hooks = Hooks(),
) -> History:
    """Train ``model`` for up to ``epochs`` epochs, validating after each; return its :class:`History`.

    The best epoch by ``hooks.monitor`` on validation is saved to ``hooks.checkpoint_path`` (if given) and
    its weights are restored into ``model`` at the end, so the model you get back is the one you would
    report. The learning-rate schedule, early stopping, progress bars and a per-epoch callback come in
    ``hooks`` (:class:`Hooks`).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = pick_device(device)
    model.to(device)
    history, best = History(), [None, None]  # best: [monitored value, weights]
    epoch_bar = progress_bar(
        range(1, epochs + 1), enabled=hooks.progress, desc="epochs", leave=True
    )
    for epoch in epoch_bar:
        start = time.perf_counter()
        history.lr.append(optimizer.param_groups[0]["lr"])
        train_loss, train_acc = train_one_epoch(
            model,
            train_batches,
            optimizer,
            loss_fn,
            device=device,
            epoch=epoch,
            progress=hooks.progress,
        )
        val_loss, val_acc = evaluate(model, val_batches, loss_fn, device=device)
        _record_epoch(
            history,
            (train_loss, train_acc, val_loss, val_acc),
            time.perf_counter() - start,
        )
        epoch_bar.set_postfix(
            train_loss=f"{train_loss:.4f}", val_acc=f"{val_acc:.4f}", refresh=False
        )
        _keep_if_best(model, history, hooks, best)
        if hooks.on_epoch is not None:  # e.g. the command line prints the epoch now
            hooks.on_epoch(history)
        if hooks.scheduler is not None:
            _step_epoch_scheduler(hooks.scheduler, val_loss)
        stopper = hooks.early_stopping
        if stopper is not None and stopper.should_stop(history):
            history.stopped_early = epoch < epochs
            break

    if best[1] is not None:
        model.load_state_dict(best[1])
    return history
