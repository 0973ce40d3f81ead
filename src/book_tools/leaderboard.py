"""Chapter 11's leaderboard: every chapter's final recipe trained over seeds, and an ensemble of the best.

``benchmarks/leaderboard.py`` runs :func:`run_leaderboard` and writes ``benchmarks/results/leaderboard_<device>.json``;
chapter 11 reads that file (and, in the smoke profile, runs a quick board itself). Each recipe comes from
:data:`mnist_helpers.recipes.RECIPES` unchanged except its seed (the recipe's own seed, then the next ones) and
is trained exactly as the chapters and ``mnist-helpers train`` train it: best epoch chosen on validation, the
test set touched once, at the end. Every run's model is saved, and its test-set probabilities next to it, so
the ensemble (the average of the ensemble recipe's probabilities over its seeds) needs no retraining.

The results file is rewritten after every run, and runs already in it (same recipe description and seed) are
kept rather than trained again, so a long job can be stopped and resumed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from book_tools.results import machine_info, save_result
from mnist_helpers.data import MNISTSplits, load_mnist_splits
from mnist_helpers.devices import pick_device
from mnist_helpers.evaluation import collect_predictions
from mnist_helpers.models import count_parameters
from mnist_helpers.recipes import RECIPES, Recipe, fit_recipe
from mnist_helpers.results import LEADERBOARD_SCHEMA, load_result
from mnist_helpers.timing import median_seconds

BOARD = (
    "mlp",
    "bnmlp",
    "cnn",
    "simplecnn",
    "speedrun",
    "fastest_990",
    "fastest_994",
    "fastest_995",
    "bncnn",
)  # chapters 4, 5, 6, 7, 9, 9, 9, 9, 11
ENSEMBLE_RECIPE = "bncnn"
QUICK_TRAIN_IMAGES, QUICK_TEST_IMAGES, QUICK_EPOCHS = 600, 500, 1
MISSES_KEPT = 100  # the ensemble's wrong answers stored for the chapter's gallery (it makes far fewer)


def _run_key(run: dict[str, Any]) -> tuple[str, str, int]:
    return run["recipe"], run["description"], run["seed"]


def train_one(
    name: str,
    recipe: Recipe,
    splits: MNISTSplits,
    *,
    device: torch.device,
    epochs: int | None,
    checkpoints: Path,
) -> tuple[dict[str, Any], torch.nn.Module, np.ndarray]:
    """Train ``recipe`` once, as the chapters do; return the run's record, the model and its test probabilities."""
    model = recipe.build_model()
    start = time.perf_counter()
    checkpoint = checkpoints / f"{name}-seed{recipe.seed}.pt"
    history = fit_recipe(
        replace(recipe, epochs=epochs),
        model,
        splits,
        device=device,
        checkpoint_path=checkpoint,
        progress=False,
    )
    seconds = time.perf_counter() - start
    model.to(memory_format=torch.contiguous_format)
    predictions = collect_predictions(model, splits.test, device=device)
    np.save(
        checkpoint.with_suffix(".test-probs.npy"), predictions.probs.astype(np.float32)
    )
    run = {
        "recipe": name,
        "chapter": recipe.chapter,
        "description": recipe.describe(),
        "seed": recipe.seed,
        "train_seconds": seconds,
        "test_accuracy": predictions.accuracy,
        "test_errors": int((predictions.y_pred != predictions.y_true).sum()),
        "epochs": history.epochs,
        "best_epoch": history.best_epoch,
        "val_accuracy": history.best_val_acc,
        "parameters": count_parameters(model),
        "device": device.type,
        "machine": _where(device),
    }
    return run, model, predictions.probs


def _where(device: torch.device) -> dict[str, Any]:
    """The machine one run was measured on: a board grows over sessions, on more than one machine."""
    info = machine_info(device)
    return {key: info[key] for key in ("device_name", "cpu_class", "usable_cpu_cores")}


def latency(
    model: torch.nn.Module, splits: MNISTSplits, device: torch.device
) -> dict[str, float]:
    """Median seconds to classify one image and a batch of 1,000 (fp32, eval mode, no autograd)."""
    model.eval()
    one, thousand = (
        splits.test.images[:1].to(device),
        splits.test.images[:1000].to(device),
    )
    with torch.inference_mode():
        return {
            "one_image_s": median_seconds(lambda: model(one), repeats=200, warmup=20),
            "batch_1000_s": median_seconds(
                lambda: model(thousand), repeats=10, warmup=2
            ),
            "machine": _where(device),
        }


