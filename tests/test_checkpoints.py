"""Checkpoints: faithful round trip, atomic writes, and refusal of anything that is not plain weights."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from mnist_helpers import checkpoints
from mnist_helpers.checkpoints import (
    CheckpointError,
    library_fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from mnist_helpers.models import CNN, MLP, BatchNormMLP, SimpleCNN


def test_round_trip_gives_the_same_outputs_and_metadata(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = BatchNormMLP(hidden=(32, 16))
    model.train()(
        torch.randn(64, 1, 28, 28)
    )  # move the BatchNorm running statistics off their defaults
    path = save_checkpoint(
        tmp_path / "nested" / "bn.pt", model, epoch=3, val_acc=torch.tensor(0.975)
    )

    loaded, metadata = load_checkpoint(path, expected="bnmlp")

    assert metadata == {
        "epoch": 3,
        "val_acc": pytest.approx(0.975),
        "library": library_fingerprint(),
    }
    assert isinstance(loaded, BatchNormMLP) and not loaded.training
    assert loaded.config == {"hidden": [32, 16], "in_features": 784, "num_classes": 10}
    x = torch.randn(5, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model.eval()(x))


def test_wrong_architecture_names_both_classes(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "cnn.pt", CNN())
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, expected=SimpleCNN)
    assert "CNN" in str(info.value) and "SimpleCNN" in str(info.value)


def test_missing_checkpoint_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint at .*absent.pt"):
        load_checkpoint(tmp_path / "absent.pt")


def test_a_state_dict_of_no_library_model_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    torch.save(torch.nn.Conv2d(3, 4, 3).state_dict(), path)  # someone else's model
    with pytest.raises(CheckpointError, match="bare state_dict") as info:
        load_checkpoint(path)
    assert "model.load_state_dict(torch.load(path, weights_only=True))" in str(
        info.value
    )


class _RunsCode:
    """Unpickling this runs a shell command: exactly what weights-only loading must never do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


class _ListSubclass(list):
    pass


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_code_in_a_checkpoint_is_refused_not_run(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"format": 1, "model_class": "MLP", "metadata": _RunsCode(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError, match="refused: not a weights-only checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_unknown_classes_in_a_checkpoint_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "subclass.pt"
    torch.save({"format": 1, "metadata": _ListSubclass([1, 2])}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)


def test_truncated_checkpoint_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", MLP((8,)))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cut short or damaged"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("content", "diagnosis"),
    [
        (b"", "empty \\(0 bytes\\)"),
        (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n",
            "git lfs pull",
        ),
        (b"\x1f\x8b\x08\x00junk", "gunzip"),
        (b"\x89PNG\r\n\x1a\n", "a PNG image"),
        (b"\xff\xd8\xff\xe0", "a JPEG image"),
        (b"<!DOCTYPE html><title>Sign in</title>", "a web page"),
        (b"\x08\x0a\x12\x07pytorch", "ONNX model"),
        (b"hello, not a model", "match no known format"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_says_what_it_is(
    tmp_path: Path, content: bytes, diagnosis: str
) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=diagnosis):
        load_checkpoint(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_checkpoint_says_permission_denied(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", MLP((8,)))
    path.chmod(0o000)
    with pytest.raises(CheckpointError, match="permission denied"):
        load_checkpoint(path)


def test_a_saved_checkpoint_gets_the_ordinary_file_mode(tmp_path: Path) -> None:
    """mkstemp makes 0600 files; a checkpoint must be readable as any file of this user is (umask)."""
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "m.pt", MLP((8,)))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_save_keeps_the_old_checkpoint_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(tmp_path / "best.pt", MLP((8,)), epoch=1)
    before = path.read_bytes()

    def crash_midway(obj: object, f, *args: object, **kwargs: object) -> None:
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, MLP((8,)), epoch=2)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]
    monkeypatch.undo()
    assert load_checkpoint(path)[1]["epoch"] == 1


def test_metadata_must_be_plain_python(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"metadata\['history'\] is a object"):
        save_checkpoint(tmp_path / "m.pt", MLP((8,)), history=object())
    assert not any(tmp_path.iterdir())


def test_compiled_wrappers_and_foreign_models(tmp_path: Path) -> None:
    class Wrapper(torch.nn.Module):  # stands in for torch.compile's OptimizedModule
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self._orig_mod = inner

    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "w.pt", Wrapper(MLP((8,)))))
    assert isinstance(loaded, MLP)
    with pytest.raises(CheckpointError, match="torch.save\\(model.state_dict"):
        save_checkpoint(tmp_path / "lin.pt", torch.nn.Linear(2, 2))


# plain state_dicts and stored normalization (issue 24) ---------------------------------------------


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return torch.equal(a.eval()(x), b.eval()(x))


def test_a_plain_state_dict_matching_simplecnn_is_loaded_and_named(
    tmp_path: Path,
) -> None:
    original = SimpleCNN()
    path = tmp_path / "tutorial_e.pt"
    torch.save(original.state_dict(), path)  # what a reader of tutorial E saved
    model, metadata = load_checkpoint(path)
    assert type(model) is SimpleCNN and _same_outputs(model, original)
    assert (
        "SimpleCNN(" in metadata["matched"] and "bare state_dict" in metadata["matched"]
    )


def test_the_tutorial_model_state_dict_wrapper_is_loaded(tmp_path: Path) -> None:
    original = MLP((32, 16))  # hidden sizes read off the weights' shapes
    path = tmp_path / "tutorial.pt"
    torch.save(
        {"epoch": 3, "model_state_dict": original.state_dict(), "loss": 0.1}, path
    )
    model, metadata = load_checkpoint(path)
    assert type(model) is MLP and model.config["hidden"] == [32, 16]
    assert _same_outputs(model, original) and "model_state_dict" in metadata["matched"]


def test_a_ddp_prefixed_state_dict_is_matched(tmp_path: Path) -> None:
    path = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in CNN().state_dict().items()}, path)
    assert type(load_checkpoint(path)[0]) is CNN


def test_a_matched_state_dict_still_honours_expected(tmp_path: Path) -> None:
    path = tmp_path / "cnn.pt"
    torch.save(CNN().state_dict(), path)
    with pytest.raises(CheckpointError, match="SimpleCNN was expected"):
        load_checkpoint(path, expected="simplecnn")


@pytest.mark.parametrize(
    "normalization",
    [
        {"mean": 0.1307, "std": 0.0},
        {"mean": float("nan"), "std": 0.3},
        {"mean": 0.1, "std": -0.3},
        {"mean": "a", "std": 1},
        [0.1, 0.3],
    ],
    ids=["std-zero", "mean-nan", "std-negative", "not-a-number", "not-a-dict"],
)
def test_an_invalid_stored_normalization_is_refused(
    tmp_path: Path, normalization
) -> None:
    path = save_checkpoint(tmp_path / "m.pt", MLP((8,)), normalization=normalization)
    with pytest.raises(CheckpointError, match="normalization .* is invalid .*std > 0"):
        load_checkpoint(path)


def test_a_missing_device_is_said_in_plain_words(tmp_path: Path, monkeypatch) -> None:
    path = save_checkpoint(tmp_path / "m.pt", MLP((8,)))

    def no_gpu(self, *args, **kwargs):
        raise RuntimeError("Found no NVIDIA driver on your system.\nmore text")

    monkeypatch.setattr(torch.nn.Module, "to", no_gpu)
    with pytest.raises(CheckpointError, match="no such device .*--device cpu"):
        load_checkpoint(path, map_location="cuda")
