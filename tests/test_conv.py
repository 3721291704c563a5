"""Convolution and pooling: equivalence with Flax linen, hand-written backward in
configurations the registry does not hold, max-pool ties, and bad-input messages.

The registry cases (``jaxnet/testing/cases/conv.py``) already run through the battery and the
analytic tier (tests/test_layers.py, tests/test_analytic.py); this file adds what they
cannot express.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import rendered

import jaxnet
from jaxnet.testing import check_grads, tolerance

# ------------------------------------------------------ equivalence with flax.linen


def _flax_conv(module: nn.Module):
    def run(params: dict, x: jax.Array) -> jax.Array:
        p = {"kernel": params["w"]}
        if "b" in params:
            p["bias"] = params["b"]
        return module.apply({"params": p}, x)

    return run


def _flax_pool(fn, *args, **kwargs):
    return lambda params, x: fn(x, *args, **kwargs)


def _sum_pool(x, window, strides, padding):
    return nn.pooling.pool(x, 0.0, jax.lax.add, window, strides, padding)


# (id, jaxnet layer, flax reference, input shape). float32 throughout.
FLAX_CASES = [
    (
        "Conv1d(SAME)",
        jaxnet.Conv(4, 3),
        _flax_conv(nn.Conv(4, (3,))),
        (2, 7, 3),
    ),
    (
        "Conv1d(strides=2, explicit pad, dilation=2)",
        jaxnet.Conv(4, 3, strides=2, padding=((2, 1),), dilation=2),
        _flax_conv(nn.Conv(4, (3,), strides=2, padding=((2, 1),), kernel_dilation=2)),
        (2, 9, 3),
    ),
    (
        "Conv2d(SAME, strides=2)",
        jaxnet.Conv(5, (3, 3), strides=2),
        _flax_conv(nn.Conv(5, (3, 3), strides=2)),
        (2, 7, 6, 3),
    ),
    (
        "Conv2d(VALID, dilation=(2, 1))",
        jaxnet.Conv(5, (3, 2), padding="VALID", dilation=(2, 1)),
        _flax_conv(nn.Conv(5, (3, 2), padding="VALID", kernel_dilation=(2, 1))),
        (2, 7, 6, 3),
    ),
    (
        "Conv2d(groups=2, no bias)",
        jaxnet.Conv(6, (3, 3), groups=2, use_bias=False),
        _flax_conv(nn.Conv(6, (3, 3), feature_group_count=2, use_bias=False)),
        (2, 6, 6, 4),
    ),
    (
        "Conv2d(depthwise, strides=2)",
        jaxnet.Conv(6, (3, 3), strides=2, groups=3),
        _flax_conv(nn.Conv(6, (3, 3), strides=2, feature_group_count=3)),
        (2, 6, 6, 3),
    ),
    (
        "Conv3d(strides=(1, 2, 2), VALID)",
        jaxnet.Conv(3, (2, 3, 2), strides=(1, 2, 2), padding="VALID"),
        _flax_conv(nn.Conv(3, (2, 3, 2), strides=(1, 2, 2), padding="VALID")),
        (2, 4, 6, 5, 2),
    ),
    (
        "ConvTranspose1d(VALID, strides=3, dilation=2)",
        jaxnet.ConvTranspose(3, 2, strides=3, padding="VALID", dilation=2),
        _flax_conv(
            nn.ConvTranspose(3, (2,), strides=(3,), padding="VALID", kernel_dilation=2)
        ),
        (2, 4, 2),
    ),
    (
        "ConvTranspose2d(SAME, strides=2)",
        jaxnet.ConvTranspose(4, (3, 3), strides=2),
        _flax_conv(nn.ConvTranspose(4, (3, 3), strides=(2, 2))),
        (2, 4, 5, 3),
    ),
    (
        "ConvTranspose2d(explicit pad)",
        jaxnet.ConvTranspose(4, (3, 2), strides=(2, 1), padding=((1, 2), (0, 1))),
        _flax_conv(
            nn.ConvTranspose(4, (3, 2), strides=(2, 1), padding=((1, 2), (0, 1)))
        ),
        (2, 4, 5, 3),
    ),
    (
        "MaxPool2d(SAME, strides=2)",
        jaxnet.MaxPool((3, 3), strides=2, padding="SAME"),
        _flax_pool(nn.max_pool, (3, 3), (2, 2), "SAME"),
        (2, 7, 6, 3),
    ),
    (
        "AvgPool2d(SAME, strides=2)",
        jaxnet.AvgPool((3, 3), strides=2, padding="SAME"),
        _flax_pool(nn.avg_pool, (3, 3), (2, 2), "SAME"),
        (2, 7, 6, 3),
    ),
    (
        "AvgPool2d(SAME, count_include_pad=False)",
        jaxnet.AvgPool((3, 3), strides=2, padding="SAME", count_include_pad=False),
        # Flax divides by pooled jnp.ones, float64 under x64: cast back.
        lambda params, x: nn.avg_pool(
            x, (3, 3), (2, 2), "SAME", count_include_pad=False
        ).astype(x.dtype),
        (2, 7, 6, 3),
    ),
    (
        "SumPool2d(SAME, strides=(2, 3))",
        jaxnet.SumPool((2, 3), strides=(2, 3), padding="SAME"),
        _flax_pool(_sum_pool, (2, 3), (2, 3), "SAME"),
        (2, 7, 6, 3),
    ),
    (
        "GlobalAvgPool",
        jaxnet.GlobalAvgPool(),
        lambda params, x: jnp.mean(x, axis=(1, 2)),
        (2, 5, 4, 3),
    ),
]


@pytest.mark.parametrize(
    "layer, reference, shape",
    [c[1:] for c in FLAX_CASES],
    ids=[c[0] for c in FLAX_CASES],
)
def test_matches_flax_float32(layer, reference, shape):
    k_init, k_x = jax.random.split(jax.random.key(0))
    out_shape, params = layer.init(k_init, (None, *shape[1:]))
    x = jax.random.normal(k_x, shape, jnp.float32)

    @jax.jit  # one compiled program for both sides, rather than op-by-op
    def both(params, x):
        with jax.numpy_dtype_promotion("standard"):  # flax's avg_pool: x / int
            return layer.apply(params, x), reference(params, x)

    y, expected = both(params, x)
    assert y.dtype == expected.dtype == jnp.float32
    assert y.shape == expected.shape == (shape[0], *out_shape[1:])
    tol = tolerance(jnp.float32, "analytic")
    np.testing.assert_allclose(y, expected, rtol=tol.rtol, atol=tol.atol)


def test_conv_params_are_flax_layout():
    # Same key, same initialiser (lecun_normal): the very same kernel as Flax's.
    x = jnp.zeros((1, 6, 6, 4), jnp.float32)
    _, ours = jaxnet.Conv(6, (3, 3), groups=2).init(jax.random.key(3), x.shape)
    theirs = nn.Conv(6, (3, 3), feature_group_count=2).init(jax.random.key(3), x)
    assert ours["w"].shape == theirs["params"]["kernel"].shape == (3, 3, 2, 6)
    assert ours["b"].shape == theirs["params"]["bias"].shape == (6,)


# --------------------------------------------- analytic backward beyond the registry


def _problem(layer: jaxnet.Layer, shape: tuple[int, ...], draw: Any = None):
    k_init, k_x, k_g = jax.random.split(jax.random.key(1), 3)
    _, params = layer.init(k_init, (None, *shape[1:]))
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    x = (
        jax.random.normal(k_x, shape, jnp.float64)
        if draw is None
        else draw(shape).astype(jnp.float64)
    )
    y = layer.apply(params, x)
    g = jax.random.normal(k_g, y.shape, jnp.float64)

    def f(point):
        return jnp.sum(g * layer.apply(point["params"], point["x"]))

    def analytic(point):
        dp, dx = layer.backward(point["params"], point["x"], y, g)
        return {"params": dp, "x": dx}

    return jax.jit(f), jax.jit(analytic), {"params": params, "x": x}


# Settings the registry does not cover: every padding kind, strides with dilation,
# groups with strides in 3-d, transposed convolutions of each padding, pools in 1-d
# and 3-d, the non-default AvgPool divisor.
BACKWARD_CASES = [
    ("Conv1d(strides=3, pad=(2, 0), dilation=2)",
     jaxnet.Conv(2, 3, strides=3, padding=((2, 0),), dilation=2), (2, 9, 3)),
    ("Conv3d(SAME, strides=(2, 3, 1), dilation=(1, 1, 2), groups=2)",
     jaxnet.Conv(4, (2, 2, 2), strides=(2, 3, 1), dilation=(1, 1, 2), groups=2),
     (1, 3, 5, 4, 4)),
    ("ConvTranspose2d(explicit pad, no bias)",
     jaxnet.ConvTranspose(2, (3, 2), strides=(2, 1), padding=((1, 2), (0, 1)),
                          use_bias=False), (2, 3, 4, 2)),
    ("MaxPool1d(explicit pad)", jaxnet.MaxPool(3, strides=2, padding=((1, 2),)),
     (2, 7, 2)),
    ("AvgPool2d(count_include_pad=False)",
     jaxnet.AvgPool((3, 2), strides=(2, 1), padding="SAME", count_include_pad=False),
     (2, 5, 4, 2)),
    ("SumPool3d(SAME, strides=2)", jaxnet.SumPool((2, 3, 2), strides=2, padding="SAME"),
     (2, 3, 5, 4, 2)),
]  # fmt: skip


@pytest.mark.parametrize(
    "layer, shape", [c[1:] for c in BACKWARD_CASES], ids=[c[0] for c in BACKWARD_CASES]
)
def test_backward_equals_jax_grad(layer, shape):
    f, analytic, point = _problem(layer, shape)
    report = check_grads(f, point, analytic=analytic, method=None)
    report.assert_ok()
    assert max(r.max_rel for r in report.rows) < 1e-13


# Max-pool ties: constant windows and integer-valued inputs with many repeated maxima.
# Convention: the first maximal element in row-major window order takes the whole
# cotangent, as jax.grad (XLA select-and-scatter with >=) does; the two agree exactly.
TIE_INPUTS = {
    "constant": lambda shape: jnp.ones(shape),
    "integers": lambda shape: jnp.floor(
        jax.random.uniform(jax.random.key(5), shape) * 3
    ),
}


@pytest.mark.parametrize("inputs", TIE_INPUTS, ids=lambda s: s)
def test_max_pool_ties_first_maximum_takes_gradient(inputs):
    layer = jaxnet.MaxPool((2, 2), strides=1, padding="SAME")
    f, analytic, point = _problem(layer, (2, 4, 4, 2), TIE_INPUTS[inputs])
    report = check_grads(f, point, analytic=analytic, method=None)
    report.assert_ok()  # a different tie rule would be off by O(1), not rounding
    assert report.rows[0].max_rel < 1e-13


def test_max_pool_tie_convention_by_hand():
    # One 2x2 window of equal values: all the gradient goes to its top-left element.
    layer = jaxnet.MaxPool((2, 2))
    x = jnp.ones((1, 2, 2, 1), jnp.float64)
    y = layer.apply({}, x)
    _, dx = layer.backward({}, x, y, jnp.full(y.shape, 3.0, jnp.float64))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[3.0, 0.0], [0.0, 0.0]])


def test_avg_pool_same_divisor_counts_padding():
    # count_include_pad=True (Flax's default): a corner window of a 3x3 SAME pool
    # holds 4 real ones and 5 padded zeros, so it averages to 4/9; with False, to 1.
    x = jnp.ones((1, 3, 3, 1), jnp.float64)
    with_pad = jaxnet.AvgPool((3, 3), padding="SAME").apply({}, x)[0, :, :, 0]
    without = jaxnet.AvgPool((3, 3), padding="SAME", count_include_pad=False)
    np.testing.assert_allclose(with_pad[0, 0], 4 / 9, rtol=1e-15)
    np.testing.assert_allclose(with_pad[1, 1], 1.0, rtol=1e-15)
    np.testing.assert_allclose(without.apply({}, x)[0, :, :, 0], np.ones((3, 3)))


# -------------------------------------------------------------------- bad inputs


def test_conv_wrong_rank_message():
    layer = jaxnet.Conv(8, (3, 3))
    _, params = layer.init(jax.random.key(0), (None, 28, 28, 1))
    with pytest.raises(jaxnet.ShapeError) as info:
        layer.apply(params, np.zeros((28, 28), np.float32))
    assert str(info.value) == (
        "Conv(out_channels=8, kernel_size=(3, 3)): expected input of shape (batch, "
        "height, width, channels) (rank 4), got (28, 28). Add the missing batch or "
        "channel axis, e.g. x[None] or x[..., None]."
    )


# (id, layer, init shape or None, bad input or init shape, fragments)
APPLY_ERRORS = [
    (
        "Conv1d rank",
        lambda: jaxnet.Conv(4, 3),
        (None, 5, 2),
        np.zeros((2, 5, 5, 2)),
        ["Conv(out_channels=4, kernel_size=(3,))",
         "(batch, length, channels) (rank 3)", "got (2, 5, 5, 2)"],
    ),
    (
        "Conv3d rank",
        lambda: jaxnet.Conv(4, (2, 2, 2)),
        (None, 3, 3, 3, 2),
        np.zeros((2, 3, 3, 2)),
        ["(batch, depth, height, width, channels) (rank 5)", "got (2, 3, 3, 2)"],
    ),
    (
        "Conv channels",
        lambda: jaxnet.Conv(8, (3, 3)),
        (None, 5, 5, 3),
        np.zeros((2, 5, 5, 4)),
        ["Conv(out_channels=8, kernel_size=(3, 3))",
         "expected input with 3 channels (last axis), got shape (2, 5, 5, 4)",
         "initialised for in_channels=3"],
    ),
    (
        "Conv groups channels",
        lambda: jaxnet.Conv(4, (3, 3), groups=2),
        (None, 5, 5, 4),
        np.zeros((2, 5, 5, 3)),
        ["Conv(out_channels=4, kernel_size=(3, 3), groups=2)",
         "in_channels=3 is not divisible by groups=2"],
    ),
    (
        "Conv VALID kernel too large",
        lambda: jaxnet.Conv(2, (3, 3), padding="VALID", dilation=2),
        (None, 8, 8, 1),
        np.zeros((2, 4, 8, 1)),
        ["Conv(out_channels=2, kernel_size=(3, 3), padding='VALID', dilation=(2, 2))",
         "spatial axis 0 has size 4", "smaller than the window's effective size 5",
         "padding='SAME'"],
    ),
    (
        "ConvTranspose channels",
        lambda: jaxnet.ConvTranspose(2, (3, 3), strides=2),
        (None, 4, 4, 3),
        np.zeros((2, 4, 4, 2)),
        ["ConvTranspose(out_channels=2, kernel_size=(3, 3), strides=(2, 2))",
         "expected input with 3 channels"],
    ),
    (
        "MaxPool rank",
        lambda: jaxnet.MaxPool((2, 2)),
        (None, 4, 4, 1),
        np.zeros((4, 4)),
        ["MaxPool(window=(2, 2))", "(batch, height, width, channels) (rank 4)",
         "got (4, 4)"],
    ),
    (
        "AvgPool window too large",
        lambda: jaxnet.AvgPool((3, 3)),
        (None, 4, 4, 1),
        np.zeros((1, 2, 4, 1)),
        ["AvgPool(window=(3, 3))", "spatial axis 0 has size 2",
         "effective size 3"],
    ),
    (
        "GlobalAvgPool rank",
        lambda: jaxnet.GlobalAvgPool(),
        (None, 4, 4, 1),
        np.zeros((2, 3)),
        ["GlobalAvgPool()", "(batch, *spatial, channels) (rank >= 3)", "got (2, 3)"],
    ),
]  # fmt: skip


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
    "make, init_shape, bad, fragments",
    [e[1:] for e in APPLY_ERRORS],
    ids=[e[0] for e in APPLY_ERRORS],
)
def test_apply_error_message(make, init_shape, bad, fragments, jit):
    layer = make()
    _, params = layer.init(jax.random.key(0), init_shape)
    apply = jax.jit(layer.apply) if jit else layer.apply
    with pytest.raises(jaxnet.ShapeError) as info:
        apply(params, bad)
    message = rendered(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert "conv_general_dilated" not in message and "reduce_window" not in message


INIT_ERRORS = [
    (
        "groups",
        lambda: jaxnet.Conv(4, (3, 3), groups=2),
        (None, 5, 5, 3),
        ["in_channels=3 is not divisible by groups=2"],
    ),
    (
        "VALID kernel too large",
        lambda: jaxnet.Conv(4, (5, 5), padding="VALID"),
        (None, 3, 8, 2),
        ["spatial axis 0 has size 3", "effective size 5"],
    ),
    (
        "rank",
        lambda: jaxnet.Conv(4, (3, 3)),
        (None, 28, 28),
        ["expected input of shape (batch, height, width, channels) (rank 4), got "
         "(None, 28, 28)"],
    ),
    (
        "free channels",
        lambda: jaxnet.Conv(4, 3),
        (None, 5, None),
        ["channel (last) axis of the input must be known"],
    ),
    (
        "pool rank",
        lambda: jaxnet.SumPool((2, 2, 2)),
        (None, 4, 4, 1),
        ["SumPool(window=(2, 2, 2))", "(rank 5)", "got (None, 4, 4, 1)"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    "make, init_shape, fragments",
    [e[1:] for e in INIT_ERRORS],
    ids=[e[0] for e in INIT_ERRORS],
)
def test_init_error_message(make, init_shape, fragments):
    with pytest.raises(jaxnet.ShapeError) as info:
        make().init(jax.random.key(0), init_shape)
    message = rendered(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"


def test_error_names_the_sublayer_in_a_model():
    model = jaxnet.serial(jaxnet.Conv(4, (3, 3)), jaxnet.Relu(), jaxnet.GlobalAvgPool())
    _, params = model.init(jax.random.key(0), (None, 6, 6, 3))
    with pytest.raises(jaxnet.ShapeError) as info:
        model.apply(params, np.zeros((2, 6, 6, 1)))
    message = rendered(info.value)
    assert "expected input with 3 channels" in message
    assert "(in serial layer 'conv_0')" in message


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: jaxnet.Conv(4, (3, 3), groups=3), "groups must be an integer >= 1 "
         "dividing out_channels=4"),
        (lambda: jaxnet.Conv(0, 3), "out_channels must be an integer >= 1"),
        (lambda: jaxnet.Conv(4, (3, 3), strides=(1, 2, 3)), "strides must be an int "
         "or 2 ints >= 1"),
        (lambda: jaxnet.Conv(4, (3, 3), padding="FULL"), "padding must be 'SAME', "
         "'VALID'"),
        (lambda: jaxnet.Conv(4, (1, 1, 1, 1)), "kernel_size must be 1, 2 or 3 ints"),
        (lambda: jaxnet.MaxPool((2, 2), padding=((1, 1),)), "padding must be"),
    ],
    ids=["groups", "out_channels", "strides", "padding", "rank 4", "pool padding"],
)  # fmt: skip
def test_bad_settings_rejected_at_construction(make, fragment):
    with pytest.raises(ValueError, match=None) as info:
        make()
    assert fragment in str(info.value), str(info.value)


def test_conv_rejects_integer_input_and_wrong_kernel():
    layer = jaxnet.Conv(2, (3, 3))
    _, params = layer.init(jax.random.key(0), (None, 4, 4, 1))
    with pytest.raises(jaxnet.DTypeError, match=r"Conv\(out_channels=2.*int32"):
        layer.apply(params, jnp.zeros((1, 4, 4, 1), jnp.int32))
    bad = {**params, "w": jnp.zeros((2, 2, 1, 2))}
    with pytest.raises(jaxnet.ShapeError, match=r"params\['w'\] has shape \(2, 2, 1"):
        layer.apply(bad, jnp.zeros((1, 4, 4, 1)))
