"""The one place that decides whether progress bars are drawn.

A reader training for ten minutes wants to see bars move; a notebook whose outputs are committed to the
published site must not store half-drawn bars. Centralising the rule here keeps every loop consistent:
bars are off in the smoke profile and under ``MNIST_BOOK_QUIET=1`` (set by the book's execute command).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from typing import Any

from tqdm.std import TqdmWarning
from tqdm.std import tqdm as plain_tqdm

from mnist_helpers.profile import is_smoke

QUIET_ENV = "MNIST_BOOK_QUIET"


def _inside_jupyter_kernel() -> bool:
    """True in a Jupyter/Colab kernel, where stderr is not a tty but bars still render."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in shell.config


def progress_enabled(explicit: bool | None = None) -> bool:
    """Decide whether to draw bars: ``explicit`` wins, then the quiet rules, then "is anyone watching?"."""
    if explicit is not None:
        return explicit
    if is_smoke() or os.environ.get(QUIET_ENV) == "1":
        return False
    return sys.stderr.isatty() or _inside_jupyter_kernel()


def progress_bar(
    iterable: Iterable[Any], *, enabled: bool | None = None, **tqdm_kwargs: Any
) -> plain_tqdm:
    """Wrap ``iterable`` in a tqdm bar (``leave=False`` by default) obeying :func:`progress_enabled`.

    A disabled bar is still a tqdm object, so callers may call ``set_postfix`` without checking.
    """
    tqdm_kwargs.setdefault("leave", False)
    if not progress_enabled(enabled):
        return plain_tqdm(iterable, disable=True, **tqdm_kwargs)
    # tqdm.auto warns when ipywidgets is missing and then falls back to text bars, which are fine for us.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        from tqdm.auto import tqdm as auto_tqdm
    return auto_tqdm(iterable, **tqdm_kwargs)
