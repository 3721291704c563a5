"""Convolution case (:mod:`jaxnet.nn._conv`): ``conv2d``.

The protocol, the three implementations and the FLOP convention are those of
:mod:`jaxnet.bench.cases._common`. The case and why those shapes:

* ``conv2d``: Conv 3x3, 16 -> 32 channels, SAME, on ``(32, 28, 28, 16)`` (MNIST-sized
  maps, a CNN's second layer).
"""

from __future__ import annotations

from collections.abc import Callable

from jax import lax

import jaxnet

from .._case import Case
from ._common import _mse_flops, _params, _step, _steps_and_grads, _target


def conv2d(quick: bool, *, small: bool = False) -> Case:
    """Conv 3x3, 16 -> 32 channels, SAME, on NHWC ``(32, 28, 28, 16)``."""
    n, hw, cin, cout, k = (4, 8, 4, 8, 3) if small else (32, 28, 16, 32, 3)
    model = jaxnet.Conv(cout, (k, k), padding="SAME")
    params = _params(model, (None, hw, hw, cin))
    x = _target(1, (n, hw, hw, cin))
    y = _target(2, (n, hw, hw, cout))

    def raw(p, x):
        out = lax.conv_general_dilated(
            x, p["w"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return out + p["b"][None, None, None, :]

    forward, steps, grads = _steps_and_grads("conv2d", model, raw)
    pix = n * hw * hw
    mm = 2 * pix * cout * k * k * cin
    f_c = mm + pix * cout
    b_c = mm + (pix - 1) * cout  # dW (same MACs as the forward) and db; no dx
    f_l, b_l = _mse_flops(pix * cout, n * hw * hw)
    return Case(
        name="conv2d",
        family="layers",
        description=f"Conv {k}x{k} {cin}->{cout} SAME on ({n}, {hw}, {hw}, {cin})",
        dtype="float32",
        shapes={"x": (n, hw, hw, cin), "w": (k, k, cin, cout)},
        args=(params, x, y),
        forward=forward,
        steps=steps,
        grads=grads,
        flops=_step(f_c + f_l, b_c + b_l, params),
        quick=True,
        notes="FLOPs count the zero padding's taps (the convolution computes them).",
    )


#: ``name -> build(quick, *, small=False) -> Case``, in run order.
CASES: dict[str, Callable[..., Case]] = {"conv2d": conv2d}
