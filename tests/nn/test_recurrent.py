"""Recurrent family: LSTMCell, GRUCell, RNN, Bidirectional.

The registry (``jaxnet/testing/cases/recurrent.py``) already runs every case through the battery
and the three-way gradient check; here: equivalence with ``flax.linen`` (weights copied
in), reverse == flipping time, BPTT on a longer sequence with ``return_carry`` and
``initial_carry``, error messages, and proof that the checker catches a wrong formula.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_leaves_close, rendered

import jaxnet
import jaxnet.nn._recurrent
from jaxnet.testing import LayerCase, check_layer, tolerance

B, T, F, H = 2, 3, 3, 4
F32 = jnp.float32


# ------------------------------------------------------------- weight copy to Flax


def _blocks(w, n):
    return jnp.split(w, n, axis=-1)


def lstm_to_flax(p):
    """jaxnet LSTMCell params -> flax.linen.LSTMCell params (gates i, f, g, o)."""
    out = {}
    wi, wh = _blocks(p["input"]["w"], 4), _blocks(p["hidden"]["w"], 4)
    bh = _blocks(p["hidden"]["b"], 4)
    for k, gate in enumerate("ifgo"):
        out["i" + gate] = {"kernel": wi[k]}
        out["h" + gate] = {"kernel": wh[k], "bias": bh[k]}
    return out


def gru_to_flax(p):
    """jaxnet GRUCell params -> flax.linen.GRUCell params (gates r, z, n)."""
    wi, bi = _blocks(p["input"]["w"], 3), _blocks(p["input"]["b"], 3)
    wh = _blocks(p["hidden"]["w"], 3)
    out = {"i" + g: {"kernel": wi[k], "bias": bi[k]} for k, g in enumerate("rzn")}
    out["hr"] = {"kernel": wh[0]}
    out["hz"] = {"kernel": wh[1]}
    out["hn"] = {"kernel": wh[2], "bias": p["hidden"]["b"]}
    return out


def _random_params(layer, input_shape, seed=0):
    """Init, then make every leaf (biases too) random so no block hides behind 0."""
    _, params = layer.init(jax.random.key(seed), input_shape)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    return jax.tree.unflatten(
        tree,
        [0.5 * jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves)],
    )


def _x(shape, seed=2, dtype=F32):
    return jax.random.normal(jax.random.key(seed), shape, dtype)


@pytest.fixture(scope="module")
def lstm_params():
    return _random_params(jaxnet.LSTMCell(H), (((None, H), (None, H)), (None, F)))


@pytest.fixture(scope="module")
def gru_params():
    return _random_params(jaxnet.GRUCell(H), ((None, H), (None, F)), seed=5)


@pytest.mark.slow
def test_flax_param_names_match_the_copy(lstm_params, gru_params):
    """The copy fills exactly Flax's own parameter tree (same names and shapes)."""
    x = jnp.zeros((B, F), F32)
    for flax_cell, ours in (
        (nn.LSTMCell(H), lstm_to_flax(lstm_params)),
        (nn.GRUCell(H), gru_to_flax(gru_params)),
    ):
        carry = flax_cell.initialize_carry(jax.random.key(0), x.shape)
        theirs = flax_cell.init(jax.random.key(0), carry, x)["params"]
        assert jax.tree.map(jnp.shape, theirs) == jax.tree.map(jnp.shape, ours)


def test_lstm_step_equals_flax(lstm_params):
    c, h, x = _x((B, H), 3), _x((B, H), 4), _x((B, F))
    ours = jaxnet.LSTMCell(H).apply(lstm_params, ((c, h), x))
    theirs = nn.LSTMCell(H).apply({"params": lstm_to_flax(lstm_params)}, (c, h), x)
    assert_leaves_close(ours, theirs, tolerance(F32, "analytic"))


def test_gru_step_equals_flax(gru_params):
    h, x = _x((B, H), 3), _x((B, F))
    ours = jaxnet.GRUCell(H).apply(gru_params, (h, x))
    theirs = nn.GRUCell(H).apply({"params": gru_to_flax(gru_params)}, h, x)
    assert_leaves_close(ours, theirs, tolerance(F32, "analytic"))


def test_initial_carry_is_flax_zeros():
    for cell, flax_cell in (
        (jaxnet.LSTMCell(H), nn.LSTMCell(H)),
        (jaxnet.GRUCell(H), nn.GRUCell(H)),
    ):
        theirs = flax_cell.initialize_carry(jax.random.key(0), (B, F))
        shapes = cell.carry_shape((B,))
        assert jax.tree.map(jnp.shape, theirs) == shapes
        assert all(not np.any(a) for a in jax.tree.leaves(theirs))


