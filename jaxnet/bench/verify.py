"""The verify family: the verification targets of ``jaxnet.testing.check_grads``.

Every measurement runs in float64 (``jax.enable_x64`` inside the family, so other
families in the same process keep JAX's defaults) unless it says float32, and reports
the measured figure beside its target; nothing is tuned to pass. The targets:

1. **10M-parameter MLP** (Dense 1000-2000-2000-1500-1000, tanh, batch 8, mean softmax
   cross-entropy; 10.5M parameters), ``check_grads(loss, params, modes=("rev",
   "fwd"))`` over every leaf: wall time (a) of a fresh process (``python -m
   jaxnet.bench.verify --fresh-mlp``: interpreter start, imports, build, check, timed
   from outside) <= 60 s, (b) of a second call in the same process <= 20 s; and no
   FAIL (the directions per leaf are reported).
2. **tiny GPT** as ``examples/tiny_gpt.py`` builds it (its ``make_model``, default
   flags: width 96, depth 3, heads 3, seq 64; ~360k parameters), mean cross-entropy
   over a fixed batch of windows of its text; the token ids are arguments outside
   ``argnums``. Full check (rev + fwd) <= 30 s, no FAIL.
3. **Detection power**: ``f(p) = sum(tanh(x @ w + b) * c)`` (real-analytic), ``w``
   4096 elements, ``b`` 128 (both directional), ``b`` holding <= 2% of the gradient
   norm; a ``jax.custom_vjp`` scales ``b``'s gradient by ``1 + e``. The smallest ``e``
   caught must be <= 1e-6 with ``method="central"`` and <= 1e-10 with
   ``method="complex"``; at those ``e`` every seed (the seed of the random directions)
   must catch it, on the ``b`` row; the correct function must give no FAIL over every
   seed, row and method.
4. **float32**: ``sum(log1p(w^2))`` on a (256, 128) float32 leaf with the analytic
   gradient passes (no FAIL, no noisy); a custom_vjp 1e-3 relatively wrong is caught.
5. **Localisation**: one wrong element of a 1000x1000 float64 gradient; directional
   mode must report it as the failing row's ``worst_index``, in <= 2 ceil(log2 n) + 2
   = 42 evaluations, the whole check in <= 5 s.
6. **Exhaustive mode** on a 1e5-element leaf (``sum(log1p(x^2))``), in a subprocess:
   <= 30 s and peak memory growth < 500 MiB (``VmHWM`` at the end minus ``VmRSS``
   after importing jax and building the input; ``ru_maxrss`` reported beside it).
7. **Transpose identity**: the max relative error of the ``jvp vs jax.grad`` rows of
   the MLP and GPT checks <= 1e-13.
8. **Second order** at ~1M parameters (MLP 512-1024-512-10, tanh): ``order=2`` <= 10 s;
   a function whose Hessian is 1e-4 relatively wrong while its gradient is exact must
   FAIL an hvp row at every seed (the row's own detectable bound, at ``miss=1e-6``,
   below 1e-4).
9. **Taylor test** (``jaxnet.testing.taylor_test``): order 2.00 +- 0.05 for a correct
   gradient, 1 +- 0.2 for one 1e-2 relatively wrong.

``quick=True`` (:data:`QUICK`) shrinks the sizes, drops the MLPs' biases and skips the
tiny GPT (targets 2a and 2b: its 22 leaves cost a compile each, whatever the size);
the thresholds stay the full-size ones, so quick figures only show that the
machinery runs. ``TINY`` is the test suite's: the quick targets at the least cost.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxnet
from jaxnet import losses
from jaxnet.testing import check_grads

from ._format import md_table
from ._runner import jax_option

NAME = "verify"
_JSON_TAG = "VERIFY_JSON "
_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_BISECT = re.compile(r"located by bisection in (\d+) evaluations")


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of the verify family (the targets are stated for :data:`FULL`).

    Attributes:
      mlp_widths, mlp_batch: the MLP of targets 1 and 7.
      mlp_bias: whether the MLPs (targets 1, 7 and 8) have biases (``QUICK`` and
        ``TINY``: none; half the leaves, half the compiles: the checker compiles a
        probe per leaf, so its cost follows the number of leaves more than their
        size).
      gpt: ``(width, depth, heads, seq)`` of the tiny GPT (targets 2 and 7), or
        ``None`` to skip it (its 22 leaves cost a compile each, whatever the size).
      gpt_batch: windows in the GPT's fixed batch.
      detect_w, detect_b: shapes of the detection problem's leaves (target 3).
      central_es, complex_es: the error ladders of target 3.
      seeds: seeds of the repeated runs (targets 3 and 8).
      loc_shape, loc_index, loc_error: the localisation leaf, the wrong element and
        its relative error (target 5).
      exhaustive_n: elements of the exhaustive leaf (target 6), a multiple of 100: the
        weight (n // 100, 100) of a tanh layer at batch 8.
      hvp_widths, hvp_batch: the second-order MLP (target 8).
      hvp_bad_shape: the leaf of the wrong-Hessian function (target 8).
      taylor_seeds: seeds (random directions) of the Taylor test (target 9).
    """

    mlp_widths: tuple[int, ...] = (1000, 2000, 2000, 1500, 1000)
    mlp_batch: int = 8
    mlp_bias: bool = True
    gpt: tuple[int, int, int, int] | None = (96, 3, 3, 64)
    gpt_batch: int = 4
    detect_w: tuple[int, int] = (32, 128)
    detect_b: int = 128
    central_es: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
    complex_es: tuple[float, ...] = (
        1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11,
    )  # fmt: skip
    seeds: int = 20
    loc_shape: tuple[int, int] = (1000, 1000)
    loc_index: tuple[int, int] = (123, 456)
    loc_error: float = 1e-2
    exhaustive_n: int = 100_000
    hvp_widths: tuple[int, ...] = (512, 1024, 512, 10)
    hvp_batch: int = 8
    hvp_bad_shape: tuple[int, int] = (64, 64)
    taylor_seeds: int = 5


FULL = Config()
QUICK = Config(
    mlp_widths=(100, 200, 100),
    mlp_bias=False,
    gpt=None,
    central_es=(1e-4, 1e-6, 1e-7),
    complex_es=(1e-6, 1e-10, 1e-11),
    seeds=2,
    loc_shape=(100, 100),
    loc_index=(12, 45),
    exhaustive_n=2_000,
    hvp_widths=(100, 200),
    taylor_seeds=2,
)
#: The quick targets at the least cost (the test suite's): one Dense layer without a
#: bias (one leaf), one seed.
TINY = dataclasses.replace(
    QUICK,
    mlp_widths=(80, 100),
    central_es=(1e-6,),
    complex_es=(1e-10,),
    seeds=1,
    exhaustive_n=500,
    hvp_widths=(80, 100),
    taylor_seeds=1,
)

