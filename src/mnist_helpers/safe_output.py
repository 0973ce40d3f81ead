"""Output that a file name cannot forge: escaped for terminals, neutralised for spreadsheets.

File names are chosen by whoever made the files, not by the reader. A name holding a newline could
print fake table rows or a fake ``mnist-helpers: error`` line; a bare ``\\r`` could split a CSV row in
two; a name starting with ``=`` is run as a formula by spreadsheet programs (CSV/DDE injection); and a
name whose bytes are not UTF-8 (Python hands it over as surrogate escapes) makes a strict UTF-8 stdout
raise in the middle of the output, losing every other image's result. Only :mod:`mnist_helpers.cli`
uses these helpers.
"""

from __future__ import annotations

import os
import unicodedata

# Cells a spreadsheet program would read as a formula (or, for tab and CR, as a cell break before one):
# OWASP's list, which spreadsheet-safe exporters prefix with an apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# Control characters, invisible format characters (a right-to-left override can reorder what is shown)
# and Unicode line/paragraph separators: anything that can move the cursor or fake a line.
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}


def utf8_safe(text: str) -> str:
    """``text`` with undecodable bytes of a file name written as ``\\xNN``, so it encodes as UTF-8.

    ``os.fsencode`` gives back the name's original bytes; decoding them with ``backslashreplace`` keeps
    every valid character and shows each bad byte, instead of raising ``UnicodeEncodeError`` on print.
    """
    try:
        raw = os.fsencode(text)
    except (
        UnicodeEncodeError
    ):  # a lone surrogate that did not come from a file name's bytes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """``text`` for a terminal or a log: control characters shown ``repr``-style (``\\n``, ``\\r``,
    ``\\x1b``), undecodable bytes as ``\\xNN``; one line whatever the name holds."""
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if unicodedata.category(char) in _UNSAFE_CATEGORIES
        else char
        for char in utf8_safe(text)
    )


def spreadsheet_safe(cell: str) -> str:
    """A CSV cell no spreadsheet program runs as a formula: one starting with ``= + - @``, tab or CR
    gets a leading ``'``, as spreadsheet-safe exporters do. Undecodable bytes become ``\\xNN``."""
    cell = utf8_safe(cell)
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell
