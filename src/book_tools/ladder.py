"""The speed ladder of chapter 08: tutorial E's loop as written, then one change per rung.

This is the book's measuring machinery, not something a chapter teaches: ``benchmarks/speed.py`` runs it and
writes ``book/speed/<device>.json``; chapter 08 reads that file (and runs the quick ladder itself only in the
smoke profile or on Colab). Each rung is one row of :data:`STAGES`:

1. ``tutorial_e``: the tutorial's pipeline as written (:mod:`mnist_helpers.tutorial_e`);
2. ``tensors``: the same loop and maths, batches sliced from normalized tensors on the device;
3. ``batch512``: as 2 with batch 512;
4. ``onecycle``: the book's fast recipe (``RECIPES["fast"]``: AdamW + OneCycle, batch 512) through ``fit``;
5. ``bf16_channels_last``: as 4 with bf16 autocast and channels_last.

Every rung trains SimpleCNN from the same seed on the same validation split for its full epoch budget; the
time to the validation target is read off the per-epoch rows afterwards, and the test set is touched
once per rung, at the end.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnist_helpers.data import MNISTSplits, load_mnist_splits
from mnist_helpers.devices import cpu_model_name, native_bf16, pick_device, seed_everything
from mnist_helpers.models import SimpleCNN
from mnist_helpers.recipes import RECIPES, fit_recipe
from mnist_helpers.tutorial_e import (
    TUTORIAL_E_BATCH_SIZE,
    TUTORIAL_E_SEED,
    SPLIT_SEED,
    tutorial_e_evaluate,
    tutorial_e_loaders,
    tutorial_e_optimizer,
    tutorial_e_train_one_epoch,
)
from mnist_helpers.training import evaluate

SCHEMA_VERSION = 1
DEFAULT_TARGET = 0.994
FAST = RECIPES["fast"]

# Quick mode: a few hundred images and one epoch per run, so CI on two CPU cores finishes in well under
# a minute. Its numbers only prove that the machinery works; the time-to-target needs the full run.
QUICK_TRAIN_IMAGES = 640
QUICK_TEST_IMAGES = 256
QUICK_PROBE_BATCH_SIZE = 128


@dataclass(frozen=True)
class Stage:
    """One rung: which loop trains, what feeds it, and the one setting it changes."""

    name: str
    label: str
    loop: Literal["tutorial_e", "fit"]  # the tutorial's epoch loop, or fit_recipe with the fast recipe
    data: Literal["dataloader", "tensors"]
    batch_size: int
    bf16: bool = False


STAGES: tuple[Stage, ...] = (
    Stage("tutorial_e", "Tutorial E as written (DataLoader, batch 128)", "tutorial_e", "dataloader", TUTORIAL_E_BATCH_SIZE),
    Stage("tensors", "tensors on the device (batch 128)", "tutorial_e", "tensors", TUTORIAL_E_BATCH_SIZE),
    Stage("batch512", "+ batch 512", "tutorial_e", "tensors", FAST.batch_size),
    Stage("onecycle", f"+ AdamW with OneCycle, max lr {FAST.lr:g}", "fit", "tensors", FAST.batch_size),
    Stage("bf16_channels_last", "+ bf16 autocast and channels_last", "fit", "tensors", FAST.batch_size, bf16=True),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


@dataclass
class EpochRow:
    """One epoch of one run. ``seconds`` is wall time for training plus the validation pass."""

    epoch: int
    seconds: float
    images_per_s: float  # training images / seconds
    train_loss: float
    val_acc: float


@dataclass
class StageResult:
    """One rung of the ladder: its settings, its epochs, and what it reached."""

    name: str
    label: str
    settings: dict[str, Any]
    rows: list[EpochRow] = field(default_factory=list)
    epochs_to_target: int | None = None  # None: target not reached within the cap
    seconds_to_target: float | None = None  # sum of epoch seconds up to and including that epoch
    seconds_per_epoch: float | None = None  # mean over the epochs run
    images_per_s: float | None = None  # mean over the epochs run
    best_val_acc: float | None = None
    test_acc: float | None = None  # final model, measured once on the test set
    setup_seconds: float = 0.0  # building the dataset / loaders, not counted in seconds_to_target
    compile_seconds: float = 0.0
    skipped: str | None = None  # why this rung was not run on this machine


def _summarise(stage: StageResult, target: float | None) -> None:
    rows = stage.rows
    stage.seconds_per_epoch = sum(r.seconds for r in rows) / len(rows)
    stage.images_per_s = sum(r.images_per_s for r in rows) / len(rows)
    stage.best_val_acc = max(r.val_acc for r in rows)
    if target is None:
        return
    elapsed = 0.0
    for row in rows:
        elapsed += row.seconds
        if row.val_acc >= target:
            stage.epochs_to_target, stage.seconds_to_target = row.epoch, elapsed
            return


def _tutorial_e_style_run(
    stage: StageResult,
    train_batches: Iterable[tuple[Tensor, Tensor]],
    val_batches: Iterable[tuple[Tensor, Tensor]],
    n_train: int,
    *,
    device: torch.device,
    epochs: int,
) -> nn.Module:
    """Tutorial E's epoch loop (train, validate, StepLR.step) for ``epochs`` epochs."""
    seed_everything(TUTORIAL_E_SEED)
    model = SimpleCNN().to(device)
    optimizer, scheduler = tutorial_e_optimizer(model)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train_loss, _ = tutorial_e_train_one_epoch(model, train_batches, optimizer, device)
        _, val_acc = tutorial_e_evaluate(model, val_batches, device)
        scheduler.step()
        seconds = time.perf_counter() - start
        stage.rows.append(EpochRow(epoch, seconds, n_train / seconds, train_loss, val_acc))
    return model


