"""Write a file so that a reader sees the old version or the new one, never half of one.

A checkpoint, an ONNX export or a results file written in place is destroyed by anything that stops the
write midway: Ctrl-C, a full disk, a crash, a second process reading it. So the bytes go to a temporary
file in the same folder, are flushed to disk (``fsync``), and the temporary file is renamed over the
target, which POSIX and Windows both do in one step. ``tempfile.mkstemp`` creates its file readable by
its owner only (mode 0600); the finished file gets the mode any new file of this user gets (0644 under
the usual umask 022), so a checkpoint shared with a group or served by a web server stays readable.
"""

from __future__ import annotations

import os
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
