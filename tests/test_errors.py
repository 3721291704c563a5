"""Bad input raises a jaxnet error that names the layer or function, the expected and
the actual value, and the fix; never a raw JAX/XLA message.

The tests assert on the rendered text, ``str(exc)`` plus ``exc.__notes__`` (where
combinators add which sub-layer failed). The checks are Python code at the top of
``init``/``apply`` and of each loss, so under ``jax.jit`` they fire at trace time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import rendered

import jaxnet
from jaxnet import analytic, losses
from jaxnet.testing import check_grads

KEY = jax.random.key(0)
RAW = ("dot_general", "XlaRuntimeError", "Incompatible shapes", "TypeError: ", "Traced")


def raises(exc_type, fn, *args, **kwargs) -> str:
    """Call ``fn``, require ``exc_type``, return its rendered text (no raw XLA)."""
    with pytest.raises(exc_type) as info:
        fn(*args, **kwargs)
    text = rendered(info.value)
    assert not any(raw in text for raw in RAW), text
    return text


def init(layer, shape):
    return layer.init(KEY, shape)[1]


# --------------------------------------------------------------------------- Dense

DENSE_MESSAGE = (
    "Dense(out_dim=16): expected input of shape (..., 3), got (8, 4). "
    "The layer was initialised for in_dim=3."
)


def test_dense_wrong_last_axis():
    dense = jaxnet.Dense(16)
    exc = pytest.raises(
        jaxnet.ShapeError, dense.apply, init(dense, (None, 3)), jnp.ones((8, 4))
    )
    assert str(exc.value) == DENSE_MESSAGE
    assert not getattr(exc.value, "__notes__", [])
    assert isinstance(exc.value, ValueError)  # ShapeError(ValueError)


def test_dense_wrong_last_axis_inside_serial():
    model = jaxnet.serial(jaxnet.Dense(16), jaxnet.Relu())
    text = raises(
        jaxnet.ShapeError, model.apply, init(model, (None, 3)), jnp.ones((8, 4))
    )
    assert text == DENSE_MESSAGE + "\n(in serial layer 'dense_0')"


def test_dense_wrong_last_axis_inside_nested_serial():
    block = jaxnet.serial(jaxnet.Dense(16), jaxnet.Relu())
    model = jaxnet.serial(("block", block), jaxnet.Dense(2))
    with pytest.raises(jaxnet.ShapeError) as info:
        model.apply(init(model, (None, 3)), jnp.ones((8, 4)))
    assert str(info.value) == DENSE_MESSAGE
    # Innermost first: the user reads the path from the failing layer outwards.
    assert info.value.__notes__ == [
        "(in serial layer 'dense_0')",
        "(in serial layer 'block')",
    ]


def test_shape_errors_fire_at_trace_time_under_jit():
    model = jaxnet.serial(jaxnet.Dense(16), jaxnet.Relu())
    params = init(model, (None, 3))
    text = raises(jaxnet.ShapeError, jax.jit(model.apply), params, jnp.ones((8, 4)))
    assert text.startswith(DENSE_MESSAGE + "\n(in serial layer 'dense_0')")
    loss = jax.jit(losses.squared_error)
    text = raises(jaxnet.ShapeError, loss, jnp.ones((4, 3)), jnp.ones((5, 3)))
    assert "squared_error: predictions and targets must have the same shape" in text


def test_dense_last_axis_unknown_at_init():
    text = raises(jaxnet.ShapeError, jaxnet.Dense(4).init, KEY, (None, None))
    assert text == (
        "Dense(out_dim=4): the last axis of the input must be known, got "
        "(None, None). Only batch axes may be None."
    )


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.int64, jnp.bool_])
def test_dense_integer_input(dtype):
    dense = jaxnet.Dense(16)
    x = jnp.ones((8, 3), dtype)
    text = raises(jaxnet.DTypeError, dense.apply, init(dense, (None, 3)), x)
    assert text == (
        f"Dense(out_dim=16): expected a floating-point input, got {jnp.dtype(dtype)} "
        "of shape (8, 3). Cast it first, e.g. x.astype(jnp.float32)."
    )
    model = jaxnet.serial(jaxnet.Dense(16))
    text = raises(jaxnet.DTypeError, model.apply, init(model, (None, 3)), x)
    assert "astype" in text and text.endswith("(in serial layer 'dense_0')")


def test_dense_bad_out_dim():
    for bad in (0, -3, 2.5):
        text = raises(ValueError, jaxnet.Dense, bad)
        assert text == f"Dense(out_dim={bad!r}): out_dim must be an integer >= 1."


# ------------------------------------------------------------------------- losses

ELEMENTWISE = [
    losses.squared_error,
    losses.half_squared_error,
    losses.mse,
    losses.absolute_error,
    losses.huber,
    losses.binary_cross_entropy,
    losses.sigmoid_binary_cross_entropy,
]


@pytest.mark.parametrize("loss", ELEMENTWISE, ids=lambda f: f.__name__)
def test_elementwise_loss_batch_mismatch(loss):
    p, t = jnp.full((4, 3), 0.5), jnp.full((5, 3), 0.5)
    text = raises(jaxnet.ShapeError, loss, p, t)
    assert text == (
        f"{loss.__name__}: predictions and targets must have the same shape, got "
        "predictions (4, 3) and targets (5, 3). Check that the batch sizes match."
    )
    # The hand-written VJP checks (and names itself) the same way.
    vjp = analytic.loss_vjp(loss)
    text = raises(jaxnet.ShapeError, vjp, p, t, jnp.ones(4))
    assert text.startswith(f"{loss.__name__}_vjp: predictions and targets must")


@pytest.mark.parametrize("loss", ELEMENTWISE, ids=lambda f: f.__name__)
def test_elementwise_loss_same_size_different_shape_suggests_reshape(loss):
    text = raises(jaxnet.ShapeError, loss, jnp.full((4, 1), 0.5), jnp.full((4,), 0.5))
    assert "got predictions (4, 1) and targets (4,)" in text
    assert "Reshape one of them (e.g. targets[:, None] or predictions[..., 0])" in text


@pytest.mark.parametrize("loss", ELEMENTWISE, ids=lambda f: f.__name__)
def test_elementwise_loss_integer_predictions(loss):
    text = raises(
        jaxnet.DTypeError, loss, jnp.ones((4, 3), jnp.int32), jnp.ones((4, 3))
    )
    assert text.startswith(f"{loss.__name__}: expected a floating-point predictions")
    assert "got int32 of shape (4, 3)" in text and "astype" in text


def test_softmax_cross_entropy_batch_mismatch():
    text = raises(
        jaxnet.ShapeError,
        losses.softmax_cross_entropy,
        jnp.zeros((4, 3)),
        jnp.zeros((5, 3)),
    )
    assert text == (
        "softmax_cross_entropy: labels must have the logits' shape (4, 3), got (5, 3)."
    )


def test_integer_labels_batch_mismatch():
    loss = losses.softmax_cross_entropy_with_integer_labels
    text = raises(jaxnet.ShapeError, loss, jnp.zeros((4, 3)), jnp.zeros(5, jnp.int32))
    assert text == (
        "softmax_cross_entropy_with_integer_labels: labels must have shape "
        "logits.shape[:-1] = (4,), got (5,)."
    )


def test_integer_labels_given_to_softmax_cross_entropy():
    labels = jnp.asarray([0, 1, 2, 0])
    text = raises(
        jaxnet.DTypeError, losses.softmax_cross_entropy, jnp.zeros((4, 3)), labels
    )
    assert text.startswith(
        "softmax_cross_entropy: expected one-hot or soft float labels of shape (4, 3), "
        "got int64 labels of shape (4,)."
    )
    assert "use softmax_cross_entropy_with_integer_labels" in text
    assert "jax.nn.one_hot(labels, 3)" in text


def test_float_labels_given_to_integer_label_loss():
    loss = losses.softmax_cross_entropy_with_integer_labels
    text = raises(jaxnet.DTypeError, loss, jnp.zeros((4, 3)), jnp.zeros((4, 3)))
    assert (
        "expected integer class ids of shape (4,), got float64 of shape (4, 3)" in text
    )
    assert text.endswith("For one-hot or soft labels use softmax_cross_entropy.")


@pytest.mark.parametrize(
    "labels,seen", [([0, 1, 3, 0], "[0, 3]"), ([0, -1, 2, 0], "[-1, 2]")]
)
def test_out_of_range_integer_labels_eagerly(labels, seen):
    loss = losses.softmax_cross_entropy_with_integer_labels
    text = raises(ValueError, loss, jnp.zeros((4, 3)), jnp.asarray(labels))
    assert text.startswith(
        "softmax_cross_entropy_with_integer_labels: class ids must lie in [0, 3), "
        f"got values in {seen}."
    )
    vjp = analytic.softmax_cross_entropy_with_integer_labels_vjp
    text = raises(ValueError, vjp, jnp.zeros((4, 3)), jnp.asarray(labels), jnp.ones(4))
    assert "class ids must lie in [0, 3)" in text


def test_out_of_range_integer_labels_under_jit():
    """As the message says: under jit the values are unknown, nothing is raised, and
    an id outside [0, num_classes) (negative ones included) picks no class: the loss
    is logsumexp(z) and its gradient softmax(z), from jax.grad and the VJP alike."""
    loss = losses.softmax_cross_entropy_with_integer_labels
    z = jnp.arange(12.0).reshape(4, 3) / 4
    labels = jnp.asarray([3, -1, -4, 1])
    value = jax.jit(loss)(z, labels)
    expected = jax.nn.logsumexp(z, axis=-1).at[3].add(-z[3, 1])
    np.testing.assert_array_equal(value[:3], expected[:3])
    assert abs(float(value[3] - expected[3])) < 1e-12

    auto = jax.jit(jax.grad(lambda z, y: jnp.sum(loss(z, y))))(z, labels)
    vjp = jax.jit(analytic.softmax_cross_entropy_with_integer_labels_vjp)
    by_hand = vjp(z, labels, jnp.ones(4))
    softmax = jax.nn.softmax(z, axis=-1)
    np.testing.assert_array_equal(auto[:3], softmax[:3])
    np.testing.assert_array_equal(by_hand[:3], softmax[:3])


def test_huber_nonpositive_delta():
    text = raises(ValueError, losses.huber, jnp.zeros(3), jnp.zeros(3), delta=0.0)
    assert text == "huber(delta=0.0): delta must be > 0."


# ------------------------------------------------------------------------ Dropout


def test_dropout_training_without_key():
    text = raises(
        jaxnet.MissingKeyError, jaxnet.Dropout(0.5).apply, {}, jnp.ones(3), train=True
    )
    assert text.startswith("Dropout(drop_rate=0.5): training mode needs a PRNG key.")
    assert "model.apply(params, x, train=True, key=jax.random.key(0))" in text
    assert "or pass train=False to evaluate" in text


def test_dropout_training_without_key_inside_serial():
    model = jaxnet.serial(jaxnet.Dense(3), jaxnet.Dropout(0.1))
    params = init(model, (None, 2))
    text = raises(
        jaxnet.MissingKeyError, model.apply, params, jnp.ones((4, 2)), train=True
    )
    assert "train=True, key=" in text
    assert text.endswith("(in serial layer 'dropout_1')")
    # In evaluation (the default) no key is needed: Dropout is the identity.
    np.testing.assert_array_equal(
        model.apply(params, jnp.ones((4, 2))),
        jaxnet.Dense(3).apply(params["dense_0"], jnp.ones((4, 2))),
    )


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan"), "0.5"])
def test_dropout_rate_outside_unit_interval(rate):
    text = raises(ValueError, jaxnet.Dropout, rate)
    assert text == (
        f"Dropout(drop_rate={rate!r}): drop_rate is the probability of zeroing an "
        "element and must lie in [0, 1)."
    )


# --------------------------------------------------------------- gradient checker


def test_check_grads_rejects_a_non_finite_point():
    point = {"a": {"b": jnp.asarray([1.0, jnp.nan, 2.0])}, "c": jnp.ones(2)}
    text = raises(
        ValueError, check_grads, lambda w: jnp.sum(w["a"]["b"]) + jnp.sum(w["c"]), point
    )
    assert text == (
        "check_grads: 'a/b' holds a non-finite value (nan at index (1,)); gradients "
        "are only checked at finite points. Pass finite inputs (an edge point such as "
        "inf is tested with its own assertion)."
    )


def test_check_grads_names_the_argument_and_index_of_an_inf():
    x = jnp.asarray([[1.0, 2.0], [jnp.inf, 2.0]])
    text = raises(
        ValueError,
        check_grads,
        lambda w, x: jnp.sum(w * x),
        jnp.ones(2),
        x,
        argnums=(0, 1),
        names=("w", "x"),
    )
    assert text.startswith(
        "check_grads: 'x' holds a non-finite value (inf at index (1, 0))"
    )


def test_check_grads_rejects_an_integer_output():
    text = raises(
        ValueError, check_grads, lambda x: jnp.argmax(x), jnp.ones(3), name="argmax"
    )
    assert text == (
        "check_grads: argmax must return real floating-point arrays (a scalar or any "
        "pytree of them), got ['int64']."
    )


def test_check_grads_rejects_integer_leaves_in_argnums():
    text = raises(
        ValueError,
        check_grads,
        lambda p: jnp.sum(p["w"]) * 1.0,
        {"w": jnp.ones(2), "ids": jnp.arange(2)},
    )
    assert text.startswith("check_grads: 'ids' is int64; only floating-point leaves")
    assert "Move integer inputs" in text


# ------------------------------------------------------------ params and models


def test_params_from_another_model():
    model = jaxnet.serial(jaxnet.Dense(16), jaxnet.Relu())
    other = jaxnet.serial(jaxnet.Dense(4), jaxnet.Tanh(), jaxnet.Dense(2))
    text = raises(
        jaxnet.ParamsError, model.apply, init(other, (None, 3)), jnp.ones((2, 3))
    )
    assert text == (
        "serial(Dense(out_dim=16), Relu()): params do not match the model: missing "
        "['relu_1'], unexpected ['dense_2', 'tanh_1']. Pass the params returned by "
        "this model's init."
    )


def test_dense_params_without_bias():
    params = init(jaxnet.Dense(3, use_bias=False), (None, 2))
    text = raises(jaxnet.ParamsError, jaxnet.Dense(3).apply, params, jnp.ones((1, 2)))
    assert "Dense(out_dim=3): params do not match the model: missing ['b']" in text


def test_params_not_a_dict():
    text = raises(jaxnet.ParamsError, jaxnet.Relu().apply, [], jnp.ones(2))
    assert text == (
        "Relu(): expected params to be a dict with keys [], got list. Pass the params "
        "returned by this model's init."
    )


@pytest.mark.parametrize("where", ["init", "apply"])
def test_fan_in_sum_unequal_shapes(where):
    layer = jaxnet.FanInSum()
    if where == "init":
        text = raises(jaxnet.ShapeError, layer.init, KEY, ((None, 3), (None, 4)))
        shapes = "(None, 3), (None, 4)"
    else:
        text = raises(
            jaxnet.ShapeError, layer.apply, {}, (jnp.ones((2, 3)), jnp.ones((2, 4)))
        )
        shapes = "(2, 3), (2, 4)"
    assert text == (
        f"FanInSum(): all inputs must have the same shape, got {shapes}. "
        "Project the branches to a common width first."
    )


def test_fan_in_sum_inside_a_model_names_the_branches():
    model = jaxnet.serial(
        jaxnet.FanOut(2),
        jaxnet.parallel(jaxnet.Dense(4), jaxnet.Dense(5)),
        jaxnet.FanInSum(),
    )
    text = raises(jaxnet.ShapeError, model.init, KEY, (None, 3))
    assert "all inputs must have the same shape, got (None, 4), (None, 5)" in text
    assert text.endswith("(in serial layer 'fan_in_sum_2')")


def test_fan_in_without_a_tuple():
    text = raises(jaxnet.ShapeError, jaxnet.FanInSum().init, KEY, (None, 3))
    assert text == (
        "FanInSum(): expected a tuple of input shapes, got (None, 3). "
        "Put FanOut(n) and parallel(...) before it."
    )


@pytest.mark.parametrize("where", ["init", "apply"])
def test_fan_in_concat_mismatch(where):
    layer = jaxnet.FanInConcat()
    if where == "init":
        text = raises(jaxnet.ShapeError, layer.init, KEY, ((None, 3), (4, 4)))
        shapes = "(None, 3), (4, 4)"
    else:
        text = raises(
            jaxnet.ShapeError, layer.apply, {}, (jnp.ones((2, 3)), jnp.ones((3, 4)))
        )
        shapes = "(2, 3), (3, 4)"
    assert text == (
        f"FanInConcat(axis=-1): inputs must agree on every axis but -1, got {shapes}."
    )


@pytest.mark.parametrize("where", ["init", "apply"])
def test_reshape_wrong_element_count(where):
    layer = jaxnet.Reshape((4, 4))
    if where == "init":
        text = raises(jaxnet.ShapeError, layer.init, KEY, (None, 15))
    else:
        text = raises(jaxnet.ShapeError, layer.apply, {}, jnp.ones((2, 15)))
    assert text == (
        "Reshape(shape=(4, 4)): expected 16 elements per example, got 15. "
        "The per-example shape must keep the number of elements."
    )


def test_reshape_free_size_that_does_not_divide():
    text = raises(jaxnet.ShapeError, jaxnet.Reshape((4, -1)).init, KEY, (None, 15))
    assert text == (
        "Reshape(shape=(4, -1)): cannot reshape 15 elements per example into (4, -1)."
    )
    text = raises(ValueError, jaxnet.Reshape, (-1, -1))
    assert text == (
        "Reshape(shape=(-1, -1)): at most one -1 and no other negative sizes allowed."
    )


@pytest.mark.parametrize("layer", [jaxnet.Flatten(), jaxnet.Reshape((-1,))], ids=repr)
def test_free_non_batch_axis(layer):
    text = raises(jaxnet.ShapeError, layer.init, KEY, (None, None, 3))
    assert text == (
        f"{layer.desc}: only the first (batch) axis may be free, got (None, None, 3)."
    )


@pytest.mark.parametrize(
    "layer,shape",
    [
        (jaxnet.Dense(3), (None, -3)),
        (jaxnet.Dense(3), (-2, 4)),
        (jaxnet.serial(jaxnet.Dense(3), jaxnet.Relu()), (None, -5)),
        (jaxnet.Flatten(), (None, 2, -7)),
    ],
    ids=["Dense-last", "Dense-batch", "serial", "Flatten"],
)
def test_negative_sizes_given_to_init(layer, shape):
    text = raises(jaxnet.ShapeError, layer.init, KEY, shape)
    assert text == (
        f"{layer.desc}.init: invalid shape {shape}: sizes must be >= 0, or None/-1 "
        "for a free (batch) axis."
    )


def test_minus_one_is_a_free_axis_not_an_error():
    assert jaxnet.Dense(3).init(KEY, (-1, 4))[0] == (None, 3)


def test_not_a_shape_given_to_init():
    text = raises(jaxnet.ShapeError, jaxnet.Relu().init, KEY, "784")
    assert text == (
        "Relu().init: expected a shape such as (None, 784), an example array, or a "
        "tuple of those; got str: '784'."
    )


def test_residual_branch_must_keep_the_shape():
    text = raises(
        jaxnet.ShapeError, jaxnet.residual(jaxnet.Dense(5)).init, KEY, (None, 4)
    )
    assert text == (
        "residual(Dense(out_dim=5)): the branch maps (None, 4) to (None, 5); x + f(x) "
        "needs equal shapes. End the branch with a layer that maps back to the input "
        "width."
    )


# ----------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "build,position,name",
    [
        (lambda: jaxnet.serial(jaxnet.Relu), 0, "Relu"),
        (lambda: jaxnet.serial(jaxnet.Dense(3), jaxnet.Tanh), 1, "Tanh"),
        (lambda: jaxnet.parallel(jaxnet.Dense), 0, "Dense"),
        (lambda: jaxnet.residual(jaxnet.Relu), 0, "Relu"),
        (lambda: jaxnet.serial(("head", jaxnet.Softmax)), 0, "Softmax"),
    ],
    ids=["serial", "second", "parallel", "residual", "named"],
)
def test_uncalled_constructor(build, position, name):
    text = raises(TypeError, build)
    assert f"layer {position} must be a jaxnet.Layer, got function {name}." in text
    assert text.endswith(
        f"Constructors are always called: write jaxnet.{name}(), not jaxnet.{name}."
    )


def test_plain_function_in_serial_suggests_lambda():
    text = raises(TypeError, jaxnet.serial, jnp.tanh)
    assert text.startswith("serial: layer 0 must be a jaxnet.Layer, got ")
    assert text.endswith("Wrap a plain function as a layer: jaxnet.Lambda(tanh).")


def test_duplicate_and_empty_combinators():
    text = raises(ValueError, jaxnet.serial, ("h", jaxnet.Relu()), ("h", jaxnet.Tanh()))
    assert text == (
        "serial: duplicate layer name 'h' at positions 0 and 1; parameter names must "
        "be unique. Rename one of them."
    )
    assert (
        raises(ValueError, jaxnet.serial)
        == "serial: expected at least one layer, got none."
    )
    assert (
        raises(ValueError, jaxnet.FanOut, 0)
        == "FanOut(num=0): num must be an integer >= 1."
    )


# ------------------------------------------------- checks of a whole call (Layer wrapper)


def mlp(width):
    return jaxnet.serial(
        jaxnet.Dense(width), jaxnet.Relu(), jaxnet.Dropout(0.5), jaxnet.Dense(3)
    )


@pytest.mark.parametrize("jit", [False, True])
def test_params_of_another_width_are_refused(jit):
    """Same names, other shapes: the params of serial(Dense(32), ...) used to run
    through serial(Dense(16), ...) (and Dense(16) returned 32 columns)."""
    other = init(mlp(32), (None, 4))
    apply = jax.jit(mlp(16).apply) if jit else mlp(16).apply
    text = raises(jaxnet.ParamsError, apply, other, jnp.ones((2, 4)))
    assert text.startswith("serial(Dense(out_dim=16), Relu(), Dropout(drop_rate=0.5)")
    assert "dense_0/w: expected shape (4, 16) (floating-point), got (4, 32)" in text
    assert "dense_3/w: expected shape (16, 3) (floating-point), got (32, 3)" in text
    text = raises(
        jaxnet.ParamsError,
        jaxnet.Dense(16).apply,
        init(jaxnet.Dense(32), (None, 4)),
        jnp.ones((2, 4)),
    )
    assert text.startswith("Dense(out_dim=16): params do not match the model for input")
    assert "b: expected shape (16,) (floating-point), got (32,)" in text


def test_params_of_another_dtype_kind_are_refused_other_precisions_accepted():
    dense = jaxnet.Dense(2)
    params = init(dense, (None, 3))
    ints = jax.tree.map(lambda a: a.astype(jnp.int32), params)
    text = raises(jaxnet.ParamsError, dense.apply, ints, jnp.ones((1, 3)))
    assert (
        "w: expected shape (3, 2) (floating-point), got (3, 2) (integer, int32)" in text
    )
    for dt in (jnp.bfloat16, jnp.complex64):  # mixed precision; a complex-step probe
        cast = jax.tree.map(lambda a, dt=dt: a.astype(dt), params)
        assert dense.apply(cast, jnp.ones((1, 3))).shape == (1, 2)


def test_wrong_input_keeps_the_layers_own_message():
    """Params and input disagree because the *input* is wrong: the layer's message
    (expected (..., 3)) wins over the params' (which would blame the params)."""
    dense = jaxnet.Dense(16)
    exc = pytest.raises(
        jaxnet.ShapeError, mlp(16).apply, init(mlp(16), (None, 3)), jnp.ones((8, 4))
    )
    assert str(exc.value) == DENSE_MESSAGE
    assert dense.apply(init(dense, (None, 3)), jnp.ones((8, 3))).shape == (8, 16)


