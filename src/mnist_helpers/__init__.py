"""Helpers for the book *MNIST handwritten-digit recognition with PyTorch*.

Chapters import the submodules directly (``from mnist_helpers.training import fit``) so that a reader can
see where each tool lives; nothing heavy is imported here.
"""

__version__ = "0.1.0"
