"""The book's frame: table of contents, configuration, chapter bootstrap cells, CI command.

These pieces live in different files that must agree with each other; a mismatch (a chapter missing
from disk, a Colab cell installing from another repository, CI running a different command than the
README promises) would only show up on the published site or on a reader's machine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from mnist_helpers.data import MNIST_FILES

REPO = Path(__file__).resolve().parents[1]
TEST_COMMAND_MARKER = "<!-- test-command:"


def _yaml(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / name).read_text(encoding="utf-8"))


CONFIG = _yaml("_config.yml")
TOC = _yaml("_toc.yml")
PARTS: list[dict[str, Any]] = TOC.get("parts", [TOC])
ENTRIES = [chapter["file"] for part in PARTS for chapter in part["chapters"]]
CHAPTERS = [entry for entry in ENTRIES if Path(entry).name[:2].isdigit()]  # the numbered notebooks
# The quickstart imports only torch, torchvision and matplotlib, so it runs anywhere with no install.
LIBRARY_CHAPTERS = [chapter for chapter in CHAPTERS if not Path(chapter).name.startswith("00_")]


def _bootstrap(repository_url: str) -> str:
    """The first code cell every chapter must start with, installing the library from our repository.

    Short, because Jupyter and Colab show it (the web page removes it): on Colab it installs the library;
    anywhere the library is missing it stops with the one command that fixes it.
    """
    return (
        "# Colab only: install the book's helper library (a clone has it from README.md's setup).\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        f'REPOSITORY = "{repository_url}"  # as in _config.yml\n'
        'if "google.colab" in sys.modules:\n'
        '    pip = [sys.executable, "-m", "pip", "install", "-q", f"git+{REPOSITORY}.git"]\n'
        "    subprocess.run(pip, check=True)\n"
        "try:\n"
        "    import mnist_helpers  # noqa: F401\n"
        "except ModuleNotFoundError:\n"
        "    raise ModuleNotFoundError(\n"
        "        \"this chapter needs the book's helper library, mnist_helpers.\\n\"\n"
        "        \"Fix: run `pip install -e .` in a clone of the book's repository.\"\n"
        "    ) from None"
    )


def _read_chapter(chapter: str) -> nbformat.NotebookNode:
    path = REPO / f"{chapter}.ipynb"
    assert path.is_file(), f"{chapter} is in _toc.yml but {path.name} is not in book/"
    return nbformat.read(path, as_version=4)


def _readme_test_command() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    after_marker = readme.split(TEST_COMMAND_MARKER, 1)[1]
    block = re.search(r"```bash\n(.*?)\n```", after_marker, re.DOTALL)
    assert block, "README.md: no ```bash block after the test-command marker"
    lines = block.group(1).splitlines()
    assert len(lines) == 1, "the README's test command must be one line, so CI can run it verbatim"
    return lines[0]


def test_toc_numbers_agree_with_the_file_names() -> None:
    """Jupyter Book numbers the chapters of numbered parts 1, 2, 3, ... across parts: those must be the
    file names' numbers. A part with a gap in its numbers (a chapter not yet written) must be unnumbered,
    or the sidebar would say "10" for the file, and the prose's, chapter 12."""
    assert TOC["format"] == "jb-book"
    assert TOC["root"] == "book/intro"
    numbered = [chapter["file"] for part in PARTS if part.get("numbered") for chapter in part["chapters"]]
    assert [int(Path(c).name[:2]) for c in numbered] == list(range(1, len(numbered) + 1))
    unnumbered = [entry for entry in ENTRIES if entry not in numbered]
    assert all(not Path(entry).name[:2].isdigit() or Path(entry).name.startswith("00_") for entry in unnumbered)
    numbers = [int(Path(c).name[:2]) for c in CHAPTERS]
    assert numbers == sorted(set(numbers)), "chapters must appear in the order of their numbers"


@pytest.mark.parametrize("doc", ["book/intro", *ENTRIES])
def test_every_toc_entry_exists(doc: str) -> None:
    assert (REPO / f"{doc}.ipynb").is_file() or (REPO / f"{doc}.md").is_file(), f"{doc} is in _toc.yml but not on disk"


@pytest.mark.parametrize("chapter", LIBRARY_CHAPTERS)
def test_first_code_cell_is_the_colab_bootstrap(chapter: str) -> None:
    nb = _read_chapter(chapter)
    first_code = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert first_code.source.strip() == _bootstrap(CONFIG["repository"]["url"])
    assert "remove-cell" in first_code.metadata.get("tags", [])


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_title_leaves_numbering_to_the_toc(chapter: str) -> None:
    """With ``numbered: true`` the site prefixes "3."; a title "# 03 ..." would read "3. 03 ..."."""
    nb = _read_chapter(chapter)
    title = nb.cells[0].source.splitlines()[0]
    assert nb.cells[0].cell_type == "markdown" and title.startswith("# ")
    assert not re.match(r"# (Chapter )?\d", title), f"{chapter}: {title!r} repeats the chapter number"


def test_config_serves_stored_outputs_from_the_repo_root() -> None:
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    assert CONFIG["repository"]["path_to_book"] == ""
    assert CONFIG["only_build_toc_files"] is True
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert _readme_test_command() in ci_lines


def test_ci_script_is_executable_and_strict() -> None:
    script = REPO / ".ci" / "run"
    assert script.stat().st_mode & 0o111
    assert "set -euo pipefail" in script.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["README.md", ".ci/run"])
def test_documented_checksums_match_the_library(name: str) -> None:
    text = (REPO / name).read_text(encoding="utf-8")
    for file, sha256 in MNIST_FILES.items():
        assert f"{sha256}  {file}" in text


def test_bootstrap_without_the_library_says_what_to_run() -> None:
    """A chapter downloaded on its own, where mnist_helpers is not installed, stops with the fix, not a bare error."""
    import subprocess
    import sys

    cell = _bootstrap(CONFIG["repository"]["url"])
    hide_library = "import sys\nsys.modules['mnist_helpers'] = None  # as if it were not installed\n"
    result = subprocess.run([sys.executable, "-c", hide_library + cell], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    last_lines = result.stderr.strip().splitlines()[-2:]
    assert "ModuleNotFoundError: this chapter needs the book's helper library" in last_lines[0]
    assert "pip install -e ." in last_lines[1]
