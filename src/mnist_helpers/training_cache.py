"""Re-execution that costs what changed: a chapter's training, reused when nothing that decides it changed.

Re-running a chapter after a change to its prose or a plot should not retrain its networks for minutes.
:func:`fit_recipe_cached` trains through :func:`~mnist_helpers.recipes.fit_recipe` and stores the result
(the best epoch's weights and the :class:`~mnist_helpers.training.History`) under a key made of
everything that decides it: the recipe (the whole dataclass value), the number of epochs in the profile,
the profile, the model's structure and initial weights, the training and validation data (every byte), the
device type and whether bf16 is used, the torch version, and the fingerprint of the training code (the
library modules that ``recipes`` and this module import, directly or not:
:func:`mnist_helpers.fingerprint.dependencies`). The next run with the same key loads the result instead
of training ("skip if trained", made exact); any other change trains again. The global random state after
training is stored too and restored on a hit, so the cells that follow draw the same numbers either way.

Entries live in ``checkpoints/<profile>/cache/`` beside the chapter's checkpoints (git-ignored), written
atomically and read with ``weights_only=True``. Every call is recorded in :data:`TRAINING_LOG` and, when
``$MNIST_BOOK_TRAINING_LOG`` names a file, appended to it as one JSON line: that is how
``python -m book_tools.notebooks execute`` learns which trainings ran and which were reused, and writes
it into the chapter's stamp.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnist_helpers.atomic import atomic_write
from mnist_helpers.data import MNISTSplits
from mnist_helpers.devices import native_bf16, pick_device
from mnist_helpers.fingerprint import training_fingerprint
from mnist_helpers.profile import Profile, current_profile
from mnist_helpers.recipes import Recipe, fit_recipe, save_recipe_checkpoint
from mnist_helpers.training import History

LOG_ENV = "MNIST_BOOK_TRAINING_LOG"
CACHE_FORMAT = 1
TRAINED, REUSED, UNCACHED = "trained", "reused", "trained (not cacheable)"
# Every fit_recipe_cached call of this process, in order: what the chapter's stamp records.
TRAINING_LOG: list[dict[str, Any]] = []
_TRUSTED_MODULES = ("torch.", "mnist_helpers.")


def _tensors_sha256(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of the tensors (any device, any dtype)."""
    digest = hashlib.sha256()
    for name, tensor in tensors:
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}\0".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _known_classes(model: nn.Module) -> list[str] | None:
    """The model's classes when all come from torch or the library (whose code the key covers), else
    None: a class defined in a notebook could change without changing the key, so it is not cached."""
    names = {f"{type(m).__module__}.{type(m).__qualname__}" for m in model.modules()}
    if not all(name.startswith(_TRUSTED_MODULES) for name in names):
        return None
    return sorted(names)


def cache_key(
    recipe: Recipe,
    model: nn.Module,
    splits: MNISTSplits,
    device: torch.device,
    profile: Profile,
) -> dict[str, Any] | None:
    """Everything that decides what training ``model`` with ``recipe`` produces (None: not cacheable)."""
    classes = _known_classes(model)
    train, val = splits.train, splits.val
    if classes is None or not all(hasattr(s, "images") for s in (train, val)):
        return None
    data = [("train", train.images), ("train_labels", train.labels)]
    data += [("val", val.images), ("val_labels", val.labels)]
    return {
        "format": CACHE_FORMAT,
        "recipe": repr(recipe),
        "profile": profile,
        "epochs": recipe.epochs_for(profile),
        "model": [repr(model), *classes],
        "initial_weights": _tensors_sha256(model.state_dict().items()),
        "data": _tensors_sha256(data),
        "split_sizes": [len(train), len(val)],
        "device": device.type,
        "bf16": bool(recipe.bf16 and native_bf16(device)),
        "torch": str(torch.__version__),
        "code": training_fingerprint(),
    }


def key_digest(key: dict[str, Any]) -> str:
    """A short name for ``key``: the cache file's name and what the stamp records."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _rng_states() -> dict[str, Any]:
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _file_sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _load(entry: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The stored result under ``key``; None when there is none or it cannot be read (then it is
    trained again and replaced)."""
    if not entry.is_file():
        return None
    try:
        payload = torch.load(entry, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or foreign file: train again
        return None
    if not isinstance(payload, dict) or payload.get("key") != key:
        return None
    return payload


def _store(entry: Path, payload: dict[str, Any]) -> None:
    atomic_write(entry, lambda file: torch.save(payload, file))


def _log(
    recipe: Recipe, key: dict[str, Any] | None, outcome: str, history: History
) -> None:
    record = {
        "recipe": recipe.name,
        "key": key_digest(key) if key is not None else None,
        "outcome": outcome,
        "profile": key["profile"] if key is not None else None,
        "code": training_fingerprint(),
        "training_seconds": round(sum(history.seconds), 1),
    }
    TRAINING_LOG.append(record)
    if os.environ.get(LOG_ENV):
        with open(os.environ[LOG_ENV], "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")


def _reuse(payload: dict[str, Any], model: nn.Module, device: torch.device) -> History:
    """Put the stored best weights into ``model`` (in eval mode, as ``fit`` leaves it)."""
    model.to(device).load_state_dict(payload["state_dict"])
    model.eval()
    _restore_rng(payload["rng"])
    return History(**payload["history"])


def _cache_folder(
    cache_dir: str | Path | None, checkpoint: Path | None, profile: Profile
) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return (
        checkpoint.parent if checkpoint else Path("checkpoints") / profile
    ) / "cache"


def fit_recipe_cached(
    recipe: Recipe,
    model: nn.Module,
    splits: MNISTSplits,
    *,
    device: str | torch.device | None = None,
    profile: Profile | None = None,
    checkpoint_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> History:
    """:func:`~mnist_helpers.recipes.fit_recipe`, or its stored result when nothing that decides it
    changed (see the module's docstring); either way the best weights end up in ``model`` and, if asked,
    in ``checkpoint_path``. ``cache_dir`` defaults to ``cache/`` beside ``checkpoint_path``, else to
    ``checkpoints/<profile>/cache`` in the working directory (a chapter's own folder)."""
    profile = profile if profile is not None else current_profile()
    device = pick_device(device)
    checkpoint = Path(checkpoint_path) if checkpoint_path is not None else None
    key = cache_key(recipe, model, splits, device, profile)
    entry = None
    if key is not None:
        folder = _cache_folder(cache_dir, checkpoint, profile)
        entry = folder / f"{recipe.name}-{key_digest(key)}.pt"
        payload = _load(entry, key)
        if payload is not None:
            history = _reuse(payload, model, device)
            if (
                checkpoint is not None
                and _file_sha256(checkpoint) != payload["checkpoint"]
            ):
                save_recipe_checkpoint(checkpoint, recipe, model, history, profile)
                _store(entry, {**payload, "checkpoint": _file_sha256(checkpoint)})
            _log(recipe, key, REUSED, history)
            return history
    history = fit_recipe(
        recipe,
        model,
        splits,
        device=device,
        profile=profile,
        checkpoint_path=checkpoint,
    )
    if entry is not None and key is not None:
        state = model.state_dict().items()
        _store(
            entry,
            {
                "key": key,
                "state_dict": {k: v.detach().cpu().contiguous() for k, v in state},
                "history": history.as_dict(),
                "rng": _rng_states(),
                "checkpoint": _file_sha256(checkpoint) if checkpoint else None,
            },
        )
    _log(recipe, key, TRAINED if key is not None else UNCACHED, history)
    return history
