"""GPT block case (:mod:`jaxnet.nn._transformer`): ``gpt_block``.

The protocol, the three implementations and the FLOP convention are those of
:mod:`jaxnet.bench.cases._common`; the block adds ``autodiff_remat``,
``autodiff_plain`` and ``autodiff_hand_grad``. The case and why those shapes:

* ``gpt_block``: pre-LN TransformerBlock (tanh GELU, MLP ratio 4, no dropout), the
  ``mha`` shapes. Planning target: step/forward time at most 3.0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

import jaxnet

from .._case import Case, sgd
from ._common import (
    LR,
    _dense_flops,
    _grad_only,
    _mse_flops,
    _mse_objective,
    _params,
    _step,
    _steps_and_grads,
    _target,
    _wrap,
)
from .attention import KEY_BIAS_NOTE, _mha_flops, _raw_mha, _seq_shapes
from .norm import _ln_flops, _raw_layer_norm


def _gelu_tanh_flops(n: int) -> tuple[int, int]:
    # x**3 (2), * c, + x, * sqrt(2/pi), tanh, + 1, * 0.5, * x
    # backward (reusing t): du = sqrt(2/pi) (1 + 3c x^2): 4; (1 - t^2) x / 2 * du: 5;
    # (1 + t) / 2 + ...: 3; * g: 1
    return 9 * n, 13 * n


def _raw_block(p: Any, x: Any, heads: int) -> Any:
    b, t, d = x.shape
    a = p["attention"]
    h = x + _raw_mha(
        a["mha"],
        _raw_layer_norm(a["layer_norm_0"], x.reshape(-1, d)).reshape(b, t, d),
        heads,
    )
    m = p["mlp"]
    z = _raw_layer_norm(m["layer_norm_0"], h.reshape(-1, d))
    z = z @ m["dense_1"]["w"] + m["dense_1"]["b"][None, :]
    z = jax.nn.gelu(z, approximate=True)
    z = z @ m["dense_3"]["w"] + m["dense_3"]["b"][None, :]
    return h + z.reshape(b, t, d)


def _plain_block(heads: int, d: int) -> jaxnet.Layer:
    """``TransformerBlock(heads, d, causal=True, drop_rate=0.0)`` rebuilt from its
    parts with ``LayerNorm(custom_grad=False)``: the same parameter tree, plain
    autodiff through both LayerNorms (``gpt_block``'s ``"autodiff_plain"``)."""
    attention = jaxnet.residual(
        jaxnet.LayerNorm(custom_grad=False),
        ("mha", jaxnet.MultiHeadAttention(heads, causal=True)),
    )
    mlp = jaxnet.residual(
        jaxnet.LayerNorm(custom_grad=False),
        jaxnet.Dense(4 * d),
        jaxnet.Gelu(approximate=True),
        jaxnet.Dense(d),
    )
    return jaxnet.serial(("attention", attention), ("mlp", mlp))


def gpt_block(quick: bool, *, small: bool = False) -> Case:
    """Pre-LN GPT block, d_model 256, 4 heads, seq 128, batch 8, causal, no dropout."""
    b, t, d, heads = _seq_shapes(small)
    model = jaxnet.TransformerBlock(heads, d, causal=True, drop_rate=0.0)
    params = _params(model, (None, t, d))
    x = _target(1, (b, t, d))
    y = _target(2, (b, t, d))
    forward, steps, grads = _steps_and_grads(
        "gpt_block", model, lambda p, x: _raw_block(p, x, heads)
    )
    applied = jax.checkpoint(lambda p, x: model.apply(p, x))

    def vg_remat(p, x, y):
        return jax.value_and_grad(lambda p, x, y: _mse_objective(applied(p, x), y))(
            p, x, y
        )

    plain = _plain_block(heads, d)

    def vg_plain(p, x, y):
        return jax.value_and_grad(lambda p, x, y: _mse_objective(plain.apply(p, x), y))(
            p, x, y
        )

    fast = jaxnet.hand_grad(model)

    def vg_hand_grad(p, x, y):
        return jax.value_and_grad(lambda p, x, y: _mse_objective(fast.apply(p, x), y))(
            p, x, y
        )

    extras = {
        "autodiff_remat": vg_remat,
        "autodiff_plain": vg_plain,
        "autodiff_hand_grad": vg_hand_grad,
    }
    steps.update(_wrap(extras, sgd(LR)))
    grads.update({k: _grad_only(f) for k, f in extras.items()})

    m = b * t
    f1, b1 = _ln_flops(m, d, dx=False)  # LN1: its input x is data
    fa, ba = _mha_flops(b, t, d, heads, dx=True)  # dx reaches LN1's params
    f2, b2 = _ln_flops(m, d, dx=True)
    fd1, bd1 = _dense_flops(m, d, 4 * d, dx=True)
    fg, bg = _gelu_tanh_flops(m * 4 * d)
    fd3, bd3 = _dense_flops(m, 4 * d, d, dx=True)
    fl, bl = _mse_flops(m * d, m)
    res_f = 2 * m * d  # two residual adds
    res_b = m * d  # dh = g + d(branch 2); branch 1's skip needs no dx
    fwd = f1 + fa + f2 + fd1 + fg + fd3 + fl + res_f
    bwd = b1 + ba + b2 + bd1 + bg + bd3 + bl + res_b
    return Case(
        name="gpt_block",
        family="layers",
        description=(
            f"pre-LN GPT block d_model {d}, {heads} heads, MLP {4 * d}, seq {t}, "
            f"batch {b}, causal"
        ),
        dtype="float32",
        shapes={"x": (b, t, d), "w_qkvo": (d, d), "w_mlp": (d, 4 * d)},
        args=(params, x, y),
        forward=forward,
        steps=steps,
        grads=grads,
        flops=_step(fwd, bwd, params),
        quick=False,
        notes=(
            "Planning target: step/forward time <= 3.0 (FLOP ratio ~3.0). "
            "autodiff_remat wraps the block in jax.checkpoint: the backward "
            "recomputes the forward (about +1 forward of FLOPs) and stores only the "
            "block's inputs. autodiff_plain: the same block with "
            "LayerNorm(custom_grad=False) (plain autodiff through both LayerNorms). "
            "autodiff_hand_grad: jax.value_and_grad through jaxnet.hand_grad(block), "
            "a custom_vjp running the block's hand-written backward." + KEY_BIAS_NOTE
        ),
    )


#: ``name -> build(quick, *, small=False) -> Case``, in run order.
CASES: dict[str, Callable[..., Case]] = {"gpt_block": gpt_block}
