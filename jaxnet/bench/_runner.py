"""Run one :class:`~jaxnet.bench._case.Case`: agree first, then compile, time and count.

The method, for every case:

1. **Agreement.** Every ``grads`` entry is compared with ``grads["autodiff"]``: the
   max relative difference ``max|a - b| / max|b|`` per leaf, the max over leaves. An
   extra step without a gradient function is compared through its SGD update
   ``params - new_params`` against autodiff's. A difference above 10 x the float32
   "analytic" rtol of :func:`jaxnet.testing.tolerance` refuses the case
   (:class:`RefusedToTime`): nothing is timed.
2. **Trace and compile** the forward and every step apart (``jit(...).trace`` then
   ``.lower().compile()``), each timed.
3. **Steady state**: the compiled functions are warmed up, then timed interleaved
   (A B C A B C ..., rotating order), each call blocked on its whole output
   (:func:`jaxnet.bench._timing.paired`). Median and min-max; ratios pair by pair.
4. **Counts**: achieved GFLOP/s from the case's hand-counted FLOPs, as a fraction of
   this machine's matmul peak; XLA's ``cost_analysis()`` FLOPs of each compiled
   function beside it; XLA's ``memory_analysis()`` of each compiled step.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import jax
import numpy as np

from .._types import same_treedef
from ._case import MATMULS, Case
from ._timing import compile_times, paired, ratios, summary

#: The agreement bound: this many times the float32 "analytic" rtol.
AGREEMENT_FACTOR = 10.0


class RefusedToTime(ValueError):
    """An implementation's gradient disagrees with autodiff's: the case is not timed."""


def _ratio(measured: float | None, declared: float | None) -> float | None:
    """XLA's FLOP count over the case's declared count; ``None`` if either is unknown
    (or zero)."""
    return measured / declared if measured and declared else None


def jax_option(name: str) -> Any:
    """The value of jax's configuration option ``name`` (``jax.config.<name>``, which
    jax's type stubs do not declare)."""
    return getattr(jax.config, name)


