"""Train steps, eval, the fused loop, the dtype policy and fit: behaviour with numbers.

Optax's own updates mix Python floats with int32 step counts (``decay ** count``), which
strict dtype promotion refuses, so this module runs under standard promotion.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_close

import jaxnet
from jaxnet import losses
from jaxnet.testing import tolerance

XENT = losses.softmax_cross_entropy_with_integer_labels


@pytest.fixture(autouse=True)
def _standard_promotion():
    with jax.numpy_dtype_promotion("standard"):
        yield


def _data(n=48, d=3, classes=3, dtype=jnp.float64, seed=0):
    kx, kw = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (n, d), dtype)
    w = jax.random.normal(kw, (d, classes), dtype)
    return x, jnp.argmax(x @ w, axis=-1).astype(jnp.int32)


def _mlp(classes=3):
    return jaxnet.serial(jaxnet.Dense(8), jaxnet.Tanh(), jaxnet.Dense(classes))


def _init(model, x, seed=1):
    """Parameters in the inputs' dtype (float64 for the exact comparisons)."""
    params = model.init(jax.random.key(seed), x)[1]
    return jax.tree.map(lambda p: p.astype(x.dtype), params)


# ------------------------------------------------------------------ make_train_step


@pytest.mark.slow
def test_sgd_step_is_params_minus_lr_grad():
    model = _mlp()
    x, y = _data()
    params = _init(model, x)
    opt = optax.sgd(0.3)
    step = jaxnet.make_train_step(model, XENT, opt)
    new, _, m = jax.jit(step)(params, opt.init(params), (x, y))

    def objective(p):
        return jnp.mean(XENT(model.apply(p, x), y))

    value, grads = jax.value_and_grad(objective)(params)
    expected = jax.tree.map(lambda p, g: p - 0.3 * g, params, grads)
    assert_trees_close(new, expected, tolerance(jnp.float64, "analytic"))
    assert float(m["loss"]) == pytest.approx(float(value), rel=1e-6)  # loss in f32
    norm = np.sqrt(sum(np.sum(np.asarray(g) ** 2) for g in jax.tree.leaves(grads)))
    assert float(m["grad_norm"]) == pytest.approx(norm, rel=1e-12)


@pytest.mark.slow
def test_analytic_gradients_match_autodiff_step():
    model = _mlp()
    x, y = _data()
    params = _init(model, x)
    opt = optax.adam(1e-2)
    extra = {"accuracy": jaxnet.accuracy}
    auto = jaxnet.make_train_step(model, XENT, opt, metrics=extra)
    hand = jaxnet.make_train_step(model, XENT, opt, metrics=extra, gradients="analytic")
    s = opt.init(params)
    pa, sa, ma = auto(params, s, (x, y))
    ph, sh, mh = hand(params, s, (x, y))
    assert_trees_close(ph, pa, tolerance(jnp.float64, "analytic"))
    assert_trees_close(sh, sa, tolerance(jnp.float64, "analytic"))
    assert float(mh["accuracy"]) == float(ma["accuracy"])
    assert float(mh["grad_norm"]) == pytest.approx(float(ma["grad_norm"]), rel=1e-12)


def test_second_call_never_retraces():
    traces = []

    def record(x):
        traces.append(x.shape)
        return x

    model = jaxnet.serial(jaxnet.Lambda(record, backward=None), jaxnet.Dense(2))
    x, y = _data(classes=2)
    params = _init(model, x)
    traces.clear()  # init may run the function for its output shape
    opt = optax.sgd(0.1)
    step = jax.jit(jaxnet.make_train_step(model, XENT, opt))
    s = opt.init(params)
    for _ in range(3):
        params, s, _ = step(params, s, (x, y))
    assert len(traces) == 1
    guarded = jaxnet.jit_step(jaxnet.make_train_step(model, XENT, opt))
    for _ in range(3):
        params, s, _ = guarded(params, s, (x + 1.0, y))
    assert len(traces) == 2  # one trace for the guarded step, none after


