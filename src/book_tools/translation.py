"""The Simplified Chinese edition: translated prose on top of the English chapters' own code and outputs.

A Chinese chapter must report the same run as the English one, so only its prose is written by hand.
``zh-hans/book/NN_topic.ipynb`` has exactly the English notebook's cells, in order: each markdown cell is
a translation and records ``metadata["translation"]["source_sha256"]``, the hash of the English cell it
translates; each code cell is the English code (comments may be translated: the two must be equal as
syntax trees); every output, execution count and the execution stamp are *copied* from the executed
English notebook, never produced by a second run. A markdown page (``intro.md``, the glossary, ...)
is one unit, whose first line records the hash of the English page.

Translators work on a plain-text *work file* rather than notebook JSON::

    python -m book_tools.translation extract book/03_how_networks_learn.ipynb > 03.zh.txt
    # replace the English text of each markdown block with Chinese; code comments may be translated
    python -m book_tools.translation apply 03.zh.txt      # writes zh-hans/book/03_how_networks_learn.ipynb
    python -m book_tools.translation sync                 # after a re-execution: copy the new outputs
    python -m book_tools.translation check                # exit 1, naming chapter and cell, when stale

``check`` fails when an English markdown cell (or page) changed after its translation, when a Chinese
chapter's code, outputs or stamp differ from the English one's, or when a page has no translation.
After updating a Chinese cell for a changed English cell, ``apply`` a work file again (``extract``
writes the current translation back out with ``--from-translation``) to record the new hash.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat

from book_tools.notebooks import STAMP_KEY, _parse_cell

REPO = Path(__file__).resolve().parents[2]
ENGLISH = REPO / "book"
SIMPLIFIED = REPO / "zh-hans" / "book"
RECORD_KEY = "translation"
_MARKER = re.compile(
    r"^%%%% (cell (\d+) (markdown|code)|page)(?: sha256=([0-9a-f]{64}))?$"
)
_PAGE_RECORD = re.compile(r"^% translation of (\S+) sha256=([0-9a-f]{64})\n")
_SOURCE_LINE = re.compile(r"^%%%% source (\S+)$")
# A line break between two Chinese characters: browsers show it as a space, which Chinese text never has.
_CJK = "[\u3000-\u303f\u3400-\u9fff\uff00-\uffef“”‘’—…]"
_CJK_LINE_BREAK = re.compile(f"{_CJK}\n[ \t]*{_CJK}")
# What a translation must carry over unchanged: glued values, cross-reference targets and labels.
_KEPT_TOKENS = re.compile(
    r"\{glue(?::\w*)?\}`[^`]+`|\{(?:doc|ref|numref)\}`(?:[^`<]*<)?([^`>]+)>?`|^\(([\w-]+)\)=",
    re.M,
)


class TranslationError(ValueError):
    """A work file or a translated chapter that cannot be used as it is; the message says how to fix it."""


@dataclass(frozen=True)
class Block:
    """One unit of a work file: a notebook cell (``index`` is its position) or a whole page (index -1)."""

    index: int
    kind: str  # "markdown", "code" or "page"
    text: str
    source_sha256: str | None = None


def text_sha256(text: str) -> str:
    """The hash a translation records of its English source; trailing whitespace does not count."""
    return hashlib.sha256(text.rstrip().encode("utf-8")).hexdigest()


def kept_tokens(text: str) -> set[str]:
    """The glue roles, cross-reference targets and labels of a markdown text (link wording aside)."""
    return {
        match.group(2) or match.group(1) or match.group(0)
        for match in _KEPT_TOKENS.finditer(text)
    }


def same_code(a: str, b: str) -> bool:
    """Whether two code cells are the same program (comments and formatting aside)."""
    return ast.dump(_parse_cell(a)) == ast.dump(_parse_cell(b))


def translated_path(english: Path) -> Path:
    """Where the Simplified Chinese counterpart of ``book/<name>`` lives."""
    return SIMPLIFIED / english.name


def english_path(translated: Path) -> Path:
    return ENGLISH / translated.name


# ---------------------------------------------------------------------------------------------
# Work files


def extract(english: Path, from_translation: bool = False) -> str:
    """A work file for ``english``: every cell (or the page) under a marker line carrying its hash.

    With ``from_translation`` the blocks hold the current Chinese text (to update it after an English
    change) while the markers carry the hashes of the English text as it is now.
    """
    lines = [f"%%%% source book/{english.name}"]
    if english.suffix == ".md":
        text = english.read_text(encoding="utf-8")
        if from_translation:
            body = _PAGE_RECORD.sub(
                "", translated_path(english).read_text(encoding="utf-8")
            )
        else:
            body = text
        lines += [f"%%%% page sha256={text_sha256(text)}", body.rstrip()]
        return "\n".join(lines) + "\n"
    nb = nbformat.read(english, as_version=4)
    shown = (
        nbformat.read(translated_path(english), as_version=4)
        if from_translation
        else nb
    )
    for index, (cell, shown_cell) in enumerate(zip(nb.cells, shown.cells, strict=True)):
        if cell.cell_type == "markdown":
            lines.append(
                f"%%%% cell {index} markdown sha256={text_sha256(cell.source)}"
            )
            lines.append(shown_cell.source.rstrip())
        else:
            lines.append(f"%%%% cell {index} {cell.cell_type}")
            # Translated comments survive only while the program is the English one.
            same = cell.cell_type != "code" or same_code(shown_cell.source, cell.source)
            lines.append((shown_cell if same else cell).source.rstrip())
    return "\n".join(lines) + "\n"


def parse_work_file(text: str) -> tuple[Path, list[Block]]:
    """The English file a work file translates, and its blocks in order."""
    lines = text.splitlines()
    source = _SOURCE_LINE.match(lines[0]) if lines else None
    if source is None:
        raise TranslationError(
            "a work file must start with '%%%% source book/<name>': make it with the extract command"
        )
    blocks: list[Block] = []
    current: list[str] = []
    for line in [*lines[1:], "%%%% page"]:  # a sentinel marker closes the last block
        marker = _MARKER.match(line)
        if marker is None:
            if not blocks and line.strip():
                raise TranslationError(
                    f"text before the first '%%%%' marker: {line[:60]!r}"
                )
            current.append(line)
            continue
        if blocks:
            last = blocks[-1]
            blocks[-1] = Block(
                last.index,
                last.kind,
                "\n".join(current).strip("\n"),
                last.source_sha256,
            )
        current = []
        kind = "page" if marker.group(1) == "page" else marker.group(3)
        index = int(marker.group(2)) if marker.group(2) else -1
        blocks.append(Block(index, kind, "", marker.group(4)))
    return REPO / source.group(1), blocks[:-1]


def apply(work_text: str) -> Path:
    """Write the translation a work file holds into ``zh-hans/book/``; return the path written.

    Refuses a work file made from English text that has changed since (its hashes no longer match),
    and a code block whose program differs from the English cell's.
    """
    english, blocks = parse_work_file(work_text)
    if english.suffix == ".md":
        return _apply_page(english, blocks)
    nb = nbformat.read(english, as_version=4)
    if [b.index for b in blocks] != list(range(len(nb.cells))):
        raise TranslationError(
            f"{english.name}: the work file has {len(blocks)} blocks for {len(nb.cells)} cells; "
            "extract a fresh work file"
        )
    translated = copy.deepcopy(nb)
    for block, cell in zip(blocks, translated.cells, strict=True):
        if cell.cell_type == "markdown":
            if block.source_sha256 != text_sha256(cell.source):
                raise TranslationError(
                    f"{english.name} cell {block.index}: the English text changed after this work "
                    "file was extracted; extract again and carry the translation over"
                )
            cell.source = block.text
            cell.metadata[RECORD_KEY] = {"source_sha256": block.source_sha256}
        elif cell.cell_type == "code":
            if not same_code(block.text, cell.source):
                raise TranslationError(
                    f"{english.name} cell {block.index}: the code differs from the English cell "
                    "(only comments may be translated)"
                )
            cell.source = block.text
    out = translated_path(english)
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(translated, out)
    return out


def _apply_page(english: Path, blocks: list[Block]) -> Path:
    if len(blocks) != 1 or blocks[0].kind != "page":
        raise TranslationError(
            f"{english.name}: a page's work file holds one '%%%% page' block"
        )
    recorded = blocks[0].source_sha256
    if recorded != text_sha256(english.read_text(encoding="utf-8")):
        raise TranslationError(
            f"{english.name}: the English page changed after this work file was extracted; "
            "extract again and carry the translation over"
        )
    out = translated_path(english)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        f"% translation of book/{english.name} sha256={recorded}\n{blocks[0].text}\n",
        encoding="utf-8",
    )
    return out


# ---------------------------------------------------------------------------------------------
# Keeping the edition in step with the English run


def sync(translated: Path) -> list[str]:
    """Copy outputs, execution counts, cell ids and the stamp from the English chapter into ``translated``.

    A code cell whose English program changed takes the English source (its translated comments are
    lost, and the returned notes say which). Markdown is never touched: ``check`` reports what changed.
    """
    english = nbformat.read(english_path(translated), as_version=4)
    nb = nbformat.read(translated, as_version=4)
    _require_same_cells(english, nb, translated.name)
    notes = []
    for index, (source, cell) in enumerate(zip(english.cells, nb.cells, strict=True)):
        cell.id = source.get("id", cell.get("id"))
        if cell.cell_type != "code":
            continue
        if not same_code(cell.source, source.source):
            cell.source = source.source
            notes.append(
                f"{translated.name} cell {index}: code changed in English; comments reset"
            )
        cell.outputs = copy.deepcopy(source.outputs)
        cell.execution_count = source.execution_count
        cell.metadata = copy.deepcopy(source.metadata)
    nb.metadata = copy.deepcopy(english.metadata)
    nbformat.write(nb, translated)
    return notes


def _require_same_cells(
    english: nbformat.NotebookNode, nb: nbformat.NotebookNode, name: str
) -> None:
    kinds = [c.cell_type for c in english.cells]
    if [c.cell_type for c in nb.cells] != kinds:
        raise TranslationError(
            f"{name}: its cells no longer match the English chapter's ({len(nb.cells)} vs {len(kinds)}); "
            f"extract a work file from book/{name} and apply it"
        )


def problems(translated: Path) -> list[str]:
    """Why ``translated`` does not report the English chapter faithfully (empty when it does)."""
    english_file = english_path(translated)
    if not english_file.is_file():
        return [f"{translated.name}: no English counterpart book/{translated.name}"]
    if translated.suffix == ".md":
        return _page_problems(translated, english_file)
    english = nbformat.read(english_file, as_version=4)
    nb = nbformat.read(translated, as_version=4)
    try:
        _require_same_cells(english, nb, translated.name)
    except TranslationError as error:
        return [str(error)]
    found = []
    for index, (source, cell) in enumerate(zip(english.cells, nb.cells, strict=True)):
        where = f"{translated.name} cell {index}"
        if cell.cell_type == "markdown":
            recorded = cell.metadata.get(RECORD_KEY, {}).get("source_sha256")
            if recorded is None:
                found.append(f"{where}: not translated (no translation record)")
            elif recorded != text_sha256(source.source):
                found.append(f"{where}: the English cell changed after its translation")
            else:
                found += _prose_problems(where, cell.source, source.source)
        elif cell.cell_type == "code":
            if not same_code(cell.source, source.source):
                found.append(f"{where}: code differs from the English chapter's")
            elif cell.outputs != source.outputs:
                found.append(f"{where}: outputs differ from the English chapter's")
    if nb.metadata.get(STAMP_KEY) != english.metadata.get(STAMP_KEY):
        found.append(
            f"{translated.name}: execution stamp differs from the English chapter's"
        )
    return found


def _page_problems(translated: Path, english_file: Path) -> list[str]:
    text = translated.read_text(encoding="utf-8")
    record = _PAGE_RECORD.match(text)
    if record is None:
        return [f"{translated.name}: no '% translation of ... sha256=...' first line"]
    english = english_file.read_text(encoding="utf-8")
    if record.group(2) != text_sha256(english):
        return [f"{translated.name}: the English page changed after its translation"]
    return _prose_problems(translated.name, text, english)


def _prose_problems(where: str, text: str, english: str) -> list[str]:
    """What a translation lost of its English text, or a line break that Chinese text must not have."""
    if kept_tokens(text) != kept_tokens(english):
        lost = sorted(kept_tokens(english) ^ kept_tokens(text))
        return [f"{where}: glue or references differ from the English text's: {lost}"]
    if match := _CJK_LINE_BREAK.search(text):
        return [
            f"{where}: a line break between Chinese characters shows as a space: "
            f"{match[0]!r}"
        ]
    return []


def pages(folder: Path) -> list[Path]:
    """The book's pages in ``folder``: chapter notebooks and markdown pages, by name."""
    return sorted([*folder.glob("*.ipynb"), *folder.glob("*.md")])


