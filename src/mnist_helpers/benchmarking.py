"""Time seed 004's training loop as written against the book's fast path, on whatever machine runs it.

Seed 004 promises "3-5 minutes on a Colab GPU" for its SimpleCNN. Where do those minutes go, and how
many of them are necessary? This module answers with measurements instead of folklore: it trains the
same SimpleCNN to the same validation accuracy along a ladder of changes, one change per rung,

1. ``seed004``: the seed's loop as written (torchvision dataset, ``ToTensor`` + ``Normalize`` run on
   every image of every epoch, ``DataLoader(batch 128, shuffle, 2 workers)``, Adam 1e-3, StepLR(5, 0.5));
2. ``tensors``: the same loop and maths, but batches sliced from normalized tensors held on the device;
3. ``batch512``: as 2 with batch 512;
4. ``onecycle``: AdamW + OneCycle (max lr 3e-3) with batch 512, through the library's ``fit``;
5. ``bf16_channels_last``: as 4 plus bf16 autocast and channels_last memory layout,

records per-epoch seconds and images per second, stops each run at the first epoch whose validation
accuracy reaches the target, and measures the test accuracy of each final model once. Rung 5 where the
hardware computes bf16 natively (:func:`mnist_helpers.fast.native_bf16`), rung 4 elsewhere, is exactly what
:func:`mnist_helpers.fast.fast_fit` does by default, so one of them is "the fast path" and the headline ratio is ``seed004`` time / fast-path time. Every run uses the same
validation split (:func:`mnist_helpers.data.train_val_split`), so the target means the same thing for all.

The seed's DataLoader pipeline lives here once (:func:`seed004_loaders`, :func:`seed004_train_one_epoch`,
:func:`seed004_evaluate`) so other benchmarks and chapters time the very same code.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

from mnist_helpers.data import (
    MNIST_MEAN,
    MNIST_STD,
    MNISTSplits,
    load_mnist,
    load_mnist_splits,
    train_val_split,
)
from mnist_helpers.fast import fast_fit, native_bf16
from mnist_helpers.models import SimpleCNN
from mnist_helpers.training import evaluate, pick_device, seed_everything

SCHEMA_VERSION = 1
SEED004_SEED = 42  # the seed tutorial's torch.manual_seed(42); every run starts its model from it
SPLIT_SEED = 0  # train/validation split, shared by all runs
SEED004_BATCH_SIZE = 128
SEED004_NUM_WORKERS = 2
FAST_BATCH_SIZE = 512
FAST_MAX_LR = 3e-3
FAST_WEIGHT_DECAY = 1e-4
DEFAULT_TARGET = 0.994

STAGES: dict[str, str] = {
    "seed004": "seed 004 as written (DataLoader, batch 128)",
    "tensors": "tensors on the device (batch 128)",
    "batch512": "+ batch 512",
    "onecycle": "+ AdamW with OneCycle, max lr 3e-3",
    "bf16_channels_last": "+ bf16 autocast and channels_last",
}

# Quick mode: a few hundred images and one epoch per run, so CI on two CPU cores finishes in well under
# a minute. Its numbers only prove that the machinery works; the time-to-target needs the full run.
QUICK_TRAIN_IMAGES = 640
QUICK_TEST_IMAGES = 256
QUICK_PROBE_BATCH_SIZE = 128


# ----------------------------------------------------------------------------------------------------
# Seed 004's pipeline, as written
# ----------------------------------------------------------------------------------------------------
def seed004_transform() -> transforms.Compose:
    """``ToTensor`` + ``Normalize(0.1307, 0.3081)``: run on each image, in Python, every epoch."""
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])


def seed004_loaders(
    device: torch.device | str,
    *,
    train_images: int | None = None,
    val_fraction: float = 0.1,
    split_seed: int = SPLIT_SEED,
    batch_size: int = SEED004_BATCH_SIZE,
    num_workers: int = SEED004_NUM_WORKERS,
    root: str | Path | None = None,
) -> tuple[DataLoader, DataLoader]:
    """Seed 004's ``(train_loader, val_loader)`` over the book's train/validation split.

    The seed builds ``DataLoader(MNIST(transform=...), batch_size=128, shuffle=True, num_workers=2,
    pin_memory=True)``; here the two loaders read :class:`~torch.utils.data.Subset`\\ s of the torchvision
    dataset with the indices of :func:`~mnist_helpers.data.train_val_split`, so they hold exactly the images
    of ``load_mnist_splits(train_images=..., seed=split_seed)``. ``pin_memory`` is only asked for on CUDA,
    where it does something (on CPU PyTorch warns that it is ignored).
    """
    device = torch.device(device)
    dataset = load_mnist(True, root=root, transform=seed004_transform())
    n_images = len(dataset) if train_images is None else train_images
    train_idx, val_idx = train_val_split(n_images, val_fraction=val_fraction, seed=split_seed)
    pin = device.type == "cuda"

    def loader(indices: Tensor, shuffle: bool) -> DataLoader:
        return DataLoader(
            Subset(dataset, indices.tolist()),
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=num_workers,
            pin_memory=pin,
        )

    return loader(train_idx, shuffle=True), loader(val_idx, shuffle=False)


def seed004_optimizer(model: nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The seed's Adam(lr=1e-3) and StepLR(step_size=5, gamma=0.5), stepped once per epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)


def seed004_train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> tuple[float, float]:
    """Seed 004's ``train_one_epoch``, statement for statement; returns (mean loss, accuracy in [0, 1]).

    Kept verbatim (including the two ``.item()`` calls per batch, which make a GPU wait for every batch)
    because the point is to time the seed's code, not an idealised version of it.
    """
    model.train()
    running_loss, correct, total, n_batches = 0.0, 0, 0, 0
    for data, target in batches:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.cross_entropy(output, target)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
        _, predicted = torch.max(output.data, 1)
        total += target.size(0)
        correct += (predicted == target).sum().item()
        n_batches += 1
    return running_loss / n_batches, correct / total


def seed004_evaluate(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], device: torch.device
) -> tuple[float, float]:
    """Seed 004's ``evaluate`` (eval mode, no_grad); returns (mean loss, accuracy in [0, 1])."""
    model.eval()
    running_loss, correct, total, n_batches = 0.0, 0, 0, 0
    with torch.no_grad():
        for data, target in batches:
            data, target = data.to(device), target.to(device)
            output = model(data)
            running_loss += F.cross_entropy(output, target).item()
            _, predicted = torch.max(output.data, 1)
            total += target.size(0)
            correct += (predicted == target).sum().item()
            n_batches += 1
    return running_loss / n_batches, correct / total


