"""Issue 12's ten kinds of bad input, each tried as a user would: every one must end in a one-line error that
names the thing and the cure, keep every other result, and never replace good work with bad.

All images are generated here; no binary fixture is needed.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import types
import zlib
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import ndimage
from test_inference import correlation, digit_mask, photo

from mnist_helpers import cli, distributed
from mnist_helpers.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from mnist_helpers.cli import main
from mnist_helpers.data import MNIST_FILES, MNISTDataError, TensorSplit, load_mnist
from mnist_helpers.inference import (
    ModelOutputError,
    UnreadableImageError,
    classify,
    predict,
    preprocess,
    preprocess_steps,
)
from mnist_helpers.models import MLP, BatchNormMLP
from mnist_helpers.saving import TrainingRecord, refuse_useless
from mnist_helpers.training import History

TINY = ["--train-images", "600", "--test-images", "200", "--epochs", "1"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(stderr: str) -> str:
    """The CLI's answer to a bad input: exactly one line, no traceback."""
    assert "Traceback" not in stderr
    lines = [
        line for line in stderr.splitlines() if line.startswith("mnist-helpers: error")
    ]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def untrained_checkpoint(tmp_path: Path) -> Path:
    """Any weights will do for checking how predict handles its inputs."""
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "mlp.pt", MLP(hidden=(16,)))


def png_claiming(width: int, height: int) -> bytes:
    """A 67-byte PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


# 1 ------------------------------------------------------------------------- images over Pillow's limit


@pytest.mark.parametrize(
    "size",
    [(20000, 20000), (16320, 12240), (10000, 10000)],
    ids=["bomb-png", "200-megapixel-photo", "just-over-the-limit"],
)
def test_1_huge_images_are_refused_in_one_line_before_decoding(tmp_path, size):
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming(*size))
    with pytest.raises(UnreadableImageError) as caught:
        preprocess(path)
    message = str(caught.value)
    assert (
        message.startswith(str(path))
        and "too big to decode safely" in message
        and "shrink it" in message
    )
    assert "\n" not in message


def test_1_a_huge_image_does_not_cost_the_batch_its_other_results(
    tmp_path, untrained_checkpoint, capsys
):
    huge, good = tmp_path / "huge.png", tmp_path / "good.png"
    huge.write_bytes(png_claiming(20000, 20000))
    Image.fromarray(photo()).save(good)
    code, stdout, stderr = run(
        capsys,
        "predict",
        "--checkpoint",
        str(untrained_checkpoint),
        "--format",
        "csv",
        str(huge),
        str(good),
    )
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert code == 1 and [row["file"] for row in rows] == [str(huge), str(good)]
    assert "too big" in rows[0]["error"] and rows[1]["prediction"] != ""
    assert "Traceback" not in stderr


# 2 -------------------------------------------------------------------- diverged training is never saved


@pytest.mark.needs_mnist
def test_2_a_diverged_run_exits_1_and_keeps_the_good_checkpoint(
    tmp_path, untrained_checkpoint, capsys
):
    good = untrained_checkpoint.read_bytes()
    code, stdout, stderr = run(
        capsys,
        "train",
        "--model",
        "mlp",
        "--out",
        str(untrained_checkpoint),
        "--lr",
        "1e6",
        *TINY,
    )
    assert (
        code == 1
        and "no better than guessing" in one_error_line(stderr)
        and "--lr" in stderr
    )
    assert (
        untrained_checkpoint.read_bytes() == good and "checkpoint written" not in stdout
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.pt"]


@pytest.mark.parametrize(
    "loss, accuracy", [(math.nan, 0.5), (math.inf, 0.9), (0.3, 0.1), (1e31, 0.2)]
)
def test_2_models_with_non_finite_loss_or_chance_accuracy_are_refused(loss, accuracy):
    history = History(best_val_loss=loss, best_val_acc=accuracy)
    with pytest.raises(ValueError, match="nothing was saved"):
        refuse_useless(history)


def test_2_a_sound_model_passes():
    refuse_useless(History(best_val_loss=0.1, best_val_acc=0.97))


@pytest.mark.needs_mnist
def test_2_retraining_to_an_existing_path_says_so_and_keeps_the_old_one(
    tmp_path, untrained_checkpoint, capsys
):
    old = untrained_checkpoint.read_bytes()
    code, stdout, _ = run(
        capsys, "train", "--model", "mlp", "--out", str(untrained_checkpoint), *TINY
    )
    previous = tmp_path / "mlp.1.pt"
    assert (
        code == 0 and previous.read_bytes() == old and f"kept as {previous}" in stdout
    )


# 3 ------------------------------------------------------------------------------- NaN weights or outputs


def nan_checkpoint(tmp_path: Path) -> Path:
    model = MLP(hidden=(16,))
    with torch.no_grad():
        model.layers[1].weight[0, 0] = math.nan
    return save_checkpoint(tmp_path / "nan.pt", model)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_3_a_checkpoint_with_nan_weights_is_refused_by_name(tmp_path, capsys, command):
    path = nan_checkpoint(tmp_path)
    image = tmp_path / "d.png"
    Image.fromarray(photo()).save(image)
    code, stdout, stderr = run(
        capsys,
        command,
        "--checkpoint",
        str(path),
        *([str(image)] * (command == "predict")),
    )
    line = one_error_line(stderr)
    assert (
        code == 1
        and stdout == ""
        and "NaN" in line
        and "layers.1.weight" in line
        and "retrain" in line
    )


class NaNNet(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x), 10), math.nan)


def test_3_nan_outputs_never_become_an_answer():
    with pytest.raises(ModelOutputError, match="NaN or infinite"):
        classify(NaNNet(), torch.zeros(2, 1, 28, 28))
    with pytest.raises(ModelOutputError):
        predict(NaNNet(), [photo()])


def test_3_json_output_is_always_valid_json(capsys):
    with pytest.raises(
        ValueError
    ):  # main turns this into one line; never an invalid 'NaN' in the output
        cli._write_json([{"file": "a.png", "confidence": math.nan}])
    cli._write_json([{"file": "a.png", "prediction": 3, "confidence": 0.5}])
    assert json.loads(capsys.readouterr().out)[0]["prediction"] == 3


def test_3_evaluate_warns_when_accuracy_is_at_chance(monkeypatch, tmp_path, capsys):
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "mlp.pt", MLP(hidden=(16,)))
    images = torch.zeros(50, 1, 28, 28, dtype=torch.uint8)
    monkeypatch.setattr(
        cli, "mnist_tensors", lambda **_: (images, torch.arange(50) % 10)
    )
    code, stdout, stderr = run(capsys, "evaluate", "--checkpoint", str(path))
    assert (
        code == 0
        and "test accuracy 10.00%" in stdout
        and "no better than guessing" in stderr
    )


# 4 ------------------------------------------------------- shadows, faint thin pens, transparent drawings


def blurred_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Similarity of two 28x28 inputs that forgives a one-pixel shift (a blur of one pixel first)."""
    return correlation(
        ndimage.gaussian_filter(a[0].numpy(), 1),
        ndimage.gaussian_filter(b[0].numpy(), 1),
    )


