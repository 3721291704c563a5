"""Property tests: every hand-written VJP equals ``jax.vjp`` on random shapes and
values.

Hypothesis draws the shapes (ranks 1..3, sizes 1..6) and bounded float64 values; each
comparison uses the library's float64 ``"analytic"`` tolerance,
``|a - r| <= atol + rtol |r|`` elementwise (``jaxnet.testing._check.compare``). Piecewise
activations are nudged off their kink at 0: the kinks have their own exact tests in
``test_edges.py``. The last part checks mathematical identities between layers and
losses.

Speed: every new shape costs an XLA compile (~0.2 s on a small CPU), so shapes come
from a fixed pool covering ranks 1..3 and sizes 1..6 (the values stay fully random),
and each comparison is one ``jax.jit`` program, cached per layer or loss.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxnet
from jaxnet import analytic, losses
from jaxnet.testing import tolerance
from jaxnet.testing._check import compare

F64 = jnp.float64
TOL = tolerance(F64, "analytic")
FAST = settings(max_examples=25, deadline=None)


def assert_close(actual, reference, what: str) -> None:
    """The checker's own criterion; the failing row (worst index, errors) on failure."""
    assert jnp.shape(actual) == jnp.shape(reference), what
    assert jnp.asarray(actual).dtype == jnp.asarray(reference).dtype, what
    row = compare(what, "analytic vs jax.vjp", actual, reference, TOL)
    assert row.ok, row


# ------------------------------------------------------------------------ strategies

#: Ranks 1..3, sizes 1..6, size-1 axes last and in the middle (a size-1 class axis:
#: softmax is 1 with gradient 0), and () for per-example values of rank-1 inputs.
SHAPES = [(6,), (5, 1), (2, 6), (3, 1, 4), (2, 3, 5)]


def shapes(min_rank: int = 1) -> st.SearchStrategy[tuple[int, ...]]:
    return st.sampled_from([s for s in [(), *SHAPES] if len(s) >= min_rank])


def floats(bound: float) -> st.SearchStrategy[float]:
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=64)


def arrays(shape: tuple[int, ...], bound: float = 10.0) -> st.SearchStrategy:
    return hnp.arrays(np.float64, shape, elements=floats(bound))


def unit_arrays(shape: tuple[int, ...]) -> st.SearchStrategy:
    """Values in [0, 1]: probabilities and (soft) labels."""
    return hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0))


def nudge(x: np.ndarray, kink: float | None) -> np.ndarray:
    """Move values within 1e-3 of ``kink`` to ``kink + 0.5`` (the smooth part)."""
    if kink is None:
        return x
    return np.where(np.abs(x - kink) < 1e-3, kink + 0.5, x)


# ---------------------------------------------------------------- activation VJPs

ACTIVATIONS = [
    ("Relu", jaxnet.Relu(), 0.0),
    ("Sigmoid", jaxnet.Sigmoid(), None),
    ("Tanh", jaxnet.Tanh(), None),
    ("Gelu(exact)", jaxnet.Gelu(), None),
    ("Gelu(tanh)", jaxnet.Gelu(approximate=True), None),
    ("Silu", jaxnet.Silu(), None),
    ("Softplus", jaxnet.Softplus(), None),
    ("LeakyRelu", jaxnet.LeakyRelu(0.2), 0.0),
    ("Elu", jaxnet.Elu(0.7), 0.0),
    ("Selu", jaxnet.Selu(), 0.0),
    ("Softmax", jaxnet.Softmax(), None),
    ("LogSoftmax", jaxnet.LogSoftmax(), None),
]


@functools.cache
def layer_vjps(layer: jaxnet.Layer):
    """``(x, g) -> (dparams, analytic dx, jax.vjp dx)`` as one jitted program."""

    @jax.jit
    def both(params, x, g):
        y, pullback = jax.vjp(layer.apply, params, x)
        dparams, dx = layer.backward(params, x, y, g)
        return dparams, dx, pullback(g)

    return both


@pytest.mark.parametrize(
    "layer,kink", [a[1:] for a in ACTIVATIONS], ids=[a[0] for a in ACTIVATIONS]
)
@FAST
@given(data=st.data())
def test_activation_vjp_equals_jax_vjp(layer, kink, data):
    shape = data.draw(shapes())
    x = nudge(data.draw(arrays(shape, 20.0)), kink)
    g = data.draw(arrays(shape, 3.0))
    dparams, dx, (_, reference) = layer_vjps(layer)({}, x, g)
    assert dparams == {}
    assert_close(dx, reference, f"{layer.desc} dx")


# ----------------------------------------------------------------------- Dense VJP

