"""Chapter 9's speed ladder: fixed recipes, each change measured on its own, means over seeds.

This is the book's measuring machinery, not something a chapter teaches: ``benchmarks/speed.py`` runs it and
writes ``benchmarks/results/speed_cpu_<class>.json``, one file per CPU class; chapter 9 reads them (and runs
the quick ladder itself only in the smoke profile). Each rung is one row of :data:`RUNGS`, and adds one change to the rung
above it:

1. ``tutorial_e``: the tutorial's recipe as written (:mod:`mnist_helpers.tutorial_e`): ``DataLoader``,
   batch 128, Adam with StepLR, 15 epochs;
2. ``tensors``: the same loop and maths, batches sliced from normalized tensors in memory;
3. ``onecycle``: SimpleCNN's fast recipe (``RECIPES["fast"]``): batch 512, AdamW + OneCycle, 8 epochs, fp32;
4. ``bf16``: the same with bf16 autocast and channels_last (only where the device computes bf16 natively);
5. ``compile``: the same through ``torch.compile``;
6. ``speedrun``: the fastest recipe found that still reaches 99.4% (``RECIPES["speedrun"]``: a small
   BatchNorm convnet, label smoothing, 4 epochs), bf16 where native;
7. ``speedrun_fp32``: the same in fp32, what a CPU without bf16 instructions runs.

Two measurements, both repeated over seeds and all run in one process, back to back:

- **throughput**: training images per second over a slice of the training set (``timing_images``), after an
  untimed warm-up slice that pays the one-off costs (worker start-up, kernel selection, compilation);
- **whole runs**: the recipe trained for all its epochs, the best epoch chosen on validation, then the test set
  measured once. Timed: training plus the per-epoch validation pass. Not timed: reading MNIST into memory,
  once per process. Nothing is chosen on the test set.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from book_tools.results import machine_info
from mnist_helpers.data import MNISTSplits, TensorSplit, load_mnist_splits
from mnist_helpers.devices import native_bf16, pick_device, seed_everything
from mnist_helpers.models import SimpleCNN
from mnist_helpers.profile import current_profile
from mnist_helpers.recipes import RECIPES, Recipe, fit_recipe
from mnist_helpers.results import SPEED_SCHEMA
from mnist_helpers.training import evaluate
from mnist_helpers.tutorial_e import (
    SPLIT_SEED,
    TUTORIAL_E_BATCH_SIZE,
    tutorial_e_evaluate,
    tutorial_e_loaders,
    tutorial_e_optimizer,
    tutorial_e_train_one_epoch,
)

TUTORIAL_E_EPOCHS = 15  # the tutorial's NUM_EPOCHS
TARGET = 0.994  # the test accuracy a recipe's mean over seeds must reach
TIMING_IMAGES = 12_800  # images per timed slice: 100 batches of 128, 25 of 512
QUICK_TRAIN_IMAGES, QUICK_TEST_IMAGES, QUICK_TIMING_IMAGES = 1_000, 500, 512


@dataclass(frozen=True)
class Rung:
    """One rung: which loop trains, what feeds it, which recipe, in which precision."""

    name: str
    label: str
    loop: Literal["tutorial_e", "fit"]
    recipe: Recipe  # for the tutorial-E loop: the book's record of that recipe (chapter 7's, sans early stop)
    data: Literal["dataloader", "tensors"] = "tensors"
    bf16: bool = False
    compile: bool = False

    @property
    def epochs(self) -> int:
        return (
            TUTORIAL_E_EPOCHS
            if self.loop == "tutorial_e"
            else self.recipe.epochs_for(current_profile())
        )

    @property
    def batch_size(self) -> int:
        return (
            TUTORIAL_E_BATCH_SIZE
            if self.loop == "tutorial_e"
            else self.recipe.batch_size
        )


FAST, SPEEDRUN = RECIPES["fast"], RECIPES["speedrun"]
RUNGS: tuple[Rung, ...] = (
    Rung(
        "tutorial_e",
        "tutorial E as written (DataLoader, batch 128, 15 epochs)",
        "tutorial_e",
        RECIPES["simplecnn"],
        data="dataloader",
    ),
    Rung(
        "tensors",
        "+ batches sliced from tensors in memory",
        "tutorial_e",
        RECIPES["simplecnn"],
    ),
    Rung(
        "onecycle",
        f"+ batch {FAST.batch_size}, AdamW + OneCycle, {FAST.epochs_for(current_profile())} epochs",
        "fit",
        FAST,
    ),
    Rung("bf16", "+ bf16 autocast and channels_last", "fit", FAST, bf16=True),
    Rung("compile", "+ torch.compile", "fit", FAST, bf16=True, compile=True),
    Rung(
        "speedrun",
        f"speed-run recipe: small BatchNorm convnet, {SPEEDRUN.epochs_for(current_profile())} epochs",
        "fit",
        SPEEDRUN,
        bf16=True,
    ),
    Rung(
        "speedrun_fp32",
        "speed-run recipe in fp32 (a CPU without bf16)",
        "fit",
        SPEEDRUN,
    ),
)
RUNG_NAMES = tuple(rung.name for rung in RUNGS)
DEFAULT_WHOLE_RUNS = (
    "speedrun",
)  # on 2 CPU cores a SimpleCNN whole run takes 2-15 min, x 5 seeds per rung


def flops_per_image(model: nn.Module) -> float:
    """Floating-point operations of one training step (forward + backward) per image, counted by PyTorch."""
    x = torch.randn(8, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model.train()(x), torch.zeros(8, dtype=torch.long)).backward()
    return counter.get_total_flops() / len(x)


def matmul_flops_per_second(
    device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 5
) -> float:
    """What this device's best kernel reaches on a large square matrix product: the practical peak that a
    model's FLOP/s is compared with (a vendor's peak assumes a clock speed and kernels nobody reaches)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _slice(split: TensorSplit, n: int) -> TensorSplit:
    return TensorSplit(split.images[:n], split.labels[:n])


