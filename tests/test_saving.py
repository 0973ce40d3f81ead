"""Checkpoints as precious as the user's time (issue 24): a lock on --out, numbered backups, a worse model
kept beside the better one, read-only files respected, free space checked before training, and a failed
save that says where every model is. Models are tiny MLPs; nothing here trains unless marked needs_mnist.
"""

from __future__ import annotations

import os
import stat
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from mnist_helpers import saving
from mnist_helpers.atomic import keep_numbered_backup
from mnist_helpers.checkpoints import load_checkpoint, save_checkpoint
from mnist_helpers.cli import main
from mnist_helpers.models import MLP
from mnist_helpers.saving import (
    DestinationBusy,
    SaveError,
    TrainingRecord,
    check_destination,
    check_free_space,
    locked_destination,
    save_trained,
)
from mnist_helpers.training import History

TINY = ["--train-images", "600", "--test-images", "200", "--epochs", "1"]


def record(val_acc: float) -> TrainingRecord:
    return TrainingRecord(
        recipe="mlp",
        description="test",
        mean=0.1307,
        std=0.3081,
        profile="smoke",
        seed=0,
        best_epoch=1,
        val_acc=val_acc,
        val_loss=0.5,
    )


def save(out: Path, val_acc: float, **kwargs: object) -> saving.Saved:
    torch.manual_seed(0)
    history = History(best_val_loss=0.5, best_val_acc=val_acc)
    return save_trained(out, MLP(hidden=(8,)), record(val_acc), history, **kwargs)


def accuracy_at(path: Path) -> float:
    return load_checkpoint(path)[1]["val_acc"]


def one_error_line(stderr: str) -> str:
    lines = [
        line for line in stderr.splitlines() if line.startswith("mnist-helpers: error")
    ]
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    return lines[0]


# numbered backups ---------------------------------------------------------------------------------


def test_every_replaced_checkpoint_keeps_a_numbered_backup(tmp_path):
    out = tmp_path / "mlp.pt"
    for accuracy in (0.8, 0.7, 0.6):
        save(out, accuracy)
    assert accuracy_at(out) == 0.6
    assert accuracy_at(tmp_path / "mlp.1.pt") == 0.8
    assert accuracy_at(tmp_path / "mlp.2.pt") == 0.7


def test_numbering_continues_after_the_highest_backup(tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"new")
    (tmp_path / "model.3.onnx").write_bytes(b"old")
    backup = keep_numbered_backup(out)
    assert backup == tmp_path / "model.4.onnx" and backup.read_bytes() == b"new"
    assert out.read_bytes() == b"new"  # the original stays in place, whole


# a worse model is kept beside the better one --------------------------------------------------------


def test_a_worse_model_is_saved_beside_the_better_one_with_both_accuracies(tmp_path):
    out = tmp_path / "mlp.pt"
    save(out, 0.816)
    saved = save(out, 0.448, replace_worse=False)
    assert accuracy_at(out) == 0.816 and saved.path == tmp_path / "mlp.worse-44.80.pt"
    assert accuracy_at(saved.path) == 0.448
    assert "44.80%" in saved.message() and "81.60%" in saved.message()
    assert "--replace-worse" in saved.message()


def test_replace_worse_replaces_and_still_keeps_the_better_one_numbered(tmp_path):
    out = tmp_path / "mlp.pt"
    save(out, 0.816)
    saved = save(out, 0.448, replace_worse=True)
    assert accuracy_at(out) == 0.448 and accuracy_at(tmp_path / "mlp.1.pt") == 0.816
    assert "81.60%" in saved.message() and "44.80%" in saved.message()


def test_a_better_model_replaces_the_old_one(tmp_path):
    out = tmp_path / "mlp.pt"
    save(out, 0.5)
    saved = save(out, 0.9, replace_worse=False)
    assert (
        saved.path == out
        and accuracy_at(out) == 0.9
        and saved.backup == tmp_path / "mlp.1.pt"
    )


# read-only checkpoints ----------------------------------------------------------------------------