# ----------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------
# The rungs
# ----------------------------------------------------------------------------------------------------
def _seed004_style_run(
    stage: StageResult,
    train_batches: Iterable[tuple[Tensor, Tensor]],
    val_batches: Iterable[tuple[Tensor, Tensor]],
    n_train: int,
    *,
    device: torch.device,
    max_epochs: int,
    target: float | None,
) -> nn.Module:
    """Seed 004's epoch loop (train, validate, StepLR.step) until the target or the cap."""
    seed_everything(SEED004_SEED)
    model = SimpleCNN().to(device)
    optimizer, scheduler = seed004_optimizer(model)
    for epoch in range(1, max_epochs + 1):
        start = time.perf_counter()
        train_loss, _ = seed004_train_one_epoch(model, train_batches, optimizer, device)
        _, val_acc = seed004_evaluate(model, val_batches, device)
        scheduler.step()
        seconds = time.perf_counter() - start
        stage.rows.append(EpochRow(epoch, seconds, n_train / seconds, train_loss, val_acc))
        if target is not None and val_acc >= target:
            break
    return model


def _fit_run(
    stage: StageResult,
    splits: MNISTSplits,
    *,
    device: torch.device,
    max_epochs: int,
    target: float | None,
    bf16: bool,
    compile: bool,
    progress: bool | None,
) -> nn.Module:
    """AdamW + OneCycle through :func:`fast_fit`, with its bf16/channels_last settings forced on or off."""
    seed_everything(SEED004_SEED)
    model = SimpleCNN()
    history = fast_fit(
        model,
        splits,
        epochs=max_epochs,
        batch_size=FAST_BATCH_SIZE,
        max_lr=FAST_MAX_LR,
        weight_decay=FAST_WEIGHT_DECAY,
        device=device,
        compile=compile,
        target_val_acc=target,
        seed=SEED004_SEED,
        progress=progress,
        hardware_tuned=bf16,
    )
    n_train = len(splits.train)
    for epoch, (seconds, loss, acc) in enumerate(
        zip(history.seconds, history.train_loss, history.val_acc), start=1
    ):
        stage.rows.append(EpochRow(epoch, seconds, n_train / seconds, loss, acc))
    stage.compile_seconds = history.compile_seconds
    return model


