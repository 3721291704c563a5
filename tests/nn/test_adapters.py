"""from_flax (linen and nnx) and from_equinox: lifted modules are ordinary jaxnet
layers whose params, outputs and gradients equal the peer library's own."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet.nn._adapters import from_equinox, from_flax
from jaxnet.testing import tolerance

F64 = jnp.float64
TOL = tolerance(F64, "analytic")


def by_path(tree: Any) -> dict[str, Any]:
    """``{"a/b/0": leaf}``: compare trees by path, never by leaf order."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    out = {}
    for path, leaf in flat:
        parts = [
            str(getattr(k, "name", getattr(k, "idx", getattr(k, "key", k))))
            for k in path
        ]
        out["/".join(parts)] = leaf
    return out


def assert_close_by_path(actual: Any, expected: Any, tol=TOL) -> None:
    a, e = by_path(actual), by_path(expected)
    assert sorted(a) == sorted(e)
    for p in e:
        assert jnp.shape(a[p]) == jnp.shape(e[p]), p
        np.testing.assert_allclose(a[p], e[p], rtol=tol.rtol, atol=tol.atol, err_msg=p)


class MLP(nn.Module):
    hidden: int = 8
    out: int = 4

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.hidden, param_dtype=F64)(x))
        return nn.Dense(self.out, param_dtype=F64)(x)


