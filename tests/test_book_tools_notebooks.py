"""The execute/check pair that keeps the published outputs honest, and per-module freshness."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from book_tools.notebooks import (
    CODE_CHANGED,
    LIBRARY_CHANGED,
    RESULTS_CHANGED,
    STAMP_KEY,
    TRAINING_CHANGED,
    code_sha256,
    execute_notebook,
    library_hashes,
    library_modules,
    main,
    result_hashes,
    stale_reasons,
)
from mnist_helpers.fingerprint import training_fingerprint


def _write_notebook(path: Path, *code: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_markdown_cell("# A tiny chapter")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in code]
    nbformat.write(nb, path)
    return path


def _stamp_by_hand(path: Path, profile: str) -> None:
    """A stamp as `execute` would write it, without paying for a kernel."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata[STAMP_KEY] = {
        "profile": profile,
        "code_sha256": code_sha256(nb),
        "library": library_hashes(nb),
    }
    nbformat.write(nb, path)


def _edit_cell(path: Path, index: int, source: str) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.cells[index].source = source
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = _write_notebook(
        tmp_path_factory.mktemp("book") / "tiny.ipynb",
        "import os\nprint(os.environ['MNIST_BOOK_PROFILE'], os.environ['MNIST_BOOK_QUIET'])",
        "from pathlib import Path\nfrom mnist_helpers.glue import glue\nPath.cwd().name",
    )
    assert execute_notebook(path) == []
    return path


