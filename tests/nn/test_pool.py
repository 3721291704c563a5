"""Pooling (``jaxnet/nn/_pool.py``): equivalence with Flax linen, the hand-written
backward in configurations the registry does not hold (1-d and 3-d pools, the
non-default AvgPool divisor), max-pool ties, and bad-input messages.

The registry cases (``jaxnet/testing/cases/pool.py``) already run through the battery
and the analytic tier (tests/nn/test_layers.py, tests/test_analytic.py); this file adds
what they cannot express.
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
    vjp_problem,
)

import jaxnet
from jaxnet.testing import check_grads

# ------------------------------------------------------ equivalence with flax.linen


def _flax_pool(fn, *args, **kwargs):
    return lambda params, x: fn(x, *args, **kwargs)


def _sum_pool(x, window, strides, padding):
    return nn.pooling.pool(x, 0.0, jax.lax.add, window, strides, padding)


# (id, jaxnet layer, flax reference, input shape). float32 throughout.
FLAX_CASES = [
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
    assert_matches_reference(layer, reference, shape)


# --------------------------------------------- analytic backward beyond the registry

# Settings the registry does not cover: pools in 1-d and 3-d, explicit padding, the
# non-default AvgPool divisor.
BACKWARD_CASES = [
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
    f, analytic, point = vjp_problem(layer, shape)
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
    f, analytic, point = vjp_problem(layer, (2, 4, 4, 2), TIE_INPUTS[inputs])
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

# (id, layer, init shape, bad input, fragments)
APPLY_ERRORS = [
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
    assert_init_error(make, init_shape, fragments)


def test_bad_settings_rejected_at_construction():
    with pytest.raises(ValueError) as info:
        jaxnet.MaxPool((2, 2), padding=((1, 1),))
    assert "padding must be" in str(info.value), str(info.value)
