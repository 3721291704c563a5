"""The layer contract as seen by XLA: every layer's ``apply`` runs under
``jax.named_scope(layer.name)`` (applied once, by the ``Layer`` wrapper), so profiles
and the lowered program name each layer."""

import re

import jax
import jax.numpy as jnp
import pytest

import jaxnet


def _name_stacks(fn, *args) -> set[str]:
    """The name stacks (``jit(apply)/serial/dense_0/dense/dot_general``) of the ops
    in ``fn``'s lowered program, read from its debug locations (public API only)."""
    text = jax.jit(fn).lower(*args).as_text(debug_info=True)
    return {s for s in re.findall(r'loc\("([^"]*)"', text) if "/" in s}


def test_serial_model_names_every_layer_in_the_lowered_program():
    layers = [jaxnet.Dense(4), jaxnet.Relu(), jaxnet.Dense(2), jaxnet.Tanh()]
    model = jaxnet.serial(*layers)
    _, params = model.init(jax.random.key(0), (None, 3))
    stacks = _name_stacks(model.apply, params, jnp.ones((2, 3)))
    for i, layer in enumerate(layers):
        # The combinator scopes the parameter key, the layer its own name.
        scope = f"/{model.name}/{layer.name}_{i}/{layer.name}/"
        assert any(scope in s for s in stacks), (scope, sorted(stacks))
    # Once per layer: the wrapper's scope is not repeated by the layer itself.
    assert not any("/dense/dense" in s for s in stacks), sorted(stacks)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (jaxnet.Dense(3), (2, 4)),
        (jaxnet.Conv(2, (3, 3)), (1, 5, 5, 1)),
        (jaxnet.MaxPool((2, 2)), (1, 4, 4, 1)),
        (jaxnet.RNN(jaxnet.GRUCell(3)), (2, 5, 4)),
    ],
    ids=lambda v: getattr(v, "desc", None),
)
def test_a_single_layer_names_itself_once(layer, shape):
    _, params = layer.init(jax.random.key(0), shape)
    stacks = _name_stacks(layer.apply, params, jnp.ones(shape))
    assert any(f"/{layer.name}/" in s for s in stacks), (layer.name, sorted(stacks))
    doubled = f"/{layer.name}/{layer.name}/"
    assert not any(doubled in s for s in stacks), sorted(stacks)
