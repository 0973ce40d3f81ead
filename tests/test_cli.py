"""The command line: train a tiny model, read digits from PNG files, evaluate, and fail with one clear line."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mnist_helpers.checkpoints import load_checkpoint, save_checkpoint
from mnist_helpers.cli import _normalization, main
from mnist_helpers.data import MNISTDataError
from mnist_helpers.models import MLP, BatchNormMLP

pytestmark = pytest.mark.needs_mnist  # every command here reads the real MNIST files

TINY = [
    "--train-images",
    "600",
    "--test-images",
    "200",
    "--epochs",
    "1",
]  # keeps every run a few seconds


def write_digit(path: Path, shape: str, size: tuple[int, int] = (150, 110)) -> Path:
    """A thick dark digit, off-centre on grey paper, saved as PNG."""
    image = Image.new("L", size, 190)
    draw = ImageDraw.Draw(image)
    w, h = size
    if shape == "1":
        draw.line(
            [(0.6 * w, 0.15 * h), (0.6 * w, 0.85 * h)], fill=40, width=max(3, h // 12)
        )
    elif shape == "0":
        draw.ellipse(
            [0.2 * w, 0.1 * h, 0.5 * w, 0.8 * h], outline=40, width=max(3, h // 12)
        )
    else:  # a 7
        draw.line(
            [(0.3 * w, 0.2 * h), (0.6 * w, 0.2 * h), (0.4 * w, 0.9 * h)],
            fill=40,
            width=max(3, h // 12),
        )
    image.save(path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """One tiny MLP trained through the CLI, shared by the predict/evaluate tests."""
    out = tmp_path_factory.mktemp("train") / "nested" / "mlp.pt"
    assert main(["train", "--model", "mlp", "--out", str(out), *TINY]) == 0
    return out


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_writes_a_loadable_checkpoint_and_reports_test_accuracy(tmp_path, capsys):
    out = tmp_path / "mlp.pt"
    code, stdout, _ = run(
        capsys,
        "train",
        "--model",
        "mlp",
        "--out",
        str(out),
        "--lr",
        "0.002",
        "--batch-size",
        "100",
        "--seed",
        "3",
        *TINY,
    )
    assert code == 0
    assert "540 train / 60 validation / 200 test images" in stdout
    assert "test accuracy" in stdout and "epoch   1:" in stdout and str(out) in stdout
    model, metadata = load_checkpoint(out, expected=MLP)
    assert (
        metadata["recipe"] == "mlp" and metadata["epoch"] == 1 and metadata["seed"] == 3
    )
    assert (
        "lr 0.002" in metadata["recipe_description"]
        and "batch 100" in metadata["recipe_description"]
    )
    assert metadata["normalization"] == {"mean": 0.1307, "std": 0.3081}
    assert 0 <= metadata["test_acc"] <= 1 and len(metadata["history"]["val_acc"]) == 1


def test_same_seed_gives_the_same_checkpoint(tmp_path, checkpoint, capsys):
    again = tmp_path / "again.pt"
    assert main(["train", "--model", "mlp", "--out", str(again), *TINY]) == 0
    first, second = (
        torch.load(checkpoint, weights_only=True),
        torch.load(again, weights_only=True),
    )
    assert all(
        torch.equal(first["state_dict"][k], second["state_dict"][k])
        for k in first["state_dict"]
    )
    assert first["metadata"]["test_acc"] == second["metadata"]["test_acc"]


def test_predict_prints_csv_in_the_order_given(tmp_path, checkpoint, capsys):
    files = [
        write_digit(tmp_path / name, shape)
        for name, shape in [("zebra.png", "7"), ("apple.png", "0"), ("mango.png", "1")]
    ]
    code, stdout, stderr = run(
        capsys,
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--format",
        "csv",
        *map(str, files),
    )
    assert code == 0 and stderr == ""
    rows = list(csv.reader(io.StringIO(stdout)))
    assert rows[0] == ["file", "prediction", "confidence", "error"]
    assert [row[0] for row in rows[1:]] == [str(f) for f in files]
    for _, prediction, confidence, error in rows[1:]:
        assert (
            int(prediction) in range(10)
            and 0.1 <= float(confidence) <= 1
            and error == ""
        )


def test_a_failing_file_does_not_hide_the_others(tmp_path, checkpoint, capsys):
    good_a, good_b = (
        write_digit(tmp_path / "a.png", "7"),
        write_digit(tmp_path / "b.png", "0"),
    )
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good_a.read_bytes()[:100])
    blank = tmp_path / "blank.png"
    Image.new("RGB", (90, 60), (200, 200, 200)).save(blank)
    code, stdout, stderr = run(
        capsys,
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--format",
        "csv",
        str(corrupt),
        str(good_a),
        str(blank),
        str(good_b),
    )
    assert code == 1
    rows = list(
        csv.DictReader(io.StringIO(stdout))
    )  # every file keeps its row, a failure with its reason
    assert [row["file"] for row in rows] == [
        str(corrupt),
        str(good_a),
        str(blank),
        str(good_b),
    ]
    assert [bool(row["prediction"]) for row in rows] == [False, True, False, True]
    assert "no digit found" in rows[2]["error"] and rows[1]["error"] == ""
    lines = stderr.strip().splitlines()
    assert any(str(corrupt) in line for line in lines) and any(
        str(blank) in line and "no digit" in line for line in lines
    )
    assert "2 of 4 images could not be used" in stderr and "Traceback" not in stderr


def test_json_and_table_formats(tmp_path, checkpoint, capsys):
    good, blank = write_digit(tmp_path / "seven.png", "7"), tmp_path / "blank.png"
    Image.new("L", (40, 40), 255).save(blank)
    code, stdout, _ = run(
        capsys,
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--format",
        "json",
        str(good),
        str(blank),
    )
    records = json.loads(stdout)
    assert code == 1 and [r["file"] for r in records] == [str(good), str(blank)]
    assert (
        len(records[0]["probabilities"]) == 10
        and abs(sum(records[0]["probabilities"]) - 1) < 1e-4
    )
    assert records[0]["prediction"] == int(np.argmax(records[0]["probabilities"]))
    assert "no digit found" in records[1]["error"]

    code, stdout, _ = run(capsys, "predict", "--checkpoint", str(checkpoint), str(good))
    header, row = stdout.strip().splitlines()
    assert code == 0 and header.split()[:3] == ["file", "prediction", "confidence"]
    assert row.startswith(str(good)) and "%" in row


def test_show_preprocessed_writes_the_28x28_inputs(tmp_path, checkpoint, capsys):
    files = [
        write_digit(tmp_path / "digit.png", "7"),
        write_digit(tmp_path / "other.png", "0", (333, 500)),
    ]
    shown = tmp_path / "seen"
    code, _, _ = run(
        capsys,
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--show-preprocessed",
        str(shown),
        *map(str, files),
    )
    assert code == 0
    written = sorted(p.name for p in shown.iterdir())
    assert written == ["00_digit.png", "01_other.png"]
    for name in written:
        image = Image.open(shown / name)
        assert image.size == (28, 28) and image.mode == "L"
        pixels = np.asarray(image)
        assert (
            pixels[0].max() == 0 and pixels.max() > 200
        )  # white ink on black, margin kept as in MNIST


def test_evaluate_prints_accuracy_and_the_per_class_table(checkpoint, capsys):
    code, stdout, _ = run(
        capsys, "evaluate", "--checkpoint", str(checkpoint), "--test-images", "200"
    )
    assert code == 0
    assert "on 200 test images" in stdout and "test accuracy" in stdout
    table = stdout.split("digit  images  correct  accuracy\n")[1].splitlines()[:10]
    assert [int(line.split()[0]) for line in table] == list(range(10))
    assert sum(int(line.split()[1]) for line in table) == 200


def test_evaluate_and_export_report_the_recipe_the_checkpoint_records(tmp_path, capsys):
    """A speedrun and a bncnn checkpoint are both BNCNNs: the record, not the class, says which is which."""
    out = tmp_path / "speedrun.pt"
    learns = [
        "--train-images",
        "2000",
        "--test-images",
        "200",
        "--epochs",
        "2",
        "--batch-size",
        "64",
    ]
    assert main(["train", "--model", "speedrun", "--out", str(out), *learns]) == 0
    capsys.readouterr()
    code, stdout, _ = run(
        capsys, "evaluate", "--checkpoint", str(out), "--test-images", "200"
    )
    assert code == 0 and f"{out}: speedrun on 200 test images" in stdout
    code, stdout, _ = run(
        capsys, "export", "--checkpoint", str(out), "--out", str(tmp_path / "m.onnx")
    )
    assert code == 0 and ": speedrun, with its normalization" in stdout


def test_normalization_comes_from_the_checkpoint_or_the_chapter_recipe():
    assert _normalization(MLP(), {"normalization": {"mean": 0.0, "std": 1.0}}) == (
        0.0,
        1.0,
    )
    assert _normalization(BatchNormMLP(), {"epoch": 3}) == (
        0.5,
        0.5,
    )  # a checkpoint saved by chapter 5's fit
    assert _normalization(MLP(), {}) == (0.1307, 0.3081)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p / "missing.pt", "no checkpoint at"),
        (
            lambda p: (
                (p / "junk.pt").write_bytes(b"not a checkpoint") and p / "junk.pt"
            ),
            "junk.pt",
        ),
        (
            lambda p: (
                torch.save(torch.nn.Conv2d(3, 4, 3).state_dict(), p / "bare.pt"),
                p / "bare.pt",
            )[1],
            "bare state_dict",
        ),
    ],
    ids=["missing", "corrupt", "bare-state-dict"],
)
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_checkpoint_errors_are_one_line_without_traceback(
    tmp_path, capsys, make, expected, command
):
    path = make(tmp_path)
    image = write_digit(tmp_path / "d.png", "7")
    argv = [command, "--checkpoint", str(path)] + (
        [str(image)] if command == "predict" else []
    )
    code, stdout, stderr = run(capsys, *argv)
    assert code == 1 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("mnist-helpers: error: ")
    assert expected in stderr and str(path) in stderr


def test_missing_mnist_data_is_one_line(monkeypatch, tmp_path, capsys):
    def no_data(**kwargs):
        raise MNISTDataError(
            "MNIST files missing in data/MNIST/raw/: train-images-idx3-ubyte. ..."
        )

    monkeypatch.setattr("mnist_helpers.cli.load_mnist_splits", no_data)
    code, _, stderr = run(
        capsys, "train", "--model", "cnn", "--out", str(tmp_path / "x.pt")
    )
    assert code == 1 and stderr.count("\n") == 1 and "MNIST files missing" in stderr
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "required: COMMAND"),
        (["train"], "--model"),
        (["train", "--model", "resnet"], "invalid choice: 'resnet'"),
        (["train", "--model", "mlp", "--epochs", "0"], "must be > 0"),
        (["train", "--model", "mlp", "--lr", "fast"], "not a valid"),
        (["predict", "--checkpoint", "x.pt"], "IMAGE"),
        (
            ["predict", "--checkpoint", "x.pt", "--format", "xml", "a.png"],
            "invalid choice: 'xml'",
        ),
    ],
)
def test_bad_arguments_give_argparse_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    stderr = capsys.readouterr().err
    assert (
        caught.value.code == 2
        and "usage: mnist-helpers" in stderr
        and message in stderr
    )


@pytest.mark.parametrize(
    "command, needle",
    [
        (None, "train"),
        ("train", "--batch-size"),
        ("predict", "--show-preprocessed"),
        ("evaluate", "--checkpoint"),
    ],
)
def test_help_is_useful(capsys, command, needle):
    with pytest.raises(SystemExit) as caught:
        main(([command] if command else []) + ["--help"])
    stdout = capsys.readouterr().out
    assert caught.value.code == 0 and needle in stdout
    if command == "train":
        assert (
            "simplecnn" in stdout and "StepLR(5, 0.5)" in stdout and "smoke" in stdout
        )


def test_python_dash_m_and_the_installed_script(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnist_helpers",
            "predict",
            "--checkpoint",
            str(tmp_path / "nope.pt"),
            "x.png",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        result.returncode == 1
        and "no checkpoint at" in result.stderr
        and "Traceback" not in result.stderr
    )
    script = Path(sys.executable).with_name("mnist-helpers")
    if script.exists():  # installed by `pip install -e .`
        result = subprocess.run(
            [str(script), "--help"], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0 and "predict" in result.stdout


def test_predict_says_what_it_sees_instead_of_guessing_two_digits(tmp_path, capsys):
    from test_inference import photo

    checkpoint = save_checkpoint(tmp_path / "m.pt", MLP((8,)))
    two = np.minimum(
        photo(400, 200, box=(0.1, 0.2, 0.35, 0.8)),
        photo(400, 200, box=(0.6, 0.2, 0.85, 0.8), shape="4"),
    )
    Image.fromarray(two).save(tmp_path / "two.png")
    code, _, stderr = run(
        capsys, "predict", "--checkpoint", str(checkpoint), str(tmp_path / "two.png")
    )
    assert (
        code == 1
        and "I see 2 marks side by side" in stderr
        and "Traceback" not in stderr
    )


def test_a_tutorial_state_dict_is_used_and_the_match_said(tmp_path, capsys):
    torch.save(MLP((8,)).state_dict(), tmp_path / "tutorial.pt")
    image = write_digit(tmp_path / "d.png", "7")
    code, stdout, stderr = run(
        capsys, "predict", "--checkpoint", str(tmp_path / "tutorial.pt"), str(image)
    )
    assert (
        code == 0
        and "note:" in stderr
        and "MLP(hidden=[8])" in stderr
        and "d.png" in stdout
    )
