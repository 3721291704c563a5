"""The shared pieces of the per-layer gradient-step cases (the ``layers`` family):
LayerNorm (:mod:`.norm`), attention (:mod:`.attention`), a GPT block
(:mod:`.transformer`), a conv (:mod:`.conv`), an LSTM (:mod:`.recurrent`).

Each case follows :mod:`jaxnet.bench._case`: ``args = (params, x, y)`` (``layernorm_dx``:
``(params, y)``, see :mod:`.norm`), a float32 SGD step ``p - lr * g`` on
``mean(jaxnet.losses.mse(model(params, x), y))`` against a fixed random target of
the output's shape, written three ways:

* ``"autodiff"``: the jaxnet layer with ``jax.value_and_grad``;
* ``"hand"``: the jaxnet layer with ``jaxnet.analytic.value_and_grad(model, mse)``
  (the layers' hand-written backwards; ``layernorm_dx`` chains
  ``jaxnet.analytic.vjp`` with ``analytic.loss_vjp(mse)`` itself, to get ``dx``);
* ``"raw"``: the same model in raw JAX (``jnp``, ``jax.nn``, ``jax.lax`` only) reading
  jaxnet's parameter tree, so its gradient has jaxnet's layout and the agreement
  check covers it too;
* ``"autodiff_plain"`` (``layernorm_dx``, ``gpt_block``): ``jax.value_and_grad``
  through ``LayerNorm(custom_grad=False)``, i.e. plain autodiff of the forward's
  operations. ``"autodiff"`` uses jaxnet's default ``custom_grad=True``: a linear
  custom JVP rule whose transpose is the hand-written backward (issue 5: the
  library's gradient is never slower than the hand-written one; the suite shows
  both);
* ``gpt_block`` adds ``"autodiff_remat"``: the block under ``jax.checkpoint``, and
  ``"autodiff_hand_grad"``: ``jax.value_and_grad`` through ``jaxnet.hand_grad(block)``
  (the hand-written backward as a ``custom_vjp``, opt-in).

Each family module's docstring says its cases' shapes and why.

FLOP convention (``flops["forward"]`` and ``flops["step"]``, counted by hand from the
formulas, the minimum that the algorithm needs):

* a matmul ``(m, k) @ (k, n)`` is ``2 m k n`` (also for the masked-out half of causal
  attention and for the zero padding of a SAME conv: both are computed);
* an elementwise op (add, sub, mul, div, select/where, max) is 1 per element; an
  integer power ``x**3`` is 2 multiplies;
* a transcendental (``exp``, ``tanh``, ``sigmoid``, ``rsqrt``) is 1 per element;
* a sum of ``n`` elements is ``n - 1``; a mean is ``n`` (the sum and one divide);
* the loss is ``mean(mse)``: ``3 M + rows`` forward (sub, square, the two means)
  and ``M`` backward (``2 (p - t) / M`` reusing ``p - t``), ``M`` = output size;
* ``step`` = forward + backward + SGD (2 per parameter); the backward computes no
  gradient with respect to ``x`` (it is data), so the first op's ``dx`` is not
  counted; it reuses forward values (no recomputation).

Cross-check against XLA (``xla_flops``: ``jax.jit(f).lower(*args).compile()
.cost_analysis()``, "flops" + "transcendentals", which XLA reports apart; CPU, jax
0.10.2, full shapes; "step" is the autodiff step):

=============  =============  =============  =============  =============
case           forward        XLA forward    step           XLA step
=============  =============  =============  =============  =============
layernorm          5,245,952      5,245,952      7,344,128      8,919,040
layernorm_dx       5,245,952      5,245,952     12,587,008     15,742,976
mha              676,586,496    676,590,592  1,621,088,256  1,624,512,512
gpt_block      1,765,274,624  1,765,541,888  5,280,362,752  5,293,238,784
conv2d           234,447,360    223,568,384    467,273,248    446,318,112
lstm             318,670,400      7,047,170    853,805,632     18,295,820
=============  =============  =============  =============  =============

Where they differ, and why. XLA counts a ``dot`` as ``2 m k n`` too, so mha and
gpt_block agree to 0.3%; the rest is elementwise accounting. XLA counts the HLO
*after* fusion, where a cheap producer duplicated into several fusions is counted
once per copy and autodiff's backward carries ops that are no arithmetic by our
convention (negations, ``select``s of broadcast zeros, ``1 - x`` as two ops): the
LayerNorm steps, which have no matmul, come out 21-25% above our count, and even the
forward's match is a coincidence of fusion (at 64 x 32, or for the raw LayerNorm,
XLA counts one op per element more). conv2d: XLA skips the SAME padding's zero taps
(``(82/84)^2 = 0.953`` of the full ``3 x 3`` per output at 28 x 28), which we count.
lstm: XLA counts a ``while`` (``lax.scan``) body once, not once per trip, so its count
is about ``1/T = 1/50`` of the real work; ours multiplies by ``T``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxnet
from jaxnet import analytic, losses

from .. import _runner
from .._case import sgd

LR = 1e-2

#: ``name -> (jaxnet_output, raw_output)`` of the case built last under that name,
#: each ``f(*args[:-1]) -> model output`` (``args`` without the target): lets the
#: tests compare the two models' outputs, not only their losses.
OUTPUTS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {}

# ----------------------------------------------------------------- shared pieces


def _mse_objective(y: Any, t: Any) -> Any:
    return jnp.mean(losses.mse(y, t))


def _target(seed: int, shape: tuple[int, ...]) -> Any:
    """Standard normal float32 data, drawn by NumPy: building a case compiles nothing."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, np.float32))