@pytest.mark.parametrize("shape", ["7", "0", "4"])
def test_4_a_sharp_shadow_edge_through_the_digit_changes_nothing(shape):
    lit = photo(
        300, 240, box=(0.3, 0.2, 0.7, 0.8), shape=shape, paper=200, ink=40
    ).astype(np.float32)
    half_in_shadow = lit.copy()
    half_in_shadow[:, :140] *= (
        0.45  # the paper's left half in the phone's shadow, with a sharp edge
    )
    near_the_digit = ndimage.binary_dilation(
        preprocess_steps(lit.astype(np.uint8))["cleaned"] > 0, iterations=2
    )
    assert (
        preprocess_steps(half_in_shadow.astype(np.uint8))["cleaned"][
            ~near_the_digit
        ].max()
        == 0
    ), "the shadow's edge is not taken for ink"
    assert (
        blurred_correlation(
            preprocess(half_in_shadow.astype(np.uint8)),
            preprocess(lit.astype(np.uint8)),
        )
        > 0.97
    )


def pen_digit(
    shape: str, width: int, paper: float, ink: float, noise: float
) -> np.ndarray:
    """A digit drawn with a pen ``width`` px wide on a 600x600 photo."""
    mask = Image.new("L", (600, 600), 0)
    draw = ImageDraw.Draw(mask)
    if shape == "4":
        draw.line(
            [(380, 520), (380, 100), (150, 380), (460, 380)], fill=255, width=width
        )
    else:  # a 7
        draw.line([(160, 120), (440, 120), (260, 520)], fill=255, width=width)
    strokes = np.asarray(mask, dtype=np.float32) / 255
    pixels = (
        paper * (1 - strokes)
        + ink * strokes
        + np.random.default_rng(0).normal(0, noise, strokes.shape)
    )
    return np.clip(pixels, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", ["4", "7"])
def test_4_thin_faint_strokes_give_the_same_digit_as_a_thick_marker(shape):
    ballpoint = preprocess(
        pen_digit(shape, width=3, paper=200, ink=150, noise=3)
    )  # 3 px of 600, faint
    marker = preprocess(pen_digit(shape, width=45, paper=200, ink=30, noise=0))
    assert blurred_correlation(ballpoint, marker) > 0.9
    ink = (ballpoint[0].numpy() > ballpoint.min().item() + 1).astype(int)
    assert ndimage.label(ink, structure=np.ones((3, 3)))[1] == 1, (
        "the strokes stay in one piece"
    )


@pytest.mark.parametrize("hidden_colour", [255, 0])
def test_4_a_white_digit_on_a_transparent_background_is_read(hidden_colour):
    mask = digit_mask(120, 90, (0.2, 0.1, 0.5, 0.9), "4")
    rgba = np.full(
        (90, 120, 4), hidden_colour, dtype=np.uint8
    )  # the colour under the transparency varies
    rgba[mask > 0, :3] = 255  # white strokes ...
    rgba[..., 3] = (mask * 255).astype(np.uint8)  # ... on a fully transparent sheet
    black_on_white = (255 * (1 - mask)).astype(np.uint8)
    assert torch.allclose(preprocess(rgba), preprocess(black_on_white), atol=1e-4)


# 5 ---------------------------------------------------------------------- malformed checkpoint dictionaries


def write_payload(tmp_path: Path, **changes: object) -> Path:
    """A valid save_checkpoint payload with some fields changed (None removes the field)."""
    path = save_checkpoint(tmp_path / "ok.pt", MLP(hidden=(16,)))
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            payload.pop(key)
        else:
            payload[key] = value
    torch.save(payload, tmp_path / "bad.pt")
    return tmp_path / "bad.pt"


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"model_class": None}, "no 'model_class'"),
        ({"state_dict": None}, "no 'state_dict'"),
        ({"model_config": ["hidden", 16]}, "'model_config' is a list, not a dict"),
        ({"state_dict": [1, 2]}, "'state_dict' is a list"),
        ({"metadata": "notes"}, "'metadata' is a str"),
        ({"model_class": 42}, "'model_class' is a int, not a str"),
        (
            {"model_config": {"hidden": [16], "colour": "red"}},
            "takes no argument 'colour'",
        ),
        ({"model_config": {"hidden": "wide"}}, "not a number"),
        ({"model_config": {"hidden": [10**9]}}, "out of range"),
        ({"model_config": {"hidden": [16], "in_features": -5}}, "out of range"),
        ({"state_dict": {"layers.1.weight": "zeros"}}, "not a tensor"),
    ],
    ids=[
        "no-class",
        "no-weights",
        "config-list",
        "weights-list",
        "metadata-str",
        "class-int",
        "unknown-key",
        "config-str",
        "enormous-hidden",
        "negative",
        "weight-str",
    ],
)
def test_5_malformed_checkpoints_are_refused_before_anything_is_built(
    tmp_path, monkeypatch, changes, expected
):
    path = write_payload(tmp_path, **changes)

    @functools.wraps(
        MLP.__init__
    )  # same signature, so the check still sees MLP's arguments
    def never_build(*_: object, **__: object) -> None:
        pytest.fail("built a model from a bad checkpoint")

    monkeypatch.setattr(MLP, "__init__", never_build)
    with pytest.raises(CheckpointError, match=expected.replace("(", r"\(")):
        load_checkpoint(path)


