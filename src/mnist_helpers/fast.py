"""The chapter-8 speed-ups, layered on the one training loop of :mod:`mnist_helpers.training`.

Nothing here has a loop of its own. Each speed-up wraps something the loop already takes:

- :class:`Autocast` wraps the *model*, so its forward pass runs in bfloat16 where the hardware has it;
- :class:`ChannelsLast` wraps the *batches*, handing the model images in the memory layout that oneDNN's
  and cuDNN's fastest convolutions read;
- :class:`SchedulerEveryBatch` wraps the *batches* too, stepping a per-batch schedule such as OneCycle
  after every optimizer step.

:func:`accelerate` applies the first two; :func:`mnist_helpers.recipes.fit_recipe` uses all three for the
book's fast recipe (``RECIPES["fast"]``), so every speed-up is measured against exactly the same
bookkeeping as chapter 4's loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from mnist_helpers.training import Batches


class Autocast(nn.Module):
    """Run the wrapped model's forward pass under ``torch.autocast``: matrix work in ``dtype``.

    bf16 keeps float32's exponent range, so unlike float16 it needs no loss scaling. The logits are
    handed back in float32, so the loss (a sum over the batch, where bf16's 8-bit mantissa would round
    away small terms) is computed in float32 by the unchanged training loop.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, dtype=self.dtype):
            logits = self.model(x)
        return logits.float()


class ChannelsLast:
    """Batches whose images are stored channels-last (NHWC), the layout fast convolution kernels want."""

    def __init__(self, batches: Batches) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in self.batches:
            yield x.contiguous(memory_format=torch.channels_last), y


class SchedulerEveryBatch:
    """Batches that step ``scheduler`` once the training step on each batch is done.

    The code after ``yield`` runs when the loop asks for the next batch, i.e. after its ``optimizer.step()``
    on this one: exactly where a per-batch schedule must step, without a second copy of the loop.
    """

    def __init__(self, batches: Batches, scheduler: Any) -> None:
        self.batches, self.scheduler = batches, scheduler

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for batch in self.batches:
            yield batch
            self.scheduler.step()


def _is_convnet(model: nn.Module) -> bool:
    return any(isinstance(module, nn.Conv2d) for module in model.modules())


def accelerate(
    model: nn.Module,
    train_batches: Batches,
    val_batches: Batches,
    *,
    bf16: bool,
    channels_last: bool = False,
    compile: bool = False,
) -> tuple[nn.Module, Batches, Batches]:
    """The model and batches to hand :func:`~mnist_helpers.training.fit` for the chosen speed-ups.

    ``bf16``: autocast to bfloat16 and, for convnets, the channels_last layout (ask
    :func:`~mnist_helpers.devices.native_bf16` whether the device computes bf16 natively: elsewhere it is
    emulated and slower). ``channels_last``: that layout for a convnet in fp32 too (oneDNN's fp32
    convolutions are faster in it on a CPU; chapter 9 measures by how much). ``compile``: ``torch.compile`` the model; compiling happens during the first
    steps, so its cost shows up in epoch 1's time. The returned model shares its weights with ``model``,
    so the best epoch's weights that ``fit`` restores land in ``model`` too.
    """
    step_model = model
    if (bf16 or channels_last) and _is_convnet(model):
        model.to(memory_format=torch.channels_last)
        train_batches, val_batches = (
            ChannelsLast(train_batches),
            ChannelsLast(val_batches),
        )
    if bf16:
        step_model = Autocast(step_model)
    if compile:
        step_model = torch.compile(step_model)
    return step_model, train_batches, val_batches
