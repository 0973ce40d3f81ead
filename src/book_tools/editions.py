"""The book's three editions: English, Simplified Chinese and Traditional Chinese, built as one site.

English lives in ``book/``; Simplified Chinese in ``zh-hans/book/`` (translated prose on the English run's
code and outputs, see ``book_tools.translation``). Traditional Chinese (Taiwan) is *generated* into
``zh-hant/`` from the Simplified text with OpenCC's ``s2twp`` configuration (Taiwan vocabulary and
phrases: 数据 → 資料, 内存 → 記憶體), followed by the reviewed corrections in ``zh-hant/overrides.tsv``
where that conversion picks a word this book does not use. It is committed so that its chapters open in
Colab, and ``check`` fails when it is not exactly what the conversion gives.

Only Chinese text is converted: code keeps its program (only comments can change; checked as syntax
trees), outputs are copied untouched, and the glossary's 简体 and 繁體 columns are kept as written.

    python -m book_tools.editions generate            # write zh-hant/ from zh-hans/
    python -m book_tools.editions check               # exit 1 if zh-hant/ is not what generate writes
    python -m book_tools.editions build [-W -n ...]   # generate, then build all three into _build/html
"""

from __future__ import annotations

import argparse
import copy
import functools
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat
import yaml

from book_tools.translation import REPO, pages, same_code

SIMPLIFIED_ROOT = REPO / "zh-hans"
TRADITIONAL_ROOT = REPO / "zh-hant"
OVERRIDES = TRADITIONAL_ROOT / "overrides.tsv"
SITE = REPO / "_build" / "html"
# The book's own files among the site's static files (html_static_path in _config.yml).
OWN_STATIC = (REPO / "book" / "_static", REPO / "book" / "draw")
# Each Chinese edition is built on its own and copied under the English site, at the same page paths.
CHINESE_EDITIONS = ("zh-hans", "zh-hant")
GENERATED_NOTE = "# Generated from zh-hans/_config.yml by `python -m book_tools.editions generate`: do not edit.\n"
_KEEP = re.compile("(<!--keep-->.*?<!--/keep-->)")
# A glossary table's columns that hold data in a fixed script, never converted.
_KEPT_COLUMNS = ("简体", "繁體")


@functools.cache
def _converter():  # noqa: ANN202 (opencc has no type information)
    import opencc

    return opencc.OpenCC("s2twp")


def overrides(path: Path = OVERRIDES) -> list[tuple[str, str]]:
    """The reviewed corrections: (Simplified text, the Traditional word this book uses), longest first."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            fields = line.split("\t")
            if len(fields) != 2 or not all(fields):
                raise ValueError(
                    f"{path.name} line {number}: write 'simplified<TAB>traditional'"
                )
            pairs.append((fields[0], fields[1]))
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def to_traditional(
    text: str, corrections: Sequence[tuple[str, str]] | None = None
) -> str:
    """Simplified → Traditional (Taiwan) for prose, keeping the glossary's fixed-script columns."""
    corrections = overrides() if corrections is None else corrections
    lines, kept_columns = [], []
    for line in text.split("\n"):
        cells = line.split("|")
        if line.startswith("|") and any(c.strip() in _KEPT_COLUMNS for c in cells):
            kept_columns = [
                i for i, c in enumerate(cells) if c.strip() in _KEPT_COLUMNS
            ]
        elif not line.startswith("|"):
            kept_columns = []
        if kept_columns:
            converted = [
                c if i in kept_columns else _convert(c, corrections)
                for i, c in enumerate(cells)
            ]
            lines.append("|".join(converted))
        else:
            lines.append(_convert(line, corrections))
    return "\n".join(lines)


def _convert(text: str, corrections: Sequence[tuple[str, str]]) -> str:
    """OpenCC with the corrections put in first, behind private-use placeholders OpenCC leaves alone.

    Text between ``<!--keep-->`` and ``<!--/keep-->`` (HTML comments: invisible in both editions) is
    left as written: a word quoted *as* a word, such as the glossary's "d2l-zh writes 汇聚 where
    others write 池化", must not become the Taiwanese term.
    """
    parts = _KEEP.split(text)
    if len(parts) > 1:
        return "".join(
            part if index % 2 else _convert(part, corrections)
            for index, part in enumerate(parts)
        )
    for number, (simplified, _) in enumerate(corrections):
        text = text.replace(simplified, f"\ue000{number}\ue001")
    converted = _converter().convert(text)
    return re.sub(
        "\ue000(\\d+)\ue001", lambda m: corrections[int(m.group(1))][1], converted
    )