def test_jit_step_refuses_new_batch_shape_and_dtype():
    model = _mlp()
    x, y = _data()
    params = _init(model, x)
    opt = optax.sgd(0.1)
    step = jaxnet.jit_step(jaxnet.make_train_step(model, XENT, opt), donate=False)
    s = opt.init(params)
    params, s, _ = step(params, s, (x, y))
    with pytest.raises(jaxnet.ShapeError, match=r"float64\(47, 3\).*float64\(48, 3\)"):
        step(params, s, (x[:47], y[:47]))
    with pytest.raises(jaxnet.ShapeError, match="float32"):
        step(params, s, (x.astype(jnp.float32), y))
    relaxed = jaxnet.jit_step(
        jaxnet.make_train_step(model, XENT, opt), donate=False, allow_recompile=True
    )
    relaxed(params, s, (x, y))
    _, _, m = relaxed(params, s, (x[:47], y[:47]))
    assert np.isfinite(float(m["loss"]))


def test_multisteps_accumulation_equals_one_full_batch_step():
    model = _mlp()
    x, y = _data(n=48)
    params = _init(model, x)
    full = optax.sgd(0.5)
    p_full, _, _ = jaxnet.make_train_step(model, XENT, full)(
        params, full.init(params), (x, y)
    )
    # accumulate in float64 (optax's default accumulator is float32)
    acc = optax.MultiSteps(
        optax.sgd(0.5), every_k_schedule=2, accumulator_dtype=jnp.float64
    )
    step = jax.jit(jaxnet.make_train_step(model, XENT, acc))
    s = acc.init(params)
    p1, s, _ = step(params, s, (x[:24], y[:24]))
    assert_trees_close(
        p1, params, tolerance(jnp.float64, "analytic")
    )  # the first micro-batch only accumulates
    p2, s, _ = step(p1, s, (x[24:], y[24:]))
    assert_trees_close(p2, p_full, tolerance(jnp.float64, "analytic"))


def test_chain_with_clipping_and_schedule_trains():
    model = _mlp()
    x, y = _data(n=96)
    params = _init(model, x)
    opt = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 0.05, 5, 60)),
    )
    step = jax.jit(jaxnet.make_train_step(model, XENT, opt))
    s = opt.init(params)
    first = None
    for _ in range(60):
        params, s, m = step(params, s, (x, y))
        first = float(m["loss"]) if first is None else first
    assert float(m["loss"]) < 0.5 * first


def test_stateful_step_threads_batchnorm_state():
    model = jaxnet.serial(
        jaxnet.Dense(4), jaxnet.BatchNorm(momentum=0.5), jaxnet.Dense(3)
    )
    x, y = _data()
    params = _init(model, x)
    _, state = model.init_state(x)
    opt = optax.sgd(0.1)
    step = jaxnet.make_train_step(model, XENT, opt)
    out = step(params, opt.init(params), (x, y), state=state)
    assert len(out) == 4
    _, new_state = model.apply(params, x, state=state, train=True)
    assert_trees_close(out[3], new_state, tolerance(jnp.float64, "analytic"))
    assert not np.allclose(
        np.asarray(jax.tree.leaves(out[3])[0]), np.asarray(jax.tree.leaves(state)[0])
    )
    with pytest.raises(jaxnet.StateError, match="needs state="):
        step(params, opt.init(params), (x, y))
    with pytest.raises(jaxnet.StateError, match="takes no state="):
        jaxnet.make_train_step(_mlp(), XENT, opt)(
            params, opt.init(params), (x, y), state=state
        )


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        jaxnet.make_train_step(_mlp(), XENT, optax.sgd(1.0), reduction="max")
    with pytest.raises(TypeError, match="optax.GradientTransformation"):
        jaxnet.make_train_step(_mlp(), XENT, object())
    with pytest.raises(ValueError, match="gradients='autodiff'"):
        jaxnet.make_train_step(
            _mlp(), XENT, optax.sgd(1.0), gradients="analytic", policy="bfloat16"
        )
    step = jaxnet.make_train_step(_mlp(), XENT, optax.sgd(1.0))
    x, y = _data()
    with pytest.raises(jaxnet.ShapeError, match="pair \\(inputs, targets\\)"):
        step({}, (), (x, y, y))


# --------------------------------------------------------------- dtype policy


