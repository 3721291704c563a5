"""Named edge points: kinks, +-inf, nan, logits of +-1e4, and the float32 checker table.

At every point below ``jax.grad`` (through ``jax.vjp``) and the hand-written VJP agree,
and both equal the written convention. The conventions (see the module docstring of
``jaxnet/nn/_core.py`` and the loss docstrings):

====================================  ==================  ============================
point                                 value               derivative
====================================  ==================  ============================
relu at 0 (and -0.0)                  0                   0
leaky_relu at 0 (and -0.0)            0                   1
elu(alpha) at 0                       0                   alpha
selu at 0                             0                   scale * alpha
absolute_error at p == t              0                   0
huber(delta) at |p - t| == delta      delta^2 / 2         +-delta (C^1: no choice made)
binary_cross_entropy, p <= eps or     clipped: finite     0 (the clip is flat there,
  p >= 1 - eps (eps = 2^-23 in f32,                         bounds included)
  1e-12 in f64)
sigmoid_binary_cross_entropy, z == 0  log 2               1/2 - y
relu / sigmoid / tanh / softplus      relu(inf) = inf,    1, 0 / 0, 0 / 0, 0 / 1, 0:
  at +inf / -inf                      sigmoid 1 / 0,      finite, never nan
                                      tanh +-1,
                                      softplus inf / 0
gelu / silu at -inf; their            nan (-inf * 0, as   nan (inf * 0, as jax.nn)
  derivatives at +-inf                jax.nn; limit 0)
nan input                             nan                 relu 0, leaky_relu slope
                                                          (x > 0, x >= 0 are false at
                                                          nan), absolute_error 0; nan
                                                          elsewhere
logits +-1e4 (float32 and float64)    exact, finite       exact, finite
====================================  ==================  ============================

Exact conventions are asserted with ``assert_array_equal`` (which treats nan == nan);
values that involve a transcendental function use the library's per-dtype tolerance.
The helpers run under ``jax.jit`` (one compile per point instead of one per op: the
file stays fast); the issue's +-1e4 requirement is asserted eagerly as well.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet import analytic, losses
from jaxnet.testing import (
    LAYER_CASES,
    TOLERANCES,
    check_grads,
    check_layer,
    tolerance,
)
from jaxnet.testing._check import compare

F32, F64 = jnp.float32, jnp.float64
DTYPES = pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])

# Klambauer et al. (2017), independent of the library's own constants.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@functools.partial(jax.jit, static_argnums=0)
def _layer_grads(layer, x):
    y, pullback = jax.vjp(lambda v: layer.apply({}, v), x)
    g = jnp.ones_like(y)
    (auto,) = pullback(g)
    _, by_hand = layer.backward({}, x, y, g)
    return y, auto, by_hand


def layer_grads(layer, x, dtype=F64):
    """``(y, jax.grad dx, hand-written dx)`` of ``sum(layer(x))`` at ``x``."""
    return _layer_grads(layer, jnp.asarray(x, dtype))


def eager_loss_grads(loss, p, t):
    """``(per-example loss, jax.grad dp, hand-written dp)`` of ``sum(loss(p, t))``."""
    value, pullback = jax.vjp(lambda q: loss(q, t), p)
    g = jnp.ones_like(value)
    (auto,) = pullback(g)
    return value, auto, analytic.loss_vjp(loss)(p, t, g)


loss_grads = jax.jit(eager_loss_grads, static_argnums=0)


def assert_exact(actual, expected, dtype):
    assert jnp.asarray(actual).dtype == dtype
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected, dtype))


def assert_close(actual, expected, dtype):
    row = compare(
        "edge", "value", actual, np.asarray(expected, dtype), tolerance(dtype)
    )
    assert row.ok, row


# --------------------------------------------------------------------- kinks at 0

KINKS = [
    ("relu'(0) = 0", jaxnet.Relu(), 0.0),
    ("leaky_relu'(0) = 1", jaxnet.LeakyRelu(0.1), 1.0),
    ("elu'(0) = alpha", jaxnet.Elu(0.7), 0.7),
    ("selu'(0) = scale * alpha", jaxnet.Selu(), None),  # scale * alpha in the dtype
]


@DTYPES
@pytest.mark.parametrize(
    "layer,slope", [k[1:] for k in KINKS], ids=[k[0] for k in KINKS]
)
def test_activation_kink_convention(layer, slope, dtype):
    """The same slope at +0 and -0 (-0.0 > 0 is false and -0.0 >= 0 is true)."""
    if slope is None:
        slope = np.asarray(SELU_SCALE, dtype) * np.asarray(SELU_ALPHA, dtype)
    y, auto, by_hand = layer_grads(layer, [0.0, -0.0], dtype)
    assert_exact(y, [0.0, 0.0], dtype)
    assert_exact(auto, [slope, slope], dtype)
    assert_exact(by_hand, [slope, slope], dtype)


@pytest.mark.parametrize("t", [0.0, 1.5, -2.0])
def test_absolute_error_gradient_is_zero_at_a_perfect_fit(t):
    p = jnp.asarray([t, t + 1.0, t - 1.0], F64)
    value, auto, by_hand = loss_grads(losses.absolute_error, p, jnp.full(3, t, F64))
    assert_exact(value, [0.0, 1.0, 1.0], F64)
    assert_exact(auto, [0.0, 1.0, -1.0], F64)
    assert_exact(by_hand, [0.0, 1.0, -1.0], F64)


@DTYPES
@pytest.mark.parametrize("delta", [0.5, 1.0, 2.0])
def test_huber_at_the_threshold(delta, dtype):
    """At |e| == delta Huber is C^1: both one-sided derivatives are +-delta.

    ``jax.grad`` gets there through ``jnp.minimum(|e|, delta)``'s tie rule (1/2 to
    each side: ``delta / 2 + delta / 2``), the VJP through ``clip(e, -delta, delta)``.
    """
    huber = functools.partial(losses.huber, delta=delta)
    t = jnp.asarray([0.0, 0.0, 3.0, 3.0], dtype)
    p = t + jnp.asarray([delta, -delta] * 2, dtype)  # exact in binary
    value, auto, by_hand = loss_grads(huber, p, t)
    assert_exact(value, [delta * delta / 2] * 4, dtype)
    assert_exact(auto, [delta, -delta] * 2, dtype)
    assert_exact(by_hand, [delta, -delta] * 2, dtype)


# ----------------------------------------------------------- clipped probabilities

EPS = {F32: float(np.finfo(np.float32).eps), F64: 1e-12}  # documented defaults


def _clipped_bce(p, y, dtype):
    """The expected loss, computed by numpy in ``dtype`` from the documented eps."""
    eps = EPS[dtype]
    pc = np.clip(
        np.asarray(p, dtype), np.asarray(eps, dtype), np.asarray(1 - eps, dtype)
    )
    y = np.asarray(y, dtype)
    return -(y * np.log(pc) + (1 - y) * np.log1p(-pc))


@DTYPES
@pytest.mark.parametrize("where", ["at 0 and 1", "at the clip bounds"])
def test_binary_cross_entropy_at_the_ends(where, dtype):
    """Finite at p == 0 and p == 1 thanks to the clip to [eps, 1 - eps]; the gradient
    is 0 there and at the bounds themselves (a float32 sigmoid saturates exactly at
    1 - 2^-23), from jax.grad and from the VJP alike."""
    eps = EPS[dtype]
    ends = [0.0, 1.0] if where == "at 0 and 1" else [eps, 1 - eps]
    p = jnp.asarray(ends * 2, dtype)
    y = jnp.asarray([0.0, 0.0, 1.0, 1.0], dtype)
    value, auto, by_hand = loss_grads(losses.binary_cross_entropy, p, y)
    assert bool(jnp.all(jnp.isfinite(value)))
    assert_close(value, _clipped_bce(p, y, dtype), dtype)
    assert float(value[1]) > 15 and float(value[2]) > 15  # a confident wrong answer
    assert_exact(auto, np.zeros(4), dtype)
    assert_exact(by_hand, np.zeros(4), dtype)


@DTYPES
def test_sigmoid_binary_cross_entropy_at_logit_zero(dtype):
    """A zero-initialised head gives z == 0: the gradient is sigmoid(0) - y = 1/2 - y
    (at +0 and -0, for hard and soft labels)."""
    z = jnp.asarray([0.0, -0.0] * 3, dtype)
    y = np.repeat([0.0, 0.3, 1.0], 2)
    value, auto, by_hand = loss_grads(
        losses.sigmoid_binary_cross_entropy, z, jnp.asarray(y, dtype)
    )
    assert_close(value, [math.log(2.0)] * 6, dtype)
    assert_close(auto, 0.5 - y, dtype)
    assert_close(by_hand, 0.5 - y, dtype)


# ------------------------------------------------------------------------ infinity

INF, NAN = np.inf, np.nan
SELU_NEG = -SELU_SCALE * SELU_ALPHA
#: Every activation at one point vector (one compile per layer): f, then f'.
POINTS = [INF, -INF, NAN, 0.5]
EDGE_TABLE = [
    # layer, f(+inf), f(-inf), f'(+inf), f'(-inf), f'(nan)
    (jaxnet.Relu(), INF, 0.0, 1.0, 0.0, 0.0),  # nan > 0 is false: the 0 branch
    (jaxnet.Sigmoid(), 1.0, 0.0, 0.0, 0.0, NAN),
    (jaxnet.Tanh(), 1.0, -1.0, 0.0, 0.0, NAN),
    (jaxnet.Softplus(), INF, 0.0, 1.0, 0.0, NAN),
    (jaxnet.LeakyRelu(0.1), INF, -INF, 1.0, 0.1, 0.1),  # nan >= 0 is false
    (jaxnet.Elu(0.7), INF, -0.7, 1.0, 0.0, NAN),
    (jaxnet.Selu(), INF, SELU_NEG, SELU_SCALE, 0.0, NAN),
    # Inherited from jax.nn: x * Phi(x) and x * sigmoid(x) evaluate -inf * 0 = nan at
    # -inf (the limit is 0), and the derivative formulas inf * 0 at +-inf.
    (jaxnet.Gelu(), INF, NAN, NAN, NAN, NAN),
    (jaxnet.Gelu(approximate=True), INF, NAN, NAN, NAN, NAN),
    (jaxnet.Silu(), INF, NAN, NAN, NAN, NAN),
]


@pytest.mark.parametrize(
    "layer,f_pos,f_neg,d_pos,d_neg",
    [row[:5] for row in EDGE_TABLE],
    ids=[repr(row[0]) for row in EDGE_TABLE],
)
def test_activation_at_infinity(layer, f_pos, f_neg, d_pos, d_neg):
    """relu(inf) = inf; sigmoid(+-inf) = 1, 0 and tanh(+-inf) = +-1 with gradient 0
    (not nan); softplus(-inf) = 0. jax.grad and the VJP agree exactly everywhere."""
    out, auto, by_hand = layer_grads(layer, POINTS)
    assert_exact(out[:2], [f_pos, f_neg], F64)
    assert_exact(auto[:2], [d_pos, d_neg], F64)
    assert_exact(by_hand[:2], [d_pos, d_neg], F64)


# ----------------------------------------------------------------------------- nan


@pytest.mark.parametrize(
    "layer,d_nan",
    [(row[0], row[5]) for row in EDGE_TABLE],
    ids=[repr(row[0]) for row in EDGE_TABLE],
)
def test_nan_propagates_through_every_activation(layer, d_nan):
    out, auto, by_hand = layer_grads(layer, POINTS)
    assert bool(jnp.isnan(out[2])) and bool(jnp.isfinite(out[3]))
    assert_exact(auto[2:3], [d_nan], F64)
    assert_exact(by_hand[2:3], [d_nan], F64)
    assert_close(by_hand[3:], auto[3:], F64)  # the finite neighbour is unaffected


NAN_LOSSES = [
    # loss, predictions with a nan, targets, gradient at the nan element
    (losses.squared_error, [np.nan, 1.0], [0.0, 0.0], np.nan),
    (losses.half_squared_error, [np.nan, 1.0], [0.0, 0.0], np.nan),
    (losses.absolute_error, [np.nan, 1.0], [0.0, 0.0], 0.0),
    (losses.huber, [np.nan, 1.0], [0.0, 0.0], np.nan),
    (losses.binary_cross_entropy, [np.nan, 0.5], [0.0, 1.0], 0.0),  # outside clip
    (losses.sigmoid_binary_cross_entropy, [np.nan, 0.5], [0.0, 1.0], np.nan),
]


@pytest.mark.parametrize(
    "loss,p,t,slope", NAN_LOSSES, ids=[c[0].__name__ for c in NAN_LOSSES]
)
def test_nan_prediction_gives_nan_loss(loss, p, t, slope):
    value, auto, by_hand = loss_grads(loss, jnp.asarray(p, F64), jnp.asarray(t, F64))
    assert bool(jnp.isnan(value[0])) and bool(jnp.isfinite(value[1]))
    assert_exact(auto[:1], [slope], F64)
    assert_exact(by_hand[:1], [slope], F64)


@pytest.mark.parametrize(
    "loss,labels",
    [
        (losses.softmax_cross_entropy, [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]),
        (losses.softmax_cross_entropy_with_integer_labels, [1, 1]),
    ],
    ids=["soft", "integer"],
)
def test_nan_logit_gives_nan_loss_for_its_row_only(loss, labels):
    z = jnp.asarray([[np.nan, 0.0, 1.0], [2.0, 0.0, 1.0]], F64)
    value, auto, by_hand = loss_grads(loss, z, jnp.asarray(labels))
    assert bool(jnp.isnan(value[0])) and bool(jnp.isfinite(value[1]))
    assert bool(jnp.all(jnp.isnan(auto[0]))) and bool(jnp.all(jnp.isnan(by_hand[0])))
    assert_close(by_hand[1], auto[1], F64)


# ------------------------------------------------------- stability at logits +-1e4


@DTYPES
@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_sigmoid_binary_cross_entropy_at_extreme_logits(mode, dtype):
    z = jnp.asarray([1e4, 1e4, -1e4, -1e4], dtype)
    y = jnp.asarray([1.0, 0.0, 1.0, 0.0], dtype)
    grads = eager_loss_grads if mode == "eager" else loss_grads
    value, auto, by_hand = grads(losses.sigmoid_binary_cross_entropy, z, y)
    assert_exact(value, [0.0, 1e4, 1e4, 0.0], dtype)
    assert_exact(auto, [0.0, 1.0, -1.0, 0.0], dtype)  # sigmoid(z) - y
    assert_exact(by_hand, [0.0, 1.0, -1.0, 0.0], dtype)


EXTREME_LOGITS = [[1e4, -1e4, 0.0]] * 3 + [[1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]]
EXTREME_LABELS = [0, 1, 2, 0, 2]
EXTREME_LOSS = [0.0, 2e4, 1e4, math.log(2.0), math.log(3.0)]
EXTREME_GRAD = [  # softmax(z) - one_hot(label)
    [0.0, 0.0, 0.0],
    [1.0, -1.0, 0.0],
    [1.0, 0.0, -1.0],
    [-0.5, 0.5, 0.0],
    [1 / 3, 1 / 3, -2 / 3],
]


@pytest.mark.parametrize(
    "mode,dtype",
    [("jit", F32), ("jit", F64), ("eager", F32)],  # eager: the harder dtype
    ids=["jit-float32", "jit-float64", "eager-float32"],
)
@pytest.mark.parametrize("labels", ["integer", "one-hot"])
def test_softmax_cross_entropy_at_extreme_logits(labels, mode, dtype):
    z = jnp.asarray(EXTREME_LOGITS, dtype)
    ids = jnp.asarray(EXTREME_LABELS)
    if labels == "integer":
        loss, target = losses.softmax_cross_entropy_with_integer_labels, ids
    else:
        loss, target = losses.softmax_cross_entropy, jax.nn.one_hot(ids, 3, dtype=dtype)
    grads = eager_loss_grads if mode == "eager" else loss_grads
    value, auto, by_hand = grads(loss, z, target)
    assert_exact(value[:3], EXTREME_LOSS[:3], dtype)  # 0, 2e4, 1e4 exactly
    assert_close(value, EXTREME_LOSS, dtype)
    assert_exact(auto[:3], EXTREME_GRAD[:3], dtype)
    assert_exact(by_hand[:3], EXTREME_GRAD[:3], dtype)
    assert_close(auto, EXTREME_GRAD, dtype)
    assert_close(by_hand, EXTREME_GRAD, dtype)


@pytest.mark.parametrize(
    "dtype,big", [(jnp.float16, 4e4), (F32, 2e38), (F64, 1e308)], ids=str
)
def test_one_hot_cross_entropy_at_the_dtype_limit_matches_integer_labels(dtype, big):
    """log_softmax underflows to -inf for a class with probability 0; a one-hot zero
    there once gave 0 * -inf = nan (the integer-label version gives 0)."""
    z = jnp.asarray([[big, -big, 0.0]], dtype)
    one_hot = jnp.asarray([[1.0, 0.0, 0.0]], dtype)
    soft = losses.softmax_cross_entropy(z, one_hot)
    ints = losses.softmax_cross_entropy_with_integer_labels(z, jnp.asarray([0]))
    assert float(soft[0]) == float(ints[0]) == 0.0
    g = jax.grad(lambda z: jnp.sum(losses.softmax_cross_entropy(z, one_hot)))(z)
    assert np.array_equal(np.asarray(g, np.float64), np.zeros((1, 3)))


def _extreme_args(loss, dtype):
    """Predictions of +-1e4 with fitting targets, for every built-in loss."""
    p = jnp.asarray([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype)
    if loss is losses.softmax_cross_entropy_with_integer_labels:
        return p, jnp.asarray([1, 2])
    if loss is losses.softmax_cross_entropy:
        return p, jnp.asarray([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]], dtype)
    return p, jnp.asarray([[1.0, 0.0, 1.0], [0.0, 1.0, 0.5]], dtype)


@DTYPES
@pytest.mark.parametrize("loss", list(analytic.LOSS_VJPS), ids=lambda f: f.__name__)
def test_every_loss_is_finite_at_extreme_predictions(loss, dtype):
    p, t = _extreme_args(loss, dtype)
    value, auto, by_hand = loss_grads(loss, p, t)
    assert bool(jnp.all(jnp.isfinite(value))), value
    assert bool(jnp.all(jnp.isfinite(auto))), auto
    assert bool(jnp.all(jnp.isfinite(by_hand))), by_hand
    row = compare(loss.__name__, "vjp", by_hand, auto, tolerance(dtype, "analytic"))
    assert row.ok, row


# ---------------------------------------------------------- the float32 tolerances

INJECTED = 1e-3  # a 0.1% gradient error, which jax.test_util.check_grads misses


def test_float32_tolerances_come_from_the_table():
    eps32 = float(np.finfo(np.float32).eps)
    for method in ("analytic", "central", "complex"):
        t32, t64 = tolerance(F32, method), tolerance(F64, method)
        assert t32 == TOLERANCES["float32"][method]
        assert t32.rtol > t64.rtol and t32.atol > t64.atol  # float32 is looser
        assert t32.rtol > eps32  # but not below float32's resolution
    # Exact methods must resolve a 0.1% error; the complex step is read as float32.
    assert tolerance(F32, "analytic").rtol < INJECTED
    assert tolerance(F32, "complex").rtol < INJECTED
    assert tolerance(jnp.complex64, "complex") == tolerance(F32, "complex")
    with pytest.raises(ValueError, match="no entry for dtype int32"):
        tolerance(jnp.int32)


def test_float32_check_catches_a_0_1_percent_error_in_one_element():
    """Per-element tolerances never scale with size: one wrong element of 4096 fails."""
    w = jax.random.normal(jax.random.key(0), (64, 64), F32).at[17, 42].set(0.5)

    def f(w):
        return jnp.sum(jnp.sin(w))

    good = check_grads(f, w, analytic=jnp.cos, method=None)
    assert good.ok, good
    (row,) = good.rows
    t = tolerance(F32, "analytic")
    assert (row.dtype, row.rtol, row.atol) == ("float32", t.rtol, t.atol)

    bad = check_grads(
        f,
        w,
        analytic=lambda w: jnp.cos(w).at[17, 42].multiply(1 + INJECTED),
        method=None,
    )
    (row,) = bad.failures()
    assert not bad.ok and row.worst_index == (17, 42)
    assert row.max_rel > t.rtol
    assert "FAIL" in str(bad) and "(17, 42)" in str(bad)


@pytest.mark.parametrize(
    "case", [c for c in LAYER_CASES if c.id in ("Relu", "Tanh")], ids=lambda c: c.id
)
def test_float32_registry_check_uses_float32_tolerances(case):
    assert case.method in ("central", "complex")
    report = check_layer(case, F32)
    assert report.ok, report
    for row in report.rows:
        assert row.dtype == "float32"
        if row.check in ("jax.grad vs analytic", "jax.grad vs jax.grad@float64"):
            # Exact comparisons use the float32 row of the table.
            assert (row.rtol, row.atol) == dataclasses.astuple(
                tolerance(F32, "analytic")
            )
        else:
            # Numerical rows: the reference is computed in float64, so they resolve
            # errors well below float32's own table tolerance for differences.
            assert row.method == f"{case.method}@float64"
            assert row.detectable < tolerance(F32, "analytic").rtol


def test_float32_checker_at_extreme_logits():
    z = jnp.asarray([1e4, -1e4, 3.0, -1e4], F32)
    y = jnp.asarray([0.0, 1.0, 0.5, 0.0], F32)

    def f(z):
        return jnp.sum(losses.sigmoid_binary_cross_entropy(z, y))

    report = check_grads(
        f,
        z,
        analytic=lambda z: analytic.sigmoid_binary_cross_entropy_vjp(
            z, y, jnp.ones_like(z)
        ),
        method=None,
    )
    assert report.ok, report
    assert report.rows[0].rtol == tolerance(F32, "analytic").rtol
