"""Tests for reading TensorBoard event files back: what SummaryWriter wrote is what read_scalars returns."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

from mnist_helpers.tensorboard_logs import BOOK_TAGS, read_scalars


def _write_epochs(run_dir: Path, epochs: int) -> None:
    """Log like chapter 5: every book tag once per epoch, the epoch as the step."""
    writer = SummaryWriter(log_dir=str(run_dir))
    for epoch in range(1, epochs + 1):
        for offset, tag in enumerate(BOOK_TAGS):
            writer.add_scalar(tag, epoch + offset / 10, epoch)
    writer.close()


def test_read_scalars_returns_every_tag_by_step(tmp_path: Path) -> None:
    _write_epochs(tmp_path / "run", epochs=3)
    scalars = read_scalars(tmp_path / "run")
    assert set(scalars) == set(BOOK_TAGS)
    steps, values = scalars["accuracy/train"]
    assert steps == [1, 2, 3]
    assert values == pytest.approx([1.2, 2.2, 3.2])  # stored as float32
    assert read_scalars(str(tmp_path / "run"))["learning_rate"][0] == [
        1,
        2,
        3,
    ]  # str paths too


def test_read_scalars_names_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=f"no TensorBoard logs in {tmp_path.as_posix()}: it holds no",
    ):
        read_scalars(tmp_path)


def test_read_scalars_on_a_parent_folder_lists_the_runs_inside(tmp_path: Path) -> None:
    _write_epochs(tmp_path / "full" / "logits_to_ce", epochs=1)
    _write_epochs(tmp_path / "full" / "softmax_to_ce", epochs=1)
    with pytest.raises(
        FileNotFoundError, match="run folders inside it: logits_to_ce, softmax_to_ce"
    ):
        read_scalars(tmp_path / "full")


def test_read_scalars_on_a_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_scalars(tmp_path / "nowhere")
