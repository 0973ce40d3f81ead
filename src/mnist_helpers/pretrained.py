"""The trained SimpleCNN that the chapters after chapter 7 study (8, 10, 12), with its provenance.

Chapter 7 trains the book's SimpleCNN and saves it under ``checkpoints/<profile>/simplecnn.pt``. A later
chapter that only *uses* that network should not spend another quarter of an hour training it, nor should
it silently pick up a file made by some other recipe. So :func:`chapter07_simplecnn` loads the checkpoint
only when the recipe recorded in it is the library's chapter-06 recipe, and otherwise trains one with that
recipe (and saves it where chapter 7 would have). Either way it returns a :class:`Provenance` that the
chapter prints: which recipe and seed made the weights, when, and whether the library that trained them is
the one installed now.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mnist_helpers.checkpoints import CheckpointError, load_checkpoint
from mnist_helpers.data import MNISTSplits
from mnist_helpers.fingerprint import library_fingerprint
from mnist_helpers.profile import current_profile
from mnist_helpers.recipes import RECIPES
from mnist_helpers.saving import TrainingRecord
from mnist_helpers.training_cache import fit_recipe_cached


@dataclass(frozen=True)
class Provenance:
    """Where a model's weights came from, in words a reader can check."""

    source: str  # "chapter 7's checkpoint" or "trained in this notebook"
    recipe: str  # Recipe.describe() of the recipe that trained it (it names the seed)
    library: (
        str  # library_fingerprint() at training time ("unknown" for an old checkpoint)
    )
    same_library: bool  # whether that is the library installed now

    def describe(self) -> str:
        library = (
            "this library"
            if self.same_library
            else f"library {self.library}, not the one installed now"
        )
        return f"{self.source} ({self.recipe}; trained with {library})"


def default_checkpoint_path() -> Path:
    """Where chapter 7 saves its SimpleCNN, relative to the chapter's working directory."""
    return Path("checkpoints") / current_profile() / "simplecnn.pt"


def chapter07_simplecnn(
    splits: MNISTSplits, device: str | torch.device, path: str | Path | None = None
) -> tuple[nn.Module, Provenance]:
    """Chapter 7's SimpleCNN in eval mode on ``device``: loaded if its checkpoint was made by the library's
    chapter-06 recipe, otherwise trained now on ``splits`` with that recipe and saved to ``path``."""
    recipe = RECIPES["simplecnn"]
    path = Path(path) if path is not None else default_checkpoint_path()
    if path.exists():
        try:
            model, metadata = load_checkpoint(
                path, expected="simplecnn", map_location=device
            )
        except CheckpointError:
            metadata = {}
        record = TrainingRecord.from_metadata(metadata)
        if record is not None and record.description == recipe.describe():
            library = str(metadata.get("library", "unknown"))
            return model, Provenance(
                "chapter 7's checkpoint",
                recipe.describe(),
                library,
                library == library_fingerprint(),
            )
    model = recipe.build_model()
    fit_recipe_cached(recipe, model, splits, device=device, checkpoint_path=path)
    return model.eval(), Provenance(
        "trained in this notebook", recipe.describe(), library_fingerprint(), True
    )