def test_bfloat16_policy_computes_in_bf16_and_keeps_f32_params():
    seen = []

    def record(h):
        seen.append(h.dtype)
        return h

    model = jaxnet.serial(
        jaxnet.Dense(16),
        jaxnet.Lambda(record, backward=None),
        jaxnet.Relu(),
        jaxnet.Dense(3),
    )
    x, y = _data(n=256, dtype=jnp.float32)
    params = _init(model, x)
    seen.clear()  # init may run the function for its output shape
    opt = optax.adam(3e-2)
    step = jax.jit(jaxnet.make_train_step(model, XENT, opt, policy="bfloat16"))
    s = opt.init(params)
    losses_ = []
    for _ in range(40):
        params, s, m = step(params, s, (x, y))
        losses_.append(float(m["loss"]))
    assert seen == [jnp.dtype(jnp.bfloat16)]
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    assert m["loss"].dtype == jnp.float32
    assert losses_[-1] < 0.3 * losses_[0]
    # and it follows the float32 run closely (bf16 has 8 bits of mantissa)
    f32 = jaxnet.evaluate(model, XENT, params, (x, y))["loss"]
    assert f32 == pytest.approx(losses_[-1], rel=0.2, abs=0.05)


def test_policy_rejects_non_float_dtypes():
    with pytest.raises(jaxnet.DTypeError, match="compute_dtype must be a floating"):
        jaxnet.Policy(compute_dtype=jnp.int32)


# ------------------------------------------------------------------- evaluate


@pytest.mark.parametrize("batch_size", [7, 48, 1000])
def test_evaluate_counts_every_example_once(batch_size):
    model = _mlp()
    x, y = _data()
    params = _init(model, x)
    out = jaxnet.evaluate(
        model,
        XENT,
        params,
        (x, y),
        batch_size=batch_size,
        metrics={"acc": jaxnet.accuracy},
    )
    logits = model.apply(params, x)
    assert out["loss"] == pytest.approx(float(jnp.mean(XENT(logits, y))), rel=1e-6)
    assert out["acc"] == pytest.approx(float(jnp.mean(jnp.argmax(logits, -1) == y)))


def test_accuracy_variants():
    logits = jnp.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert jaxnet.accuracy(logits, jnp.array([0, 1, 1])).tolist() == [1.0, 1.0, 0.0]
    onehot = jax.nn.one_hot(jnp.array([1, 1, 0]), 2)
    assert jaxnet.accuracy(logits, onehot).tolist() == [0.0, 1.0, 1.0]
    binary = jnp.array([[0.3], [-2.0]])
    assert jaxnet.accuracy(binary, jnp.array([[1.0], [1.0]])).tolist() == [1.0, 0.0]
    with pytest.raises(jaxnet.ShapeError, match="accuracy: targets"):
        jaxnet.accuracy(logits, jnp.array([0, 1]))


# ------------------------------------------------------------------ train_scan


@pytest.mark.slow
def test_train_scan_equals_a_python_loop_of_the_same_steps():
    model = jaxnet.serial(
        jaxnet.Dense(8), jaxnet.Relu(), jaxnet.Dropout(0.25), jaxnet.Dense(3)
    )
    x, y = _data(n=50)
    params = _init(model, x)
    opt = optax.adam(1e-2)
    step = jaxnet.make_train_step(model, XENT, opt)
    key = jax.random.key(7)
    ts, m = jaxnet.train_scan(
        step, params, opt.init(params), (x, y), key=key, epochs=3, batch_size=16
    )
    assert m["loss"].shape == (3, 3)  # 50 // 16 steps per epoch, remainder dropped
    assert int(ts.step) == 9

    _, shuffle_key, step_key = jaxnet.split_key(key)
    p, s, jstep, g = params, opt.init(params), jax.jit(step), 0
    for epoch in range(3):
        order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), 50)
        for b in range(3):
            idx = order[16 * b : 16 * (b + 1)]
            p, s, mm = jstep(
                p, s, (x[idx], y[idx]), key=jax.random.fold_in(step_key, g)
            )
            assert float(mm["loss"]) == pytest.approx(
                float(m["loss"][epoch, b]), rel=1e-12
            )
            g += 1
    assert_trees_close(ts.params, p, tolerance(jnp.float64, "analytic"))