def test_5_a_config_the_constructor_rejects_is_one_line(tmp_path, capsys):
    payload = torch.load(
        save_checkpoint(tmp_path / "s.pt", MLP(hidden=(16,))), weights_only=True
    )
    payload["model_class"], payload["model_config"] = "SimpleCNN", {"conv_dropout": 5.0}
    torch.save(payload, tmp_path / "bad.pt")
    code, _, stderr = run(capsys, "evaluate", "--checkpoint", str(tmp_path / "bad.pt"))
    assert code == 1 and "cannot build a SimpleCNN" in one_error_line(stderr)


# 6 ------------------------------------------------------------ an unusable --out fails before training


def never_train(*_: object, **__: object) -> None:
    pytest.fail("training started although the checkpoint could not be written")


@pytest.mark.parametrize(
    "make_out, expected",
    [
        (lambda p: p, "is a folder"),
        (
            lambda p: ((p / "notes.txt").write_text("x"), p / "notes.txt" / "mlp.pt")[
                1
            ],
            "cannot write",
        ),
        (lambda p: Path("/proc/self/no/such/place/mlp.pt"), "cannot write"),
    ],
    ids=["a-folder", "parent-is-a-file", "unwritable-place"],
)
def test_6_a_bad_destination_fails_before_the_first_epoch(
    tmp_path, monkeypatch, capsys, make_out, expected
):
    monkeypatch.setattr(cli, "load_mnist_splits", never_train)
    code, _, stderr = run(
        capsys, "train", "--model", "mlp", "--out", str(make_out(tmp_path))
    )
    assert code == 1 and expected in one_error_line(stderr) and "--out" in stderr


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0,
    reason="root can write in a read-only folder",
)
def test_6_a_read_only_folder_fails_before_the_first_epoch(
    tmp_path, monkeypatch, capsys
):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setattr(cli, "load_mnist_splits", never_train)
    code, _, stderr = run(
        capsys, "train", "--model", "mlp", "--out", str(locked / "mlp.pt")
    )
    assert code == 1 and "cannot write" in one_error_line(stderr)


