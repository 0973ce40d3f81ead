"""The book's command line: ``python -m mnist_helpers`` (also installed as ``mnist-helpers``).

Three commands cover what a reader does outside the notebooks: ``train`` a model with a chapter's recipe,
``predict`` digits in their own photos, and ``evaluate`` a checkpoint on the test set. Each chapter's
recipe is read from :data:`mnist_helpers.recipes.RECIPES`, the table the chapters train with, so
``train --model cnn`` means exactly what chapter 6 did.

Exit codes: 0 success (also when a reader such as ``head`` closes the pipe early); 1 an error (one line
on stderr, no traceback), or some images could not be read; 2 bad command-line arguments (argparse's
usual message); 130 Ctrl-C and 143 SIGTERM (128 + the signal's number, as shells report), after ``train``
has saved its best epoch so far.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import signal
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from PIL import Image
from torch import nn

from mnist_helpers.atomic import keep_numbered_backup
from mnist_helpers.checkpoints import load_checkpoint, save_checkpoint
from mnist_helpers.data import (
    MNISTSplits,
    TensorSplit,
    load_mnist_splits,
    mnist_tensors,
    normalize,
)
from mnist_helpers.devices import model_device, pick_device
from mnist_helpers.distributed import (
    BestSoFar,
    launched_by_torchrun,
    refuse_useless_at,
    train_distributed,
)
from mnist_helpers.evaluation import (
    collect_predictions,
    confusion_matrix,
    most_confused_pairs,
    per_class_accuracy,
)
from mnist_helpers.export import check_parity, export_onnx, onnx_session
from mnist_helpers.inference import ImagePreprocessError, predict
from mnist_helpers.models import MODEL_REGISTRY, count_parameters
from mnist_helpers.profile import DEFAULT_BUDGET, Budget, budget, current_profile
from mnist_helpers.recipes import RECIPES, Recipe, fit_recipe, training_record
from mnist_helpers.safe_output import printable, spreadsheet_safe
from mnist_helpers.saving import (
    CHANCE_ACCURACY,
    TrainingRecord,
    check_destination,
    check_free_space,
    locked_destination,
    save_trained,
)
from mnist_helpers.training import History, evaluate

PROG = "mnist-helpers"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so it unwinds exactly like Ctrl-C.

    ``timeout``, Slurm, Docker, systemd and torchrun stop a job with SIGTERM, whose default action kills
    Python on the spot: every finished epoch would be lost. As a ``KeyboardInterrupt`` it reaches the
    same ``except`` that saves the best epoch so far; being a subclass, it is told apart for the exit
    status (143, not 130) and the message.
    """


def _raise_terminated(signum: int, frame: object) -> None:
    """The SIGTERM handler. It ignores any further SIGTERM first: a second one must not cut the
    partial checkpoint's write short (the sender's SIGKILL after its grace period still stops us)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated`; the previous handler is restored after.

    Python only lets the main thread set handlers; elsewhere (``main`` called from a thread) SIGTERM
    keeps its default action.
    """
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _recipe_name(metadata: dict[str, Any]) -> str:
    """The recipe the checkpoint records; checkpoints saved by hand (``torch.save`` or ``fit``) have none."""
    record = TrainingRecord.from_metadata(metadata)
    return record.recipe if record is not None else "a model with no training record"


def _normalization(model: nn.Module, metadata: dict[str, Any]) -> tuple[float, float]:
    """The mean/std the model was trained with: from its training record, else the book's default for its
    kind of model (the normalization every chapter that trains that model uses; chapter 5's MLP differs)."""
    record = TrainingRecord.from_metadata(metadata)
    if record is not None:
        return record.mean, record.std
    stored = metadata.get("normalization")
    if isinstance(stored, dict) and {"mean", "std"} <= stored.keys():
        return float(stored["mean"]), float(stored["std"])
    recipe = next(
        recipe
        for recipe in RECIPES.values()
        if MODEL_REGISTRY[recipe.model] is type(model)
    )
    return recipe.mean, recipe.std


