"""The reader's side of the benchmark results: files checked on load, quick runs as separate programs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mnist_helpers.results import load_result, mean_and_sd, run_quick_benchmark


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "bench.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_quick_benchmark_passes_quick_and_out_and_reads_back_the_file(tmp_path) -> None:
    script = _script(
        tmp_path,
        """
        import json, sys
        args = sys.argv[1:]
        out = args[args.index("--out") + 1]
        json.dump({"schema": "toy-1", "args": args}, open(out, "w"))
        """,
    )
    result = run_quick_benchmark(script, "--seeds", "2", schema="toy-1")
    assert result["args"][0] == "--quick" and result["args"][-2:] == ["--seeds", "2"]


def test_failing_benchmark_is_one_line_naming_the_script_and_its_last_error(
    tmp_path,
) -> None:
    script = _script(tmp_path, "raise SystemExit('bench.py: error: no MNIST here')\n")
    with pytest.raises(
        RuntimeError, match=r"^bench\.py failed: bench\.py: error: no MNIST here$"
    ):
        run_quick_benchmark(script, schema="toy-1")


def test_result_of_another_schema_is_refused_not_guessed(tmp_path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema": "speed-2"}))
    with pytest.raises(ValueError, match="schema 'speed-2'.*re-run the benchmark"):
        load_result(path, schema="speed-3")
    with pytest.raises(FileNotFoundError, match="writes speed results"):
        load_result(tmp_path / "absent.json", schema="speed-3")


def test_mean_and_sd_of_one_value_has_no_spread() -> None:
    assert mean_and_sd([0.5]) == (0.5, 0.0)
    mean, sd = mean_and_sd([1.0, 3.0])
    assert mean == 2.0 and sd == pytest.approx(2**0.5)
