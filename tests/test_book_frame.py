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
CHAPTERS = [
    entry for entry in ENTRIES if Path(entry).name[:2].isdigit()
]  # the numbered notebooks
# The quickstart imports only torch, torchvision and matplotlib, so it runs anywhere with no install.
LIBRARY_CHAPTERS = [
    chapter for chapter in CHAPTERS if not Path(chapter).name.startswith("00_")
]


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
        '        "this chapter needs the book\'s helper library, mnist_helpers.\\n"\n'
        '        "Fix: run `pip install -e .` in a clone of the book\'s repository."\n'
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
    assert len(lines) == 1, (
        "the README's test command must be one line, so CI can run it verbatim"
    )
    return lines[0]


def test_toc_numbers_agree_with_the_file_names() -> None:
    """Jupyter Book numbers the chapters of numbered parts 1, 2, 3, ... across parts: those must be the
    file names' numbers. A part with a gap in its numbers (a chapter not yet written) must be unnumbered,
    or the sidebar would say "10" for the file, and the prose's, chapter 12."""
    assert TOC["format"] == "jb-book"
    assert TOC["root"] == "book/intro"
    numbered = [
        chapter["file"]
        for part in PARTS
        if part.get("numbered")
        for chapter in part["chapters"]
    ]
    assert [int(Path(c).name[:2]) for c in numbered] == list(
        range(1, len(numbered) + 1)
    )
    unnumbered = [entry for entry in ENTRIES if entry not in numbered]
    assert all(
        not Path(entry).name[:2].isdigit() or Path(entry).name.startswith("00_")
        for entry in unnumbered
    )
    numbers = [int(Path(c).name[:2]) for c in CHAPTERS]
    assert numbers == sorted(set(numbers)), (
        "chapters must appear in the order of their numbers"
    )


@pytest.mark.parametrize("doc", ["book/intro", *ENTRIES])
def test_every_toc_entry_exists(doc: str) -> None:
    assert (REPO / f"{doc}.ipynb").is_file() or (REPO / f"{doc}.md").is_file(), (
        f"{doc} is in _toc.yml but not on disk"
    )


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
    assert not re.match(r"# (Chapter )?\d", title), (
        f"{chapter}: {title!r} repeats the chapter number"
    )


def test_config_serves_stored_outputs_from_the_repo_root() -> None:
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    assert CONFIG["repository"]["path_to_book"] == ""
    assert CONFIG["only_build_toc_files"] is True
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    ]
    assert _readme_test_command() in ci_lines


def test_make_check_runs_the_chain_the_readme_describes() -> None:
    """The README documents the checks `make check` runs; the Makefile's check target must be that chain."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Test\n", 1)[1]
    chain = re.search(r"```text\n(.*?)\n```", section, re.DOTALL)
    assert chain, "README.md: no ```text block with the chain in its Test section"
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ncheck: setup\n", 1)[1].splitlines()[0].strip()
    assert recipe == chain.group(1).strip()


def test_ci_script_is_executable_and_strict() -> None:
    script = REPO / ".ci" / "run"
    assert script.stat().st_mode & 0o111
    assert "set -euo pipefail" in script.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["README.md", ".ci/setup"])
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
    result = subprocess.run(
        [sys.executable, "-c", hide_library + cell],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    last_lines = result.stderr.strip().splitlines()[-2:]
    assert (
        "ModuleNotFoundError: this chapter needs the book's helper library"
        in last_lines[0]
    )
    assert "pip install -e ." in last_lines[1]


# ---------------------------------------------------------------------------------------------
# The chapter skeleton (issue "a beginner's path") and clean pages (issue "clean pages and true
# sentences"): every numbered chapter, book/NN_*.ipynb for NN = 00..13. A chapter not on disk yet is
# skipped here (test_every_toc_entry_exists catches one the ToC lists).

SKELETON = [
    "What you will learn",
    "The idea",
    "The code",
    "Summary",
    "Pitfalls",
    "Exercises",
]
CHAPTER_NUMBERS = [f"{number:02d}" for number in range(14)]
_FENCE_LINE = re.compile(r"^\s*(`{3,}|:{3,})")
_SOLUTION = re.compile(
    r"^\s*(`{3,}|:{3,})\{admonition\}\s+Solution\s+(\d+)\s*$", re.MULTILINE
)
_EXERCISE = re.compile(r"^(\d+)\. \*\*", re.MULTILINE)
_CODE_SOLUTION = re.compile(r"#\s*Solution\s+(\d+)\b")
_PLUMBING_CALL = re.compile(r"(?<![\w.])glue(?:_all)?\(")
# Variables named after a tutorial's file number (b000, model_001, history_001_slow, recipe_000).
_TUTORIAL_NUMBER_NAME = re.compile(
    r"\b(b|model|history|net|run|recipe)_?0\d\d(?![0-9])"
)


def _chapter_path(number: str) -> Path:
    found = sorted((REPO / "book").glob(f"{number}_*.ipynb"))
    if not found:
        pytest.skip(f"no book/{number}_*.ipynb on disk yet")
    assert len(found) == 1, f"two chapters numbered {number}: {[p.name for p in found]}"
    return found[0]


def _markdown_lines(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(cell index, line) for every markdown line outside code fences (``` blocks that are not directives)."""
    lines: list[tuple[int, str]] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        fences: list[
            tuple[str, bool]
        ] = []  # open ``` fences, innermost last: (marker, holds code)
        for line in cell.source.splitlines():
            fence = re.match(r"^\s*(`{3,})(.*)$", line)
            if fence:
                marker, info = fence.group(1), fence.group(2).strip()
                if fences and not info and len(marker) >= len(fences[-1][0]):
                    if not fences.pop()[1]:
                        lines.append((index, line))  # the end of a directive
                    continue
                if fences and fences[-1][1]:
                    continue
                fences.append((marker, not info.startswith("{")))
                if info.startswith("{"):
                    lines.append((index, line))
                continue
            if not (fences and fences[-1][1]):
                lines.append((index, line))
    return lines


