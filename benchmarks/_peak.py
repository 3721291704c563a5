"""This machine's ceiling: the GFLOP/s of a jitted float32 ``jnp.dot``, measured in-run."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ._timing import compile_times, paired, summary


def matmul_peak(
    n: int = 2048, *, repeats: int = 7, min_time: float = 0.05
) -> dict[str, Any]:
    """GFLOP/s of ``jax.jit(jnp.dot)`` on two ``n x n`` float32 matrices.

    One dot is ``2 n^3`` FLOPs (``n^3`` multiply-adds). The call is compiled ahead,
    warmed up, and timed ``repeats`` times (each about ``min_time`` seconds), blocked on
    the output.

    Args:
      n: the matrix side (2048 by default, as the benchmark issue asks).
      repeats: timed rounds.
      min_time: seconds per round.

    Returns:
      ``{"n", "flops", "xla_flops", "gflops": {"median", "min", "max"}, "time_s",
      "compile_s"}``; ``gflops["median"]`` is the peak the cases are measured against.

    Example:
      >>> p = matmul_peak(64, repeats=1, min_time=0.0)
      >>> p["flops"], p["gflops"]["min"] <= p["gflops"]["median"] <= p["gflops"]["max"]
      (524288, True)
    """
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), jnp.float32)
    b = jax.random.normal(kb, (n, n), jnp.float32)
    compiled, t_trace, t_compile = compile_times(jnp.dot, a, b)
    flops = 2 * n**3
    times = paired({"dot": compiled}, (a, b), repeats=repeats, min_time=min_time)
    t = summary(times["dot"])
    from ._runner import xla_flops

    return {
        "n": n,
        "dtype": "float32",
        "flops": flops,
        "xla_flops": xla_flops(compiled),
        "time_s": t,
        "gflops": {
            "median": flops / t["median"] / 1e9,
            "min": flops / t["max"] / 1e9,
            "max": flops / t["min"] / 1e9,
        },
        "compile_s": t_trace + t_compile,
        "repeats": repeats,
    }
