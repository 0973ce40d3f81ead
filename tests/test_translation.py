"""The Simplified Chinese edition reports the English run: same code, copied outputs, hashed sources."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

from book_tools import translation
from book_tools.notebooks import STAMP_KEY
from book_tools.translation import TranslationError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A one-chapter, one-page English book in a scratch repository."""
    english = tmp_path / "book"
    english.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# Title\n\nAccuracy is {glue:text}`acc:.2f`%; see {doc}`glossary`."
        ),
        nbformat.v4.new_code_cell("x = 1  # one\nprint(x)"),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.metadata[STAMP_KEY] = {"profile": "full", "code_sha256": "abc"}
    nbformat.write(nb, english / "01_demo.ipynb")
    (english / "glossary.md").write_text("# Glossary\n\nWords.\n", encoding="utf-8")
    monkeypatch.setattr(translation, "REPO", tmp_path)
    monkeypatch.setattr(translation, "ENGLISH", english)
    monkeypatch.setattr(translation, "SIMPLIFIED", tmp_path / "zh-hans" / "book")
    return english


def translate(work: str) -> str:
    """What a translator does to a work file: Chinese prose, a translated comment, code unchanged."""
    return (
        work.replace("# Title", "# 标题")
        .replace("Accuracy is", "准确率是")
        .replace("; see", "；参见")
        .replace("# one", "# 一")
        .replace("Words.", "词语。")
    )


def test_a_translated_chapter_is_in_step(book: Path) -> None:
    written = translation.apply(translate(translation.extract(book / "01_demo.ipynb")))
    nb = nbformat.read(written, as_version=4)
    assert nb.cells[0].source.startswith("# 标题") and "# 一" in nb.cells[1].source
    assert nb.cells[1].outputs[0]["text"] == "1\n"
    assert translation.problems(written) == []


def test_an_english_edit_after_translation_names_the_cell(book: Path) -> None:
    written = translation.apply(translate(translation.extract(book / "01_demo.ipynb")))
    nb = nbformat.read(book / "01_demo.ipynb", as_version=4)
    nb.cells[0].source += " More."
    nbformat.write(nb, book / "01_demo.ipynb")
    assert translation.problems(written) == [
        "01_demo.ipynb cell 0: the English cell changed after its translation"
    ]


def test_a_stale_work_file_is_refused(book: Path) -> None:
    work = translation.extract(book / "01_demo.ipynb")
    nb = nbformat.read(book / "01_demo.ipynb", as_version=4)
    nb.cells[0].source += " More."
    nbformat.write(nb, book / "01_demo.ipynb")
    with pytest.raises(TranslationError, match="cell 0: the English text changed"):
        translation.apply(translate(work))


def test_changed_code_is_refused_but_a_translated_comment_is_not(book: Path) -> None:
    work = translate(translation.extract(book / "01_demo.ipynb"))
    with pytest.raises(TranslationError, match="cell 1: the code differs"):
        translation.apply(work.replace("x = 1", "x = 2"))
    translation.apply(work)  # only the comment changed


def test_a_lost_glue_role_is_a_problem(book: Path) -> None:
    work = translate(translation.extract(book / "01_demo.ipynb"))
    written = translation.apply(work.replace("{glue:text}`acc:.2f`", "99.00"))
    [problem] = translation.problems(written)
    assert "cell 0: glue or references differ" in problem and "acc:.2f" in problem


def test_a_line_break_inside_a_chinese_sentence_is_a_problem(book: Path) -> None:
    work = translate(translation.extract(book / "01_demo.ipynb"))
    written = translation.apply(work.replace("准确率是", "准确\n率是"))
    [problem] = translation.problems(written)
    assert "cell 0: a line break between Chinese characters" in problem


def test_new_english_outputs_make_it_stale_until_synced(book: Path) -> None:
    written = translation.apply(translate(translation.extract(book / "01_demo.ipynb")))
    nb = nbformat.read(book / "01_demo.ipynb", as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="2\n")]
    nb.metadata[STAMP_KEY]["code_sha256"] = "def"
    nbformat.write(nb, book / "01_demo.ipynb")
    assert translation.problems(written) == [
        "01_demo.ipynb cell 1: outputs differ from the English chapter's",
        "01_demo.ipynb: execution stamp differs from the English chapter's",
    ]
    assert translation.sync(written) == []
    assert translation.problems(written) == []
    assert (
        "# 一" in nbformat.read(written, as_version=4).cells[1].source
    )  # comments kept


def test_sync_takes_changed_english_code_and_says_so(book: Path) -> None:
    written = translation.apply(translate(translation.extract(book / "01_demo.ipynb")))
    nb = nbformat.read(book / "01_demo.ipynb", as_version=4)
    nb.cells[1].source = "x = 2\nprint(x)"
    nbformat.write(nb, book / "01_demo.ipynb")
    assert translation.problems(written) == [
        "01_demo.ipynb cell 1: code differs from the English chapter's"
    ]
    assert translation.sync(written) == [
        "01_demo.ipynb cell 1: code changed in English; comments reset"
    ]
    assert translation.problems(written) == []


def test_a_page_records_its_english_hash(book: Path) -> None:
    written = translation.apply(translate(translation.extract(book / "glossary.md")))
    assert written.read_text(encoding="utf-8").startswith(
        "% translation of book/glossary.md sha256="
    )
    assert translation.problems(written) == []
    (book / "glossary.md").write_text("# Glossary\n\nMore words.\n", encoding="utf-8")
    assert translation.problems(written) == [
        "glossary.md: the English page changed after its translation"
    ]


def test_an_untranslated_page_is_reported(book: Path) -> None:
    assert translation.check_all() == [
        "01_demo.ipynb: no Simplified Chinese translation (zh-hans/book/01_demo.ipynb)",
        "glossary.md: no Simplified Chinese translation (zh-hans/book/glossary.md)",
    ]


def test_extract_from_translation_round_trips(book: Path) -> None:
    work = translate(translation.extract(book / "01_demo.ipynb"))
    translation.apply(work)
    assert translation.extract(book / "01_demo.ipynb", from_translation=True) == work


def test_kept_tokens_ignore_link_wording() -> None:
    assert (
        translation.kept_tokens("{doc}`Chapter 3 <03_x>` (sec-a)=")
        == translation.kept_tokens("{doc}`第 3 章 <03_x>` (sec-a)=")
        == {"03_x"}
    )


# ---------------------------------------------------------------------------------------------
# The book itself.


def test_every_page_of_the_book_is_translated_and_in_step() -> None:
    assert translation.check_all() == []


def test_the_chinese_table_of_contents_lists_the_english_pages_in_order() -> None:
    def files(toc_path: Path) -> list[str]:
        toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
        return [
            toc["root"],
            *(c["file"] for part in toc["parts"] for c in part["chapters"]),
        ]

    assert files(REPO / "zh-hans" / "_toc.yml") == files(REPO / "_toc.yml")
