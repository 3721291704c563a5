"""The seed case: logistic regression, 2 features, 100 samples, 100 full-batch SGD epochs.

Implementations, all float32, all running 100 epochs from the same initial parameters:

* ``loop``: ``jax.jit(step)`` of :func:`jaxnet.make_train_step` called once per epoch
  from Python, blocked on at the end of the run.
* ``fused``: one call of ``jax.jit`` around :func:`jaxnet.train_scan` with the *same*
  step function (``shuffle=False``: a permutation of a full batch changes nothing but
  the summation order), all epochs inside one ``lax.scan``.
* ``fused_api``: :func:`jaxnet.train_scan` called as a user would (its own jit plus a
  few small dispatches outside it: key splitting, the step counter); reported, not
  targeted.
* ``numpy``: the gradient written by hand, ``dz = (sigmoid(z) - y) / n``, in NumPy.
* ``torch``: PyTorch eager (autograd and ``torch.optim.SGD``), only where ``torch`` is
  importable; skipped otherwise.

Targets (from the training and benchmark issues): ``fused`` at least 4x faster than
``loop`` per epoch, and 100 fused epochs under 1 ms in steady state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxnet
from jaxnet import losses

from ._timing import compile_times, paired, ratios, summary

N_SAMPLES = 100
N_FEATURES = 2
EPOCHS = 100
LR = 1.0
TARGET_SPEEDUP = 4.0
TARGET_FUSED_S = 1e-3


def seed_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs across ``x1 + x2 = 1`` in the unit square, float32.

    Class 0 is centred at (0.25, 0.25), class 1 at (0.75, 0.75), standard deviation
    0.1 (as in ``examples/seed_single_layer.py``), drawn from a NumPy generator.

    Args:
      seed: seed of ``np.random.default_rng``.

    Returns:
      ``(x, y)`` of shapes ``(100, 2)`` and ``(100, 1)``; ``y`` holds 0.0 and 1.0.

    Example:
      >>> x, y = seed_data(0)
      >>> x.shape, y.shape, x.dtype, sorted(set(y.ravel().tolist()))
      ((100, 2), (100, 1), dtype('float32'), [0.0, 1.0])
    """
    rng = np.random.default_rng(seed)
    y = (rng.random((N_SAMPLES, 1)) < 0.5).astype(np.float32)
    noise = rng.standard_normal((N_SAMPLES, N_FEATURES)).astype(np.float32)
    x = np.float32(0.25) + np.float32(0.5) * y + np.float32(0.1) * noise
    return x.astype(np.float32), y


def _sigmoid_np(z: np.ndarray) -> np.ndarray:
    """Overflow-free float32 sigmoid: ``(1 + tanh(z / 2)) / 2``."""
    half = np.float32(0.5)
    return half * (np.float32(1.0) + np.tanh(half * z))


