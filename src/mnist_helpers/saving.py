"""Saving a trained model without ever replacing good work with bad.

Training ends by writing a checkpoint, usually over the one the last run wrote. Three things can go wrong
there, each only after minutes or hours of training: the destination cannot be written, the new model
learned nothing (a learning rate far too high), or a good model is silently overwritten. And a checkpoint
is only useful later if it says how it was made. Every way the library trains and saves (the command line
on one process and under ``torchrun``, :func:`mnist_helpers.recipes.fit_recipe`, and through it
:mod:`mnist_helpers.pretrained`) writes through :func:`save_trained`, with one :class:`TrainingRecord`.

So the user's time is never thrown away: the command line locks ``--out`` for the whole run
(:func:`locked_destination`), refuses a read-only checkpoint and a folder without room for the model
before training (:func:`check_destination`, :func:`check_free_space`); :func:`save_trained` keeps every
replaced checkpoint under a numbered name, keeps a better model in place unless told otherwise, and on a
failed write saves this run's weights elsewhere and says where each model is (:class:`SaveError`).
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from torch import nn

from mnist_helpers.atomic import keep_numbered_backup
from mnist_helpers.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from mnist_helpers.training import History

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]

CHANCE_ACCURACY = 0.1  # ten digits: guessing gets one in ten right


def check_destination(out: Path) -> None:
    """Fail before the first epoch, not after an hour of training, if the checkpoint cannot be written.

    The folder is created now and a temporary file written and removed in it: that is the only test a
    read-only disk, a full quota or a parent path that is a file cannot fool. A checkpoint with no write
    permission for anyone was protected on purpose (``chmod 444``); replacing it is a rename in its
    folder, which its mode would not stop, so it is refused here by its mode (root included).
    """
    if out.is_dir():
        raise ValueError(
            f"--out {out} is a folder; give a file name in it, e.g. --out {out / 'model.pt'}"
        )
    if out.is_file() and not out.stat().st_mode & 0o222:
        raise ValueError(
            f"--out {out} is read-only, so it is kept as it is: choose another --out, or allow "
            f"replacing it with: chmod u+w {out}"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out.parent).close()
    except OSError as error:
        raise ValueError(
            f"--out {out}: cannot write a checkpoint in {out.parent} ({error.strerror or error}); "
            "choose a path in a folder you can write to"
        ) from None


SPACE_MARGIN = (
    8 * 2**20
)  # bytes: the checkpoint's metadata, history and zip headers, and some slack


def checkpoint_bytes(model: nn.Module) -> int:
    """How big ``model``'s checkpoint will be, about: its weights and buffers, byte for byte."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def check_free_space(out: Path, model: nn.Module) -> None:
    """Refuse to start training when the checkpoint's folder cannot hold twice the model plus a margin.

    Writing an empty test file (:func:`check_destination`) succeeds on a disk with a few bytes left; the
    save at the end then fails after all the training. Twice: the replaced checkpoint is copied to a
    numbered backup, and the new file is written whole beside it before it takes its place.
    """
    needed = 2 * checkpoint_bytes(model) + SPACE_MARGIN
    free = shutil.disk_usage(out.parent).free
    if free < needed:
        raise ValueError(
            f"--out {out}: only {free / 1e6:.1f} MB free in {out.parent}, and saving this model needs "
            f"about {needed / 1e6:.1f} MB; free some space there or choose another --out"
        )


class DestinationBusy(RuntimeError):
    """Another training run holds the lock on the same ``--out``."""