def _cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _threads() -> int | None:
    """CPU threads this process may run on (affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count()


def environment() -> dict[str, Any]:
    """Backend, device, versions, CPU model and thread count for every result row.

    Example:
      >>> env = environment()
      >>> sorted(k for k in env if k in ("backend", "jax", "jaxnet", "cpu_threads"))
      ['backend', 'cpu_threads', 'jax', 'jaxnet']
    """
    import jaxlib

    import jaxnet

    return {
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "jaxnet": jaxnet.__version__,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_threads": _threads(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "x64": bool(jax_option("jax_enable_x64")),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def max_rel_diff(a: Any, b: Any) -> float:
    """``max over leaves of max|a - b| / max|b|`` (``b`` the reference), in float64.

    A leaf whose reference is all zeros is compared absolutely. Empty leaves count 0.

    Raises:
      RefusedToTime: when the two trees do not have the same structure or shapes.

    Example:
      >>> import numpy as np
      >>> max_rel_diff({"w": np.array([1.0, 2.0])}, {"w": np.array([1.0, 4.0])})
      0.5
    """
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    if not same_treedef(ta, tb):
        raise RefusedToTime(
            f"max_rel_diff: gradient trees differ: expected {tb}, got {ta}. Map the "
            "implementation's gradient into jaxnet's parameter layout."
        )
    worst = 0.0
    for x, r in zip(la, lb, strict=True):
        x, r = np.asarray(x, np.float64), np.asarray(r, np.float64)
        if x.shape != r.shape:
            raise RefusedToTime(
                f"max_rel_diff: a gradient leaf has shape {x.shape}, the autodiff "
                f"reference {r.shape}."
            )
        if r.size == 0:
            continue
        scale = float(np.max(np.abs(r)))
        err = float(np.max(np.abs(x - r)))
        worst = max(worst, err / scale if scale > 0 else err)
    return worst


def allclose_ratio(a: Any, b: Any, dtype: str = "float32") -> float:
    """``max |a - b| / (F (atol + rtol |b|))`` elementwise over every leaf; <= 1 agrees.

    ``F`` is ``AGREEMENT_FACTOR`` and ``(rtol, atol)`` the "analytic" tolerance of
    ``dtype``, the checker's own criterion. Unlike :func:`max_rel_diff` it does not
    blow up on a leaf whose exact gradient is zero and whose float32 values are pure
    rounding noise (the key bias of attention: softmax ignores a constant per row).

    Example:
      >>> import numpy as np
      >>> allclose_ratio({"k": np.array([1e-9])}, {"k": np.array([-1e-9])}) < 1e-3
      True
    """
    import jaxnet

    tol = jaxnet.testing.tolerance(dtype, "analytic")
    worst = 0.0
    for x, r in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, r = np.asarray(x, np.float64), np.asarray(r, np.float64)
        if r.size == 0:
            continue
        bound = AGREEMENT_FACTOR * (tol.atol + tol.rtol * np.abs(r))
        worst = max(worst, float(np.max(np.abs(x - r) / bound)))
    return worst


def agreement_tolerance(dtype: str = "float32") -> float:
    """The refusal bound: ``AGREEMENT_FACTOR x`` the "analytic" rtol of ``dtype``."""
    import jaxnet

    return AGREEMENT_FACTOR * jaxnet.testing.tolerance(dtype, "analytic").rtol


def check_agreement(
    case: Case, *, ratios_out: dict[str, float] | None = None
) -> dict[str, float]:
    """Max relative gradient difference of every implementation against autodiff.

    Every ``grads`` function is jitted and run once; a step without one is compared
    through its parameter update ``params - new_params`` (``args[0]`` the params).

    Returns:
      ``{name: max relative difference}`` for every step (autodiff is 0); the
      pass/fail measure, :func:`allclose_ratio` per step, goes into ``ratios_out``
      when given.

    Raises:
      RefusedToTime: naming the case, the implementation, its difference and the bound.
    """
    if "autodiff" not in case.grads:
        raise RefusedToTime(
            f"run_case({case.name}): no grads['autodiff'] reference; every case needs "
            "one (jax.grad of the jaxnet model)."
        )
    ref = jax.device_get(jax.jit(case.grads["autodiff"])(*case.args))
    diffs: dict[str, float] = {}
    ratios_: dict[str, float] = {}
    for name in case.steps:
        if name in case.grads:
            got = jax.device_get(jax.jit(case.grads[name])(*case.args))
            diffs[name] = 0.0 if name == "autodiff" else max_rel_diff(got, ref)
            ratios_[name] = (
                0.0 if name == "autodiff" else allclose_ratio(got, ref, case.dtype)
            )
    missing = [n for n in case.steps if n not in case.grads]
    if missing:
        params = case.args[0]

        def update(step: Any) -> Any:
            new, _ = jax.jit(step)(*case.args)
            return jax.device_get(jax.tree.map(lambda p, q: p - q, params, new))

        ref_update = update(case.steps["autodiff"])
        for name in missing:
            got_update = update(case.steps[name])
            diffs[name] = max_rel_diff(got_update, ref_update)
            ratios_[name] = allclose_ratio(got_update, ref_update, case.dtype)
    if ratios_out is not None:
        ratios_out.update(ratios_)
    bad = {n: r for n, r in ratios_.items() if not r <= 1.0}
    if bad:
        detail = ", ".join(
            f"{n}: max rel {diffs[n]:.2e}, {r:.2g}x the bound" for n, r in bad.items()
        )
        raise RefusedToTime(
            f"run_case({case.name}): gradients disagree with autodiff ({detail}; bound "
            f"|a - b| <= {AGREEMENT_FACTOR:g} (atol + rtol |b|), the {case.dtype} analytic "
            "tolerance); refusing to time. Fix the implementation (or its mapping "
            "into jaxnet's tree) first."
        )
    return diffs


def xla_flops(compiled: Any, keys: tuple[str, ...] = ("flops",)) -> float | None:
    """FLOPs of a compiled function from XLA's ``cost_analysis()`` (None if absent).

    ``cost_analysis()`` returns a dict in recent jax and a list of per-module dicts in
    older versions; both are summed. ``keys`` are the cost entries added up (e.g.
    ``("flops", "transcendentals")``); None when none of them is reported.
    """
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if cost is None:
        return None
    if isinstance(cost, dict):
        cost = [cost]
    found = [c.get(k) for c in cost if isinstance(c, dict) for k in keys]
    values = [float(f) for f in found if f is not None]
    return sum(values) if values else None


def xla_memory(compiled: Any) -> dict[str, int | None]:
    """XLA's compiled memory analysis, bytes; a field the backend lacks is None.

    ``peak`` = temp + argument + output - alias (buffers the output reuses from the
    arguments), the live bytes of one call as XLA plans them.
    """
    fields = ("temp", "argument", "output", "alias", "generated_code")
    try:
        mem = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        mem = None
    out: dict[str, int | None] = {}
    for f in fields:
        v = getattr(mem, f"{f}_size_in_bytes", None) if mem is not None else None
        out[f"{f}_bytes"] = int(v) if v is not None else None
    parts = [out["temp_bytes"], out["argument_bytes"], out["output_bytes"]]
    known = [p for p in parts if p is not None]
    out["peak_bytes"] = (
        sum(known) - (out["alias_bytes"] or 0) if len(known) == len(parts) else None
    )
    return out


def _flops_key(name: str) -> str:
    """Which of ``case.flops`` a timed function's rate is computed from."""
    return {"forward": "forward", MATMULS: "matmul"}.get(name, "step")