def numpy_train(
    w: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = EPOCHS,
    lr: float = LR,
) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch SGD on the mean sigmoid cross-entropy, gradient written by hand.

    ``z = x w + b``; ``dL/dz = (sigmoid(z) - y) / n``; ``dw = x^T dz``; ``db = sum dz``.

    Args:
      w, b: initial weights ``(2, 1)`` and bias ``(1,)`` (copied, not modified).
      x, y: the data, float32.
      epochs: number of full-batch steps.
      lr: SGD learning rate.

    Returns:
      The final ``(w, b)``, float32.
    """
    w, b = w.astype(np.float32).copy(), b.astype(np.float32).copy()
    scale = np.float32(lr / x.shape[0])
    xt = np.ascontiguousarray(x.T)
    for _ in range(epochs):
        dz = (_sigmoid_np(x @ w + b) - y) * scale
        w -= xt @ dz
        b -= dz.sum(axis=0)
    return w, b


def _torch_train() -> Callable[..., tuple[Any, Any]] | None:
    """A PyTorch eager trainer (returning torch tensors), or ``None`` when ``torch`` is
    not importable."""
    try:
        import torch
    except ImportError:
        return None

    def run(w0: Any, b0: Any, xt: Any, yt: Any, epochs: int, lr: float) -> Any:
        w = w0.clone().requires_grad_(True)
        b = b0.clone().requires_grad_(True)
        opt = torch.optim.SGD([w, b], lr=lr)
        for _ in range(epochs):
            opt.zero_grad(set_to_none=True)
            z = xt @ w + b
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, yt)
            loss.backward()
            opt.step()
        return w.detach(), b.detach()

    return run


def _max_abs(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _agrees(result: Any, reference: Any) -> bool:
    """``|a - r| <= atol + rtol |r|`` elementwise with the float32 analytic tolerance."""
    tol = jaxnet.testing.tolerance(jnp.float32, "analytic")
    a, r = np.asarray(result, np.float64), np.asarray(reference, np.float64)
    return bool(np.all(np.abs(a - r) <= tol.atol + tol.rtol * np.abs(r)))


def build(
    *, seed: int = 0, epochs: int = EPOCHS, lr: float = LR
) -> tuple[dict[str, Callable[[], Any]], dict[str, Any], dict[str, Any]]:
    """The implementations as zero-argument callables, each a whole 100-epoch run.

    Every callable blocks until its result is ready and returns the final parameters
    as ``{"w": (2, 1), "b": (1,)}``.

    Returns:
      ``(fns, compile, info)``: the callables by name, compile times of the jitted ones
      and a description of the data and the model.
    """
    x_np, y_np = seed_data(seed)
    model = jaxnet.Dense(1)
    _, params = model.init(jax.random.key(seed), (None, N_FEATURES))
    opt = optax.sgd(lr)
    opt_state = opt.init(params)
    step = jaxnet.make_train_step(model, losses.sigmoid_binary_cross_entropy, opt)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    batch = (x, y)
    key = jax.random.key(seed + 1)
    comp: dict[str, Any] = {}

    # (a) the per-step loop: the step jitted on its own, one dispatch per epoch.
    jstep = jax.jit(step)
    t0 = time.perf_counter()
    jax.block_until_ready(jstep(params, opt_state, batch))
    comp["loop_step"] = {"first_call_s": time.perf_counter() - t0}

    def loop() -> Any:
        p, s = params, opt_state
        for _ in range(epochs):
            p, s, _m = jstep(p, s, batch)
        return jax.block_until_ready(p)

    # (b) fused: the same step, all epochs in one lax.scan, one dispatch.
    def fused_fn(p: Any, s: Any, x: Any, y: Any, k: Any) -> Any:
        ts, _m = jaxnet.train_scan(
            step, p, s, (x, y), key=k, epochs=epochs, batch_size=None, shuffle=False
        )
        return ts.params

    compiled, t_trace, t_compile = compile_times(fused_fn, params, opt_state, x, y, key)
    comp["fused"] = {"trace_s": t_trace, "compile_s": t_compile}
    fused_jit = jax.jit(fused_fn)

    def fused() -> Any:
        return jax.block_until_ready(fused_jit(params, opt_state, x, y, key))

    # (b') train_scan as a user calls it (its own jit, plus dispatches outside it).
    def fused_api() -> Any:
        ts, _m = jaxnet.train_scan(
            step, params, opt_state, batch, key=key, epochs=epochs, shuffle=False
        )
        return jax.block_until_ready(ts.params)

    # (c) NumPy, gradient by hand, float32.
    w0 = np.asarray(params["w"], np.float32)
    b0 = np.asarray(params["b"], np.float32)

    def numpy() -> Any:
        w, b = numpy_train(w0, b0, x_np, y_np, epochs=epochs, lr=lr)
        return {"w": w, "b": b}

    fns: dict[str, Callable[[], Any]] = {
        "loop": loop,
        "fused": fused,
        "fused_api": fused_api,
        "numpy": numpy,
    }

    # (d) PyTorch eager, only when importable.
    torch_run = _torch_train()
    if torch_run is not None:
        import torch

        tw0, tb0 = torch.from_numpy(w0.copy()), torch.from_numpy(b0.copy())
        tx, ty = torch.from_numpy(x_np.copy()), torch.from_numpy(y_np.copy())

        def torch_eager() -> Any:
            w, b = torch_run(tw0, tb0, tx, ty, epochs, lr)
            return {"w": w.numpy(), "b": b.numpy()}

        fns["torch"] = torch_eager
        torch_version = torch.__version__
    else:
        torch_version = None

    info = {
        "n_samples": N_SAMPLES,
        "n_features": N_FEATURES,
        "epochs": epochs,
        "lr": lr,
        "optimizer": "optax.sgd",
        "model": "jaxnet.Dense(1) + sigmoid_binary_cross_entropy (mean)",
        "torch": torch_version or "not importable (skipped)",
        "fused_aot_vs_jit_max_abs_diff": _max_abs(
            compiled(params, opt_state, x, y, key)["w"], fused()["w"]
        ),
    }
    return fns, comp, info


def verify(fns: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run every implementation once; compare final parameters against ``loop``.

    Returns:
      ``{"params": {name: {"w": list, "b": list}}, "max_abs_diff": {name: float},
      "agree": {name: bool}}``, with ``loop`` as the reference.
    """
    finals = {n: jax.tree.map(np.asarray, f()) for n, f in fns.items()}
    ref = finals["loop"]
    diff, agree = {}, {}
    for n, p in finals.items():
        diff[n] = max(_max_abs(p[k], ref[k]) for k in ("w", "b"))
        agree[n] = all(_agrees(p[k], ref[k]) for k in ("w", "b"))
    params = {
        n: {k: np.asarray(v, np.float64).ravel().tolist() for k, v in p.items()}
        for n, p in finals.items()
    }
    return {"params": params, "max_abs_diff": diff, "agree": agree}


