"""The recipes: one definition per chapter, trained the same way by chapters, the CLI and the benchmarks."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mnist_helpers.augment import Augmented, random_affine
from mnist_helpers.checkpoints import load_checkpoint
from mnist_helpers.data import MNISTSplits
from mnist_helpers.models import MLP
from mnist_helpers.profile import budget
from mnist_helpers.recipes import RECIPES, Recipe, fit_recipe

TOY = replace(RECIPES["mlp"], model_config={"hidden": (16,)}, batch_size=32)


@pytest.fixture
def splits(toy_split) -> MNISTSplits:
    return MNISTSplits(
        train=toy_split(96, 0), val=toy_split(48, 1), test=toy_split(48, 2)
    )


def test_every_recipe_has_a_budget_and_builds_its_model() -> None:
    for name, recipe in RECIPES.items():
        assert budget(recipe.run, "smoke").epochs == 1, name
        assert sum(p.numel() for p in recipe.build_model().parameters()) > 0, name


def test_build_model_is_seeded() -> None:
    first, second = RECIPES["cnn"].build_model(), RECIPES["cnn"].build_model()
    assert all(
        torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters())
    )


def test_describe_names_every_setting_that_changes_the_result() -> None:
    base = RECIPES["simplecnn"].describe()
    changes = {
        "lr": 2e-3,
        "batch_size": 64,
        "optimizer": "sgd",
        "schedule": "cosine",
        "gamma": 0.9,
        "loss": "nll",
        "augment": True,
        "patience": 3,
        "monitor": "val_loss",
        "mean": 0.5,
        "seed": 1,
        "weight_decay": 1e-4,
        "momentum": 0.9,
        "bf16": True,
        "model_config": {"fc_dropout": 0.3},
        "label_smoothing": 0.1,
    }
    for field, value in changes.items():
        assert replace(RECIPES["simplecnn"], **{field: value}).describe() != base, field


def test_label_smoothing_moves_the_loss_target_off_the_label() -> None:
    logits, labels = torch.tensor([[9.0, 0.0, 0.0]]), torch.tensor([0])
    smoothed = replace(RECIPES["speedrun"], label_smoothing=0.3).loss_fn(logits, labels)
    assert smoothed > RECIPES["mlp"].loss_fn(
        logits, labels
    )  # a confident, right answer is no longer loss-free
    with pytest.raises(ValueError, match="cross_entropy"):
        replace(RECIPES["cnn"], label_smoothing=0.1).loss_fn(logits, labels)


def test_fit_recipe_is_deterministic_and_saves_the_best_epoch(
    splits: MNISTSplits, tmp_path
) -> None:
    histories = []
    for run in range(2):
        model = TOY.build_model()
        histories.append(
            fit_recipe(
                replace(TOY, epochs=2),
                model,
                splits,
                device="cpu",
                checkpoint_path=tmp_path / f"run{run}.pt",
            )
        )
        histories[-1].seconds = []
    assert histories[0] == histories[1]
    _, metadata = load_checkpoint(tmp_path / "run0.pt", expected=MLP)
    assert (
        metadata["recipe_description"] == replace(TOY, epochs=2).describe()
        and metadata["epoch"] == histories[0].best_epoch
    )
    assert metadata["normalization"] == {"mean": TOY.mean, "std": TOY.std}


@pytest.mark.parametrize(
    ("schedule", "second_epoch_lr"),
    [("cosine", 5e-4), ("step", 1e-3), ("constant", 1e-3)],
)
def test_fit_recipe_steps_the_schedule(
    splits: MNISTSplits, schedule: str, second_epoch_lr: float
) -> None:
    recipe = replace(TOY, schedule=schedule, step_size=2, gamma=0.5, epochs=2)
    history = fit_recipe(recipe, recipe.build_model(), splits, device="cpu")
    assert history.lr == pytest.approx([1e-3, second_epoch_lr])


def test_one_cycle_recipe_steps_every_batch(splits: MNISTSplits) -> None:
    recipe = replace(
        RECIPES["fast"],
        model="mlp",
        model_config={"hidden": (16,)},
        batch_size=32,
        epochs=2,
        bf16=False,
    )
    history = fit_recipe(recipe, recipe.build_model(), splits, device="cpu")
    assert (
        history.lr[0] == pytest.approx(recipe.lr / 25) and history.lr[1] > history.lr[0]
    )


def test_augmentation_draws_one_transform_per_image_and_is_seeded(
    splits: MNISTSplits,
) -> None:
    batch = splits.train.images[:4]
    once = random_affine(batch, torch.Generator().manual_seed(1))
    assert torch.equal(once, random_affine(batch, torch.Generator().manual_seed(1)))
    assert not torch.equal(once, batch)
    same_image = random_affine(
        batch[:1].repeat(4, 1, 1, 1), torch.Generator().manual_seed(1)
    )
    assert not torch.equal(
        same_image[0], same_image[1]
    )  # each copy got its own rotation/scale/shift
    first = [x for x, _ in Augmented(splits.train.batches(32), seed=0)]
    second = [x for x, _ in Augmented(splits.train.batches(32), seed=0)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_augmentation_fills_with_the_background_not_zero() -> None:
    background = -0.4242
    blank = torch.full((2, 1, 28, 28), background)
    moved = random_affine(
        blank, torch.Generator().manual_seed(0), degrees=30, background=background
    )
    assert torch.allclose(moved, blank, atol=1e-5)


def test_the_command_line_offers_every_recipe(capsys) -> None:
    from mnist_helpers.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name, recipe in RECIPES.items():
        assert name in help_text
        assert " ".join(recipe.describe().split()) in help_text


def test_recipe_is_a_frozen_value() -> None:
    with pytest.raises(AttributeError):
        RECIPES["mlp"].lr = 1.0  # type: ignore[misc]
    assert isinstance(RECIPES["mlp"], Recipe)