def _load(
    path: str, device: str | None
) -> tuple[nn.Module, dict[str, Any], torch.device]:
    """The checkpoint's model on the device; a plain state_dict's guessed class is said on stderr."""
    device_ = pick_device(device)
    model, metadata = load_checkpoint(path, map_location=device_)
    if "matched" in metadata:
        print(
            f"{PROG}: note: {printable(path)} is {metadata['matched']}", file=sys.stderr
        )
    return model, metadata, device_


# ----------------------------------------------------------------------------------------------- train


PARTIAL_SUFFIX = ".partial.pt"  # where an interrupted run keeps its best epoch so far


class EpochReporter(BestSoFar):
    """Prints each epoch's line the moment it ends, and keeps a copy of the best weights so far.

    Printing after ``fit`` returned would show nothing until the end (and nothing at all after a Ctrl-C);
    flushing matters when stdout is a pipe or a log file, which Python buffers.
    """

    def __call__(self, history: History) -> None:
        super().__call__(
            history
        )  # keep the weights first: a signal may arrive once the line is out
        epoch = history.epochs
        print(
            f"epoch {epoch:>3}: train loss {history.train_loss[-1]:.4f} acc {100 * history.train_acc[-1]:.2f}% "
            f"| val loss {history.val_loss[-1]:.4f} acc {100 * history.val_acc[-1]:.2f}% "
            f"| {history.seconds[-1]:.1f} s",
            flush=True,
        )


def _stopped_by(stop: BaseException | None) -> str:
    """How the run was stopped, in the words of the message that follows."""
    return "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"


def save_partial(
    reporter: BestSoFar,
    out: Path,
    record: TrainingRecord,
    stop: BaseException | None = None,
) -> None:
    """After Ctrl-C or SIGTERM (``stop``): save the best epoch so far next to ``out``, clearly named as
    partial, and say so."""
    history = reporter.history
    if reporter.best_state is None:
        print(
            f"{PROG}: {_stopped_by(stop)} before the first epoch ended: nothing to save",
            file=sys.stderr,
        )
        return
    reporter.model.load_state_dict(reporter.best_state)
    partial = out.with_name(out.name.removesuffix(".pt") + PARTIAL_SUFFIX)
    record = replace(
        record,
        best_epoch=history.best_epoch,
        val_acc=history.best_val_acc,
        val_loss=history.best_val_loss,
    )
    save_checkpoint(
        partial,
        reporter.model,
        **record.metadata(),
        partial=True,
        history=history.as_dict(),
    )
    print(
        f"{PROG}: {_stopped_by(stop)} after {history.epochs} epoch(s); the best so far (epoch {history.best_epoch}, "
        f"validation accuracy {100 * history.best_val_acc:.2f}%) is saved as {partial}",
        file=sys.stderr,
        flush=True,
    )


def command_train(args: argparse.Namespace) -> int:
    """Train with the recipe (overridden by any option given), test once, save the best-epoch checkpoint.

    The whole run holds the lock on ``--out`` (only rank 0 under torchrun: the other ranks never write
    it), so a second run on the same path stops at once instead of overwriting this one's model.
    """
    out = Path(args.out or Path("checkpoints") / current_profile() / f"{args.model}.pt")
    check_destination(out)
    if os.environ.get("RANK", "0") != "0":
        return _train(args, out)
    with locked_destination(out):
        return _train(args, out)


def _this_run(args: argparse.Namespace) -> tuple[Recipe, Recipe, Budget]:
    """The library's recipe, this run's copy of it (epochs, batch, lr and seed from the flags, where
    given) and the profile's budget of images."""
    recipe = RECIPES[args.model]
    b = budget(recipe.run)
    this_run = replace(
        recipe,
        epochs=args.epochs,  # None: the profile's budget, as the chapters train it
        batch_size=args.batch_size or recipe.batch_size,
        lr=args.lr or recipe.lr,
        seed=recipe.seed if args.seed is None else args.seed,
    )
    return recipe, this_run, b


def _say_plan(
    recipe: Recipe,
    run: Recipe,
    model: nn.Module,
    splits: MNISTSplits,
    device: torch.device,
) -> None:
    epochs = run.epochs_for(current_profile())
    print(
        f"profile {current_profile()}: {recipe.model} ({count_parameters(model):,} parameters) on {device}; "
        f"{len(splits.train):,} train / {len(splits.val):,} validation / {len(splits.test):,} test images"
    )
    print(f"recipe: chapter {int(recipe.chapter)}: {recipe.describe()}")
    print(
        f"this run: {epochs} epoch{'s' * (epochs != 1)}, batch {run.batch_size}, lr {run.lr:g}, "
        f"seed {run.seed}",
        flush=True,
    )