def _params(model: jaxnet.Layer, input_shape: Any) -> Any:
    """The model's parameter tree (from ``init``'s shapes) with NumPy-drawn values.

    Kernels ``w`` are ``N(0, 1 / fan_in)`` (as ``lecun_normal``); biases, offsets and
    ``scale - 1`` are ``0.1 N(0, 1)``: non-zero, so every gradient is exercised
    (``init`` gives zeros and ones). Only shapes are traced, so nothing compiles.
    """
    tree = jax.eval_shape(lambda k: model.init(k, input_shape)[1], jax.random.key(0))
    leaves, treedef = jax.tree.flatten_with_path(tree)
    out = []
    for i, (path, a) in enumerate(leaves):
        name = getattr(path[-1], "key", "")
        z = _target(100 + i, a.shape)
        if name == "w":
            z = z / np.float32(math.sqrt(a.shape[-2]))
        elif name == "scale":
            z = 1.0 + 0.1 * z
        else:
            z = 0.1 * z
        out.append(z)
    return jax.tree.unflatten(treedef, out)


def _steps_and_grads(
    name: str,
    model: jaxnet.Layer,
    raw_apply: Callable[[Any, Any], Any],
    *,
    options: dict[str, Any] | None = None,
) -> tuple[Callable[..., Any], dict[str, Callable], dict[str, Callable]]:
    """``forward``, ``steps`` and ``grads`` for ``args = (params, x, y)``."""
    opts = options or {}
    update = sgd(LR)
    OUTPUTS[name] = (lambda p, x: model.apply(p, x, **opts), raw_apply)

    def forward(p, x, y):
        return _mse_objective(model.apply(p, x, **opts), y)

    def raw_objective(p, x, y):
        return _mse_objective(raw_apply(p, x), y)

    hand_vg = analytic.value_and_grad(model, losses.mse)

    def vg_autodiff(p, x, y):
        return jax.value_and_grad(forward)(p, x, y)

    def vg_hand(p, x, y):
        return hand_vg(p, x, y, **opts)

    def vg_raw(p, x, y):
        return jax.value_and_grad(raw_objective)(p, x, y)

    vgs = {"autodiff": vg_autodiff, "hand": vg_hand, "raw": vg_raw}
    return forward, _wrap(vgs, update), {k: _grad_only(f) for k, f in vgs.items()}


def _wrap(vgs: dict[str, Callable], update: Callable) -> dict[str, Callable]:
    def make(vg: Callable) -> Callable:
        def step(*args):
            value, g = vg(*args)
            return update(args[0], g), value

        return step

    return {k: make(f) for k, f in vgs.items()}


def _grad_only(vg: Callable) -> Callable:
    return lambda *args: vg(*args)[1]


def _n_params(params: Any) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))


# ------------------------------------------------------------------ FLOP counts
# Each helper returns (forward, backward) for one op, by the module's convention.


def _mse_flops(m: int, rows: int) -> tuple[int, int]:
    return 3 * m + rows, m


def _dense_flops(m: int, k: int, n: int, *, dx: bool) -> tuple[int, int]:
    fwd = 2 * m * k * n + m * n
    bwd = 2 * m * k * n + (m - 1) * n + (2 * m * k * n if dx else 0)
    return fwd, bwd


def _step(fwd: int, bwd: int, params: Any) -> dict[str, int]:
    return {"forward": int(fwd), "step": int(fwd + bwd + 2 * _n_params(params))}


def xla_flops(fn: Callable[..., Any], args: tuple[Any, ...]) -> float:
    """XLA's own count for ``jax.jit(fn)``: its "flops" plus "transcendentals".

    The runner's :func:`jaxnet.bench._runner.xla_flops` reads ``cost_analysis()``;
    absent keys count 0.
    """
    compiled = jax.jit(fn).lower(*args).compile()
    return _runner.xla_flops(compiled, ("flops", "transcendentals")) or 0.0
