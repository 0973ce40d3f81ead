"""The chapter-8 speed recipe, as configuration of the one training loop in :mod:`mnist_helpers.training`.

Nothing here trains by itself: :func:`fast_fit` picks an optimizer, a schedule and hardware settings
known to reach high accuracy in few epochs, then calls :func:`~mnist_helpers.training.fit`. Keeping a
single loop means every speed-up is measured against exactly the same bookkeeping.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch
from torch import nn

from mnist_helpers.data import MNISTSplits
from mnist_helpers.training import History, fit, pick_device


_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _is_convnet(model: nn.Module) -> bool:
    return any(isinstance(module, nn.Conv2d) for module in model.modules())


@cache
def _cpu_has_bf16_instructions() -> bool:
    """Read the CPU flags (Linux): without AVX512-BF16 or AMX, bf16 on a CPU is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in _CPU_BF16_FLAGS)


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA GPU that supports it, or a CPU with bf16
    instructions. Only there does :func:`fast_fit` switch to bf16 autocast, because elsewhere it costs time.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_bf16_instructions()


def fast_fit(
    model: nn.Module,
    splits: MNISTSplits,
    *,
    epochs: int,
    batch_size: int = 512,
    max_lr: float = 3e-3,
    weight_decay: float = 1e-4,
    device: str | torch.device | None = None,
    compile: bool = False,
    checkpoint_path: str | Path | None = None,
    target_val_acc: float | None = None,
    seed: int = 0,
    progress: bool | None = None,
    hardware_tuned: bool | None = None,
) -> History:
    """Train ``model`` on ``splits.train`` (validating on ``splits.val``) with the fast recipe.

    - AdamW + OneCycleLR stepped every batch: a short warm-up lets a large ``max_lr`` work with big
      batches, and the final anneal recovers the accuracy the high rate gave up.
    - ``hardware_tuned`` (default: :func:`native_bf16` of the device): bfloat16 autocast plus, for
      convnets, the channels_last layout that cuDNN's and oneDNN's fastest bf16 convolutions expect.
      bf16 needs no loss scaling. On a GPU it uses tensor cores; on a CPU with AVX512-BF16/AMX it was
      measured 3x faster per SimpleCNN step (chapter 8); on other CPUs it would be emulated, so fp32 stays.
    - ``compile=True`` wraps the model in ``torch.compile``; its one-off cost is reported separately in
      ``History.compile_seconds`` so it is not mistaken for training time.

    ``seed`` fixes the shuffling order; seed the model's initialisation yourself (``seed_everything``).
    """
    device = pick_device(device)
    tuned = native_bf16(device) if hardware_tuned is None else hardware_tuned
    model.to(device)  # before building the optimizer, so its state lives next to the weights
    train_batches = splits.train.batches(batch_size, shuffle=True, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=max_lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=len(train_batches)
    )
    return fit(
        model,
        train_batches,
        splits.val.batches(batch_size),
        epochs=epochs,
        optimizer=optimizer,
        device=device,
        scheduler=scheduler,
        scheduler_interval="batch",
        checkpoint_path=checkpoint_path,
        autocast_dtype=torch.bfloat16 if tuned else None,
        channels_last=tuned and _is_convnet(model),
        compile=compile,
        progress=progress,
        target_val_acc=target_val_acc,
    )
