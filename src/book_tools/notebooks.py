"""Execute the chapters for the published book, and check that their stored outputs are still fresh.

The site is built with ``execute_notebooks: "off"``: it shows the outputs stored in ``book/*.ipynb``.
Those outputs must come from a *full*-profile run of the *current* code, otherwise the prose (which
quotes numbers through glue) would describe an experiment that no longer exists. So::

    python -m book_tools.notebooks execute book/*.ipynb   # run, check outputs, stamp, store
    python -m book_tools.notebooks check book/*.ipynb     # exit 1 if any stamp is missing or stale

``execute`` stamps ``metadata["mnist_book"]`` with a hash of the code cells and one hash per library
module the chapter imports, directly or through other library modules (found statically, from the
``import`` statements); ``check`` recomputes them and names every module that changed. Editing a module
no chapter imports (the command line, say) leaves every chapter fresh. Hashes are taken over syntax trees
without docstrings, so rewording a comment or a docstring does not force a re-execution; changing code does.
A chapter that reads committed benchmark results (chapters 9 and 11 read ``benchmarks/results/*.json``) is
stamped with a hash of each such file too, found from the paths its code names, so new results make it stale.
Each training a chapter runs through :mod:`mnist_helpers.training_cache` is listed in the stamp with its
cache key and whether it was trained or reused; ``check`` calls either fresh only while the fingerprint of
the training code in that key is the current one (and the profile is ``full``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from mnist_helpers.fingerprint import module_sha256, training_fingerprint
from mnist_helpers.glue import GLUE_PREFIX
from mnist_helpers.profile import PROFILE_ENV, Profile
from mnist_helpers.progress import QUIET_ENV

STAMP_KEY = "mnist_book"
SRC = (
    Path(__file__).resolve().parents[1]
)  # src/: the library packages live side by side here
RESULTS = (
    SRC.parent / "benchmarks" / "results"
)  # committed benchmark results that chapters read
# The inline backend is what Jupyter and Colab use: figures shown by a cell are stored as PNG outputs.
# (A CI-wide MPLBACKEND=Agg would silently drop every figure from the stored chapter.)
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
CODE_CHANGED = "code cells changed since the full run"
LIBRARY_CHANGED = "library code changed since the full run"
RESULTS_CHANGED = "benchmark results it reads changed since the full run"
TRAINING_CHANGED = "training code changed since its training ran or was reused"
# Where the kernel's training cache appends one JSON line per training (mnist_helpers.training_cache).
TRAINING_LOG_ENV = "MNIST_BOOK_TRAINING_LOG"
# Output mime types that hold text a reader can see; images are base64 and cannot leak a path.
_TEXT_MIME_PREFIXES = ("text/", "application/json", "application/javascript")


def code_sha256(nb: nbformat.NotebookNode) -> str:
    """Hash the code cells' syntax trees in order: what, if edited, makes the stored outputs wrong.

    Markdown is left out on purpose, and so are comments and formatting (the hash is over the parsed
    code): fixing prose or re-wrapping a line must not require a re-run.
    """
    digest = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            digest.update(ast.dump(_parse_cell(cell.source)).encode() + b"\0")
    return digest.hexdigest()


def _parse_cell(source: str) -> ast.Module:
    """A code cell's syntax tree, with IPython's ``%magic`` and ``!shell`` lines turned into Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    return ast.parse(TransformerManager().transform_cell(source))