def _stage_settings(name: str, device: torch.device, max_epochs: int, compile: bool) -> dict[str, Any]:
    seed_style = name in ("seed004", "tensors", "batch512")
    bf16 = name == "bf16_channels_last"
    return {
        "data": "torchvision + DataLoader (2 workers)" if name == "seed004" else f"tensors on {device.type}",
        "loop": "seed 004's train_one_epoch" if seed_style else "mnist_helpers.training.fit",
        "batch_size": FAST_BATCH_SIZE if name not in ("seed004", "tensors") else SEED004_BATCH_SIZE,
        "optimizer": "Adam lr 1e-3" if seed_style else f"AdamW wd {FAST_WEIGHT_DECAY:g}",
        "schedule": "StepLR(5, 0.5) per epoch" if seed_style else f"OneCycle max lr {FAST_MAX_LR:g}",
        "precision": "bf16 autocast" if bf16 else "fp32",
        "memory_format": "channels_last" if bf16 else "contiguous (NCHW)",
        "max_epochs": max_epochs,
        "compile": compile and fast_stage_name(device) == name,
    }


def result_filename(device_type: str) -> str:
    """Where a full run's JSON goes inside ``book/speed/``: ``cpu.json``, ``gpu.json`` (CUDA) or ``mps.json``."""
    return {"cuda": "gpu.json"}.get(device_type, f"{device_type}.json")


def fast_stage_name(device: torch.device | str) -> str:
    """Which rung :func:`~mnist_helpers.fast.fast_fit` runs on ``device`` by default (see ``native_bf16``)."""
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


# ----------------------------------------------------------------------------------------------------
# A short probe: what bf16 and channels_last do per batch on this machine
# ----------------------------------------------------------------------------------------------------
def precision_probe(
    device: torch.device | str, *, batch_size: int = FAST_BATCH_SIZE, steps: int = 5
) -> dict[str, float]:
    """Seconds per training step (forward, backward, AdamW) of SimpleCNN for each precision/layout pair.

    Whether bf16 and channels_last pay off depends on the hardware (tensor cores on a GPU; on a CPU, on
    instructions such as AVX512-BF16 or AMX and on oneDNN's kernels), so the benchmark measures it rather
    than asserting it. The first step of each variant is a warm-up and is not counted.
    """
    device = torch.device(device)
    generator = torch.Generator().manual_seed(SEED004_SEED)
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


# ----------------------------------------------------------------------------------------------------
# The whole benchmark
# ----------------------------------------------------------------------------------------------------
def machine_info(device: torch.device | str) -> dict[str, Any]:
    """What the numbers were measured on: device name, core and thread counts, library versions."""
    import torchvision

    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_model_name()
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