def test_execute_stores_outputs_in_the_notebooks_folder(executed: Path) -> None:
    nb = nbformat.read(executed, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == [1, 2]
    assert code[0].outputs[0].text == "full 1\n"
    assert code[1].outputs[0].data["text/plain"] == repr(executed.parent.name)


def test_execute_stamps_the_run(executed: Path) -> None:
    stamp = nbformat.read(executed, as_version=4).metadata[STAMP_KEY]
    assert set(stamp) == {
        "profile",
        "code_sha256",
        "library",
        "results",
        "training",
        "torch",
        "device",
        "seconds",
        "executed",
    }
    assert stamp["results"] == {}  # its code names no benchmark results
    assert stamp["training"] == []  # it trains nothing
    assert stamp["profile"] == "full"
    assert set(stamp["library"]) == {
        "mnist_helpers/__init__.py",
        "mnist_helpers/glue.py",
    }
    assert stamp["executed"].endswith("+00:00")


def test_fresh_stamp_passes_check(executed: Path) -> None:
    assert main(["check", str(executed)]) == 0


def test_editing_a_code_cell_fails_check(
    executed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "tiny.ipynb"
    copy.write_bytes(executed.read_bytes())
    _edit_cell(copy, 1, "print('changed')")
    assert main(["check", str(copy)]) == 1
    err = capsys.readouterr().err
    assert f"{copy}: {CODE_CHANGED}" in err
    assert f"python -m book_tools.notebooks execute {copy}" in err


def test_editing_markdown_keeps_check_passing(executed: Path, tmp_path: Path) -> None:
    copy = tmp_path / "tiny.ipynb"
    copy.write_bytes(executed.read_bytes())
    _edit_cell(copy, 0, "# A tiny chapter, reworded")
    assert main(["check", str(copy)]) == 0


def test_notebook_without_stamp_fails_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_notebook(tmp_path / "never_run.ipynb", "1 + 1")
    assert main(["check", str(path)]) == 1
    assert "no execution stamp" in capsys.readouterr().err


def test_smoke_stamp_fails_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_notebook(tmp_path / "smoke.ipynb", "1 + 1")
    _stamp_by_hand(path, "smoke")
    assert main(["check", str(path)]) == 1
    assert "'smoke' profile" in capsys.readouterr().err


_TRAINS_TWICE = """
import sys
from dataclasses import replace
sys.path.insert(0, {tests!r})
from conftest import make_toy_split
from mnist_helpers.data import MNISTSplits
from mnist_helpers.recipes import RECIPES
from mnist_helpers.training_cache import fit_recipe_cached

toy = replace(RECIPES["mlp"], model_config={{"hidden": (8,)}}, batch_size=32, epochs=1)
splits = MNISTSplits(make_toy_split(64, 0), make_toy_split(32, 1), make_toy_split(32, 2))
for _ in range(2):
    fit_recipe_cached(toy, toy.build_model(), splits, device="cpu")
"""


def test_the_stamp_says_which_trainings_ran_and_which_were_reused(
    tmp_path: Path,
) -> None:
    code = _TRAINS_TWICE.format(tests=str(Path(__file__).parent))
    path = _write_notebook(tmp_path / "trains.ipynb", code)
    assert execute_notebook(path) == []
    nb = nbformat.read(path, as_version=4)
    trainings = nb.metadata[STAMP_KEY]["training"]
    assert [t["outcome"] for t in trainings] == ["trained", "reused"]
    assert trainings[0]["key"] == trainings[1]["key"]
    assert (tmp_path / "checkpoints" / "full" / "cache").is_dir()
    assert stale_reasons(nb) == []


def test_check_calls_a_training_fresh_only_under_its_code_fingerprint(
    tmp_path: Path,
) -> None:
    path = _write_notebook(tmp_path / "chapter.ipynb", "1 + 1")
    _stamp_by_hand(path, "full")
    nb = nbformat.read(path, as_version=4)
    reused = {"recipe": "cnn", "outcome": "reused", "profile": "full"}
    nb.metadata[STAMP_KEY]["training"] = [{**reused, "code": training_fingerprint()}]
    assert stale_reasons(nb) == []
    nb.metadata[STAMP_KEY]["training"] = [{**reused, "code": "0" * 12}]
    assert stale_reasons(nb) == [f"{TRAINING_CHANGED}: cnn (reused)"]
    nb.metadata[STAMP_KEY]["training"] = [
        {**reused, "code": training_fingerprint(), "profile": "smoke"}
    ]
    assert "another profile: cnn (smoke)" in stale_reasons(nb)[0]


def test_check_names_every_stale_notebook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh = _write_notebook(tmp_path / "fresh.ipynb", "1 + 1")
    _stamp_by_hand(fresh, "full")
    old_library = _write_notebook(
        tmp_path / "old_library.ipynb", "import mnist_helpers.glue"
    )
    nb = nbformat.read(old_library, as_version=4)
    stale = {**library_hashes(nb), "mnist_helpers/glue.py": "0" * 64}
    nb.metadata[STAMP_KEY] = {
        "profile": "full",
        "code_sha256": code_sha256(nb),
        "library": stale,
    }
    nbformat.write(nb, old_library)
    unstamped = _write_notebook(tmp_path / "unstamped.ipynb", "3 + 3")
    assert main(["check", str(fresh), str(old_library), str(unstamped)]) == 1
    err = capsys.readouterr().err
    assert f"{old_library}: {LIBRARY_CHANGED}: mnist_helpers/glue.py" in err
    assert f"{unstamped}: no execution stamp" in err
    assert f"{fresh}:" not in err


def test_execute_refuses_warnings_and_local_paths(tmp_path: Path) -> None:
    path = _write_notebook(
        tmp_path / "leaky.ipynb",
        "import warnings\nwarnings.warn('a reader must not see this')",
        "import os\nprint(os.getcwd())",
    )
    before = path.read_bytes()
    problems = execute_notebook(path, profile="smoke")
    assert len(problems) == 2
    assert "stderr" in problems[0] and "a reader must not see this" in problems[0]
    assert "local path" in problems[1]
    assert path.read_bytes() == before  # nothing stored


FAKE_MODULE = '''"""Module docstring."""

from . import helpers


def double(x):
    """Why: twice is what we need."""
    return helpers.scale(x)  # a comment


class Model:
    """A class docstring."""

    def forward(self, x):
        return 2 * double(x)
'''


@pytest.fixture()
def fake_src(tmp_path: Path) -> Path:
    """A src/ folder with a package ``lib``: ``models`` imports ``helpers``; nothing imports ``cli``."""
    package = tmp_path / "src" / "lib"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(FAKE_MODULE)
    (package / "helpers.py").write_text("def scale(x):\n    return 2 * x\n")
    (package / "cli.py").write_text("from lib.models import Model\nVERSION = 1\n")
    return tmp_path / "src"


def _stamped_chapter(tmp_path: Path, src: Path, *code: str) -> nbformat.NotebookNode:
    nb = nbformat.read(_write_notebook(tmp_path / "chapter.ipynb", *code), as_version=4)
    nb.metadata[STAMP_KEY] = {
        "profile": "full",
        "code_sha256": code_sha256(nb),
        "library": library_hashes(nb, src),
    }
    return nb


def _edit(src: Path, module: str, old: str, new: str) -> None:
    path = src / "lib" / module
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))