def _train(args: argparse.Namespace, out: Path) -> int:
    """:func:`command_train`'s run, once ``out`` is checked and locked."""
    recipe, run, b = _this_run(args)
    device = pick_device(args.device)
    record = training_record(run, current_profile())  # completed after training
    train_images = args.train_images or b.train_images
    test_images = args.test_images or b.test_images
    if (
        launched_by_torchrun()
    ):  # one of several workers: chapter 13's data-parallel training
        return train_distributed(
            args.model,
            epochs=run.epochs,
            batch_size=run.batch_size,
            lr=run.lr,
            seed=run.seed,
            out=out,
            train_images=train_images,
            test_images=test_images,
            device=device,
            on_interrupt=lambda keeper, stop: save_partial(keeper, out, record, stop),
            replace_worse=args.replace_worse,
        )
    splits = load_mnist_splits(
        train_images=train_images,
        seed=run.seed,
        mean=recipe.mean,
        std=recipe.std,
        test_images=test_images,
        device=device,
    )
    model = run.build_model()
    check_free_space(out, model)
    _say_plan(recipe, run, model, splits, device)
    reporter = EpochReporter(model)
    try:
        history = fit_recipe(run, model, splits, device=device, on_epoch=reporter)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM raised as Terminated
        save_partial(reporter, out, record, stop)
        raise
    return _test_and_save(args, out, model, record, history, run, splits)


def _test_and_save(
    args: argparse.Namespace,
    out: Path,
    model: nn.Module,
    record: TrainingRecord,
    history: History,
    run: Recipe,
    splits: MNISTSplits,
) -> int:
    """After training: refuse a useless model, touch the test set once, save, and say what happened."""
    if history.stopped_early:
        print(
            f"stopped early after epoch {history.epochs}: {run.monitor} stopped improving"
        )
    refuse_useless_at(history, run.lr)  # the advice depends on the learning rate
    # fit restored the best epoch's weights (chosen on validation); the test set is touched once, here.
    test_loss, test_acc = evaluate(
        model, splits.test.batches(1024), run.loss_fn, device=model_device(model)
    )
    record = training_record(run, record.profile, history, (test_loss, test_acc))
    saved = save_trained(
        out,
        model,
        record,
        history,
        replace_worse=args.replace_worse,
        epochs_run=history.epochs,
    )
    print(
        f"best epoch {history.best_epoch} (validation accuracy {100 * history.best_val_acc:.2f}%)"
    )
    print(
        f"test accuracy {100 * test_acc:.2f}% ({round(test_acc * len(splits.test)):,}/{len(splits.test):,})"
    )
    print(saved.message())
    return 0


# --------------------------------------------------------------------------------------------- predict


def _preprocessed_name(index: int, source: str) -> str:
    """``04_photo.png``: numbered so two ``digit.png`` from different folders do not overwrite each other."""
    return f"{index:02d}_{Path(source).stem}.png"


def _write_table(rows: list[dict[str, Any]]) -> None:
    """One line per image, whatever its name holds: names are shown escaped (:func:`printable`), so a
    newline in one cannot fake rows or error lines, and an undecodable byte cannot abort the table."""
    names = [printable(row["file"]) for row in rows]
    width = max([len("file")] + [len(name) for name in names])
    print(f"{'file':<{width}}  prediction  confidence  runner-up")
    for name, row in zip(names, rows):
        if "error" in row:
            print(f"{name:<{width}}  {'-':>10}  {'-':>10}  (failed, see stderr)")
        else:
            second = int(np.argsort(row["probabilities"])[-2])
            print(
                f"{name:<{width}}  {row['prediction']:>10}  {100 * row['confidence']:>9.1f}%  "
                f"{second} ({100 * row['probabilities'][second]:.1f}%)"
            )