def test_train_scan_full_batch_logistic_regression_converges():
    x = jnp.concatenate([jnp.full((50, 2), -1.0), jnp.full((50, 2), 1.0)])
    x = x + 0.5 * jax.random.normal(jax.random.key(0), x.shape, jnp.float64)
    y = jnp.concatenate([jnp.zeros((50, 1)), jnp.ones((50, 1))])
    model = jaxnet.Dense(1)
    params = _init(model, x)
    opt = optax.sgd(1.0)
    step = jaxnet.make_train_step(model, losses.sigmoid_binary_cross_entropy, opt)
    ts, m = jaxnet.train_scan(
        step, params, opt.init(params), (x, y), key=jax.random.key(0), epochs=100
    )
    assert m["loss"].shape == (100, 1)
    assert float(m["loss"][-1, 0]) < 0.1 < float(m["loss"][0, 0])
    assert float(jnp.mean(jaxnet.accuracy(model.apply(ts.params, x), y))) == 1.0


def test_train_scan_rejects_bad_batch_size():
    model = _mlp()
    x, y = _data()
    params = _init(model, x)
    step = jaxnet.make_train_step(model, XENT, optax.sgd(0.1))
    with pytest.raises(jaxnet.ShapeError, match="between 1 and the number of examples"):
        jaxnet.train_scan(
            step, params, (), (x, y), key=jax.random.key(0), epochs=1, batch_size=49
        )
    with pytest.raises(jaxnet.ShapeError, match="share their first"):
        jaxnet.train_scan(step, params, (), (x, y[:3]), key=jax.random.key(0), epochs=1)


# ------------------------------------------------------------------------ fit


def _fit(**kw):
    x, y = _data(n=64)
    args = dict(key=jax.random.key(3), epochs=3, batch_size=16, progress=False)
    args.update(kw)
    return jaxnet.fit(_mlp(), XENT, kw.pop("opt", optax.adam(0.05)), (x, y), **args)


@pytest.mark.slow
def test_fit_history_is_plain_data_and_deterministic():
    x, y = _data(n=64)
    a = _fit(validation_data=(x[:20], y[:20]), metrics={"accuracy": jaxnet.accuracy})
    b = _fit(validation_data=(x[:20], y[:20]), metrics={"accuracy": jaxnet.accuracy})
    assert [r["epoch"] for r in a.history] == [1, 2, 3]
    assert a.step == 12 and a.history[-1]["step"] == 12
    json.dumps(a.history)  # plain data
    assert {"loss", "accuracy", "grad_norm", "val_loss", "val_accuracy"} <= set(
        a.history[0]
    )
    assert a.history[-1]["loss"] < a.history[0]["loss"]
    for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        assert np.array_equal(np.asarray(u), np.asarray(v))
    # the history's val_loss is evaluate() on the final params
    val = jaxnet.evaluate(_mlp(), XENT, a.params, (x[:20], y[:20]))
    assert a.history[-1]["val_loss"] == pytest.approx(val["loss"], rel=1e-12)


def test_fit_chunked_epochs_equal_whole_epochs():
    whole = _fit()
    chunked = _fit(steps_per_call=3)  # 4 steps per epoch: calls of 3 + 1
    assert_trees_close(chunked.params, whole.params, tolerance(jnp.float64, "analytic"))
    assert chunked.history[-1]["loss"] == pytest.approx(
        whole.history[-1]["loss"], rel=1e-12
    )


def test_fit_on_a_list_of_batches_and_a_callable():
    x, y = _data(n=64)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    r = jaxnet.fit(
        _mlp(), XENT, optax.adam(0.05), batches, key=jax.random.key(3), epochs=2
    )
    assert r.step == 8 and len(r.history) == 2
    calls = []

    def per_epoch(epoch):
        calls.append(epoch)
        return batches[::-1] if epoch % 2 else batches

    r2 = jaxnet.fit(
        _mlp(), XENT, optax.adam(0.05), per_epoch, key=jax.random.key(3), epochs=2
    )
    assert calls[-2:] == [0, 1] and r2.step == 8
    ragged = batches + [(x[:5], y[:5])]
    with pytest.raises(jaxnet.ShapeError, match="silently recompile"):
        jaxnet.fit(_mlp(), XENT, optax.adam(0.05), ragged, key=jax.random.key(3))
    with pytest.raises(TypeError, match="one-shot iterator"):
        jaxnet.fit(
            _mlp(),
            XENT,
            optax.adam(0.05),
            iter(batches),
            key=jax.random.key(3),
            epochs=2,
        )


