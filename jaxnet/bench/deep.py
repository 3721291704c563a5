"""Deep models: ``jaxnet.Stack`` scanned vs unrolled, and activation memory with remat.

The model is a GPT-style stack of ``N`` pre-LN ``jaxnet.TransformerBlock(4, 256,
causal=True)`` (tanh GELU, MLP ratio 4, no dropout) on ``x: (8, 128, 256)`` float32,
the ``gpt_block`` case's size, with the scalar loss ``mean((model(x) - t)^2)``
against a fixed random target ``t``. The training step is ``jax.value_and_grad`` of
that loss plus SGD (lr 0.01): ``step(params, x, t) -> (new_params, loss)``.

Variants (all read the *same* stacked parameter tree, so they compute the same
numbers):

* ``scan``: ``Stack(block, N)``, the blocks run by :func:`jax.lax.scan` (the block is
  compiled once);
* ``unroll``: ``Stack(block, N, unroll=True)``, a Python loop over the blocks (one
  copy of the block per layer in the program);
* ``scan_remat``: ``Stack(block, N, remat=True)``, each block under
  :func:`jax.checkpoint` saving nothing but its input;
* ``scan_dots_saveable``: ``Stack(block, N, remat="dots_saveable")``, saving the
  matmul outputs and recomputing the elementwise ops.

The case, in order:

1. **Agreement** at the memory depth (12): the loss and every gradient leaf of each
   variant against ``scan``, elementwise ``|a - r| <= atol + rtol |r|`` with the
   float32 tolerance of :func:`jaxnet.testing.tolerance` (no extra factor). Any
   disagreement refuses the case (:class:`jaxnet.bench._runner.RefusedToTime`):
   nothing is timed.
2. **Compile time vs depth** ``N in (1, 2, 4, 8, 12)``: the gradient step traced
   (``jit(...).trace(...).lower()``) and compiled, seconds, scan and unroll
   alternating, ``compile_repeats`` times each. Every measurement builds the model
   again and wraps a *fresh* step function, so JAX's in-memory caches (keyed on
   function identity and jaxpr) cannot serve it; JAX's persistent compilation cache
   must be off (the case refuses otherwise) and its hit counter
   (``/jax/compilation_cache/cache_hits``) is recorded, 0. One unrecorded compile
   warms the process up first. Reported: medians per ``N``, the ratio unroll/scan at
   the largest ``N``, and the least-squares slope (seconds per extra block) of each.
3. **Memory** at ``N = 12``: XLA's ``compiled.memory_analysis()`` of the step (temp,
   argument, output, alias; peak = temp + argument + output - alias) for every
   variant, beside a hand estimate of the activations autodiff keeps per block
   (:func:`activation_estimate`).
4. **Steady state** at ``N = 12``: the four compiled steps and the scanned forward
   (the loss alone), interleaved (:func:`jaxnet.bench._timing.paired`), median and
   min-max; ratios to ``scan`` pair by pair, and remat's extra time in forwards,
   ``(remat - scan) / forward`` pair by pair (about 1: remat re-runs the forward).

``quick=True`` is a smoke run: width 64, batch 2, sequence 32, ``N in (1, 4)``.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxnet

from ._format import fmt_range, md_table
from ._runner import RefusedToTime, environment, jax_option, xla_memory
from ._timing import compile_times, paired, ratios, summary

NAME = "deep"
LR = 0.01
#: ``variant -> Stack options``; ``scan`` is the reference.
VARIANTS: dict[str, dict[str, Any]] = {
    "scan": {"remat": False, "unroll": False},
    "unroll": {"remat": False, "unroll": True},
    "scan_remat": {"remat": True, "unroll": False},
    "scan_dots_saveable": {"remat": "dots_saveable", "unroll": False},
}
#: The variants of the compile-time sweep.
SWEEP = ("scan", "unroll")
_CACHE_HITS = "/jax/compilation_cache/cache_hits"


@dataclasses.dataclass(frozen=True)
class Config:
    """Shapes of the deep case.

    Attributes:
      batch, seq, d_model: ``x`` is ``(batch, seq, d_model)`` float32.
      heads: attention heads per block.
      mlp_ratio: the MLP's hidden width over ``d_model``.
      depths: the ``N`` of the compile-time sweep.
      mem_depth: the ``N`` of the agreement check, memory and steady state.
      block: ``"transformer"`` (the case) or ``"dense_tanh"``
        (``serial(Dense(d_model), Tanh())``: compiles in a fraction of the time, for
        the tests of the machinery).
    """

    batch: int = 8
    seq: int = 128
    d_model: int = 256
    heads: int = 4
    mlp_ratio: int = 4
    depths: tuple[int, ...] = (1, 2, 4, 8, 12)
    mem_depth: int = 12
    block: str = "transformer"


FULL = Config()
QUICK = Config(batch=2, seq=32, d_model=64, depths=(1, 4), mem_depth=4)


def model(cfg: Config, num: int, variant: str) -> jaxnet.Layer:
    """A fresh ``Stack`` of ``num`` causal ``TransformerBlock``s for ``variant``.

    Raises:
      KeyError: for a variant not in :data:`VARIANTS`.

    Example:
      >>> model(QUICK, 3, "unroll").desc.endswith("num=3, unroll=True)")
      True
    """
    if cfg.block == "dense_tanh":
        block = jaxnet.serial(jaxnet.Dense(cfg.d_model), jaxnet.Tanh())
    elif cfg.block == "transformer":
        block = jaxnet.TransformerBlock(
            cfg.heads, cfg.d_model, mlp_ratio=cfg.mlp_ratio, causal=True
        )
    else:
        raise ValueError(
            f"jaxnet.bench.deep.model: Config.block must be 'transformer' or "
            f"'dense_tanh', got {cfg.block!r}."
        )
    return jaxnet.Stack(block, num, **VARIANTS[variant])


def data(cfg: Config) -> tuple[jax.Array, jax.Array]:
    """``(x, t)``: the input and the fixed regression target, standard normal float32."""
    shape = (cfg.batch, cfg.seq, cfg.d_model)
    x = jax.random.normal(jax.random.key(1), shape, jnp.float32)
    t = jax.random.normal(jax.random.key(2), shape, jnp.float32)
    return x, t


def init_params(cfg: Config, num: int) -> Any:
    """The stacked parameters (key 0), shared by every variant of depth ``num``."""
    _, params = model(cfg, num, "scan").init(
        jax.random.key(0), (None, cfg.seq, cfg.d_model)
    )
    return params


def loss_fn(layer: jaxnet.Layer) -> Callable[[Any, Any, Any], Any]:
    """``loss(params, x, t) = mean((layer(params, x) - t)^2)``, a float32 scalar."""

    def loss(params: Any, x: Any, t: Any) -> Any:
        d = layer.apply(params, x) - t
        return jnp.mean(d * d)

    return loss


def make_step(layer: jaxnet.Layer, lr: float = LR) -> Callable[..., Any]:
    """A fresh training step: ``step(params, x, t) -> (new_params, loss)``, SGD."""
    value_and_grad = jax.value_and_grad(loss_fn(layer))

    def step(params: Any, x: Any, t: Any) -> Any:
        loss, grads = value_and_grad(params, x, t)
        new = jax.tree.map(lambda p, g: p - jnp.asarray(lr, p.dtype) * g, params, grads)
        return new, loss

    return step


def persistent_cache() -> dict[str, Any]:
    """JAX's persistent compilation cache setting: ``{"dir", "enabled"}``.

    ``enabled`` is True when a cache directory is set and the cache is not switched
    off (``jax_enable_compilation_cache``): then compiles may be read from disk.
    """
    cache_dir = jax_option("jax_compilation_cache_dir")
    on = bool(jax_option("jax_enable_compilation_cache"))
    return {"dir": cache_dir, "enabled": cache_dir is not None and on}


@contextmanager
def count_cache_hits() -> Iterator[list[int]]:
    """Count persistent-cache hits (JAX's monitoring event) inside the block.

    Yields:
      A one-element list holding the count so far.
    """
    hits = [0]

    def listener(event: str, **_: Any) -> None:
        if event == _CACHE_HITS:
            hits[0] += 1

    jax.monitoring.register_event_listener(listener)
    try:
        yield hits
    finally:
        jax.monitoring.unregister_event_listener(listener)


def _allclose_ratio(a: Any, r: Any, tol: Any) -> float:
    """``max |a - r| / (atol + rtol |r|)`` over every element of every leaf."""
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(r), strict=True):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.shape != y.shape:
            return float("inf")
        if y.size:
            bound = tol.atol + tol.rtol * np.abs(y)
            worst = max(worst, float(np.max(np.abs(x - y) / bound)))
    return worst


def verify(
    cfg: Config, num: int, variants: tuple[str, ...] = tuple(VARIANTS)
) -> dict[str, Any]:
    """Loss and gradients of every variant at depth ``num`` against ``scan``.

    Returns:
      ``{"loss": {variant: float}, "ratio": {variant: worst |a - r| / (atol + rtol
      |r|)}, "max_abs_grad_diff": {variant: float}, "tolerance": {"rtol", "atol"}}``;
      a ratio <= 1 agrees.

    Raises:
      RefusedToTime: when a variant disagrees (nothing may be timed).
    """
    tol = jaxnet.testing.tolerance(jnp.float32)
    params = init_params(cfg, num)
    x, t = data(cfg)
    got = {}
    for v in variants:
        vg = jax.jit(jax.value_and_grad(loss_fn(model(cfg, num, v))))
        got[v] = jax.device_get(vg(params, x, t))
    ref = got["scan"]
    out: dict[str, Any] = {
        "depth": num,
        "tolerance": {"rtol": tol.rtol, "atol": tol.atol},
        "loss": {v: float(lv) for v, (lv, _) in got.items()},
        "ratio": {},
        "max_abs_grad_diff": {},
    }
    for v, g in got.items():
        out["ratio"][v] = _allclose_ratio(g, ref, tol)
        out["max_abs_grad_diff"][v] = max(
            float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
            for a, b in zip(jax.tree.leaves(g[1]), jax.tree.leaves(ref[1]), strict=True)
        )
    bad = {v: r for v, r in out["ratio"].items() if not r <= 1.0}
    if bad:
        detail = ", ".join(f"{v}: {r:.3g}x the bound" for v, r in bad.items())
        raise RefusedToTime(
            f"jaxnet.bench.deep.verify: every variant at depth {num} should give scan's "
            f"loss and gradients to |a - r| <= atol + rtol |r| (float32: rtol "
            f"{tol.rtol:g}, atol {tol.atol:g}); {detail}. Check Stack's unroll/remat "
            "paths against the scanned one; refusing to time."
        )
    return out


def compile_once(cfg: Config, num: int, variant: str) -> tuple[Any, float, float]:
    """Build the model again, wrap a fresh step, trace and compile it.

    Returns:
      ``(compiled, trace_s, compile_s)``.
    """
    params = init_params(cfg, num)
    x, t = data(cfg)
    step = make_step(model(cfg, num, variant))
    return compile_times(lambda p, a, b: step(p, a, b), params, x, t)


def _slope(xs: list[int], ys: list[float]) -> float | None:
    """Least-squares slope of ``ys`` on ``xs`` (None for fewer than 2 points)."""
    if len(xs) < 2:
        return None
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])


def compile_sweep(
    cfg: Config, repeats: int = 3, *, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Trace and compile seconds of the step vs depth, scan and unroll alternating.

    Returns:
      ``{"per_depth": {N: {variant: {"trace_s", "compile_s", "total_s"}}}`` (each a
      summary: median, min, max), ``"samples"`` (the raw seconds), ``"slope_s_per_
      block"`` ({variant: {measure: seconds per extra block}}, fitted to the medians;
      ``"slope_s_per_block_from_2"`` the same over ``N >= 2``: XLA removes a
      one-trip loop, so the scanned ``N = 1`` has no loop at all),
      ``"ratio_unroll_over_scan"`` ({measure: ratio of medians} at the largest
      depth), ``"persistent_cache"`` and ``"persistent_cache_hits"`` (0).

    Raises:
      RefusedToTime: when JAX's persistent compilation cache is on, or was hit.
    """
    cache = persistent_cache()
    if cache["enabled"]:
        raise RefusedToTime(
            f"jaxnet.bench.deep.compile_sweep: JAX's persistent compilation cache is on "
            f"(dir {cache['dir']!r}), so compile times could be read from disk; unset "
            "JAX_COMPILATION_CACHE_DIR (or jax_compilation_cache_dir) and rerun."
        )
    measures = ("trace_s", "compile_s", "total_s")
    samples: dict[str, dict[str, dict[str, list[float]]]] = {}
    with count_cache_hits() as hits:
        compile_once(cfg, 1, "scan")  # warm-up: the process's one-time costs
        for n in cfg.depths:
            samples[str(n)] = {v: {m: [] for m in measures} for v in SWEEP}
            for r in range(repeats):
                for v in SWEEP if r % 2 == 0 else SWEEP[::-1]:
                    _, tr, co = compile_once(cfg, n, v)
                    s = samples[str(n)][v]
                    s["trace_s"].append(tr)
                    s["compile_s"].append(co)
                    s["total_s"].append(tr + co)
            med = {v: statistics.median(samples[str(n)][v]["total_s"]) for v in SWEEP}
            say(
                f"  N={n}: trace + compile scan {med['scan']:.2f} s, "
                f"unroll {med['unroll']:.2f} s"
            )
    if hits[0]:
        raise RefusedToTime(
            f"jaxnet.bench.deep.compile_sweep: {hits[0]} compiles came from JAX's "
            "persistent cache; the compile times are not fresh. Turn the cache off."
        )
    per = {
        n: {v: {m: summary(xs) for m, xs in d.items()} for v, d in vs.items()}
        for n, vs in samples.items()
    }
    depths = list(cfg.depths)
    slope = {
        v: {
            m: _slope(depths, [per[str(n)][v][m]["median"] for n in depths])
            for m in measures
        }
        for v in SWEEP
    }
    deeper = [n for n in depths if n >= 2]
    slope_2 = {
        v: {
            m: _slope(deeper, [per[str(n)][v][m]["median"] for n in deeper])
            for m in measures
        }
        for v in SWEEP
    }
    top = per[str(max(depths))]
    ratio = {m: top["unroll"][m]["median"] / top["scan"][m]["median"] for m in measures}
    return {
        "repeats": repeats,
        "per_depth": per,
        "samples": samples,
        "slope_s_per_block": slope,
        "slope_s_per_block_from_2": slope_2,
        "ratio_unroll_over_scan": ratio,
        "ratio_at_depth": max(depths),
        "persistent_cache": cache,
        "persistent_cache_hits": hits[0],
    }


def activation_estimate(cfg: Config, dtype_bytes: int = 4) -> dict[str, Any]:
    """Hand estimate of the activations autodiff keeps per block, bytes.

    With ``M = batch seq d`` (one activation) and ``S = batch heads seq^2`` (one
    attention matrix), a pre-LN block saves for its backward: its input (``M``), the
    normalised input of each LayerNorm (``2 M``), q, k, v (``3 M``), the softmax
    probabilities (``S``), the attention context (``M``), the residual after
    attention (``M``), the MLP's pre-activation and GELU output (``2 r M``, ``r`` the
    MLP ratio): ``(9 + 2 r) M + S``. Per-row LayerNorm statistics and the tanh inside
    the GELU (``r M`` more, if kept rather than recomputed) are left out.

    ``remat=True`` keeps only the input per block (``M``) plus one block's
    activations while its backward runs; ``dots_saveable`` keeps the matmul outputs:
    q, k, v, the attention scores, the context, the output projection, the MLP's two
    matmuls: ``(6 + r) M + S``, plus the input.

    Returns:
      ``{"per_block_bytes", "remat_per_block_bytes", "dots_saveable_per_block_bytes",
      "unit_bytes" (M), "attention_bytes" (S), "formula"}``.

    Example:
      >>> e = activation_estimate(FULL)
      >>> e["per_block_bytes"] / 2**20, e["unit_bytes"] / 2**20
      (19.0, 1.0)
    """
    m = cfg.batch * cfg.seq * cfg.d_model * dtype_bytes
    s = cfg.batch * cfg.heads * cfg.seq * cfg.seq * dtype_bytes
    r = cfg.mlp_ratio
    return {
        "unit_bytes": m,
        "attention_bytes": s,
        "per_block_bytes": (9 + 2 * r) * m + s,
        "remat_per_block_bytes": m,
        "dots_saveable_per_block_bytes": (7 + r) * m + s,
        "formula": "(9 + 2 r) M + S; remat: M; dots_saveable: (7 + r) M + S",
    }


def _block_text(block: str, heads: int, d: int) -> str:
    if block == "transformer":
        return f"TransformerBlock({heads}, {d}, causal=True)"
    return f"serial(Dense({d}), Tanh())"


def _forward(cfg: Config, num: int) -> Callable[..., Any]:
    """The scanned model's loss alone (a forward), jitted."""
    return jax.jit(loss_fn(model(cfg, num, "scan")))


def deep_case(
    *,
    quick: bool = False,
    cfg: Config | None = None,
    repeats: int = 7,
    min_time: float = 0.05,
    compile_repeats: int = 3,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole deep case: agreement, compile sweep, memory, steady state.

    Args:
      quick: the smoke configuration (:data:`QUICK`) instead of :data:`FULL`.
      cfg: overrides ``quick``'s configuration.
      repeats: interleaved rounds of the steady-state timing.
      min_time: seconds per implementation per round (one step at least).
      compile_repeats: compiles per depth and variant in the sweep.
      say: progress lines.

    Returns:
      A JSON-ready row (``case`` = ``"deep"``): the environment, ``config``,
      ``agreement`` (:func:`verify`), ``compile`` (:func:`compile_sweep`),
      ``memory`` ({variant: XLA memory analysis, bytes}), ``estimate``
      (:func:`activation_estimate`), ``step_s`` (seconds per call, summaries),
      ``vs_scan`` (ratios pair by pair to ``scan``), ``remat_extra_forwards`` and
      ``wall_s``. (Not ``time_s``/``ratios``: those keys mark the runner's rows.)

    Raises:
      RefusedToTime: when the variants disagree, or compiles could come from
        JAX's persistent cache.
    """
    t0 = time.perf_counter()
    cfg = cfg or (QUICK if quick else FULL)
    n = cfg.mem_depth
    row: dict[str, Any] = {
        **environment(),
        "case": NAME,
        "family": NAME,
        "description": (
            f"Stack of N {_block_text(cfg.block, cfg.heads, cfg.d_model)} "
            f"on x {(cfg.batch, cfg.seq, cfg.d_model)}, mse loss, SGD step: scan vs "
            "unroll, remat"
        ),
        "dtype": "float32",
        "quick": cfg != FULL,
        "config": dataclasses.asdict(cfg),
        "repeats": repeats,
        "min_time_s": min_time,
    }
    say(f"  agreement of {', '.join(VARIANTS)} at N={n} ...")
    row["agreement"] = verify(cfg, n)
    say(f"  compile sweep N in {cfg.depths} x {compile_repeats} ...")
    row["compile"] = compile_sweep(cfg, compile_repeats, say=say)
    say(f"  memory analysis at N={n} ...")
    compiled: dict[str, Any] = {}
    row["memory"] = {}
    row["compile_at_mem_depth"] = {}
    for v in VARIANTS:
        compiled[v], tr, co = compile_once(cfg, n, v)
        row["memory"][v] = xla_memory(compiled[v])
        row["compile_at_mem_depth"][v] = {"trace_s": tr, "compile_s": co}
    row["estimate"] = activation_estimate(cfg)
    say(f"  steady state at N={n}, {repeats} interleaved rounds ...")
    params = init_params(cfg, n)
    x, t = data(cfg)
    fns = {**compiled, "forward": _forward(cfg, n)}
    times = paired(fns, (params, x, t), repeats=repeats, min_time=min_time)
    row["step_s"] = {k: summary(v) for k, v in times.items()}
    row["vs_scan"] = {
        f"{v}/scan": ratios(times[v], times["scan"]) for v in VARIANTS if v != "scan"
    }
    row["remat_extra_forwards"] = {
        v: summary(
            [(a - b) / f for a, b, f in zip(times[v], times["scan"], times["forward"])]
        )
        for v in ("scan_remat", "scan_dots_saveable")
    }
    row["wall_s"] = time.perf_counter() - t0
    return row


# ----------------------------------------------------------------------- report


def _mib(b: float | None) -> str:
    if b is None:
        return ""
    m = b / 2**20
    return f"{m:.1f}" if m >= 10 else f"{m:.3f}"


def _slope_text(sl: dict[str, Any]) -> Callable[[str, str], str]:
    def text(v: str, m: str) -> str:
        x = sl[v][m] if sl else None
        return "n/a" if x is None else f"{x:.3f}"

    return text


def deep_table(rows: list[dict[str, Any]]) -> str:
    """The deep case's markdown (compile sweep, memory and step time), "" if absent.

    Example:
      >>> deep_table([])
      ''
    """
    out: list[str] = []
    for row in rows:
        if row.get("case") != NAME or "compile" not in row:
            continue
        cfg, comp = row["config"], row["compile"]
        n = cfg["mem_depth"]
        shape = (cfg["batch"], cfg["seq"], cfg["d_model"])
        out += [
            f"### Deep models: scan vs unroll, remat{' (quick)' if row['quick'] else ''}",
            "",
            f"`Stack({_block_text(cfg.get('block', 'transformer'), cfg['heads'], cfg['d_model'])}, N)` "
            f"on x {shape} float32, mse loss, `value_and_grad` + SGD step. All "
            f"variants agree with `scan` before timing (loss and every gradient "
            f"element, float32 tolerance; worst "
            f"{max(row['agreement']['ratio'].values()):.2f}x the bound).",
            "",
            f"Trace (lower) and compile of the step, seconds, median of "
            f"{comp['repeats']} (min-max); every measurement a fresh model and step "
            f"function, persistent cache off ({comp['persistent_cache_hits']} hits):",
            "",
        ]
        head = ["N"]
        for v in ("scan", "unroll"):
            head += [f"{v} trace", f"{v} compile", f"{v} total"]
        cells = []
        for d, per in comp["per_depth"].items():
            cells.append([d])
            for v in ("scan", "unroll"):
                t = per[v]
                cells[-1] += [f"{t[k]['median']:.2f}" for k in ("trace_s", "compile_s")]
                cells[-1].append(fmt_range(t["total_s"], fmt=".2f"))
            ratio = (
                per["unroll"]["total_s"]["median"] / per["scan"]["total_s"]["median"]
            )
            cells[-1].append(f"{ratio:.2f}")
        out.append(md_table([*head, "unroll / scan (total)"], cells))
        sl = comp["slope_s_per_block"]
        _s = _slope_text(sl)
        _s2 = _slope_text(comp["slope_s_per_block_from_2"])
        out += [
            "",
            f"Unroll / scan at N={comp['ratio_at_depth']}: trace + compile "
            f"{comp['ratio_unroll_over_scan']['total_s']:.2f}x (compile "
            f"{comp['ratio_unroll_over_scan']['compile_s']:.2f}x, trace "
            f"{comp['ratio_unroll_over_scan']['trace_s']:.2f}x). Slope, seconds per "
            f"extra block (least squares on the medians): scan {_s('scan', 'total_s')}"
            f" (trace {_s('scan', 'trace_s')}, compile {_s('scan', 'compile_s')}), "
            f"unroll {_s('unroll', 'total_s')} (trace {_s('unroll', 'trace_s')}, "
            f"compile {_s('unroll', 'compile_s')}). Over N >= 2 only (XLA drops "
            f"the loop of a one-block scan): scan {_s2('scan', 'total_s')}, unroll "
            f"{_s2('unroll', 'total_s')}.",
            "",
            f"Memory (XLA `memory_analysis()` of the compiled step, MiB) and step time "
            f"at N={n}, {row['repeats']} interleaved rounds, ms median (min-max), "
            "ratio to scan pair by pair:",
            "",
        ]
        cells = []
        for v, mem in row["memory"].items():
            vs = (
                "1"
                if v == "scan"
                else fmt_range(row["vs_scan"][f"{v}/scan"], fmt=".2f")
            )
            kinds = ("temp_bytes", "argument_bytes", "output_bytes", "peak_bytes")
            cells.append(
                [v, *(_mib(mem[k]) for k in kinds)]
                + [fmt_range(row["step_s"][v], ".1f", scale=1e3), vs]
            )
        forward_ms = fmt_range(row["step_s"]["forward"], ".1f", scale=1e3)
        cells.append(["forward (scan, loss only)", "", "", "", "", forward_ms, ""])
        head = ["variant", "temp", "arguments", "outputs", "peak", "ms per step"]
        out.append(md_table([*head, "vs scan"], cells))
        est = row["estimate"]
        extra = row["remat_extra_forwards"]
        out += [
            "",
            f"Hand estimate of the activations autodiff keeps per block "
            f"({est['formula']}, M = one activation = {_mib(est['unit_bytes'])} MiB, "
            f"S = one attention matrix = {_mib(est['attention_bytes'])} MiB): "
            f"{_mib(est['per_block_bytes'])} MiB per block, "
            f"{_mib(n * est['per_block_bytes'])} MiB for {n} blocks; remat "
            f"{_mib(est['remat_per_block_bytes'])} MiB per block (+ one block's "
            f"{_mib(est['per_block_bytes'])} MiB while it is recomputed); dots_saveable "
            f"{_mib(est['dots_saveable_per_block_bytes'])} MiB per block. Remat's extra "
            f"time in forwards, (remat - scan) / forward pair by pair: "
            f"{fmt_range(extra['scan_remat'], fmt='.2f')}; dots_saveable "
            f"{fmt_range(extra['scan_dots_saveable'], fmt='.2f')}.",
        ]
    return "\n".join(out)


def plot_compile(rows: list[dict[str, Any]], out_dir: str) -> list[str]:
    """``deep_compile.png``: trace + compile seconds vs N, scan and unroll (min-max).

    Needs matplotlib (the caller checks it is importable).

    Returns:
      The paths written (none without a deep row).
    """
    deep = [r for r in rows if r.get("case") == NAME and "compile" in r]
    if not deep:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = deep[0]["compile"]["per_depth"]
    depths = [int(d) for d in per]
    fig, ax = plt.subplots(figsize=(6, 4))
    for v in SWEEP:
        tot = [per[str(d)][v]["total_s"] for d in depths]
        med = [t["median"] for t in tot]
        ax.errorbar(
            depths,
            med,
            yerr=[
                [m - t["min"] for m, t in zip(med, tot)],
                [t["max"] - m for m, t in zip(med, tot)],
            ],
            marker="o",
            capsize=3,
            label=v,
        )
    ax.set_xlabel("blocks N")
    ax.set_ylabel("trace + compile of the grad step, s")
    ax.set_xticks(depths)
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, "deep_compile.png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]
