"""Timing helpers: trace, compile and steady state separately; paired, interleaved runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


def compile_times(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """Lower (trace) and compile ``jax.jit(fn)``; return (compiled, trace_s, compile_s)."""
    t0 = time.perf_counter()
    lowered = jax.jit(fn).trace(*args).lower()
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    return compiled, t1 - t0, t2 - t1


def _once(fn: Callable[..., Any], args: tuple[Any, ...], inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / inner


def paired(
    fns: dict[str, Callable[..., Any]],
    args: tuple[Any, ...],
    *,
    repeats: int = 15,
    min_time: float = 0.05,
) -> dict[str, list[float]]:
    """Time several implementations interleaved (A B C A B C ...), seconds per call.

    Each is warmed up, then each repeat runs every implementation for about
    ``min_time`` seconds (same inner count for all), in a rotating order.
    """
    names = list(fns)
    for f in fns.values():  # warm-up
        jax.block_until_ready(f(*args))
    probe = max(_once(f, args, 1) for f in fns.values())
    inner = max(1, int(min_time / max(probe, 1e-7)))
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            times[n].append(_once(fns[n], args, inner))
    return times


def summary(xs: list[float]) -> dict[str, float]:
    """Median, min and max."""
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def ratios(a: list[float], b: list[float]) -> dict[str, float]:
    """Pair-by-pair ratios a_i / b_i, summarised."""
    return summary([x / y for x, y in zip(a, b, strict=True)])