def test_unknown_option_is_refused_with_a_suggestion():
    model = mlp(8)
    params = init(model, (None, 4))
    text = raises(TypeError, model.apply, params, jnp.ones((2, 4)), trian=True)
    assert text == (
        "serial(Dense(out_dim=8), Relu(), Dropout(drop_rate=0.5), Dense(out_dim=3))"
        ".apply: unknown option trian=; no layer of this model reads it. The options "
        "it accepts: key, train. Did you mean 'train'?"
    )
    # key and train are accepted by every model, read or not.
    dense = jaxnet.Dense(2)
    y = dense.apply(init(dense, (None, 3)), jnp.ones((1, 3)), train=True, key=KEY)
    assert y.shape == (1, 2)
    text = raises(
        TypeError, dense.apply, init(dense, (None, 3)), jnp.ones((1, 3)), mask=1
    )
    assert "unknown option mask=" in text and "accepts: key, train." in text


def test_state_is_an_option_of_stateful_models_only():
    """A model without state lists no ``state`` option, tolerates the empty state
    generic code passes, and refuses real state (it would be dropped silently)."""
    model = mlp(8)
    params, x = init(model, (None, 4)), jnp.ones((2, 4))
    for empty in (None, {}):
        assert model.apply(params, x, state=empty).shape == (2, 3)
    text = raises(TypeError, model.apply, params, x, state={"a": jnp.ones(2)})
    assert "unknown option state=" in text and "accepts: key, train." in text
    bn = jaxnet.serial(jaxnet.Dense(3), jaxnet.BatchNorm())
    _, state = bn.init_state((None, 4))
    text = raises(TypeError, bn.apply, init(bn, (None, 4)), x, stat=state)
    assert "accepts: key, state, train. Did you mean 'state'?" in text


