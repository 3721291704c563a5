"""``jaxnet.bench.compare``: agree first, then time, for any functions of the same args.

The gate and the timing are the suite's own (:mod:`jaxnet.bench._runner`,
:mod:`jaxnet.bench._timing`): every function's output is compared leaf by leaf with
the reference's, ``|a - b| <= 10 (atol + rtol |b|)`` at the "analytic" tolerance of
the output's dtype (:func:`jaxnet.testing.tolerance`); one that disagrees refuses the
whole comparison (:class:`RefusedToTime`, naming it, its worst leaf and by how much)
before anything is timed. Each function is traced and compiled apart (both timed)
before the gate runs it; once all agree they are warmed up and run interleaved
(A B C A B C ..., rotating order), each call blocked on its whole output; medians
with min-max, ratios against the reference pair by pair.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from .._types import same_treedef
from ._format import fmt_range, md_table
from ._runner import (
    AGREEMENT_FACTOR,
    RefusedToTime,
    environment,
    max_rel_diff,
    xla_flops,
    xla_memory,
)
from ._timing import compile_times, paired, ratios, summary


def _dtype_of(tree: Any) -> str:
    """The widest floating dtype among ``tree``'s leaves (``"float32"`` if none)."""
    order = ["float16", "bfloat16", "float32", "float64"]
    found = [
        np.dtype(getattr(x, "dtype", np.asarray(x).dtype)).name
        for x in jax.tree.leaves(tree)
    ]
    floats = [d for d in found if d in order]
    return max(floats, key=order.index) if floats else "float32"


def _path(path: Any) -> str:
    return jax.tree_util.keystr(path) or "(the output)"


def _disagreement(
    got: Any, ref: Any, rtol: float, atol: float
) -> tuple[float, float, str]:
    """``(ratio to the bound, max rel diff, where and by how much)``.

    Raises:
      RefusedToTime: when the trees' structures or a leaf's shape differ.
    """
    pg, tg = jax.tree_util.tree_flatten_with_path(got)
    pr, tr = jax.tree_util.tree_flatten_with_path(ref)
    if not same_treedef(tg, tr):
        raise RefusedToTime(f"its output tree is {tg}, the reference's is {tr}")
    worst, detail = 0.0, ""
    for (path, x), (_, r) in zip(pg, pr, strict=True):
        x, r = np.asarray(x, np.float64), np.asarray(r, np.float64)
        if x.shape != r.shape:
            raise RefusedToTime(
                f"leaf {_path(path)} has shape {x.shape}, the reference's {r.shape}"
            )
        if r.size == 0:
            continue
        bound = AGREEMENT_FACTOR * (atol + rtol * np.abs(r))
        over = np.abs(x - r) / bound
        i = int(np.argmax(np.where(np.isnan(over), np.inf, over)))
        ratio = float(over.reshape(-1)[i])
        if not ratio <= worst and not np.isnan(worst):  # a nan is the worst
            at = [int(j) for j in np.unravel_index(i, r.shape)] if r.ndim else []
            worst, leaf = ratio, _path(path)
            detail = (
                f"at leaf {leaf}{at if at else ''} expected {r.reshape(-1)[i]:.6g}, "
                f"got {x.reshape(-1)[i]:.6g}; max |a - b| over the leaf "
                f"{float(np.max(np.abs(x - r))):.3g}"
            )
    return worst, max_rel_diff(got, ref), detail