def _imported_names(tree: ast.Module, package: str | None = None) -> set[str]:
    """Every module ``tree`` may import, as dotted names; ``from a import b`` also yields ``a.b``
    (``b`` may be a submodule). ``package`` resolves relative imports inside the library."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _runs_command_line(tree: ast.Module, package: str) -> bool:
    """Whether a cell launches ``package``'s command line: ``-m package`` or its console script, written
    as one shell string (``!mnist-helpers train``) or as a list of arguments (``[..., "-m", package]``)."""
    script = package.replace("_", "-")
    pattern = re.compile(rf"(^|\s)(-m\s+{package}|{script})(\s|$)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if pattern.search(node.value) or node.value == script:
                return True
        if isinstance(node, (ast.List, ast.Tuple)):
            values = [
                e.value if isinstance(e, ast.Constant) else None for e in node.elts
            ]
            if any(a == "-m" and b == package for a, b in zip(values, values[1:])):
                return True
    return False


def _module_file(name: str, src: Path) -> Path | None:
    """The file under ``src`` that defines module ``name`` (None for anything not in the library)."""
    path = src.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def library_modules(nb: nbformat.NotebookNode, src: Path = SRC) -> list[Path]:
    """The library files the notebook's code runs, directly or through other library modules.

    Importing ``a.b`` runs ``a/__init__.py`` too, so parent packages are included. A chapter that runs the
    library's command line in a subprocess (``python -m mnist_helpers``, ``mnist-helpers``, ``torchrun ...
    -m mnist_helpers``) runs ``__main__.py`` and what it imports (``cli.py``), so those count as well: any
    package under ``src`` with a ``__main__.py`` has a command line.
    """
    cells = [_parse_cell(cell.source) for cell in nb.cells if cell.cell_type == "code"]
    pending = set().union(*(_imported_names(tree) for tree in cells))
    for main in src.glob("*/__main__.py"):
        if any(_runs_command_line(tree, main.parent.name) for tree in cells):
            pending.add(f"{main.parent.name}.__main__")
    seen: set[str] = set()
    while pending:
        parts = pending.pop().split(".")
        for module in (".".join(parts[:depth]) for depth in range(1, len(parts) + 1)):
            path = _module_file(module, src)
            if module in seen or path is None:
                continue
            seen.add(module)
            package = (
                module if path.name == "__init__.py" else module.rpartition(".")[0]
            )
            pending |= _imported_names(
                ast.parse(path.read_text(encoding="utf-8")), package
            )
    return sorted(
        path for module in seen if (path := _module_file(module, src)) is not None
    )


def result_files(
    nb: nbformat.NotebookNode, folder: Path, results: Path = RESULTS
) -> list[Path]:
    """The committed result files the notebook reads: every string in its code that, taken as a path from
    the notebook's ``folder``, names an existing file under ``results`` (a glob pattern names each match)."""
    found = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(_parse_cell(cell.source)):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and "\n" not in node.value
            ):
                for candidate in _named_paths(folder, node.value):
                    if candidate.is_file() and results.resolve() in candidate.parents:
                        found.add(candidate)
    return sorted(found)


def _named_paths(folder: Path, text: str) -> list[Path]:
    """The paths a string names from ``folder``: itself, or every match when it is a glob pattern
    (``"../benchmarks/results/quickstart_*.json"`` reads every class's results file)."""
    if "*" not in text:
        return [(folder / text).resolve()]
    try:
        return [path.resolve() for path in folder.glob(text)]
    except (
        ValueError,
        NotImplementedError,
    ):  # not a pattern pathlib accepts: names nothing
        return []


def result_hashes(
    nb: nbformat.NotebookNode, folder: Path, results: Path = RESULTS
) -> dict[str, str]:
    """``{"leaderboard_cpu.json": sha256 of its bytes, ...}`` for every result file the notebook reads."""
    return {
        path.relative_to(results.resolve()).as_posix(): hashlib.sha256(
            path.read_bytes()
        ).hexdigest()
        for path in result_files(nb, folder, results)
    }


def library_hashes(nb: nbformat.NotebookNode, src: Path = SRC) -> dict[str, str]:
    """``{"mnist_helpers/data.py": sha256, ...}`` for every library module the notebook runs."""
    return {
        path.relative_to(src).as_posix(): module_sha256(path)
        for path in library_modules(nb, src)
    }