def _tutorial_e_model(seed: int, device: torch.device) -> nn.Module:
    seed_everything(seed)
    return SimpleCNN().to(device)


def _time_slice(
    rung: Rung, splits: MNISTSplits, seed: int, n_images: int, device: torch.device
) -> float:
    """Seconds to train one fresh model (seeded ``seed``) on the first ``n_images`` training images."""
    if rung.loop == "tutorial_e":
        model = _tutorial_e_model(seed, device)
        optimizer, _ = tutorial_e_optimizer(model)
        if rung.data == "dataloader":
            batches = tutorial_e_loaders(device, train_images=round(n_images / 0.9))[
                0
            ]  # the loader splits off 10%
        else:
            batches = _slice(splits.train, n_images).batches(
                TUTORIAL_E_BATCH_SIZE, shuffle=True, seed=seed
            )
        start = time.perf_counter()
        tutorial_e_train_one_epoch(model, batches, optimizer, device)
    else:
        recipe = replace(rung.recipe, seed=seed)
        model = recipe.build_model()
        tiny = MNISTSplits(
            _slice(splits.train, n_images), _slice(splits.val, 256), splits.test
        )
        start = time.perf_counter()
        fit_recipe(
            replace(recipe, epochs=1, bf16=rung.bf16, compile=rung.compile),
            model,
            tiny,
            device=device,
            progress=False,
        )
    _synchronize(device)
    return time.perf_counter() - start


def measure_throughput(
    rung: Rung,
    splits: MNISTSplits,
    seeds: Sequence[int],
    n_images: int,
    device: torch.device,
) -> list[dict[str, Any]]:
    """One timed slice per seed, after an untimed warm-up slice; returns one record per seed."""
    warm_up = _time_slice(rung, splits, seeds[0] + 1000, n_images, device)
    records = []
    for seed in seeds:
        seconds = _time_slice(rung, splits, seed, n_images, device)
        records.append(
            {
                "rung": rung.name,
                "seed": seed,
                "images": n_images,
                "seconds": seconds,
                "images_per_s": n_images / seconds,
                "warm_up_seconds": warm_up,
            }
        )
    return records


def whole_run(
    rung: Rung,
    splits: MNISTSplits,
    seed: int,
    device: torch.device,
    epochs: int | None = None,
) -> dict[str, Any]:
    """Train ``rung``'s recipe from ``seed`` for all its epochs, then measure the test set once."""
    epochs = epochs or rung.epochs
    start = time.perf_counter()
    if rung.loop == "tutorial_e":
        model = _tutorial_e_model(seed, device)
        optimizer, scheduler = tutorial_e_optimizer(model)
        if rung.data == "dataloader":
            train, val = tutorial_e_loaders(
                device, train_images=len(splits.train) + len(splits.val)
            )
        else:
            train = splits.train.batches(TUTORIAL_E_BATCH_SIZE, shuffle=True, seed=seed)
            val = splits.val.batches(1024)
        epoch_seconds, val_accuracy = [], []
        for _ in range(epochs):  # the tutorial keeps its last epoch's weights
            epoch_start = time.perf_counter()
            tutorial_e_train_one_epoch(model, train, optimizer, device)
            val_accuracy.append(tutorial_e_evaluate(model, val, device)[1])
            scheduler.step()
            epoch_seconds.append(time.perf_counter() - epoch_start)
        best_epoch = epochs
    else:
        recipe = replace(rung.recipe, seed=seed)
        model = recipe.build_model()
        history = fit_recipe(
            replace(recipe, epochs=epochs, bf16=rung.bf16, compile=rung.compile),
            model,
            splits,
            device=device,
            progress=False,
        )
        epoch_seconds, val_accuracy, best_epoch = (
            history.seconds,
            history.val_acc,
            history.best_epoch,
        )
    seconds = time.perf_counter() - start
    model = model.to(memory_format=torch.contiguous_format)
    test_accuracy = evaluate(model, splits.test.batches(1024), device=device)[1]
    return {
        "rung": rung.name,
        "recipe": rung.recipe.name,
        "description": rung.label,
        "seed": seed,
        "train_seconds": seconds,
        "test_accuracy": test_accuracy,
        "epochs": len(epoch_seconds),
        "best_epoch": best_epoch,
        "val_accuracy": val_accuracy[best_epoch - 1],
        "epoch_seconds": epoch_seconds,
        "device": device.type,
    }


