"""Per-example gradients (``jaxnet.per_example_grads``) and DP-SGD through
``make_train_step(..., per_example=True)``.

The oracle is a Python loop of ``jax.grad`` over the examples, each run as a batch of
one with its own key; float64, tolerances from the library's table.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_close

import jaxnet
from jaxnet import losses
from jaxnet.testing import tolerance

TOL = tolerance(jnp.float64, "analytic")
N = 5


def mlp(drop_rate=0.0):
    return jaxnet.serial(
        jaxnet.Dense(6), jaxnet.Tanh(), jaxnet.Dropout(drop_rate), jaxnet.Dense(3)
    )


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((N, 4)))
    y = jnp.asarray(rng.integers(0, 3, N), jnp.int32)
    return x, y


def params64(model, x):
    _, p = model.init(jax.random.key(1), x)
    return jax.tree.map(lambda a: a.astype(jnp.float64), p)


def loop_grads(model, params, x, y, keys=None, train=False):
    """The oracle: jax.grad of each example's loss alone, stacked."""
    rows, values = [], []
    for i in range(x.shape[0]):
        key = None if keys is None else keys[i]

        def f(p, i=i, key=key):
            out = model.apply(p, x[i : i + 1], key=key, train=train)
            return losses.softmax_cross_entropy_with_integer_labels(out, y[i : i + 1])[
                0
            ]

        v, g = jax.value_and_grad(f)(params)
        rows.append(g)
        values.append(v)
    return jnp.stack(values), jax.tree.map(lambda *a: jnp.stack(a), *rows)


@pytest.mark.slow
def test_per_example_grads_equal_a_loop_of_grad():
    model = mlp()
    x, y = data()
    params = params64(model, x)
    fn = jax.jit(
        jaxnet.per_example_grads(
            model, losses.softmax_cross_entropy_with_integer_labels
        )
    )
    got_l, got_g = fn(params, x, y)
    want_l, want_g = loop_grads(model, params, x, y)
    assert got_g["dense_0"]["w"].shape == (N, 4, 6)
    assert_trees_close(got_l, want_l, TOL, "losses")
    assert_trees_close(got_g, want_g, TOL, "per-example grads")
    # Their mean is the batch gradient of the mean loss.
    batch = jax.grad(
        lambda p: jnp.mean(
            losses.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y)
        )
    )(params)
    assert_trees_close(jax.tree.map(lambda g: g.mean(0), got_g), batch, TOL, "mean")


@pytest.mark.slow
def test_each_example_gets_its_own_dropout_key():
    model = mlp(drop_rate=0.5)
    x, y = data(1)
    params = params64(model, x)
    key = jax.random.key(7)
    fn = jaxnet.per_example_grads(
        model, losses.softmax_cross_entropy_with_integer_labels
    )
    _, got = fn(params, x, y, key=key)
    _, want = loop_grads(model, params, x, y, jax.random.split(key, N), train=True)
    assert_trees_close(got, want, TOL, "per-example grads with dropout")
    # Without the key, training mode asks for one (Dropout's own error).
    with pytest.raises(jaxnet.MissingKeyError, match="Dropout"):
        fn(params, x, y)


def test_batchnorm_in_training_is_refused():
    model = jaxnet.serial(jaxnet.Dense(3), jaxnet.BatchNorm())
    with pytest.raises(ValueError, match=r"BatchNorm.*per-example gradient is not"):
        jaxnet.per_example_grads(model, losses.mse)
    with pytest.raises(ValueError, match="LayerNorm or GroupNorm"):
        jaxnet.make_train_step(model, losses.mse, optax.sgd(0.1), per_example=True)


def clip(tree, c):
    norm = jnp.sqrt(sum(jnp.sum(a**2) for a in jax.tree.leaves(tree)))
    return jax.tree.map(lambda a: a * jnp.minimum(1.0, c / norm), tree)


