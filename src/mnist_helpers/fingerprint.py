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
from collections.abc import Iterable
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


def fingerprint_of(paths: Iterable[Path]) -> str:
    """A short hash over the given modules (by file name and syntax tree), in a fixed order."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda path: path.name):
        digest.update(path.name.encode() + b"\0" + module_sha256(path).encode())
    return digest.hexdigest()[:12]


def library_fingerprint(folder: Path = LIBRARY) -> str:
    """A short hash over every module of the library: which version of the code trained a model."""
    return fingerprint_of(folder.glob("*.py"))


def _library_imports(path: Path, folder: Path) -> set[Path]:
    """The modules of the library (a flat package in ``folder``) that ``path`` imports."""
    package, found = folder.name, set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == package and len(parts) > 1:
                candidate = folder / f"{parts[1]}.py"
                if candidate.is_file():
                    found.add(candidate)
    return found


def dependencies(*modules: str, folder: Path = LIBRARY) -> list[Path]:
    """The files of ``modules`` (names in the library, e.g. ``"recipes"``) and of every library module
    they import, directly or through others: the code that can change what they do."""
    pending = {folder / f"{name}.py" for name in modules} & set(folder.glob("*.py"))
    seen: set[Path] = set()
    while pending:
        path = pending.pop()
        if path not in seen:
            seen.add(path)
            pending |= _library_imports(path, folder) - seen
    return sorted(seen)


def training_fingerprint(folder: Path = LIBRARY) -> str:
    """The fingerprint of the code that decides what a recipe's training produces: ``recipes`` and
    ``training_cache`` and every library module they import (the training cache's key, and what a
    chapter's stamp records for each training it ran or reused)."""
    return fingerprint_of(dependencies("recipes", "training_cache", folder=folder))