def _device_description() -> str:
    """Name the hardware the run used, so a reader can put the timings in the chapters in context."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    if torch.backends.mps.is_available():
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


def _repo_root(notebook: Path) -> Path:
    """The checkout a notebook lives in (nearest folder with pyproject.toml), for the path check."""
    folder = notebook.resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return folder


def _output_texts(output: nbformat.NotebookNode) -> list[str]:
    if output.output_type == "stream":
        return [output.text]
    if output.output_type == "error":
        return list(output.traceback)
    return [
        data if isinstance(data, str) else str(data)
        for mime, data in output.get("data", {}).items()
        if mime.removeprefix(GLUE_PREFIX).startswith(_TEXT_MIME_PREFIXES)
    ]


def output_problems(
    nb: nbformat.NotebookNode, private_paths: Sequence[str]
) -> list[str]:
    """List what a reader must not see in the stored outputs: stderr (warnings) and local paths."""
    problems = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stderr":
                problems.append(
                    f"cell {index}: writes to stderr (a warning?): {output.text.strip()[:300]}"
                )
                continue
            for text in _output_texts(output):
                for path in private_paths:
                    if path in text:
                        line = next(line for line in text.splitlines() if path in line)
                        problems.append(
                            f"cell {index}: shows the local path {path!r}: {line.strip()[:300]}"
                        )
    return problems


def kernel_client(
    nb: nbformat.NotebookNode, folder: Path, timeout: float | None
) -> NotebookClient:
    """A client that runs ``nb`` in a fresh python3 kernel whose working directory is ``folder``.

    The kernel runs in the notebook's own folder, as a reader's Jupyter would, so relative paths such as
    ``../checkpoints`` work. It lives only for this run on this machine; its log (e.g. ipykernel's warning
    that local TCP is unencrypted) would only bury the problems the caller reports.
    """
    return NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": str(folder)}},
    )


def read_training_log(log: Path) -> list[dict[str, Any]]:
    """The trainings a run recorded (one JSON object per line), in order: for each, its recipe, cache
    key, ``outcome`` ("trained", "reused" or "trained (not cacheable)"), profile and ``code``, the
    fingerprint of the training code that ran or whose result was reused."""
    if not log.is_file():
        return []
    lines = log.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def training_reasons(stamp: dict[str, Any], src: Path = SRC) -> list[str]:
    """Why the trainings a stamp records, run or reused, no longer stand for the current code: each is
    fresh only under its key, whose training-code fingerprint and profile ``check`` can recompute."""
    trainings = stamp.get("training", [])
    if not trainings:
        return []
    current = training_fingerprint(src / "mnist_helpers")
    stale = [t for t in trainings if t.get("code") != current]
    reasons = []
    if stale:
        names = ", ".join(f"{t.get('recipe')} ({t.get('outcome')})" for t in stale)
        reasons.append(f"{TRAINING_CHANGED}: {names}")
    other = [t for t in trainings if t.get("profile") not in (None, "full")]
    if other:
        reasons.append(
            "a training it reused or ran was in another profile: "
            + ", ".join(f"{t.get('recipe')} ({t.get('profile')})" for t in other)
        )
    return reasons


def execute_notebook(
    path: Path, profile: Profile = "full", timeout: float | None = None
) -> list[str]:
    """Run ``path`` top to bottom in a fresh kernel; store outputs and stamp only if they are clean.

    Returns the problems found (empty when the notebook was written). The kernel runs in the
    notebook's folder, as a reader's Jupyter would, so relative paths such as ``../checkpoints`` work.
    """
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "training.jsonl"
        env = {
            **os.environ,
            PROFILE_ENV: profile,
            QUIET_ENV: "1",
            "MPLBACKEND": INLINE_BACKEND,
            TRAINING_LOG_ENV: str(log),
        }
        client = kernel_client(nb, path.resolve().parent, timeout)
        start = time.perf_counter()
        try:
            client.execute(env=env)
        except CellExecutionError as error:
            return [f"a cell raised an error:\n{error}"]
        seconds = time.perf_counter() - start
        trainings = read_training_log(log)
    home = str(Path.home())
    private_paths = [str(_repo_root(path))] + ([home] if len(home) > 1 else [])
    problems = output_problems(nb, private_paths)
    if problems:
        return problems
    import torch

    nb.metadata[STAMP_KEY] = {
        "profile": profile,
        "code_sha256": code_sha256(nb),
        "library": library_hashes(nb),
        "results": result_hashes(nb, path.resolve().parent),
        "training": trainings,
        "torch": torch.__version__,
        "device": _device_description(),
        "seconds": round(seconds, 1),
        "executed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    nbformat.write(nb, path)
    return []


def stale_reasons(
    nb: nbformat.NotebookNode,
    src: Path = SRC,
    folder: Path | None = None,
    results: Path = RESULTS,
) -> list[str]:
    """Why the stored outputs of ``nb`` cannot be published as they are (empty when fresh). ``folder`` is
    the notebook's own, from which the result files it reads are found (None: results are not checked)."""
    stamp: dict[str, Any] | None = nb.metadata.get(STAMP_KEY)
    if not stamp:
        return [
            "no execution stamp: its outputs were not stored by the execute command"
        ]
    reasons = []
    if stamp.get("profile") != "full":
        reasons.append(
            f"outputs come from the {stamp.get('profile')!r} profile, not 'full'"
        )
    if stamp.get("code_sha256") != code_sha256(nb):
        reasons.append(CODE_CHANGED)
    stored, current = stamp.get("library", {}), library_hashes(nb, src)
    changed = sorted(
        name
        for name in stored.keys() | current.keys()
        if stored.get(name) != current.get(name)
    )
    if changed:
        reasons.append(f"{LIBRARY_CHANGED}: {', '.join(changed)}")
    reasons += training_reasons(stamp, src)
    if folder is not None:
        stored, current = stamp.get("results", {}), result_hashes(nb, folder, results)
        changed = sorted(
            name
            for name in stored.keys() | current.keys()
            if stored.get(name) != current.get(name)
        )
        if changed:
            reasons.append(f"{RESULTS_CHANGED}: {', '.join(changed)}")
    return reasons


