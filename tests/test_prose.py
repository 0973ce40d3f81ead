"""The prose measure (src/book_tools/prose.py): what counts as a sentence, what is left out, the CLI.

Each chapter is held to a mean sentence length and a count of very long sentences; a measure that
counted code, maths or table rows as sentences, or split 99.4 in two, would hold chapters to the
wrong numbers, so its rules are pinned here on small inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from book_tools import prose
from book_tools.prose import measure, prose_units, sentences_of, word_count


def _units_and_sentences(markdown: str) -> list[str]:
    return [
        sentence for unit in prose_units(markdown) for sentence in sentences_of(unit)
    ]


def test_a_decimal_number_does_not_end_a_sentence() -> None:
    assert sentences_of("The test accuracy is 99.4 percent. It was 98.1 before.") == [
        "The test accuracy is 99.4 percent.",
        "It was 98.1 before.",
    ]
    assert word_count("The test accuracy is 99.4 percent.") == 6


def test_sentences_end_at_full_stops_question_and_exclamation_marks() -> None:
    assert len(sentences_of("Is it a 7? No! It is a 1. Look (again.) Then stop.")) == 5
    assert (
        len(sentences_of("**Weights.** What does a weight hold?")) == 2
    )  # an exercise's title


def test_common_abbreviations_do_not_end_a_sentence() -> None:
    assert (
        len(sentences_of("Use a small model, e.g. an MLP, i.e. layers vs. filters."))
        == 1
    )


def test_code_blocks_maths_and_headings_are_not_prose() -> None:
    markdown = """# A heading. With a full stop.

## What you will learn

```python
x = 1. y = 2. z = 3.
```

$$
L = -\\log p. \\quad q = 2.
$$

$$ a = b.
c = d. $$

\\begin{align}
a &= b. \\\\
\\end{align}

One sentence here.
"""
    assert _units_and_sentences(markdown) == ["One sentence here."]


def test_inline_code_maths_and_glue_roles_are_one_word_each() -> None:
    sentence = "The model `nn.Linear(784, 10)` reaches {glue:text}`ch04_acc:.2f` with $p = 0.5$ here."
    [only] = sentences_of(sentence)
    assert "nn.Linear" not in only and "ch04_acc" not in only and "0.5" not in only
    assert word_count(only) == 8  # the three replaced pieces count as one word each
    first, second = sentences_of("See {doc}`04_mlp`. Then read on.")
    assert (
        "04_mlp" not in first and word_count(first) == 2 and second == "Then read on."
    )


def test_table_rows_are_not_prose() -> None:
    markdown = (
        "| model | accuracy. more |\n|---|---|\n| MLP | 97.9. yes |\n\nAfter the table."
    )
    assert _units_and_sentences(markdown) == ["After the table."]


def test_each_list_item_is_a_unit() -> None:
    markdown = "- first item without a full stop\n- second item\n  continues here\n1. **Numbered.** item"
    assert prose_units(markdown) == [
        "first item without a full stop",
        "second item continues here",
        "**Numbered.** item",
    ]


@pytest.mark.parametrize("fence", ["```", ":::"])
def test_directive_bodies_count_as_prose(fence: str) -> None:
    markdown = f"""Before.

{fence}{{admonition}} Solution 1
:class: dropdown
The answer is in the weights. They hold it.
{fence}

After the admonition. It counts too.
"""
    assert _units_and_sentences(markdown) == [
        "Before.",
        "The answer is in the weights.",
        "They hold it.",
        "After the admonition.",
        "It counts too.",
    ]


def test_code_and_maths_directives_are_not_prose_even_nested() -> None:
    markdown = """::::{admonition} Going deeper
:class: dropdown
Outer prose.
```{code-block} python
print("not. prose.")
```
```{math}
a = b. c = d.
```
:::{note}
Inner prose.
:::
::::

Last."""
    assert _units_and_sentences(markdown) == ["Outer prose.", "Inner prose.", "Last."]


def test_measure_reads_a_notebooks_markdown_cells_only(tmp_path: Path) -> None:
    cells = [
        {
            "cell_type": "markdown",
            "metadata": {},
            "source": ["# Title\n", "\n", "Short one. Short two."],
        },
        {
            "cell_type": "code",
            "metadata": {},
            "source": "print('Not prose. At all.')",
            "outputs": [],
            "execution_count": None,
        },
    ]
    path = tmp_path / "chapter.ipynb"
    path.write_text(
        json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    stats = measure(path)
    assert stats.sentences == 2 and stats.mean_words == 2.0 and stats.ok


def _long_sentence(words: int) -> str:
    return " ".join(["word"] * (words - 1)) + " end."


def test_cli_exits_0_under_the_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "easy.md"
    page.write_text(
        "# Page\n\nA short sentence. Another short one.\n", encoding="utf-8"
    )
    assert prose.main([str(page)]) == 0
    assert capsys.readouterr().out.strip().endswith("ok")


def test_cli_exits_1_over_the_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "dense.md"
    page.write_text(f"{_long_sentence(20)} {_long_sentence(20)}\n", encoding="utf-8")
    assert prose.main([str(page)]) == 1
    assert "TOO DENSE" in capsys.readouterr().out


def test_cli_exits_1_over_the_count_of_long_sentences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    over = prose.MAX_LONG_SENTENCES + 1
    shorts = " ".join(["Short."] * 40 * over)  # keeps the mean low
    page = tmp_path / "long.md"
    page.write_text(
        " ".join([_long_sentence(prose.LONG_SENTENCE_WORDS + 1)] * over) + " " + shorts
    )
    stats = measure(page)
    assert (
        stats.mean_words <= prose.MAX_MEAN_WORDS and len(stats.long_sentences) == over
    )
    assert prose.main([str(page), "--show-long"]) == 1
    out = capsys.readouterr().out
    assert f"{prose.LONG_SENTENCE_WORDS + 1} words:" in out
    page.write_text(
        " ".join([_long_sentence(prose.LONG_SENTENCE_WORDS + 1)] * (over - 1))
        + " "
        + shorts
    )
    assert prose.main([str(page)]) == 0
