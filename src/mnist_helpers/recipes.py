"""Each chapter's final training recipe, defined once.

A recipe is everything besides the data that decides what a training run produces: the model, the
optimizer, the learning-rate schedule, the batch size, the number of epochs (from the profile budget),
early stopping, augmentation, the loss, the input normalization and the seed. Chapters train with these
recipes (chapters 4 and 6 choose theirs on validation among variants made with ``dataclasses.replace``),
and the command line (``mnist-helpers train --model NAME``) and the benchmarks read the same objects, so
"what chapter N did" cannot drift apart between them. ``tests/test_recipes.py`` checks the stored,
glued choice of each chapter against :data:`RECIPES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mnist_helpers.augment import Augmented
from mnist_helpers.data import MNIST_MEAN, MNIST_STD, MNISTSplits
from mnist_helpers.devices import native_bf16, pick_device, seed_everything
from mnist_helpers.fast import SchedulerEveryBatch, accelerate
from mnist_helpers.models import build_model
from mnist_helpers.profile import budget, current_profile
from mnist_helpers.saving import TrainingRecord, save_trained
from mnist_helpers.training import Batches, EarlyStopping, History, LossFn, Monitor, fit

Optimizer = Literal["adam", "adamw", "sgd"]
Schedule = Literal["constant", "step", "cosine", "onecycle"]
LOSSES: dict[str, LossFn] = {"cross_entropy": F.cross_entropy, "nll": F.nll_loss}


@dataclass(frozen=True)
class Recipe:
    """How to train one model. Epochs come from the profile budget ``run`` (full: the chapter's epochs)."""

    chapter: str
    model: str  # a name in mnist_helpers.models.MODEL_REGISTRY
    run: str  # a key in mnist_helpers.profile.BUDGETS
    batch_size: int
    lr: float
    optimizer: Optimizer = "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: Schedule = "constant"
    step_size: int = 1  # StepLR: multiply the lr by gamma every step_size epochs
    gamma: float = 1.0
    loss: Literal["cross_entropy", "nll"] = "cross_entropy"
    label_smoothing: float = (
        0.0  # cross_entropy's target: 1 - eps on the label, eps spread over all classes
    )
    augment: bool = False  # mnist_helpers.augment.random_affine on every training batch
    patience: int | None = None  # early stopping on `monitor`, when set
    monitor: Monitor = "val_acc"  # which validation number picks the best epoch
    bf16: bool = (
        False  # bf16 autocast + channels_last, where the device computes bf16 natively
    )
    mean: float = (
        MNIST_MEAN  # input normalization; evaluate and predict must use the same values
    )
    std: float = MNIST_STD
    seed: int = 0  # model initialisation, shuffling and augmentation
    model_config: dict[str, Any] = field(default_factory=dict)
    name: str = (
        "custom"  # its key in RECIPES; variants made with dataclasses.replace keep it
    )

    @property
    def epochs(self) -> int:
        """Epochs in the current profile (``budget(run)``)."""
        return budget(self.run).epochs

    @property
    def loss_fn(self) -> LossFn:
        if self.label_smoothing:
            if self.loss != "cross_entropy":
                raise ValueError(
                    f"label smoothing needs the cross_entropy loss, not {self.loss!r}"
                )
            return partial(F.cross_entropy, label_smoothing=self.label_smoothing)
        return LOSSES[self.loss]

    @property
    def background(self) -> float:
        """The normalized value of a black pixel, what augmentation fills uncovered corners with."""
        return (0.0 - self.mean) / self.std

    def describe(self) -> str:
        """Every setting in one line: shown by ``train --help`` and glued by the chapters."""
        config = ", ".join(f"{key}={value}" for key, value in self.model_config.items())
        optimizer = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}[
            self.optimizer
        ] + f" lr {self.lr:g}"
        optimizer += f" momentum {self.momentum:g}" * (self.momentum > 0)
        optimizer += f" weight decay {self.weight_decay:g}" * (self.weight_decay > 0)
        schedule = {
            "constant": "constant lr",
            "cosine": "cosine decay per epoch",
            "onecycle": "OneCycle per batch",
            "step": f"StepLR({self.step_size}, {self.gamma:g}) per epoch",
        }[self.schedule]
        parts = [
            f"{self.model}({config})",
            optimizer,
            schedule,
            f"batch {self.batch_size}",
            f"{budget(self.run, 'full').epochs} epochs",
            f"{self.loss} loss",
        ]
        parts += [f"label smoothing {self.label_smoothing:g}"] * (
            self.label_smoothing > 0
        )
        parts += ["random affine augmentation"] * self.augment
        parts += [f"early stopping patience {self.patience} on {self.monitor}"] * (
            self.patience is not None
        )
        parts += [
            f"best epoch by {self.monitor}",
            f"Normalize({self.mean:g}, {self.std:g})",
            f"seed {self.seed}",
        ]
        parts += ["bf16 + channels_last where native"] * self.bf16
        return ", ".join(parts)

    def build_model(self) -> nn.Module:
        """A fresh model, initialised from the recipe's seed."""
        seed_everything(self.seed)
        return build_model(self.model, **self.model_config)

    def optimizer_and_scheduler(
        self,
        model: nn.Module,
        epochs: int,
        steps_per_epoch: int,
        lr: float | None = None,
    ) -> tuple[torch.optim.Optimizer, Any]:
        """The optimizer and its schedule (None for a constant lr); OneCycle counts batches, others epochs."""
        lr = self.lr if lr is None else lr
        params = model.parameters()
        if self.optimizer == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=lr, momentum=self.momentum, weight_decay=self.weight_decay
            )
        elif self.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=self.weight_decay)
        else:
            optimizer = torch.optim.Adam(params, lr=lr, weight_decay=self.weight_decay)
        schedulers = torch.optim.lr_scheduler
        if self.schedule == "step":
            return optimizer, schedulers.StepLR(
                optimizer, step_size=self.step_size, gamma=self.gamma
            )
        if self.schedule == "cosine":
            return optimizer, schedulers.CosineAnnealingLR(optimizer, T_max=epochs)
        if self.schedule == "onecycle":
            return optimizer, schedulers.OneCycleLR(
                optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch
            )
        return optimizer, None


