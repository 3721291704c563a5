"""The default Dense initialiser of jaxnet/nn/_core.py draws flat and reshapes (a
(512, 10) Threefry draw compiled 5x slower than a flat one, issue 5: fresh-process
init). These tests pin that the values are bit for bit those of
``jax.nn.initializers.lecun_normal()`` eagerly, under ``jit`` and under ``vmap``.
No timings.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet._errors import ShapeError
from jaxnet.nn import _core as L

JAX_LECUN = jax.nn.initializers.lecun_normal()


def _eq(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


MODEL_DIMS = ((6, 5), (5, 5), (5, 3))


@jax.jit
def _reference_mlp(key):
    """What ``_mlp().init`` computed before: serial's split, then per Dense a split,
    ``lecun_normal()`` and ``zeros``."""
    subkeys = jax.random.split(key, 5)
    out = []
    for i, (din, dout) in zip((0, 2, 4), MODEL_DIMS):
        kw, _ = jax.random.split(subkeys[i])
        out.append(
            (JAX_LECUN(kw, (din, dout), jnp.float32), jnp.zeros((dout,), jnp.float32))
        )
    return out


def _jax_lecun_jit(key, shape, dtype=jnp.float32):
    return jax.jit(JAX_LECUN, static_argnums=(1, 2))(key, shape, dtype)


def test_lecun_normal_matches_eager_jax():
    key = jax.random.key(9)
    assert _eq(L.lecun_normal(key, (4, 3)), JAX_LECUN(key, (4, 3), jnp.float32))


# (512, 10): the shape whose 2-D draw compiled slowly; (3, 3, 2, 4): a convolution
# kernel, whose fan_in counts the receptive field.
@pytest.mark.parametrize("shape", [(6, 5), (512, 10), (300, 300), (3, 3, 2, 4)])
def test_lecun_normal_matches_jax_eager_and_jit(shape):
    key = jax.random.key(7)
    want = _jax_lecun_jit(key, shape)
    assert _eq(L.lecun_normal(key, shape), want)
    got_jit = jax.jit(L.lecun_normal, static_argnums=(1, 2))(key, shape, jnp.float32)
    assert _eq(got_jit, want)
    # The values are a real normal sample with variance 1/fan_in, not zeros.
    fan_in = shape[-2] * int(np.prod(shape[:-2]))
    if want.size >= 10000:
        assert abs(float(jnp.std(want)) * np.sqrt(fan_in) - 1.0) < 0.05


def test_lecun_normal_rejects_rank_1():
    with pytest.raises(ShapeError, match=r"lecun_normal.*rank >= 2.*\(5,\)"):
        L.lecun_normal(jax.random.key(0), (5,))


def _mlp():
    return jaxnet.serial(
        jaxnet.Dense(5), jaxnet.Relu(), jaxnet.Dense(5), jaxnet.Relu(), jaxnet.Dense(3)
    )


@pytest.mark.slow
def test_dense_init_same_values_eager_jit_vmap_and_as_before():
    model = _mlp()
    key = jax.random.key(0)
    _, eager = model.init(key, (None, 6))
    _, jitted = jax.jit(model.init, static_argnums=1)(key, (None, 6))
    names = [n for n, p in eager.items() if p]
    assert names == ["dense_0", "dense_2", "dense_4"]
    for name, (w, b) in zip(names, _reference_mlp(key)):
        assert _eq(eager[name]["w"], w) and _eq(eager[name]["b"], b), name
        assert _eq(jitted[name]["w"], w) and _eq(jitted[name]["b"], b), name
    keys = jax.random.split(jax.random.key(1), 3)
    _, batched = jax.vmap(lambda k: model.init(k, (None, 6)))(keys)
    for j in range(3):
        _, one = model.init(keys[j], (None, 6))
        for name, p in one.items():
            for leaf, v in p.items():
                assert _eq(batched[name][leaf][j], v), (j, name, leaf)


def test_dense_custom_initialisers_still_get_the_split_keys():
    seen = []

    def w_init(key, shape, dtype):
        seen.append(jax.random.key_data(key))
        return jnp.ones(shape, dtype)

    def b_init(key, shape, dtype):
        seen.append(jax.random.key_data(key))
        return jnp.full(shape, 2.0, dtype)

    key = jax.random.key(5)
    _, p = jaxnet.Dense(2, w_init=w_init, b_init=b_init).init(key, (None, 3))
    assert np.array_equal(np.stack(seen), jax.random.key_data(jax.random.split(key)))
    assert _eq(p["w"], jnp.ones((3, 2), jnp.float32))
    assert _eq(p["b"], jnp.full((2,), 2.0, jnp.float32))
    _, p = jaxnet.Dense(2, use_bias=False).init(key, (None, 3))
    assert list(p) == ["w"]