@pytest.mark.slow
def test_dpsgd_step_clips_each_example_then_averages():
    """DP-SGD used to fail in Optax ("expects grads to have a batch
    dimension"); with per_example=True it gets them. Noise 0: the update is exactly
    -lr * mean_i clip(g_i, C), which the hand computation below reproduces."""
    model = mlp()
    x, y = data(2)
    params = params64(model, x)
    lr, c = 0.5, 0.3
    # optax.contrib.dpsgd(lr, c, 0.0, seed) is this chain; it warns that seed= is
    # deprecated (optax 0.2.8), so the test builds the chain with key= itself.
    opt = optax.chain(
        optax.contrib.differentially_private_aggregate(c, 0.0, key=jax.random.key(0)),
        optax.sgd(lr),
    )
    step = jax.jit(
        jaxnet.make_train_step(
            model,
            losses.softmax_cross_entropy_with_integer_labels,
            opt,
            per_example=True,
        )
    )
    new, _, m = step(params, opt.init(params), (x, y))
    _, per = loop_grads(model, params, x, y)
    rows = [jax.tree.map(lambda g, i=i: g[i], per) for i in range(N)]
    clipped = [clip(r, c) for r in rows]
    mean = jax.tree.map(lambda *a: sum(a) / N, *clipped)
    want = jax.tree.map(lambda p, g: p - lr * g, params, mean)
    assert_trees_close(new, want, TOL, "dpsgd step")
    # grad_norm reports the (unclipped) batch gradient, as the ordinary step does.
    batch = jax.tree.map(lambda g: g.mean(0), per)
    norm = jnp.sqrt(sum(jnp.sum(a**2) for a in jax.tree.leaves(batch)))
    np.testing.assert_allclose(m["grad_norm"], norm, rtol=TOL.rtol)
    # The clip bound mattered: every example's gradient was above it.
    assert all(
        jnp.sqrt(sum(jnp.sum(a**2) for a in jax.tree.leaves(r))) > c for r in rows
    )


def test_optimizer_that_does_not_aggregate_is_refused():
    """Adam on per-example gradients would broadcast a batch axis into the params."""
    model = mlp()
    x, y = data()
    params = params64(model, x)
    opt = optax.adam(1e-3)
    step = jaxnet.make_train_step(
        model, losses.softmax_cross_entropy_with_integer_labels, opt, per_example=True
    )
    with pytest.raises(jaxnet.ShapeError) as info:
        step(params, opt.init(params), (x, y))
    text = str(info.value)
    assert "did not aggregate the per-example gradients" in text
    assert "optax.contrib.dpsgd" in text
    # An optimizer that keeps the batch axis (plain SGD) is caught on the shapes.
    sgd = optax.sgd(0.1)
    step = jaxnet.make_train_step(model, losses.mse, sgd, per_example=True)
    with pytest.raises(jaxnet.ShapeError) as info:
        step(params, sgd.init(params), (x, jnp.zeros((N, 3))))
    text = str(info.value)
    want = "an update of shape (5, 6) for params['dense_0']['b'] of shape (6,)"
    assert want in text
    with pytest.raises(ValueError, match="per_example=True needs gradients='autodiff'"):
        jaxnet.make_train_step(
            model, losses.mse, opt, per_example=True, gradients="analytic"
        )


@pytest.mark.slow
def test_benchmark_case_agrees_with_the_batch_gradient_and_clips():
    """The bench case ``per_example_b32``: every implementation passes the harness's
    agreement gate against the batch gradient (the clip never binds there), and the
    clip does bind when the norms exceed it."""
    from jaxnet.bench import _runner
    from jaxnet.bench.cases import per_example as pe

    case = pe.CASES["per_example_b32"](True)
    ratios = {}
    diffs = _runner.check_agreement(case, ratios_out=ratios)
    assert set(diffs) == {
        "autodiff",
        "per_example_vmap",
        "per_example_map",
        "per_example_loop",
    }
    assert max(ratios.values()) <= 1.0
    grads = {"w": jnp.array([[3.0, 4.0], [0.3, 0.4]])}  # norms 5 and 0.5
    tol = tolerance(jnp.float32, "analytic")
    mean = {"w": jnp.array([1.65, 2.2])}
    assert_trees_close(pe._clipped_mean(grads), mean, tol)  # CLIP = 1e6: unclipped
    clipped = pe._clipped_mean(grads, clip=1.0)  # [0.6, 0.8] and [0.3, 0.4]
    assert_trees_close(clipped, {"w": jnp.array([0.45, 0.6])}, tol)
