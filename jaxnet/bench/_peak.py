"""This machine's ceiling: the best sustained GFLOP/s of a jitted float32 ``jnp.dot``,
measured in-run over several sizes.

Every "% of peak" rests on this one number, so it is measured robustly. One size
(2048, as before) put the peak at 54 to 181 GFLOP/s across full runs on one shared
2-core machine, and the cases' smaller matmuls, which stay in cache, then ran at 125-139%
of it. Now: several sizes (the small ones are the cache-resident regime the cases run
in), several rounds each (a round lasts at least ``min_time``, so its rate is sustained,
not one lucky call), and the peak is the best round of all. The spread (the slowest
round, each size's median) is kept beside it. A case measured above this peak is a
measurement error (the machine was slowed while the peak ran), flagged as such by
:func:`fraction_status`, never reported as a fraction.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ._runner import xla_flops
from ._timing import compile_times, paired, summary

#: The matrix sides measured, small (cache-resident) to large.
SIZES = (512, 1024, 2048)


def _one_size(n: int, repeats: int, min_time: float) -> dict[str, Any]:
    """Rates of ``repeats`` rounds of a jitted ``n x n`` float32 dot."""
    ka, kb = jax.random.split(jax.random.key(n))
    a = jax.random.normal(ka, (n, n), jnp.float32)
    b = jax.random.normal(kb, (n, n), jnp.float32)
    compiled, t_trace, t_compile = compile_times(jnp.dot, a, b)
    flops = 2 * n**3
    times = paired({"dot": compiled}, (a, b), repeats=repeats, min_time=min_time)
    return {
        "n": n,
        "flops": flops,
        "xla_flops": xla_flops(compiled),
        "time_s": summary(times["dot"]),
        "gflops_rounds": [flops / t / 1e9 for t in times["dot"]],
        "compile_s": t_trace + t_compile,
    }


def matmul_peak(
    sizes: tuple[int, ...] = SIZES, *, repeats: int = 7, min_time: float = 0.05
) -> dict[str, Any]:
    """The best sustained GFLOP/s of ``jax.jit(jnp.dot)`` over ``sizes``.

    One ``n x n`` dot is ``2 n^3`` FLOPs. Each size is compiled ahead, warmed up and
    timed ``repeats`` rounds of at least ``min_time`` seconds each, blocked on the
    output.

    Args:
      sizes: the matrix sides.
      repeats: timed rounds per size.
      min_time: seconds per round.

    Returns:
      ``{"dtype", "sizes", "per_size", "n", "gflops": {"peak", "median", "min",
      "max"}, "compile_s", "repeats"}``: ``gflops["peak"]`` (= ``"max"``) is the best
      round of any size, the number the cases are measured against; ``"median"`` is
      the median round of the size that gave it, ``"min"`` the slowest round of all
      (the spread); ``n`` is the best size; ``per_size`` has each size's rounds.

    Example:
      >>> p = matmul_peak((32, 64), repeats=2, min_time=0.0)
      >>> [s["flops"] for s in p["per_size"]], p["n"] in (32, 64)
      ([65536, 524288], True)
      >>> g = p["gflops"]
      >>> g["min"] <= g["median"] <= g["max"] == g["peak"]
      True
    """
    per = [_one_size(n, repeats, min_time) for n in sizes]
    best = max(per, key=lambda s: max(s["gflops_rounds"]))
    rounds = [r for s in per for r in s["gflops_rounds"]]
    top = max(best["gflops_rounds"])
    return {
        "dtype": "float32",
        "sizes": list(sizes),
        "per_size": per,
        "n": best["n"],
        "flops": best["flops"],
        "gflops": {
            "peak": top,
            "median": summary(best["gflops_rounds"])["median"],
            "min": min(rounds),
            "max": top,
        },
        "compile_s": sum(s["compile_s"] for s in per),
        "repeats": repeats,
    }


def fraction_status(fraction: float | None) -> str:
    """``"ok"``, or ``"measurement error"`` for a fraction above 1: a step cannot run
    faster than the best matmul rate measured on the same machine in the same run;
    when it seems to, the peak was measured while the machine was slowed."""
    if fraction is not None and fraction > 1.0:
        return "measurement error"
    return "ok"


def fmt_fraction(fraction: float | None) -> str:
    """A fraction of peak for a table: ``"87.5"``, ``""`` when absent, and never a
    number above 100: ``"error (139% > peak)"``."""
    if fraction is None:
        return ""
    if fraction_status(fraction) != "ok":
        return f"error ({fraction * 100:.0f}% > peak)"
    return f"{fraction * 100:.1f}"


def peak_line(peak: dict[str, Any]) -> str:
    """The peak and its spread in one line, as printed and written to results.md."""
    g = peak["gflops"]
    per = ", ".join(
        f"{s['n']}: {summary(s['gflops_rounds'])['median']:.1f}"
        for s in peak["per_size"]
    )
    return (
        f"matmul peak (jitted jnp.dot, float32, best round of {peak['repeats']} per "
        f"size): {g['peak']:.1f} GFLOP/s at n = {peak['n']}; slowest round "
        f"{g['min']:.1f}; median per size {per}"
    )
