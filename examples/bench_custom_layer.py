"""Benchmark your own layer's hand-written backward against ``jax.grad``.

A custom layer, ``ScaledTanhDense(units)``: ``y = a * tanh(x @ w + b)`` with a
learned per-unit gain ``a``, written as a :class:`jaxnet.Layer` with its hand-written
backward (``z = x w + b``, ``t = tanh z``)::

    dz = g a (1 - t^2),   dw = x^T dz,   db = sum dz,   da = sum g t,   dx = dz w^T

in a model ``serial(ScaledTanhDense(hidden), Dense(classes))`` under a mean softmax
cross-entropy. :func:`jaxnet.bench.compare` first proves that three gradients agree,
then times them interleaved:

* ``"autodiff"``: ``jax.grad`` of the jaxnet model (the reference);
* ``"hand"``: the hand-written backward chained by
  :func:`jaxnet.analytic.value_and_grad`;
* ``"raw"``: the same model written in plain ``jnp``, under ``jax.grad``.

With ``--wrong`` the backward's ``dw`` is 10% too large: the agreement gate refuses
to time it and says which implementation, where and by how much (the script then
exits 0, since the refusal is what it demonstrates; exit 1 if it was not refused).

Run::

    .venv/bin/python examples/bench_custom_layer.py [--batch 256] [--json out.json]
    .venv/bin/python examples/bench_custom_layer.py --wrong
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import jax
import jax.numpy as jnp

import jaxnet
import jaxnet.bench
from jaxnet import losses


def ScaledTanhDense(units: int, *, dw_scale: float = 1.0) -> jaxnet.Layer:  # noqa: N802
    """``y = a * tanh(x @ w + b)``; ``dw_scale != 1`` makes the backward's dw wrong."""

    def init(key: Any, input_shape: Any) -> tuple[Any, Any]:
        fan_in = input_shape[-1]
        w = jax.random.normal(key, (fan_in, units)) / jnp.sqrt(fan_in)
        params = {"w": w, "b": jnp.zeros(units), "a": jnp.ones(units)}
        return (*input_shape[:-1], units), params

    def row(v: jax.Array, x: jax.Array) -> jax.Array:  # (units,) against (..., units)
        return v.reshape((1,) * (x.ndim - 1) + (units,))

    def apply(params: Any, x: jax.Array, **_: Any) -> jax.Array:
        a, b = row(params["a"], x), row(params["b"], x)
        return a * jnp.tanh(x @ params["w"] + b)

    def backward(params: Any, x: jax.Array, y: jax.Array, g: jax.Array, **_: Any):
        t = jnp.tanh(x @ params["w"] + row(params["b"], x))
        dz = g * row(params["a"], x) * (1 - t * t)
        dparams = {
            "w": dw_scale * (x.reshape(-1, x.shape[-1]).T @ dz.reshape(-1, units)),
            "b": dz.reshape(-1, units).sum(0),
            "a": (g * t).reshape(-1, units).sum(0),
        }
        return dparams, dz @ params["w"].T

    return jaxnet.Layer("scaled_tanh_dense", init, apply, backward)


def problem(
    batch: int, features: int, hidden: int, classes: int, *, dw_scale: float = 1.0
) -> tuple[dict[str, Any], tuple[Any, ...], int]:
    """``(gradient functions, args, FLOPs of one gradient)`` for the comparison."""
    model = jaxnet.serial(
        ScaledTanhDense(hidden, dw_scale=dw_scale), jaxnet.Dense(classes)
    )
    k_init, k_x, k_y = jax.random.split(jax.random.key(0), 3)
    _, params = model.init(k_init, (None, features))
    x = jax.random.normal(k_x, (batch, features))
    y = jax.random.randint(k_y, (batch,), 0, classes)
    ce = losses.softmax_cross_entropy_with_integer_labels

    def loss(p: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean(ce(model.apply(p, x), y))

    def autodiff(p: Any, x: jax.Array, y: jax.Array) -> Any:
        return jax.grad(loss)(p, x, y)

    hand_vg = jaxnet.analytic.value_and_grad(model, ce)

    def hand(p: Any, x: jax.Array, y: jax.Array) -> Any:
        return hand_vg(p, x, y)[1]

    names = list(params)  # the serial's parameter keys, e.g. scaled_tanh_dense_0

    def raw_loss(p: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        l1, l2 = p[names[0]], p[names[1]]
        h = l1["a"][None, :] * jnp.tanh(x @ l1["w"] + l1["b"][None, :])
        logits = h @ l2["w"] + l2["b"][None, :]
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def raw(p: Any, x: jax.Array, y: jax.Array) -> Any:
        return jax.grad(raw_loss)(p, x, y)

    # forward 2 b (f h + h c); backward: dw1 = x^T dz (2 b f h, no dx needed), dw2 and
    # dh (2 x 2 b h c); elementwise terms left out (the matmuls dominate)
    flops = 2 * batch * (features * hidden + hidden * classes)
    flops += 2 * batch * features * hidden + 4 * batch * hidden * classes
    fns = {"autodiff": autodiff, "hand": hand, "raw": raw}
    return fns, (params, x, y), flops


def main(argv: list[str] | None = None) -> jaxnet.bench.Comparison | None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--features", type=int, default=512)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--min-time", type=float, default=0.05)
    p.add_argument("--wrong", action="store_true", help="a 10%% wrong dw: refused")
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    fns, call_args, flops = problem(
        args.batch,
        args.features,
        args.hidden,
        args.classes,
        dw_scale=1.1 if args.wrong else 1.0,
    )
    try:
        result = jaxnet.bench.compare(
            fns,
            call_args,
            flops=flops,
            name=f"ScaledTanhDense({args.hidden}) batch {args.batch}",
            repeats=args.repeats,
            min_time=args.min_time,
        )
    except jaxnet.bench.RefusedToTime as e:
        print(f"refused, as it should be:\n{e}")
        if not args.wrong:
            raise
        return None
    if args.wrong:
        raise SystemExit("the 10% wrong backward was NOT refused")
    print(result)
    print(f"\nhand/autodiff {result.ratio('hand'):.3f} (median of the pair ratios)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result.to_dict(), fh, indent=1, default=str)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