def seed_case(
    *, repeats: int = 31, min_time: float = 0.05, seed: int = 0
) -> dict[str, Any]:
    """Build, verify, then time (interleaved) the seed case's implementations.

    Args:
      repeats: interleaved rounds (every implementation once per round).
      min_time: seconds each implementation runs per round (whole 100-epoch runs).
      seed: data and initialisation seed.

    Returns:
      A result row: agreement, compile times, seconds per 100-epoch run (median, min,
      max), microseconds per epoch, pairwise ratios and the two targets.

    Raises:
      SystemExit: when an implementation disagrees with ``loop`` (nothing is timed).
    """
    fns, comp, info = build(seed=seed)
    check = verify(fns)
    bad = [n for n, ok in check["agree"].items() if not ok]
    if bad:
        diffs = ", ".join(f"{n} {check['max_abs_diff'][n]:.2e}" for n in bad)
        raise SystemExit(
            f"seed case: final parameters disagree with the per-step loop ({diffs}); "
            "refusing to time"
        )
    times = paired(fns, (), repeats=repeats, min_time=min_time)
    epochs = info["epochs"]
    speedup = ratios(times["loop"], times["fused"])
    fused_med = summary(times["fused"])["median"]
    row: dict[str, Any] = {
        "case": "seed_logreg_2x100_e100",
        "dtype": "float32",
        **info,
        "repeats": repeats,
        "max_abs_param_diff_vs_loop": check["max_abs_diff"],
        "final_params": check["params"],
        "compile": comp,
        "time_s": {k: summary(v) for k, v in times.items()},
        "us_per_epoch": {
            k: {s: v * 1e6 / epochs for s, v in summary(t).items()}
            for k, t in times.items()
        },
        "ratio_loop_over_fused": speedup,
        "ratio_loop_over_fused_api": ratios(times["loop"], times["fused_api"]),
        "ratio_numpy_over_fused": ratios(times["numpy"], times["fused"]),
        "targets": {
            "fused_4x_faster_than_loop": speedup["median"] >= TARGET_SPEEDUP,
            "fused_100_epochs_under_1ms": fused_med < TARGET_FUSED_S,
        },
    }
    if "torch" in times:
        row["ratio_torch_over_fused"] = ratios(times["torch"], times["fused"])
    return row


def _range(s: dict[str, float], scale: float, fmt: str) -> str:
    return (
        f"{s['median'] * scale:{fmt}} "
        f"({s['min'] * scale:{fmt}}-{s['max'] * scale:{fmt}})"
    )


def format_seed(row: dict[str, Any]) -> str:
    """The seed case as a printed table plus the two target verdicts."""
    lines = [
        f"{row['case']}: {row['n_samples']} samples x {row['n_features']} features, "
        f"{row['epochs']} full-batch SGD epochs (lr {row['lr']}), {row['dtype']}, "
        f"{row['repeats']} interleaved repeats; torch: {row['torch']}",
        f"{'impl':<10} {'max abs diff':>12} {'ms / 100 epochs (min-max)':>30} "
        f"{'us / epoch (min-max)':>28}",
    ]
    for name, t in row["time_s"].items():
        lines.append(
            f"{name:<10} {row['max_abs_param_diff_vs_loop'][name]:>12.1e} "
            f"{_range(t, 1e3, '.3f'):>30} "
            f"{_range(row['us_per_epoch'][name], 1.0, '.2f'):>28}"
        )
    for key in sorted(k for k in row if k.startswith("ratio_")):
        lines.append(f"{key[6:]:<22} {_range(row[key], 1.0, '.2f')}")
    sp = row["ratio_loop_over_fused"]["median"]
    fm = row["time_s"]["fused"]["median"] * 1e3
    met = {True: "MET", False: "NOT MET"}
    lines.append(
        f"target fused >= {TARGET_SPEEDUP:g}x faster than loop: "
        f"{met[row['targets']['fused_4x_faster_than_loop']]} ({sp:.1f}x)"
    )
    lines.append(
        f"target fused 100 epochs < {TARGET_FUSED_S * 1e3:g} ms: "
        f"{met[row['targets']['fused_100_epochs_under_1ms']]} ({fm:.3f} ms)"
    )
    return "\n".join(lines)