# 7 ---------------------------------------------------------- Ctrl-C keeps the best epoch; lines flushed


@pytest.mark.needs_mnist
def test_7_ctrl_c_saves_the_best_epoch_so_far_as_partial_and_says_so(
    tmp_path, monkeypatch, capsys
):
    real_fit = cli.fit_recipe
    printed_during_training: list[str] = []

    def interrupted_in_epoch_2(*args, on_epoch, **kwargs):
        def after_epoch(history: History) -> None:
            on_epoch(history)
            printed_during_training.append(
                capsys.readouterr().out
            )  # what the reader has seen by now
            if history.epochs == 2:
                raise KeyboardInterrupt

        return real_fit(*args, on_epoch=after_epoch, **kwargs)

    monkeypatch.setattr(cli, "fit_recipe", interrupted_in_epoch_2)
    out = tmp_path / "mlp.pt"
    code, _, stderr = run(
        capsys, "train", "--model", "mlp", "--out", str(out), *TINY[:4], "--epochs", "5"
    )
    partial = tmp_path / "mlp.partial.pt"
    assert code == 130 and not out.exists() and partial.exists()
    assert f"saved as {partial}" in stderr and "interrupted after 2 epoch" in stderr
    _, metadata = load_checkpoint(partial)
    assert (
        metadata["partial"] is True
        and metadata["epoch"] in (1, 2)
        and metadata["recipe"] == "mlp"
    )
    assert "epoch   1:" in printed_during_training[0], (
        "each epoch is printed as soon as it ends"
    )


def test_7_interrupted_before_any_epoch_saves_nothing(tmp_path, capsys):
    reporter = cli.EpochReporter(MLP(hidden=(4,)))
    record = TrainingRecord(
        recipe="mlp",
        description="d",
        mean=0.1307,
        std=0.3081,
        profile="smoke",
        seed=0,
        best_epoch=None,
        val_acc=None,
        val_loss=None,
    )
    cli.save_partial(reporter, tmp_path / "mlp.pt", record)
    assert (
        "nothing to save" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
    )


# 8 ---------------------------------------------------------- a last training batch of one image


def test_8_shuffled_batches_never_end_with_a_lone_image():
    split = TensorSplit(torch.randn(23, 1, 28, 28), torch.arange(23) % 10)
    training = split.batches(11, shuffle=True)
    assert len(training) == 2 and [len(y) for _, y in training] == [11, 11]
    assert [len(y) for _, y in split.batches(11)] == [11, 11, 1], (
        "evaluation still sees every image"
    )
    model = BatchNormMLP(hidden=(8,)).train()
    for x, _ in training:
        model(x)  # a batch of one would raise "Expected more than 1 value per channel"