def _write_csv(rows: list[dict[str, Any]]) -> None:
    """One row per image given, in order; an image that failed keeps its row, with the reason in ``error``.

    Every field is quoted, so a ``\r`` or ``\n`` in a name stays inside its field (minimal quoting with a
    ``\n`` line end leaves a bare ``\r`` unquoted, and readers then split the row). Text cells are made
    spreadsheet-safe (:func:`spreadsheet_safe`): a name such as ``=cmd|...`` is not run as a formula.
    """
    writer = csv.writer(sys.stdout, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["file", "prediction", "confidence", "error"])
    for row in rows:
        name = spreadsheet_safe(row["file"])
        if "error" in row:
            writer.writerow([name, "", "", spreadsheet_safe(row["error"])])
        else:
            writer.writerow([name, row["prediction"], f"{row['confidence']:.4f}", ""])


def _write_json(rows: list[dict[str, Any]]) -> None:
    print(
        json.dumps(rows, indent=2, allow_nan=False)
    )  # NaN is not JSON: fail before writing anything


WRITERS: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "table": _write_table,
    "csv": _write_csv,
    "json": _write_json,
}


def _preview_folder(folder: Path | None) -> Path | None:
    """``--show-preprocessed``'s folder, created; None (after one line on stderr) if it cannot be.

    The previews are an extra: a folder that cannot be made must not cost the predictions.
    """
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(
            printable(
                f"{PROG}: error: --show-preprocessed {folder}: cannot create the folder "
                f"({error.strerror or error}); the predictions are printed without previews"
            ),
            file=sys.stderr,
        )
        return None
    return folder


def command_predict(args: argparse.Namespace) -> int:
    """Preprocess and classify each image; an unusable image, or a preview that cannot be written, is
    reported and skipped, never fatal: every other image's result is still printed."""
    model, metadata, _ = _load(args.checkpoint, args.device)
    mean, std = _normalization(model, metadata)
    previews = _preview_folder(args.show_preprocessed)
    previews_failed = args.show_preprocessed is not None and previews is None

    rows: list[dict[str, Any]] = []
    results = predict(model, args.images, mean=mean, std=std, on_error="collect")
    for index, (source, result) in enumerate(zip(args.images, results, strict=True)):
        if isinstance(result, ImagePreprocessError):
            print(f"{PROG}: {printable(str(result))}", file=sys.stderr)
            rows.append({"file": source, "error": result.reason})
            continue
        if previews is not None and result.frame is not None:
            preview = previews / _preprocessed_name(index, source)
            try:
                Image.fromarray(result.frame.round().astype(np.uint8)).save(preview)
            except (OSError, ValueError) as error:
                print(
                    printable(
                        f"{PROG}: error: --show-preprocessed: cannot write {preview} "
                        f"({getattr(error, 'strerror', None) or error}); its prediction is kept"
                    ),
                    file=sys.stderr,
                )
                previews_failed = True
        rows.append(
            {
                "file": source,
                "prediction": result.label,
                "confidence": result.confidence,
                "probabilities": [round(float(p), 6) for p in result.probabilities],
            }
        )
    WRITERS[args.format](rows)
    failed = sum("error" in row for row in rows)
    if failed:
        print(
            f"{PROG}: {failed} of {len(rows)} images could not be used", file=sys.stderr
        )
    return 1 if failed or previews_failed else 0


# -------------------------------------------------------------------------------------------- evaluate


def command_evaluate(args: argparse.Namespace) -> int:
    """Overall and per-digit test accuracy, with the input normalization the model was trained with."""
    model, metadata, device = _load(args.checkpoint, args.device)
    name = _recipe_name(metadata)
    mean, std = _normalization(model, metadata)
    test_images = args.test_images or DEFAULT_BUDGET[current_profile()].test_images
    images, labels = mnist_tensors(train=False, limit=test_images)
    test = TensorSplit(normalize(images, mean, std).to(device), labels.to(device))

    result = collect_predictions(model, test, device=device)
    cm = confusion_matrix(result.y_true, result.y_pred)
    per_class = per_class_accuracy(cm)
    correct = int((result.y_true == result.y_pred).sum())
    print(f"{args.checkpoint}: {name} on {len(test):,} test images")
    print(f"test accuracy {100 * result.accuracy:.2f}% ({correct:,}/{len(test):,})")
    if result.accuracy <= 2 * CHANCE_ACCURACY:
        print(
            f"{PROG}: warning: {100 * result.accuracy:.1f}% is no better than guessing (chance is "
            f"{100 * CHANCE_ACCURACY:.0f}%): is this a trained checkpoint, with its own normalization?",
            file=sys.stderr,
        )
    print()
    print("digit  images  correct  accuracy")
    for digit in range(10):
        print(
            f"{digit:>5}  {cm[digit].sum():>6}  {cm[digit, digit]:>7}  {100 * per_class[digit]:>7.2f}%"
        )
    pairs = most_confused_pairs(cm, k=3)
    if pairs:
        print()
        print(
            "most confused: "
            + ", ".join(f"{t} read as {p} ({n}x)" for t, p, n in pairs)
        )
    return 0