@contextmanager
def locked_destination(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out`` (a ``<name>.lock`` file beside it) for a whole training run.

    Two runs started with the same ``--out`` would each move "the old" checkpoint aside and overwrite
    the other's model, both reporting success. With the lock, the second fails at once, naming the run
    that holds it (``flock`` is released by the kernel however the holder ends, even by SIGKILL). Where
    ``fcntl`` does not exist (Windows) the run is not locked.
    """
    if fcntl is None:
        yield
        return
    lock = out.with_name(out.name + ".lock")
    with _acquire(lock, out) as file:
        file.write(
            f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}"
        )
        file.flush()
        try:
            yield
        finally:
            lock.unlink(
                missing_ok=True
            )  # while still locked: no one can be holding this file


@contextmanager
def _acquire(lock: Path, out: Path) -> Iterator[TextIO]:
    """The open, locked, emptied lock file. A lock file unlinked by its last holder between our open
    and our ``flock`` is no lock at all, so the file locked must still be the one at ``lock``."""
    while True:
        with lock.open("a+", encoding="utf-8") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.seek(0)
                holder = file.read().strip() or "another process"
                raise DestinationBusy(
                    f"--out {out} is in use by another training run ({holder}); wait for it to end, "
                    "or choose another --out"
                ) from None
            if _same_file(lock, file):
                file.seek(0)
                file.truncate()
                yield file
                return


def _same_file(path: Path, file: TextIO) -> bool:
    """Whether the open ``file`` is still the file at ``path`` (not unlinked nor replaced since)."""
    try:
        return os.path.samestat(path.stat(), os.fstat(file.fileno()))
    except FileNotFoundError:
        return False


def refuse_useless(history: History) -> None:
    """Never save (nor let replace a good checkpoint) a model that learned nothing.

    A learning rate far too high can leave a finite but astronomical loss (no NaN for ``fit`` to stop on)
    and weights that answer the same digit for everything: validation then says so.
    """
    loss, accuracy = history.best_val_loss, history.best_val_acc
    if loss is None or accuracy is None or not math.isfinite(loss):
        raise ValueError(
            f"training failed: validation loss is {loss}; nothing was saved. "
            "Try a lower learning rate (--lr)"
        )
    if accuracy <= 2 * CHANCE_ACCURACY:
        raise ValueError(
            f"training failed: validation accuracy {100 * accuracy:.1f}% is no better than guessing "
            f"(chance is {100 * CHANCE_ACCURACY:.0f}%); nothing was saved. Try a lower learning "
            "rate (--lr) or more epochs"
        )


@dataclass(frozen=True)
class TrainingRecord:
    """How a checkpoint's weights were made, stored in every checkpoint the library trains.

    ``evaluate`` and ``export`` read the recipe's name from here, so a ``speedrun`` checkpoint is reported
    as ``speedrun`` (nothing guesses it from the model's class, which two recipes can share), and the
    input normalization the model needs travels with its weights.
    """

    recipe: str  # the key in mnist_helpers.recipes.RECIPES, e.g. "speedrun"
    description: (
        str  # every setting actually used: Recipe.describe() after the run's overrides
    )
    mean: float  # input normalization, Normalize(mean, std)
    std: float
    profile: str  # "full" or "smoke"
    seed: int
    best_epoch: int | None
    val_acc: float | None
    val_loss: float | None
    test_acc: float | None = (
        None  # None when the test set was not touched (the chapters test later)
    )
    test_loss: float | None = None

    def metadata(self) -> dict[str, Any]:
        """The checkpoint's metadata keys (the library fingerprint is added by ``save_checkpoint``)."""
        metadata = {
            "recipe": self.recipe,
            "recipe_description": self.description,
            "normalization": {"mean": self.mean, "std": self.std},
            "profile": self.profile,
            "seed": self.seed,
            "epoch": self.best_epoch,
            "val_acc": self.val_acc,
            "val_loss": self.val_loss,
        }
        if self.test_acc is not None:
            metadata |= {"test_acc": self.test_acc, "test_loss": self.test_loss}
        return metadata

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> TrainingRecord | None:
        """The record in a checkpoint's metadata, or None for a checkpoint saved without one."""
        normalization = metadata.get("normalization")
        if "recipe_description" not in metadata or not isinstance(normalization, dict):
            return None
        return cls(
            recipe=str(metadata.get("recipe", "")),
            description=str(metadata["recipe_description"]),
            mean=float(normalization["mean"]),
            std=float(normalization["std"]),
            profile=str(metadata.get("profile", "")),
            seed=int(metadata.get("seed", 0)),
            best_epoch=metadata.get("epoch"),
            val_acc=metadata.get("val_acc"),
            val_loss=metadata.get("val_loss"),
            test_acc=metadata.get("test_acc"),
            test_loss=metadata.get("test_loss"),
        )


class SaveError(RuntimeError):
    """The checkpoint could not be written; the message says why, where the good model is and where
    this run's weights went instead."""


@dataclass(frozen=True)
class Saved:
    """Where :func:`save_trained` put things: this run's model, the checkpoint it replaced (kept under a
    numbered name), or, when this run was worse, the better checkpoint it left in place."""

    path: Path
    backup: Path | None = None
    kept_better: Path | None = None
    old_acc: float | None = None
    new_acc: float | None = None

    def message(self) -> str:
        """One line for the user, with both accuracies whenever a model was compared."""
        if self.kept_better is not None:
            return (
                f"this run's validation accuracy {_percent(self.new_acc)} is below the "
                f"{_percent(self.old_acc)} of {self.kept_better}, which is kept; this run's model is "
                f"saved beside it as {self.path} (--replace-worse replaces the better one)"
            )
        if self.backup is None:
            return f"checkpoint written to {self.path}"
        compared = f" (validation accuracy {_percent(self.old_acc)}, now {_percent(self.new_acc)})"
        return (
            f"checkpoint written to {self.path}; the one it replaced is kept as {self.backup}"
            + (compared if self.old_acc is not None else "")
        )


def _percent(accuracy: float | None) -> str:
    return "unknown" if accuracy is None else f"{100 * accuracy:.2f}%"


def recorded_accuracy(path: Path) -> float | None:
    """The validation accuracy stored in the checkpoint at ``path``; None if there is none to compare
    with (no file, a file that is not a checkpoint, or one saved without a record)."""
    if not path.is_file():
        return None
    try:
        _, metadata = load_checkpoint(path)
    except (CheckpointError, OSError):
        return None
    accuracy = metadata.get("val_acc")
    return float(accuracy) if isinstance(accuracy, (int, float)) else None


def _worse_name(out: Path, accuracy: float) -> Path:
    """``model.worse-44.80.pt``: a name that says why it is there."""
    beside = out.with_name(f"{out.stem}.worse-{100 * accuracy:.2f}{out.suffix}")
    keep_numbered_backup(
        beside
    )  # an earlier run of the same accuracy stays too, numbered
    return beside


def _why(error: BaseException, folder: Path) -> str:
    """What went wrong, in words: torch reports a full disk as "unexpected pos", so free space is checked."""
    if shutil.disk_usage(folder).free < SPACE_MARGIN:
        return f"the disk is full ({shutil.disk_usage(folder).free / 1e6:.1f} MB free in {folder})"
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return (
        str(error).strip().splitlines()[0]
        if str(error).strip()
        else type(error).__name__
    )


def _write_or_fall_back(
    write: Callable[[Path], object], target: Path, good: str
) -> None:
    """``write(target)``; if that fails, ``write`` this run's weights to the temporary folder and raise a
    one-line :class:`SaveError`: what failed, where the good model is (``good``), where the weights went."""
    try:
        if target.is_file() and not target.stat().st_mode & 0o222:
            raise PermissionError(errno.EACCES, "the file is read-only", str(target))
        write(target)
        return
    except CheckpointError:
        raise
    except (OSError, RuntimeError) as error:
        fallback = (
            Path(tempfile.gettempdir()) / f"{target.stem}-{os.getpid()}{target.suffix}"
        )
        try:
            write(fallback)
            instead = f"this run's weights were saved instead as {fallback}"
        except (OSError, RuntimeError) as second:
            instead = f"this run's weights could not be saved anywhere ({_why(second, fallback.parent)})"
        raise SaveError(
            f"could not write {target}: {_why(error, target.parent)}; {good}; {instead}"
        ) from error


def save_trained(
    out: Path,
    model: nn.Module,
    record: TrainingRecord,
    history: History,
    *,
    replace_worse: bool = True,
    **extra: Any,
) -> Saved:
    """Write ``model`` with its record and history to ``out``, never losing the checkpoint it replaces.

    The replaced checkpoint keeps a numbered name (:func:`keep_numbered_backup`); ``out`` itself is
    replaced in one step by the complete new file. With ``replace_worse=False`` (the command line's
    default), a model whose validation accuracy is below the one at ``out`` is saved beside it instead
    (:func:`_worse_name`). A failed write raises :class:`SaveError` after saving the weights elsewhere.
    ``extra`` adds facts only some runs have (``world_size`` under torchrun, ``partial=True`` after Ctrl-C).
    """

    def write(path: Path) -> None:
        save_checkpoint(
            path, model, **record.metadata(), history=history.as_dict(), **extra
        )

    old_acc, new_acc = recorded_accuracy(out), record.val_acc
    if (
        not replace_worse
        and old_acc is not None
        and new_acc is not None
        and new_acc < old_acc
    ):
        beside = _worse_name(out, new_acc)
        _write_or_fall_back(write, beside, f"the better model is still at {out}")
        return Saved(beside, kept_better=out, old_acc=old_acc, new_acc=new_acc)
    good = (
        f"the previous model is still at {out}"
        if out.exists()
        else "nothing was there before"
    )
    backup = keep_numbered_backup(out)
    try:
        _write_or_fall_back(write, out, good)
    except SaveError:
        if backup is not None:
            backup.unlink()  # out still holds those bytes: a second name for them would only confuse
        raise
    return Saved(out, backup=backup, old_acc=old_acc, new_acc=new_acc)
