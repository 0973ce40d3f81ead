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
from mnist_helpers.data import MNIST_MEAN, MNIST_STD, MNISTSplits, normalized_level
from mnist_helpers.devices import native_bf16, pick_device, seed_everything
from mnist_helpers.fast import SchedulerEveryBatch, accelerate
from mnist_helpers.models import build_model
from mnist_helpers.profile import Profile, budget, current_profile
from mnist_helpers.saving import TrainingRecord, save_trained
from mnist_helpers.training import (
    Batches,
    EarlyStopping,
    History,
    Hooks,
    LossFn,
    Monitor,
    fit,
)

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
    betas: tuple[float, float] = (
        0.9,
        0.999,
    )  # Adam/AdamW: decay of the gradient's running mean and square
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
    channels_last: bool = (
        False  # convnets: the NHWC layout in fp32 too (bf16 always uses it)
    )
    compile: bool = False  # torch.compile the model (chapter 9's ladder)
    epochs: int | None = None  # fixed epochs; None: the profile budget of `run`
    mean: float = (
        MNIST_MEAN  # input normalization; evaluate and predict must use the same values
    )
    std: float = MNIST_STD
    seed: int = 0  # model initialisation, shuffling and augmentation
    model_config: dict[str, Any] = field(default_factory=dict)
    name: str = (
        "custom"  # its key in RECIPES; variants made with dataclasses.replace keep it
    )

    def epochs_for(self, profile: Profile) -> int:
        """Epochs in ``profile``: the fixed ``epochs`` if set, else ``budget(run, profile)``. The profile is
        passed in, never read from the environment here, so a recipe is a plain value."""
        fixed = self.epochs
        return fixed if fixed is not None else budget(self.run, profile).epochs

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
        return normalized_level(0, self.mean, self.std)

    def describe(self) -> str:
        """Every setting in one line: shown by ``train --help`` and glued by the chapters."""
        config = ", ".join(f"{key}={value}" for key, value in self.model_config.items())
        optimizer = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}[
            self.optimizer
        ] + f" lr {self.lr:g}"
        optimizer += f" momentum {self.momentum:g}" * (self.momentum > 0)
        optimizer += f" betas {self.betas[0]:g}/{self.betas[1]:g}" * (
            self.betas != (0.9, 0.999) and self.optimizer != "sgd"
        )
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
            f"{self.epochs_for('full')} epochs",
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
        parts += ["channels_last"] * (self.channels_last and not self.bf16)
        parts += ["torch.compile"] * self.compile
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
            optimizer = torch.optim.AdamW(
                params, lr=lr, betas=self.betas, weight_decay=self.weight_decay
            )
        else:
            optimizer = torch.optim.Adam(
                params, lr=lr, betas=self.betas, weight_decay=self.weight_decay
            )
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


def _training_batches(
    recipe: Recipe, splits: MNISTSplits, model: nn.Module, epochs: int
) -> tuple[Batches, torch.optim.Optimizer, Any]:
    """The training batches (augmented, and stepping a per-batch schedule, as the recipe says), the
    optimizer and the per-epoch scheduler (None when there is none or it steps every batch)."""
    train: Batches = splits.train.batches(
        recipe.batch_size, shuffle=True, seed=recipe.seed
    )
    if recipe.augment:
        train = Augmented(train, seed=recipe.seed, background=recipe.background)
    optimizer, scheduler = recipe.optimizer_and_scheduler(model, epochs, len(train))
    if recipe.schedule == "onecycle":
        train, scheduler = SchedulerEveryBatch(train, scheduler), None
    return train, optimizer, scheduler


