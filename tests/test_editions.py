"""The Traditional Chinese edition is OpenCC's s2twp conversion of the Simplified one, plus reviewed words."""

from __future__ import annotations

import nbformat
import opencc
import pytest

from book_tools import editions


def test_prose_is_converted_with_taiwan_vocabulary() -> None:
    assert (
        editions.to_traditional("数据集在内存中", corrections=[]) == "資料集在記憶體中"
    )


def test_an_override_replaces_what_opencc_would_write() -> None:
    assert editions.to_traditional("模型的参数", corrections=[]) == "模型的引數"
    assert (
        editions.to_traditional("模型的参数", corrections=[("参数", "參數")])
        == "模型的參數"
    )


def test_every_override_changes_what_opencc_alone_gives() -> None:
    """A correction OpenCC already makes is dead weight; one whose result OpenCC gives is not reviewed."""
    plain = opencc.OpenCC("s2twp")
    for simplified, traditional in editions.overrides():
        assert plain.convert(simplified) != traditional, (
            f"{simplified} needs no override"
        )


def test_text_marked_keep_is_not_converted() -> None:
    text = "d2l-zh 写作<!--keep-->“汇聚”<!--/keep-->，数据"
    assert editions.to_traditional(text, corrections=[("汇聚", "池化")]) == (
        "d2l-zh 寫作<!--keep-->“汇聚”<!--/keep-->，資料"
    )


def test_the_glossary_columns_keep_their_script() -> None:
    table = "| 英文术语 | 简体 | 繁體 | 含义 |\n|---|---|---|---|\n| Batch | 批量 | 批次 | 一组图像 |\n\n一组"
    assert editions.to_traditional(table, corrections=[]).splitlines() == [
        "| 英文術語 | 简体 | 繁體 | 含義 |",
        "|---|---|---|---|",
        "| Batch | 批量 | 批次 | 一組影像 |",
        "",
        "一組",
    ]


def test_a_notebook_keeps_its_code_and_outputs() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("训练数据"),
        nbformat.v4.new_code_cell("x = 1  # 数据\nprint('data')"),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="数据\n")]
    converted = editions.traditional_notebook(nb)
    assert converted.cells[0].source == "訓練資料"
    assert converted.cells[1].source == "x = 1  # 資料\nprint('data')"
    assert converted.cells[1].outputs == nb.cells[1].outputs


def test_a_malformed_override_line_is_named(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "overrides.tsv"
    path.write_text("# comment\n参数 參數\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: write 'simplified<TAB>traditional'"):
        editions.overrides(path)


def test_the_committed_traditional_edition_is_the_conversion() -> None:
    assert editions.stale_traditional() == []