def _cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_benchmark(
    *,
    quick: bool = False,
    target: float = DEFAULT_TARGET,
    seed004_epochs: int = 15,
    fast_epochs: int = 8,
    stages: Sequence[str] | None = None,
    compile: bool = False,
    device: torch.device | str | None = None,
    root: str | Path | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the ladder (default: every rung this device supports) and return a JSON-ready dict.

    ``quick=True`` trains on :data:`QUICK_TRAIN_IMAGES` images for one epoch per rung and ignores the
    target: it checks the machinery and gives a per-epoch ratio, nothing more. ``log`` receives one line
    per finished rung (the CLI prints them).
    """
    device = pick_device(device)
    chosen = list(STAGES) if stages is None else list(stages)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    train_images = QUICK_TRAIN_IMAGES if quick else None
    test_images = QUICK_TEST_IMAGES if quick else None
    stop_at = None if quick else target
    if quick:
        seed004_epochs = fast_epochs = 1

    _warm_up(device)
    start = time.perf_counter()
    splits = load_mnist_splits(
        train_images=train_images, test_images=test_images, seed=SPLIT_SEED, device=device, root=root
    )
    tensor_setup = time.perf_counter() - start

    results: list[StageResult] = []
    for name in chosen:
        max_epochs = seed004_epochs if name in ("seed004", "tensors", "batch512") else fast_epochs
        stage = StageResult(name, STAGES[name], _stage_settings(name, device, max_epochs, compile))
        if name == "bf16_channels_last" and not _bf16_supported(device):
            stage.skipped = f"bf16 autocast is not measured on {device.type}"
            results.append(stage)
            continue
        if name == "seed004":
            start = time.perf_counter()
            train_loader, val_loader = seed004_loaders(device, train_images=train_images, root=root)
            stage.setup_seconds = time.perf_counter() - start
            model = _seed004_style_run(
                stage, train_loader, val_loader, len(splits.train),
                device=device, max_epochs=max_epochs, target=stop_at,
            )
        elif name in ("tensors", "batch512"):
            stage.setup_seconds = tensor_setup
            batch_size = stage.settings["batch_size"]
            model = _seed004_style_run(
                stage,
                splits.train.batches(batch_size, shuffle=True, seed=SEED004_SEED),
                splits.val.batches(SEED004_BATCH_SIZE),
                len(splits.train),
                device=device, max_epochs=max_epochs, target=stop_at,
            )
        else:
            stage.setup_seconds = tensor_setup
            model = _fit_run(
                stage, splits, device=device, max_epochs=max_epochs, target=stop_at,
                bf16=name == "bf16_channels_last", compile=stage.settings["compile"], progress=progress,
            )
        _summarise(stage, stop_at)
        stage.test_acc = _test_accuracy(model, splits, device)
        results.append(stage)
        if log is not None:
            log(_stage_line(stage))

    probe_batch = QUICK_PROBE_BATCH_SIZE if quick else FAST_BATCH_SIZE
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
    baseline, fast = by_name.get("seed004"), by_name.get(fast_name)
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
            "model_seed": SEED004_SEED,
            "compile": compile,
        },
        "stages": [asdict(s) for s in results],
        "fast_stage": fast_name,
        "ratio_per_epoch": ratio_per_epoch,
        "ratio_to_target": ratio_to_target,
        "precision_probe_seconds_per_step": probe,
        "precision_probe_batch_size": probe_batch,
    }


# ----------------------------------------------------------------------------------------------------
# Saving, loading and showing results
# ----------------------------------------------------------------------------------------------------
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
    baseline = next((s for s in stages if s["name"] == "seed004"), None)
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
                "change": s["label"] + (" [fast_fit]" if s["name"] == result["fast_stage"] else ""),
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


def markdown_table(result: dict[str, Any]) -> str:
    """The ladder as a Markdown table (what the chapter displays)."""
    rows = table_rows(result)
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row[h] for h in header) + " |" for row in rows]
    return "\n".join(lines)


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
