"""The quickstart's benchmark: run ``book/00_quickstart.ipynb`` end to end over several seeds.

    python benchmarks/quickstart.py --seeds 5
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/quickstart.py --seeds 5

Each run executes the notebook itself (nbclient, working directory ``book/``, ``MNIST_BOOK_PROFILE=full``,
``QUICKSTART_SEED=<seed>``) in a fresh kernel and reads the test accuracy and training seconds that the
notebook glued into its outputs, so the figures are those of the code a reader runs. The results, with the
machine they came from, go to ``benchmarks/results/quickstart_<class>.json``, where ``<class>`` is
:func:`mnist_helpers.devices.cpu_class` made safe for a file name (``amx-bf16``, ``avx2-isa-limited``, ...).

The second command models an AVX2-only CPU on a newer one: PyTorch and oneDNN may then use AVX2 instructions
at most, and the class reads "avx2 (ISA-limited)". It models the instruction set only, not the clock or the
caches of such a machine. The kernel uses ``--threads`` threads (default 2, the quickstart's "two CPU cores")
through ``OMP_NUM_THREADS``. Run it on a quiet machine: the training seconds are part of the result.
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

from book_tools.notebooks import kernel_client
from book_tools.results import file_safe, machine_info, save_result
from mnist_helpers.devices import cpu_class
from mnist_helpers.glue import GLUE_PREFIX

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "00_quickstart.ipynb"
RESULTS = ROOT / "benchmarks" / "results"
SCHEMA = "quickstart-1"
KEYS = (
    "ch00_test_accuracy",
    "ch00_train_seconds",
    "ch00_images_per_second",
    "ch00_threads",
)


def glued_values(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """The numbers and names the executed notebook glued, by name.

    Only ``KEYS`` and the CPU class are read: their text/plain repr is a Python literal, while other glued
    values (the benchmark table, a DataFrame) are not.
    """
    values = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            text = output.get("data", {}).get(GLUE_PREFIX + "text/plain")
            if name in (*KEYS, "ch00_cpu_class") and text is not None:
                values[name] = ast.literal_eval(text)
    return values


def run_once(seed: int, threads: int, timeout: float) -> dict[str, Any]:
    """Execute the quickstart once with ``seed`` and return what it measured."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {
        **os.environ,
        "MNIST_BOOK_PROFILE": "full",
        "QUICKSTART_SEED": str(seed),
        "OMP_NUM_THREADS": str(threads),
        "MPLBACKEND": "Agg",
    }
    client = kernel_client(nb, NOTEBOOK.parent, timeout)
    start = time.perf_counter()
    client.execute(env=env)
    values = glued_values(nb)
    missing = [key for key in KEYS if key not in values]
    if missing:
        raise RuntimeError(
            f"the notebook glued no {', '.join(missing)}: is mnist_helpers installed?"
        )
    return {
        "seed": seed,
        "test_accuracy": values["ch00_test_accuracy"],
        "train_seconds": values["ch00_train_seconds"],
        "images_per_second": values["ch00_images_per_second"],
        "torch_threads": values["ch00_threads"],
        "cpu_class": values.get("ch00_cpu_class"),
        "notebook_seconds": round(time.perf_counter() - start, 1),
    }


def summary(runs: list[dict[str, Any]], key: str) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None with a single run) of ``key`` over ``runs``."""
    values = [run[key] for run in runs]
    return statistics.fmean(values), statistics.stdev(values) if len(
        values
    ) > 1 else None


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds", type=int, default=5, help="runs, with seeds 0..N-1 (default 5)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads in the kernel (default 2)"
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds per cell before giving up"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results file (default: benchmarks/results/quickstart_<class>.json)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    isa_class = cpu_class()
    runs = []
    for seed in range(args.seeds):
        run = run_once(seed, args.threads, args.timeout)
        runs.append(run)
        print(
            f"seed {seed}: test accuracy {run['test_accuracy']:.2f}%, "
            f"training {run['train_seconds']:.1f} s ({isa_class})",
            flush=True,
        )
    acc_mean, acc_sd = summary(runs, "test_accuracy")
    sec_mean, sec_sd = summary(runs, "train_seconds")
    machine = machine_info("cpu")
    machine["torch_threads"] = runs[0][
        "torch_threads"
    ]  # the kernel's, not this process's
    result = {
        "schema": SCHEMA,
        "notebook": "book/00_quickstart.ipynb",
        "cpu_class": isa_class,
        "isa_limit": {
            name: os.environ[name]
            for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
            if name in os.environ
        },
        "machine": machine,
        "runs": runs,
        "mean_test_accuracy": acc_mean,
        "sd_test_accuracy": acc_sd,
        "mean_train_seconds": sec_mean,
        "sd_train_seconds": sec_sd,
    }
    out = args.out or RESULTS / f"quickstart_{file_safe(isa_class)}.json"
    save_result(result, out)
    print(
        f"mean test accuracy {acc_mean:.2f}%, mean training {sec_mean:.1f} s over {len(runs)} run(s); "
        f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}"
    )
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
