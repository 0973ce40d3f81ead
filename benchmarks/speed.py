"""How long does SimpleCNN take to reach 99.4% validation accuracy: tutorial E's loop as written vs the fast path?

    python benchmarks/speed.py                 # full ladder on this machine -> book/speed/<cpu|gpu>.json
    python benchmarks/speed.py --quick         # < 1 minute on 2 CPU cores: tiny subset, one epoch per rung
    python benchmarks/speed.py --stages tutorial_e,onecycle --target 0.995 --out /tmp/speed.json

All the work happens in :mod:`book_tools.ladder` (so a notebook or Colab can run the same thing);
this file only parses flags, prints, and writes the JSON that chapter 08 reads. Run it on a quiet machine:
other processes competing for the cores make every number slower and noisier.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from book_tools.ladder import (
    DEFAULT_TARGET,
    STAGE_NAMES,
    result_filename,
    run_benchmark,
    save_result,
    text_table,
)

BOOK_SPEED_DIR = Path(__file__).resolve().parents[1] / "book" / "speed"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny subset, one epoch per rung (CI smoke test)")
    parser.add_argument("--target", type=float, default=DEFAULT_TARGET,
                        help=f"validation accuracy to reach, as a fraction (default {DEFAULT_TARGET})")
    parser.add_argument("--tutorial_e-epochs", type=int, default=15,
                        help="epochs for the tutorial-e-style rungs (default 15, the seed's NUM_EPOCHS)")
    parser.add_argument("--fast-epochs", type=int, default=8,
                        help="epochs (the OneCycle length) for the OneCycle rungs (default 8)")
    parser.add_argument("--stages", default=",".join(STAGE_NAMES),
                        help=f"comma-separated rungs to run (default all: {','.join(STAGE_NAMES)})")
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast path's model")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file to write (default: book/speed/<cpu|gpu>.json; --quick writes none)")
    args = parser.parse_args(argv)
    if not 0 < args.target <= 1:
        parser.error(f"--target is a fraction in (0, 1], e.g. 0.994 for 99.4%; got {args.target}")
    if args.tutorial_e_epochs < 1 or args.fast_epochs < 1:
        parser.error("--tutorial_e-epochs and --fast-epochs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    result = run_benchmark(
        quick=args.quick,
        target=args.target,
        tutorial_e_epochs=args.tutorial_e_epochs,
        fast_epochs=args.fast_epochs,
        stages=stages,
        compile=args.compile,
        device=args.device,
        log=print,
    )
    machine = result["machine"]
    print(
        f"\n{machine['device_name']} ({machine['device']}), {machine['usable_cpu_cores']} usable CPU cores, "
        f"{machine['torch_threads']} torch threads, torch {machine['torch']}"
    )
    print(text_table(result))
    probe = result["precision_probe_seconds_per_step"]
    steps = ", ".join(f"{name} {seconds:.3f}" for name, seconds in probe.items())
    print(f"seconds per training step at batch {result['precision_probe_batch_size']}: {steps}")
    if result["ratio_to_target"] is not None:
        print(f"tutorial E as written / fast path, time to target: {result['ratio_to_target']:.2f}x")
    if result["ratio_per_epoch"] is not None:
        print(f"tutorial E as written / fast path, seconds per epoch: {result['ratio_per_epoch']:.2f}x")
    out = args.out
    if out is None and not args.quick:
        out = BOOK_SPEED_DIR / result_filename(machine["device"])
    if out is not None:
        save_result(result, out)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
