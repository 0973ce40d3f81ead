"""The committed full-profile outputs keep the promises the chapters make.

The book's numbers come from executed cells (glue), so a re-execution that quietly lands below a chapter's
target, or a chapter that tests a recipe validation did not choose, must turn CI red rather than publish.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from mnist_helpers.recipes import RECIPES

BOOK = Path(__file__).resolve().parents[1] / "book"
GLUE_MIME = "application/papermill.record/text/plain"


def _parsed(text: str) -> Any:
    """The value behind a text/plain repr; text that is no Python literal stays text, as in myst-nb."""
    try:
        return ast.literal_eval(text)
    except (SyntaxError, ValueError):
        return text


def glued(chapter: str) -> dict[str, Any]:
    """Every value a committed notebook glued, parsed back from its text/plain form."""
    notebook = json.loads((BOOK / chapter).read_text(encoding="utf-8"))
    values: dict[str, Any] = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            scrapbook = output.get("metadata", {}).get("scrapbook")
            if scrapbook and GLUE_MIME in output.get("data", {}):
                values[scrapbook["name"]] = _parsed(output["data"][GLUE_MIME])
    return values


@pytest.mark.parametrize(
    ("chapter", "name", "target"),
    [
        ("04_batchnorm.ipynb", "ch04_test_acc", 98.3),
        ("05_cnn.ipynb", "ch05_test_acc", 99.1),
        ("06_simplecnn.ipynb", "ch06_test_acc", 99.4),
    ],
)
def test_stored_test_accuracy_meets_the_chapter_target(chapter: str, name: str, target: float) -> None:
    assert glued(chapter)[name] >= target


def test_chapter_05_tests_the_recipe_with_the_best_validation_accuracy() -> None:
    values = glued("05_cnn.ipynb")
    candidates = [values["ch05_best_val_acc"], values["ch05_cosine_val_acc"], values["ch05_augmented_val_acc"]]
    assert values["ch05_chosen_val_acc"] == max(candidates)


@pytest.mark.parametrize(
    ("chapter", "name", "recipe"),
    [
        ("03_mlp.ipynb", "ch03_chosen_recipe", "mlp"),
        ("04_batchnorm.ipynb", "ch04_recipe", "bnmlp"),
        ("05_cnn.ipynb", "ch05_chosen_recipe", "cnn"),
        ("06_simplecnn.ipynb", "ch06_recipe", "simplecnn"),
    ],
)
def test_the_chapters_stored_choice_is_the_librarys_recipe(chapter: str, name: str, recipe: str) -> None:
    """What ``train --model NAME`` and the benchmarks run is what the chapter chose and showed."""
    assert glued(chapter)[name] == RECIPES[recipe].describe()