def test_a_chapter_depends_on_what_it_imports_directly_and_transitively(
    fake_src: Path, tmp_path: Path
) -> None:
    nb = _stamped_chapter(
        tmp_path,
        fake_src,
        "import numpy\n%matplotlib inline",
        "from lib.models import Model",
    )
    assert [
        p.relative_to(fake_src).as_posix() for p in library_modules(nb, fake_src)
    ] == ["lib/__init__.py", "lib/helpers.py", "lib/models.py"]


def test_editing_a_module_no_chapter_imports_keeps_chapters_fresh(
    fake_src: Path, tmp_path: Path
) -> None:
    nb = _stamped_chapter(tmp_path, fake_src, "from lib import models")
    _edit(fake_src, "cli.py", "VERSION = 1", "VERSION = 2")
    assert stale_reasons(nb, fake_src) == []


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [("models.py", "2 * double", "3 * double"), ("helpers.py", "2 * x", "3 * x")],
)
def test_editing_an_imported_module_makes_the_chapter_stale_and_names_it(
    fake_src: Path, tmp_path: Path, module: str, old: str, new: str
) -> None:
    nb = _stamped_chapter(tmp_path, fake_src, "from lib.models import Model")
    _edit(fake_src, module, old, new)
    assert stale_reasons(nb, fake_src) == [f"{LIBRARY_CHANGED}: lib/{module}"]


def test_docstrings_comments_and_formatting_change_nothing(
    fake_src: Path, tmp_path: Path
) -> None:
    nb = _stamped_chapter(tmp_path, fake_src, "import lib.models")
    edited = (
        FAKE_MODULE.replace("Module docstring.", "A better module docstring.")
        .replace("Why: twice is what we need.", "Reworded.")
        .replace("# a comment", "# another comment")
        .replace("return 2 * double(x)", "return (2*double(x))")
        .replace('"""A class docstring."""', '"""Reworded\n    over two lines."""')
    )
    (fake_src / "lib" / "models.py").write_text(edited)
    assert stale_reasons(nb, fake_src) == []


def test_the_books_chapters_depend_on_the_command_line_exactly_when_they_run_it() -> (
    None
):
    book = Path(__file__).resolve().parents[1] / "book"
    for chapter in sorted(book.glob("[01][0-9]_*.ipynb")):
        nb = nbformat.read(chapter, as_version=4)
        modules = library_hashes(nb)
        launch = re.compile(r'"-m",\s*"mnist_helpers"|-m mnist_helpers|mnist-helpers ')
        runs_cli = any(
            launch.search(cell.source) for cell in nb.cells if cell.cell_type == "code"
        )
        assert ("mnist_helpers/cli.py" in modules) == runs_cli, chapter.name
        if not chapter.name.startswith(
            "00_"
        ):  # the quickstart runs without the library
            assert "mnist_helpers/glue.py" in modules, (
                chapter.name
            )  # every chapter glues its numbers