def _rung_record(rung: Rung, device: torch.device) -> tuple[dict[str, Any], str | None]:
    """What the results file says about a rung, and why it is skipped here (None: it runs)."""
    skipped = None
    if rung.bf16 and not native_bf16(device):
        skipped = (
            f"{device.type} here has no native bf16 (it would be emulated, and slower)"
        )
    record = {
        **{k: v for k, v in asdict(rung).items() if k != "recipe"},
        "recipe_description": rung.recipe.describe(),
        "model": rung.recipe.model,
        "epochs": rung.epochs,
        "batch_size": rung.batch_size,
        "skipped": skipped,
        "flops_per_image": flops_per_image(rung.recipe.build_model()),
    }
    return record, skipped


def _log_rate(
    rung: Rung, records: list[dict[str, Any]], log: Callable[[str], None]
) -> None:
    rates = [r["images_per_s"] for r in records]
    spread = f" ± {statistics.stdev(rates):,.0f}" if len(rates) > 1 else ""
    log(f"{rung.name}: {statistics.mean(rates):,.0f}{spread} training images/s")


def _matmul_peaks(device: torch.device, quick: bool) -> dict[str, float]:
    """The best matrix product in fp32 (and bf16 where native): what a rung's FLOP rate is compared with."""
    size = 512 if quick else 2048
    peaks = {"fp32": matmul_flops_per_second(device, torch.float32, size=size)}
    if native_bf16(device):
        peaks["bf16"] = matmul_flops_per_second(device, torch.bfloat16, size=size)
    return peaks


def _sizes(splits: MNISTSplits) -> dict[str, int]:
    return {
        "train_images": len(splits.train),
        "val_images": len(splits.val),
        "test_images": len(splits.test),
    }


def _check_names(names: Sequence[str]) -> None:
    unknown = [name for name in names if name not in RUNG_NAMES]
    if unknown:
        raise ValueError(
            f"unknown rung(s) {', '.join(unknown)}; choose from {', '.join(RUNG_NAMES)}"
        )


def run_benchmark(
    *,
    quick: bool = False,
    rungs: Sequence[str] = RUNG_NAMES,
    whole_runs: Sequence[str] = DEFAULT_WHOLE_RUNS,
    seeds: int = 5,
    device: torch.device | str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Measure every rung in ``rungs`` (throughput over ``seeds`` seeds) and the whole runs of those in
    ``whole_runs``; return a JSON-ready dict. ``quick`` shrinks everything to check the machinery."""
    device = pick_device(device)
    _check_names([*rungs, *whole_runs])
    limits = (
        {"train_images": QUICK_TRAIN_IMAGES, "test_images": QUICK_TEST_IMAGES}
        if quick
        else {}
    )
    start = time.perf_counter()
    splits = load_mnist_splits(seed=SPLIT_SEED, device=device, **limits)
    load_seconds = time.perf_counter() - start
    timing_images = QUICK_TIMING_IMAGES if quick else TIMING_IMAGES
    seed_list = list(range(seeds))
    rung_records, timings, runs = [], [], []
    for rung in [r for r in RUNGS if r.name in rungs or r.name in whole_runs]:
        record, skipped = _rung_record(rung, device)
        rung_records.append(record)
        if skipped:
            log(f"{rung.name}: skipped ({skipped})")
            continue
        if rung.name in rungs:
            records = measure_throughput(rung, splits, seed_list, timing_images, device)
            timings += records
            _log_rate(rung, records, log)
        for seed in seed_list if rung.name in whole_runs else []:
            run = whole_run(rung, splits, seed, device, epochs=1 if quick else None)
            runs.append(run)
            log(
                f"{rung.name} seed {seed}: {run['train_seconds']:.1f} s, "
                f"test {100 * run['test_accuracy']:.2f}%"
            )
    return {
        "schema": SPEED_SCHEMA,
        "quick": quick,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(device),
        "settings": {
            **_sizes(splits),
            "split_seed": SPLIT_SEED,
            "timing_images": timing_images,
            "seeds": seed_list,
            "target_test_accuracy": TARGET,
            "load_seconds": load_seconds,
        },
        "rungs": rung_records,
        "timings": timings,
        "runs": runs,
        "matmul_flops_per_second": _matmul_peaks(device, quick),
    }
