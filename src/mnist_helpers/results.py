"""Benchmark results as the chapters read them: one JSON file per benchmark and CPU class, checked on load.

The benchmarks (``benchmarks/speed.py``, ``fastest.py``, ``leaderboard.py``, run by :mod:`book_tools`) write
these files; chapters 9 and 11 only read and summarise them, so what they need lives here, in the reader
library. Every file records the machine it was measured on, because a training time means nothing without
the CPU or GPU behind it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SPEED_SCHEMA = (
    "speed-3"  # 3: whole runs name their rung ("rung") and RECIPES key ("recipe")
)
FASTEST_SCHEMA = "fastest-1"
LEADERBOARD_SCHEMA = "leaderboard-1"


def load_result(path: str | Path, *, schema: str) -> dict[str, Any]:
    """Read a benchmark result; a missing file or another schema is an error, not a guess."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no benchmark result at {path}; the script in benchmarks/ that writes "
            f"{schema.split('-')[0]} results creates it (see its --help)"
        )
    result = json.loads(path.read_text())
    if result.get("schema") != schema:
        raise ValueError(
            f"{path} has schema {result.get('schema')!r}, this code reads {schema!r}; "
            "re-run the benchmark to regenerate it"
        )
    return result


def mean_and_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value): every figure is a mean over seeds."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def speed_summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per measured rung of the speed ladder: throughput mean and spread, seconds per epoch,
    speed-up over the first rung, share of the matmul peak, and (where whole runs exist) time and test
    accuracy over seeds."""
    n_train = result["settings"]["train_images"]
    rows, base_rate = [], None
    for rung in result["rungs"]:
        if rung["skipped"]:
            continue
        rates = [
            t["images_per_s"] for t in result["timings"] if t["rung"] == rung["name"]
        ]
        runs = [r for r in result["runs"] if r["rung"] == rung["name"]]
        row: dict[str, Any] = {
            "rung": rung["name"],
            "label": rung["label"],
            "epochs": rung["epochs"],
        }
        if rates:
            rate, rate_sd = mean_and_sd(rates)
            base_rate = base_rate or rate
            peak = result["matmul_flops_per_second"]["bf16" if rung["bf16"] else "fp32"]
            row.update(
                images_per_s=rate,
                images_per_s_sd=rate_sd,
                seconds_per_epoch=n_train / rate,
                speedup_per_epoch=rate / base_rate,
                share_of_matmul_peak=rung["flops_per_image"] * rate / peak,
            )
        if runs:
            accuracy, accuracy_sd = mean_and_sd([r["test_accuracy"] for r in runs])
            row.update(
                seeds=len(runs),
                train_seconds=statistics.mean(r["train_seconds"] for r in runs),
                test_accuracy=accuracy,
                test_accuracy_sd=accuracy_sd,
            )
        rows.append(row)
    return rows


def fastest_summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per recipe measured by ``benchmarks/fastest.py``: training seconds and test accuracy (mean and
    spread over seeds), validation accuracy, epochs, the share of the fp32 matmul peak a training step
    reached, and, for a target recipe, its target and whether the mean reaches it."""
    targets = result["settings"]["targets"]
    peak = result["matmul_flops_per_second"]["fp32"]
    n_train = result["settings"]["train_images"]
    rows = []
    for key, recipe in result["recipes"].items():
        runs = [run for run in result["runs"] if run["key"] == key]
        seconds, seconds_sd = mean_and_sd([run["train_seconds"] for run in runs])
        accuracy, accuracy_sd = mean_and_sd([run["test_accuracy"] for run in runs])
        epochs = len(runs[0]["epoch_seconds"])
        row: dict[str, Any] = {
            "key": key,
            "epochs": epochs,
            "seeds": len(runs),
            "train_seconds": seconds,
            "train_seconds_sd": seconds_sd,
            "test_accuracy": accuracy,
            "test_accuracy_sd": accuracy_sd,
            "val_accuracy": statistics.mean(run["val_accuracy"] for run in runs),
            "flops_per_image": recipe["flops_per_image"],
            "share_of_matmul_peak": recipe["flops_per_image"]
            * n_train
            * epochs
            / seconds
            / peak,
        }
        if key in targets:
            row.update(target=targets[key], reaches=accuracy >= targets[key])
        rows.append(row)
    return rows


def run_quick_benchmark(script: str | Path, *flags: str, schema: str) -> dict[str, Any]:
    """Run a benchmark script from ``benchmarks/`` in its ``--quick`` mode and read back what it wrote.

    The chapters do this in the smoke profile only: a few hundred images prove that the benchmark's code
    runs, and its numbers mean nothing. It runs as a separate program, exactly as a reader would run it,
    so the chapters never import the benchmarks' machinery (:mod:`book_tools`).
    """
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, str(script), "--quick", "--out", str(out), *flags]
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode != 0:
            last_line = (finished.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise RuntimeError(f"{Path(script).name} failed: {last_line}")
        return load_result(out, schema=schema)
