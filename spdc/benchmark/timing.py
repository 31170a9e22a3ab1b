"""Timing that can be compared: statistics of a list of call times, the interleaved order of models per round,
and the warm-up-then-measure loop (with an injectable clock, so it is tested without sleeping)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

PERCENTILES = (90, 95, 99)


def latency_stats(seconds: list[float]) -> dict[str, float]:
    """Milliseconds: mean, median, std (sample), min, max and the tail percentiles (linear interpolation)."""
    if not seconds:
        raise ValueError("no timings")
    values = np.asarray(seconds, dtype=np.float64) * 1000.0
    stats = {
        "mean": float(values.mean()), "median": float(np.median(values)),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min": float(values.min()), "max": float(values.max()),
    }
    stats.update({f"p{q}": float(np.percentile(values, q)) for q in PERCENTILES})
    return stats


def interleaved_order(models: int, rounds: int) -> list[list[int]]:
    """Model order per round: round r starts at model r mod n, so no model always runs first or last."""
    return [[(start + offset) % models for offset in range(models)] for start in range(rounds)]


def time_calls(call: Callable[[], None], *, warmup_s: float, time_s: float, min_calls: int = 3,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Warm up for `warmup_s` (at least one call), then time single calls until `time_s` has passed."""
    start = clock()
    call()
    while clock() - start < warmup_s:
        call()
    timings: list[float] = []
    start = clock()
    while clock() - start < time_s or len(timings) < min_calls:
        before = clock()
        call()
        timings.append(clock() - before)
    return timings
