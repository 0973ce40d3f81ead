"""ONNX export (mnist_helpers.export and ``mnist-helpers export``): the file computes what the model computes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest
import torch

from mnist_helpers import export, timing
from mnist_helpers.checkpoints import save_checkpoint
from mnist_helpers.cli import main
from mnist_helpers.data import MNIST_MEAN, MNIST_STD
from mnist_helpers.export import (
    check_parity,
    export_onnx,
    onnx_logits,
    onnx_session,
)
from mnist_helpers.models import CNN, SimpleCNN
from mnist_helpers.recipes import RECIPES
from mnist_helpers.saving import TrainingRecord
from mnist_helpers.timing import median_seconds

REPO = Path(__file__).resolve().parents[1]


def _pixels(n: int, seed: int = 0) -> torch.Tensor:
    """Random 0..255 grey levels: not digits, but every weight of the model gets exercised."""
    return torch.randint(
        0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(seed)
    ).float()


@pytest.fixture(scope="module")
def simplecnn() -> SimpleCNN:
    torch.manual_seed(0)
    return SimpleCNN().eval()


@pytest.fixture(scope="module")
def exported(simplecnn: SimpleCNN, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "simplecnn.onnx"
    return export_onnx(
        simplecnn, path, mean=MNIST_MEAN, std=MNIST_STD, metadata={"source": "a test"}
    )


def test_onnxruntime_reproduces_pytorch(simplecnn: SimpleCNN, exported: Path) -> None:
    parity = check_parity(
        simplecnn,
        onnx_session(exported),
        _pixels(300),
        mean=MNIST_MEAN,
        std=MNIST_STD,
        batch_size=128,
    )
    assert parity.images == 300 and parity.identical_predictions
    assert parity.max_abs_logit_diff < 1e-4


def test_the_normalization_is_inside_the_file(
    simplecnn: SimpleCNN, exported: Path
) -> None:
    """Compared with the wrong mean/std, the same file disagrees: it really applies its own."""
    session = onnx_session(exported)
    right = check_parity(
        simplecnn, session, _pixels(100), mean=MNIST_MEAN, std=MNIST_STD
    )
    wrong = check_parity(simplecnn, session, _pixels(100), mean=0.5, std=0.5)
    assert wrong.same_predictions < wrong.images
    assert wrong.max_abs_logit_diff > 1000 * right.max_abs_logit_diff


def test_a_log_softmax_model_and_other_normalization_export_too(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = CNN().eval()
    path = export_onnx(model, tmp_path / "cnn.onnx", mean=0.5, std=0.5)
    parity = check_parity(model, onnx_session(path), _pixels(64), mean=0.5, std=0.5)
    assert parity.identical_predictions and parity.max_abs_logit_diff < 1e-4


def test_batch_size_is_free(simplecnn: SimpleCNN, exported: Path) -> None:
    session = onnx_session(exported)
    for n in (1, 7):
        assert onnx_logits(session, _pixels(n)).shape == (n, 10)
    assert onnx_logits(session, _pixels(5), batch_size=2).shape == (
        5,
        10,
    )  # three runs, concatenated


def test_export_is_byte_for_byte_repeatable(
    simplecnn: SimpleCNN, exported: Path, tmp_path: Path
) -> None:
    """The same weights give the same file: the page's model can be checked against the chapter by hash."""
    again = export_onnx(
        simplecnn,
        tmp_path / "again.onnx",
        mean=MNIST_MEAN,
        std=MNIST_STD,
        metadata={"source": "a test"},
    )
    assert again.read_bytes() == exported.read_bytes()


def test_file_holds_its_metadata_and_names(exported: Path) -> None:
    proto = onnx.load(str(exported))
    assert {p.key: p.value for p in proto.metadata_props} == {"source": "a test"}
    assert [i.name for i in proto.graph.input] == [export.INPUT_NAME]
    assert [o.name for o in proto.graph.output] == [export.OUTPUT_NAME]
    assert not list(exported.parent.glob("*.data"))  # weights inside the one file
    assert (
        str(REPO).encode() not in exported.read_bytes()
    )  # no stack traces with this machine's paths


