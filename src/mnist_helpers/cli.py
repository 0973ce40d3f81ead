"""The book's command line: ``python -m mnist_helpers`` (also installed as ``mnist-helpers``).

Three commands cover what a reader does outside the notebooks: ``train`` a model with a chapter's recipe,
``predict`` digits in their own photos, and ``evaluate`` a checkpoint on the test set. Each chapter's
recipe lives in the one :data:`RECIPES` table, so ``train --model cnn`` means exactly what chapter 05 did.

Exit codes: 0 success; 1 an error (one line on stderr, no traceback), or some images could not be read;
2 bad command-line arguments (argparse's usual message).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from mnist_helpers.checkpoints import load_checkpoint, save_checkpoint
from mnist_helpers.data import MNIST_MEAN, MNIST_STD, TensorSplit, load_mnist_splits, mnist_tensors
from mnist_helpers.evaluation import collect_predictions, confusion_matrix, most_confused_pairs, per_class_accuracy
from mnist_helpers.inference import ImagePreprocessError, classify, normalise, preprocess_steps
from mnist_helpers.models import MODEL_REGISTRY, build_model, count_parameters
from mnist_helpers.profile import budget, current_profile
from mnist_helpers.training import EarlyStopping, evaluate, fit, pick_device, seed_everything

PROG = "mnist-helpers"


@dataclass(frozen=True)
class Recipe:
    """How one chapter trains its model. Epochs and image counts come from the profile budget ``run``."""

    chapter: str
    run: str  # key in mnist_helpers.profile.BUDGETS: full profile = the chapter's epochs, smoke = tiny
    batch_size: int
    lr: float
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.0
    step_size: int | None = None  # StepLR(step_size, gamma) stepped once per epoch, when set
    gamma: float = 1.0
    loss: Literal["cross_entropy", "nll"] = "cross_entropy"
    mean: float = MNIST_MEAN  # input normalisation; predict must use the same values
    std: float = MNIST_STD
    patience: int | None = None  # early stopping on validation loss, when set
    seed: int = 0

    def describe(self) -> str:
        """One line for ``train --help`` and the training log, e.g. "ch05: Adam lr 0.001, batch 512, ..."."""
        optimizer = f"SGD momentum {self.momentum:g}" if self.optimizer == "sgd" else "Adam"
        parts = [f"ch{self.chapter}: {optimizer} lr {self.lr:g}", f"batch {self.batch_size}",
                 f"{budget(self.run, 'full').epochs} epochs"]
        if self.step_size is not None:
            parts.append(f"StepLR({self.step_size}, {self.gamma:g})")
        if self.loss == "nll":
            parts.append("nll loss")
        if self.patience is not None:
            parts.append(f"early stopping patience {self.patience} on val loss")
        parts.append(f"Normalize({self.mean:g}, {self.std:g})")
        return ", ".join(parts)


RECIPES: dict[str, Recipe] = {
    "mlp": Recipe(chapter="03", run="03_mlp_seed000", batch_size=128, lr=1e-3),
    "bnmlp": Recipe(chapter="04", run="04_batchnorm", batch_size=64, lr=0.01, optimizer="sgd", momentum=0.9,
                    step_size=5, gamma=0.9, mean=0.5, std=0.5),
    "cnn": Recipe(chapter="05", run="05_cnn", batch_size=512, lr=1e-3, loss="nll"),
    "simplecnn": Recipe(chapter="06", run="06_simplecnn", batch_size=128, lr=1e-3, step_size=5, gamma=0.5,
                        patience=5, seed=42),
}

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": F.cross_entropy,
    "nll": F.nll_loss,
}


def _recipe_for(model: nn.Module) -> tuple[str, Recipe]:
    # Exact type, not isinstance: a BatchNormMLP is also an MLP, and its recipe normalizes differently.
    name = next(key for key, cls in MODEL_REGISTRY.items() if type(model) is cls)
    return name, RECIPES[name]


def _normalisation(model: nn.Module, metadata: dict[str, Any]) -> tuple[float, float]:
    """The mean/std the checkpoint's model was trained with: stored by ``train``, else its chapter's recipe."""
    stored = metadata.get("normalization")
    if isinstance(stored, dict) and {"mean", "std"} <= stored.keys():
        return float(stored["mean"]), float(stored["std"])
    recipe = _recipe_for(model)[1]
    return recipe.mean, recipe.std


def _load(path: str, device: str | None) -> tuple[nn.Module, dict[str, Any], torch.device]:
    device_ = pick_device(device)
    model, metadata = load_checkpoint(path, map_location=device_)
    return model, metadata, device_


# ----------------------------------------------------------------------------------------------- train


def _optimizer_and_scheduler(recipe: Recipe, model: nn.Module, lr: float) -> tuple[torch.optim.Optimizer, Any]:
    if recipe.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=recipe.momentum)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if recipe.step_size is None:
        return optimizer, None
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe.step_size, gamma=recipe.gamma)


def command_train(args: argparse.Namespace) -> int:
    """Train with the recipe (overridden by any option given), test once, save the best-epoch checkpoint."""
    recipe = RECIPES[args.model]
    b = budget(recipe.run)
    epochs = args.epochs or b.epochs
    batch_size = args.batch_size or recipe.batch_size
    lr = args.lr or recipe.lr
    seed = recipe.seed if args.seed is None else args.seed
    train_images = args.train_images or b.train_images
    test_images = args.test_images or b.test_images
    out = Path(args.out or Path("checkpoints") / current_profile() / f"{args.model}.pt")
    device = pick_device(args.device)

    splits = load_mnist_splits(train_images=train_images, test_images=test_images, seed=seed,
                               mean=recipe.mean, std=recipe.std, device=device)
    seed_everything(seed)
    model = build_model(args.model)
    print(f"profile {current_profile()}: {args.model} ({count_parameters(model):,} parameters) on {device}; "
          f"{len(splits.train):,} train / {len(splits.val):,} validation / {len(splits.test):,} test images")
    print(f"recipe: {recipe.describe()}")
    print(f"this run: {epochs} epoch{'s' * (epochs != 1)}, batch {batch_size}, lr {lr:g}, seed {seed}")

    optimizer, scheduler = _optimizer_and_scheduler(recipe, model, lr)
    early_stopping = EarlyStopping(patience=recipe.patience, monitor="val_loss") if recipe.patience else None
    loss_fn = LOSSES[recipe.loss]
    history = fit(model, splits.train.batches(batch_size, shuffle=True, seed=seed), splits.val.batches(1024),
                  epochs=epochs, optimizer=optimizer, loss_fn=loss_fn, device=device, scheduler=scheduler,
                  early_stopping=early_stopping)
    for epoch in range(history.epochs):
        print(f"epoch {epoch + 1:>3}: train loss {history.train_loss[epoch]:.4f} acc "
              f"{100 * history.train_acc[epoch]:.2f}% | val loss {history.val_loss[epoch]:.4f} acc "
              f"{100 * history.val_acc[epoch]:.2f}% | {history.seconds[epoch]:.1f} s")
    if history.stopped_early:
        print(f"stopped early after epoch {history.epochs}: validation loss stopped improving")

    # fit restored the best epoch's weights (chosen on validation); the test set is touched once, here.
    test_loss, test_acc = evaluate(model, splits.test.batches(1024), loss_fn, device=device)
    save_checkpoint(out, model, recipe=args.model, epoch=history.best_epoch, val_acc=history.best_val_acc,
                    val_loss=history.best_val_loss, test_acc=test_acc, test_loss=test_loss,
                    normalization={"mean": recipe.mean, "std": recipe.std}, seed=seed, lr=lr,
                    batch_size=batch_size, profile=current_profile(), history=history.as_dict())
    print(f"best epoch {history.best_epoch} (validation accuracy {100 * history.best_val_acc:.2f}%)")
    print(f"test accuracy {100 * test_acc:.2f}% ({round(test_acc * len(splits.test)):,}/{len(splits.test):,})")
    print(f"checkpoint written to {out}")
    return 0


# --------------------------------------------------------------------------------------------- predict


def _preprocessed_name(index: int, source: str) -> str:
    """``03_photo.png``: numbered so two ``digit.png`` from different folders do not overwrite each other."""
    return f"{index:02d}_{Path(source).stem}.png"


def _write_table(rows: list[dict[str, Any]]) -> None:
    width = max([len("file")] + [len(row["file"]) for row in rows])
    print(f"{'file':<{width}}  prediction  confidence  runner-up")
    for row in rows:
        if "error" in row:
            print(f"{row['file']:<{width}}  {'-':>10}  {'-':>10}  (failed, see stderr)")
        else:
            second = int(np.argsort(row["probabilities"])[-2])
            print(f"{row['file']:<{width}}  {row['prediction']:>10}  {100 * row['confidence']:>9.1f}%  "
                  f"{second} ({100 * row['probabilities'][second]:.1f}%)")


def _write_csv(rows: list[dict[str, Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["file", "prediction", "confidence"])
    for row in rows:
        if "error" not in row:  # the failure is on stderr; a CSV consumer gets only real predictions
            writer.writerow([row["file"], row["prediction"], f"{row['confidence']:.4f}"])


def _write_json(rows: list[dict[str, Any]]) -> None:
    json.dump(rows, sys.stdout, indent=2)
    print()


WRITERS: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "table": _write_table, "csv": _write_csv, "json": _write_json,
}


def command_predict(args: argparse.Namespace) -> int:
    """Preprocess and classify each image; an unusable image is reported and skipped, never fatal."""
    model, metadata, _ = _load(args.checkpoint, args.device)
    mean, std = _normalisation(model, metadata)
    if args.show_preprocessed is not None:
        args.show_preprocessed.mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, Any]] = []
    inputs: list[torch.Tensor] = []
    for index, source in enumerate(args.images):
        try:
            frame = preprocess_steps(source)["centred"]
        except ImagePreprocessError as error:
            print(f"{PROG}: {error}", file=sys.stderr)
            rows.append({"file": source, "error": error.reason})
            continue
        if args.show_preprocessed is not None:
            Image.fromarray(frame.round().astype(np.uint8)).save(
                args.show_preprocessed / _preprocessed_name(index, source))
        inputs.append(normalise(frame, mean, std))
        rows.append({"file": source})

    predictions = iter(classify(model, torch.stack(inputs)) if inputs else [])
    for row in rows:
        if "error" not in row:
            label, probabilities = next(predictions)
            row.update(prediction=label, confidence=float(probabilities[label]),
                       probabilities=[round(float(p), 6) for p in probabilities])
    WRITERS[args.format](rows)
    failed = sum("error" in row for row in rows)
    if failed:
        print(f"{PROG}: {failed} of {len(rows)} images could not be used", file=sys.stderr)
    return 1 if failed else 0


# -------------------------------------------------------------------------------------------- evaluate


def command_evaluate(args: argparse.Namespace) -> int:
    """Overall and per-digit test accuracy, with the input normalisation the model was trained with."""
    model, metadata, device = _load(args.checkpoint, args.device)
    name, recipe = _recipe_for(model)
    mean, std = _normalisation(model, metadata)
    test_images = args.test_images or budget(recipe.run).test_images
    images, labels = mnist_tensors(train=False, limit=test_images)
    test = TensorSplit(((images.float() / 255 - mean) / std).to(device), labels.to(device))

    result = collect_predictions(model, test, device=device)
    cm = confusion_matrix(result.y_true, result.y_pred)
    per_class = per_class_accuracy(cm)
    correct = int((result.y_true == result.y_pred).sum())
    print(f"{args.checkpoint}: {name} on {len(test):,} test images")
    print(f"test accuracy {100 * result.accuracy:.2f}% ({correct:,}/{len(test):,})")
    print()
    print("digit  images  correct  accuracy")
    for digit in range(10):
        print(f"{digit:>5}  {cm[digit].sum():>6}  {cm[digit, digit]:>7}  {100 * per_class[digit]:>7.2f}%")
    pairs = most_confused_pairs(cm, k=3)
    if pairs:
        print()
        print("most confused: " + ", ".join(f"{t} read as {p} ({n}x)" for t, p, n in pairs))
    return 0


# -------------------------------------------------------------------------------------------- argparse


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type accepting only numbers > 0, so '--epochs 0' is a usage error, not a crash later."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train, evaluate and use the MNIST models of the book 'MNIST handwritten-digit "
                    "recognition with PyTorch'.",
        epilog="Set MNIST_BOOK_PROFILE=smoke for a quick run on a few thousand images. "
               "Run '%(prog)s COMMAND --help' for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    device_help = "cpu, cuda or mps (default: the fastest available)"
    checkpoint_help = "a checkpoint written by 'train' or by a chapter"

    recipes = "\n".join(f"  {name:<10} {textwrap.fill(recipe.describe(), 90, subsequent_indent=' ' * 13)}"
                         for name, recipe in RECIPES.items())
    train = commands.add_parser(
        "train", help="train a model with its chapter's recipe and save the best checkpoint",
        description="Train on the training split, pick the best epoch on a validation split (never on\n"
                    "the test set), report test accuracy once, and save a checkpoint.",
        epilog=f"recipes (defaults; full-profile epochs):\n{recipes}\n\n"
               "Under MNIST_BOOK_PROFILE=smoke the defaults shrink to 4000 training images, 2000 test\n"
               "images and 1 epoch.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--model", required=True, choices=RECIPES, help="which chapter's model to train")
    train.add_argument("--epochs", metavar="N", type=_positive(int), help="epochs (default: the recipe's)")
    train.add_argument("--batch-size", metavar="B", type=_positive(int), help="batch size (default: the recipe's)")
    train.add_argument("--lr", metavar="LR", type=_positive(float), help="learning rate (default: the recipe's)")
    train.add_argument("--seed", metavar="S", type=int, help="random seed (default: the recipe's)")
    train.add_argument("--out", metavar="PATH", type=Path,
                       help="checkpoint to write (default: checkpoints/<profile>/<model>.pt)")
    train.add_argument("--train-images", metavar="N", type=_positive(int),
                       help="use only the first N of the 60,000 training images, before the validation split")
    train.add_argument("--test-images", metavar="N", type=_positive(int),
                       help="use only the first N of the 10,000 test images")
    train.add_argument("--device", metavar="DEVICE", help=device_help)
    train.set_defaults(run=command_train)

    predict = commands.add_parser(
        "predict", help="read handwritten digits from image files",
        description="Preprocess each photo MNIST-style (grey, ink on black, cropped, scaled to 20 px, "
                    "centred by mass in 28x28) and print the model's answer. Images that cannot be used "
                    "are reported on stderr; the others are still predicted and the exit status is 1.",
    )
    predict.add_argument("--checkpoint", metavar="PATH", required=True, help=checkpoint_help)
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    predict.add_argument("--format", choices=WRITERS, default="table",
                         help="output: an aligned table (default), CSV (file,prediction,confidence) or JSON")
    predict.add_argument("--show-preprocessed", type=Path, metavar="DIR",
                         help="also save the 28x28 image the model saw for each input, as PNG in DIR")
    predict.add_argument("--device", metavar="DEVICE", help=device_help)
    predict.set_defaults(run=command_predict)

    evaluate_ = commands.add_parser(
        "evaluate", help="test accuracy and per-digit accuracy of a checkpoint",
        description="Evaluate a checkpoint on the MNIST test set: overall accuracy, a per-digit table "
                    "and the most confused pairs.",
    )
    evaluate_.add_argument("--checkpoint", metavar="PATH", required=True, help=checkpoint_help)
    evaluate_.add_argument("--test-images", metavar="N", type=_positive(int),
                           help="use only the first N test images (default: all; 2000 in the smoke profile)")
    evaluate_.add_argument("--device", metavar="DEVICE", help=device_help)
    evaluate_.set_defaults(run=command_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mnist_helpers`` and the ``mnist-helpers`` script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, ValueError, OSError) as error:
        # Missing or corrupt checkpoint/data, an unusable device, a diverged run: the message says what
        # to fix, and a traceback would only bury it.
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
