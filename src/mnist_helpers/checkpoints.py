"""Saving and loading trained models safely.

A checkpoint stores *data only*: the model's class name, its constructor config, CPU weights and plain
metadata. Loading uses ``torch.load(weights_only=True)``, so a checkpoint downloaded from somewhere cannot
run code on the reader's machine, and the model is rebuilt from :data:`~mnist_helpers.models.MODEL_REGISTRY`
instead of being unpickled. Saves are atomic so a crash mid-write never destroys the previous best model.
"""

from __future__ import annotations

import inspect
import math
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnist_helpers.atomic import atomic_write
from mnist_helpers.data import MNIST_MEAN, MNIST_STD
from mnist_helpers.fingerprint import library_fingerprint
from mnist_helpers.models import MODEL_REGISTRY

FORMAT_VERSION = 1

_CLASSES: dict[str, type[nn.Module]] = {
    cls.__name__: cls for cls in MODEL_REGISTRY.values()
}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unsafe, of the wrong model, or not ours; the message says which."""


def _plain(value: Any, where: str) -> Any:
    """Turn ``value`` into plain Python (what ``weights_only`` loading accepts), or explain why not.

    Numpy scalars and 0-d tensors (e.g. an accuracy computed with torch) become numbers, tuples become lists.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    raise CheckpointError(
        f"{where} is a {type(value).__name__}; checkpoint metadata must be plain Python "
        "(numbers, strings, lists, dicts): convert it first, e.g. float(x) or x.tolist()"
    )


def save_checkpoint(path: str | Path, model: nn.Module, **metadata: Any) -> Path:
    """Write ``model`` (and ``metadata`` such as ``epoch=3, val_acc=0.98``) to ``path`` atomically.

    The file is written to a temporary name in the same folder, flushed to disk, then renamed over
    ``path``: readers see either the old checkpoint or the new one, never half a file. The metadata also
    records :func:`library_fingerprint`, so a later chapter can say which library trained the weights.
    """
    metadata = {"library": library_fingerprint(), **metadata}
    path = Path(path)
    model = getattr(
        model, "_orig_mod", model
    )  # a torch.compile wrapper: save the model inside
    name = type(model).__name__
    if name not in _CLASSES or not hasattr(model, "config"):
        raise CheckpointError(
            f"cannot checkpoint a {name}: only the book's models ({', '.join(_CLASSES)}) can be rebuilt "
            "from a checkpoint; for another model use torch.save(model.state_dict(), path)"
        )
    payload = {
        "format": FORMAT_VERSION,
        "model_class": name,
        "model_config": _plain(model.config, "model.config"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": _plain(metadata, "metadata"),
    }
    return atomic_write(path, lambda file: torch.save(payload, file))


def _expected_name(expected: str | type[nn.Module]) -> str:
    if isinstance(expected, type):
        return expected.__name__
    return (
        MODEL_REGISTRY[expected.lower()].__name__
        if expected.lower() in MODEL_REGISTRY
        else expected
    )


# What a file that is not a checkpoint usually is, known from its first bytes (the "magic number").
_NOT_A_CHECKPOINT = (
    (
        b"version https://git-lfs",
        "a Git LFS pointer, not the file itself: run `git lfs pull`",
    ),
    (
        b"\x1f\x8b",
        "gzip-compressed: unpack it first (gunzip), then load the file inside",
    ),
    (b"\x89PNG", "a PNG image, not a checkpoint"),
    (b"\xff\xd8\xff", "a JPEG image, not a checkpoint"),
    (
        b"<!DOCTYPE",
        "a web page (HTML), not a checkpoint: the download saved an error or login page",
    ),
    (
        b"<html",
        "a web page (HTML), not a checkpoint: the download saved an error or login page",
    ),
    (
        b"\x08",
        "probably an ONNX model (chapter 12's export): open it with onnxruntime, not torch.load",
    ),
)


def _foreign_format(head: bytes) -> str | None:
    """What a file that is not a checkpoint at all is, from its first bytes; None if it may be one."""
    if not head:
        return "empty (0 bytes): an interrupted download or save; save or download it again"
    return next(
        (meaning for magic, meaning in _NOT_A_CHECKPOINT if head.startswith(magic)),
        None,
    )


def _read(path: Path) -> Any:
    """The checkpoint's data, read onto the CPU (the model moves to its device once it is built)."""
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: check the path, or train and save the model first"
        )
    try:
        with path.open("rb") as file:
            head = file.read(64)
    except PermissionError as err:
        raise CheckpointError(
            f"cannot read {path}: permission denied; check the file's owner and mode (ls -l)"
        ) from err
    if foreign := _foreign_format(head):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint: it is {foreign}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (
        Exception
    ) as err:  # junk fails with struct.error, KeyError, EOFError, UnpicklingError, ...
        if isinstance(
            err, pickle.UnpicklingError
        ) and "Weights only load failed" in str(err):
            raise CheckpointError(
                f"refused: not a weights-only checkpoint: {path} contains Python objects that could run code "
                "when loaded, so it was not loaded. Only load such a file if you fully trust its source."
            ) from err
        damage = (
            "a PyTorch file cut short or damaged (truncated?)"
            if head.startswith(b"PK\x03\x04")
            else "its first bytes match no known format (corrupt?)"
        )
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint: {damage}; save or download it again"
        ) from err