# ---------------------------------------------------------------------------------------------- export


def command_export(args: argparse.Namespace) -> int:
    """Write the checkpoint's model to ONNX (normalization built in), then check it against PyTorch."""
    out = Path(args.out)
    if out.suffix != ".onnx":
        raise ValueError(
            f"--out {out}: the file name must end in .onnx, e.g. --out model.onnx"
        )
    if out.is_dir():
        raise ValueError(
            f"--out {out} is a folder; give a file name inside it, e.g. --out {out / 'model.onnx'}"
        )
    model, metadata, _ = _load(args.checkpoint, "cpu")
    name = _recipe_name(metadata)
    mean, std = _normalization(model, metadata)
    backup = keep_numbered_backup(out)  # a published model must survive a worse export
    export_onnx(
        model,
        out,
        mean=mean,
        std=std,
        metadata={"checkpoint": Path(args.checkpoint).name, "model": name},
    )
    pixels = torch.randint(
        0, 256, (256, 1, 28, 28), generator=torch.Generator().manual_seed(0)
    ).float()
    parity = check_parity(model, onnx_session(out), pixels, mean=mean, std=std)
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {name}, with its normalization (mean {mean:g}, "
        f"std {std:g}) built in"
    )
    if backup is not None:
        print(f"the ONNX file it replaced is kept as {backup}")
    print(
        "input 'pixels': float32 (N, 1, 28, 28), grey levels 0..255, white ink on black; output 'logits': (N, 10)"
    )
    print(
        f"check on {parity.images} random images: onnxruntime and PyTorch predict the same digit for "
        f"{parity.same_predictions}; largest logit difference {parity.max_abs_logit_diff:.1e}"
    )
    return 0 if parity.identical_predictions else 1


# -------------------------------------------------------------------------------------------- argparse


def _positive(
    kind: Callable[[str], Any], high: float = math.inf, low: int | None = None
) -> Callable[[str], Any]:
    """An argparse type accepting only numbers > 0 (ints from ``low``, default 1) and at most ``high``, so
    '--epochs 0' or '--train-images 70000' is a usage error naming the option, not a crash later."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a valid {kind.__name__}"
            ) from None
        if kind is int:
            minimum = 1 if low is None else low
            if not minimum <= value <= high:
                bounds = (
                    f"between {minimum} and {high:,}"
                    if high < math.inf
                    else f"> {minimum - 1}"
                )
                raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        elif not (0 < value <= high):
            raise argparse.ArgumentTypeError(
                f"must be > 0{f' and at most {high:g}' * (high < math.inf)}, got {text}"
            )
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


DEVICE_CHOICES = "use cpu, cuda, cuda:N or mps"


def _device(text: str) -> str:
    """An argparse type: a device this machine has, checked now so the error names --device.

    ``pick_device`` words its errors for Python callers ("use 'cpu' or None"); here they are said in the
    command line's terms, options and all.
    """
    try:
        device = pick_device(text)
    except ValueError:  # a device this machine does not have
        missing = (
            "no Apple GPU (mps)"
            if text.startswith("mps")
            else "no CUDA GPU PyTorch can use"
        )
        raise argparse.ArgumentTypeError(
            f"{text!r}: this machine has {missing}; use --device cpu, or leave --device out "
            "for the fastest device available"
        ) from None
    except RuntimeError:  # torch does not know the name
        raise argparse.ArgumentTypeError(
            f"unknown device {text!r}: {DEVICE_CHOICES}"
        ) from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"device {text!r}: {DEVICE_CHOICES}")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(
            f"{text!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered "
            f"from 0; {DEVICE_CHOICES}"
        )
    return text


class _Parser(argparse.ArgumentParser):
    """argparse, with the names it quotes in usage errors escaped: an argument holding a newline must not
    print a second, fake ``mnist-helpers: error`` line. Subcommands' parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        super().error(printable(message))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Train, evaluate and use the MNIST models of the book 'MNIST handwritten-digit "
        "recognition with PyTorch'.",
        epilog="Set MNIST_BOOK_PROFILE=smoke for a quick run on a few thousand images, and MNIST_DATA_DIR "
        "to a folder holding MNIST/raw/ if the data is not in the repository's data/. "
        "Run '%(prog)s COMMAND --help' for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(commands)
    _add_predict(commands)
    _add_evaluate(commands)
    _add_export(commands)
    return parser