#: (leading axes, in_dim, out_dim, use_bias): inputs of rank 1..3, dims 1..6.
DENSE_SHAPES = [
    ((), 1, 1, True),
    ((), 6, 3, False),
    ((4,), 3, 6, True),
    ((2, 5), 4, 2, True),
    ((1, 3), 5, 1, False),
]


@functools.cache
def dense(out_dim: int, use_bias: bool) -> jaxnet.Layer:
    """One Layer object per configuration, so that its jitted comparison is reused."""
    return jaxnet.Dense(out_dim, use_bias=use_bias, dtype=F64)


@FAST
@given(dims=st.sampled_from(DENSE_SHAPES), data=st.data())
def test_dense_vjp_equals_jax_vjp(dims, data):
    lead, in_dim, out_dim, use_bias = dims
    layer = dense(out_dim, use_bias)
    x = data.draw(arrays(lead + (in_dim,), 2.0))
    out_shape, params = layer.init(jax.random.key(0), x.shape)
    assert out_shape == lead + (out_dim,)
    params = {
        k: jnp.asarray(data.draw(arrays(v.shape, 2.0))) for k, v in params.items()
    }
    g = data.draw(arrays(lead + (out_dim,), 2.0))

    dparams, dx, (ref_params, ref_x) = layer_vjps(layer)(params, x, g)
    assert sorted(dparams) == sorted(params) == (["b", "w"] if use_bias else ["w"])
    for name in params:
        assert_close(dparams[name], ref_params[name], f"Dense d{name}")
    assert_close(dx, ref_x, "Dense dx")


# ------------------------------------------------------------------------ loss VJPs


@st.composite
def regression(draw):
    shape = draw(shapes())
    return draw(arrays(shape, 5.0)), draw(arrays(shape, 5.0)), draw(arrays(shape, 3.0))


@st.composite
def regression_per_row(draw):
    """For ``mse``: one loss per row, so ``g`` drops the feature axis."""
    shape = draw(shapes())
    return (
        draw(arrays(shape, 5.0)),
        draw(arrays(shape, 5.0)),
        draw(arrays(shape[:-1], 3.0)),
    )


@st.composite
def probabilities(draw):
    """Probabilities inside the clip range (its edges are in test_edges.py)."""
    shape = draw(shapes())
    p = draw(hnp.arrays(np.float64, shape, elements=st.floats(0.01, 0.99)))
    return p, draw(unit_arrays(shape)), draw(arrays(shape, 3.0))


@st.composite
def binary_logits(draw):
    shape = draw(shapes())
    return draw(arrays(shape, 20.0)), draw(unit_arrays(shape)), draw(arrays(shape, 3.0))


@st.composite
def soft_labels(draw):
    """Soft labels in [0, 1] that need not sum to 1 (the VJP's general formula)."""
    shape = draw(shapes())
    return (
        draw(arrays(shape, 20.0)),
        draw(unit_arrays(shape)),
        draw(arrays(shape[:-1], 3.0)),
    )


@st.composite
def integer_labels(draw):
    shape = draw(shapes())
    ids = hnp.arrays(np.int64, shape[:-1], elements=st.integers(0, shape[-1] - 1))
    return draw(arrays(shape, 20.0)), draw(ids), draw(arrays(shape[:-1], 3.0))


LOSSES = [
    ("squared_error", losses.squared_error, regression()),
    ("half_squared_error", losses.half_squared_error, regression()),
    ("mse", losses.mse, regression_per_row()),
    ("absolute_error", losses.absolute_error, regression()),
    ("huber", losses.huber, regression()),
    ("huber(delta=0.3)", functools.partial(losses.huber, delta=0.3), regression()),
    ("binary_cross_entropy", losses.binary_cross_entropy, probabilities()),
    (
        "sigmoid_binary_cross_entropy",
        losses.sigmoid_binary_cross_entropy,
        binary_logits(),
    ),
    ("softmax_cross_entropy", losses.softmax_cross_entropy, soft_labels()),
    (
        "softmax_cross_entropy_with_integer_labels",
        losses.softmax_cross_entropy_with_integer_labels,
        integer_labels(),
    ),
]


def test_every_builtin_loss_is_covered():
    covered = {getattr(loss, "func", loss) for _, loss, _ in LOSSES}
    assert covered == set(analytic.LOSS_VJPS)


@functools.cache
def loss_vjps(loss):
    """``(p, t, g) -> (per-example loss, analytic dp, jax.vjp dp)``, jitted."""
    by_hand = analytic.loss_vjp(loss)

    @jax.jit
    def both(p, t, g):
        value, pullback = jax.vjp(lambda q: loss(q, t), p)
        return value, by_hand(p, t, g), pullback(g)[0]

    return both


