"""Saving a trained model without ever replacing good work with bad.

Training ends by writing a checkpoint, usually over the one the last run wrote. Three things can go wrong
there, each only after minutes or hours of training: the destination cannot be written, the new model
learned nothing (a learning rate far too high), or a good model is silently overwritten. And a checkpoint
is only useful later if it says how it was made. Every way the library trains and saves (the command line
on one process and under ``torchrun``, :func:`mnist_helpers.recipes.fit_recipe`, and through it
:mod:`mnist_helpers.pretrained`) writes through :func:`save_trained`, with one :class:`TrainingRecord`.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from mnist_helpers.checkpoints import save_checkpoint
from mnist_helpers.training import History

CHANCE_ACCURACY = 0.1  # ten digits: guessing gets one in ten right


def check_destination(out: Path) -> None:
    """Fail before the first epoch, not after an hour of training, if the checkpoint cannot be written.

    The folder is created now and a temporary file written and removed in it: that is the only test a
    read-only disk, a full quota or a parent path that is a file cannot fool.
    """
    if out.is_dir():
        raise ValueError(
            f"--out {out} is a folder; give a file name in it, e.g. --out {out / 'model.pt'}"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out.parent).close()
    except OSError as error:
        raise ValueError(
            f"--out {out}: cannot write a checkpoint in {out.parent} ({error.strerror or error}); "
            "choose a path in a folder you can write to"
        ) from None


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


def keep_previous(out: Path) -> Path | None:
    """Move an existing checkpoint at ``out`` aside to ``<name>.previous.pt`` rather than overwrite it silently.

    Retraining to the same path is normal (a chapter relaunching a run), so it is allowed, but the
    replaced model stays one rename away, and the output says where.
    """
    if not out.exists():
        return None
    previous = out.with_name(out.name.removesuffix(".pt") + ".previous.pt")
    os.replace(out, previous)
    return previous


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


def save_trained(
    out: Path, model: nn.Module, record: TrainingRecord, history: History, **extra: Any
) -> Path | None:
    """Write ``model`` with its record and history to ``out``; return where the replaced checkpoint went.

    ``extra`` adds facts only some runs have (``world_size`` under torchrun, ``partial=True`` after Ctrl-C).
    """
    previous = keep_previous(out)
    save_checkpoint(out, model, **record.metadata(), history=history.as_dict(), **extra)
    return previous