def ensemble(probabilities: list[np.ndarray], labels: np.ndarray) -> dict[str, Any]:
    """Accuracy of the average of the members' probabilities, for the first 1, 2, ... members, and the
    images the whole ensemble still gets wrong (with its probabilities, for the chapter's gallery)."""
    by_size = []
    for k in range(1, len(probabilities) + 1):
        mean = np.mean(probabilities[:k], axis=0)
        by_size.append(float((mean.argmax(axis=1) == labels).mean()))
    mean = np.mean(probabilities, axis=0)
    wrong = np.flatnonzero(mean.argmax(axis=1) != labels)[:MISSES_KEPT]
    misses = [
        {
            "index": int(i),
            "label": int(labels[i]),
            "predicted": int(mean[i].argmax()),
            "probabilities": [round(float(p), 4) for p in mean[i]],
        }
        for i in wrong
    ]
    return {
        "members": len(probabilities),
        "test_accuracy": by_size[-1],
        "accuracy_by_members": by_size,
        "test_errors": int((mean.argmax(axis=1) != labels).sum()),
        "misses": misses,
    }


def _start(out: Path, quick: bool, device: torch.device) -> dict[str, Any]:
    """The result to fill: the runs already in ``out`` (a board resumes), under today's date."""
    previous = (
        load_result(out, schema=LEADERBOARD_SCHEMA)
        if out.exists()
        else {"runs": [], "latency": {}}
    )
    return {
        "schema": LEADERBOARD_SCHEMA,
        "quick": quick,
        "date": time.strftime("%Y-%m-%d"),
        # where the runs that do not name their own machine were measured: the file's first writer
        "machine": previous.get("machine") or machine_info(device),
        "runs": list(previous["runs"]),
        "latency": dict(previous["latency"]),
        "ensemble": previous.get("ensemble"),
    }


@dataclass(frozen=True)
class _Where:
    """Where and how a board's runs are made: its file, checkpoint folder, device, size and log."""

    out: Path
    checkpoints: Path
    device: torch.device
    quick: bool
    log: Callable[[str], None]


def _seeds_of(
    name: str,
    n_seeds: int,
    splits: MNISTSplits,
    result: dict[str, Any],
    where: _Where,
) -> tuple[list[np.ndarray], torch.nn.Module | None]:
    """Train the seeds of recipe ``name`` not already in ``result`` (saving it after each run); return
    every seed's test probabilities and the last model trained (None when all were done before)."""
    base, checkpoints = RECIPES[name], where.checkpoints
    done = {_run_key(run) for run in result["runs"]}
    probabilities, model = [], None
    for seed in range(base.seed, base.seed + n_seeds):
        recipe = replace(base, seed=seed)
        probs_file = checkpoints / f"{name}-seed{seed}.test-probs.npy"
        if (name, recipe.describe(), seed) in done and probs_file.exists():
            probabilities.append(np.load(probs_file))
            continue
        run, model, probs = train_one(
            name,
            recipe,
            splits,
            device=where.device,
            epochs=QUICK_EPOCHS if where.quick else None,
            checkpoints=checkpoints,
        )
        probabilities.append(probs)
        result["runs"] = [
            r for r in result["runs"] if (r["recipe"], r["seed"]) != (name, seed)
        ] + [run]
        where.log(
            f"{name:10s} seed {seed}: {run['train_seconds']:7.1f} s, {run['epochs']} epochs, "
            f"test {100 * run['test_accuracy']:.2f}%"
        )
        save_result(result, where.out)
    return probabilities, model


def run_leaderboard(
    out: Path,
    *,
    recipes: Sequence[str] = BOARD,
    seeds: int = 3,
    ensemble_seeds: int = 5,
    quick: bool = False,
    device: torch.device | str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Train ``seeds`` seeds of every recipe in ``recipes`` (``ensemble_seeds`` of the ensemble's), resuming
    from ``out`` if it exists; write ``out`` after every run; return the result."""
    unknown = [name for name in recipes if name not in RECIPES]
    if unknown:
        raise ValueError(
            f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}"
        )
    device = pick_device(device)
    checkpoints = out.parent / "checkpoints" / out.stem
    checkpoints.mkdir(parents=True, exist_ok=True)
    result = _start(out, quick, device)
    where = _Where(out, checkpoints, device, quick, log)
    limits = (
        {"train_images": QUICK_TRAIN_IMAGES, "test_images": QUICK_TEST_IMAGES}
        if quick
        else {}
    )
    splits_by_normalization: dict[tuple[float, float], MNISTSplits] = {}
    for name in recipes:
        base = RECIPES[name]
        key = (base.mean, base.std)  # tutorial C's recipe normalizes differently
        if key not in splits_by_normalization:
            splits_by_normalization[key] = load_mnist_splits(
                mean=base.mean, std=base.std, device=device, **limits
            )
        splits = splits_by_normalization[key]
        n_seeds = ensemble_seeds if name == ENSEMBLE_RECIPE else seeds
        probabilities, model = _seeds_of(name, n_seeds, splits, result, where)
        if model is not None:
            result["latency"][name] = latency(model, splits, device)
        if name == ENSEMBLE_RECIPE:
            result["ensemble"] = {
                "recipe": name,
                **ensemble(probabilities, splits.test.labels.cpu().numpy()),
            }
            log(
                f"ensemble of {n_seeds} {name}: test {100 * result['ensemble']['test_accuracy']:.2f}%"
            )
        save_result(result, out)
    return result
