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
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from book_tools.results import load_result, machine_info, save_result
from mnist_helpers.data import MNISTSplits, load_mnist_splits
from mnist_helpers.devices import pick_device
from mnist_helpers.evaluation import collect_predictions
from mnist_helpers.models import count_parameters
from mnist_helpers.recipes import RECIPES, Recipe, fit_recipe
from mnist_helpers.timing import median_seconds

BOARD = (
    "mlp",
    "bnmlp",
    "cnn",
    "simplecnn",
    "speedrun",
    "bncnn",
)  # chapters 4, 5, 6, 7, 9, 11
ENSEMBLE_RECIPE = "bncnn"
SCHEMA = "leaderboard-1"
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
        recipe,
        model,
        splits,
        device=device,
        epochs=epochs,
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
    }
    return run, model, predictions.probs


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
    previous = (
        load_result(out, schema=SCHEMA) if out.exists() else {"runs": [], "latency": {}}
    )
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "quick": quick,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(device),
        "runs": list(previous["runs"]),
        "latency": dict(previous["latency"]),
        "ensemble": previous.get("ensemble"),
    }
    done = {_run_key(run) for run in result["runs"]}
    limits = (
        {"train_images": QUICK_TRAIN_IMAGES, "test_images": QUICK_TEST_IMAGES}
        if quick
        else {}
    )
    splits_by_normalization: dict[tuple[float, float], MNISTSplits] = {}
    for name in recipes:
        base = RECIPES[name]
        key = (base.mean, base.std)
        if (
            key not in splits_by_normalization
        ):  # tutorial C's recipe normalizes differently
            splits_by_normalization[key] = load_mnist_splits(
                mean=base.mean, std=base.std, device=device, **limits
            )
        splits = splits_by_normalization[key]
        n_seeds = ensemble_seeds if name == ENSEMBLE_RECIPE else seeds
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
                device=device,
                epochs=QUICK_EPOCHS if quick else None,
                checkpoints=checkpoints,
            )
            probabilities.append(probs)
            result["runs"] = [
                r for r in result["runs"] if (r["recipe"], r["seed"]) != (name, seed)
            ] + [run]
            log(
                f"{name:10s} seed {seed}: {run['train_seconds']:7.1f} s, {run['epochs']} epochs, "
                f"test {100 * run['test_accuracy']:.2f}%"
            )
            save_result(result, out)
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
