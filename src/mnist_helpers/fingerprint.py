"""One way to fingerprint code: a hash of its syntax tree without docstrings.

Two things ask "is this the same code?": a notebook's freshness stamp (``book_tools.notebooks``) and a
checkpoint's record of the library that trained it (:mod:`mnist_helpers.checkpoints`). If they hashed
differently, rewording a docstring could make a checkpoint claim "trained by another library" while the
stamp called the chapter fresh. Both use this module, so they agree: comments, formatting and docstrings
never count; code always does.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

LIBRARY = Path(__file__).resolve().parent


def without_docstrings(tree: ast.Module) -> ast.Module:
    """Drop the docstring of the module and of every class and function in ``tree`` (in place)."""
    for node in ast.walk(tree):
        if isinstance(
            node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        ):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
            ):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:]
    return tree


def module_sha256(path: Path) -> str:
    """SHA-256 of one module's syntax tree without docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return hashlib.sha256(ast.dump(without_docstrings(tree)).encode()).hexdigest()


def library_fingerprint(folder: Path = LIBRARY) -> str:
    """A short hash over every module of the library: which version of the code trained a model."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + module_sha256(path).encode())
    return digest.hexdigest()[:12]