def fit_recipe(
    recipe: Recipe,
    model: nn.Module,
    splits: MNISTSplits,
    *,
    device: str | torch.device | None = None,
    profile: Profile | None = None,
    checkpoint_path: str | Path | None = None,
    progress: bool | None = None,
    on_epoch: Callable[[History], None] | None = None,
) -> History:
    """Train ``model`` with ``recipe`` through :func:`~mnist_helpers.training.fit`; the best epoch's
    weights end up in ``model`` and, if asked, in ``checkpoint_path`` (:func:`save_recipe_checkpoint`).

    Every setting comes from the recipe: a run that differs (another seed, one epoch, bf16 forced off)
    trains ``dataclasses.replace(recipe, ...)``, so its checkpoint describes what actually ran. The
    number of epochs is ``recipe.epochs_for(profile)``, ``profile`` defaulting to the current one, read
    once here. bf16 is used where the recipe asks for it and the device computes bf16 natively.
    """
    profile = profile if profile is not None else current_profile()
    device = pick_device(device)
    model.to(device)  # before the optimizer, so its state lives next to the weights
    epochs = recipe.epochs_for(profile)
    train, optimizer, scheduler = _training_batches(recipe, splits, model, epochs)
    step_model, train, val = accelerate(
        model,
        train,
        splits.val.batches(1024),
        bf16=recipe.bf16 and native_bf16(device),
        channels_last=recipe.channels_last,
        compile=recipe.compile,
    )
    patience = recipe.patience
    stopping = EarlyStopping(patience, recipe.monitor) if patience else None
    history = fit(
        step_model,
        train,
        val,
        epochs=epochs,
        optimizer=optimizer,
        loss_fn=recipe.loss_fn,
        device=device,
        hooks=Hooks(
            scheduler=scheduler,
            monitor=recipe.monitor,
            early_stopping=stopping,
            progress=progress,
            on_epoch=on_epoch,
        ),
    )
    if checkpoint_path is not None:
        save_recipe_checkpoint(Path(checkpoint_path), recipe, model, history, profile)
    return history


def training_record(
    recipe: Recipe,
    profile: Profile,
    history: History | None = None,
    test: tuple[float, float] | None = None,
) -> TrainingRecord:
    """The record a checkpoint of ``recipe`` carries, written in one place for every way of training
    (the chapters, the command line, torchrun): the recipe's name and description as it ran (its
    ``replace``-d seed, batch, lr and epochs), its normalisation, the profile, the best epoch's
    validation metrics once trained, and the test ``(loss, accuracy)`` where it was measured."""
    test_loss, test_acc = test if test is not None else (None, None)
    return TrainingRecord(
        recipe=recipe.name,
        description=recipe.describe(),
        mean=recipe.mean,
        std=recipe.std,
        profile=profile,
        seed=recipe.seed,
        best_epoch=history.best_epoch if history else None,
        val_acc=history.best_val_acc if history else None,
        val_loss=history.best_val_loss if history else None,
        test_acc=test_acc,
        test_loss=test_loss,
    )


def save_recipe_checkpoint(
    path: Path, recipe: Recipe, model: nn.Module, history: History, profile: Profile
) -> None:
    """Save ``model``, trained by ``recipe`` in ``profile``, with its typed record and history."""
    record = training_record(recipe, profile, history)
    save_trained(path, model.to(memory_format=torch.contiguous_format), record, history)


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
# Chapter 9's fastest fp32 recipes: the fastest found whose mean test accuracy over seeds reaches 99.0%,
# 99.4% and 99.5% on a CPU without bf16 (chosen on validation; benchmarks/fastest.py measures them).
# After tuomaso/train_mnist_fast: a small FastCNN, Adam with short memory (betas 0.7/0.9) at a high OneCycle
# peak, label smoothing, batch 256, channels_last; the 99.5% one adds random affine augmentation.
_FASTEST = Recipe(
    chapter="09",
    model="fastcnn",
    run="09_fastest_994",
    batch_size=256,
    lr=0.01,
    betas=(0.7, 0.9),
    schedule="onecycle",
    label_smoothing=0.1,
    channels_last=True,
)
_RECIPES |= {
    "fastest_990": replace(
        _FASTEST, run="09_fastest_990", model_config={"widths": (16, 32), "hidden": 128}
    ),
    "fastest_994": replace(_FASTEST, model_config={"widths": (24, 32), "hidden": 256}),
    "fastest_995": replace(
        _FASTEST,
        run="09_fastest_995",
        model_config={"widths": (24, 32), "hidden": 256},
        augment=True,
    ),
}
RECIPES: dict[str, Recipe] = {
    name: replace(recipe, name=name) for name, recipe in _RECIPES.items()
}
