"""Benchmark results as JSON files: what machine they came from, written atomically, read back checked.

``benchmarks/speed.py``, ``fastest.py`` (chapter 9) and ``leaderboard.py`` (chapter 11) write their results with
:func:`save_result`; the chapters read them with :func:`mnist_helpers.results.load_result`. Every file records the machine, because
a training time means nothing without the CPU or GPU it was measured on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

import torch

from mnist_helpers.devices import cpu_class, cpu_model_name, native_bf16

REPO_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def machine_info(device: torch.device | str) -> dict[str, Any]:
    """What the numbers were measured on: device name, core and thread counts, bf16 support, versions."""
    import torchvision

    device = torch.device(device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else cpu_model_name()
    )
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "device": device.type,
        "device_name": name,
        "cpu_count": os.cpu_count(),
        "usable_cpu_cores": len(affinity(0)) if affinity else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_class": cpu_class()
        if device.type == "cpu"
        else None,  # amx-bf16, avx512, avx2...
        "native_bf16": native_bf16(device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def file_safe(name: str) -> str:
    """``"avx2 (ISA-limited)"`` -> ``"avx2-isa-limited"``: a CPU class as part of a results file's name.

    Results are kept one file per CPU class, because a training time holds only for its class.
    """
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def save_result(result: dict[str, Any], path: str | Path) -> Path:
    """Write ``result`` as indented JSON, atomically: a crash mid-write never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def add_device_and_out(parser: argparse.ArgumentParser, out_help: str) -> None:
    """The ``--device`` and ``--out`` flags, the same in every benchmark script."""
    parser.add_argument(
        "--device", default=None, help="cuda, mps or cpu (default: the best available)"
    )
    parser.add_argument("--out", type=Path, default=None, help=out_help)


def save_per_class(
    result: dict[str, Any], out: Path | None, benchmark: str, quick: bool
) -> None:
    """Write ``result`` to ``out``, or by default (never for a ``quick`` run) to
    ``benchmarks/results/<benchmark>_cpu_<class>.json`` on a CPU, one file per CPU class because a time
    holds only for its class, and ``<benchmark>_<device>.json`` on a GPU."""
    machine = result["machine"]
    if out is None and not quick:
        name = (
            f"{benchmark}_cpu_{file_safe(machine['cpu_class'])}.json"
            if machine["device"] == "cpu"
            else f"{benchmark}_{machine['device']}.json"
        )
        out = REPO_RESULTS / name
    if out is not None:
        save_result(result, out)
        print(f"wrote {out}")
