"""``python -m benchmarks``: autodiff vs hand-written gradient steps, side by side.

Cases (``--case``):

* ``mlp``: the MLP 784-512-512-10 with softmax cross-entropy and an SGD step, at batch
  128 and 1024: ``jax.grad`` through jaxnet vs ``jaxnet.analytic`` (backprop written by
  hand).
* ``seed``: logistic regression, 2 features, 100 samples, 100 full-batch SGD epochs:
  a per-step jitted Python loop vs the fused ``lax.scan`` (``jaxnet.train_scan``) vs
  NumPy by hand (vs PyTorch eager where importable); see ``benchmarks/seed.py``.

``--quick`` runs fewer repeats (the whole run in under about a minute). The full suite
(more cases, FLOP fractions, memory, peers) grows on this runner.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxnet
from jaxnet import analytic, losses

from ._timing import compile_times, paired, ratios, summary
from .seed import format_seed, seed_case


def mlp_case(
    batch: int, *, lr: float = 1e-2, repeats: int = 15, min_time: float = 0.05
) -> dict[str, Any]:
    """Build, verify and time one MLP gradient step both ways."""
    model = jaxnet.serial(
        jaxnet.Dense(512),
        jaxnet.Relu(),
        jaxnet.Dense(512),
        jaxnet.Relu(),
        jaxnet.Dense(10),
    )
    _, params = model.init(jax.random.key(0), (None, 784))
    x = jax.random.normal(jax.random.key(1), (batch, 784), jnp.float32)
    y = jax.random.randint(jax.random.key(2), (batch,), 0, 10)
    loss = losses.softmax_cross_entropy_with_integer_labels

    def objective(p, x, y):
        return jnp.mean(loss(model.apply(p, x), y))

    hand_vg = analytic.value_and_grad(model, loss)

    def sgd(p, g):
        return jax.tree.map(lambda a, b: a - lr * b, p, g)

    def step_autodiff(p, x, y):
        value, g = jax.value_and_grad(objective)(p, x, y)
        return sgd(p, g), value

    def step_hand(p, x, y):
        value, g = hand_vg(p, x, y)
        return sgd(p, g), value

    def forward(p, x, y):
        return objective(p, x, y)

    # 1. Prove they agree before timing anything.
    g_auto = jax.jit(jax.grad(objective))(params, x, y)
    g_hand = jax.jit(lambda p, x, y: hand_vg(p, x, y)[1])(params, x, y)
    diffs = jax.tree.leaves(
        jax.tree.map(
            lambda a, b: float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30)),
            g_auto,
            g_hand,
        )
    )
    max_rel = max(diffs)
    tol = jaxnet.testing.tolerance(jnp.float32, "analytic").rtol * 10
    if max_rel > tol:
        raise SystemExit(
            f"mlp batch {batch}: gradients disagree (max rel {max_rel:.2e}); refusing to time"
        )

    # 2. Trace and compile separately.
    args = (params, x, y)
    fns, comp = {}, {}
    for name, fn in (
        ("forward", forward),
        ("autodiff", step_autodiff),
        ("hand", step_hand),
    ):
        compiled, t_trace, t_compile = compile_times(fn, *args)
        fns[name] = compiled
        comp[name] = {"trace_s": t_trace, "compile_s": t_compile}

    # 3. Steady state, interleaved.
    times = paired(fns, args, repeats=repeats, min_time=min_time)
    return {
        "case": f"mlp_784_512_512_10_b{batch}",
        "batch": batch,
        "dtype": "float32",
        "max_rel_grad_diff": max_rel,
        "compile": comp,
        "time_s": {k: summary(v) for k, v in times.items()},
        "ratio_autodiff_over_hand": ratios(times["autodiff"], times["hand"]),
        "ratio_grad_over_forward": ratios(times["autodiff"], times["forward"]),
    }


def environment() -> dict[str, Any]:
    """Backend, device and versions for every result row."""
    import jaxlib

    return {
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "jaxnet": jaxnet.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the cases and print a table (and JSON with ``--out``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--batch", type=int, nargs="*", default=[128, 1024])
    parser.add_argument("--case", choices=("mlp", "seed", "all"), default="all")
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats (about a minute in all)"
    )
    parser.add_argument(
        "--out", default=None, help="write results.json into this directory"
    )
    args = parser.parse_args(argv)
    env = environment()
    print(f"env: {env}")
    rows = []
    timing = {"repeats": 5, "min_time": 0.01} if args.quick else {}
    batches = args.batch if args.case in ("mlp", "all") else []
    if batches:
        print(
            f"{'case':<28} {'max rel diff':>12} {'forward ms':>11} {'autodiff ms':>12} "
            f"{'hand ms':>9} {'autodiff/hand (min-max)':>26} {'grad/fwd':>9}"
        )
    for b in batches:
        r = mlp_case(b, **timing)
        rows.append({**env, **r})
        t = r["time_s"]
        ra = r["ratio_autodiff_over_hand"]
        print(
            f"{r['case']:<28} {r['max_rel_grad_diff']:>12.1e} "
            f"{t['forward']['median'] * 1e3:>11.3f} {t['autodiff']['median'] * 1e3:>12.3f} "
            f"{t['hand']['median'] * 1e3:>9.3f} "
            f"{ra['median']:>8.3f} ({ra['min']:.3f}-{ra['max']:.3f}){'':>5} "
            f"{r['ratio_grad_over_forward']['median']:>9.2f}"
        )
    if args.case in ("seed", "all"):
        r = seed_case(**({"repeats": 9, "min_time": 0.02} if args.quick else {}))
        rows.append({**env, **r})
        print(format_seed(r))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
