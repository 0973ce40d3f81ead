"""How fast can a CPU without bf16 reach 99.0%, 99.4% and 99.5%? Chapter 9's fastest fp32 recipes, over seeds.

    python benchmarks/fastest.py            # -> benchmarks/results/fastest_cpu_<class>.json (~6 min on 2 cores)
    python benchmarks/fastest.py --quick    # a thousand images, one epoch: checks the machinery (CI)
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/fastest.py   # an AVX2-only CPU's ISA

All the work happens in :mod:`book_tools.fastest`; this file parses flags, prints, and writes the JSON that
chapter 9 reads. Run it on a quiet machine: the training seconds are the result.
"""

from __future__ import annotations

import argparse

from book_tools.fastest import run_fastest
from book_tools.results import add_device_and_out, save_per_class
from mnist_helpers.results import fastest_summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny subset, one epoch (CI smoke test)"
    )
    parser.add_argument(
        "--seeds", type=int, default=5, help="seeds per recipe (default 5)"
    )
    parser.add_argument(
        "--no-ideas",
        dest="ideas",
        action="store_false",
        help="measure only the target recipes, not each idea undone",
    )
    add_device_and_out(
        parser,
        "JSON file to write (default: benchmarks/results/fastest_cpu_<class>.json, or "
        "fastest_<device>.json on a GPU; --quick writes none)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error("--seeds must be at least 2: a mean needs a spread beside it")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run_fastest(
        quick=args.quick,
        seeds=args.seeds,
        ideas=args.ideas,
        device=args.device,
        log=lambda line: print(line, flush=True),
    )
    machine = result["machine"]
    print(
        f"\n{machine['device_name']} ({machine['device']}, class {machine['cpu_class']}), "
        f"{machine['usable_cpu_cores']} usable CPU cores, {machine['torch_threads']} torch threads"
    )
    for row in fastest_summary(result):
        verdict = ""
        if "target" in row:
            verdict = f"  {'reaches' if row['reaches'] else 'misses'} {100 * row['target']:.1f}%"
        print(
            f"{row['key']:24s} {row['epochs']} epochs, {row['seeds']} seeds: "
            f"{row['train_seconds']:6.1f} ± {row['train_seconds_sd']:.1f} s, test "
            f"{100 * row['test_accuracy']:.2f} ± {100 * row['test_accuracy_sd']:.2f}%, "
            f"{100 * row['share_of_matmul_peak']:.1f}% of the fp32 matmul peak{verdict}"
        )
    save_per_class(result, args.out, "fastest", args.quick)


if __name__ == "__main__":
    main()
