"""Chapter 11's leaderboard: every chapter's final recipe trained with several seeds, and an ensemble.

    python benchmarks/leaderboard.py                     # every recipe -> benchmarks/results/leaderboard_<device>.json
    python benchmarks/leaderboard.py --recipes cnn,bncnn --seeds 3
    python benchmarks/leaderboard.py --quick --out /tmp/board.json   # a few hundred images: checks the machinery

All the work happens in :mod:`book_tools.leaderboard`. Runs already in the results file are kept, so the job
can be stopped and resumed. Run it on a quiet machine: the training seconds are part of the result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from book_tools.leaderboard import BOARD, ENSEMBLE_RECIPE, run_leaderboard
from book_tools.results import add_device_and_out
from mnist_helpers.devices import pick_device
from mnist_helpers.recipes import RECIPES

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--recipes",
        default=",".join(BOARD),
        help=f"comma-separated (default: {','.join(BOARD)})",
    )
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds per recipe (default 3)"
    )
    parser.add_argument(
        "--ensemble-seeds",
        type=int,
        default=5,
        help=f"seeds of {ENSEMBLE_RECIPE!r}, the ensemble's members (default 5)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few hundred images, one epoch: checks the machinery",
    )
    add_device_and_out(
        parser,
        "results file (default: benchmarks/results/leaderboard_<device>.json)",
    )
    args = parser.parse_args(argv)
    args.recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
    unknown = [name for name in args.recipes if name not in RECIPES]
    if unknown:
        parser.error(
            f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}"
        )
    if args.seeds < 1 or args.ensemble_seeds < 1:
        parser.error("--seeds and --ensemble-seeds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = args.out or RESULTS / f"leaderboard_{pick_device(args.device).type}.json"
    run_leaderboard(
        out,
        recipes=args.recipes,
        seeds=args.seeds,
        ensemble_seeds=args.ensemble_seeds,
        quick=args.quick,
        device=args.device,
        log=lambda line: print(line, flush=True),
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
