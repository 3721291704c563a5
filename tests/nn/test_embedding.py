"""Embeddings (``jaxnet/nn/_embedding.py``): Embedding, sinusoidal, learned and
rotary positional embeddings.

The registry cases (``jaxnet/testing/cases/embedding.py``) already run the battery and
the analytic-vs-jax.grad check (tests/nn/test_layers.py, tests/test_analytic.py). Here:
equivalence with Flax linen (same weights copied in) and NumPy references, what the
registry cannot express (integer inputs and their dx, out-of-range ids), and the error
messages.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_init_error, assert_leaves_close, rendered

import jaxnet
from jaxnet import analytic
from jaxnet.testing import check_grads, tolerance

F32 = tolerance(jnp.float32, "analytic")
F64 = tolerance(jnp.float64, "analytic")


# ------------------------------------------------------------------------ Embedding


def test_embedding_matches_flax_embed():
    ids = jax.random.randint(jax.random.key(1), (2, 3), 0, 7)
    flax_embed = nn.Embed(7, 4)
    variables = flax_embed.init(jax.random.key(0), ids)
    layer = jaxnet.Embedding(7, 4)
    params = {"embedding": variables["params"]["embedding"]}
    with jax.numpy_dtype_promotion("standard"):
        expected = flax_embed.apply(variables, ids)
    diff = assert_leaves_close(layer.apply(params, ids), expected, F32)
    assert diff == 0.0  # a gather: bit-identical
    # Same default initialiser as Flax: variance_scaling(1, fan_in, out_axis=0),
    # which for a (num, features) table gives std 1/sqrt(features).
    _, ours = jaxnet.Embedding(1000, 8).init(jax.random.key(0), (1,))
    assert abs(float(jnp.std(ours["embedding"])) * np.sqrt(8) - 1) < 0.1


@pytest.mark.slow
def test_embedding_backward_scatter_adds_repeats_and_dx_is_none():
    layer = jaxnet.Embedding(4, 2, dtype=jnp.float64)
    _, params = layer.init(jax.random.key(0), (None, 3))
    ids = jnp.array([[1, 1, 3], [1, 0, 3]])
    g = jnp.arange(12.0, dtype=jnp.float64).reshape(2, 3, 2)
    y = layer.apply(params, ids)
    dp, dx = layer.backward(params, ids, y, g)
    assert dx is None
    expected = np.zeros((4, 2))
    for i, t in np.ndenumerate(np.asarray(ids)):
        expected[t] += np.asarray(g)[i]
    np.testing.assert_array_equal(dp["embedding"], expected)
    # A small causal transformer block through serial: hand-written backprop equals
    # jax.grad for every param, and the model's dx is None (ids have no gradient).
    model = jaxnet.serial(
        layer,
        jaxnet.SinusoidalPositionalEmbedding(),
        jaxnet.MultiHeadAttention(2, causal=True, dtype=jnp.float64),
        jaxnet.Dense(3, dtype=jnp.float64),
    )
    _, mp = model.init(jax.random.key(0), (None, 3))
    gy = jax.random.normal(jax.random.key(3), (2, 3, 3), jnp.float64)
    grads, dx = analytic.vjp(model, mp, ids, gy)
    assert dx is None
    auto = jax.grad(lambda p: jnp.sum(gy * model.apply(p, ids)))(mp)
    assert jax.tree.structure(grads) == jax.tree.structure(auto)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(auto)):
        assert_leaves_close(a, b, F64)


def test_embedding_out_of_range_eager_error_and_jit_nan():
    layer = jaxnet.Embedding(5, 2)
    _, params = layer.init(jax.random.key(0), (None, 3))
    for bad, lo, hi in ([[0, 5, 2]], 0, 5), ([[-1, 2, 4]], -1, 4):
        with pytest.raises(ValueError) as info:
            layer.apply(params, jnp.array(bad))
        assert rendered(info.value) == (
            "Embedding(num_embeddings=5, features=2): token ids must be in [0, 5), "
            f"got min {lo}, max {hi}. Check the tokenizer's vocabulary size against "
            "num_embeddings."
        )
    # Under jit nothing can be checked: out-of-range rows (negative too) are NaN and
    # their gradient is dropped.
    ids = jnp.array([[0, 5, -1]])
    y = jax.jit(layer.apply)(params, ids)
    assert np.all(np.isfinite(y[0, 0])) and np.all(np.isnan(y[0, 1:]))
    dp, _ = layer.backward(params, ids, y, jnp.ones((1, 3, 2)))
    np.testing.assert_array_equal(dp["embedding"][0], [1.0, 1.0])
    assert float(jnp.sum(dp["embedding"][1:])) == 0.0


def test_embedding_rejects_float_ids():
    layer = jaxnet.Embedding(5, 2)
    _, params = layer.init(jax.random.key(0), (None, 3))
    with pytest.raises(jaxnet.DTypeError) as info:
        layer.apply(params, jnp.zeros((2, 3)))
    assert rendered(info.value) == (
        "Embedding(num_embeddings=5, features=2): expected integer token ids, got "
        "float64 of shape (2, 3). Cast them first, e.g. ids.astype(jnp.int32)."
    )


# ------------------------------------------------------------ positional embeddings


def test_sinusoidal_table_matches_paper_formula():
    seq, d = 6, 8
    table = jaxnet.analytic.sinusoidal_table(seq, d)
    for t in range(seq):
        for i in range(d // 2):
            angle = t / 10000 ** (2 * i / d)
            assert table[t, 2 * i] == pytest.approx(np.sin(angle), abs=1e-15)
            assert table[t, 2 * i + 1] == pytest.approx(np.cos(angle), abs=1e-15)
    x = jnp.ones((2, seq, d), jnp.float64)
    y = jaxnet.SinusoidalPositionalEmbedding().apply({}, x)
    assert_leaves_close(y, x + table[None], F64)


def _rope_reference(x: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """GPT-NeoX/LLaMA rotate_half, written per pair (j, j + dim/2) with a loop."""
    out = np.array(x, np.float64)
    dim = x.shape[-1]
    for t in range(x.shape[1]):
        for j in range(dim // 2):
            a = t * base ** (-2 * j / dim)
            x1, x2 = x[:, t, ..., j], x[:, t, ..., j + dim // 2]
            out[:, t, ..., j] = x1 * np.cos(a) - x2 * np.sin(a)
            out[:, t, ..., j + dim // 2] = x2 * np.cos(a) + x1 * np.sin(a)
    return out


@pytest.mark.parametrize("shape", [(2, 3, 2, 4), (2, 3, 6)], ids=["heads", "flat"])
def test_rotary_matches_rotate_half_reference(shape):
    x = jax.random.normal(jax.random.key(0), shape, jnp.float64)
    y = jaxnet.RotaryEmbedding().apply({}, x)
    assert_leaves_close(y, _rope_reference(np.asarray(x)), F64)
    # A rotation preserves each pair's norm, hence the norm of each position's vector.
    assert_leaves_close(jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(x, axis=-1), F64)


def test_rotary_flat_input_gradient():
    # The registry case is 4-D; the 3-D layout through the analytic formula here.
    x = jax.random.normal(jax.random.key(0), (2, 3, 4), jnp.float64)
    g = jax.random.normal(jax.random.key(1), (2, 3, 4), jnp.float64)
    check_grads(
        lambda x: jnp.sum(g * analytic.rotary(x)),
        x,
        analytic=lambda x: analytic.rotary_vjp(x, g),
        method="complex",
    ).assert_ok()


@pytest.mark.parametrize(
    "make, shape, fragments",
    [
        (
            lambda: jaxnet.LearnedPositionalEmbedding(4),
            (None, 5, 3),
            ["LearnedPositionalEmbedding(max_len=4)", "sequence length 5 exceeds"],
        ),
        (
            lambda: jaxnet.RotaryEmbedding(),
            (None, 3, 5),
            ["RotaryEmbedding(base=10000.0)", "even last axis", "(None, 3, 5)"],
        ),
    ],
    ids=["pos-too-long", "rotary-odd"],
)
def test_init_errors(make, shape, fragments):
    assert_init_error(make, shape, fragments)


def test_learned_positional_apply_errors():
    layer = jaxnet.LearnedPositionalEmbedding(4)
    _, params = layer.init(jax.random.key(0), (None, 3, 2))
    with pytest.raises(jaxnet.ShapeError, match=r"sequence length 6 exceeds max_len=4"):
        layer.apply(params, jnp.zeros((1, 6, 2)))
    with pytest.raises(jaxnet.ShapeError) as info:
        layer.apply(params, jnp.zeros((1, 3, 5)))
    assert "expected input of shape (..., seq, 2), got (1, 3, 5)" in str(info.value)