#: Target thresholds (stated for the full sizes).
T_FRESH_S = 60.0
T_WARM_S = 20.0
T_GPT_S = 30.0
T_CENTRAL_E = 1e-6
T_COMPLEX_E = 1e-10
T_SHARE = 0.02
T_FLOAT32_ERROR = 1e-3
T_LOC_S = 5.0
T_EXH_S = 30.0
T_EXH_MIB = 500.0
T_TRANSPOSE = 1e-13
T_HVP_S = 10.0
T_HVP_ERROR = 1e-4
T_TAYLOR_GOOD = (2.0, 0.05)
T_TAYLOR_BAD = (1.0, 0.2)


# ------------------------------------------------------------------ measurement


@contextlib.contextmanager
def compile_seconds() -> Iterator[list[float]]:
    """Seconds JAX spends tracing, lowering and compiling inside the block.

    Yields:
      A one-element list holding the running total.
    """
    total = [0.0]

    def listener(event: str, duration_secs: float, **_: str | int) -> None:
        if event in _COMPILE_EVENTS:
            total[0] += duration_secs

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield total
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def timed_check(f: Callable[..., Any], *args: Any, **kw: Any) -> dict[str, Any]:
    """``check_grads(f, *args, **kw)``, timed: ``{"report", "s", "compile_s"}``."""
    with compile_seconds() as comp:
        t0 = time.perf_counter()
        report = check_grads(f, *args, **kw)
        s = time.perf_counter() - t0
    return {"report": report, "s": s, "compile_s": comp[0]}


def _row_text(r: Any) -> str:
    return f"{r.path or '(arg)'}: {r.check}"


def summarize(report: Any) -> dict[str, Any]:
    """A report as plain data: verdicts, directions per leaf, transpose rows."""
    first = [r for r in report.rows if r.check.startswith("jax.grad vs ")]
    # A leaf whose gradient is zero within rounding (detectable 0: the key bias of
    # attention, zero by softmax shift invariance) has no relative error to speak
    # of: it is reported by its absolute discrepancy instead.
    t_all = [r for r in report.rows if r.check == "jvp vs jax.grad"]
    transpose = [r for r in t_all if r.detectable != 0.0]
    zero = [r for r in t_all if r.detectable == 0.0]
    worst_t = max(transpose, key=lambda r: r.max_rel, default=None)
    return {
        "ok": bool(report.ok),
        "rows": len(report.rows),
        "fail": [_row_text(r) for r in report.failures()],
        "noisy": [_row_text(r) for r in report.noisy()],
        "fail_records": [dataclasses.asdict(r) for r in report.failures()],
        "directions": {r.path: r.probes for r in first if r.mode == "directional"},
        "modes": sorted({r.mode for r in report.rows}),
        "methods": sorted({r.method for r in report.rows}),
        "transpose_max_rel": worst_t.max_rel if worst_t else None,
        "transpose_worst": _row_text(worst_t) if worst_t else None,
        "transpose_verdicts": sorted({r.verdict for r in t_all}),
        "transpose_zero_leaves": [r.path for r in zero],
        "transpose_zero_max_abs": max((r.max_abs for r in zero), default=None),
        "transpose_top": [
            [_row_text(r), r.max_rel, r.verdict, r.detectable]
            for r in sorted(transpose, key=lambda r: -r.max_rel)[:3]
        ],
        "notes": list(report.notes),
    }


def _directions_text(dirs: dict[str, int]) -> str:
    counts = sorted(set(dirs.values()))
    if not counts:
        return "no directional leaves"
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{span} directions per leaf ({len(dirs)} leaves)"


def _target(
    tid: str, name: str, value: float, unit: str, text: str, target: str, met: bool
) -> dict[str, Any]:
    return {
        "id": tid,
        "name": name,
        "value": float(value),
        "unit": unit,
        "figure": text,
        "target": target,
        "met": bool(met),
    }


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


# ------------------------------------------------------------------------- MLP


def mlp_problem(
    widths: tuple[int, ...], batch: int, seed: int = 0, bias: bool = True
) -> tuple[Callable[[Any], jax.Array], Any]:
    """``(loss, params)``: Dense + tanh layers, mean softmax cross-entropy, float64."""
    layers: list[jaxnet.Layer] = []
    for w in widths[1:-1]:
        layers += [jaxnet.Dense(w, use_bias=bias), jaxnet.Tanh()]
    layers.append(jaxnet.Dense(widths[-1], use_bias=bias))
    model = jaxnet.serial(*layers)
    _, params = model.init(jax.random.key(seed), (None, widths[0]))
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((batch, widths[0])), jnp.float64)
    y = jnp.asarray(rng.integers(0, widths[-1], batch), jnp.int32)

    def loss(p: Any) -> jax.Array:
        logits = model.apply(p, x)
        return jnp.mean(losses.softmax_cross_entropy_with_integer_labels(logits, y))

    return loss, params


def n_params(tree: Any) -> int:
    return int(sum(math.prod(jnp.shape(a)) for a in jax.tree.leaves(tree)))


def fresh_mlp(widths: tuple[int, ...], batch: int, bias: bool = True) -> dict[str, Any]:
    """The child of target 1a: build the MLP, check it once, return what it saw."""
    t0 = time.perf_counter()
    loss, params = mlp_problem(widths, batch, bias=bias)
    jax.block_until_ready(params)
    build = time.perf_counter() - t0
    run = timed_check(loss, params, modes=("rev", "fwd"))
    return {
        "build_s": build,
        "check_s": run["s"],
        "compile_s": run["compile_s"],
        "n_params": n_params(params),
        **summarize(run["report"]),
    }