def test_fit_stops_on_nan_naming_the_step():
    x, y = _data(n=64)
    x = x.at[37].set(jnp.nan)  # batch 3 of epoch 1 (shuffle off): steps 0, 1 are fine
    with pytest.raises(
        jaxnet.TrainingError, match=r"nan at step 2 \(epoch 1, batch 3 of 4\)"
    ):
        jaxnet.fit(
            _mlp(),
            XENT,
            optax.sgd(0.1),
            (x, y),
            key=jax.random.key(0),
            batch_size=16,
            shuffle=False,
            progress=False,
        )


def test_fit_rejects_out_of_range_labels_before_training():
    x, y = _data(n=64)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\).*\[0, 3\]"):
        jaxnet.fit(
            _mlp(), XENT, optax.sgd(0.1), (x, y.at[5].set(3)), key=jax.random.key(0)
        )
    with pytest.raises(ValueError, match=r"\[-1, 2\]"):
        jaxnet.fit(
            _mlp(), XENT, optax.sgd(0.1), (x, y.at[5].set(-1)), key=jax.random.key(0)
        )


def test_fit_keeps_the_first_batch_of_a_one_shot_iterator():
    """The peek at the first batch (for the shapes) once consumed it: 3 steps of 4."""
    x, y = _data(n=64)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    r = jaxnet.fit(
        _mlp(), XENT, optax.sgd(0.1), (b for b in batches), key=jax.random.key(3)
    )
    listed = jaxnet.fit(_mlp(), XENT, optax.sgd(0.1), batches, key=jax.random.key(3))
    assert r.step == 4
    assert_trees_close(r.params, listed.params, tolerance(jnp.float64, "analytic"))


@pytest.mark.parametrize("bad", [5, -7])
def test_fit_checks_labels_of_every_batch_of_a_list_or_callable(bad):
    x, y = _data(n=64)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    batches[2] = (batches[2][0], batches[2][1].at[3].set(bad))
    match = r"fit \(batch 3 of epoch 1\): integer labels must lie in \[0, 3\)"
    for data in (batches, lambda epoch: batches):
        with pytest.raises(ValueError, match=match):
            jaxnet.fit(_mlp(), XENT, optax.sgd(0.1), data, key=jax.random.key(3))


def test_fit_refuses_a_fractional_batch_size_and_missing_data():
    """batch_size=1.5 was truncated to 1; data=None gave a raw 'NoneType' TypeError."""
    with pytest.raises(
        TypeError, match=r"batch_size must be an int.*1\.5.*never rounded"
    ):
        _fit(batch_size=1.5)
    with pytest.raises(TypeError, match=r"fit: data must be \(x, y\) arrays.*NoneType"):
        jaxnet.fit(_mlp(), XENT, optax.sgd(0.1), None, key=jax.random.key(0))


def test_fit_refuses_non_finite_validation_data():
    x, y = _data(n=64)
    for vx, vy in ((x[:20].at[4, 1].set(jnp.inf), y[:20]),
                   (x[:20].at[0, 0].set(jnp.nan), y[:20])):  # fmt: skip
        with pytest.raises(
            ValueError, match=r"validation_data\): x holds a non-finite"
        ):
            _fit(validation_data=(vx, vy))
    with pytest.raises(ValueError, match=r"validation_data\): integer labels"):
        _fit(validation_data=(x[:20], y[:20].at[0].set(9)))


def test_fit_checks_the_checkpoint_directory_first(tmp_path):
    missing = tmp_path / "nope" / "run.jnc"
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        _fit(checkpoint=missing)