def test_a_read_only_checkpoint_is_refused_before_training(tmp_path, capsys):
    out = save_checkpoint(tmp_path / "mlp.pt", MLP(hidden=(8,)))
    out.chmod(0o444)
    code = main(["train", "--model", "mlp", "--out", str(out), *TINY])
    error = one_error_line(capsys.readouterr().err)
    assert code == 1 and "read-only" in error and f"chmod u+w {out}" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.pt"]


def test_save_trained_never_replaces_a_read_only_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(saving.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "mlp.pt"
    save(out, 0.5)
    out.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    with pytest.raises(SaveError, match="read-only") as caught:
        save(out, 0.9)
    assert accuracy_at(out) == 0.5 and not (tmp_path / "mlp.1.pt").exists()
    assert "saved instead as" in str(caught.value)
    assert [accuracy_at(p) for p in (tmp_path / "tmp").iterdir()] == [0.9]


# free space -------------------------------------------------------------------------------------


def test_too_little_free_space_is_refused_before_training(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(
        saving.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 10**6)
    )
    with pytest.raises(
        ValueError, match=r"only 1\.0 MB free in .*choose another --out"
    ):
        check_free_space(tmp_path / "mlp.pt", MLP(hidden=(8,)))


def test_enough_free_space_passes(tmp_path):
    check_free_space(tmp_path / "mlp.pt", MLP(hidden=(8,)))


# a failed save ------------------------------------------------------------------------------------


def test_a_failed_save_says_what_failed_and_where_both_models_are(
    tmp_path, monkeypatch
):
    fallback_dir = tmp_path / "tmp"
    fallback_dir.mkdir()
    monkeypatch.setattr(saving.tempfile, "gettempdir", lambda: str(fallback_dir))
    out = tmp_path / "mlp.pt"
    save(out, 0.5)
    real_save = saving.save_checkpoint

    def full_disk(path: Path, *args: object, **kwargs: object) -> Path:
        if Path(path).parent == tmp_path:
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] . unexpected pos 64"
            )
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(saving, "save_checkpoint", full_disk)
    with pytest.raises(SaveError) as caught:
        save(out, 0.9)
    message = str(caught.value)
    assert "\n" not in message and f"could not write {out}" in message
    assert f"the previous model is still at {out}" in message
    fallback = next(fallback_dir.iterdir())
    assert f"saved instead as {fallback}" in message and accuracy_at(fallback) == 0.9
    assert accuracy_at(out) == 0.5 and not (tmp_path / "mlp.1.pt").exists()


# the lock on --out -------------------------------------------------------------------------------


def test_a_second_run_on_the_same_out_fails_at_once_naming_the_first(tmp_path, capsys):
    out = tmp_path / "mlp.pt"
    with locked_destination(out):
        code = main(["train", "--model", "mlp", "--out", str(out), *TINY])
        error = one_error_line(capsys.readouterr().err)
    assert (
        code == 1 and f"pid {os.getpid()}" in error and "another training run" in error
    )
    assert not (tmp_path / "mlp.pt.lock").exists()  # removed once the first run ended


def test_the_lock_is_free_again_after_the_run(tmp_path):
    out = tmp_path / "mlp.pt"
    with locked_destination(out):
        with pytest.raises(DestinationBusy):
            with locked_destination(out):
                pass
    with locked_destination(out):
        pass


def test_check_destination_still_refuses_a_folder(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        check_destination(tmp_path)


@pytest.mark.needs_mnist
def test_cli_keeps_a_better_checkpoint_and_says_both_accuracies(tmp_path, capsys):
    out = save_checkpoint(tmp_path / "mlp.pt", MLP(hidden=(8,)), val_acc=0.999)
    code = main(["train", "--model", "mlp", "--out", str(out), *TINY])
    stdout = capsys.readouterr().out
    beside = next(tmp_path.glob("mlp.worse-*.pt"))
    assert code == 0 and "99.90%" in stdout and str(beside) in stdout
    assert accuracy_at(out) == 0.999