class Comparison:
    """What :func:`compare` measured: one row per function, as data and as a table.

    Attributes:
      name: the comparison's name (the ``name=`` given to :func:`compare`).
      reference: the function every other one was checked and timed against.
      rows: one dict per function, in the order given: ``name``, ``median_s``,
        ``min_s``, ``max_s`` (seconds per call), ``vs_reference`` (the median,
        min and max of the pair-by-pair time ratios to the reference),
        ``trace_s``, ``compile_s``, ``max_rel_diff`` (max over leaves of
        ``max|a - b| / max|b|`` against the reference), ``agreement`` (the worst
        ``|a - b| / bound``; <= 1 passed), ``gflops`` (when ``flops`` was given),
        ``xla_flops``, ``peak_bytes`` (XLA's memory analysis), ``backend``,
        ``device``, ``dtype``.
      env: the environment of the run (versions, backend, device, CPU, threads).
      settings: ``repeats``, ``min_time_s``, ``rtol``, ``atol`` and the bound factor.
    """

    def __init__(
        self,
        name: str,
        reference: str,
        rows: list[dict[str, Any]],
        env: dict[str, Any],
        settings: dict[str, Any],
    ) -> None:
        self.name = name
        self.reference = reference
        self.rows = rows
        self.env = env
        self.settings = settings

    def __getitem__(self, name: str) -> dict[str, Any]:
        """The row of the function called ``name``."""
        for row in self.rows:
            if row["name"] == name:
                return row
        raise KeyError(
            f"Comparison {self.name!r}: no function {name!r}; "
            f"have {[r['name'] for r in self.rows]}."
        )

    def ratio(self, a: str, b: str | None = None) -> float:
        """Median time of ``a`` over ``b`` (default: the reference), pair by pair when
        ``b`` is the reference."""
        if b is None or b == self.reference:
            return float(self[a]["vs_reference"]["median"])
        return float(self[a]["median_s"] / self[b]["median_s"])

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready: name, reference, settings, env and rows."""
        return {
            "name": self.name,
            "reference": self.reference,
            "settings": self.settings,
            "env": self.env,
            "rows": self.rows,
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), default=str, **kwargs)

    def to_markdown(self) -> str:
        """The table :func:`str` prints: one line per function."""
        rate = any("gflops" in r for r in self.rows)
        head = [
            "function",
            "ms (min-max)",
            f"vs {self.reference} (min-max)",
            "compile s",
            "max rel diff",
            "agreement / bound",
        ] + (["GFLOP/s"] if rate else [])
        lines = []
        for r in self.rows:
            t = {"median": r["median_s"], "min": r["min_s"], "max": r["max_s"]}
            cells = [
                r["name"],
                fmt_range(t, ".3f", scale=1e3),
                fmt_range(r["vs_reference"], ".3f"),
                "" if r["compile_s"] is None else f"{r['compile_s']:.2f}",
                f"{r['max_rel_diff']:.1e}",
                f"{r['agreement']:.1e}",
            ]
            if rate:
                g = r.get("gflops")
                cells.append("" if g is None else f"{g:.1f}")
            lines.append(cells)
        e = self.env
        return (
            f"{self.name}: {e['backend']} ({e['device']}), {self.rows[0]['dtype']}, "
            f"medians of {self.settings['repeats']} interleaved rounds\n\n"
            + md_table(head, lines)
        )

    def __str__(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        rats = ", ".join(
            f"{r['name']} {r['vs_reference']['median']:.3f}" for r in self.rows
        )
        return f"<Comparison {self.name!r} vs {self.reference!r}: {rats}>"


def compare(
    fns: Mapping[str, Callable[..., Any]],
    args: Sequence[Any] | Any,
    *,
    flops: int | Mapping[str, int] | None = None,
    reference: str | None = None,
    name: str = "compare",
    repeats: int = 15,
    min_time: float = 0.05,
    rtol: float | None = None,
    atol: float | None = None,
    jit: bool = True,
) -> Comparison:
    """Prove that several implementations agree, then time them interleaved.

    Args:
      fns: ``name -> f(*args)``, e.g. ``{"autodiff": grad_a, "hand": grad_b}``.
        Each returns the same pytree (a gradient, a training step's new parameters,
        ...); that output is what the gate compares and what is timed.
      args: the arguments every function takes (a tuple; a single non-tuple value
        is one argument).
      flops: the FLOPs of one call (one number for all, or ``name -> count``),
        counted by hand, for GFLOP/s; ``None`` leaves the rates out.
      reference: the function the others are checked and timed against (default
        ``"autodiff"`` when present, else the first).
      name: names the comparison in its table and errors.
      repeats: interleaved rounds (every function once per round).
      min_time: seconds each function runs per round (one inner count for all).
      rtol, atol: the agreement tolerance; default the "analytic" tolerance of the
        outputs' dtype (:func:`jaxnet.testing.tolerance`). The bound is
        ``10 (atol + rtol |b|)`` per element, ``b`` the reference's output.
      jit: ``True`` (default) jits every function, timing its trace and compile
        apart; ``False`` times them as given (e.g. functions that are already
        compiled, or that cannot be traced).

    Returns:
      A :class:`Comparison`: ``.rows`` (one dict per function), ``.to_json()``,
      ``str()`` a markdown table.

    Raises:
      RefusedToTime: (a ``ValueError``) when a function's output disagrees with the
        reference's: it names each one, its worst leaf, the max difference, the
        ratio to the bound; nothing is timed.
      ValueError: when ``fns`` is empty or ``reference`` is not one of them.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> f = lambda x: jnp.sum(jnp.sin(x))
      >>> res = compare({"autodiff": jax.grad(f), "hand": jnp.cos}, (jnp.ones(8),),
      ...               repeats=3, min_time=0.001)
      >>> [r["name"] for r in res.rows], res["hand"]["agreement"] <= 1
      (['autodiff', 'hand'], True)
    """
    t_start = time.perf_counter()
    fns = dict(fns)
    if not fns:
        raise ValueError(f"jaxnet.bench.compare({name}): no functions to compare.")
    if reference is None:
        reference = "autodiff" if "autodiff" in fns else next(iter(fns))
    if reference not in fns:
        raise ValueError(
            f"jaxnet.bench.compare({name}): reference {reference!r} is not one of the "
            f"functions {list(fns)}."
        )
    args = tuple(args) if isinstance(args, tuple | list) else (args,)
    compiled: dict[str, Callable[..., Any]] = {}
    comp: dict[str, tuple[float | None, float | None]] = {}
    xfl: dict[str, float | None] = {}
    mem: dict[str, int | None] = {}
    for k, f in fns.items():  # compiled first, so trace and compile are timed cold
        if jit:
            c, t_trace, t_compile = compile_times(f, *args)
            compiled[k] = c
            comp[k] = (t_trace, t_compile)
            xfl[k] = xla_flops(c)
            mem[k] = xla_memory(c)["peak_bytes"]
        else:
            compiled[k] = f
            comp[k] = (None, None)
            xfl[k] = mem[k] = None
    outs = {k: jax.device_get(f(*args)) for k, f in compiled.items()}
    dtype = _dtype_of(outs[reference])
    import jaxnet.testing

    tol = jaxnet.testing.tolerance(dtype, "analytic")
    rtol = tol.rtol if rtol is None else rtol
    atol = tol.atol if atol is None else atol
    checked: dict[str, tuple[float, float]] = {}
    bad: list[str] = []
    for k, out in outs.items():
        if k == reference:
            checked[k] = (0.0, 0.0)
            continue
        try:
            ratio, rel, detail = _disagreement(out, outs[reference], rtol, atol)
        except RefusedToTime as e:
            bad.append(f"{k!r}: {e}")
            continue
        checked[k] = (ratio, rel)
        if not ratio <= 1.0:
            bad.append(
                f"{k!r}: {detail}, max rel diff {rel:.3g}, {ratio:.3g}x the bound"
            )
    if bad:
        raise RefusedToTime(
            f"jaxnet.bench.compare({name}): outputs disagree with the reference "
            f"{reference!r}, refusing to time: " + "; ".join(bad) + ". Bound: "
            f"|a - b| <= {AGREEMENT_FACTOR:g} (atol + rtol |b|) elementwise, rtol "
            f"{rtol:g}, atol {atol:g} ({dtype}). Fix the implementation (or map its "
            "output into the reference's layout) first; rtol=/atol= widen the bound "
            "when a looser agreement is really what you mean."
        )
    times = paired(compiled, args, repeats=repeats, min_time=min_time)
    env = environment()
    counts = (
        {k: flops for k in fns} if isinstance(flops, int | float) else dict(flops or {})
    )
    rows = []
    for k in fns:
        s = summary(times[k])
        row: dict[str, Any] = {
            "name": k,
            "median_s": s["median"],
            "min_s": s["min"],
            "max_s": s["max"],
            "vs_reference": ratios(times[k], times[reference]),
            "trace_s": comp[k][0],
            "compile_s": comp[k][1],
            "max_rel_diff": checked[k][1],
            "agreement": checked[k][0],
            "xla_flops": xfl[k],
            "peak_bytes": mem[k],
            "backend": env["backend"],
            "device": env["device"],
            "dtype": dtype,
        }
        if counts.get(k):
            row["flops"] = counts[k]
            row["gflops"] = counts[k] / s["median"] / 1e9
        rows.append(row)
    settings = {
        "repeats": repeats,
        "min_time_s": min_time,
        "rtol": rtol,
        "atol": atol,
        "bound_factor": AGREEMENT_FACTOR,
        "jit": jit,
        "wall_s": time.perf_counter() - t_start,
    }
    return Comparison(name, reference, rows, env, settings)