def test_options_read_by_a_sub_layer_are_accepted():
    attn = jaxnet.serial(jaxnet.MultiHeadAttention(2), jaxnet.Dense(4))
    params = init(attn, (None, 3, 4))
    mask = jnp.tril(jnp.ones((3, 3), bool))
    x = jax.random.normal(KEY, (1, 3, 4))
    masked = attn.apply(params, x, mask=mask)
    # The mask reaches the attention: the first position sees only itself.
    assert not np.allclose(masked, attn.apply(params, x))
    assert masked.shape == (1, 3, 4)
    assert "mask" in attn.options and "mask" in jaxnet.Stack(attn, 2).options
    # A user layer taking **kwargs declares nothing: the model accepts any option.
    user = jaxnet.Layer("mine", lambda k, s: (s, {}), lambda p, x, **kw: x * 2)
    assert user.options is None
    assert jaxnet.serial(user, jaxnet.Relu()).apply(
        {"mine_0": {}, "relu_1": {}}, jnp.ones(2), anything=1
    ).shape == (2,)


def test_traced_train_flag_says_it_must_be_static():
    model = mlp(8)
    params = init(model, (None, 4))
    text = raises(
        TypeError,
        jax.jit(model.apply),
        params,
        jnp.ones((2, 4)),
        train=True,
        key=KEY,
    )
    assert text.startswith("serial(Dense(out_dim=8)")
    assert "train= is a traced value" in text
    assert "static_argnames='train'" in text
    step = jax.jit(model.apply, static_argnames="train")  # the fix the message names
    assert step(params, jnp.ones((2, 4)), train=True, key=KEY).shape == (2, 3)


def test_none_input_names_the_layer():
    model = mlp(8)
    text = raises(jaxnet.DTypeError, model.apply, init(model, (None, 4)), None)
    assert text.startswith("serial(Dense(out_dim=8)")
    assert "expected an array input, got None" in text
