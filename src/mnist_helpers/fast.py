"""The chapter-8 speed recipe, as configuration of the one training loop in :mod:`mnist_helpers.training`.

Nothing here trains by itself: :func:`fast_fit` picks an optimizer, a schedule and hardware settings
known to reach high accuracy in few epochs, then calls :func:`~mnist_helpers.training.fit`. Keeping a
single loop means every speed-up is measured against exactly the same bookkeeping.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mnist_helpers.data import MNISTSplits
from mnist_helpers.training import History, fit, pick_device


def _is_convnet(model: nn.Module) -> bool:
    return any(isinstance(module, nn.Conv2d) for module in model.modules())


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
) -> History:
    """Train ``model`` on ``splits.train`` (validating on ``splits.val``) with the fast recipe.

    - AdamW + OneCycleLR stepped every batch: a short warm-up lets a large ``max_lr`` work with big
      batches, and the final anneal recovers the accuracy the high rate gave up.
    - bfloat16 autocast on CUDA only: tensor cores double throughput and bf16 needs no loss scaling;
      on CPU it is usually slower, so CPU stays fp32.
    - channels_last on CUDA for convnets: the memory layout cuDNN's fastest convolutions expect.
    - ``compile=True`` wraps the model in ``torch.compile``; its one-off cost is reported separately in
      ``History.compile_seconds`` so it is not mistaken for training time.

    ``seed`` fixes the shuffling order; seed the model's initialisation yourself (``seed_everything``).
    """
    device = pick_device(device)
    on_cuda = device.type == "cuda"
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
        autocast_dtype=torch.bfloat16 if on_cuda else None,
        channels_last=on_cuda and _is_convnet(model),
        compile=compile,
        progress=progress,
        target_val_acc=target_val_acc,
    )