def _fit_run(
    stage: StageResult, splits: MNISTSplits, *, device: torch.device, epochs: int, bf16: bool, compile: bool,
    progress: bool | None,
) -> nn.Module:
    """The fast recipe through ``fit_recipe``, with bf16/channels_last forced on or off."""
    model = FAST.build_model()
    history = fit_recipe(FAST, model, splits, device=device, epochs=epochs, bf16=bf16, compile=compile,
                         progress=progress)
    for epoch, (seconds, loss, acc) in enumerate(zip(history.seconds, history.train_loss, history.val_acc), 1):
        stage.rows.append(EpochRow(epoch, seconds, len(splits.train) / seconds, loss, acc))
    return model


def _stage_settings(stage: Stage, device: torch.device, epochs: int, compile: bool) -> dict[str, Any]:
    seed_style = stage.loop == "tutorial_e"
    return {
        "data": "torchvision + DataLoader (2 workers)" if stage.data == "dataloader" else f"tensors on {device.type}",
        "loop": "tutorial E's train_one_epoch" if seed_style else "mnist_helpers.training.fit",
        "batch_size": stage.batch_size,
        "optimizer": "Adam lr 1e-3" if seed_style else f"AdamW wd {FAST.weight_decay:g}",
        "schedule": "StepLR(5, 0.5) per epoch" if seed_style else f"OneCycle max lr {FAST.lr:g}",
        "precision": "bf16 autocast" if stage.bf16 else "fp32",
        "memory_format": "channels_last" if stage.bf16 else "contiguous (NCHW)",
        "max_epochs": epochs,
        "compile": compile and fast_stage_name(device) == stage.name,
    }


def result_filename(device_type: str) -> str:
    """Where a full run's JSON goes inside ``book/speed/``: ``cpu.json``, ``gpu.json`` (CUDA) or ``mps.json``."""
    return {"cuda": "gpu.json"}.get(device_type, f"{device_type}.json")


def fast_stage_name(device: torch.device | str) -> str:
    """Which rung the fast recipe runs on ``device`` by default (bf16 only where it is native)."""
    return "bf16_channels_last" if native_bf16(device) else "onecycle"


def _test_accuracy(model: nn.Module, splits: MNISTSplits, device: torch.device) -> float:
    """Touch the test set once, in fp32 and the default layout, the same way for every model."""
    model = model.to(device=device, memory_format=torch.contiguous_format)
    return evaluate(model, splits.test.batches(1024), device=device)[1]


def _warm_up(device: torch.device) -> None:
    """One throw-away step in fp32 and bf16, so no rung pays the one-time library start-up costs."""
    model = SimpleCNN().to(device)
    x = torch.randn(64, 1, 28, 28, device=device)
    y = torch.zeros(64, dtype=torch.long, device=device)
    for bf16 in (False, _bf16_supported(device)):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            F.cross_entropy(model(x), y).backward()