def _headings(nb: nbformat.NotebookNode) -> list[str]:
    return [
        line[3:].strip() for _, line in _markdown_lines(nb) if line.startswith("## ")
    ]


def _section(nb: nbformat.NotebookNode, heading: str) -> tuple[str, list[int]]:
    """The markdown of a `## heading` section up to the next `##` heading, and the cells it spans."""
    text: list[str] = []
    cells: list[int] = []
    inside = False
    for index, line in _markdown_lines(nb):
        if line.startswith("## "):
            inside = line[3:].strip() == heading
            if inside:
                cells.append(index)
            continue
        if inside:
            text.append(line)
            if index not in cells:
                cells.append(index)
    if inside or cells:  # code cells of a section sit between its markdown cells
        last = len(nb.cells) if inside else max(cells) + 1
        cells = list(range(cells[0], last))
    return "\n".join(text), cells


@pytest.mark.parametrize("number", CHAPTER_NUMBERS)
def test_chapter_has_the_skeleton_headings_in_order(number: str) -> None:
    path = _chapter_path(number)
    headings = _headings(nbformat.read(path, as_version=4))
    missing = [h for h in SKELETON if h not in headings]
    assert not missing, f"{path.name}: missing ## headings {missing} (has {headings})"
    positions = [headings.index(h) for h in SKELETON]
    assert positions == sorted(positions), (
        f"{path.name}: ## headings out of order: {headings}"
    )
    for heading in SKELETON:
        assert headings.count(heading) == 1, (
            f"{path.name}: '## {heading}' appears more than once"
        )
    code, summary = headings.index("The code"), headings.index("Summary")
    strays = [
        h
        for i, h in enumerate(headings)
        if h not in SKELETON and not code < i < summary
    ]
    assert not strays, (
        f"{path.name}: ## sections {strays} are allowed only between The code and Summary"
    )


@pytest.mark.parametrize("number", CHAPTER_NUMBERS)
def test_every_exercise_has_a_collapsed_solution(number: str) -> None:
    path = _chapter_path(number)
    nb = nbformat.read(path, as_version=4)
    text, _ = _section(nb, "Exercises")
    exercises = [int(n) for n in _EXERCISE.findall(text)]
    solutions = [int(m.group(2)) for m in _SOLUTION.finditer(text)]
    assert len(exercises) >= 2, (
        f"{path.name}: {len(exercises)} exercises ('N. **Title.**' items); need >= 2"
    )
    assert exercises == list(range(1, len(exercises) + 1)), (
        f"{path.name}: exercises numbered {exercises}"
    )
    assert solutions == exercises, (
        f"{path.name}: exercises {exercises} but 'Solution N' admonitions {solutions}"
    )
    for match in _SOLUTION.finditer(text):
        options = text[match.end() :].lstrip("\n").splitlines()[:3]
        assert any(line.strip() == ":class: dropdown" for line in options), (
            f"{path.name}: Solution {match.group(2)} is not collapsed (add ':class: dropdown')"
        )


