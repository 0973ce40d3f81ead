"""``python -m mnist_helpers``: the book's command line (see :mod:`mnist_helpers.cli`)."""

from __future__ import annotations

from mnist_helpers.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
