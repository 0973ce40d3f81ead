"""Repo-root pytest configuration.

`pytest --nbmake book/` runs each chapter in a fresh Jupyter kernel. The kernel inherits this process's
environment (but not pytest's `pythonpath`), so setting the profile here is what makes every chapter run
in the quick *smoke* profile under test while a reader's own run stays *full*.
"""

import os

os.environ.setdefault("MNIST_BOOK_PROFILE", "smoke")
# Matplotlib must not try to open a window on a CI machine with no screen.
os.environ.setdefault("MPLBACKEND", "Agg")