@pytest.mark.parametrize(
    "launch",
    [
        'subprocess.run([sys.executable, "-m", "lib", "train"])',
        "!lib train --epochs 1",
        "!torchrun --nproc_per_node 2 -m lib train",
        'cmd = "python -m lib export --out model.onnx"',
    ],
)
def test_a_chapter_that_runs_the_command_line_goes_stale_when_the_cli_changes(
    fake_src: Path, tmp_path: Path, launch: str
) -> None:
    (fake_src / "lib" / "__main__.py").write_text("from lib.cli import VERSION\n")
    runs_cli = _stamped_chapter(tmp_path, fake_src, "import subprocess, sys", launch)
    imports_models = _stamped_chapter(
        tmp_path, fake_src, "from lib.models import Model"
    )
    _edit(
        fake_src,
        "cli.py",
        "VERSION = 1",
        "VERSION = 1\n\n\ndef appended():\n    return 1",
    )
    assert stale_reasons(runs_cli, fake_src) == [f"{LIBRARY_CHANGED}: lib/cli.py"]
    assert stale_reasons(imports_models, fake_src) == []
    _edit(
        fake_src,
        "models.py",
        "class Model",
        "def appended():\n    return 1\n\n\nclass Model",
    )
    assert stale_reasons(imports_models, fake_src) == [
        f"{LIBRARY_CHANGED}: lib/models.py"
    ]
    # the command line imports the models too, so the chapter that runs it is stale for both
    assert stale_reasons(runs_cli, fake_src) == [
        f"{LIBRARY_CHANGED}: lib/cli.py, lib/models.py"
    ]


def test_code_hash_ignores_comments_and_formatting_but_not_code(tmp_path: Path) -> None:
    path = _write_notebook(tmp_path / "a.ipynb", "x = f(1, 2)\nprint(x)")
    original = code_sha256(nbformat.read(path, as_version=4))

    _edit_cell(path, 1, "# the sum\nx = f(1,\n      2)  # two numbers\n\nprint( x )")
    assert code_sha256(nbformat.read(path, as_version=4)) == original

    _edit_cell(path, 1, "x = f(1, 3)\nprint(x)")
    assert code_sha256(nbformat.read(path, as_version=4)) != original


def test_new_benchmark_results_make_the_chapter_that_reads_them_stale(
    tmp_path: Path,
) -> None:
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "board.json").write_text('{"runs": [1]}')
    (results / "other.json").write_text("{}")
    book = tmp_path / "book"
    book.mkdir()
    nb = nbformat.read(
        _write_notebook(
            book / "chapter.ipynb", 'path = "../benchmarks/results/board.json"'
        ),
        as_version=4,
    )
    nb.metadata[STAMP_KEY] = {
        "profile": "full",
        "code_sha256": code_sha256(nb),
        "library": library_hashes(nb),
        "results": result_hashes(nb, book, results),
    }
    assert list(nb.metadata[STAMP_KEY]["results"]) == [
        "board.json"
    ]  # only the file its code names
    (results / "other.json").write_text('{"changed": true}')
    assert stale_reasons(nb, folder=book, results=results) == []
    (results / "board.json").write_text('{"runs": [2]}')
    assert stale_reasons(nb, folder=book, results=results) == [
        f"{RESULTS_CHANGED}: board.json"
    ]


def test_a_glob_pattern_names_every_results_file_it_matches(tmp_path: Path) -> None:
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    for name in ("quick_avx2.json", "quick_amx.json", "other.json"):
        (results / name).write_text("{}")
    book = tmp_path / "book"
    book.mkdir()
    nb = nbformat.read(
        _write_notebook(book / "c.ipynb", 'glob("../benchmarks/results/quick_*.json")'),
        as_version=4,
    )
    assert list(result_hashes(nb, book, results)) == [
        "quick_amx.json",
        "quick_avx2.json",
    ]
