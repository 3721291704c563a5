"""Recurrent case (:mod:`jaxnet.nn._recurrent`): ``lstm``.

The protocol, the three implementations and the FLOP convention are those of
:mod:`jaxnet.bench.cases._common`. The case and why those shapes:

* ``lstm``: ``RNN(LSTMCell(128))`` over ``(32, 50, 64)``, returning the sequence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

import jaxnet

from .._case import Case
from ._common import _mse_flops, _params, _step, _steps_and_grads, _target


def _raw_lstm(p: Any, x: Any) -> Any:
    b = x.shape[0]
    hidden = p["hidden"]["w"].shape[0]
    wi, wh, bh = p["input"]["w"], p["hidden"]["w"], p["hidden"]["b"]
    xw = jnp.einsum("btf,fg->tbg", x, wi)  # input projection for all steps at once

    def step(carry, xw_t):
        c, h = carry
        z = xw_t + h @ wh + bh[None, :]
        i = jax.nn.sigmoid(z[:, :hidden])
        f = jax.nn.sigmoid(z[:, hidden : 2 * hidden])
        g = jnp.tanh(z[:, 2 * hidden : 3 * hidden])
        o = jax.nn.sigmoid(z[:, 3 * hidden :])
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (c, h), h

    zeros = jnp.zeros((b, hidden), x.dtype)
    _, hs = lax.scan(step, (zeros, zeros), xw)
    return jnp.swapaxes(hs, 0, 1)


def lstm(quick: bool, *, small: bool = False) -> Case:
    """``RNN(LSTMCell(128))`` over ``(batch 32, time 50, features 64)``."""
    b, t, f, hidden = (4, 6, 8, 16) if small else (32, 50, 64, 128)
    model = jaxnet.RNN(jaxnet.LSTMCell(hidden))
    params = _params(model, (None, t, f))
    x = _target(1, (b, t, f))
    y = _target(2, (b, t, hidden))
    forward, steps, grads = _steps_and_grads("lstm", model, _raw_lstm)
    g4 = 4 * hidden
    bh = b * hidden
    # per step: x W_in, h W_hid, two adds; 3 sigmoid + 1 tanh; c' (3); tanh(c'); h'
    f_step = (
        2 * b * f * g4 + 2 * b * hidden * g4 + 2 * b * g4 + 4 * bh + 3 * bh + 2 * bh
    )
    # per step backward: dh (1), dc (5), do (1), dz (4 + 4 + 4 + 3), dc_prev (1),
    # dW_in, dW_hid, db, dh_prev = dz W_hid^T, and accumulating dparams over time
    b_step = (
        23 * bh
        + 2 * b * f * g4
        + 2 * b * hidden * g4
        + (b - 1) * g4
        + 2 * b * g4 * hidden
        + (f * g4 + hidden * g4 + g4)
    )
    f_l, b_l = _mse_flops(b * t * hidden, b * t)
    return Case(
        name="lstm",
        family="layers",
        description=f"RNN(LSTMCell({hidden})) over ({b}, {t}, {f}), full sequence",
        dtype="float32",
        shapes={"x": (b, t, f), "w_in": (f, g4), "w_hid": (hidden, g4)},
        args=(params, x, y),
        forward=forward,
        steps=steps,
        grads=grads,
        flops=_step(t * f_step + f_l, t * b_step + b_l, params),
        quick=False,
        notes=(
            "hand = jaxnet.analytic BPTT, which recomputes each step's gates in the "
            "reverse scan (about +1 forward of FLOPs over this count); raw hoists "
            "the input projection out of the scan."
        ),
    )


#: ``name -> build(quick, *, small=False) -> Case``, in run order.
CASES: dict[str, Callable[..., Case]] = {"lstm": lstm}