def _execute_command(paths: list[Path], profile: Profile, timeout: float | None) -> int:
    failed = 0
    for path in paths:
        print(f"executing {path} ({profile} profile) ...", flush=True)
        problems = execute_notebook(path, profile, timeout)
        if problems:
            failed += 1
            print(
                f"NOT STORED: {path}",
                *(f"  - {p}" for p in problems),
                sep="\n",
                file=sys.stderr,
            )
        else:
            stamp = nbformat.read(path, as_version=4).metadata[STAMP_KEY]
            outcomes = [t["outcome"] for t in stamp.get("training", [])]
            counts = ", ".join(
                f"{outcomes.count(o)} {o}" for o in dict.fromkeys(outcomes)
            )
            trainings = f"; trainings: {counts}" if counts else ""
            print(f"stored {path} ({stamp['seconds']:.0f} s{trainings})", flush=True)
    return 1 if failed else 0


def _check_command(paths: list[Path]) -> int:
    stale = {
        path: stale_reasons(
            nbformat.read(path, as_version=4), folder=path.resolve().parent
        )
        for path in paths
    }
    stale = {path: reasons for path, reasons in stale.items() if reasons}
    if not stale:
        print(f"{len(paths)} notebook(s) carry fresh full-profile outputs.")
        return 0
    for path, reasons in stale.items():
        print(f"{path}: " + "; ".join(reasons), file=sys.stderr)
    fix = " ".join(str(path) for path in stale)
    print(f"Fix: python -m book_tools.notebooks execute {fix}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m book_tools.notebooks",
        description="Execute chapters and store their outputs, or check that stored outputs are fresh.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    execute = commands.add_parser(
        "execute", help="run notebooks, check their outputs, stamp and store them"
    )
    execute.add_argument(
        "--profile",
        choices=["full", "smoke"],
        default="full",
        help="full (default) for the published book; smoke for a quick try",
    )
    execute.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="per-cell time limit in seconds (default: none)",
    )
    execute.add_argument("notebooks", nargs="+", type=Path, metavar="NB")
    check = commands.add_parser(
        "check", help="exit 1 if a notebook's stored outputs are missing or stale"
    )
    check.add_argument("notebooks", nargs="+", type=Path, metavar="NB")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.notebooks if not path.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    if args.command == "execute":
        return _execute_command(args.notebooks, args.profile, args.timeout)
    return _check_command(args.notebooks)


if __name__ == "__main__":
    sys.exit(main())