def _solution_bodies(markdown: str) -> dict[int, str]:
    """The body of each `Solution N` admonition, up to its closing fence (nested fences included)."""
    bodies: dict[int, str] = {}
    lines = markdown.splitlines()
    for start, line in enumerate(lines):
        match = _SOLUTION.match(line)
        if not match:
            continue
        marker = match.group(1)
        body: list[str] = []
        for inner in lines[start + 1 :]:
            if inner.strip() == marker or (
                inner.strip()
                and set(inner.strip()) == {marker[0]}
                and len(inner.strip()) >= len(marker)
                and marker[0] == ":"
            ):
                break
            body.append(inner)
        bodies[int(match.group(2))] = "\n".join(body)
    return bodies


@pytest.mark.parametrize("number", CHAPTER_NUMBERS)
def test_code_solutions_are_hidden_cells_not_markdown_fences(number: str) -> None:
    path = _chapter_path(number)
    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(
        cell.source for cell in nb.cells if cell.cell_type == "markdown"
    )
    for n, body in _solution_bodies(markdown).items():
        assert not re.search(
            r"^\s*```+\s*(python|py|ipython3?)\b|```\{code", body, re.MULTILINE
        ), (
            f"{path.name}: Solution {n} has code in a markdown fence; make it a hide-cell code cell "
            f"right after the admonition, first line '# Solution {n}'"
        )
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        first = cell.source.strip().splitlines()[0]
        match = _CODE_SOLUTION.fullmatch(first.strip())
        if not match:
            continue
        n = match.group(1)
        assert "hide-cell" in cell.metadata.get("tags", []), (
            f"{path.name}: '# Solution {n}' is not tagged hide-cell"
        )
        before = nb.cells[index - 1]
        assert before.cell_type == "markdown" and re.search(
            rf"\{{admonition\}}\s+Solution\s+{n}\b", before.source
        ), (
            f"{path.name}: the '# Solution {n}' cell must come right after the Solution {n} admonition"
        )


@pytest.mark.parametrize("number", CHAPTER_NUMBERS)
def test_summary_is_three_to_six_sentences_without_numbers_glued(number: str) -> None:
    from book_tools.prose import prose_units, sentences_of

    path = _chapter_path(number)
    text, _ = _section(nbformat.read(path, as_version=4), "Summary")
    assert "{glue" not in text, (
        f"{path.name}: the Summary quotes a glued number; it holds concepts only"
    )
    sentences = [s for unit in prose_units(text) for s in sentences_of(unit)]
    assert 3 <= len(sentences) <= 6, (
        f"{path.name}: the Summary has {len(sentences)} sentences; want 3-6"
    )


@pytest.mark.parametrize("number", CHAPTER_NUMBERS)
def test_glue_calls_live_in_removed_cells(number: str) -> None:
    path = _chapter_path(number)
    nb = nbformat.read(path, as_version=4)
    shown = [
        cell.source.strip().splitlines()[0][:80]
        for cell in nb.cells
        if cell.cell_type == "code"
        and _PLUMBING_CALL.search(cell.source)
        and "remove-cell" not in cell.metadata.get("tags", [])
    ]
    assert not shown, (
        f"{path.name}: code cells call glue()/glue_all() but are not tagged remove-cell: {shown}"
    )


_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")


def accidental_list_starts(lines: list[tuple[int, str]]) -> list[str]:
    """Lines where a wrapped sentence put "1. " at the start of a line, inside a paragraph.

    Markdown then starts a numbered list there: "... the whole stroke of a" / "1. For the mistakes" renders
    as a broken sentence and a list. A list the text means to start follows a blank line or a colon.
    """
    found = []
    for (cell, previous), (same_cell, line) in zip(lines, lines[1:]):
        if cell != same_cell or not re.match(r"^1[.)]\s", line):
            continue
        if previous.strip() and not _LIST_ITEM.match(previous):
            if not previous.rstrip().endswith(":"):
                found.append(f"cell {cell}: {previous.strip()[-40:]!r} / {line[:40]!r}")
    return found


@pytest.mark.parametrize("number", CHAPTER_NUMBERS)
def test_no_sentence_wrapped_into_a_numbered_list(number: str) -> None:
    path = _chapter_path(number)
    found = accidental_list_starts(_markdown_lines(nbformat.read(path, as_version=4)))
    assert not found, (
        f"{path.name}: a line starting with '1. ' inside a paragraph: {found}"
    )


def test_accidental_list_detector() -> None:
    assert accidental_list_starts(
        [(0, "the whole stroke of a"), (0, "1. For the rest")]
    )
    assert not accidental_list_starts([(0, "Three ways:"), (0, "1. one process")])
    assert not accidental_list_starts([(0, ""), (0, "1. a list")])
    assert not accidental_list_starts([(0, "- item"), (0, "1. nested")])
    assert not accidental_list_starts([(0, "end of cell"), (1, "1. next cell")])