def traditional_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A Simplified chapter with its prose and code comments converted; code and outputs unchanged."""
    converted = copy.deepcopy(nb)
    for cell in converted.cells:
        if cell.cell_type == "markdown":
            cell.source = to_traditional(cell.source)
        elif cell.cell_type == "code":
            source = to_traditional(cell.source)
            if not same_code(source, cell.source):
                raise ValueError(
                    f"converting a code cell changed its program: {cell.source[:60]!r}"
                )
            cell.source = source
    return converted


def _traditional_config(text: str) -> str:
    config = yaml.safe_load(
        to_traditional(text)
    )  # the title and labels; paths and keys are ASCII
    config["repository"]["path_to_book"] = "zh-hant"
    sphinx_config = config["sphinx"]["config"]
    sphinx_config["language"] = "zh_TW"
    sphinx_config["html_context"]["book_edition"] = "zh-hant"
    return GENERATED_NOTE + yaml.safe_dump(config, allow_unicode=True, sort_keys=False)


def generated_files() -> dict[Path, str]:
    """Every file of ``zh-hant/`` (overrides aside) as the conversion writes it, keyed by path."""
    files: dict[Path, str] = {
        TRADITIONAL_ROOT / "_config.yml": _traditional_config(
            (SIMPLIFIED_ROOT / "_config.yml").read_text(encoding="utf-8")
        ),
        TRADITIONAL_ROOT / "_toc.yml": GENERATED_NOTE
        + to_traditional((SIMPLIFIED_ROOT / "_toc.yml").read_text(encoding="utf-8")),
    }
    for page in pages(SIMPLIFIED_ROOT / "book"):
        target = TRADITIONAL_ROOT / "book" / page.name
        if page.suffix == ".md":
            files[target] = to_traditional(page.read_text(encoding="utf-8"))
        else:
            nb = traditional_notebook(nbformat.read(page, as_version=4))
            files[target] = nbformat.writes(nb) + "\n"
    return files


def generate() -> list[Path]:
    """Write the Traditional edition; remove pages whose Simplified source is gone. Returns what changed."""
    files = generated_files()
    changed = []
    for path, text in files.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    for stale in pages(TRADITIONAL_ROOT / "book"):
        if stale not in files:
            stale.unlink()
            changed.append(stale)
    return changed


def stale_traditional() -> list[str]:
    """Files of ``zh-hant/`` that differ from what ``generate`` writes now (empty when in step)."""
    files = generated_files()
    found = [
        str(path.relative_to(REPO))
        for path, text in files.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    found += [
        str(p.relative_to(REPO))
        for p in pages(TRADITIONAL_ROOT / "book")
        if p not in files
    ]
    return found


def build(sphinx_flags: Sequence[str]) -> None:
    """Build English at ``_build/html`` and each Chinese edition at ``_build/html/<edition>/``.

    The book's own static files are copied over each site's afterwards: Sphinx 7.4 neither overwrites a
    static file that is already there nor copies any when no page changed, so an edited stylesheet or
    script would otherwise keep its old copy.
    """
    generate()
    _jupyter_book(REPO, sphinx_flags)
    _refresh_own_static_files(SITE)
    for edition in CHINESE_EDITIONS:
        output = REPO / "_build" / "editions" / edition
        _jupyter_book(REPO / edition, [*sphinx_flags, "--path-output", str(output)])
        _refresh_own_static_files(output / "_build" / "html")
        shutil.rmtree(SITE / edition, ignore_errors=True)
        shutil.copytree(output / "_build" / "html", SITE / edition)


def _refresh_own_static_files(site: Path) -> None:
    for folder in OWN_STATIC:
        for source in folder.iterdir():
            shutil.copy2(source, site / "_static" / source.name)


def _jupyter_book(root: Path, flags: Sequence[str]) -> None:
    command = [
        str(Path(sys.executable).with_name("jupyter-book")),
        "build",
        str(root),
        *flags,
    ]
    print(
        "$",
        " ".join(
            re.sub(f"^{re.escape(str(REPO))}/?", "", part) or "."
            for part in command[1:]
        ),
    )
    subprocess.run(command, check=True, cwd=REPO)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m book_tools.editions",
        description="Generate the Traditional Chinese edition and build all three editions.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "generate", help="write zh-hant/ from zh-hans/ with OpenCC s2twp"
    )
    commands.add_parser("check", help="exit 1 if zh-hant/ is not what generate writes")
    commands.add_parser("build", help="generate, then build the three editions")
    args, sphinx_flags = parser.parse_known_args(argv)
    if args.command == "generate":
        for path in generate():
            print(f"wrote {path.relative_to(REPO)}")
    elif args.command == "check":
        stale = stale_traditional()
        if stale:
            print("Not what the conversion gives:", *stale, sep="\n  ", file=sys.stderr)
            print("Fix: python -m book_tools.editions generate", file=sys.stderr)
            return 1
        print("zh-hant/ is exactly the conversion of zh-hans/.")
    else:
        try:
            build(sphinx_flags)
        except subprocess.CalledProcessError as error:
            print(f"error: the build failed (exit {error.returncode})", file=sys.stderr)
            return 1
        print(
            f"The book is built in three languages: open {SITE.relative_to(REPO)}/index.html"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