def fit_recipe(
    recipe: Recipe,
    model: nn.Module,
    splits: MNISTSplits,
    *,
    device: str | torch.device | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    bf16: bool | None = None,
    compile: bool = False,
    checkpoint_path: str | Path | None = None,
    progress: bool | None = None,
    on_epoch: Callable[[History], None] | None = None,
) -> History:
    """Train ``model`` with ``recipe`` through :func:`~mnist_helpers.training.fit`; any argument given
    overrides the recipe's value. ``bf16`` defaults to the recipe's choice where the device computes
    bf16 natively. The best epoch's weights end up in ``model`` and, if asked, in ``checkpoint_path``.
    """
    device = pick_device(device)
    model.to(
        device
    )  # before building the optimizer, so its state lives next to the weights
    epochs = recipe.epochs if epochs is None else epochs
    seed = recipe.seed if seed is None else seed
    train: Batches = splits.train.batches(
        batch_size or recipe.batch_size, shuffle=True, seed=seed
    )
    if recipe.augment:
        train = Augmented(train, seed=seed, background=recipe.background)
    optimizer, scheduler = recipe.optimizer_and_scheduler(model, epochs, len(train), lr)
    if recipe.schedule == "onecycle":
        train, scheduler = SchedulerEveryBatch(train, scheduler), None
    use_bf16 = recipe.bf16 and native_bf16(device) if bf16 is None else bf16
    step_model, train, val = accelerate(
        model, train, splits.val.batches(1024), bf16=use_bf16, compile=compile
    )
    early_stopping = (
        EarlyStopping(recipe.patience, recipe.monitor) if recipe.patience else None
    )
    history = fit(
        step_model,
        train,
        val,
        epochs=epochs,
        optimizer=optimizer,
        loss_fn=recipe.loss_fn,
        device=device,
        scheduler=scheduler,
        early_stopping=early_stopping,
        monitor=recipe.monitor,
        progress=progress,
        on_epoch=on_epoch,
    )
    if checkpoint_path is not None:
        record = TrainingRecord(
            recipe=recipe.name,
            description=replace(recipe, seed=seed).describe(),
            mean=recipe.mean,
            std=recipe.std,
            profile=current_profile(),
            seed=seed,
            best_epoch=history.best_epoch,
            val_acc=history.best_val_acc,
            val_loss=history.best_val_loss,
        )
        save_trained(
            Path(checkpoint_path),
            model.to(memory_format=torch.contiguous_format),
            record,
            history,
        )
    return history


_RECIPES: dict[str, Recipe] = {
    "mlp": Recipe(
        chapter="04",
        model="mlp",
        model_config={"hidden": (256, 512, 344)},
        run="04_mlp_tutorial_a",
        batch_size=128,
        lr=1e-3,
        schedule="cosine",
    ),
    "bnmlp": Recipe(
        chapter="05",
        model="bnmlp",
        model_config={"hidden": (300, 100)},
        run="05_batchnorm",
        batch_size=64,
        lr=0.01,
        optimizer="sgd",
        momentum=0.9,
        schedule="step",
        step_size=5,
        gamma=0.9,
        mean=0.5,
        std=0.5,
    ),
    "cnn": Recipe(
        chapter="06",
        model="cnn",
        run="06_cnn",
        batch_size=512,
        lr=1e-3,
        schedule="cosine",
        loss="nll",
        augment=True,
    ),
    "simplecnn": Recipe(
        chapter="07",
        model="simplecnn",
        run="07_simplecnn",
        batch_size=128,
        lr=1e-3,
        schedule="step",
        step_size=5,
        gamma=0.5,
        patience=5,
        seed=42,
    ),
    "fast": Recipe(
        chapter="09",
        model="simplecnn",
        run="09_fast",
        batch_size=512,
        lr=3e-3,
        optimizer="adamw",
        weight_decay=1e-4,
        schedule="onecycle",
        bf16=True,
        seed=42,
    ),
    # The fastest recipe found that still reaches 99.4% test accuracy on average (chapter 9's speed run).
    "speedrun": Recipe(
        chapter="09",
        model="bncnn",
        model_config={"widths": (16, 32, 64), "depths": (2, 2, 1)},
        run="09_speedrun",
        batch_size=256,
        lr=4e-3,
        optimizer="adamw",
        weight_decay=5e-4,
        schedule="onecycle",
        label_smoothing=0.1,
        bf16=True,
    ),
    # Chapter 11's own design, past 99.6%: a wider BNCNN, augmentation on every batch, chosen on validation.
    "bncnn": Recipe(
        chapter="11",
        model="bncnn",
        model_config={"widths": (32, 64, 128), "depths": (2, 2, 1)},
        run="11_bncnn",
        batch_size=128,
        lr=4e-3,
        optimizer="adamw",
        weight_decay=5e-4,
        schedule="onecycle",
        label_smoothing=0.1,
        augment=True,
        bf16=True,
    ),
}
RECIPES: dict[str, Recipe] = {
    name: replace(recipe, name=name) for name, recipe in _RECIPES.items()
}