def test_fit_early_stopping_restores_the_best_epoch():
    x, y = _data(n=64)
    # val set with flipped labels: val_loss rises as training fits the train set
    r = _fit(
        epochs=30,
        validation_data=(x, (y + 1) % 3),
        early_stopping=jaxnet.EarlyStopping(patience=2),
    )
    assert r.stopped_early
    assert len(r.history) == r.best_epoch + 2
    val = jaxnet.evaluate(_mlp(), XENT, r.params, (x, (y + 1) % 3))["loss"]
    assert val == pytest.approx(r.history[r.best_epoch - 1]["val_loss"], rel=1e-12)
    with pytest.raises(KeyError, match="not in the history"):
        _fit(epochs=1, early_stopping=jaxnet.EarlyStopping(monitor="val_loss"))


@pytest.mark.slow
def test_fit_resumes_from_its_checkpoint(tmp_path):
    path = tmp_path / "run.jnc"
    straight = _fit(epochs=4)
    first = _fit(epochs=2, checkpoint=path)
    assert jaxnet.inspect_checkpoint(path)["metadata"]["epoch"] == 2
    resumed = _fit(epochs=4, checkpoint=path)
    assert (first.resumed_from, resumed.resumed_from) == (0, 2)
    assert resumed.step == straight.step == 16
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    for u, v in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(straight.params)):
        assert np.array_equal(np.asarray(u), np.asarray(v))
    with pytest.raises(ValueError, match="different key"):
        _fit(epochs=5, checkpoint=path, key=jax.random.key(4))
    with pytest.raises(ValueError, match="batch_size=16"):
        _fit(epochs=5, checkpoint=path, batch_size=8)


def test_fit_trains_a_stateful_model_in_bfloat16():
    x, y = _data(n=128, dtype=jnp.float32)
    model = jaxnet.serial(
        jaxnet.Dense(16), jaxnet.BatchNorm(), jaxnet.Relu(), jaxnet.Dense(3)
    )
    r = jaxnet.fit(
        model,
        XENT,
        optax.adam(0.03),
        (x, y),
        key=jax.random.key(0),
        epochs=8,
        batch_size=32,
        policy="bfloat16",
        progress=False,
        metrics={"acc": jaxnet.accuracy},
    )
    assert r.history[-1]["loss"] < 0.5 * r.history[0]["loss"]
    assert r.history[-1]["acc"] > 0.85
    assert r.state is not None
    assert {leaf.dtype for leaf in jax.tree.leaves(r.params)} == {
        jnp.dtype(jnp.float32)
    }


@pytest.mark.slow
def test_loops_run_under_strict_promotion_with_x64():
    """The library's own loops mix no dtypes (optax.sgd does not either)."""
    with jax.numpy_dtype_promotion("strict"):
        x, y = _data(n=32)
        model = _mlp()
        params = _init(model, x)
        opt = optax.sgd(0.1)
        step = jaxnet.make_train_step(model, XENT, opt)
        ts, m = jaxnet.train_scan(
            step,
            params,
            opt.init(params),
            (x, y),
            key=jax.random.key(0),
            epochs=2,
            batch_size=8,
        )
        r = jaxnet.fit(
            model,
            XENT,
            opt,
            (x, y),
            key=jax.random.key(0),
            epochs=2,
            batch_size=8,
            params=params,
            steps_per_call=3,
            progress=False,
        )
    assert int(ts.step) == r.step == 8
    assert_trees_close(r.params, ts.params, tolerance(jnp.float64, "analytic"))


def test_rerunning_an_early_stopped_run_does_not_train_on(tmp_path):
    x, y = _data(n=64)
    kw = dict(
        epochs=30,
        validation_data=(x, (y + 1) % 3),
        early_stopping=jaxnet.EarlyStopping(patience=2),
        checkpoint=tmp_path / "run.jnc",
    )
    first = _fit(**kw)
    again = _fit(**kw)
    assert first.stopped_early and again.stopped_early
    assert again.step == first.step and again.best_epoch == first.best_epoch
    assert len(again.history) == len(first.history)
    for u, v in zip(jax.tree.leaves(again.params), jax.tree.leaves(first.params)):
        assert np.array_equal(np.asarray(u), np.asarray(v))
    assert (
        first.history[0]["compile_seconds"] > 0.0 == first.history[1]["compile_seconds"]
    )