@pytest.mark.parametrize(
    "loss,strategy", [c[1:] for c in LOSSES], ids=[c[0] for c in LOSSES]
)
@FAST
@given(data=st.data())
def test_loss_vjp_equals_jax_vjp(loss, strategy, data):
    p, t, g = data.draw(strategy)
    value, dp, reference = loss_vjps(loss)(p, t, g)
    assert value.shape == g.shape  # per-example values: the caller reduces
    assert_close(dp, reference, "d predictions")


# ---------------------------------------------------------------------- identities


@jax.jit
def _softmax_identities(x):
    s = jaxnet.Softmax().apply({}, x)
    return s, jnp.sum(s, axis=-1), jaxnet.LogSoftmax().apply({}, x), jnp.log(s)


@FAST
@given(x=shapes().flatmap(lambda s: arrays(s, 20.0)))
def test_softmax_sums_to_one_and_log_softmax_is_its_log(x):
    s, total, log_s, log_of_s = _softmax_identities(x)
    assert bool(jnp.all((s > 0) & (s <= 1)))
    assert_close(total, jnp.ones_like(total), "sum(softmax)")
    assert_close(log_s, log_of_s, "log_softmax vs log(softmax)")


@jax.jit
def _binary_ce_both_ways(z, y):
    from_logits = losses.sigmoid_binary_cross_entropy(z, y)
    return from_logits, losses.binary_cross_entropy(jax.nn.sigmoid(z), y)


@FAST
@given(data=st.data())
def test_sigmoid_bce_from_logits_equals_bce_on_sigmoid(data):
    shape = data.draw(shapes())
    z = data.draw(arrays(shape, 5.0))  # moderate: sigmoid(z) is far inside the clip
    from_logits, from_probs = _binary_ce_both_ways(z, data.draw(unit_arrays(shape)))
    assert_close(from_logits, from_probs, "sigmoid_binary_cross_entropy")


@jax.jit
def _cross_entropy_both_ways(z, labels):
    one_hot = jax.nn.one_hot(labels, z.shape[-1], dtype=z.dtype)
    return (
        losses.softmax_cross_entropy(z, one_hot),
        losses.softmax_cross_entropy_with_integer_labels(z, labels),
    )


@FAST
@given(data=integer_labels())
def test_one_hot_softmax_cross_entropy_equals_integer_labels(data):
    z, labels, _ = data
    with_one_hot, with_ids = _cross_entropy_both_ways(z, labels)
    assert_close(with_one_hot, with_ids, "softmax_cross_entropy(one_hot)")


@functools.partial(jax.jit, static_argnames="delta")
def _huber_and_half_squared(p, t, delta):
    return losses.huber(p, t, delta=delta), losses.half_squared_error(p, t)


@FAST
@given(delta=st.sampled_from([0.1, 1.0, 3.5]), data=st.data())
def test_huber_is_half_squared_error_inside_delta(delta, data):
    shape = data.draw(shapes())
    t = data.draw(arrays(shape, 5.0))
    # |e| < delta with room for rounding in t + e (|e| == delta is in test_edges.py).
    e = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-0.99, 0.99)))
    p = t + e * delta
    assert np.all(np.abs(p - t) <= delta)
    huber, half_squared = _huber_and_half_squared(p, t, delta)
    assert_close(huber, half_squared, f"huber(delta={delta})")


@jax.jit
def _l2_penalty_and_grads(params):
    value, grads = jax.value_and_grad(losses.l2_penalty)(params)
    return value, grads, analytic.l2_penalty_vjp(params, jnp.ones((), F64))


@FAST
@given(data=st.data())
def test_l2_penalty_gradient_is_params(data):
    def leaf(shape):
        return jnp.asarray(data.draw(arrays(shape, 5.0)))

    w_shape = data.draw(shapes(min_rank=0))  # b like w's last axis: few compiles
    params = {
        "dense_0": {"w": leaf(w_shape), "b": leaf(w_shape[-1:])},
        "relu_1": {},
        "head": {"w": leaf((4, 2))},
    }
    value, grads, by_hand = _l2_penalty_and_grads(params)
    expected = sum(0.5 * np.sum(np.square(p)) for p in jax.tree.leaves(params))
    assert_close(value, jnp.asarray(expected), "l2_penalty")
    for tree, what in ((grads, "jax.grad"), (by_hand, "l2_penalty_vjp")):
        assert jax.tree.structure(tree) == jax.tree.structure(params)
        for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
            got = functools.reduce(lambda t, k: t[k.key], path, tree)
            assert_close(got, p, f"{what} {jax.tree_util.keystr(path)}")
