"""The execute/check pair that keeps the published outputs honest."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from mnist_helpers.notebooks import (
    CODE_CHANGED,
    LIBRARY_CHANGED,
    STAMP_KEY,
    code_sha256,
    execute_notebook,
    library_sha256,
    main,
)


def _write_notebook(path: Path, *code: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A tiny chapter")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in code]
    nbformat.write(nb, path)
    return path


def _stamp_by_hand(path: Path, profile: str) -> None:
    """A stamp as `execute` would write it, without paying for a kernel."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata[STAMP_KEY] = {"profile": profile, "code_sha256": code_sha256(nb), "library_sha256": library_sha256()}
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
        "from pathlib import Path\nPath.cwd().name",
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
    assert set(stamp) == {"profile", "code_sha256", "library_sha256", "torch", "device", "seconds", "executed"}
    assert stamp["profile"] == "full"
    assert stamp["library_sha256"] == library_sha256()
    assert stamp["executed"].endswith("+00:00")


def test_fresh_stamp_passes_check(executed: Path) -> None:
    assert main(["check", str(executed)]) == 0


def test_editing_a_code_cell_fails_check(executed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "tiny.ipynb"
    copy.write_bytes(executed.read_bytes())
    _edit_cell(copy, 1, "print('changed')")
    assert main(["check", str(copy)]) == 1
    err = capsys.readouterr().err
    assert f"{copy}: {CODE_CHANGED}" in err
    assert f"python -m mnist_helpers.notebooks execute {copy}" in err


def test_editing_markdown_keeps_check_passing(executed: Path, tmp_path: Path) -> None:
    copy = tmp_path / "tiny.ipynb"
    copy.write_bytes(executed.read_bytes())
    _edit_cell(copy, 0, "# A tiny chapter, reworded")
    assert main(["check", str(copy)]) == 0


def test_notebook_without_stamp_fails_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_notebook(tmp_path / "never_run.ipynb", "1 + 1")
    assert main(["check", str(path)]) == 1
    assert "no execution stamp" in capsys.readouterr().err


def test_smoke_stamp_fails_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_notebook(tmp_path / "smoke.ipynb", "1 + 1")
    _stamp_by_hand(path, "smoke")
    assert main(["check", str(path)]) == 1
    assert "'smoke' profile" in capsys.readouterr().err


def test_check_names_every_stale_notebook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fresh = _write_notebook(tmp_path / "fresh.ipynb", "1 + 1")
    _stamp_by_hand(fresh, "full")
    old_library = _write_notebook(tmp_path / "old_library.ipynb", "2 + 2")
    nb = nbformat.read(old_library, as_version=4)
    nb.metadata[STAMP_KEY] = {"profile": "full", "code_sha256": code_sha256(nb), "library_sha256": "0" * 64}
    nbformat.write(nb, old_library)
    unstamped = _write_notebook(tmp_path / "unstamped.ipynb", "3 + 3")
    assert main(["check", str(fresh), str(old_library), str(unstamped)]) == 1
    err = capsys.readouterr().err
    assert f"{old_library}: {LIBRARY_CHANGED}" in err
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

def double(x):
    """Why: twice is what we need."""
    return 2 * x  # a comment


class Model:
    """A class docstring."""

    def forward(self, x):
        return double(x)
'''


@pytest.fixture()
def fake_library(tmp_path: Path) -> Path:
    library = tmp_path / "fake_library"
    (library / "sub").mkdir(parents=True)
    (library / "core.py").write_text(FAKE_MODULE)
    (library / "sub" / "extra.py").write_text("VALUE = 1\n")
    return library


def test_library_hash_ignores_docstrings_comments_and_formatting(fake_library: Path) -> None:
    before = library_sha256(fake_library)
    edited = (
        FAKE_MODULE.replace("Module docstring.", "A better module docstring.")
        .replace("Why: twice is what we need.", "Reworded.")
        .replace("# a comment", "# another comment")
        .replace("return 2 * x", "return (2*x)")
        .replace('"""A class docstring."""', '"""Reworded\n    over two lines."""')
    )
    (fake_library / "core.py").write_text(edited)
    assert library_sha256(fake_library) == before


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [("core.py", "2 * x", "3 * x"), ("sub/extra.py", "VALUE = 1", "VALUE = 2")],
)
def test_library_hash_changes_with_code(fake_library: Path, file: str, old: str, new: str) -> None:
    before = library_sha256(fake_library)
    module = fake_library / file
    module.write_text(module.read_text().replace(old, new))
    assert library_sha256(fake_library) != before


def test_library_hash_changes_with_a_new_module(fake_library: Path) -> None:
    before = library_sha256(fake_library)
    (fake_library / "new.py").write_text("")
    assert library_sha256(fake_library) != before