class DropMLP(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dense(16, param_dtype=F64)(x)
        return nn.Dropout(0.5, deterministic=not train)(x)


class Scaled(nn.Module):
    @nn.compact
    def __call__(self, x, *, scale: float = 1.0):
        return scale * nn.Dense(2, param_dtype=F64)(x)


class WithBN(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.BatchNorm(use_running_average=True)(x)  # float32 statistics


@pytest.fixture
def x():
    return jax.random.normal(jax.random.key(1), (5, 3), F64)


# ------------------------------------------------------------------------ linen


def test_linen_init_matches_flax(x):
    key = jax.random.key(0)
    layer = from_flax(MLP())
    out_shape, params = layer.init(key, (None, 3))
    assert out_shape == (None, 4)
    assert type(params) is dict and type(params["Dense_0"]) is dict
    expected = MLP().init(key, x)["params"]
    assert sorted(by_path(params)) == sorted(by_path(expected))
    # Same key, same initialisers: the very same values.
    assert_close_by_path(params, expected)
    assert layer.name == "mlp" and layer.desc == "from_flax(MLP)"
    assert layer.backward is None


def test_linen_init_from_example_array_and_fixed_shapes(x):
    layer = from_flax(MLP())
    assert layer.init(jax.random.key(0), x)[0] == (5, 4)
    assert layer.init(jax.random.key(0), (-1, 7, 3))[0] == (None, 7, 4)
    assert layer.init(jax.random.key(0), (None, None, 3))[0] == (None, None, 4)


def test_linen_apply_equals_module_apply(x):
    key = jax.random.key(0)
    layer = from_flax(MLP())
    _, params = layer.init(key, (None, 3))
    want = MLP().apply({"params": params}, x)
    np.testing.assert_array_equal(layer.apply(params, x), want)
    np.testing.assert_array_equal(jax.jit(layer.apply)(params, x), want)


def test_linen_grad_through_serial_equals_hand_composition(x):
    key = jax.random.key(0)
    y = jax.random.normal(jax.random.key(2), (5, 3), F64)
    model = jaxnet.serial(from_flax(MLP()), jaxnet.Tanh(), jaxnet.Dense(3, dtype=F64))
    out_shape, params = model.init(key, (None, 3))
    assert out_shape == (None, 3) and sorted(params) == ["dense_2", "mlp_0", "tanh_1"]

    def loss(p):
        return jnp.sum((model.apply(p, x) - y) ** 2)

    def hand_loss(p):
        flax_p, dense = p
        h = jnp.tanh(MLP().apply({"params": flax_p}, x))
        return jnp.sum((h @ dense["w"] + dense["b"][None, :] - y) ** 2)

    grads = jax.grad(loss)(params)
    want_flax, want_dense = jax.grad(hand_loss)((params["mlp_0"], params["dense_2"]))
    assert_close_by_path(grads["mlp_0"], want_flax)
    assert_close_by_path(grads["dense_2"], want_dense)
    assert grads["tanh_1"] == {}
    assert_close_by_path(jax.jit(jax.grad(loss))(params), grads)


def test_linen_check_grads_central(x):
    model = jaxnet.serial(from_flax(MLP(hidden=4, out=2)), jaxnet.Tanh())
    _, params = model.init(jax.random.key(0), (None, 3))

    def loss(p):
        return jnp.sum(model.apply(p, x) ** 2)

    report = jaxnet.testing.check_grads(loss, params, method="central")
    assert report.ok, report


def test_check_model_on_a_serial_holding_a_flax_layer(x):
    """serial's backward exists only when every sub-layer has one: check_model once
    raised NotImplementedError on the model row (examples/verify_models.py)."""
    model = jaxnet.serial(from_flax(MLP(hidden=4, out=2)), jaxnet.Tanh())
    _, params = model.init(jax.random.key(0), (None, 3))
    params = jax.tree.map(lambda a: a.astype(F64), params)
    report = jaxnet.testing.check_model(model, params, x)
    assert report.ok, report
    checks = {r.check for layer in report.layers for r in layer.report.rows}
    assert "jax.grad vs analytic" in checks  # Tanh's hand-written backward still ran


def test_linen_dropout_gets_key(x):
    layer = from_flax(DropMLP())
    _, params = layer.init(jax.random.key(0), (None, 3))
    k = jax.random.key(7)
    got = layer.apply(params, x, key=k, train=True)
    want = DropMLP().apply({"params": params}, x, train=True, rngs={"dropout": k})
    np.testing.assert_array_equal(got, want)
    assert bool(jnp.any(got == 0))
    other = layer.apply(params, x, key=jax.random.key(8), train=True)
    assert not np.array_equal(got, other)
    # Evaluation needs no key; training without one is a named error.
    np.testing.assert_array_equal(
        layer.apply(params, x), DropMLP().apply({"params": params}, x)
    )
    with pytest.raises(jaxnet.MissingKeyError, match=r"from_flax\(DropMLP\).*key="):
        layer.apply(params, x, train=True)


def test_linen_dropout_in_serial_and_jit(x):
    model = jaxnet.serial(from_flax(DropMLP()), jaxnet.Dense(2, dtype=F64))
    _, params = model.init(jax.random.key(0), (None, 3))
    k = jax.random.key(3)
    eager = model.apply(params, x, key=k, train=True)
    jitted = jax.jit(lambda p, x, k: model.apply(p, x, key=k, train=True))(params, x, k)
    np.testing.assert_array_equal(eager, jitted)


def test_linen_unsupported_options_dropped(x):
    layer = from_flax(MLP())
    _, params = layer.init(jax.random.key(0), (None, 3))
    got = layer.apply(params, x, train=True, deterministic=False, foo=1)
    np.testing.assert_array_equal(got, MLP().apply({"params": params}, x))
    # Options the module takes are passed on.
    scaled = from_flax(Scaled())
    _, sp = scaled.init(jax.random.key(0), (None, 3))
    np.testing.assert_array_equal(
        scaled.apply(sp, x, scale=3.0, train=True),
        Scaled().apply({"params": sp}, x, scale=3.0),
    )


def test_linen_name_and_desc():
    assert from_flax(MLP(), name="encoder").name == "encoder"

    class HTTPBlock2D(nn.Module):
        @nn.compact
        def __call__(self, x):
            return x

    assert from_flax(HTTPBlock2D()).name == "http_block2d"


def test_linen_batch_stats_rejected():
    layer = from_flax(WithBN(), input_dtype=jnp.float32)
    with pytest.raises(ValueError, match=r"from_flax\(WithBN\).*'batch_stats'") as e:
        layer.init(jax.random.key(0), (None, 3))
    assert "jaxnet.BatchNorm" in str(e.value)


def test_linen_wrong_shape_and_params_errors(x):
    layer = from_flax(MLP())
    _, params = layer.init(jax.random.key(0), (None, 3))
    with pytest.raises(jaxnet.ShapeError, match=r"from_flax\(MLP\).*\(5, 4\)"):
        layer.apply(params, jnp.ones((5, 4), F64))
    with pytest.raises(jaxnet.ParamsError, match=r"from_flax\(MLP\): params do not"):
        layer.apply({}, x)
    with pytest.raises(jaxnet.ParamsError, match=r"expected params to be a dict"):
        layer.apply([1], x)


def test_not_a_module_rejected():
    with pytest.raises(
        TypeError, match=r"from_flax: expected a flax.linen.Module .* got function"
    ):
        from_flax(lambda x: x)
    with pytest.raises(
        TypeError, match=r"got the class MLP.*from_flax\(MLP\(\.\.\.\)\)"
    ):
        from_flax(MLP)
    with pytest.raises(TypeError, match=r"from_flax: expected .* got Layer"):
        from_flax(jaxnet.Dense(3))


# -------------------------------------------------------------------------- nnx


def _nnx():
    return pytest.importorskip("flax.nnx")


def _nnx_mlp(nnx: Any) -> Any:
    class NnxMLP(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List(
                [
                    nnx.Linear(3, 8, param_dtype=F64, rngs=rngs),
                    nnx.Linear(8, 4, param_dtype=F64, rngs=rngs),
                ]
            )
            self.drop = nnx.Dropout(0.5, rngs=rngs)

        def __call__(self, x, *, train: bool = False):
            h = jax.nn.relu(self.layers[0](x))
            return self.drop(self.layers[1](h), deterministic=not train)

    return NnxMLP(nnx.Rngs(0, dropout=1))


def test_nnx_init_apply_grad(x):
    nnx = _nnx()
    module = _nnx_mlp(nnx)
    layer = from_flax(module)
    assert layer.desc == "from_flax(NnxMLP)" and layer.name == "nnx_mlp"
    out_shape, params = layer.init(jax.random.key(0), (None, 3))
    assert out_shape == (None, 4)
    want_params = nnx.to_pure_dict(nnx.state(module, nnx.Param))
    assert_close_by_path(params, want_params)
    assert sorted(params["layers"]) == ["0", "1"]
    np.testing.assert_array_equal(layer.apply(params, x), module(x))
    np.testing.assert_array_equal(jax.jit(layer.apply)(params, x), module(x))

    y = jax.random.normal(jax.random.key(2), (5, 4), F64)
    grads = jax.grad(lambda p: jnp.sum((layer.apply(p, x) - y) ** 2))(params)
    want = nnx.to_pure_dict(nnx.grad(lambda m: jnp.sum((m(x) - y) ** 2))(module))
    assert_close_by_path(grads, want)


def test_nnx_dropout_key(x):
    nnx = _nnx()
    layer = from_flax(_nnx_mlp(nnx))
    _, params = layer.init(None, (None, 3))
    k = jax.random.key(5)
    a = layer.apply(params, x, key=k, train=True)
    np.testing.assert_array_equal(a, layer.apply(params, x, key=k, train=True))
    jitted = jax.jit(lambda p, k: layer.apply(p, x, key=k, train=True))(params, k)
    np.testing.assert_array_equal(a, jitted)
    assert not np.array_equal(
        a, layer.apply(params, x, key=jax.random.key(6), train=True)
    )
    assert bool(jnp.any(a == 0))


def test_nnx_params_mismatch(x):
    nnx = _nnx()
    layer = from_flax(_nnx_mlp(nnx))
    _, params = layer.init(None, (None, 3))
    bad = {"layers": {"0": params["layers"]["0"]}}
    with pytest.raises(jaxnet.ParamsError, match=r"missing \['layers/1/bias'"):
        layer.apply(bad, x)


# --------------------------------------------------------------------- equinox


def test_equinox_mlp(x):
    eqx = pytest.importorskip("equinox")
    mlp = eqx.nn.MLP(3, 2, width_size=8, depth=2, dtype=F64, key=jax.random.key(0))
    layer = from_equinox(mlp, example_ndim=1)
    assert layer.name == "mlp" and layer.desc == "from_equinox(MLP)"
    out_shape, params = layer.init(jax.random.key(0), (None, 3))
    assert out_shape == (None, 2)
    assert sorted(params) == ["layers"]
    assert sorted(params["layers"]) == ["0", "1", "2"]
    assert params["layers"]["0"]["weight"].shape == (8, 3)
    np.testing.assert_array_equal(layer.apply(params, x), jax.vmap(mlp)(x))
    np.testing.assert_array_equal(jax.jit(layer.apply)(params, x), jax.vmap(mlp)(x))
    # Leading axes beyond one example are all mapped.
    x3 = x.reshape(5, 1, 3)
    assert layer.apply(params, x3).shape == (5, 1, 2)

    y = jax.random.normal(jax.random.key(2), (5, 2), F64)
    model = jaxnet.serial(layer, jaxnet.Tanh())
    _, mparams = model.init(jax.random.key(0), (None, 3))
    grads = jax.grad(lambda p: jnp.sum((model.apply(p, x) - y) ** 2))(mparams)

    @eqx.filter_grad
    def want(m):
        return jnp.sum((jnp.tanh(jax.vmap(m)(x)) - y) ** 2)

    assert_close_by_path(grads["mlp_0"], eqx.filter(want(mlp), eqx.is_inexact_array))


def test_equinox_key_and_options(x):
    eqx = pytest.importorskip("equinox")

    class Drop(eqx.Module):
        lin: Any
        drop: Any

        def __call__(self, x, *, key=None, inference: bool = False):
            return self.drop(self.lin(x), key=key, inference=inference)

    m = Drop(eqx.nn.Linear(3, 6, dtype=F64, key=jax.random.key(0)), eqx.nn.Dropout(0.5))
    layer = from_equinox(m, example_ndim=1)
    _, params = layer.init(None, (None, 3))
    k = jax.random.key(4)
    got = layer.apply(params, x, key=k, train=True)
    want = jax.vmap(lambda xi, ki: m(xi, key=ki))(x, jax.random.split(k, 5))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        layer.apply(params, x, inference=True), jax.vmap(m.lin)(x)
    )
    # Without example_ndim the module sees the whole input.
    whole = from_equinox(m.lin)
    np.testing.assert_array_equal(whole.apply(params["lin"], x[0]), m.lin(x[0]))


def test_equinox_errors(x):
    eqx = pytest.importorskip("equinox")
    with pytest.raises(TypeError, match=r"from_equinox: expected an equinox.Module"):
        from_equinox(MLP())
    with pytest.raises(ValueError, match=r"from_equinox\(BatchNorm\).*StateIndex"):
        from_equinox(eqx.nn.BatchNorm(3, "batch", mode="batch"))
    layer = from_equinox(
        eqx.nn.MLP(3, 2, 4, depth=1, dtype=F64, key=jax.random.key(0)),
        example_ndim=1,
    )
    _, params = layer.init(None, (None, 3))
    params["extra"] = jnp.zeros(2)
    with pytest.raises(jaxnet.ParamsError, match=r"unexpected \['extra'\]"):
        layer.apply(params, x)
