"""Chapter 9's fastest fp32 recipes: time to 99.0%, 99.4% and 99.5%, and what each idea in them is worth.

``benchmarks/fastest.py`` runs this and writes ``benchmarks/results/fastest_cpu_<class>.json``, one file per
CPU class; chapter 9 reads them through :mod:`mnist_helpers.results`. Three measurements, all in one process,
back to back, every one a mean over seeds:

- **targets**: each recipe of :data:`TARGETS` (fixed in advance in :data:`mnist_helpers.recipes.RECIPES`,
  chosen on validation) trained from every seed; the test set is measured once, at the end, for the verdict,
  and after every epoch only to draw the time-to-accuracy curve (the best epoch is still chosen on validation);
- **ideas**: the 99.0% recipe with one idea undone at a time, the same seeds, so each idea's gain is measured
  on its own;
- the matmul peak of the CPU, to say what share of it a training step reaches.

Timed: training plus the per-epoch validation pass (``History.seconds``), as in the speed ladder. Not timed:
reading MNIST into memory, building the model, and the per-epoch test pass that only feeds the curve.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from book_tools.ladder import flops_per_image, matmul_flops_per_second
from book_tools.results import machine_info
from mnist_helpers.data import MNISTSplits, load_mnist_splits
from mnist_helpers.devices import pick_device
from mnist_helpers.profile import current_profile
from mnist_helpers.recipes import RECIPES, Recipe, fit_recipe
from mnist_helpers.results import FASTEST_SCHEMA
from mnist_helpers.training import History, evaluate
from mnist_helpers.tutorial_e import SPLIT_SEED

TARGETS: dict[str, float] = {
    "fastest_990": 0.990,
    "fastest_994": 0.994,
    "fastest_995": 0.995,
}
QUICK_TRAIN_IMAGES, QUICK_TEST_IMAGES = 1_000, 500


@dataclass(frozen=True)
class Idea:
    """One idea of the fastest recipes, measured by undoing it alone in :data:`IDEA_BASE`."""

    name: str
    label: str  # what the idea is, as the chapter's table shows it
    undo: Callable[[Recipe], Recipe]  # the base recipe without this idea


IDEA_BASE = "fastest_990"
IDEAS: tuple[Idea, ...] = (
    Idea(
        "network",
        "FastCNN instead of the speed run's BNCNN",
        lambda r: replace(
            r, model="bncnn", model_config=dict(RECIPES["speedrun"].model_config)
        ),
    ),
    Idea(
        "channels_last",
        "channels_last layout in fp32",
        lambda r: replace(r, channels_last=False),
    ),
    Idea(
        "onecycle",
        "OneCycle instead of a constant lr",
        lambda r: replace(r, schedule="constant"),
    ),
    Idea(
        "betas",
        "Adam betas 0.7/0.9 instead of 0.9/0.999",
        lambda r: replace(r, betas=(0.9, 0.999)),
    ),
    Idea(
        "label_smoothing",
        "label smoothing 0.1",
        lambda r: replace(r, label_smoothing=0.0),
    ),
    Idea("batch", "batch 256 instead of 512", lambda r: replace(r, batch_size=512)),
)


def timed_run(
    recipe: Recipe, splits: MNISTSplits, device: torch.device, epochs: int
) -> dict[str, Any]:
    """Train ``recipe`` once for ``epochs``; return its training seconds, and test accuracy after every
    epoch (for the curve) and at the best epoch by validation (the verdict)."""
    model = recipe.build_model()
    test_by_epoch: list[float] = []

    def measure_test(history: History) -> None:  # outside the timed part of each epoch
        test_by_epoch.append(
            evaluate(model, splits.test.batches(1024), device=device)[1]
        )

    history = fit_recipe(
        replace(recipe, epochs=epochs),
        model,
        splits,
        device=device,
        progress=False,
        on_epoch=measure_test,
    )
    model.to(memory_format=torch.contiguous_format)
    return {
        "recipe": recipe.name,
        "description": recipe.describe(),
        "seed": recipe.seed,
        "train_seconds": sum(history.seconds),
        "epoch_seconds": history.seconds,
        "val_accuracy_by_epoch": history.val_acc,
        "test_accuracy_by_epoch": test_by_epoch,
        "best_epoch": history.best_epoch,
        "val_accuracy": history.best_val_acc,
        "test_accuracy": evaluate(model, splits.test.batches(1024), device=device)[1],
    }


def _runs(
    recipes: dict[str, Recipe],
    splits: MNISTSplits,
    seeds: Sequence[int],
    device: torch.device,
    quick: bool,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    runs = []
    for key, recipe in recipes.items():
        for seed in seeds:
            run = timed_run(
                replace(recipe, seed=seed),
                splits,
                device,
                1 if quick else recipe.epochs_for(current_profile()),
            )
            runs.append({"key": key, **run})
            log(
                f"{key:16s} seed {seed}: {run['train_seconds']:6.1f} s, "
                f"val {100 * run['val_accuracy']:.2f}%, test {100 * run['test_accuracy']:.2f}%"
            )
    return runs


def run_fastest(
    *,
    quick: bool = False,
    seeds: int = 5,
    ideas: bool = True,
    device: torch.device | str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Every target recipe (and, with ``ideas``, every idea undone) over ``seeds`` seeds; a JSON-ready
    dict. ``quick`` shrinks the data and trains one epoch: it checks the machinery, not the recipes."""
    device = pick_device(device)
    limits = (
        {"train_images": QUICK_TRAIN_IMAGES, "test_images": QUICK_TEST_IMAGES}
        if quick
        else {}
    )
    splits = load_mnist_splits(seed=SPLIT_SEED, device=device, **limits)
    seed_list = list(range(seeds))
    targets = {name: RECIPES[name] for name in TARGETS}
    undone = {f"without_{idea.name}": idea.undo(RECIPES[IDEA_BASE]) for idea in IDEAS}
    recipes_measured = {**targets, **(undone if ideas else {})}
    runs = _runs(recipes_measured, splits, seed_list, device, quick, log)
    return {
        "schema": FASTEST_SCHEMA,
        "quick": quick,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(device),
        "settings": {
            "train_images": len(splits.train),
            "val_images": len(splits.val),
            "test_images": len(splits.test),
            "split_seed": SPLIT_SEED,
            "seeds": seed_list,
            "targets": TARGETS,
            "idea_base": IDEA_BASE,
        },
        "recipes": {
            key: {
                "description": recipe.describe(),
                "epochs": recipe.epochs_for(current_profile()),
                "flops_per_image": flops_per_image(recipe.build_model()),
            }
            for key, recipe in recipes_measured.items()
        },
        "ideas": [{"name": idea.name, "label": idea.label} for idea in IDEAS]
        if ideas
        else [],
        "runs": runs,
        "matmul_flops_per_second": {
            "fp32": matmul_flops_per_second(
                device, torch.float32, size=512 if quick else 2048
            )
        },
    }
