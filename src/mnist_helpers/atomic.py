"""Write a file so that a reader sees the old version or the new one, never half of one.

A checkpoint, an ONNX export or a results file written in place is destroyed by anything that stops the
write midway: Ctrl-C, a full disk, a crash, a second process reading it. So the bytes go to a temporary
file in the same folder, are flushed to disk (``fsync``), and the temporary file is renamed over the
target, which POSIX and Windows both do in one step. ``tempfile.mkstemp`` creates its file readable by
its owner only (mode 0600); the finished file gets the mode any new file of this user gets (0644 under
the usual umask 022), so a checkpoint shared with a group or served by a web server stays readable.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _default_file_mode() -> int:
    """0o666 less this process's umask: the mode ``open(path, "w")`` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then put it in place atomically.

    Creates the folder if needed. If ``write`` raises (or the process is interrupted), ``path`` is left
    as it was and the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` for a UTF-8 text file (a results file, a CSV)."""
    return atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def _backup_numbers(path: Path) -> list[int]:
    """The N of every ``<stem>.N<suffix>`` beside ``path``: the numbered backups already there."""
    numbers = []
    for sibling in path.parent.glob(
        f"{glob.escape(path.stem)}.*{glob.escape(path.suffix)}"
    ):
        middle = sibling.name[len(path.stem) + 1 : len(sibling.name) - len(path.suffix)]
        if middle.isdigit():
            numbers.append(int(middle))
    return numbers


def keep_numbered_backup(path: str | Path) -> Path | None:
    """Copy an existing ``path`` to ``<stem>.N<suffix>`` before a new file replaces it; return the copy.

    The one home of the book's backups (checkpoints written by ``train``, ONNX files by ``export``): a
    retrain or an export with a bad setting must never cost the file it replaces, nor an older backup,
    so N is one more than the highest number there (``model.1.pt``, ``model.2.pt``, ...: the highest is
    the newest) and nothing is ever deleted. The suffix is kept so the backup still opens in the tools
    that pick a reader by extension. The backup is a copy, so ``path`` itself is never moved: it stays
    whole until :func:`atomic_write` renames the new file over it. Not a hard link: a program that
    writes in place (``torch.save(state, path)`` in a notebook) would change the backup with it.
    """
    path = Path(path)
    if not path.exists():
        return None
    backup = path.with_name(
        f"{path.stem}.{max(_backup_numbers(path), default=0) + 1}{path.suffix}"
    )
    shutil.copy2(path, backup)
    return backup
