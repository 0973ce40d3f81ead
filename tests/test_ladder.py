"""The speed ladder: quick mode returns a complete, JSON-safe result, and both loops see the same data."""

from __future__ import annotations

import json

import pytest
import torch

from book_tools import ladder as bm
from mnist_helpers.tutorial_e import tutorial_e_loaders
from mnist_helpers.data import load_mnist_splits


pytestmark = pytest.mark.needs_mnist


@pytest.fixture(scope="module")
def quick_result() -> dict:
    # Two rungs are enough to exercise both loops (tutorial E's and the library's fit) and the ratio.
    return bm.run_benchmark(quick=True, stages=["tutorial_e", bm.fast_stage_name("cpu")], device="cpu")


def test_quick_result_has_expected_keys(quick_result: dict) -> None:
    assert {"schema", "quick", "machine", "settings", "stages", "fast_stage", "ratio_per_epoch",
            "ratio_to_target", "precision_probe_seconds_per_step"} <= set(quick_result)
    assert quick_result["quick"] is True
    assert quick_result["fast_stage"] == bm.fast_stage_name("cpu")
    assert {"device_name", "torch", "torch_threads", "usable_cpu_cores"} <= set(quick_result["machine"])
    assert [s["name"] for s in quick_result["stages"]] == ["tutorial_e", bm.fast_stage_name("cpu")]
    for stage in quick_result["stages"]:
        assert len(stage["rows"]) == 1
        assert stage["rows"][0]["seconds"] > 0 and stage["rows"][0]["images_per_s"] > 0
        assert 0.0 <= stage["test_acc"] <= 1.0


def test_quick_ratio_is_positive_and_target_ignored(quick_result: dict) -> None:
    assert quick_result["ratio_per_epoch"] > 0
    assert quick_result["ratio_to_target"] is None  # quick runs one epoch: no time-to-target claim
    assert all(s["seconds_to_target"] is None for s in quick_result["stages"])


def test_result_round_trips_through_json(quick_result: dict, tmp_path) -> None:
    path = bm.save_result(quick_result, tmp_path / "speed" / "cpu.json")
    assert bm.load_result(path) == json.loads(json.dumps(quick_result))
    table = bm.text_table(bm.load_result(path))
    assert table.count("\n") == len(quick_result["stages"])  # a header line and one line per rung


def test_load_result_rejects_missing_file_and_other_schema(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="benchmarks/speed.py"):
        bm.load_result(tmp_path / "absent.json")
    (tmp_path / "old.json").write_text(json.dumps({"schema": 0}))
    with pytest.raises(ValueError, match="schema"):
        bm.load_result(tmp_path / "old.json")


def test_unknown_stage_is_named() -> None:
    with pytest.raises(ValueError, match="warp"):
        bm.run_benchmark(quick=True, stages=["warp"], device="cpu")


def test_tutorial_e_loaders_hold_the_books_validation_split() -> None:
    _, val_loader = tutorial_e_loaders("cpu", train_images=300, num_workers=0, batch_size=1000)
    images, labels = next(iter(val_loader))
    val = load_mnist_splits(train_images=300, test_images=10).val
    assert torch.equal(labels, val.labels)
    # ToTensor + Normalize per image vs one vectorised normalisation: the same numbers up to rounding.
    assert torch.allclose(images, val.images, atol=1e-5)


def test_precision_probe_times_every_variant_on_cpu() -> None:
    seconds = bm.precision_probe("cpu", batch_size=8, steps=1)
    assert set(seconds) == {"fp32", "channels_last", "bf16", "bf16_channels_last"}
    assert all(value > 0 for value in seconds.values())


def test_result_filenames_match_the_chapter() -> None:
    assert [bm.result_filename(d) for d in ("cpu", "cuda", "mps")] == ["cpu.json", "gpu.json", "mps.json"]