@pytest.mark.needs_mnist
def test_8_batchnorm_mlp_trains_when_the_split_leaves_one_image_over(tmp_path, capsys):
    # 600 images -> 540 for training; 540 = 49 x 11 + 1
    code, stdout, stderr = run(
        capsys,
        "train",
        "--model",
        "bnmlp",
        "--batch-size",
        "11",
        "--out",
        str(tmp_path / "bn.pt"),
        *TINY,
    )
    assert code == 0 and "Traceback" not in stderr and (tmp_path / "bn.pt").exists()


# 9 ---------------------------------------------------- the missing MNIST file and the missing device


def test_9_one_missing_mnist_file_is_named(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in list(MNIST_FILES)[1:]:
        (raw / name).write_bytes(
            b""
        )  # present (contents are not checked before the download attempt)
    monkeypatch.setattr(
        "torchvision.datasets.MNIST.download",
        lambda self: (_ for _ in ()).throw(URLError("offline")),
    )
    with pytest.raises(MNISTDataError) as caught:
        load_mnist(train=True, root=tmp_path)
    message = str(caught.value)
    missing = list(MNIST_FILES)[0]
    assert (
        f"raw/: {missing};" in message
        and ".gz" not in message.split("could not download")[0]
    )
    assert all(name not in message.split(";")[0] for name in list(MNIST_FILES)[1:])


def test_9_a_device_the_machine_lacks_is_blamed_not_the_checkpoint(tmp_path, capsys):
    if torch.backends.mps.is_available():
        pytest.skip("this machine has an Apple GPU")
    with pytest.raises(SystemExit) as caught:
        main(["predict", "--checkpoint", "x.pt", "--device", "mps", "a.png"])
    stderr = capsys.readouterr().err
    assert (
        caught.value.code == 2
        and "argument --device" in stderr
        and "no Apple GPU" in stderr
    )
    path = save_checkpoint(tmp_path / "m.pt", MLP(hidden=(4,)))
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path, map_location="mps")
    assert "'mps'" in str(error.value) and "corrupt" not in str(error.value)


# 10 ------------------------------------------------ CSV keeps failures; options named; MNIST_DATA_DIR


def test_10_csv_keeps_a_row_for_every_image_with_its_error(
    tmp_path, untrained_checkpoint, capsys
):
    blank, good, missing = (
        tmp_path / "blank.png",
        tmp_path / "good.png",
        tmp_path / "missing.png",
    )
    Image.new("L", (60, 40), 230).save(blank)
    Image.fromarray(photo()).save(good)
    code, stdout, _ = run(
        capsys,
        "predict",
        "--checkpoint",
        str(untrained_checkpoint),
        "--format",
        "csv",
        str(blank),
        str(good),
        str(missing),
    )
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert code == 1 and [row["file"] for row in rows] == [
        str(blank),
        str(good),
        str(missing),
    ]
    assert "no digit found" in rows[0]["error"] and "file not found" in rows[2]["error"]
    assert rows[1]["error"] == "" and rows[1]["prediction"] in list("0123456789")


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--seed", "-1", "between 0 and 4,294,967,295"),
        ("--train-images", "70000", "between 20 and 60,000"),
        ("--test-images", "0", "between 1 and 10,000"),
        ("--lr", "1e38", "at most 1e+06"),
        ("--lr", "nan", "must be > 0"),
        ("--device", "toaster", "unknown device 'toaster'"),
    ],
)
def test_10_options_are_checked_with_their_names(capsys, option, value, expected):
    with pytest.raises(SystemExit) as caught:
        main(["train", "--model", "mlp", option, value])
    stderr = capsys.readouterr().err
    assert (
        caught.value.code == 2
        and f"argument {option}: " in stderr
        and expected in stderr
    )


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]])
def test_10_help_says_where_the_data_is_read_from(capsys, argv):
    with pytest.raises(SystemExit):
        main(argv)
    assert "MNIST_DATA_DIR" in capsys.readouterr().out


# 11 ------------------------------- issue 24: SIGTERM, export backups, --device and --lr wording


