"""Chapter 11's leaderboard machinery: ensembles average probabilities, and a board resumes instead of retraining."""

from __future__ import annotations

import numpy as np
import pytest

from book_tools import leaderboard
from mnist_helpers.results import LEADERBOARD_SCHEMA, load_result


def test_ensemble_averages_probabilities_and_lists_its_misses() -> None:
    labels = np.array([0, 1, 2])
    confident_wrong = np.array([[0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.6, 0.0, 0.4]])
    right = np.array([[0.6, 0.4, 0.0], [0.2, 0.8, 0.0], [0.0, 0.1, 0.9]])
    result = leaderboard.ensemble([confident_wrong, right], labels)
    # member 1 alone: images 0, 1 right; averaged: [0.75, .25, 0], [.1, .9, 0], [.3, .05, .65] -> all right
    assert result["accuracy_by_members"] == [pytest.approx(2 / 3), 1.0]
    assert (
        result["test_accuracy"] == 1.0
        and result["misses"] == []
        and result["members"] == 2
    )
    worse = leaderboard.ensemble([confident_wrong, confident_wrong], labels)
    assert worse["test_errors"] == 1
    assert worse["misses"] == [
        {"index": 2, "label": 2, "predicted": 0, "probabilities": [0.6, 0.0, 0.4]}
    ]


def test_unknown_recipe_is_named(tmp_path) -> None:
    with pytest.raises(ValueError, match="resnet"):
        leaderboard.run_leaderboard(
            tmp_path / "board.json", recipes=["resnet"], quick=True
        )


@pytest.mark.needs_mnist
def test_quick_board_trains_once_per_seed_and_resumes(tmp_path) -> None:
    out = tmp_path / "board.json"
    lines: list[str] = []
    first = leaderboard.run_leaderboard(
        out, recipes=["speedrun"], seeds=2, quick=True, device="cpu", log=lines.append
    )
    assert [(r["recipe"], r["seed"]) for r in first["runs"]] == [
        ("speedrun", 0),
        ("speedrun", 1),
    ]
    assert {
        "recipe",
        "seed",
        "train_seconds",
        "test_accuracy",
        "epochs",
        "device",
    } <= set(first["runs"][0])
    assert set(first["latency"]["speedrun"]) == {
        "one_image_s",
        "batch_1000_s",
        "machine",
    }
    assert first["runs"][0]["machine"]["device_name"] == first["machine"]["device_name"]
    assert (tmp_path / "checkpoints" / "board" / "speedrun-seed1.pt").is_file()
    trained = len(lines)
    again = leaderboard.run_leaderboard(
        out, recipes=["speedrun"], seeds=3, quick=True, device="cpu", log=lines.append
    )
    assert len(lines) == trained + 1  # only the new seed 2 was trained
    assert (
        again["runs"][:2] == first["runs"]
        and load_result(out, schema=LEADERBOARD_SCHEMA) == again
    )