def precision_probe(
    device: torch.device | str, *, batch_size: int = FAST.batch_size, steps: int = 5
) -> dict[str, float]:
    """Seconds per training step (forward, backward, AdamW) of SimpleCNN for each precision/layout pair.

    Whether bf16 and channels_last pay off depends on the hardware (tensor cores on a GPU; on a CPU, on
    instructions such as AVX512-BF16 or AMX and on oneDNN's kernels), so the benchmark measures it rather
    than asserting it. The first step of each variant is a warm-up and is not counted.
    """
    device = torch.device(device)
    generator = torch.Generator().manual_seed(TUTORIAL_E_SEED)
    x = torch.randn(batch_size, 1, 28, 28, generator=generator).to(device)
    y = torch.randint(0, 10, (batch_size,), generator=generator).to(device)
    seconds: dict[str, float] = {}
    variants = [("fp32", False, False), ("channels_last", False, True)]
    if _bf16_supported(device):
        variants += [("bf16", True, False), ("bf16_channels_last", True, True)]
    for name, bf16, channels_last in variants:
        model = SimpleCNN().to(device)
        inputs = x
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            inputs = x.contiguous(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for step in range(steps + 1):
            if step == 1:
                _synchronize(device)
                start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(inputs), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        _synchronize(device)
        seconds[name] = (time.perf_counter() - start) / steps
    return seconds



def _bf16_supported(device: torch.device) -> bool:
    """bf16 autocast is measured where PyTorch supports it for training: CUDA and CPU."""
    return device.type in ("cuda", "cpu")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine_info(device: torch.device | str) -> dict[str, Any]:
    """What the numbers were measured on: device name, core and thread counts, library versions."""
    import torchvision

    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model_name()
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "device": device.type,
        "device_name": name,
        "cpu_count": os.cpu_count(),
        "usable_cpu_cores": len(affinity(0)) if affinity else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def _run_stage(stage: Stage, splits: MNISTSplits, *, device: torch.device, epochs: int, compile: bool,
               tensor_setup: float, train_images: int | None, progress: bool | None) -> StageResult:
    result = StageResult(stage.name, stage.label, _stage_settings(stage, device, epochs, compile))
    if stage.bf16 and not _bf16_supported(device):
        result.skipped = f"bf16 autocast is not measured on {device.type}"
        return result
    result.setup_seconds = tensor_setup
    if stage.loop == "fit":
        model = _fit_run(result, splits, device=device, epochs=epochs, bf16=stage.bf16,
                         compile=result.settings["compile"], progress=progress)
    else:
        if stage.data == "dataloader":
            start = time.perf_counter()
            train, val = tutorial_e_loaders(device, train_images=train_images)
            result.setup_seconds = time.perf_counter() - start
        else:
            train, val = (splits.train.batches(stage.batch_size, shuffle=True, seed=TUTORIAL_E_SEED),
                          splits.val.batches(TUTORIAL_E_BATCH_SIZE))
        model = _tutorial_e_style_run(result, train, val, len(splits.train), device=device, epochs=epochs)
    result.test_acc = _test_accuracy(model, splits, device)
    return result


def run_benchmark(
    *,
    quick: bool = False,
    target: float = DEFAULT_TARGET,
    tutorial_e_epochs: int = 15,
    fast_epochs: int = 8,
    stages: Sequence[str] | None = None,
    compile: bool = False,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the ladder (default: every rung) and return a JSON-ready dict.

    ``quick=True`` trains on :data:`QUICK_TRAIN_IMAGES` images for one epoch per rung and ignores the
    target: it checks the machinery and gives a per-epoch ratio, nothing more. ``log`` receives one line
    per finished rung (the CLI prints them).
    """
    device = pick_device(device)
    chosen = list(STAGE_NAMES) if stages is None else list(stages)
    unknown = [s for s in chosen if s not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGE_NAMES)}")
    train_images = QUICK_TRAIN_IMAGES if quick else None
    if quick:
        tutorial_e_epochs = fast_epochs = 1
    _warm_up(device)
    start = time.perf_counter()
    splits = load_mnist_splits(train_images=train_images, test_images=QUICK_TEST_IMAGES if quick else None,
                               seed=SPLIT_SEED, device=device)
    tensor_setup = time.perf_counter() - start
    results = []
    for stage in (s for s in STAGES if s.name in chosen):
        epochs = tutorial_e_epochs if stage.loop == "tutorial_e" else fast_epochs
        result = _run_stage(stage, splits, device=device, epochs=epochs, compile=compile,
                            tensor_setup=tensor_setup, train_images=train_images, progress=progress)
        if not result.skipped:
            _summarise(result, None if quick else target)
            if log is not None:
                log(_stage_line(result))
        results.append(result)
    probe_batch = QUICK_PROBE_BATCH_SIZE if quick else FAST.batch_size
    probe = precision_probe(device, batch_size=probe_batch, steps=1 if quick else 10)
    return _assemble(results, splits, device, quick=quick, target=target, probe=probe, probe_batch=probe_batch,
                     compile=compile)


def _assemble(
    results: list[StageResult],
    splits: MNISTSplits,
    device: torch.device,
    *,
    quick: bool,
    target: float,
    probe: dict[str, float],
    probe_batch: int,
    compile: bool,
) -> dict[str, Any]:
    by_name = {s.name: s for s in results if not s.skipped}
    fast_name = fast_stage_name(device)
    baseline, fast = by_name.get("tutorial_e"), by_name.get(fast_name)
    ratio_per_epoch = ratio_to_target = None
    if baseline and fast:
        ratio_per_epoch = baseline.seconds_per_epoch / fast.seconds_per_epoch
        if baseline.seconds_to_target and fast.seconds_to_target:
            ratio_to_target = baseline.seconds_to_target / fast.seconds_to_target
    return {
        "schema": SCHEMA_VERSION,
        "quick": quick,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(device),
        "settings": {
            "target_val_acc": None if quick else target,
            "train_images": len(splits.train),
            "val_images": len(splits.val),
            "test_images": len(splits.test),
            "split_seed": SPLIT_SEED,
            "model_seed": TUTORIAL_E_SEED,
            "compile": compile,
        },
        "stages": [asdict(s) for s in results],
        "fast_stage": fast_name,
        "ratio_per_epoch": ratio_per_epoch,
        "ratio_to_target": ratio_to_target,
        "precision_probe_seconds_per_step": probe,
        "precision_probe_batch_size": probe_batch,
    }


def save_result(result: dict[str, Any], path: str | Path) -> Path:
    """Write ``result`` as indented JSON (atomically, so a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def load_result(path: str | Path) -> dict[str, Any]:
    """Read a result written by :func:`save_result`; a different schema is an error, not a guess."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no benchmark result at {path}; create it with `python benchmarks/speed.py --out {path}`"
        )
    result = json.loads(path.read_text())
    if result.get("schema") != SCHEMA_VERSION:
        raise ValueError(
            f"{path} has schema {result.get('schema')!r}, this library reads schema {SCHEMA_VERSION}; "
            "re-run benchmarks/speed.py to regenerate it"
        )
    return result


def table_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    """One formatted row per rung: the columns of the book's table and of the CLI's."""
    stages = [s for s in result["stages"] if not s["skipped"]]
    baseline = next((s for s in stages if s["name"] == "tutorial_e"), None)
    rows = []
    for s in stages:
        to_target = "not reached" if s["seconds_to_target"] is None else f"{s['seconds_to_target']:.1f}"
        speedup = "—"
        if baseline is not None and baseline["seconds_to_target"] and s["seconds_to_target"]:
            speedup = f"{baseline['seconds_to_target'] / s['seconds_to_target']:.1f}×"
        elif baseline is not None and result["quick"]:
            speedup = f"{baseline['seconds_per_epoch'] / s['seconds_per_epoch']:.1f}× per epoch"
        rows.append(
            {
                "change": s["label"] + (" [fast recipe]" if s["name"] == result["fast_stage"] else ""),
                "batch": str(s["settings"]["batch_size"]),
                "s/epoch": f"{s['seconds_per_epoch']:.1f}",
                "images/s": f"{s['images_per_s']:,.0f}",
                "epochs to target": "—" if s["epochs_to_target"] is None else str(s["epochs_to_target"]),
                "s to target": "—" if result["quick"] else to_target,
                "best val %": f"{100 * s['best_val_acc']:.2f}",
                "test %": f"{100 * s['test_acc']:.2f}",
                "speed-up": speedup,
            }
        )
    return rows


def text_table(result: dict[str, Any]) -> str:
    """The ladder as aligned plain text (what the CLI prints)."""
    rows = table_rows(result)
    header = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in header}
    lines = ["  ".join(h.ljust(widths[h]) for h in header)]
    lines += ["  ".join(r[h].ljust(widths[h]) for h in header) for r in rows]
    return "\n".join(lines)


def _stage_line(stage: StageResult) -> str:
    reached = (
        f"target at epoch {stage.epochs_to_target} after {stage.seconds_to_target:.1f} s"
        if stage.epochs_to_target
        else f"{len(stage.rows)} epoch(s), best val {100 * stage.best_val_acc:.2f}%"
    )
    return f"{stage.name}: {stage.seconds_per_epoch:.1f} s/epoch, {reached}, test {100 * stage.test_acc:.2f}%"
