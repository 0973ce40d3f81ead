"""Timing a call the way the book reports speed: a median over repeats, after untimed warm-up calls.

One home for it, used by chapter 12 (PyTorch against onnxruntime) and the leaderboard's inference timings.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def median_seconds(
    run: Callable[[], object], repeats: int = 20, warmup: int = 3
) -> float:
    """Median wall-clock time of ``run()`` over ``repeats`` calls, after ``warmup`` untimed calls.

    The median rather than the mean: one call delayed by another process on a shared machine should not
    move the figure. The warm-up calls absorb one-off costs (memory allocation, kernel selection) that a
    reader's thousandth call does not pay.
    """
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