def _ratio_pairs(steps: list[str], forward: bool = True) -> list[tuple[str, str, str]]:
    """(label, numerator, denominator) of every ratio a case reports."""
    pairs = [("grad/forward", "autodiff", "forward")] if forward else []
    if "hand" in steps:
        pairs.insert(0, ("autodiff/hand", "autodiff", "hand"))
    if "raw" in steps:
        pairs.insert(1 if "hand" in steps else 0, ("autodiff/raw", "autodiff", "raw"))
    for extra in steps:
        if extra not in ("autodiff", "hand", "raw"):
            pairs.append((f"{extra}/autodiff", extra, "autodiff"))
    return pairs


def run_case(
    case: Case,
    *,
    repeats: int = 15,
    min_time: float = 0.05,
    peak_gflops: float | None = None,
) -> dict[str, Any]:
    """Verify, compile and time one case; return its result row.

    Args:
      case: the case (see :mod:`jaxnet.bench._case`).
      repeats: interleaved rounds (every function once per round).
      min_time: seconds each function runs per round.
      peak_gflops: this machine's matmul peak (:func:`jaxnet.bench._peak.matmul_peak`);
        ``None`` leaves the fractions of peak out.

    Returns:
      A JSON-ready row: the environment, the case's description and shapes, the
      agreement (``max_rel_grad_diff``), ``compile`` (trace and compile seconds per
      function), ``time_s`` (median, min, max per function), ``ratios``, ``gflops``,
      ``fraction_of_peak``, ``xla_flops`` and ``memory`` per function.

    Raises:
      RefusedToTime: when an implementation's gradient disagrees (nothing timed).
    """
    t_start = time.perf_counter()
    agreement: dict[str, float] = {}
    diffs = check_agreement(case, ratios_out=agreement)
    fns_src = {"forward": case.forward} if case.forward is not None else {}
    fns_src.update(case.steps)
    if case.matmuls is not None:
        fns_src[MATMULS] = case.matmuls
    compiled, comp, xflops, memory = {}, {}, {}, {}
    for name, fn in fns_src.items():
        c, t_trace, t_compile = compile_times(fn, *case.args)
        compiled[name] = c
        comp[name] = {"trace_s": t_trace, "compile_s": t_compile}
        xflops[name] = xla_flops(c)
        memory[name] = xla_memory(c)
    times = paired(compiled, case.args, repeats=repeats, min_time=min_time)
    time_s = {k: summary(v) for k, v in times.items()}
    rat = {
        label: ratios(times[a], times[b])
        for label, a, b in _ratio_pairs(list(case.steps), case.forward is not None)
    }
    if MATMULS in times:
        rat[f"autodiff/{MATMULS}"] = ratios(times["autodiff"], times[MATMULS])
    gflops: dict[str, dict[str, float]] = {}
    frac: dict[str, dict[str, float]] = {}
    for name, t in time_s.items():
        n = case.flops.get(_flops_key(name))
        if not n:  # no FLOP count given: no rate
            continue
        # the fastest time gives the highest rate: min/max swap
        g = {
            "median": n / t["median"] / 1e9,
            "min": n / t["max"] / 1e9,
            "max": n / t["min"] / 1e9,
        }
        gflops[name] = g
        if peak_gflops:
            frac[name] = {k: v / peak_gflops for k, v in g.items()}
    flops_check = {
        name: _ratio(xflops[name], case.flops.get(_flops_key(name))) for name in fns_src
    }
    return {
        **environment(),
        "case": case.name,
        "family": case.family,
        "description": case.description,
        "dtype": case.dtype,
        "shapes": {k: list(v) for k, v in case.shapes.items()},
        "notes": case.notes,
        "repeats": repeats,
        "min_time_s": min_time,
        "agreement_bound": agreement_tolerance(case.dtype),
        "max_rel_grad_diff": diffs,
        "agreement": agreement,
        "compile": comp,
        "time_s": time_s,
        "ratios": rat,
        "flops": dict(case.flops),
        "xla_flops": xflops,
        "xla_over_counted_flops": flops_check,
        "gflops": gflops,
        "peak_gflops": peak_gflops,
        "fraction_of_peak": frac,
        "memory": {k: v for k, v in memory.items() if k not in ("forward", MATMULS)},
        "wall_s": time.perf_counter() - t_start,
    }