@pytest.mark.slow
def test_sequences_equal_flax_rnn(lstm_params, gru_params):
    """Whole sequences, forward LSTM, reversed GRU and Bidirectional, vs flax.linen."""
    x = _x((B, 5, F))
    # Forward LSTM, with the final carry.
    carry, y = jaxnet.RNN(jaxnet.LSTMCell(H), return_carry=True).apply(lstm_params, x)
    f_lstm = nn.RNN(nn.LSTMCell(H), return_carry=True)
    theirs = f_lstm.apply({"params": {"cell": lstm_to_flax(lstm_params)}}, x)
    assert_leaves_close((carry, y), theirs, tolerance(F32, "analytic"))
    # Reversed GRU: Flax's reverse=True with keep_order=True.
    y = jaxnet.RNN(jaxnet.GRUCell(H), reverse=True).apply(gru_params, x)
    f_gru = nn.RNN(nn.GRUCell(H), reverse=True, keep_order=True)
    assert_leaves_close(
        y,
        f_gru.apply({"params": {"cell": gru_to_flax(gru_params)}}, x),
        tolerance(F32, "analytic"),
    )
    # Bidirectional(LSTM forward, GRU backward).
    bi = jaxnet.Bidirectional(
        jaxnet.RNN(jaxnet.LSTMCell(H)), jaxnet.RNN(jaxnet.GRUCell(H))
    )
    y = bi.apply({"forward": lstm_params, "backward": gru_params}, x)
    f_bi = nn.Bidirectional(nn.RNN(nn.LSTMCell(H)), nn.RNN(nn.GRUCell(H)))
    fp = {
        "forward_rnn": {"cell": lstm_to_flax(lstm_params)},
        "backward_rnn": {"cell": gru_to_flax(gru_params)},
    }
    assert_leaves_close(y, f_bi.apply({"params": fp}, x), tolerance(F32, "analytic"))


def test_reverse_is_flipping_time(gru_params):
    x = _x((B, 5, F))
    fwd = jaxnet.RNN(jaxnet.GRUCell(H))
    rev = jaxnet.RNN(jaxnet.GRUCell(H), reverse=True)
    flipped = jnp.flip(fwd.apply(gru_params, jnp.flip(x, 1)), 1)
    assert_leaves_close(rev.apply(gru_params, x), flipped, tolerance(F32, "analytic"))


def test_rnn_under_jit_with_initial_carry(lstm_params):
    rnn = jaxnet.RNN(jaxnet.LSTMCell(H), return_carry=True)
    x = _x((B, T, F))
    c0 = (_x((B, H), 7), _x((B, H), 8))
    eager = rnn.apply(lstm_params, x, initial_carry=c0)
    jitted = jax.jit(lambda p, x, c: rnn.apply(p, x, initial_carry=c))(
        lstm_params, x, c0
    )
    assert_leaves_close(jitted, eager, tolerance(F32, "analytic"))
    # The carry threads: running the last step separately from the carry it left.
    carry2, y2 = rnn.apply(lstm_params, x[:, :2], initial_carry=c0)
    carry3, y3 = rnn.apply(lstm_params, x[:, 2:], initial_carry=carry2)
    assert_leaves_close(
        (carry3, jnp.concatenate([y2, y3], 1)), eager, tolerance(F32, "analytic")
    )


# ------------------------------------------------------------------- BPTT, longer


def _c0():
    """A fixed non-zero initial carry (numpy: no JAX arrays at import time)."""
    rng = np.random.default_rng(9)
    return (rng.standard_normal((B, H)), rng.standard_normal((B, H)))


LONG_CASES = (
    LayerCase(
        "RNN(LSTMCell, return_carry) time 6, initial_carry",
        lambda dt: jaxnet.RNN(jaxnet.LSTMCell(H, dtype=dt), return_carry=True),
        (None, 6, F),
        "complex",
        batch=B,
        options={"initial_carry": _c0()},
    ),
    LayerCase(
        "RNN(GRUCell, reverse, return_carry) time 6",
        lambda dt: jaxnet.RNN(
            jaxnet.GRUCell(H, dtype=dt), reverse=True, return_carry=True
        ),
        (None, 6, F),
        "complex",
        batch=B,
    ),
)


@pytest.mark.parametrize("case", LONG_CASES, ids=lambda c: c.id)
def test_bptt_long_sequence_analytic_equals_jax_grad(case):
    """A final-carry cotangent, a given initial carry, six steps: analytic == grad."""
    check_layer(case, jnp.float64, method=None).assert_ok()


