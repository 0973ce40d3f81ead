"""Chapter 9's fastest recipes: the benchmark's quick result is complete and its summary judges targets right."""

from __future__ import annotations

import json

import pytest

from book_tools import fastest
from mnist_helpers.recipes import RECIPES
from mnist_helpers.results import FASTEST_SCHEMA, fastest_summary


@pytest.fixture(scope="module")
def quick_result() -> dict:
    # One epoch on a thousand images per recipe, two seeds: every code path of the benchmark in seconds.
    return fastest.run_fastest(quick=True, seeds=2, ideas=False, device="cpu")


@pytest.mark.needs_mnist
def test_quick_result_has_every_target_recipe_for_every_seed(
    quick_result: dict,
) -> None:
    assert quick_result["schema"] == FASTEST_SCHEMA and quick_result["quick"] is True
    assert set(quick_result["recipes"]) == set(fastest.TARGETS)
    assert sorted((run["key"], run["seed"]) for run in quick_result["runs"]) == sorted(
        (key, seed) for key in fastest.TARGETS for seed in (0, 1)
    )
    for run in quick_result["runs"]:
        epochs = len(run["epoch_seconds"])
        assert epochs == 1  # quick: one epoch whatever the recipe says
        assert (
            len(run["test_accuracy_by_epoch"])
            == len(run["val_accuracy_by_epoch"])
            == epochs
        )
        assert run["train_seconds"] == pytest.approx(sum(run["epoch_seconds"]))
        assert 0.0 <= run["test_accuracy"] <= 1.0
    assert (
        json.loads(json.dumps(quick_result)) == quick_result
    )  # JSON-safe as it stands


@pytest.mark.needs_mnist
def test_summary_of_quick_result_flags_each_target(quick_result: dict) -> None:
    rows = {row["key"]: row for row in fastest_summary(quick_result)}
    assert set(rows) == set(fastest.TARGETS)
    for key, target in fastest.TARGETS.items():
        row = rows[key]
        assert row["target"] == target and row["seeds"] == 2
        assert row["reaches"] == (row["test_accuracy"] >= target)
        assert 0.0 < row["share_of_matmul_peak"] < 1.0


def _result(accuracies: dict[str, list[float]], seconds: float = 2.0) -> dict:
    runs = [
        {
            "key": key,
            "seed": seed,
            "train_seconds": seconds,
            "epoch_seconds": [seconds],
            "test_accuracy": accuracy,
            "val_accuracy": accuracy,
        }
        for key, values in accuracies.items()
        for seed, accuracy in enumerate(values)
    ]
    return {
        "settings": {"targets": {"fastest_990": 0.99}, "train_images": 1000},
        "matmul_flops_per_second": {"fp32": 1e9},
        "recipes": {key: {"flops_per_image": 1e5} for key in accuracies},
        "runs": runs,
    }


def test_summary_judges_the_mean_over_seeds_not_the_best_seed() -> None:
    rows = fastest_summary(
        _result({"fastest_990": [0.995, 0.984], "without_betas": [0.99, 0.99]})
    )
    target, idea = rows
    assert target["test_accuracy"] == pytest.approx(0.9895)
    assert (
        target["reaches"] is False
    )  # one seed above 99% does not make the recipe reach it
    assert "target" not in idea and "reaches" not in idea
    # 1e5 FLOPs per image x 1000 images in 2 s against a 1 GFLOP/s peak: 5% of it
    assert target["share_of_matmul_peak"] == pytest.approx(0.05)


def test_each_idea_undoes_exactly_its_own_settings_of_the_base_recipe() -> None:
    base = RECIPES[fastest.IDEA_BASE]
    expected = {
        "network": {"model", "model_config"},
        "channels_last": {"channels_last"},
        "onecycle": {"schedule"},
        "betas": {"betas"},
        "label_smoothing": {"label_smoothing"},
        "batch": {"batch_size"},
    }
    assert [idea.name for idea in fastest.IDEAS] == list(expected)
    for idea in fastest.IDEAS:
        undone = idea.undo(base)
        changed = {
            name
            for name in base.__dataclass_fields__
            if getattr(base, name) != getattr(undone, name)
        }
        assert changed == expected[idea.name]
        assert undone.describe() != base.describe(), idea.name


def test_target_recipes_are_defined_once_in_recipes() -> None:
    for key in fastest.TARGETS:
        recipe = RECIPES[key]
        assert (
            recipe.name == key and recipe.model == "fastcnn" and recipe.chapter == "09"
        )