def _child(args: list[str], timeout: float = 900.0) -> tuple[dict[str, Any], float]:
    """Run ``python -m jaxnet.bench.verify ARGS`` fresh; its JSON and the wall seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run(  # jaxnet is installed: any directory will do
        [sys.executable, "-m", "jaxnet.bench.verify", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - t0
    for line in proc.stdout.splitlines():
        if line.startswith(_JSON_TAG):
            return json.loads(line[len(_JSON_TAG) :]), wall
    raise RuntimeError(
        f"jaxnet.bench.verify {' '.join(args)}: exit {proc.returncode}, no result; "
        f"stderr: {proc.stderr[-2000:]}"
    )


def mlp_targets(cfg: Config, say: Callable[[str], None]) -> dict[str, Any]:
    """Target 1: the MLP in a fresh process, then twice in this one."""
    widths = ",".join(map(str, cfg.mlp_widths))
    say(f"  MLP {widths} in a fresh process ...")
    try:
        bias = [] if cfg.mlp_bias else ["--no-bias"]
        fresh, wall = _child(
            ["--fresh-mlp", widths, "--batch", str(cfg.mlp_batch), *bias]
        )
        fresh["wall_s"] = wall
    except Exception as e:  # noqa: BLE001 - reported as a result
        fresh = {"error": _error(e), "wall_s": math.inf}
    loss, params = mlp_problem(cfg.mlp_widths, cfg.mlp_batch, bias=cfg.mlp_bias)
    jax.block_until_ready(params)
    say("  MLP in this process, first call ...")
    first = timed_check(loss, params, modes=("rev", "fwd"))
    say(f"  MLP first call {first['s']:.1f} s; warm call ...")
    warm = timed_check(loss, params, modes=("rev", "fwd"))
    say(f"  MLP warm call {warm['s']:.1f} s")
    return {
        "widths": list(cfg.mlp_widths),
        "batch": cfg.mlp_batch,
        "n_params": n_params(params),
        "fresh": fresh,
        "first_s": first["s"],
        "first_compile_s": first["compile_s"],
        "warm_s": warm["s"],
        "warm_compile_s": warm["compile_s"],
        "first": summarize(first["report"]),
        "warm": summarize(warm["report"]),
    }


# ------------------------------------------------------------------------- GPT


def _tiny_gpt() -> Any:
    """``examples/tiny_gpt.py``'s data and model, as shipped in the package."""
    from . import _tiny_gpt

    return _tiny_gpt


