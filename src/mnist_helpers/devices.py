"""Where a computation runs and how to make it repeatable: device choice, seeding, what the CPU can do.

Every chapter starts with ``seed_everything`` and ``pick_device``; the fast path asks whether the CPU has
bfloat16 instructions. Keeping these small questions in one module means each has one answer.
"""

from __future__ import annotations

import os
import platform
import random
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

# Without one of these instructions a CPU emulates bfloat16 arithmetic, which is slower than float32.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def seed_everything(seed: int) -> None:
    """Seed every random number generator a chapter touches, so a rerun on CPU reproduces every number.

    ``torch.manual_seed`` also seeds all CUDA devices. GPU kernels may still differ in the last bits
    between runs; the book's promise of identical numbers is for CPU.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """Return ``preferred`` if given (and usable), else the fastest available: CUDA, MPS, then CPU."""
    if preferred is not None:
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"{str(device)!r} requested but CUDA is not available; use 'cpu' or None"
            )
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(
                "'mps' requested but this machine has no Apple GPU; use 'cpu' or None"
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def model_device(model: nn.Module) -> torch.device:
    """The device a model's weights live on (CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@cache
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags to read
        return ""


def cpu_model_name() -> str:
    """The processor's marketing name, e.g. "AMD EPYC 7B13": timings mean little without it."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def isa_limited_to_avx2() -> bool:
    """Whether this process is limited to AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2`` for PyTorch's own
    kernels and ``ONEDNN_MAX_CPU_ISA=AVX2`` for oneDNN's): the way the book models an AVX2-only CPU."""
    return (
        os.environ.get("ATEN_CPU_CAPABILITY", "").lower() == "avx2"
        and os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2"
    )


def cpu_has_bf16_instructions() -> bool:
    """Whether this process can compute bfloat16 in hardware: the CPU has AVX512-BF16 or AMX-BF16
    (Linux flags) and no AVX2 limit forbids their kernels, as it does on the CPU it models."""
    flags = set(_cpuinfo().split())
    return any(flag in flags for flag in CPU_BF16_FLAGS) and not isa_limited_to_avx2()


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA GPU that supports it, or a CPU with bf16
    instructions. Only there does the fast path switch to bf16 autocast, because elsewhere it costs time.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16_instructions()


def cpu_class() -> str:
    """The instruction-set class that decides CPU training speed: "amx-bf16", "avx512", "avx2" or other.

    Two CPUs of one class train at similar speeds per core; across classes the same recipe differs several
    times over (bf16 is fast only with AMX or AVX512-BF16). A limit set for this process with
    ``ATEN_CPU_CAPABILITY=avx2`` and ``ONEDNN_MAX_CPU_ISA=AVX2`` models an AVX2-only CPU and is reported as
    "avx2 (ISA-limited)": the instruction set, not the clock or the caches of such a machine.
    """
    flags = set(_cpuinfo().split())
    if {"amx_tile", "amx_bf16"} <= flags:
        native = "amx-bf16"
    elif "avx512f" in flags:
        native = "avx512"
    elif "avx2" in flags:
        native = "avx2"
    else:
        return platform.machine() or "unknown"
    return (
        "avx2 (ISA-limited)" if isa_limited_to_avx2() and native != "avx2" else native
    )