@pytest.mark.parametrize("number", CHAPTER_NUMBERS)
def test_no_names_after_tutorial_file_numbers(number: str) -> None:
    path = _chapter_path(number)
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    inline = "\n".join(
        snippet
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for snippet in re.findall(r"`([^`\n]+)`", cell.source)
    )
    names = sorted(
        {m.group(0) for m in _TUTORIAL_NUMBER_NAME.finditer(code + "\n" + inline)}
    )
    assert not names, (
        f"{path.name}: names after tutorial file numbers {names}; name them for what they hold"
    )


def test_the_frame_detectors_on_a_small_notebook() -> None:
    """The helpers above on a notebook built in memory: what they must find and leave alone."""
    md = nbformat.v4.new_markdown_cell
    nb = nbformat.v4.new_notebook(
        cells=[
            md("# Title\n\n## What you will learn\n\n```python\n## not a heading\n```"),
            md("## The code\n\ntext\n\n## Results\n\n## Summary\n\nOne. Two. Three."),
            md(
                "## Exercises\n\n1. **First.** Why?\n\n:::{admonition} Solution 1\n:class: dropdown\n"
                "Because.\n```python\nx = 1\n```\n:::"
            ),
            nbformat.v4.new_code_cell(
                "# Solution 1\nx = 1", metadata={"tags": ["hide-cell"]}
            ),
        ]
    )
    assert _headings(nb) == [
        "What you will learn",
        "The code",
        "Results",
        "Summary",
        "Exercises",
    ]
    summary, _ = _section(nb, "Summary")
    assert summary.strip() == "One. Two. Three."
    exercises, cells = _section(nb, "Exercises")
    assert _EXERCISE.findall(exercises) == ["1"] and cells == [2, 3]
    assert "```python" in _solution_bodies(nb.cells[2].source)[1]
    assert _solution_bodies(
        ":::{admonition} Solution 2\n:class: dropdown\nWords.\n:::\nAfter."
    ) == {2: ":class: dropdown\nWords."}
    assert _PLUMBING_CALL.search('glue_all("ch04", a=1)') and _PLUMBING_CALL.search(
        'glue("k", v)'
    )
    assert not _PLUMBING_CALL.search("from mnist_helpers.glue import glue_all")
    found = {
        m.group(0)
        for m in _TUTORIAL_NUMBER_NAME.finditer(
            "b000 model_001 history_001_slow run_0123 b0001"
        )
    }
    assert found == {"b000", "model_001", "history_001"}


# ---------------------------------------------------------------------------------------------
# The glossary: book/glossary.md holds one or more markdown tables whose header row has a column
# "简体" (Simplified Chinese) and a column "繁體" (Traditional Chinese); every body row is a term.

GLOSSARY = REPO / "book" / "glossary.md"
MIN_GLOSSARY_TERMS = 40
_CJK = re.compile(r"[\u4e00-\u9fff]")


def glossary_rows(markdown: str) -> list[dict[str, str]]:
    """The body rows of every markdown table whose header names 简体 and 繁體, as {header: cell}."""
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in [*markdown.splitlines(), ""]:
        stripped = line.strip()
        if not stripped.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in stripped.strip("|").split("|")]
        if header is None:
            header = cells
        elif all(re.fullmatch(r":?-{3,}:?", cell) for cell in cells):
            continue
        elif any("简体" in h for h in header) and any("繁體" in h for h in header):
            rows.append(dict(zip(header, cells, strict=False)))
    return rows


def test_glossary_has_terms_in_simplified_and_traditional_chinese() -> None:
    if not GLOSSARY.is_file():
        pytest.skip("book/glossary.md is not written yet")
    rows = glossary_rows(GLOSSARY.read_text(encoding="utf-8"))
    assert len(rows) >= MIN_GLOSSARY_TERMS, (
        f"glossary.md: {len(rows)} terms in tables with 简体 and 繁體 columns; want >= {MIN_GLOSSARY_TERMS}"
    )
    for row in rows:
        simplified = next(v for k, v in row.items() if "简体" in k)
        traditional = next(v for k, v in row.items() if "繁體" in k)
        assert _CJK.search(simplified) and _CJK.search(traditional), (
            f"glossary.md: row without Chinese: {row}"
        )
    first_column = [next(iter(row.values())) for row in rows]
    assert len(set(first_column)) == len(first_column), (
        "glossary.md: a term appears twice"
    )


def test_glossary_table_reader() -> None:
    markdown = "| English | 简体 | 繁體 |\n|---|---|---|\n| tensor | 张量 | 張量 |\n\n| a | b |\n|---|---|\n| x | y |"
    assert glossary_rows(markdown) == [
        {"English": "tensor", "简体": "张量", "繁體": "張量"}
    ]
