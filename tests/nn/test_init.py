"""The default initialisers (jaxnet/nn/_init.py, public as ``jaxnet.initializers``)
draw on the host so that a fresh-process init compiles nothing (issue 15). These
tests pin what the module promises:

* the values are the documented recipe, rebuilt here independently from NumPy;
* the distributions are the ones named (a Kolmogorov-Smirnov test against the exact
  CDF, mean and variance within their sampling error, the truncation bound);
* leaves are independent (sample correlation within its sampling error);
* eager, ``jit`` and ``vmap`` give the same bits; a legacy uint32 key gives the
  values of the typed key with the same words;
* an eager init runs no XLA compile (JAX's own compile events), whatever the shapes.

Statistical tolerances are quantiles of the statistic's own sampling law at a
false-alarm rate of about 1e-6 per check (``Z``), never hand-tuned numbers.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import backend_compiles

import jaxnet
from jaxnet import initializers as I
from jaxnet._errors import ShapeError

Z = 5.0  # a normal quantile: P(|N(0,1)| > 5) = 5.7e-7
KS_C = math.sqrt(-0.5 * math.log(1e-6 / 2))  # Kolmogorov: P(sqrt(n) D > KS_C) ~ 1e-6
TN_STD = 0.87962566103423978  # stddev of a standard normal truncated to (-2, 2)


def _eq(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def _phi(x):
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(x) / math.sqrt(2.0)))


def _ks(sample: np.ndarray, cdf) -> float:
    """The Kolmogorov-Smirnov statistic ``sqrt(n) * D`` of ``sample`` against
    ``cdf``."""
    x = np.sort(np.asarray(sample, np.float64).ravel())
    n = x.size
    f = cdf(x)
    d = max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n))
    return math.sqrt(n) * float(d)


def _truncated_cdf(bound: float, scale: float):
    lo, hi = _phi(-bound), _phi(bound)
    return lambda x: np.clip((_phi(x / scale) - lo) / (hi - lo), 0.0, 1.0)


# ------------------------------------------------------------- the documented recipe


def _recipe_words(words, tag):
    return [int(w) for w in np.asarray(words).ravel()] + tag


def _recipe_normals(words, n):
    """The module docstring's recipe, written out again: SeedSequence -> Philox ->
    53-bit uniforms on (0, 1] -> Box-Muller, cosine first (NumPy's float64 ufuncs,
    as the library: the host's math library may differ from them in the last bit)."""
    seed = np.random.SeedSequence(_recipe_words(words, [1]))
    bits = np.random.Philox(key=seed.generate_state(2, np.uint64)).random_raw(2 * n)
    u = ((bits >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53
    r, t = np.sqrt(-2.0 * np.log(u[0::2])), 2.0 * np.pi * u[1::2]
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1).ravel()[:n]


def test_values_are_the_documented_recipe():
    key = jax.random.key(11)
    words = jax.random.key_data(key)
    # normal: the first n normals of the stream, scaled once.
    got = I.normal(0.5)(key, (7, 3), jnp.float64)
    want = (_recipe_normals(words, 21) * 0.5).reshape(7, 3)
    np.testing.assert_array_equal(np.asarray(got), want)
    # lecun_normal: the normals inside (-2, 2), in stream order, scaled.
    w = I.lecun_normal()(key, (6, 4), jnp.float64)
    z = _recipe_normals(words, 200)
    z = z[np.abs(z) < 2.0][:24]
    scale = 1.0 / (math.sqrt(6) * TN_STD)
    np.testing.assert_array_equal(np.asarray(w), (z * scale).reshape(6, 4))
    # split: SeedSequence([*words, 2, i]).
    subs = I.split(key, 3)
    for i, s in enumerate(subs):
        seed = np.random.SeedSequence(_recipe_words(words, [2, i]))
        assert np.array_equal(
            jax.random.key_data(s), seed.generate_state(2, np.uint32)
        ), i
        assert jax.random.key_impl(s) == jax.random.key_impl(key)


def test_float32_is_the_float64_draw_rounded_once():
    key = jax.random.key(3)
    for init in (I.lecun_normal(), I.normal(0.02)):
        w64 = np.asarray(init(key, (20, 30), jnp.float64))
        for dt in (jnp.float32, jnp.bfloat16, jnp.float16):
            w = init(key, (20, 30), dt)
            assert w.dtype == dt
            np.testing.assert_array_equal(np.asarray(w), w64.astype(dt))


# ----------------------------------------------------------------- the distributions


@pytest.mark.parametrize("shape", [(784, 512), (3, 3, 64, 32), (512, 10)])
def test_lecun_normal_is_the_truncated_normal_of_variance_one_over_fan_in(shape):
    fan_in = shape[-2] * math.prod(shape[:-2])
    w = np.asarray(I.lecun_normal()(jax.random.key(0), shape), np.float64).ravel()
    n = w.size
    scale = 1.0 / (math.sqrt(fan_in) * TN_STD)  # the untruncated stddev
    std = 1.0 / math.sqrt(fan_in)
    assert np.max(np.abs(w)) < 2.0 * scale * (1 + 1e-6)  # the bound (-2, 2)
    assert np.max(np.abs(w)) > 1.9 * scale  # and the tails reach it
    assert _ks(w, _truncated_cdf(2.0, scale)) < KS_C
    assert abs(w.mean()) < Z * std / math.sqrt(n)
    # var(s^2) = (m4 - sigma^4) / n; the kurtosis of N(0,1) truncated to (-2, 2)
    # is below 3, so 2 sigma^4 / n bounds it.
    assert abs(w.var() - std**2) < Z * std**2 * math.sqrt(2.0 / n)


def test_normal_is_the_normal_of_its_stddev():
    e = np.asarray(I.normal(0.02)(jax.random.key(1), (1000, 64)), np.float64).ravel()
    assert _ks(e, lambda x: _phi(x / 0.02)) < KS_C
    assert abs(e.mean()) < Z * 0.02 / math.sqrt(e.size)
    assert abs(e.var() - 0.02**2) < Z * 0.02**2 * math.sqrt(2.0 / e.size)


def test_embedding_default_has_flax_embed_variance():
    _, p = jaxnet.Embedding(4000, 64).init(jax.random.key(2), (None, 5))
    e = np.asarray(p["embedding"], np.float64).ravel()
    std = 1.0 / math.sqrt(64)  # variance_scaling(1, "fan_in", "normal", out_axis=0)
    assert _ks(e, lambda x: _phi(x / std)) < KS_C


@pytest.mark.parametrize("shape", [(6, 6), (9, 4), (4, 9), (2, 3, 5)])
def test_orthogonal_is_orthonormal(shape):
    q = np.asarray(I.orthogonal()(jax.random.key(4), shape, jnp.float64))
    m = q.reshape(-1, shape[-1])
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-13)


def test_leaves_are_independent():
    """Two weights of one model, and a parent's draw against its sub-keys' draws:
    sample correlations within Z standard errors (1 / sqrt(n)) of zero."""
    model = jaxnet.serial(jaxnet.Dense(256), jaxnet.Relu(), jaxnet.Dense(256))
    key = jax.random.key(0)
    _, p = model.init(key, (None, 256))
    a, b = (np.asarray(p[n]["w"], np.float64).ravel() for n in ("dense_0", "dense_2"))
    parent = np.asarray(I.lecun_normal()(key, (256, 256)), np.float64).ravel()
    for x, y in [(a, b), (parent, a), (parent, b)]:
        assert abs(np.corrcoef(x, y)[0, 1]) < Z / math.sqrt(x.size)
    words = {tuple(jax.random.key_data(k).tolist()) for k in I.split(key, 1000)}
    assert len(words) == 1000


# ----------------------------------------------- one function: eager, jit, vmap, keys


def _models():
    return {
        "mlp": (
            jaxnet.serial(
                jaxnet.Dense(5), jaxnet.Relu(), jaxnet.Dense(5), jaxnet.LayerNorm()
            ),
            (None, 6),
        ),
        "conv": (jaxnet.Conv(3, (3, 3)), (None, 6, 6, 2)),
        "mha": (jaxnet.MultiHeadAttention(num_heads=2), (None, 4, 8)),
        "stack": (jaxnet.Stack(jaxnet.TransformerBlock(2, 8), 2), (None, 4, 8)),
        "lstm": (jaxnet.RNN(jaxnet.LSTMCell(3)), (None, 4, 2)),
        "embed": (jaxnet.Embedding(9, 4), (None, 3)),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_eager_jit_and_vmap_give_the_same_values(name):
    model, shape = _models()[name]
    key = jax.random.key(0)
    _, eager = model.init(key, shape)
    _, jitted = jax.jit(model.init, static_argnums=1)(key, shape)
    assert jax.tree.all(jax.tree.map(_eq, eager, jitted))
    keys = jax.random.split(jax.random.key(1), 2)
    _, batched = jax.vmap(lambda k: model.init(k, shape))(keys)
    for j in range(2):
        _, one = model.init(keys[j], shape)
        row = jax.tree.map(lambda a, j=j: a[j], batched)
        assert jax.tree.all(jax.tree.map(_eq, row, one))
    # A legacy uint32 key with the same words draws the same values.
    _, legacy = model.init(jax.random.PRNGKey(0), shape)
    assert jax.tree.all(jax.tree.map(_eq, eager, legacy))


def test_stack_blocks_are_the_block_init_of_the_split_keys():
    """Stack's init is a vmap (a trace, host callbacks) even eagerly; block j holds
    what an eager init of the block draws from sub-key j."""
    block, shape = jaxnet.TransformerBlock(2, 8), (None, 4, 8)
    key = jax.random.key(3)
    _, stacked = jaxnet.Stack(block, 3).init(key, shape)
    for j, k in enumerate(I.split(key, 3)):
        _, one = block.init(k, shape)
        row = jax.tree.map(lambda a, j=j: a[j], stacked)
        assert jax.tree.all(jax.tree.map(_eq, row, one)), j


def test_a_different_key_gives_different_values():
    _, a = jaxnet.Dense(4).init(jax.random.key(0), (None, 4))
    _, b = jaxnet.Dense(4).init(jax.random.key(1), (None, 4))
    assert not np.array_equal(a["w"], b["w"])


def test_other_key_implementations_keep_their_kind():
    key = jax.random.key(0, impl="rbg")
    subs = I.split(key, 2)
    assert all(jax.random.key_impl(s) == jax.random.key_impl(key) for s in subs)
    assert jax.random.key_data(subs[0]).shape == jax.random.key_data(key).shape
    _, p = jaxnet.Dense(3).init(key, (None, 2))
    assert p["w"].shape == (2, 3)


COMPILE_FREE = {
    "mlp_conv_norm": (
        jaxnet.serial(
            jaxnet.Dense(37), jaxnet.Relu(), jaxnet.Conv(5, (3, 3)), jaxnet.LayerNorm()
        ),
        (None, 7, 7, 29),
    ),
    "mha": (jaxnet.MultiHeadAttention(num_heads=3, qkv_features=33), (None, 5, 31)),
    "gru": (jaxnet.RNN(jaxnet.GRUCell(23)), (None, 4, 19)),
    "embedding": (jaxnet.Embedding(41, 17), (None, 3)),
}


@pytest.mark.parametrize("name", list(COMPILE_FREE))
def test_an_eager_init_compiles_nothing(name):
    """JAX's compile events during an eager init of shapes never seen before: the
    old jax.random route compiled one program per shape and operation."""
    model, shape = COMPILE_FREE[name]
    key = jax.random.key(123)
    with backend_compiles() as compiles:
        _, params = model.init(key, shape)
        jax.block_until_ready(params)
    assert compiles == []
    assert jax.tree.leaves(params)


# ------------------------------------------------------------ custom initialisers


def test_custom_initialisers_are_called_as_given_with_the_split_keys():
    seen = []

    def w_init(key, shape, dtype):
        seen.append(jax.random.key_data(key))
        return jnp.ones(shape, dtype)

    def b_init(key, shape, dtype):
        seen.append(jax.random.key_data(key))
        return jnp.full(shape, 2.0, dtype)

    key = jax.random.key(5)
    _, p = jaxnet.Dense(2, w_init=w_init, b_init=b_init).init(key, (None, 3))
    want = [jax.random.key_data(k) for k in I.split(key)]
    assert np.array_equal(np.stack(seen), np.stack(want))
    assert _eq(p["w"], jnp.ones((3, 2), jnp.float32))
    assert _eq(p["b"], jnp.full((2,), 2.0, jnp.float32))
    # JAX's own initialiser, passed in, gives JAX's values for that key.
    jl = jax.nn.initializers.lecun_normal()
    _, p = jaxnet.Dense(2, w_init=jl).init(key, (None, 3))
    assert _eq(p["w"], jl(I.split(key)[0], (3, 2), jnp.float32))
    _, p = jaxnet.Dense(2, use_bias=False).init(key, (None, 3))
    assert list(p) == ["w"]


# ------------------------------------------------------------------------- errors


def test_errors_name_the_initialiser_and_the_fix():
    key = jax.random.key(0)
    with pytest.raises(ShapeError, match=r"lecun_normal.*rank >= 2.*\(5,\)"):
        I.lecun_normal()(key, (5,))
    with pytest.raises(ShapeError, match=r"split.*one PRNG key.*\(3,\).*split"):
        I.split(jax.random.split(key, 3))
    with pytest.raises(ShapeError, match=r"normal.*PRNG key.*float32"):
        I.normal()(jnp.zeros(2, jnp.float32), (2, 2))
    with pytest.raises(TypeError, match=r"lecun_normal.*real floating.*int32"):
        I.lecun_normal()(key, (2, 2), jnp.int32)
