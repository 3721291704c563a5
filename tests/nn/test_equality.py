"""Layers compare by value: the same constructor calls give equal, equal-hashing
layers, so a rebuilt model hits jax.jit's cache (issue 16 item 5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from test_bad_inputs import SETUPS

import jaxnet


def mlp(drop=0.5, width=8):
    return jaxnet.serial(
        jaxnet.Dense(width), jaxnet.Relu(), jaxnet.Dropout(drop), jaxnet.Dense(3)
    )


@pytest.mark.parametrize("setup", SETUPS, ids=[s.id for s in SETUPS])
def test_every_public_layer_rebuilt_is_equal(setup):
    a, b = setup.make(), setup.make()
    assert a is not b
    assert a == b and hash(a) == hash(b), setup.id
    assert a.spec is not None


def test_a_rebuilt_model_does_not_retrace():
    traces = []

    def forward(model, params, x):
        traces.append(model.desc)
        return model.apply(params, x)

    f = jax.jit(forward, static_argnums=0)
    x = jnp.ones((2, 4))
    _, params = mlp().init(jax.random.key(0), x)
    f(mlp(), params, x)
    f(mlp(), params, x)  # a new model object, built by the same calls
    assert len(traces) == 1
    f(mlp(width=8, drop=0.25), params, x)  # another model: traced again
    assert len(traces) == 2


def test_different_calls_are_different_layers():
    assert jaxnet.Dense(8) != jaxnet.Dense(9)
    assert mlp(0.5) != mlp(0.25)
    assert jaxnet.Gelu(approximate=True) != jaxnet.Gelu()
    assert jaxnet.Relu() != jaxnet.Tanh()
    assert jaxnet.LeakyRelu(1) != jaxnet.LeakyRelu(1.0)  # an int is not a float
    assert jaxnet.serial(jaxnet.Relu(), jaxnet.Tanh()) != jaxnet.serial(
        jaxnet.Tanh(), jaxnet.Relu()
    )
    assert jaxnet.Stack(jaxnet.Dense(4), 2) != jaxnet.Stack(jaxnet.Dense(4), 3)
    # defaults are filled in: spelled out or not, the same call
    assert jaxnet.Softmax() == jaxnet.Softmax(axis=-1)
    assert jaxnet.Dense(8) != "Dense(out_dim=8)"


def test_functions_and_arrays_compare_by_identity():
    def w_init(key, shape, dtype=jnp.float32):
        return jnp.zeros(shape, dtype)

    assert jaxnet.Dense(3, w_init=w_init) == jaxnet.Dense(3, w_init=w_init)
    assert jaxnet.Lambda(jnp.tanh) == jaxnet.Lambda(jnp.tanh)
    # two lambdas with the same body are two functions
    assert jaxnet.Lambda(lambda x: x) != jaxnet.Lambda(lambda x: x)
    # a Layer built by hand (no constructor) is compared by identity
    raw = jaxnet.Layer("mine", lambda k, s: (s, {}), lambda p, x, **_: x)
    assert raw == raw and raw != jaxnet.Layer("mine", raw.init, raw.apply)
    assert len({raw, raw, jaxnet.Dense(2), jaxnet.Dense(2)}) == 2
