"""``predict``'s output cannot be forged or lost through file names (issue "Nothing lost, nothing faked").

File names are made here, in ``tmp_path``; the checkpoint is an untrained MLP (any weights show how the
output is written), so no MNIST file is needed.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from mnist_helpers.checkpoints import save_checkpoint
from mnist_helpers.cli import main
from mnist_helpers.models import MLP
from mnist_helpers.safe_output import printable, spreadsheet_safe

FORMULA = "=cmd|' /C calc'!A0.png"
NEWLINE = "seven\nmnist-helpers: error: forged.png"
CARRIAGE = "two\rfake,9,1.0000,.png"


def digit_png() -> bytes:
    """A dark stroke on grey paper, as PNG bytes (written under any name, bytes names included)."""
    image = Image.new("L", (60, 60), 190)
    ImageDraw.Draw(image).line([(30, 8), (30, 52)], fill=30, width=6)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "ckpt" / "mlp.pt", MLP(hidden=(16,)))


@pytest.fixture
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Hostile names, given relative (as a user types them) from inside ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    names = [
        FORMULA,
        "+1.png",
        "-2.png",
        "@sum.png",
        "\tx.png",
        NEWLINE,
        CARRIAGE,
        "ok.png",
    ]
    for name in names:  # the formula's "/" makes it a file in a folder named "=cmd|' "
        Path(name).parent.mkdir(exist_ok=True)
        Path(name).write_bytes(digit_png())
    return names


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_csv_keeps_one_row_per_image_whatever_the_names_hold(
    checkpoint, images, capsys
):
    code, stdout, stderr = run(
        capsys,
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--format",
        "csv",
        "--",
        *images,
    )
    assert code == 0 and stderr == ""
    rows = list(csv.reader(io.StringIO(stdout, newline="")))
    assert len(rows) == len(images) + 1, "a \\r or \\n in a name never splits a row"
    names = [row[0] for row in rows[1:]]
    assert (
        names[names.index("ok.png") - 2] == NEWLINE
    )  # kept verbatim inside its quotes
    assert names[-2] == CARRIAGE and all(len(row) == 4 for row in rows)


def test_csv_neutralises_cells_a_spreadsheet_would_run_as_formulas(
    checkpoint, images, capsys
):
    _, stdout, _ = run(
        capsys,
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--format",
        "csv",
        "--",
        *images,
    )
    names = [row[0] for row in csv.reader(io.StringIO(stdout, newline=""))][1:]
    assert names[:5] == ["'" + name for name in images[:5]]
    assert names[-1] == "ok.png"
    assert not any(name.startswith(("=", "+", "-", "@", "\t", "\r")) for name in names)


def test_table_shows_control_characters_escaped_so_no_row_or_error_is_faked(
    checkpoint, images, capsys
):
    broken = "bad\nmnist-helpers: error: forged too.png"
    Path(broken).write_bytes(b"not an image")
    code, stdout, stderr = run(
        capsys, "predict", "--checkpoint", str(checkpoint), "--", *images, broken
    )
    lines = stdout.splitlines()
    assert code == 1 and len(lines) == len(images) + 2  # header + one line per file
    assert any(
        line.startswith("seven\\nmnist-helpers: error: forged.png") for line in lines
    )
    assert any(line.startswith("two\\rfake,9") for line in lines) and "\r" not in stdout
    assert not any(
        line.startswith("mnist-helpers: error")
        for line in (stdout + stderr).splitlines()
    )
    assert "bad\\nmnist-helpers: error: forged too.png" in stderr


def test_json_stays_valid_and_keeps_names_exactly(checkpoint, images, capsys):
    _, stdout, _ = run(
        capsys,
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--format",
        "json",
        "--",
        *images,
    )
    assert [row["file"] for row in json.loads(stdout)] == images


def test_argument_errors_escape_the_values_they_quote(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["predict", "--format", "x\nmnist-helpers: error: y", "a.png"])
    stderr = capsys.readouterr().err
    assert caught.value.code == 2 and "x\\nmnist-helpers: error: y" in stderr
    assert sum("error:" in line for line in stderr.splitlines()) == 1


def test_helpers_escape_and_neutralise():
    assert printable("a\nb\rc\x1bd\u202ee") == "a\\nb\\rc\\x1bd\\u202ee"
    assert printable(os.fsdecode(b"caf\xe9.png")) == "caf\\xe9.png"
    assert spreadsheet_safe("=1+1") == "'=1+1" and spreadsheet_safe("1.png") == "1.png"


@pytest.mark.parametrize("format_", ["table", "csv"])
def test_a_non_utf8_name_under_a_strict_utf8_stdout_loses_no_result(
    tmp_path, checkpoint, format_
):
    folder = os.fsencode(tmp_path)
    bad = folder + b"/caf\xe9.png"
    with open(bad, "wb") as file:
        file.write(digit_png())
    good = tmp_path / "good.png"
    good.write_bytes(digit_png())
    result = subprocess.run(
        [sys.executable, "-m", "mnist_helpers", "predict", "--checkpoint", checkpoint]
        + ["--format", format_, bad, str(good)],
        capture_output=True,
        env=dict(os.environ, PYTHONIOENCODING="utf-8:strict"),
        timeout=300,
    )
    stdout = result.stdout.decode("utf-8")  # strict: the output is valid UTF-8
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert "caf\\xe9.png" in stdout and "good.png" in stdout
    assert b"Traceback" not in result.stderr


def test_an_unwritable_preview_folder_is_one_line_and_keeps_every_prediction(
    tmp_path, checkpoint, images, capsys
):
    Path("a_file").write_text("not a folder")
    code, stdout, stderr = run(
        capsys,
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--format",
        "json",
        "--show-preprocessed",
        "a_file/previews",
        "--",
        *images,
    )
    assert code == 1 and len(json.loads(stdout)) == len(images)
    assert (
        len(stderr.splitlines()) == 1
        and "--show-preprocessed a_file/previews" in stderr
    )


def test_one_preview_that_cannot_be_written_keeps_the_others(
    tmp_path, checkpoint, images, capsys
):
    previews = tmp_path / "previews"
    (previews / "00_x.png").mkdir(parents=True)  # where the first preview would go
    Path("x.png").write_bytes(digit_png())
    code, stdout, stderr = run(
        capsys,
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--format",
        "csv",
        "--show-preprocessed",
        str(previews),
        "x.png",
        "ok.png",
    )
    rows = list(csv.reader(io.StringIO(stdout, newline="")))
    assert code == 1 and [row[0] for row in rows[1:]] == ["x.png", "ok.png"]
    assert len(stderr.splitlines()) == 1 and "00_x.png" in stderr
    assert (previews / "01_ok.png").is_file()


def test_a_reader_closing_the_pipe_early_is_not_an_error(tmp_path, checkpoint):
    image = tmp_path / "one.png"
    image.write_bytes(digit_png())
    process = subprocess.Popen(
        [sys.executable, "-m", "mnist_helpers", "predict", "--checkpoint", checkpoint]
        + [str(image)] * 50,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # like `| head -0`: nobody reads, the first write gets EPIPE
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 0 and stderr == ""


@pytest.mark.parametrize(
    "command, needles",
    [
        ("predict", ["every field quoted", "leading '", "escaped"]),
        ("export", ["model.1.onnx"]),
        ("train", ["SIGTERM", "143", "--replace-worse", "<name>.1.pt", "read-only"]),
    ],
)
def test_help_documents_the_safeguards(capsys, command, needles):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(needle in text for needle in needles), text
