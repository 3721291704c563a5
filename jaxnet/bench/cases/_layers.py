"""Per-layer gradient-step cases: LayerNorm, attention, a GPT block, a conv, an LSTM.

Each case follows :mod:`jaxnet.bench._case`: ``args = (params, x, y)`` (``layernorm_dx``:
``(params, y)``, see below), a float32 SGD step ``p - lr * g`` on
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

Cases and why those shapes:

* ``layernorm``: LayerNorm(512) on ``x: (1024, 512)``: 1024 rows (e.g. 8 sequences of
  128 tokens, the ``gpt_block`` batch) at a GPT-sized width, 2 MiB per activation:
  enough work per step that it is not dominated by dispatch. ``x`` is
  data, so the backward is only ``dscale`` and ``doffset`` (two reductions).
* ``layernorm_dx``: the same LayerNorm with ``x`` trainable (a leaf ``params["x"]``,
  ``args = (params, y)``): the backward computes ``dx`` too, which is what a
  LayerNorm inside any network computes and what the planning note ("LayerNorm
  autodiff backward 1.2x slower than a hand-written one") is about.
* ``mha``: causal self-attention, d_model 256, 4 heads, seq 128, batch 8.
* ``gpt_block``: pre-LN TransformerBlock (tanh GELU, MLP ratio 4, no dropout), the
  ``mha`` shapes. Planning target: step/forward time at most 3.0.
* ``conv2d``: Conv 3x3, 16 -> 32 channels, SAME, on ``(32, 28, 28, 16)`` (MNIST-sized
  maps, a CNN's second layer).
* ``lstm``: ``RNN(LSTMCell(128))`` over ``(32, 50, 64)``, returning the sequence.

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
from jax import lax

import jaxnet
from jaxnet import analytic, losses

from . import _runner
from ._case import Case, sgd

LR = 1e-2
#: For the agreement check: d loss / d b_key is 0 in exact arithmetic.
KEY_BIAS_NOTE = (
    " The key bias's gradient is exactly 0 in exact arithmetic (adding q . b_k to a "
    "whole row of scores leaves the softmax unchanged): its float32 values are "
    "rounding noise (~1e-9) and agree only absolutely; compare gradients with "
    "atol + rtol |ref|, not a per-leaf max relative error."
)
EPS = 1e-6  # jaxnet.LayerNorm's default epsilon (Flax's)

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


def _dense_flops(m: int, k: int, n: int, *, dx: bool) -> tuple[int, int]:
    fwd = 2 * m * k * n + m * n
    bwd = 2 * m * k * n + (m - 1) * n + (2 * m * k * n if dx else 0)
    return fwd, bwd


def _attention_core_flops(b: int, h: int, t: int, hd: int) -> tuple[int, int]:
    s, r = b * h * t * t, b * h * t
    # q k^T, scale, causal where, softmax (max, sub, exp, sum, div), P v
    fwd = 2 * s * hd + s + s + (5 * s - 2 * r) + 2 * s * hd
    # dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(dP P)) (4 s - r), where,
    # dQ = c dS K, dK = c dS^T Q (matmuls + the two scalings)
    bwd = 4 * s * hd + (4 * s - r) + s + 4 * s * hd + 2 * b * t * h * hd
    return fwd, bwd


def _mha_flops(b: int, t: int, d: int, heads: int, *, dx: bool) -> tuple[int, int]:
    m = b * t
    fq, bq = _dense_flops(m, d, d, dx=dx)  # each of q, k, v
    fc, bc = _attention_core_flops(b, heads, t, d // heads)
    fo, bo = _dense_flops(m, d, d, dx=True)  # dO is always needed
    fwd = 3 * fq + fc + fo
    bwd = 3 * bq + bc + bo + (2 * m * d if dx else 0)  # dxq + dxk + dxv
    return fwd, bwd


def _gelu_tanh_flops(n: int) -> tuple[int, int]:
    # x**3 (2), * c, + x, * sqrt(2/pi), tanh, + 1, * 0.5, * x
    # backward (reusing t): du = sqrt(2/pi) (1 + 3c x^2): 4; (1 - t^2) x / 2 * du: 5;
    # (1 + t) / 2 + ...: 3; * g: 1
    return 9 * n, 13 * n


def _step(fwd: int, bwd: int, params: Any) -> dict[str, int]:
    return {"forward": int(fwd), "step": int(fwd + bwd + 2 * _n_params(params))}


# --------------------------------------------------------------------- layernorm


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


# --------------------------------------------------------------------- attention


def _raw_proj(p: Any, x: Any) -> Any:
    return jnp.einsum("btd,de->bte", x, p["w"]) + p["b"][None, None, :]


def _raw_mha(p: Any, x: Any, heads: int) -> Any:
    b, t, d = x.shape
    hd = d // heads

    def split(a):
        return a.reshape(b, t, heads, hd)

    q = split(_raw_proj(p["query"], x))
    k = split(_raw_proj(p["key"], x))
    v = split(_raw_proj(p["value"], x))
    s = jnp.einsum("btnh,bsnh->bnts", q, k) * jnp.float32(1.0 / math.sqrt(hd))
    causal = jnp.tril(jnp.ones((t, t), jnp.bool_))[None, None]
    s = jnp.where(causal, s, jnp.float32(-0.7 * float(jnp.finfo(jnp.float32).max)))
    w = jax.nn.softmax(s, axis=-1)
    o = jnp.einsum("bnts,bsnh->btnh", w, v).reshape(b, t, d)
    return _raw_proj(p["out"], o)


def _seq_shapes(small: bool) -> tuple[int, int, int, int]:
    """(batch, seq, d_model, heads)."""
    return (2, 16, 32, 4) if small else (8, 128, 256, 4)


def mha(quick: bool, *, small: bool = False) -> Case:
    """Causal multi-head self-attention, d_model 256, 4 heads, seq 128, batch 8."""
    b, t, d, heads = _seq_shapes(small)
    model = jaxnet.MultiHeadAttention(heads, causal=True)
    params = _params(model, (None, t, d))
    x = _target(1, (b, t, d))
    y = _target(2, (b, t, d))
    forward, steps, grads = _steps_and_grads(
        "mha", model, lambda p, x: _raw_mha(p, x, heads)
    )
    f_a, b_a = _mha_flops(b, t, d, heads, dx=False)
    f_l, b_l = _mse_flops(b * t * d, b * t)
    return Case(
        name="mha",
        family="layers",
        description=f"causal MHA d_model {d}, {heads} heads, seq {t}, batch {b}",
        dtype="float32",
        shapes={"x": (b, t, d), "w_qkvo": (d, d)},
        args=(params, x, y),
        forward=forward,
        steps=steps,
        grads=grads,
        flops=_step(f_a + f_l, b_a + b_l, params),
        quick=False,
        notes=(
            "jaxnet's forward calls jax.nn.dot_product_attention (XLA backend); the "
            "causal mask is applied to the full T x T scores, counted in full."
            + KEY_BIAS_NOTE
        ),
    )


# --------------------------------------------------------------------- GPT block


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


# -------------------------------------------------------------------------- conv


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


# -------------------------------------------------------------------------- LSTM


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


# ------------------------------------------------------------------------ export

CASES: dict[str, Callable[[bool], Case]] = {
    "layernorm": layernorm,
    "layernorm_dx": layernorm_dx,
    "mha": mha,
    "gpt_block": gpt_block,
    "conv2d": conv2d,
    "lstm": lstm,
}


def xla_flops(fn: Callable[..., Any], args: tuple[Any, ...]) -> float:
    """XLA's own count for ``jax.jit(fn)``: its "flops" plus "transcendentals".

    The runner's :func:`jaxnet.bench._runner.xla_flops` reads ``cost_analysis()``;
    absent keys count 0.
    """
    compiled = jax.jit(fn).lower(*args).compile()
    return _runner.xla_flops(compiled, ("flops", "transcendentals")) or 0.0
