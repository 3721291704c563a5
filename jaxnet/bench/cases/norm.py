"""LayerNorm cases (:mod:`jaxnet.nn._norm`): ``layernorm`` and ``layernorm_dx``.

The protocol, the three implementations and the FLOP convention are those of
:mod:`jaxnet.bench.cases._common`. Cases and why those shapes:

* ``layernorm``: LayerNorm(512) on ``x: (1024, 512)``: 1024 rows (e.g. 8 sequences of
  128 tokens, the ``gpt_block`` batch) at a GPT-sized width, 2 MiB per activation:
  enough work per step that it is not dominated by dispatch. ``x`` is
  data, so the backward is only ``dscale`` and ``doffset`` (two reductions).
* ``layernorm_dx``: the same LayerNorm with ``x`` trainable (a leaf ``params["x"]``,
  ``args = (params, y)``): the backward computes ``dx`` too, which is what a
  LayerNorm inside any network computes and what the planning note ("LayerNorm
  autodiff backward 1.2x slower than a hand-written one") is about.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

import jaxnet
from jaxnet import analytic, losses

from .._case import Case, sgd
from ._common import (
    LR,
    OUTPUTS,
    _grad_only,
    _mse_flops,
    _mse_objective,
    _params,
    _step,
    _steps_and_grads,
    _target,
    _wrap,
)

EPS = 1e-6  # jaxnet.LayerNorm's default epsilon (Flax's)


def _ln_flops(rows: int, d: int, *, dx: bool) -> tuple[int, int]:
    n = rows * d
    # mean, x - mu, square, mean, (+eps, rsqrt per row), * r, * scale, + offset
    fwd = 7 * n + 2 * rows
    # dscale = sum_rows g xhat; doffset = sum_rows g
    bwd = n + 2 * (rows - 1) * d
    if dx:
        # dxhat = g scale; dxhat xhat; mean; xhat * it; subtract; mean(dxhat);
        # subtract; * r
        bwd += 8 * n
    return fwd, bwd


def _raw_layer_norm(p: Any, x: Any) -> Any:
    mu = jnp.mean(x, axis=-1, keepdims=True)
    d = x - mu
    var = jnp.mean(d * d, axis=-1, keepdims=True)
    xhat = d * lax.rsqrt(var + jnp.float32(EPS))
    return xhat * p["scale"][None, :] + p["offset"][None, :]


def _ln_setup(small: bool) -> tuple[jaxnet.Layer, Any, Any, Any]:
    rows, d = (64, 32) if small else (1024, 512)
    model = jaxnet.LayerNorm()
    # x off-centre, as the two-pass variance is meant for.
    params = _params(model, (None, d))
    x = 3.0 + 2.0 * _target(1, (rows, d))
    y = _target(2, (rows, d))
    return model, params, x, y


def layernorm(quick: bool, *, small: bool = False) -> Case:
    """LayerNorm over d = 512 features of ``x: (1024, 512)``; ``x`` is data."""
    model, params, x, y = _ln_setup(small)
    rows, d = x.shape
    forward, steps, grads = _steps_and_grads("layernorm", model, _raw_layer_norm)
    f_ln, b_ln = _ln_flops(rows, d, dx=False)
    f_l, b_l = _mse_flops(rows * d, rows)
    return Case(
        name="layernorm",
        family="layers",
        description=f"LayerNorm({d}) on x ({rows}, {d}), x data (dscale, doffset)",
        dtype="float32",
        shapes={"x": (rows, d), "scale": (d,), "offset": (d,)},
        args=(params, x, y),
        forward=forward,
        steps=steps,
        grads=grads,
        flops=_step(f_ln + f_l, b_ln + b_l, params),
        quick=True,
        notes="x is data: the backward is two column reductions (see layernorm_dx).",
    )


def layernorm_dx(quick: bool, *, small: bool = False) -> Case:
    """LayerNorm with a trainable input: the backward includes ``dx``."""
    model, ln_params, x, y = _ln_setup(small)
    rows, d = x.shape
    params = {"x": x, "layer_norm": ln_params}
    update = sgd(LR)

    def forward(p, y):
        return _mse_objective(model.apply(p["layer_norm"], p["x"]), y)

    def raw_objective(p, y):
        return _mse_objective(_raw_layer_norm(p["layer_norm"], p["x"]), y)

    def vg_hand(p, y):
        out = model.apply(p["layer_norm"], p["x"])
        per_example = losses.mse(out, y)
        n = per_example.size
        seed = jnp.full(per_example.shape, 1.0 / n, per_example.dtype)
        g = analytic.loss_vjp(losses.mse)(out, y, seed)
        dp, dx = analytic.vjp(model, p["layer_norm"], p["x"], g)
        return jnp.sum(per_example) / n, {"x": dx, "layer_norm": dp}

    OUTPUTS["layernorm_dx"] = (
        lambda p: model.apply(p["layer_norm"], p["x"]),
        lambda p: _raw_layer_norm(p["layer_norm"], p["x"]),
    )
    plain = jaxnet.LayerNorm(custom_grad=False)

    def plain_objective(p, y):
        return _mse_objective(plain.apply(p["layer_norm"], p["x"]), y)

    vgs = {
        "autodiff": jax.value_and_grad(forward),
        "hand": vg_hand,
        "raw": jax.value_and_grad(raw_objective),
        "autodiff_plain": jax.value_and_grad(plain_objective),
    }
    f_ln, b_ln = _ln_flops(rows, d, dx=True)
    f_l, b_l = _mse_flops(rows * d, rows)
    return Case(
        name="layernorm_dx",
        family="layers",
        description=f"LayerNorm({d}) on x ({rows}, {d}), x trainable (dx too)",
        dtype="float32",
        shapes={"x": (rows, d), "scale": (d,), "offset": (d,)},
        args=(params, y),
        forward=forward,
        steps=_wrap(vgs, update),
        grads={k: _grad_only(f) for k, f in vgs.items()},
        flops=_step(f_ln + f_l, b_ln + b_l, params),
        quick=True,
        notes=(
            "args = (params, y): x is the leaf params['x'] so its gradient is "
            "computed, as for a LayerNorm inside a network. autodiff_plain: "
            "LayerNorm(custom_grad=False), jax.grad through the forward's ops "
            "(autodiff uses the default custom JVP rule)."
        ),
    )


#: ``name -> build(quick, *, small=False) -> Case``, in run order.
CASES: dict[str, Callable[..., Case]] = {
    "layernorm": layernorm,
    "layernorm_dx": layernorm_dx,
}
