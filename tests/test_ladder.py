"""The speed ladder: quick mode returns a complete, JSON-safe result, and its summary adds up."""

from __future__ import annotations

import json

import pytest
import torch

from book_tools import ladder
from book_tools.results import save_result
from mnist_helpers.data import load_mnist_splits
from mnist_helpers.models import SimpleCNN
from mnist_helpers.results import SPEED_SCHEMA, load_result, speed_summary
from mnist_helpers.tutorial_e import tutorial_e_loaders

pytestmark = pytest.mark.needs_mnist


@pytest.fixture(scope="module")
def quick_result() -> dict:
    # Both loops (tutorial E's and the library's fit), one whole run, two seeds: every code path, in seconds.
    return ladder.run_benchmark(
        quick=True,
        rungs=["tensors", "speedrun_fp32"],
        whole_runs=["speedrun_fp32"],
        seeds=2,
        device="cpu",
    )


def test_quick_result_records_machine_rungs_timings_and_runs(
    quick_result: dict,
) -> None:
    assert quick_result["schema"] == SPEED_SCHEMA and quick_result["quick"] is True
    assert {
        "device_name",
        "torch",
        "torch_threads",
        "usable_cpu_cores",
        "native_bf16",
    } <= set(quick_result["machine"])
    assert [r["name"] for r in quick_result["rungs"]] == ["tensors", "speedrun_fp32"]
    assert [(t["rung"], t["seed"]) for t in quick_result["timings"]] == [
        ("tensors", 0),
        ("tensors", 1),
        ("speedrun_fp32", 0),
        ("speedrun_fp32", 1),
    ]
    assert all(
        t["seconds"] > 0 and t["images"] == ladder.QUICK_TIMING_IMAGES
        for t in quick_result["timings"]
    )
    runs = quick_result["runs"]
    assert [(r["rung"], r["recipe"], r["seed"]) for r in runs] == [
        ("speedrun_fp32", "speedrun", 0),
        ("speedrun_fp32", "speedrun", 1),
    ]
    for run in runs:  # the fields the results format asks of every run
        assert {
            "recipe",
            "seed",
            "train_seconds",
            "test_accuracy",
            "epochs",
            "device",
        } <= set(run)
        assert (
            0 <= run["test_accuracy"] <= 1
            and run["epochs"] == 1
            and run["train_seconds"] > 0
        )


def test_summary_speedups_are_relative_to_the_first_rung(quick_result: dict) -> None:
    rows = speed_summary(quick_result)
    assert rows[0]["speedup_per_epoch"] == 1.0
    rates = [
        t["images_per_s"]
        for t in quick_result["timings"]
        if t["rung"] == "speedrun_fp32"
    ]
    assert rows[1]["images_per_s"] == pytest.approx(sum(rates) / 2)
    assert rows[1]["speedup_per_epoch"] == pytest.approx(
        rows[1]["images_per_s"] / rows[0]["images_per_s"]
    )
    assert (
        rows[1]["seeds"] == 2 and "train_seconds" not in rows[0]
    )  # only whole runs have accuracies


def test_result_round_trips_through_json(quick_result: dict, tmp_path) -> None:
    path = save_result(quick_result, tmp_path / "results" / "speed_cpu.json")
    assert load_result(path, schema=SPEED_SCHEMA) == json.loads(
        json.dumps(quick_result)
    )


def test_load_result_rejects_missing_file_and_other_schema(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="benchmarks/"):
        load_result(tmp_path / "absent.json", schema=SPEED_SCHEMA)
    (tmp_path / "old.json").write_text(json.dumps({"schema": 1}))
    with pytest.raises(ValueError, match="schema"):
        load_result(tmp_path / "old.json", schema=SPEED_SCHEMA)


def test_unknown_rung_is_named() -> None:
    with pytest.raises(ValueError, match="warp"):
        ladder.run_benchmark(quick=True, rungs=["warp"], device="cpu")


def test_flop_count_of_simplecnn_matches_its_layers() -> None:
    # Forward multiply-adds of SimpleCNN's convs and linears, x2 for FLOPs, x3 for forward + backward.
    macs = (
        28 * 28 * 9 * (1 * 32 + 32 * 32)
        + 14 * 14 * 9 * (32 * 64 + 64 * 64)
        + 3136 * 128
        + 128 * 10
    )
    assert ladder.flops_per_image(SimpleCNN()) == pytest.approx(2 * 3 * macs, rel=0.01)


def test_tutorial_e_loaders_hold_the_books_validation_split() -> None:
    _, val_loader = tutorial_e_loaders(
        "cpu", train_images=300, num_workers=0, batch_size=1000
    )
    images, labels = next(iter(val_loader))
    val = load_mnist_splits(train_images=300, test_images=10).val
    assert torch.equal(labels, val.labels)
    # ToTensor + Normalize per image vs one vectorised normalisation: the same numbers up to rounding.
    assert torch.allclose(images, val.images, atol=1e-5)


def test_results_are_kept_one_file_per_cpu_class_and_quick_runs_write_none(
    tmp_path, monkeypatch
) -> None:
    from book_tools import results

    monkeypatch.setattr(results, "REPO_RESULTS", tmp_path)
    cpu = {"machine": {"device": "cpu", "cpu_class": "avx2 (ISA-limited)"}}
    results.save_per_class(cpu, None, "fastest", quick=True)
    assert list(tmp_path.iterdir()) == []
    results.save_per_class(cpu, None, "fastest", quick=False)
    results.save_per_class({"machine": {"device": "cuda"}}, None, "speed", quick=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fastest_cpu_avx2-isa-limited.json",
        "speed_cuda.json",
    ]