DEVICE_HELP = "cpu, cuda, cuda:N or mps (default: the fastest available)"
CHECKPOINT_HELP = "a checkpoint written by 'train' or by a chapter"


def _add_train(commands: Any) -> None:
    recipes = "\n".join(
        f"  {name:<10} {textwrap.fill(recipe.describe(), 90, subsequent_indent=' ' * 13)}"
        for name, recipe in RECIPES.items()
    )
    train = commands.add_parser(
        "train",
        help="train a model with its chapter's recipe and save the best checkpoint",
        description="Train on the training split, pick the best epoch on a validation split (never on\n"
        "the test set), report test accuracy once, and save a checkpoint.",
        epilog=f"recipes (defaults; full-profile epochs):\n{recipes}\n\n"
        "Under MNIST_BOOK_PROFILE=smoke the defaults shrink to 4000 training images, 2000 test\n"
        "images and 1 epoch. MNIST is read from $MNIST_DATA_DIR/MNIST/raw/ when MNIST_DATA_DIR is\n"
        "set, else from the repository's data/MNIST/raw/.\n\n"
        "A model no better than guessing is not saved. An existing checkpoint at --out is kept as\n"
        "<name>.1.pt (then <name>.2.pt, ...; nothing is deleted); a new model with a lower validation\n"
        "accuracy than it is saved beside it as <name>.worse-<accuracy>.pt unless --replace-worse is\n"
        "given. A read-only --out is refused, as is a folder without room for the model, before\n"
        "training; a second run on the same --out stops at once while one holds it (<name>.pt.lock).\n"
        "Ctrl-C or SIGTERM (timeout, Slurm, Docker, systemd) saves the best epoch so far as\n"
        "<name>.partial.pt and exits with status 130 or 143.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_train_options(train)
    train.set_defaults(run=command_train)


def _add_train_options(train: argparse.ArgumentParser) -> None:
    """``train``'s flags: each overrides one setting of the chosen recipe, or says where to write."""
    train.add_argument(
        "--model",
        required=True,
        choices=RECIPES,
        help="which recipe to train (a chapter's final recipe)",
    )
    train.add_argument(
        "--epochs",
        metavar="N",
        type=_positive(int),
        help="epochs (default: the recipe's)",
    )
    train.add_argument(
        "--batch-size",
        metavar="B",
        type=_positive(int),
        help="batch size (default: the recipe's)",
    )
    train.add_argument(
        "--lr",
        metavar="LR",
        type=_positive(float, high=1e6),
        help="learning rate (default: the recipe's)",
    )
    train.add_argument(
        "--seed",
        metavar="S",
        type=_positive(int, high=2**32 - 1, low=0),
        help="random seed, 0 to 2**32-1 (default: the recipe's)",
    )
    train.add_argument(
        "--out",
        metavar="PATH",
        type=Path,
        help="checkpoint to write (default: checkpoints/<profile>/<model>.pt)",
    )
    train.add_argument(
        "--train-images",
        metavar="N",
        type=_positive(int, high=60_000, low=20),
        help="use only the first N (20 to 60,000) training images, before the validation split",
    )
    train.add_argument(
        "--test-images",
        metavar="N",
        type=_positive(int, high=10_000, low=1),
        help="use only the first N of the 10,000 test images",
    )
    train.add_argument(
        "--replace-worse",
        action="store_true",
        help="replace the checkpoint at --out even if the new model's validation accuracy is lower "
        "(it is still kept as a numbered backup)",
    )
    train.add_argument("--device", metavar="DEVICE", type=_device, help=DEVICE_HELP)


def _add_predict(commands: Any) -> None:
    predict = commands.add_parser(
        "predict",
        help="read handwritten digits from image files",
        description="Preprocess each photo MNIST-style (grey, ink on black, cropped, scaled to 20 px, "
        "centred by mass in 28x28) and print the model's answer. Images that cannot be used "
        "are reported on stderr; the others are still predicted and the exit status is 1.",
    )
    predict.add_argument(
        "--checkpoint", metavar="PATH", required=True, help=CHECKPOINT_HELP
    )
    predict.add_argument(
        "images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)"
    )
    predict.add_argument(
        "--format",
        choices=WRITERS,
        default="table",
        help="output: an aligned table (default; control characters in file names shown escaped, "
        "e.g. \\n), CSV (file,prediction,confidence,error; every field quoted; a text cell starting "
        "with = + - @, tab or CR gets a leading ' so spreadsheet programs do not run it as a "
        "formula) or JSON",
    )
    predict.add_argument(
        "--show-preprocessed",
        type=Path,
        metavar="DIR",
        help="also save the 28x28 image the model saw for each input, as PNG in DIR (a preview "
        "that cannot be written is reported, its prediction kept, and the exit status is 1)",
    )
    predict.add_argument("--device", metavar="DEVICE", type=_device, help=DEVICE_HELP)
    predict.set_defaults(run=command_predict)


def _add_evaluate(commands: Any) -> None:
    evaluate_ = commands.add_parser(
        "evaluate",
        help="test accuracy and per-digit accuracy of a checkpoint",
        description="Evaluate a checkpoint on the MNIST test set: overall accuracy, a per-digit table "
        "and the most confused pairs.",
    )
    evaluate_.add_argument(
        "--checkpoint", metavar="PATH", required=True, help=CHECKPOINT_HELP
    )
    evaluate_.add_argument(
        "--test-images",
        metavar="N",
        type=_positive(int, high=10_000, low=1),
        help="use only the first N test images (default: all; 2000 in the smoke profile)",
    )
    evaluate_.add_argument("--device", metavar="DEVICE", type=_device, help=DEVICE_HELP)
    evaluate_.set_defaults(run=command_evaluate)


def _add_export(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="export a checkpoint to ONNX, to run it without PyTorch (onnxruntime, a web page)",
        description="Write the checkpoint's model to one ONNX file that takes 0..255 grey-level pixels (the "
        "normalization it was trained with is built in) and returns logits, then check that "
        "onnxruntime and PyTorch agree on it. Exit status 1 if they predict different digits.",
    )
    export.add_argument(
        "--checkpoint", metavar="PATH", required=True, help=CHECKPOINT_HELP
    )
    export.add_argument(
        "--out",
        metavar="PATH",
        required=True,
        help="the ONNX file to write, e.g. model.onnx; an existing one is kept as "
        "model.1.onnx (then model.2.onnx, ...), and the output says so",
    )
    export.set_defaults(run=command_export)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mnist_helpers`` and the ``mnist-helpers`` script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with _sigterm_as_interrupt():
            status = args.run(args)
            sys.stdout.flush()  # a closed pipe shows here, inside the try, not at exit
            return status
    except BrokenPipeError:
        # The reader (``| head -1``) has what it wanted and closed the pipe: not an error of ours. Point
        # stdout at devnull so the interpreter's final flush does not fail again.
        _silence_stdout()
        return 0
    except Terminated:
        print(f"{PROG}: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, ValueError, OSError) as error:
        # Missing or corrupt checkpoint/data, an unusable device, a diverged run: the message says what
        # to fix, and a traceback would only bury it. Escaped: it may quote a file name.
        print(f"{PROG}: error: {printable(str(error))}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Send what is left of stdout to devnull (Python's documented answer to SIGPIPE/EPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (
        OSError,
        ValueError,
        AttributeError,
    ):  # stdout is not a real file (a test's capture)
        pass