def check_all(names: Sequence[str] = ()) -> list[str]:
    """Every problem of the Simplified edition (or of the named pages), including missing translations."""
    found = []
    for english in pages(ENGLISH):
        if names and english.name not in names:
            continue
        translated = translated_path(english)
        if not translated.is_file():
            found.append(
                f"{english.name}: no Simplified Chinese translation (zh-hans/book/{english.name})"
            )
        else:
            found += problems(translated)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m book_tools.translation",
        description="Translate the book into Simplified Chinese and keep the translation in step.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    extract_cmd = commands.add_parser(
        "extract", help="print a work file for an English page"
    )
    extract_cmd.add_argument("english", type=Path)
    extract_cmd.add_argument(
        "--from-translation",
        action="store_true",
        help="fill the blocks with the current Chinese text",
    )
    apply_cmd = commands.add_parser(
        "apply", help="write a work file's translation into zh-hans/book/"
    )
    apply_cmd.add_argument("work_files", nargs="+", type=Path)
    commands.add_parser(
        "sync", help="copy outputs and stamps from the English chapters"
    )
    check_cmd = commands.add_parser(
        "check", help="exit 1 when a translation is missing or out of step"
    )
    check_cmd.add_argument(
        "names", nargs="*", help="only these pages, by file name (default: all)"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "extract":
            sys.stdout.write(extract(args.english, args.from_translation))
        elif args.command == "apply":
            for work_file in args.work_files:
                print(
                    f"wrote {apply(work_file.read_text(encoding='utf-8')).relative_to(REPO)}"
                )
        elif args.command == "sync":
            for translated in sorted(SIMPLIFIED.glob("*.ipynb")):
                for note in sync(translated):
                    print(note)
        else:
            found = check_all(args.names)
            for problem in found:
                print(problem, file=sys.stderr)
            if found:
                print(
                    "Fix: translate the named cells, then apply the work file again",
                    file=sys.stderr,
                )
                return 1
            print(
                f"{len(pages(ENGLISH))} page(s) translated, in step with the English run."
            )
    except TranslationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