def gpt_problem(
    cfg: Config,
) -> tuple[Callable[..., jax.Array], Any, jax.Array, jax.Array]:
    """``(loss, params, ids, labels)``: ``examples/tiny_gpt.py``'s model in float64."""
    ex = _tiny_gpt()
    assert cfg.gpt is not None
    width, depth, heads, seq = cfg.gpt
    text = ex.load_text()
    vocab = ex.make_vocab(text)
    ids = ex.encode(text, vocab)
    model = ex.make_model(len(vocab), width, depth, heads, seq)
    _, params = model.init(jax.random.key(0), (None, seq))
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    starts = ex.eval_starts(len(ids), seq, cfg.gpt_batch)
    xs, ys = ex.windows(ids, starts, seq)

    def loss(p: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        logits = model.apply(p, x, train=False)
        return jnp.mean(ex.char_loss(logits, y))

    return loss, params, jnp.asarray(xs, jnp.int32), jnp.asarray(ys, jnp.int32)


def gpt_target(cfg: Config, say: Callable[[str], None]) -> dict[str, Any]:
    """Target 2: the tiny GPT, rev + fwd, the token ids outside ``argnums``."""
    assert cfg.gpt is not None  # the caller skips target 2 without a GPT
    loss, params, x, y = gpt_problem(cfg)
    say(f"  tiny GPT {cfg.gpt}, {n_params(params)} parameters ...")
    run = timed_check(loss, params, x, y, argnums=0, modes=("rev", "fwd"))
    say(f"  tiny GPT check {run['s']:.1f} s")
    return {
        "config": dict(zip(("width", "depth", "heads", "seq"), cfg.gpt)),
        "batch": cfg.gpt_batch,
        "n_params": n_params(params),
        "leaves": len(jax.tree.leaves(params)),
        "s": run["s"],
        "compile_s": run["compile_s"],
        **summarize(run["report"]),
    }


# ------------------------------------------------------------------- detection


def detection_problem(cfg: Config) -> tuple[Callable[[Any], jax.Array], Any]:
    """``f(p) = sum(tanh(x @ w + b) * c)``; ``x`` is large so that ``b`` holds a small
    share of the gradient norm (measured and reported)."""
    rng = np.random.default_rng(1234)
    k, m = cfg.detect_w
    x = jnp.asarray(50.0 * rng.standard_normal((16, k)), jnp.float64)
    c = jnp.asarray(rng.standard_normal(m), jnp.float64)
    p = {
        "w": jnp.asarray(
            rng.standard_normal((k, m)) / (50.0 * math.sqrt(k)), jnp.float64
        ),
        "b": jnp.asarray(0.1 * rng.standard_normal(cfg.detect_b), jnp.float64),
    }

    def f(p: Any) -> jax.Array:
        return jnp.sum(jnp.tanh(x @ p["w"] + p["b"]) * c)

    return f, p


def scaled_grad(
    f: Callable[[Any], jax.Array], key: str, e: float
) -> Callable[[Any], jax.Array]:
    """``f`` whose reverse-mode gradient of leaf ``key`` is scaled by ``1 + e``."""
    grad = jax.grad(f)

    def scaled(p: Any) -> jax.Array:
        return f(p)

    scaled.__name__ = f"f_{key}_scaled_{e:g}"  # custom_vjp takes the wrapped name
    h = jax.custom_vjp(scaled)

    def fwd(p: Any) -> tuple[jax.Array, Any]:
        return f(p), p

    def bwd(p: Any, ct: jax.Array) -> tuple[Any]:
        g = dict(grad(p))
        g[key] = g[key] * (1.0 + e)
        return (jax.tree.map(lambda a: ct * a, g),)

    h.defvjp(fwd, bwd)
    return h


def _one_detection(
    f: Callable[[Any], jax.Array], p: Any, method: str, seed: int
) -> dict[str, Any]:
    """One check: caught on ``b``, FAIL rows elsewhere, ``b``'s detectable bound."""
    try:
        rep = check_grads(f, p, method=method, seed=seed)
    except Exception as e:  # noqa: BLE001 - a crash of the checker is a result
        return {"error": _error(e), "caught": False, "false_rows": [], "noisy": []}
    fails = rep.failures()
    b_row = [r for r in rep.rows if r.path == "b" and r.check.startswith("jax.grad")]
    return {
        "caught": any(r.path == "b" for r in fails),
        "failed_rows": [_row_text(r) for r in fails],
        "false_rows": [_row_text(r) for r in fails if r.path != "b"],
        "noisy": [_row_text(r) for r in rep.noisy()],
        "detectable_b": b_row[0].detectable if b_row else None,
        "probes_b": b_row[0].probes if b_row else None,
        "method": b_row[0].method if b_row else None,
    }


def detection_target(cfg: Config, say: Callable[[str], None]) -> dict[str, Any]:
    """Target 3: the ladder of errors per method, then seeds at the target error."""
    f, p = detection_problem(cfg)
    g = jax.grad(f)(p)
    norm_b = float(jnp.linalg.norm(g["b"]))
    norm = math.sqrt(sum(float(jnp.sum(jnp.square(a))) for a in jax.tree.leaves(g)))
    out: dict[str, Any] = {
        "shapes": {"w": list(cfg.detect_w), "b": [cfg.detect_b]},
        "b_share_of_grad_norm": norm_b / norm,
        "seeds": cfg.seeds,
    }
    for method, es, target in (
        ("central", cfg.central_es, T_CENTRAL_E),
        ("complex", cfg.complex_es, T_COMPLEX_E),
    ):
        say(f"  detection, {method}: e in {', '.join(f'{e:g}' for e in es)} ...")
        ladder = {
            f"{e:g}": _one_detection(scaled_grad(f, "b", e), p, method, 0) for e in es
        }
        caught = [e for e in es if ladder[f"{e:g}"]["caught"]]
        say(f"  detection, {method}: {cfg.seeds} seeds at e = {target:g} ...")
        bad = scaled_grad(f, "b", target)
        # seed 0 at the target error is the ladder's run when the ladder holds it
        at_target = [
            ladder[f"{target:g}"]
            if s == 0 and f"{target:g}" in ladder
            else _one_detection(bad, p, method, s)
            for s in range(cfg.seeds)
        ]
        correct = [_one_detection(f, p, method, s) for s in range(cfg.seeds)]
        errors = sorted(
            {
                d["error"]
                for d in [*ladder.values(), *at_target, *correct]
                if "error" in d
            }
        )
        out[method] = {
            "ladder": ladder,
            "smallest_caught": min(caught) if caught else math.inf,
            "caught_every_larger": bool(caught)
            and all(ladder[f"{e:g}"]["caught"] for e in es if e >= min(caught)),
            "target_e": target,
            "caught_at_target": sum(d["caught"] for d in at_target),
            "false_rows_at_target": sorted(
                {r for d in at_target for r in d["false_rows"]}
            ),
            "false_alarms": sum(len(d["false_rows"]) for d in correct),
            "false_alarm_rows": sorted({r for d in correct for r in d["false_rows"]}),
            "noisy_correct": sum(len(d["noisy"]) for d in correct),
            "detectable_b": [d.get("detectable_b") for d in at_target],
            "errors": errors,
        }
    return out


# --------------------------------------------------------------------- float32


def float32_target() -> dict[str, Any]:
    """Target 4: ``sum(log1p(w^2))`` on a float32 leaf; right, then 1e-3 wrong."""
    rng = np.random.default_rng(4)
    p = {"w": jnp.asarray(rng.standard_normal((256, 128)), jnp.float32)}

    def f(p: Any) -> jax.Array:
        return jnp.sum(jnp.log1p(p["w"] ** 2))

    def analytic(p: Any) -> Any:
        w = p["w"]
        return {"w": 2 * w / (1 + w**2)}

    good = check_grads(f, p, analytic=analytic)

    @jax.custom_vjp
    def wrong(p: Any) -> jax.Array:
        return f(p)

    def fwd(p: Any) -> tuple[jax.Array, Any]:
        return f(p), p

    def bwd(p: Any, ct: jax.Array) -> tuple[Any]:
        w = p["w"]
        return ({"w": ct * (2 * w / (1 + w**2)) * (1.0 + T_FLOAT32_ERROR)},)

    wrong.defvjp(fwd, bwd)
    bad = check_grads(wrong, p)
    return {
        "shape": [256, 128],
        "good": summarize(good),
        "bad": summarize(bad),
        "bad_error": T_FLOAT32_ERROR,
    }


# ---------------------------------------------------------------- localisation


def localisation_target(cfg: Config) -> dict[str, Any]:
    """Target 5: one wrong element; the row's ``worst_index`` and the bisection cost."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal(cfg.loc_shape)
    w[cfg.loc_index] = 1.0  # its gradient element is 2w/(1+w^2) = 1 exactly
    p = {"w": jnp.asarray(w, jnp.float64)}
    flat = int(np.ravel_multi_index(cfg.loc_index, cfg.loc_shape))
    delta = cfg.loc_error

    def f(p: Any) -> jax.Array:
        return jnp.sum(jnp.log1p(p["w"] ** 2))

    @jax.custom_vjp
    def wrong(p: Any) -> jax.Array:
        return f(p)

    def fwd(p: Any) -> tuple[jax.Array, Any]:
        return f(p), p

    def bwd(p: Any, ct: jax.Array) -> tuple[Any]:
        x = p["w"]
        g = (2 * x / (1 + x**2)).reshape(-1)
        g = g.at[flat].multiply(1.0 + delta)
        return ({"w": ct * g.reshape(x.shape)},)

    wrong.defvjp(fwd, bwd)
    g = 2 * w / (1 + w**2)
    n = int(np.prod(cfg.loc_shape))
    run = timed_check(wrong, p, mode="directional")
    no_locate = timed_check(wrong, p, mode="directional", locate=False)
    rep = run["report"]
    fails = rep.failures()
    evals = [int(m.group(1)) for note in rep.notes for m in [_BISECT.search(note)] if m]
    return {
        "shape": list(cfg.loc_shape),
        "injected_index": list(cfg.loc_index),
        "relative_error": delta,
        "error_share_of_grad_norm": delta
        * abs(g[cfg.loc_index])
        / float(np.linalg.norm(g)),
        "failed_rows": [_row_text(r) for r in fails],
        "worst_index": [list(r.worst_index) for r in fails],
        "evaluations": evals,
        "bound": 2 * math.ceil(math.log2(n)) + 2,
        "s": run["s"],
        "compile_s": run["compile_s"],
        "s_without_locate": no_locate["s"],
        "notes": list(rep.notes),
    }


# ------------------------------------------------------------------ exhaustive


def _proc_status(key: str) -> float | None:
    """``/proc/self/status`` entry ``key`` in bytes (Linux), else ``None``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        return None
    return None


def _maxrss_bytes() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(r) * (1.0 if sys.platform == "darwin" else 1024.0)


def exhaustive_child(n: int) -> dict[str, Any]:
    """The child of target 6: the memory baseline, then the exhaustive check."""
    rng = np.random.default_rng(6)
    # A dense layer's weight (the "today" figure is a 100k-parameter MLP):
    # exhaustive mode evaluates f once per element, so the cost is n evaluations of
    # f, and here f costs O(n) (a batch-8 matmul with the leaf).
    fan_in, fan_out = n // 100, 100
    w = jnp.asarray(rng.standard_normal((fan_in, fan_out)) / fan_in**0.5, jnp.float64)
    xb = jnp.asarray(rng.standard_normal((8, fan_in)), jnp.float64)
    jax.block_until_ready((w, xb))
    rss0, maxrss0 = _proc_status("VmRSS"), _maxrss_bytes()

    def f(w: jax.Array) -> jax.Array:
        return jnp.mean(jnp.tanh(xb @ w) ** 2)

    run = timed_check(f, w, mode="exhaustive")
    hwm, maxrss1 = _proc_status("VmHWM"), _maxrss_bytes()
    if hwm is not None and rss0 is not None:
        growth, how = hwm - rss0, "VmHWM at the end - VmRSS after import + inputs"
    else:  # ru_maxrss survives exec (Linux): a parent's peak can hide the child's
        growth, how = maxrss1 - maxrss0, "ru_maxrss at the end - ru_maxrss at baseline"
    return {
        "n": n,
        "s": run["s"],
        "compile_s": run["compile_s"],
        "rss_baseline_bytes": rss0,
        "vmhwm_bytes": hwm,
        "maxrss_baseline_bytes": maxrss0,
        "maxrss_bytes": maxrss1,
        "growth_bytes": growth,
        "memory_method": how,
        **summarize(run["report"]),
    }


def exhaustive_target(cfg: Config) -> dict[str, Any]:
    """Target 6, in a fresh process (its memory is the check's alone)."""
    try:
        out, wall = _child(["--exhaustive", str(cfg.exhaustive_n)])
    except Exception as e:  # noqa: BLE001 - reported as a result
        return {"error": _error(e), "s": math.inf, "growth_bytes": None}
    out["wall_s"] = wall
    return out


# ---------------------------------------------------------------- second order


@jax.custom_jvp
def _cos_wrong_derivative(x: jax.Array) -> jax.Array:
    """``cos(x)`` (exact values) whose derivative is ``-sin(x) (1 + 1e-4)``."""
    return jnp.cos(x)


@_cos_wrong_derivative.defjvp
def _cos_wrong_derivative_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return jnp.cos(x), -jnp.sin(x) * (1.0 + T_HVP_ERROR) * t


@jax.custom_jvp
def sum_sin_wrong_hessian(x: jax.Array) -> jax.Array:
    """``sum(sin(x))`` with an exact gradient but a Hessian 1e-4 relatively wrong.

    Its JVP rule returns ``<cos(x), t>`` with ``cos`` computed by
    :func:`_cos_wrong_derivative`, whose *values* are exact: the gradient
    (the rule, transposed) is ``cos(x)`` everywhere. Differentiating the gradient
    goes through ``_cos_wrong_derivative``'s own rule, so autodiff's Hessian is
    ``diag(-sin(x)) (1 + 1e-4)``, while finite differences of the gradient (which
    only use its values) see the true ``diag(-sin(x))``.
    """
    return jnp.sum(jnp.sin(x))


@sum_sin_wrong_hessian.defjvp
def _sum_sin_wrong_hessian_jvp(primals: Any, tangents: Any) -> Any:
    (x,), (t,) = primals, tangents
    return jnp.sum(jnp.sin(x)), jnp.sum(_cos_wrong_derivative(x) * t)


def hvp_target(cfg: Config, say: Callable[[str], None]) -> dict[str, Any]:
    """Target 8: ``order=2`` on the ~1M MLP, timed; the wrong Hessian over seeds."""
    loss, params = mlp_problem(cfg.hvp_widths, cfg.hvp_batch, bias=cfg.mlp_bias)
    jax.block_until_ready(params)
    say(f"  order=2 on the MLP {cfg.hvp_widths} ({n_params(params)} parameters) ...")
    run = timed_check(loss, params, order=2)
    say(f"  order=2 check {run['s']:.1f} s; wrong Hessian, {cfg.seeds} seeds ...")
    rng = np.random.default_rng(8)
    x = {"w": jnp.asarray(rng.standard_normal(cfg.hvp_bad_shape), jnp.float64)}

    def bad(p: Any) -> jax.Array:
        return sum_sin_wrong_hessian(p["w"])

    def good(p: Any) -> jax.Array:
        return jnp.sum(jnp.sin(p["w"]))

    seeds = []
    for s in range(cfg.seeds):
        entry: dict[str, Any] = {"seed": s}
        for label, fn in (("bad", bad), ("good", good)):
            try:
                rep = check_grads(fn, x, order=2, seed=s)
            except Exception as e:  # noqa: BLE001 - a crash is a result
                entry[label] = {"error": _error(e)}
                continue
            hvp = [r for r in rep.rows if r.check.startswith("hvp ")]
            first = [r for r in rep.rows if not r.check.startswith("hvp ")]
            entry[label] = {
                "hvp_fail": [r.check for r in hvp if r.verdict == "FAIL"],
                "first_order_fail": [r.check for r in first if r.verdict == "FAIL"],
                "noisy": [_row_text(r) for r in rep.noisy()],
                "hvp_detectable": max(
                    (r.detectable for r in hvp if r.method.startswith("central")),
                    default=math.inf,
                ),
                "hvp_probes": max((r.probes for r in hvp), default=0),
            }
        seeds.append(entry)
    return {
        "widths": list(cfg.hvp_widths),
        "n_params": n_params(params),
        "s": run["s"],
        "compile_s": run["compile_s"],
        **summarize(run["report"]),
        "bad_shape": list(cfg.hvp_bad_shape),
        "bad_error": T_HVP_ERROR,
        "seeds": seeds,
    }


# ---------------------------------------------------------------------- Taylor


def _taylor() -> Callable[..., Any] | None:
    fn = getattr(jaxnet.testing, "taylor_test", None)
    if fn is None:
        try:
            from jaxnet.testing._taylor import taylor_test as fn
        except ImportError:
            return None
    return fn


def taylor_target(cfg: Config) -> dict[str, Any]:
    """Target 9: the observed order for the right gradient and a 1e-2 wrong one."""
    taylor = _taylor()
    if taylor is None:
        return {"error": "jaxnet.testing.taylor_test is not importable"}
    f, p = detection_problem(cfg)
    wrong = jax.tree.map(lambda a: a * 1.01, jax.grad(f)(p))
    out: dict[str, Any] = {"good": [], "bad": []}
    for s in range(cfg.taylor_seeds):
        for label, grad in (("good", None), ("bad", wrong)):
            try:
                res = taylor(f, p, argnums=0, grad=grad, seed=s)
            except Exception as e:  # noqa: BLE001 - a crash is a result
                out[label].append({"seed": s, "error": _error(e), "order": None})
                continue
            out[label].append(
                {
                    "seed": s,
                    "order": res.order,
                    "window": list(res.window) if res.window else None,
                    "ok": bool(res.ok),
                    "message": res.message,
                }
            )
    return out


# ---------------------------------------------------------------------- targets


def _orders(entries: list[dict[str, Any]]) -> list[float]:
    return [e["order"] if e.get("order") is not None else math.nan for e in entries]


def _t_mlp(r: dict[str, Any]) -> list[dict[str, Any]]:
    m = r["mlp"]
    fresh = m["fresh"]
    fw = fresh.get("wall_s", math.inf)
    ftext = f"{fw:.1f} s" + (
        f" (build {fresh['build_s']:.1f} s, check {fresh['check_s']:.1f} s, "
        f"compile {fresh['compile_s']:.1f} s)"
        if "check_s" in fresh
        else f" ({fresh.get('error')})"
    )
    label = f"MLP {m['n_params'] / 1e6:.1f}M rev+fwd"
    fails = sorted(set(m["first"]["fail"] + m["warm"]["fail"] + fresh.get("fail", [])))
    noisy = sorted(set(m["first"]["noisy"] + m["warm"]["noisy"]))
    return [
        _target("1a", f"{label}, fresh process", fw, "s", ftext,
                f"<= {T_FRESH_S:g} s", fw <= T_FRESH_S),
        _target(
            "1b", f"{label}, warm (2nd call)", m["warm_s"], "s",
            f"{m['warm_s']:.1f} s (compile {m['warm_compile_s']:.1f} s; first call "
            f"{m['first_s']:.1f} s)",
            f"<= {T_WARM_S:g} s", m["warm_s"] <= T_WARM_S,
        ),
        _target(
            "1c", f"{label} passes", len(fails), "FAIL rows",
            f"{len(fails)} FAIL, {len(noisy)} noisy of {m['warm']['rows']} rows; "
            f"{_directions_text(m['warm']['directions'])}"
            + (f"; FAIL: {', '.join(fails)}" if fails else ""),
            "0 FAIL", not fails and "error" not in fresh,
        ),
    ]  # fmt: skip


def _t_gpt(r: dict[str, Any]) -> list[dict[str, Any]]:
    g = r["gpt"]
    if g is None:
        return []
    label = f"tiny GPT {g['n_params'] / 1e3:.0f}k rev+fwd"
    return [
        _target(
            "2a", f"{label}, time", g["s"], "s",
            f"{g['s']:.1f} s (compile {g['compile_s']:.1f} s, {g['leaves']} leaves)",
            f"<= {T_GPT_S:g} s", g["s"] <= T_GPT_S,
        ),
        _target(
            "2b", f"{label} passes", len(g["fail"]), "FAIL rows",
            f"{len(g['fail'])} FAIL, {len(g['noisy'])} noisy of {g['rows']} rows"
            + (f"; FAIL: {', '.join(g['fail'])}" if g["fail"] else ""),
            "0 FAIL", not g["fail"],
        ),
    ]  # fmt: skip


def _t_detection(r: dict[str, Any]) -> list[dict[str, Any]]:
    d = r["detection"]
    share = d["b_share_of_grad_norm"]
    out = []
    for tid, method, t_e in (
        ("3a", "central", T_CENTRAL_E),
        ("3b", "complex", T_COMPLEX_E),
    ):
        dm = d[method]
        det = [x for x in dm["detectable_b"] if x is not None]
        err = f"; errors: {'; '.join(dm['errors'])}" if dm["errors"] else ""
        sc = dm["smallest_caught"]
        out.append(_target(
            tid, f"detection {method}: smallest e caught (b: {100 * share:.2f}% of norm)",
            sc, "relative error",
            f"{sc:g}" + ("" if dm["caught_every_larger"] else " (not every larger e)")
            + (f"; b row detectable {min(det):.1e}-{max(det):.1e}" if det else "") + err,
            f"<= {t_e:g} (b share <= {T_SHARE:g})",
            sc <= t_e and share <= T_SHARE,
        ))  # fmt: skip
    for tid, method in (("3c", "central"), ("3d", "complex")):
        dm = d[method]
        rate = dm["caught_at_target"] / max(1, d["seeds"])
        wrong = dm["false_rows_at_target"]
        out.append(_target(
            tid, f"detection {method}: catch rate at e = {dm['target_e']:g}",
            100 * rate, "%",
            f"{dm['caught_at_target']}/{d['seeds']} seeds on row b"
            + (f"; other rows FAIL: {', '.join(wrong)}" if wrong else ""),
            "100%", rate == 1.0 and not wrong,
        ))  # fmt: skip
    fa = d["central"]["false_alarms"] + d["complex"]["false_alarms"]
    rows = sorted(
        set(d["central"]["false_alarm_rows"] + d["complex"]["false_alarm_rows"])
    )
    noisy = d["central"]["noisy_correct"] + d["complex"]["noisy_correct"]
    crashed = bool(d["central"]["errors"] or d["complex"]["errors"])
    out.append(_target(
        "3e", "detection: false alarms on the correct f", fa, "FAIL rows",
        f"{fa} over {d['seeds']} seeds x 2 methods"
        + (f" ({', '.join(rows)})" if rows else "")
        + f"; noisy rows: {noisy}"
        + ("; some checks crashed (3a/3b)" if crashed else ""),
        "0", fa == 0 and not crashed,
    ))  # fmt: skip
    return out


def _t_float32(r: dict[str, Any]) -> list[dict[str, Any]]:
    f32 = r["float32"]
    good, bad = f32["good"], f32["bad"]
    return [
        _target(
            "4a", "float32 log1p (256x128), analytic: passes",
            len(good["fail"]) + len(good["noisy"]), "FAIL+noisy rows",
            f"{len(good['fail'])} FAIL, {len(good['noisy'])} noisy of {good['rows']} rows"
            + (f" ({', '.join(good['fail'] + good['noisy'])})" if not good["ok"] else ""),
            "0 FAIL, 0 noisy", not good["fail"] and not good["noisy"],
        ),
        _target(
            "4b", f"float32: {f32['bad_error']:g} relative error caught",
            len(bad["fail"]), "FAIL rows",
            f"{len(bad['fail'])} FAIL"
            + (f" ({', '.join(bad['fail'])})" if bad["fail"] else ""),
            ">= 1 FAIL", bool(bad["fail"]),
        ),
    ]  # fmt: skip


def _t_localisation(r: dict[str, Any]) -> list[dict[str, Any]]:
    loc = r["localisation"]
    want, found = loc["injected_index"], loc["worst_index"]
    shape = "x".join(map(str, loc["shape"]))
    ev = max(loc["evaluations"]) if loc["evaluations"] else math.inf
    return [
        _target(
            "5a", f"localisation {shape}: worst_index", float(found == [want]), "match",
            f"{found if found else 'no FAIL row'} vs injected {want} "
            f"(error {loc['relative_error']:g} of the element, "
            f"{loc['error_share_of_grad_norm']:.1e} of the leaf's norm)",
            "== injected index", found == [want],
        ),
        _target(
            "5b", "localisation: evaluations", ev, "evaluations",
            f"{ev:g}" if loc["evaluations"] else "no bisection note",
            f"<= {loc['bound']}", ev <= loc["bound"],
        ),
        _target(
            "5c", "localisation: whole check time", loc["s"], "s",
            f"{loc['s']:.2f} s (without locating {loc['s_without_locate']:.2f} s: "
            f"bisection ~{loc['s'] - loc['s_without_locate']:.2f} s)",
            f"<= {T_LOC_S:g} s", loc["s"] <= T_LOC_S,
        ),
    ]  # fmt: skip


def _t_exhaustive(r: dict[str, Any]) -> list[dict[str, Any]]:
    ex = r["exhaustive"]
    etext = f"{ex['s']:.1f} s" + (
        f" (compile {ex['compile_s']:.1f} s; {', '.join(ex['methods'])}; "
        f"{len(ex['fail'])} FAIL, {len(ex['noisy'])} noisy)"
        if "error" not in ex
        else f" ({ex['error']})"
    )
    gb = ex.get("growth_bytes")
    mib = math.inf if gb is None else gb / 2**20
    mtext = (
        f"{mib:.1f} MiB ({ex['memory_method']})" if gb is not None else "not measured"
    )
    return [
        _target(
            "6a", f"exhaustive, {r['config']['exhaustive_n']} elements: time",
            ex["s"], "s", etext, f"<= {T_EXH_S:g} s",
            ex["s"] <= T_EXH_S and "error" not in ex,
        ),
        _target(
            "6b", "exhaustive: peak memory growth", mib, "MiB", mtext,
            f"< {T_EXH_MIB:g} MiB", mib < T_EXH_MIB,
        ),
    ]  # fmt: skip


def _t_transpose(r: dict[str, Any]) -> list[dict[str, Any]]:
    cands = [
        (s["transpose_max_rel"], f"{src}: {s['transpose_worst']}")
        for src, s in (("MLP", r["mlp"]["warm"]), ("GPT", r["gpt"]))
        if s is not None and s["transpose_max_rel"] is not None
    ]
    worst = max(cands, default=(math.inf, "no jvp vs jax.grad rows"))
    where = " + ".join(c[1].split(":")[0] for c in cands)
    top = sorted(
        (
            (rel, f"{src}: {txt}", verdict)
            for src, s in (("MLP", r["mlp"]["warm"]), ("GPT", r["gpt"]))
            if s is not None
            for txt, rel, verdict, _ in s.get("transpose_top", [])
        ),
        key=lambda t: -t[0],
    )
    verdict = f" (row verdict {top[0][2]})" if top else ""
    runner = f"; next {top[1][0]:.1e} at {top[1][1]}" if len(top) > 1 else ""
    zeros = [
        (len(s.get("transpose_zero_leaves", [])), s.get("transpose_zero_max_abs"))
        for s in (r["mlp"]["warm"], r["gpt"])
        if s is not None
    ]
    n_zero = sum(z[0] for z in zeros)
    if n_zero:
        worst_abs = max(z[1] for z in zeros if z[1] is not None)
        runner += (
            f"; {n_zero} leaves with a zero gradient (rel. undefined) excluded, "
            f"their max abs {worst_abs:.1e}"
        )
    return [
        _target(
            "7", f"transpose identity (jvp vs jax.grad), {where}", worst[0], "max rel",
            f"{worst[0]:.1e} at {worst[1]}{verdict}{runner}",
            f"<= {T_TRANSPOSE:g}", worst[0] <= T_TRANSPOSE,
        )
    ]  # fmt: skip


def _t_hvp(r: dict[str, Any]) -> list[dict[str, Any]]:
    h = r["hvp"]
    seeds = h["seeds"]
    n = len(seeds)
    caught = sum(bool(s["bad"].get("hvp_fail")) for s in seeds)
    dets = [s["bad"].get("hvp_detectable", math.inf) for s in seeds]
    first_bad = sum(bool(s["bad"].get("first_order_fail")) for s in seeds)
    good_fail = sum(
        len(s["good"].get("hvp_fail", [])) + len(s["good"].get("first_order_fail", []))
        for s in seeds
    )
    alarm_seeds = [
        s["seed"]
        for s in seeds
        if s["good"].get("hvp_fail") or s["good"].get("first_order_fail")
    ]
    errs = sorted(
        {s[k]["error"] for s in seeds for k in ("bad", "good") if "error" in s[k]}
    )
    return [
        _target(
            "8a", f"order=2 MLP {h['n_params'] / 1e6:.2f}M: time", h["s"], "s",
            f"{h['s']:.1f} s (compile {h['compile_s']:.1f} s; {len(h['fail'])} FAIL, "
            f"{len(h['noisy'])} noisy of {h['rows']} rows)"
            + (f"; FAIL: {', '.join(h['fail'])}" if h["fail"] else ""),
            f"<= {T_HVP_S:g} s", h["s"] <= T_HVP_S,
        ),
        _target(
            "8b", f"wrong Hessian ({h['bad_error']:g} rel.) caught",
            100 * caught / max(1, n), "% of seeds",
            f"{caught}/{n} seeds FAIL an hvp row; hvp detectable <= {max(dets):.1e}; "
            f"first-order FAIL on it: {first_bad}/{n}; FAIL on the correct sum(sin): "
            f"{good_fail}"
            + (f" rows (seeds {alarm_seeds})" if alarm_seeds else "")
            + (f"; errors: {'; '.join(errs)}" if errs else ""),
            f"100% (detectable <= {T_HVP_ERROR:g}, miss 1e-6)",
            caught == n and max(dets) <= T_HVP_ERROR and not errs and good_fail == 0,
        ),
    ]  # fmt: skip


def _t_taylor(r: dict[str, Any]) -> list[dict[str, Any]]:
    t = r["taylor"]
    out = []
    for tid, key, name, (centre, width) in (
        ("9a", "good", "correct", T_TAYLOR_GOOD),
        ("9b", "bad", "1e-2 wrong", T_TAYLOR_BAD),
    ):
        if "error" in t:
            out.append(_target(tid, f"Taylor test, {name} gradient: order", math.nan,
                               "order", t["error"], f"{centre:g} +- {width:g}", False))  # fmt: skip
            continue
        orders = _orders(t[key])
        finite = [o for o in orders if math.isfinite(o)]
        val = float(np.median(finite)) if finite else math.nan
        met = len(finite) == len(orders) and all(
            abs(o - centre) <= width for o in orders
        )
        text = ", ".join("none" if not math.isfinite(o) else f"{o:.2f}" for o in orders)
        out.append(_target(
            tid, f"Taylor test, {name} gradient: order", val, "order",
            f"{text} over {len(orders)} seeds", f"{centre:g} +- {width:g}", met,
        ))  # fmt: skip
    return out


#: ``(target ids, section, builder)`` in table order.
_TARGETS: tuple[
    tuple[str, str, Callable[[dict[str, Any]], list[dict[str, Any]]]], ...
] = (
    ("1a-1c", "mlp", _t_mlp),
    ("2a-2b", "gpt", _t_gpt),
    ("3a-3e", "detection", _t_detection),
    ("4a-4b", "float32", _t_float32),
    ("5a-5c", "localisation", _t_localisation),
    ("6a-6b", "exhaustive", _t_exhaustive),
    ("7", "mlp", _t_transpose),
    ("8a-8b", "hvp", _t_hvp),
    ("9a-9b", "taylor", _t_taylor),
)


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The target rows: id, name, value, unit, figure text, target text, met.

    A section that crashed (its result is ``{"error": ...}``) gives one NOT-met row
    saying so, with ``value`` nan.
    """
    out = []
    for ids, section, build in _TARGETS:
        try:
            out += build(r)
        except Exception as e:  # noqa: BLE001 - a crashed section is a result
            why = r.get(section, {}) or {}
            msg = why.get("error") if isinstance(why, dict) else None
            out.append(_target(ids, f"{section}: not measured", math.nan, "",
                               msg or _error(e), "", False))  # fmt: skip
    return out


# ------------------------------------------------------------------------ case


def verify_case(
    quick: bool = False,
    *,
    cfg: Config | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Measure every target (x64 on inside); the result row with ``"targets"``.

    Args:
      quick: the smoke sizes (:data:`QUICK`) instead of :data:`FULL`.
      cfg: explicit sizes (overrides ``quick``).
      say: progress lines.

    Returns:
      ``{"case": "verify", "quick", "config", "mlp", "gpt", "detection", "float32",
      "localisation", "exhaustive", "hvp", "taylor", "targets", "wall_s",
      "persistent_cache"}``; ``targets`` is a list of rows (:func:`targets`).
    """
    cfg = cfg or (QUICK if quick else FULL)
    t0 = time.perf_counter()
    row: dict[str, Any] = {
        "case": NAME,
        "quick": bool(quick),
        "sizes": "full" if cfg == FULL else "quick" if cfg == QUICK else "custom",
        "config": dataclasses.asdict(cfg),
        "dtype": "float64 (float32 in target 4)",
        "x64": True,
        "persistent_cache": jax_option("jax_compilation_cache_dir"),
    }
    sections: list[tuple[str, Callable[[], Any]]] = [
        ("mlp", lambda: mlp_targets(cfg, say)),
        ("gpt", lambda: gpt_target(cfg, say) if cfg.gpt is not None else None),
        ("detection", lambda: detection_target(cfg, say)),
        ("float32", float32_target),
        ("localisation", lambda: localisation_target(cfg)),
        ("exhaustive", lambda: exhaustive_target(cfg)),
        ("hvp", lambda: hvp_target(cfg, say)),
        ("taylor", lambda: taylor_target(cfg)),
    ]
    row["section_s"] = {}
    with jax.enable_x64(True):
        for name, run in sections:
            say(f"  [{name}] ...")
            t = time.perf_counter()
            try:
                row[name] = run()
            except Exception as e:  # noqa: BLE001 - reported as NOT met, with the error
                row[name] = {"error": _error(e)}
                say(f"  [{name}] crashed: {row[name]['error']}")
            row["section_s"][name] = time.perf_counter() - t
    row["targets"] = targets(row)
    row["wall_s"] = time.perf_counter() - t0
    return row


def format_verify(row: dict[str, Any]) -> str:
    """The verify family as a markdown table, one line per target."""
    met = sum(t["met"] for t in row["targets"])
    head = (
        f"### Gradient checker verification targets "
        f"({row.get('sizes', 'full')} sizes, float64)"
    )
    cells = [
        [t["id"], t["name"], t["figure"], t["target"], "met" if t["met"] else "NOT met"]
        for t in row["targets"]
    ]
    lines = [
        head,
        "",
        md_table(["#", "target", "measured", "target", ""], cells),
        "",
        f"{met} of {len(row['targets'])} targets met; family wall time "
        f"{row.get('wall_s', math.nan):.1f} s ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in row.get("section_s", {}).items())
        + ").",
    ]
    if row.get("gpt") is None:
        lines.append("Not measured at these sizes: 2a, 2b (the tiny GPT).")
    if row.get("sizes", "full") != "full":
        lines.append(
            "Smaller sizes: the thresholds are the full-size targets; these figures "
            "only show that each measurement runs."
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------- entry


def main(argv: list[str] | None = None) -> int:
    """``python -m jaxnet.bench.verify``: the family, or one of its child processes."""
    p = argparse.ArgumentParser(prog="python -m jaxnet.bench.verify")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--fresh-mlp", metavar="WIDTHS", help="(child) check the MLP once")
    p.add_argument("--batch", type=int, default=FULL.mlp_batch)
    p.add_argument("--no-bias", action="store_true", help="(child) MLP without biases")
    p.add_argument("--exhaustive", type=int, metavar="N", help="(child) target 6")
    args = p.parse_args(argv)
    if args.fresh_mlp or args.exhaustive:
        jax.config.update("jax_enable_x64", True)
        if args.fresh_mlp:
            widths = tuple(int(w) for w in args.fresh_mlp.split(","))
            out = fresh_mlp(widths, args.batch, bias=not args.no_bias)
        else:
            out = exhaustive_child(args.exhaustive)
        print(_JSON_TAG + json.dumps(out, default=str), flush=True)
        return 0
    row = verify_case(args.quick, say=lambda s: print(s, file=sys.stderr, flush=True))
    print(format_verify(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
