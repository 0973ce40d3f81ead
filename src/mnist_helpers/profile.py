"""Run profiles and per-chapter budgets.

Every chapter runs in one of two profiles: ``full`` (what a reader runs and what the published site shows)
and ``smoke`` (a few thousand images and one epoch, so that ``pytest --nbmake book/`` checks every chapter
in seconds). Keeping all sizes in the single :data:`BUDGETS` table means a chapter never hard-codes a
number of epochs or images, and the two profiles cannot drift apart chapter by chapter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, get_args

PROFILE_ENV = "MNIST_BOOK_PROFILE"

Profile = Literal["smoke", "full"]
_PROFILES: tuple[str, ...] = get_args(Profile)


def current_profile() -> Profile:
    """Return the profile selected by ``$MNIST_BOOK_PROFILE`` (``full`` when unset).

    A typo such as ``MNIST_BOOK_PROFILE=smok`` must not silently fall back to the hour-long full run, so an
    unknown value is an error rather than a default.
    """
    value = os.environ.get(PROFILE_ENV, "full").strip().lower() or "full"
    if value not in _PROFILES:
        raise ValueError(
            f"{PROFILE_ENV}={os.environ[PROFILE_ENV]!r} is not a known profile; "
            f"set it to one of {', '.join(_PROFILES)} (or unset it for 'full')."
        )
    return value  # type: ignore[return-value]


def is_smoke() -> bool:
    """True under the quick test profile; used e.g. to silence progress bars."""
    return current_profile() == "smoke"


@dataclass(frozen=True)
class Budget:
    """How much data and how many epochs one run may use.

    ``train_images`` counts images taken from the 60k training set *before* the train/validation split, so a
    budget fixes the whole data pipeline. ``None`` means "all of them".
    """

    train_images: int | None
    test_images: int | None
    epochs: int


_SMOKE = Budget(train_images=4000, test_images=2000, epochs=1)


def _full(epochs: int) -> Budget:
    return Budget(train_images=None, test_images=None, epochs=epochs)


# The data of a run that belongs to no chapter (the command line evaluating any checkpoint), per profile.
DEFAULT_BUDGET: dict[str, Budget] = {"full": _full(1), "smoke": _SMOKE}


BUDGETS: dict[str, dict[str, Budget]] = {
    "01_data": {"full": _full(1), "smoke": _SMOKE},
    "02_visualize": {"full": _full(0), "smoke": _SMOKE},
    "03_learning": {
        "full": _full(5),
        "smoke": _SMOKE,
    },  # linear models and a tiny MLP, by hand
    "04_mlp_tutorial_a": {"full": _full(15), "smoke": _SMOKE},
    "04_mlp_tutorial_b": {"full": _full(7), "smoke": _SMOKE},
    "04_batch_size": {"full": _full(10), "smoke": _SMOKE},
    "05_batchnorm": {"full": _full(20), "smoke": _SMOKE},
    "06_cnn": {"full": _full(20), "smoke": _SMOKE},
    "07_simplecnn": {"full": _full(15), "smoke": _SMOKE},
    "08_own_digits": {"full": _full(4), "smoke": _SMOKE},
    "09_fast": {"full": _full(8), "smoke": _SMOKE},
    "09_speedrun": {"full": _full(5), "smoke": _SMOKE},
    # chapter 9's fastest fp32 recipes, to 99.0%, 99.4% and 99.5% test accuracy (benchmarks/fastest.py)
    "09_fastest_990": {"full": _full(1), "smoke": _SMOKE},
    "09_fastest_994": {"full": _full(3), "smoke": _SMOKE},
    "09_fastest_995": {"full": _full(5), "smoke": _SMOKE},
    "10_inside": {
        "full": _full(0),
        "smoke": _SMOKE,
    },  # trains nothing: studies chapter 7's SimpleCNN
    "11_bncnn": {"full": _full(10), "smoke": _SMOKE},
    "12_export": {
        "full": _full(0),
        "smoke": _SMOKE,
    },  # trains nothing: exports chapter 7's SimpleCNN
    "13_scaling_out": {
        "full": _full(2),
        "smoke": _SMOKE,
    },  # 1 vs 2 processes, 3 seeds each
}


def budget(run: str, profile: Profile | None = None) -> Budget:
    """Look up the budget of ``run`` in ``profile`` (default: :func:`current_profile`)."""
    if run not in BUDGETS:
        raise KeyError(f"unknown run {run!r}; known runs: {', '.join(BUDGETS)}")
    chosen = profile if profile is not None else current_profile()
    if chosen not in _PROFILES:
        raise ValueError(
            f"unknown profile {chosen!r}; use one of {', '.join(_PROFILES)}"
        )
    return BUDGETS[run][chosen]