@pytest.mark.needs_mnist
def test_11_sigterm_saves_the_best_epoch_so_far_and_exits_143(tmp_path):
    """What `timeout`, Slurm, Docker and systemd send: a real process, a real signal."""
    out = tmp_path / "mlp.pt"
    process = subprocess.Popen(
        [sys.executable, "-m", "mnist_helpers", "train", "--model", "mlp"]
        + ["--train-images", "600", "--test-images", "200", "--epochs", "500"]
        + ["--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, MNIST_BOOK_PROFILE="smoke"),
    )
    try:
        for line in process.stdout:
            if line.startswith("epoch   1:"):
                process.send_signal(signal.SIGTERM)
                break
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    partial = tmp_path / "mlp.partial.pt"
    assert process.returncode == 143 and not out.exists() and "Traceback" not in stderr
    assert "terminated (SIGTERM) after" in stderr and f"saved as {partial}" in stderr
    _, metadata = load_checkpoint(partial)
    assert metadata["partial"] is True and metadata["recipe"] == "mlp"


@pytest.mark.needs_mnist
def test_11_sigterm_under_torchrun_rank_0_saves_the_partial(tmp_path, monkeypatch):
    """One rank of a torchrun job (a world of one, in this process) stopped in epoch 2 by SIGTERM."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    for name, value in dict(
        RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1"
    ).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_PORT", str(port))
    real_fit = distributed.fit_recipe

    def terminated_in_epoch_2(*args, on_epoch, **kwargs):
        def after_epoch(history: History) -> None:
            on_epoch(history)
            if history.epochs == 2:
                raise cli.Terminated

        return real_fit(*args, on_epoch=after_epoch, **kwargs)

    monkeypatch.setattr(distributed, "fit_recipe", terminated_in_epoch_2)
    out = tmp_path / "mlp.pt"
    code = main(
        ["train", "--model", "mlp", "--out", str(out), "--device", "cpu"]
        + ["--train-images", "600", "--test-images", "200", "--epochs", "5"]
    )
    _, metadata = load_checkpoint(tmp_path / "mlp.partial.pt")
    assert code == 143 and not out.exists() and metadata["partial"] is True


def _fake_export(model, path, **_: object) -> Path:
    Path(path).write_bytes(b"new onnx")
    return Path(path)


def test_11_export_keeps_an_existing_onnx_as_a_numbered_backup(
    tmp_path, untrained_checkpoint, monkeypatch, capsys
):
    monkeypatch.setattr(cli, "export_onnx", _fake_export)
    monkeypatch.setattr(cli, "onnx_session", lambda path: None)
    parity = types.SimpleNamespace(
        images=256,
        same_predictions=256,
        max_abs_logit_diff=0.0,
        identical_predictions=True,
    )
    monkeypatch.setattr(cli, "check_parity", lambda *_, **__: parity)
    out = tmp_path / "model.onnx"
    out.write_bytes(b"published model")
    (tmp_path / "model.1.onnx").write_bytes(b"older backup")
    code, stdout, _ = run(
        capsys, "export", "--checkpoint", str(untrained_checkpoint), "--out", str(out)
    )
    backup = tmp_path / "model.2.onnx"
    assert code == 0 and f"kept as {backup}" in stdout
    assert backup.read_bytes() == b"published model" and out.read_bytes() == b"new onnx"
    assert (tmp_path / "model.1.onnx").read_bytes() == b"older backup"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("toaster", "unknown device 'toaster': use cpu, cuda, cuda:N or mps"),
        ("xla", "use cpu, cuda, cuda:N or mps"),
        (
            "cuda:99",
            "use --device cpu" if not torch.cuda.is_available() else "numbered from 0",
        ),
    ],
)
def test_11_device_errors_speak_the_command_lines_language(capsys, value, expected):
    with pytest.raises(SystemExit) as caught:
        main(["predict", "--checkpoint", "m.pt", "--device", value, "a.png"])
    stderr = capsys.readouterr().err
    assert caught.value.code == 2 and "argument --device: " in stderr
    assert expected in stderr and "None" not in stderr


@pytest.mark.needs_mnist
def test_11_a_learning_rate_too_small_is_not_told_to_go_lower(tmp_path, capsys):
    code, _, stderr = run(
        capsys,
        "train",
        "--model",
        "mlp",
        "--out",
        str(tmp_path / "m.pt"),
        *TINY,
        "--lr",
        "1e-300",
    )
    line = one_error_line(stderr)
    assert code == 1 and "too small to learn anything: try 1e-3" in line
    assert "lower" not in line and not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    "lr, advice", [(1e-300, "too small"), (1e-2, "lower learning")]
)
def test_11_the_advice_after_a_useless_run_depends_on_the_learning_rate(lr, advice):
    with pytest.raises(ValueError, match=advice):
        distributed.refuse_useless_at(History(best_val_loss=2.3, best_val_acc=0.1), lr)