def test_checker_catches_a_wrong_lstm_formula(monkeypatch):
    """Teeth: a forget-gate gradient off by 1e-6 relative fails the float64 check."""
    real = jaxnet.nn._recurrent.lstm_cell_vjp

    def wrong(params, carry, x, g):
        dp, rest = real(params, carry, x, g)
        w = dp["hidden"]["w"]
        dp["hidden"]["w"] = w.at[:, H : 2 * H].multiply(1 + 1e-6)
        return dp, rest

    monkeypatch.setattr(jaxnet.nn._recurrent, "lstm_cell_vjp", wrong)
    case = dataclasses.replace(LONG_CASES[0], options={})
    report = check_layer(case, jnp.float64, method=None)
    assert not report.ok
    assert {r.path for r in report.failures()} == {"params/hidden/w"}


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "make, x, fragments",
    [
        (
            lambda: jaxnet.RNN(jaxnet.LSTMCell(H)),
            jnp.zeros((B, T, 5)),
            [
                "RNN(LSTMCell(hidden=4))",
                "input of shape (2, 3, 5)",
                "LSTMCell(hidden=4): expected x_t of shape (..., 3), got (2, 5)",
                "initialised for 3 input features",
            ],
        ),
        (
            lambda: jaxnet.RNN(jaxnet.GRUCell(H), reverse=True),
            jnp.zeros((B, F)),
            [
                "RNN(GRUCell(hidden=4), reverse=True)",
                "expected input of shape (batch, time, features), got (2, 3)",
                "x[None]",
            ],
        ),
        (
            lambda: jaxnet.Bidirectional(
                jaxnet.RNN(jaxnet.LSTMCell(H)), jaxnet.RNN(jaxnet.GRUCell(H))
            ),
            jnp.zeros((T, F)),
            [
                "Bidirectional(RNN(LSTMCell(hidden=4)), RNN(GRUCell(hidden=4)))",
                "expected input of shape (batch, time, features), got (3, 3)",
            ],
        ),
    ],
)
def test_sequence_shape_errors(make, x, fragments):
    layer = make()
    _, params = layer.init(jax.random.key(0), (None, T, F))
    with pytest.raises(jaxnet.ShapeError) as info:
        layer.apply(params, x)
    for frag in fragments:
        assert frag in rendered(info.value), rendered(info.value)


def test_init_rank_error():
    with pytest.raises(
        jaxnet.ShapeError,
        match=r"RNN\(LSTMCell\(hidden=4\)\): "
        r"expected input of shape \(batch, time, features\), got "
        r"\(None, 3\)",
    ):
        jaxnet.RNN(jaxnet.LSTMCell(H)).init(jax.random.key(0), (None, F))


def test_cell_errors(lstm_params, gru_params):
    lstm, gru = jaxnet.LSTMCell(H), jaxnet.GRUCell(H)
    h, x = jnp.zeros((B, H)), jnp.zeros((B, F))
    # A GRU-style carry given to the LSTM.
    with pytest.raises(jaxnet.ShapeError) as info:
        lstm.apply(lstm_params, (h, x))
    msg = rendered(info.value)
    assert (
        "LSTMCell(hidden=4): expected the input (carry, x_t) with carry = (c, h)" in msg
    )
    # x alone (no carry): points at RNN.
    with pytest.raises(
        jaxnet.ShapeError,
        match=r"got a single array of shape \(2, 3\). To run the cell over a "
        r"sequence, wrap it: jaxnet.RNN\(GRUCell\(hidden=4\)\)",
    ):
        gru.apply(gru_params, x)
    # Wrong feature size and wrong carry width.
    with pytest.raises(
        jaxnet.ShapeError,
        match=r"expected x_t of shape \(..., 3\), "
        r"got \(2, 5\)",
    ):
        gru.apply(gru_params, (h, jnp.zeros((B, 5))))
    with pytest.raises(
        jaxnet.ShapeError,
        match=r"GRUCell\(hidden=4\): expected carry "
        r"h of shape \(2, 4\) for x_t of shape \(2, 3\), got \(2, 6\)",
    ):
        gru.apply(gru_params, (jnp.zeros((B, 6)), x))
    with pytest.raises(
        jaxnet.DTypeError,
        match=r"LSTMCell\(hidden=4\): expected a "
        "floating-point x_t",
    ):
        lstm.apply(lstm_params, ((h, h), jnp.zeros((B, F), jnp.int32)))


def test_initial_carry_errors(lstm_params):
    rnn = jaxnet.RNN(jaxnet.LSTMCell(H))
    x = jnp.zeros((B, T, F))
    with pytest.raises(
        jaxnet.ShapeError,
        match=r"expected initial_carry of shape "
        r"\(\(2, 4\), \(2, 4\)\) for input \(2, 3, 3\), got \(2, 4\)",
    ):
        rnn.apply(lstm_params, x, initial_carry=jnp.zeros((B, H)))


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"LSTMCell\(hidden=0\): hidden must be"):
        jaxnet.LSTMCell(0)
    with pytest.raises(TypeError, match="expected a recurrent cell such as"):
        jaxnet.RNN(jaxnet.Dense(4))
    bi = jaxnet.Bidirectional(
        jaxnet.RNN(jaxnet.LSTMCell(H), return_carry=True), jaxnet.RNN(jaxnet.GRUCell(H))
    )
    with pytest.raises(jaxnet.ShapeError, match="without return_carry=True"):
        bi.init(jax.random.key(0), (None, T, F))
