"""Convolution (``jaxnet/nn/_conv.py``): equivalence with Flax linen, the hand-written
backward in configurations the registry does not hold, and bad-input messages.

The registry cases (``jaxnet/testing/cases/conv.py``) already run through the battery
and the analytic tier (tests/nn/test_layers.py, tests/test_analytic.py); this file adds
what they cannot express. Pooling is in tests/nn/test_pool.py.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    assert_apply_error,
    assert_init_error,
    assert_matches_reference,
    rendered,
    vjp_problem,
)

import jaxnet
from jaxnet.testing import check_grads

# ------------------------------------------------------ equivalence with flax.linen


def _flax_conv(module: nn.Module):
    def run(params: dict, x: jax.Array) -> jax.Array:
        p = {"kernel": params["w"]}
        if "b" in params:
            p["bias"] = params["b"]
        return module.apply({"params": p}, x)

    return run


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
]


@pytest.mark.parametrize(
    "layer, reference, shape",
    [c[1:] for c in FLAX_CASES],
    ids=[c[0] for c in FLAX_CASES],
)
def test_matches_flax_float32(layer, reference, shape):
    assert_matches_reference(layer, reference, shape)


def test_conv_params_are_flax_layout():
    # Same key, same initialiser (lecun_normal): the very same kernel as Flax's.
    x = jnp.zeros((1, 6, 6, 4), jnp.float32)
    _, ours = jaxnet.Conv(6, (3, 3), groups=2).init(jax.random.key(3), x.shape)
    theirs = nn.Conv(6, (3, 3), feature_group_count=2).init(jax.random.key(3), x)
    assert ours["w"].shape == theirs["params"]["kernel"].shape == (3, 3, 2, 6)
    assert ours["b"].shape == theirs["params"]["bias"].shape == (6,)


# --------------------------------------------- analytic backward beyond the registry

# Settings the registry does not cover: every padding kind, strides with dilation,
# groups with strides in 3-d, transposed convolutions of each padding.
BACKWARD_CASES = [
    ("Conv1d(strides=3, pad=(2, 0), dilation=2)",
     jaxnet.Conv(2, 3, strides=3, padding=((2, 0),), dilation=2), (2, 9, 3)),
    ("Conv3d(SAME, strides=(2, 3, 1), dilation=(1, 1, 2), groups=2)",
     jaxnet.Conv(4, (2, 2, 2), strides=(2, 3, 1), dilation=(1, 1, 2), groups=2),
     (1, 3, 5, 4, 4)),
    ("ConvTranspose2d(explicit pad, no bias)",
     jaxnet.ConvTranspose(2, (3, 2), strides=(2, 1), padding=((1, 2), (0, 1)),
                          use_bias=False), (2, 3, 4, 2)),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "layer, shape", [c[1:] for c in BACKWARD_CASES], ids=[c[0] for c in BACKWARD_CASES]
)
def test_backward_equals_jax_grad(layer, shape):
    f, analytic, point = vjp_problem(layer, shape)
    report = check_grads(f, point, analytic=analytic, method=None)
    report.assert_ok()
    assert max(r.max_rel for r in report.rows) < 1e-13


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


# (id, layer, init shape, bad input, fragments)
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
]  # fmt: skip


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
    "make, init_shape, bad, fragments",
    [e[1:] for e in APPLY_ERRORS],
    ids=[e[0] for e in APPLY_ERRORS],
)
def test_apply_error_message(make, init_shape, bad, fragments, jit):
    assert_apply_error(
        make,
        init_shape,
        bad,
        fragments,
        jit=jit,
        absent=("conv_general_dilated", "reduce_window"),
    )


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
]  # fmt: skip


@pytest.mark.parametrize(
    "make, init_shape, fragments",
    [e[1:] for e in INIT_ERRORS],
    ids=[e[0] for e in INIT_ERRORS],
)
def test_init_error_message(make, init_shape, fragments):
    assert_init_error(make, init_shape, fragments)


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
    ],
    ids=["groups", "out_channels", "strides", "padding", "rank 4"],
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
