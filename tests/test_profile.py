"""Profiles come from one environment variable and budgets from one table; both must fail loudly."""

from __future__ import annotations

import pytest

from mnist_helpers.profile import (
    BUDGETS,
    PROFILE_ENV,
    Budget,
    budget,
    current_profile,
    is_smoke,
)


def test_default_profile_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert current_profile() == "full"
    assert not is_smoke()


@pytest.mark.parametrize("value", ["smoke", "SMOKE", " smoke "])
def test_smoke_profile_is_read_from_env(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(PROFILE_ENV, value)
    assert current_profile() == "smoke"
    assert is_smoke()


def test_bad_profile_names_value_choices_and_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PROFILE_ENV, "smok")
    with pytest.raises(ValueError) as info:
        current_profile()
    message = str(info.value)
    for part in ("'smok'", "smoke", "full", PROFILE_ENV):
        assert part in message


def test_every_run_has_both_profiles_and_small_smoke_budgets() -> None:
    for run, profiles in BUDGETS.items():
        assert set(profiles) == {"full", "smoke"}, run
        smoke, full = profiles["smoke"], profiles["full"]
        assert smoke.train_images is not None and smoke.train_images <= 5000, run
        assert smoke.test_images is not None and smoke.test_images <= 2000, run
        assert smoke.epochs <= 1, run
        assert full.train_images is None and full.test_images is None, run


def test_full_epochs_match_the_plan() -> None:
    epochs = {run: b["full"].epochs for run, b in BUDGETS.items()}
    assert epochs == {
        "01_data": 1, "02_visualize": 0, "03_learning": 5, "04_mlp_tutorial_a": 15, "04_mlp_tutorial_b": 7, "04_batch_size": 10,
        "05_batchnorm": 20, "06_cnn": 20, "07_simplecnn": 15, "08_own_digits": 4, "09_fast": 8, "09_speedrun": 5,
        "09_fastest_990": 1, "09_fastest_994": 3, "09_fastest_995": 5,
        "10_inside": 0, "11_bncnn": 10, "12_export": 0, "13_scaling_out": 2,
    }  # fmt: skip


def test_budget_follows_the_current_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROFILE_ENV, "smoke")
    assert budget("07_simplecnn") == Budget(4000, 2000, 1)
    assert budget("07_simplecnn", "full") == Budget(None, None, 15)


def test_budgets_are_immutable() -> None:
    with pytest.raises(AttributeError):
        budget("06_cnn", "full").epochs = 1  # type: ignore[misc]


def test_unknown_run_lists_known_runs() -> None:
    with pytest.raises(KeyError) as info:
        budget("07_simple_cnn")
    assert "07_simplecnn" in str(info.value) and "01_data" in str(info.value)
