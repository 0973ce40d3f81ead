"""benchmarks/quickstart.py: it reads the numbers the quickstart glued, and its results files say where
they came from (the quickstart's own table is built from them)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

from mnist_helpers.glue import GLUE_PREFIX

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quickstart():
    spec = importlib.util.spec_from_file_location(
        "quickstart_benchmark", ROOT / "benchmarks" / "quickstart.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _glue_output(name: str, text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output(
        "display_data",
        data={GLUE_PREFIX + "text/plain": text},
        metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}},
    )


def test_glued_values_reads_the_numbers_and_skips_the_table(quickstart):
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        _glue_output("ch00_test_accuracy", "99.06"),
        _glue_output("ch00_train_seconds", "7.4"),
        _glue_output("ch00_images_per_second", "8139.6"),
        _glue_output("ch00_threads", "2"),
        _glue_output("ch00_cpu_class", "'avx512'"),
        # A DataFrame's repr is not a Python literal: reading it would raise.
        _glue_output(
            "ch00_bench_table", "Processor  Runs Mean training time\navx512 ..."
        ),
    ]
    values = quickstart.glued_values(nbformat.v4.new_notebook(cells=[cell]))
    assert values == {
        "ch00_test_accuracy": 99.06,
        "ch00_train_seconds": 7.4,
        "ch00_images_per_second": 8139.6,
        "ch00_threads": 2,
        "ch00_cpu_class": "avx512",
    }


def test_file_safe_names_a_class_for_a_file(quickstart):
    assert quickstart.file_safe("avx2 (ISA-limited)") == "avx2-isa-limited"
    assert quickstart.file_safe("amx-bf16") == "amx-bf16"


@pytest.mark.parametrize(
    "path", sorted((ROOT / "benchmarks" / "results").glob("quickstart_*.json")), ids=str
)
def test_each_results_file_holds_its_class_over_seeds(quickstart, path):
    result = json.loads(path.read_text(encoding="utf-8"))
    assert path.name == f"quickstart_{quickstart.file_safe(result['cpu_class'])}.json"
    assert result["machine"]["cpu_class"] == result["cpu_class"]
    assert len({run["seed"] for run in result["runs"]}) >= 5, (
        "a speed claim is a mean over >= 5 seeds"
    )
    assert all(run["cpu_class"] == result["cpu_class"] for run in result["runs"])
