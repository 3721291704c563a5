"""BatchNorm and the state design: running statistics as explicit state in and out."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_leaves_close

import jaxnet
from jaxnet import losses
from jaxnet.testing import check_grads, tolerance

F32 = tolerance(jnp.float32, "analytic")


def _model():
    return jaxnet.serial(
        jaxnet.Dense(6), jaxnet.BatchNorm(momentum=0.9), jaxnet.Relu(), jaxnet.Dense(3)
    )


def _data(n=16, seed=0):
    kx, ky = jax.random.split(jax.random.key(seed))
    x = 3.0 + 2.0 * jax.random.normal(kx, (n, 4), jnp.float32)
    return x, jax.random.randint(ky, (n,), 0, 3)


@pytest.mark.parametrize("shape", [(8, 3), (2, 4, 4, 3)])
def test_matches_flax_train_eval_and_running_stats(shape):
    x = 5.0 + 3.0 * jax.random.normal(jax.random.key(1), shape, jnp.float32)
    ours = jaxnet.BatchNorm(momentum=0.9, epsilon=1e-5)
    theirs = nn.BatchNorm(momentum=0.9, epsilon=1e-5)
    variables = theirs.init(jax.random.key(0), x, use_running_average=False)
    _, params = ours.init(jax.random.key(0), (None, *shape[1:]))
    params = {
        "scale": jax.random.uniform(
            jax.random.key(2), (shape[-1],), jnp.float32, 0.5, 2
        ),
        "offset": jax.random.normal(jax.random.key(3), (shape[-1],), jnp.float32),
    }
    variables = {
        "params": {"scale": params["scale"], "bias": params["offset"]},
        "batch_stats": variables["batch_stats"],
    }
    _, state = ours.init_state((None, *shape[1:]))
    for step in range(4):  # several training steps: the running statistics agree
        xs = x + step
        y_theirs, upd = theirs.apply(
            variables, xs, use_running_average=False, mutable=["batch_stats"]
        )
        variables = {**variables, **upd}
        y_ours, state = ours.apply(params, xs, state=state, train=True)
        assert_leaves_close(y_ours, y_theirs, F32)
        assert_leaves_close(
            state["mean"],
            variables["batch_stats"]["mean"],
            F32,
        )
        assert_leaves_close(
            state["var"],
            variables["batch_stats"]["var"],
            F32,
        )
    y_theirs = theirs.apply(variables, x, use_running_average=True)
    y_ours, same = ours.apply(params, x, state=state)
    assert_leaves_close(y_ours, y_theirs, F32)
    assert same is state  # evaluation leaves the state untouched


def test_stateless_model_never_sees_state():
    model = jaxnet.serial(jaxnet.Dense(3), jaxnet.Relu())
    assert not model.stateful
    _, params = model.init(jax.random.key(0), (None, 4))
    y = model.apply(params, jnp.ones((2, 4), jnp.float32))
    assert isinstance(y, jax.Array) and y.shape == (2, 3)


def test_state_mirrors_param_names_and_threads_through_combinators():
    inner = jaxnet.serial(jaxnet.Dense(4), jaxnet.BatchNorm())
    model = jaxnet.serial(
        ("block", jaxnet.residual(inner)),
        jaxnet.FanOut(2),
        jaxnet.parallel(jaxnet.BatchNorm(), jaxnet.Identity()),
        jaxnet.FanInSum(),
    )
    assert model.stateful and inner.stateful
    out_shape, params = model.init(jax.random.key(0), (None, 4))
    state_shape, state = model.init_state((None, 4))
    assert state_shape == out_shape == (None, 4)
    shapes = jax.tree.map(jnp.shape, state)
    assert shapes == {
        "block": {"batch_norm_1": {"mean": (4,), "var": (4,)}},
        "parallel_2": {"batch_norm_0": {"mean": (4,), "var": (4,)}},
    }
    x, _ = _data()
    y, new = model.apply(params, x, state=state, train=True)
    assert y.shape == (16, 4)
    assert jax.tree.structure(new) == jax.tree.structure(state)
    assert not np.allclose(new["block"]["batch_norm_1"]["mean"], 0.0)


def test_missing_state_is_a_clear_error():
    model = _model()
    _, params = model.init(jax.random.key(0), (None, 4))
    x, _ = _data()
    with pytest.raises(jaxnet.StateError) as exc:
        model.apply(params, x, train=True)
    msg = str(exc.value)
    assert "serial(" in msg and "without" in msg
    assert "model.init_state(input_shape)" in msg and "state=state, train=True" in msg
    with pytest.raises(jaxnet.StateError, match="has no entry 'batch_norm_1'"):
        model.apply(params, x, state={}, train=True)


def test_train_updates_eval_uses_running_statistics():
    bn = jaxnet.BatchNorm(momentum=0.5)
    _, params = bn.init(jax.random.key(0), (None, 2))
    _, state = bn.init_state((None, 2))
    x = jnp.array([[0.0, 10.0], [2.0, 30.0]], jnp.float32)
    y, state = bn.apply(params, x, state=state, train=True)
    # running = 0.5 * initial + 0.5 * batch: mean 0.5 * 0 + 0.5 * (1, 20), var
    # 0.5 * 1 + 0.5 * (1, 100)
    assert_leaves_close(state["mean"], jnp.array([0.5, 10.0], jnp.float32), F32)
    assert_leaves_close(state["var"], jnp.array([1.0, 50.5], jnp.float32), F32)
    assert_leaves_close(
        y,
        jnp.array([[-1.0, -1.0], [1.0, 1.0]], jnp.float32)
        / np.sqrt(np.float32(1 + 1e-5)),
        F32,
    )
    y_eval, _ = bn.apply(params, x, state=state)
    assert_leaves_close(
        y_eval,
        (x - state["mean"][None]) / jnp.sqrt(state["var"][None] + 1e-5),
        F32,
    )


@pytest.mark.slow
def test_jit_vmap_and_scan():
    model = _model()
    _, params = model.init(jax.random.key(0), (None, 4))
    _, state = model.init_state((None, 4))
    x, y = _data()
    loss = losses.softmax_cross_entropy_with_integer_labels
    opt = optax.sgd(0.1)

    def step(carry, batch):
        params, opt_state, state = carry

        def objective(p):
            logits, new_state = model.apply(p, batch[0], state=state, train=True)
            return jnp.mean(loss(logits, batch[1])), new_state

        (value, new_state), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, new_state), value

    batches = (jnp.stack([x] * 5), jnp.stack([y] * 5))
    (p_scan, _, s_scan), values = jax.jit(lambda c, b: jax.lax.scan(step, c, b))(
        (params, opt.init(params), state), batches
    )
    assert values[-1] < values[0]
    # The same five steps one by one (jitted) give the same result.
    carry = (params, opt.init(params), state)
    jstep = jax.jit(step)
    for i in range(5):
        carry, _ = jstep(carry, (batches[0][i], batches[1][i]))
    for a, b in zip(jax.tree.leaves((p_scan, s_scan)), jax.tree.leaves(carry[::2])):
        assert_leaves_close(a, b, F32)
    # vmap of the whole model over an ensemble of 3 (params, state) pairs.
    ens_p = jax.vmap(lambda k: model.init(k, (None, 4))[1])(
        jax.random.split(jax.random.key(5), 3)
    )
    ens_s = jax.tree.map(lambda a: jnp.stack([a] * 3), state)
    out, new = jax.vmap(lambda p, s: model.apply(p, x, state=s, train=True))(
        ens_p, ens_s
    )
    assert out.shape == (3, 16, 3)
    for i in range(3):
        one, _ = model.apply(
            jax.tree.map(lambda a, i=i: a[i], ens_p), x, state=state, train=True
        )
        assert_leaves_close(out[i], one, F32)


@pytest.mark.slow
def test_analytic_value_and_grad_with_state_matches_jax():
    with jax.enable_x64(True):
        model = jaxnet.serial(
            jaxnet.Dense(6, dtype=jnp.float64),
            jaxnet.BatchNorm(dtype=jnp.float64),
            jaxnet.Tanh(),
            jaxnet.Dense(3, dtype=jnp.float64),
        )
        _, params = model.init(jax.random.key(0), (None, 4))
        _, state = model.init_state((None, 4))
        x = jax.random.normal(jax.random.key(1), (8, 4), jnp.float64)
        y = jax.random.randint(jax.random.key(2), (8,), 0, 3)
        loss = losses.softmax_cross_entropy_with_integer_labels
        hand = jaxnet.analytic.value_and_grad(model, loss)
        (value, new_state), grads = hand(params, x, y, state=state, train=True)

        def objective(p):
            logits, _ = model.apply(p, x, state=state, train=True)
            return jnp.mean(loss(logits, y))

        np.testing.assert_allclose(value, objective(params), rtol=1e-15)
        _, auto_state = model.apply(params, x, state=state, train=True)
        for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(auto_state)):
            np.testing.assert_array_equal(a, b)
        report = check_grads(
            objective,
            params,
            analytic=lambda p: hand(p, x, y, state=state, train=True)[1],
            method=None,
        )
        report.assert_ok()
        assert max(r.max_rel for r in report.rows) < 1e-13


def test_bad_input_names_the_layer():
    bn = jaxnet.BatchNorm()
    _, params = bn.init(jax.random.key(0), (None, 3))
    _, state = bn.init_state((None, 3))
    with pytest.raises(
        jaxnet.ShapeError,
        match=r"expected input of shape \(batch, \.\.\., 3\), got \(2, 4\)",
    ):
        bn.apply(params, jnp.ones((2, 4), jnp.float32), state=state, train=True)
    with pytest.raises(ValueError, match="momentum must lie in"):
        jaxnet.BatchNorm(momentum=1.0)
    with pytest.raises(jaxnet.ShapeError, match="rank >= 2"):
        bn.init(jax.random.key(0), (3,))
