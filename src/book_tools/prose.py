"""Measure how readable each chapter's prose is: mean sentence length and the count of very long sentences.

A beginner reads short sentences faster and misreads fewer of them, so the book holds every chapter to a
mean of at most 18 words per sentence and at most 5 sentences over 35 words. Only what a reader reads as
prose counts: markdown cells (or a markdown page), with code blocks, maths, inline code, glue roles,
headings, table rows and directive options removed. Each paragraph and each list item is one unit, split
into sentences at ``.``, ``!`` and ``?`` (a full stop inside a number such as 99.4 does not split).

``python -m book_tools.prose book/*.ipynb book/*.md`` prints one line per file and exits 1 when a file
misses a target.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

MAX_MEAN_WORDS = 18.0
LONG_SENTENCE_WORDS = 35
MAX_LONG_SENTENCES = 5

# A fence opens a code block (```python, ```) or a directive (```{admonition}, :::{admonition}). A
# directive's body is prose unless the directive holds code or maths.
_FENCE = re.compile(r"^(`{3,}|:{3,})\s*(?:\{([^}]*)\})?(.*)$")
_CODE_DIRECTIVES = {
    "code",
    "code-block",
    "code-cell",
    "sourcecode",
    "literalinclude",
    "math",
    "raw",
    "eval-rst",
    "glue:math",
    "mermaid",
    "jupyter-execute",
    "ipython",
}
_REMOVED_INLINE = [
    re.compile(r"\$\$.*?\$\$", re.DOTALL),  # display maths on one line
    re.compile(
        r"\{[a-z][a-z0-9:_-]*\}`[^`]*`"
    ),  # roles: {glue:text}`name`, {doc}`file`
    re.compile(r"`[^`]*`"),  # inline code
    re.compile(r"\$[^$]+\$"),  # inline maths
    re.compile(r"<[^>]+>"),  # html tags
]
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
# A sentence ends at . ! or ? followed by any closing quotes, brackets or emphasis, then a space.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'’”)\]*_]*\s+")
# Abbreviations whose full stop does not end a sentence.
_ABBREVIATION = re.compile(r"\b(e\.g|i\.e|vs|cf|Fig|Eq|approx)\.", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+")
_BEGIN_ENV = re.compile(r"^\\begin\{([a-z*]+)\}")


@dataclass(frozen=True)
class ProseStats:
    sentences: int
    mean_words: float
    long_sentences: list[str]

    @property
    def ok(self) -> bool:
        return (
            self.mean_words <= MAX_MEAN_WORDS
            and len(self.long_sentences) <= MAX_LONG_SENTENCES
        )


def markdown_of(path: Path) -> list[str]:
    """The markdown a reader reads: a notebook's markdown cells, or a markdown page's text."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return [
            "".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"
        ]
    return [path.read_text(encoding="utf-8")]


def _track_fence(fence: re.Match[str], fences: list[tuple[str, bool]]) -> bool:
    """Open or close a fence in ``fences`` (innermost last: marker, holds code) for a fence line.

    Returns whether the line ends the paragraph before it: every fence does, except a fence-like line
    inside a code block, which is code.
    """
    marker, directive, rest = fence.group(1), fence.group(2), fence.group(3).strip()
    closes = (
        fences
        and directive is None
        and not rest
        and marker[0] == fences[-1][0][0]
        and len(marker) >= len(fences[-1][0])
    )
    if closes:
        fences.pop()
        return True
    if fences and fences[-1][1]:
        return False
    if directive is None and marker[0] == ":":
        return True  # a stray closing ::: with nothing open
    name = (directive or "").strip().lower()
    fences.append((marker, directive is None or name in _CODE_DIRECTIVES))
    return True


def prose_units(markdown: str) -> list[str]:
    """Paragraphs and list items, with code blocks, maths blocks, headings and tables left out.

    Directive bodies (admonitions, dropdowns) are prose; the bodies of code and maths directives are not.
    """
    units: list[str] = []
    current: list[str] = []
    fences: list[
        tuple[str, bool]
    ] = []  # the open fences, innermost last: (marker, holds code)
    maths_end: str | None = (
        None  # what closes the maths block we are in: "$$" or "\\end{env}"
    )

    def flush() -> None:
        if current:
            units.append(" ".join(current))
            current.clear()

    for line in markdown.splitlines():
        stripped = line.strip()
        fence = _FENCE.match(stripped)
        if fence:
            if _track_fence(fence, fences):
                flush()
            continue
        if fences and fences[-1][1]:
            continue
        if maths_end is not None:
            if stripped.endswith(maths_end) or (
                maths_end != "$$" and stripped.startswith(maths_end)
            ):
                maths_end = None
            continue
        if stripped.startswith("$$") and (
            stripped == "$$" or not stripped.endswith("$$")
        ):
            flush()
            maths_end = "$$"
            continue
        if env := _BEGIN_ENV.match(stripped):
            flush()
            end = f"\\end{{{env.group(1)}}}"
            if end not in stripped:
                maths_end = end
            continue
        if (
            not stripped
            or stripped.startswith(("#", "|", "+++"))
            or re.match(r"^:[a-z-]+:", stripped)
        ):
            flush()
            continue
        if _LIST_ITEM.match(line):
            flush()
            line = _LIST_ITEM.sub("", line)
        current.append(line.strip())
    flush()
    return units


def sentences_of(unit: str) -> list[str]:
    text = _ABBREVIATION.sub(
        lambda m: m.group(1).replace(".", ""), _LINK.sub(r"\1", unit)
    )
    for pattern in _REMOVED_INLINE:
        text = pattern.sub(" x ", text)
    return [part for part in _SENTENCE_END.split(text) if re.search(r"[A-Za-z]", part)]


def word_count(sentence: str) -> int:
    return len(re.findall(r"[A-Za-z0-9][A-Za-z0-9'’.,%-]*", sentence))


def measure(path: Path) -> ProseStats:
    sentences = [
        s
        for md in markdown_of(path)
        for unit in prose_units(md)
        for s in sentences_of(unit)
    ]
    lengths = [word_count(s) for s in sentences]
    long = [
        s for s, n in zip(sentences, lengths, strict=True) if n > LONG_SENTENCE_WORDS
    ]
    mean = sum(lengths) / len(lengths) if lengths else 0.0
    return ProseStats(len(sentences), mean, long)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument(
        "--show-long", action="store_true", help="print the sentences over the limit"
    )
    args = parser.parse_args(argv)
    failed = 0
    for path in args.paths:
        stats = measure(path)
        verdict = "ok" if stats.ok else "TOO DENSE"
        print(
            f"{path}: {stats.sentences} sentences, mean {stats.mean_words:.1f} words, "
            f"{len(stats.long_sentences)} over {LONG_SENTENCE_WORDS}: {verdict}"
        )
        if args.show_long:
            for sentence in stats.long_sentences:
                print(f"    {word_count(sentence)} words: {sentence[:160]}")
        failed += not stats.ok
    if failed:
        print(
            f"{failed} file(s) over the targets (mean <= {MAX_MEAN_WORDS:g} words, "
            f"<= {MAX_LONG_SENTENCES} sentences over {LONG_SENTENCE_WORDS}). "
            "Fix: split the long sentences (--show-long lists them)."
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
