"""How fast can MNIST honestly be learned here? Chapter 9's ladder of fixed recipes, means over seeds.

    python benchmarks/speed.py              # every rung -> benchmarks/results/speed_cpu_<class>.json (~20 min)
    python benchmarks/speed.py --quick      # a few hundred images per rung: checks the machinery (CI)
    python benchmarks/speed.py --whole-runs speedrun,bf16 --seeds 5 --out /tmp/speed.json
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/speed.py \
        --rungs tutorial_e,tensors,onecycle,speedrun_fp32 --whole-runs ''   # an AVX2-only CPU's ISA

All the work happens in :mod:`book_tools.ladder`; this file parses flags, prints, and writes the JSON that
chapter 9 reads. Run it on a quiet machine: other processes competing for the cores make every number
slower and noisier, and the rungs are only comparable because they run back to back in one process.
"""

from __future__ import annotations

import argparse

from book_tools.ladder import (
    DEFAULT_WHOLE_RUNS,
    RUNG_NAMES,
    TARGET,
    run_benchmark,
)
from book_tools.results import add_device_and_out, save_per_class
from mnist_helpers.results import speed_summary


def _rung_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in RUNG_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown rung(s) {', '.join(unknown)}; choose from {', '.join(RUNG_NAMES)}"
        )
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny subset, one epoch per whole run (CI smoke test)",
    )
    parser.add_argument(
        "--rungs",
        type=_rung_list,
        default=list(RUNG_NAMES),
        help=f"rungs whose throughput to measure (default all: {','.join(RUNG_NAMES)})",
    )
    parser.add_argument(
        "--whole-runs",
        type=_rung_list,
        default=list(DEFAULT_WHOLE_RUNS),
        help=f"rungs to also train in full, once per seed (default {','.join(DEFAULT_WHOLE_RUNS)})",
    )
    parser.add_argument(
        "--seeds", type=int, default=5, help="seeds per measurement (default 5)"
    )
    add_device_and_out(
        parser,
        "JSON file to write (default: benchmarks/results/speed_cpu_<class>.json, e.g. "
        "speed_cpu_amx-bf16.json, or speed_<device>.json on a GPU; --quick writes none)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error("--seeds must be at least 2: a mean needs a spread beside it")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run_benchmark(
        quick=args.quick,
        rungs=args.rungs,
        whole_runs=args.whole_runs,
        seeds=args.seeds,
        device=args.device,
        log=lambda line: print(line, flush=True),
    )
    machine = result["machine"]
    print(
        f"\n{machine['device_name']} ({machine['device']}), {machine['usable_cpu_cores']} usable CPU cores, "
        f"{machine['torch_threads']} torch threads, native bf16: {machine['native_bf16']}, torch {machine['torch']}"
    )
    for row in speed_summary(result):
        line = f"{row['rung']:14s}"
        if "images_per_s" in row:
            line += (
                f" {row['images_per_s']:7,.0f} img/s  {row['seconds_per_epoch']:6.1f} s/epoch  "
                f"{row['speedup_per_epoch']:5.2f}x per epoch  {100 * row['share_of_matmul_peak']:4.1f}% of matmul peak"
            )
        if "train_seconds" in row:
            reached = "reaches" if row["test_accuracy"] >= TARGET else "misses"
            line += (
                f"  | {row['seeds']} runs: {row['train_seconds']:.1f} s, test {100 * row['test_accuracy']:.2f} "
                f"± {100 * row['test_accuracy_sd']:.2f}% ({reached} {100 * TARGET:.1f}%)"
            )
        print(line)
    save_per_class(result, args.out, "speed", args.quick)


if __name__ == "__main__":
    main()