def _is_bare_state_dict(payload: Any) -> bool:
    return (
        isinstance(payload, Mapping)
        and len(payload) > 0
        and all(isinstance(v, torch.Tensor) for v in payload.values())
    )


MAX_LAYER_SIZE = 100_000  # no book model has a layer anywhere near this wide; a bigger config is not ours
_REQUIRED: dict[str, type] = {
    "model_class": str,
    "model_config": Mapping,
    "state_dict": Mapping,
    "metadata": Mapping,
}


def _validated_class(path: Path, payload: Mapping[str, Any]) -> str:
    """Check the payload's fields and weights before anything is built; return the model class name."""
    for key, kind in _REQUIRED.items():
        if key not in payload:
            raise CheckpointError(
                f"{path} has no {key!r}: it is incomplete; re-save it with save_checkpoint"
            )
        if not isinstance(payload[key], kind):
            raise CheckpointError(
                f"{path}: {key!r} is a {type(payload[key]).__name__}, not a "
                f"{'dict' if kind is Mapping else kind.__name__}; re-save it with save_checkpoint"
            )
    name = payload["model_class"]
    if name not in _CLASSES:
        raise CheckpointError(
            f"{path} holds an unknown model class {name!r}; known: {', '.join(_CLASSES)}"
        )
    for key, tensor in payload["state_dict"].items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(
                f"{path}: weight {key!r} is a {type(tensor).__name__}, not a tensor"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(
                f"{path}: weight {key!r} holds NaN or infinite values, so every answer would be meaningless "
                "(the training run diverged); retrain with a lower learning rate"
            )
    return name


def _validated_config(
    path: Path, name: str, config: Mapping[str, Any]
) -> dict[str, Any]:
    """The constructor arguments, checked against the class's signature and for sane sizes.

    A config is data from a file: without this check ``hidden=[10**9]`` would try to allocate terabytes
    and an unknown key would surface as a TypeError deep in a constructor.
    """
    parameters = inspect.signature(_CLASSES[name]).parameters
    for key, value in config.items():
        if key not in parameters:
            raise CheckpointError(
                f"{path}: {name} takes no argument {key!r} (it takes "
                f"{', '.join(parameters) or 'none'}); the checkpoint is damaged or not ours"
            )
        sizes = value if isinstance(value, list) else [value]
        if (
            not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in sizes
            )
            or len(sizes) > 100
        ):
            raise CheckpointError(
                f"{path}: {name} config {key}={value!r} is not a number or a short list of numbers"
            )
        if any(v < 0 or v > MAX_LAYER_SIZE for v in sizes):
            raise CheckpointError(
                f"{path}: {name} config {key}={value!r} is out of range (0 to "
                f"{MAX_LAYER_SIZE:,}); the checkpoint is damaged or not ours"
            )
    return dict(config)


_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile


def _unwrapped(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state_dict without the prefix a DDP or ``torch.compile`` wrapper puts on every key."""
    for prefix in _WRAPPER_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            state = {key.removeprefix(prefix): value for key, value in state.items()}
    return dict(state)


def _candidates(state: Mapping[str, torch.Tensor]) -> list[tuple[str, dict[str, Any]]]:
    """The library models a plain state_dict may be: every class as built by default, every recipe's
    configuration, and an MLP whose hidden sizes are read off the weights' shapes."""
    from mnist_helpers.recipes import RECIPES  # here: recipes imports this module

    candidates = [(cls.__name__, {}) for cls in MODEL_REGISTRY.values()]
    candidates += [
        (MODEL_REGISTRY[r.model].__name__, dict(r.model_config))
        for r in RECIPES.values()
    ]
    matrices = [t for k, t in state.items() if k.endswith(".weight") and t.ndim == 2]
    hidden = [int(t.shape[0]) for t in matrices[:-1]]
    if matrices and len(hidden) <= 100 and all(0 < h <= MAX_LAYER_SIZE for h in hidden):
        candidates += [
            ("MLP", {"hidden": hidden}),
            ("BatchNormMLP", {"hidden": hidden}),
        ]
    return candidates


def _matching_model(state: Mapping[str, torch.Tensor]) -> tuple[nn.Module, str] | None:
    """The library model whose keys and shapes are exactly those of ``state``, with a description."""
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    for name, config in _candidates(state):
        model = _CLASSES[name](**config)
        own = {key: tuple(value.shape) for key, value in model.state_dict().items()}
        if own == shapes:
            arguments = ", ".join(f"{key}={value}" for key, value in config.items())
            return model, f"{name}({arguments})"
    return None


def _from_state_dict(
    path: Path, state: Mapping[str, torch.Tensor], kind: str
) -> tuple[nn.Module, dict[str, Any]]:
    """A plain ``state_dict`` (tutorial E's ``torch.save(model.state_dict(), path)``, or the
    ``{"model_state_dict": ...}`` of PyTorch's tutorials) loaded into the library model it fits exactly.

    A file of weights alone does not say its class, but keys and shapes identify a library model
    without doubt; the metadata's ``matched`` says which, so the reader sees what was assumed.
    """
    state = _unwrapped(state)
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(
                f"{path}: weight {key!r} holds NaN or infinite values (the training run diverged); "
                "retrain with a lower learning rate"
            )
    found = _matching_model(state)
    if found is None:
        raise CheckpointError(
            f"{path} is {kind} whose keys and shapes match none of the library's models "
            f"({', '.join(_CLASSES)}), so the model class is unknown. Build the model yourself and run "
            "model.load_state_dict(torch.load(path, weights_only=True))."
        )
    model, description = found
    model.load_state_dict(state)
    return model, {"matched": f"{kind} whose keys and shapes match {description}"}


def _check_normalization(path: Path, metadata: Mapping[str, Any]) -> None:
    """A stored normalization must be two finite numbers, std > 0: with std 0 every input is infinite
    (the answers look like broken weights), and a negative std silently turns every image negative."""
    stored = metadata.get("normalization")
    if stored is None:
        return
    values = (
        [stored.get(key) for key in ("mean", "std")]
        if isinstance(stored, Mapping)
        else []
    )
    numbers = [
        v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    if (
        len(numbers) != 2
        or not all(math.isfinite(v) for v in numbers)
        or numbers[1] <= 0
    ):
        raise CheckpointError(
            f"{path}: its stored input normalization {stored!r} is invalid (mean and std must be "
            "finite numbers, std > 0), so no input could be scaled as in training; re-save the "
            "checkpoint with the mean/std the model was trained with (the book's MNIST values are "
            f"mean {MNIST_MEAN}, std {MNIST_STD})"
        )


def load_checkpoint(
    path: str | Path,
    expected: str | type[nn.Module] | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the saved model on ``map_location``; return ``(model in eval mode, metadata)``.

    ``expected`` (a class or a name such as ``"simplecnn"``) guards against loading, say, chapter 6's CNN
    where chapter 7's SimpleCNN was meant. A plain ``state_dict`` (or PyTorch's tutorial wrapper
    ``{"model_state_dict": ...}``) is loaded into the library model its keys and shapes match, and the
    metadata's ``matched`` says which (see :func:`_from_state_dict`).
    """
    path = Path(path)
    payload = _read(path)
    if isinstance(payload, Mapping) and _is_bare_state_dict(
        payload.get("model_state_dict")
    ):
        payload, kind = payload["model_state_dict"], 'a {"model_state_dict": ...} file'
    else:
        kind = "a bare state_dict"
    if _is_bare_state_dict(payload):
        model, metadata = _from_state_dict(path, payload, kind)
        _check_expected(path, expected, type(model).__name__)
        return _placed(model, map_location).eval(), metadata
    if not isinstance(payload, Mapping) or payload.get("format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is not a checkpoint written by save_checkpoint (format {FORMAT_VERSION}); re-save it"
        )
    name = _validated_class(path, payload)
    _check_normalization(path, payload["metadata"])
    _check_expected(path, expected, name)
    config = _validated_config(path, name, payload["model_config"])
    try:
        model = _CLASSES[name](**config)
    except (TypeError, ValueError) as err:  # e.g. a dropout probability of 5
        raise CheckpointError(f"{path}: cannot build a {name}{config}: {err}") from err
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: the weights do not fit a {name}{config}: {err}"
        ) from err
    return _placed(model, map_location).eval(), payload["metadata"]


def _check_expected(
    path: Path, expected: str | type[nn.Module] | None, name: str
) -> None:
    if expected is not None and _expected_name(expected) != name:
        raise CheckpointError(
            f"{path} holds a model of class {name}, but {_expected_name(expected)} was expected"
        )


def _placed(model: nn.Module, map_location: str | torch.device) -> nn.Module:
    """``model`` on ``map_location``, or an error saying the device is missing (e.g. "mps" or "cuda" on a
    machine without one), in words that fit the command line (--device) and Python alike."""
    try:
        return model.to(map_location)
    except (RuntimeError, AssertionError) as err:
        raise CheckpointError(
            f"cannot put the model on device {str(map_location)!r}: this machine has no such device "
            f"({str(err).splitlines()[0]}); use the CPU (--device cpu, or map_location='cpu')"
        ) from err
