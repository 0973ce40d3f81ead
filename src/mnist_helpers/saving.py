"""Saving a trained model without ever replacing good work with bad.

Training from the command line ends by writing a checkpoint, usually over the one the last run wrote. Three
things can go wrong there, each only after minutes or hours of training: the destination cannot be written,
the new model learned nothing (a learning rate far too high), or a good model is silently overwritten. Both
ways of training from the command line, one process and ``torchrun`` (chapter 13), go through these checks.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from mnist_helpers.training import History

CHANCE_ACCURACY = 0.1  # ten digits: guessing gets one in ten right


def check_destination(out: Path) -> None:
    """Fail before the first epoch, not after an hour of training, if the checkpoint cannot be written.

    The folder is created now and a temporary file written and removed in it: that is the only test a
    read-only disk, a full quota or a parent path that is a file cannot fool.
    """
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name in it, e.g. --out {out / 'model.pt'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out.parent).close()
    except OSError as error:
        raise ValueError(f"--out {out}: cannot write a checkpoint in {out.parent} ({error.strerror or error}); "
                         "choose a path in a folder you can write to") from None


def refuse_useless(history: History) -> None:
    """Never save (nor let replace a good checkpoint) a model that learned nothing.

    A learning rate far too high can leave a finite but astronomical loss (no NaN for ``fit`` to stop on)
    and weights that answer the same digit for everything: validation then says so.
    """
    loss, accuracy = history.best_val_loss, history.best_val_acc
    if loss is None or accuracy is None or not math.isfinite(loss):
        raise ValueError(f"training failed: validation loss is {loss}; nothing was saved. "
                         "Try a lower learning rate (--lr)")
    if accuracy <= 2 * CHANCE_ACCURACY:
        raise ValueError(f"training failed: validation accuracy {100 * accuracy:.1f}% is no better than guessing "
                         f"(chance is {100 * CHANCE_ACCURACY:.0f}%); nothing was saved. Try a lower learning "
                         "rate (--lr) or more epochs")


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
