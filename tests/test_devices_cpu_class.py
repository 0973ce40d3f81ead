"""cpu_class names the instruction-set class that timings depend on, and says when a limit models it."""

from __future__ import annotations

import pytest

import mnist_helpers.devices as devices


def _pretend_machine(
    monkeypatch: pytest.MonkeyPatch, flags: str, env: dict[str, str]
) -> None:
    """This process as if on a CPU with ``flags`` and with exactly the ISA limits in ``env``."""
    monkeypatch.setattr(devices, "_cpuinfo", lambda: f"flags\t\t: {flags}\n")
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ("fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16", {}, "amx-bf16"),
        ("fpu avx2 avx512f", {}, "avx512"),
        ("fpu avx2 fma", {}, "avx2"),
        (
            "fpu avx2 avx512f amx_tile amx_bf16",
            {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
            "avx2 (ISA-limited)",
        ),
        (
            "fpu avx2 avx512f amx_tile amx_bf16",
            {"ATEN_CPU_CAPABILITY": "avx2"},
            "amx-bf16",
        ),  # oneDNN not limited
    ],
)
def test_cpu_class(
    monkeypatch: pytest.MonkeyPatch, flags: str, env: dict[str, str], expected: str
) -> None:
    _pretend_machine(monkeypatch, flags, env)
    assert devices.cpu_class() == expected


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ("fpu avx2 avx512f avx512_bf16", {}, True),
        ("fpu avx2 avx512f amx_tile amx_bf16", {}, True),
        ("fpu avx2 avx512f", {}, False),
        # An AVX2 limit models a CPU without bf16 instructions: the fast path must not pick bf16 there.
        (
            "fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16",
            {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
            False,
        ),
    ],
)
def test_native_bf16_respects_an_isa_limit(
    monkeypatch: pytest.MonkeyPatch, flags: str, env: dict[str, str], expected: bool
) -> None:
    _pretend_machine(monkeypatch, flags, env)
    assert devices.native_bf16("cpu") is expected