def test_export_leaves_the_callers_model_alone(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = SimpleCNN().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m.onnx", mean=MNIST_MEAN, std=MNIST_STD)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [p.name for p in tmp_path.iterdir()] == [
        "m.onnx"
    ]  # no temporary file left behind


def test_bad_inputs_say_what_to_do(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"shape \(N, 1, 28, 28\), got \(3, 28, 28\)"):
        onnx_logits(onnx_session(exported), _pixels(3)[:, 0])
    with pytest.raises(FileNotFoundError, match="mnist-helpers export"):
        onnx_session(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a usable ONNX model"):
        onnx_session(junk)


def test_median_seconds_is_the_median_of_the_timed_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter([0.0, 1.0, 10.0, 13.0, 20.0, 30.0])  # calls of 1, 3 and 10 seconds
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    calls = []
    assert median_seconds(lambda: calls.append(1), repeats=3, warmup=2) == 3.0
    assert len(calls) == 5


# ------------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def checkpoint(simplecnn: SimpleCNN, tmp_path_factory: pytest.TempPathFactory) -> Path:
    record = TrainingRecord(
        recipe="simplecnn",
        description=RECIPES["simplecnn"].describe(),
        mean=0.1307,
        std=0.3081,
        profile="smoke",
        seed=42,
        best_epoch=1,
        val_acc=0.9,
        val_loss=0.3,
    )
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "simplecnn.pt", simplecnn, **record.metadata()
    )


def test_cli_export_writes_a_file_that_agrees(
    checkpoint: Path,
    simplecnn: SimpleCNN,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "same digit for 256" in printed
    parity = check_parity(
        simplecnn, onnx_session(out), _pixels(50), mean=MNIST_MEAN, std=MNIST_STD
    )
    assert parity.identical_predictions and parity.max_abs_logit_diff < 1e-4
    proto = onnx.load(str(out))
    assert {p.key: p.value for p in proto.metadata_props} == {
        "checkpoint": "simplecnn.pt",
        "model": "simplecnn",
    }


@pytest.mark.parametrize(
    ("out", "message"),
    [("model.pt", "must end in .onnx"), ("folder.onnx", "is a folder")],
)
def test_cli_export_refuses_a_bad_destination(
    checkpoint: Path,
    tmp_path: Path,
    out: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "folder.onnx").mkdir()
    assert (
        main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / out)])
        == 1
    )
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_cli_export_of_a_missing_checkpoint_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(tmp_path / "nope.pt"),
                "--out",
                str(tmp_path / "m.onnx"),
            ]
        )
        == 1
    )
    error = capsys.readouterr().err
    assert "no checkpoint at" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------------------- the page's model file


def _stored_glue(notebook: Path) -> tuple[dict[str, object], dict[str, object]]:
    """The notebook's stamp (book_tools) and the text of every value it glued."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    values = {}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                values[name] = next(iter(output["data"].values()))
    return nb["metadata"].get("mnist_book", {}), values


def test_the_page_serves_the_model_chapter_11_exported() -> None:
    """book/draw/simplecnn.onnx is the file chapter 12's full-profile run wrote, byte for byte.

    Chapter 12 writes the page's model only in the full profile and glues its SHA-256; a file committed
    from another run (or an unexecuted chapter) would put a model on the site that the book never measured.
    """
    stamp, values = _stored_glue(REPO / "book" / "12_export_and_draw.ipynb")
    if stamp.get("profile") != "full":
        pytest.skip(
            "chapter 12 has no full-profile outputs yet (book_tools.notebooks check reports it)"
        )
    served = (REPO / "book" / "draw" / "simplecnn.onnx").read_bytes()
    assert (
        str(values["ch12_page_model_sha256"]).strip("'")
        == hashlib.sha256(served).hexdigest()
    ), (
        "book/draw/simplecnn.onnx is not the file chapter 12 wrote: commit the one its full-profile run wrote"
    )
