"""Run by tests/train/test_parallel.py in a subprocess with 8 simulated CPU devices.

``XLA_FLAGS=--xla_force_host_platform_device_count=8`` must be set before JAX is
imported, so this cannot run inside the pytest process. Every scenario trains the
same model from the same initial parameters on one device and on the 8-device mesh
and records the largest parameter difference, plus what the arrays' shardings say.
Prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time

if __name__ == "__main__":  # before JAX starts; never when pytest imports the file
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import jaxnet  # noqa: E402

STEPS = 4


def max_diff(a, b):
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def data(n, shape, classes, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = rng.integers(0, classes, (n, *shape[:-1])).astype(np.int32)
    return x, y


def train(step, params, opt_state, batch, *, state=None, put=None):
    key = jax.random.key(7)
    metrics = []
    for i in range(STEPS):
        kw = {"key": jax.random.fold_in(key, i)}
        if state is not None:
            kw["state"] = state
        out = step(params, opt_state, batch, **kw)
        params, opt_state, m = out[:3]
        if state is not None:
            state = out[3]
        metrics.append(float(m["loss"]))
    return params, opt_state, state, metrics


def spec(a):
    return [None if s is None else str(s) for s in a.sharding.spec]


def run_pair(model, loss, opt, batch, dp, *, policy=None, init_shape, stateful=False):
    """Train on one device and on ``dp``; return both results."""
    _, params = model.init(jax.random.key(0), init_shape)
    state = model.init_state(init_shape)[1] if stateful else None
    step = jaxnet.make_train_step(model, loss, opt, policy=policy)
    single = train(jax.jit(step), params, opt.init(params), batch, state=state)
    sharded = dp.step(step)
    multi = train(
        sharded,
        dp.put_params(params),
        dp.put_params(opt.init(params)),
        batch,
        state=state,
    )
    return single, multi


def mlp_case(fsdp):
    model = jaxnet.serial(
        jaxnet.Dense(64), jaxnet.Relu(), jaxnet.Dropout(0.2), jaxnet.Dense(10)
    )
    dp = jaxnet.DataParallel(fsdp=fsdp, min_shard_size=256)
    x, y = data(32, (16,), 10)
    opt = optax.adam(1e-2)
    loss = jaxnet.losses.softmax_cross_entropy_with_integer_labels
    single, multi = run_pair(model, loss, opt, (x, y), dp, init_shape=(None, 16))
    p, s = multi[0], multi[1]
    w0 = p["dense_0"]["w"]
    placed = dp.put_batch(x)
    return {
        "max_param_diff": max_diff(single[0], p),
        "max_opt_diff": max_diff(single[1], s),
        "loss_single": single[3],
        "loss_multi": multi[3],
        "w0_spec": spec(w0),
        "w0_shard_shapes": sorted(
            {tuple(sh.data.shape) for sh in w0.addressable_shards}
        ),
        "w0_devices": len(w0.sharding.device_set),
        "b0_spec": spec(p["dense_0"]["b"]),
        "mu_w0_spec": spec(s[0].mu["dense_0"]["w"]),
        "batch_spec": spec(placed),
        "batch_shard_shapes": sorted(
            {tuple(sh.data.shape) for sh in placed.addressable_shards}
        ),
    }


def gpt_case():
    """A scanned stack of causal transformer blocks, bfloat16 compute."""
    vocab, d, t = 32, 16, 8
    model = jaxnet.serial(
        jaxnet.Embedding(vocab, d),
        jaxnet.Stack(jaxnet.TransformerBlock(2, d, causal=True), 2),
        jaxnet.LayerNorm(),
        jaxnet.Dense(vocab),
    )
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, vocab, (16, t + 1)).astype(np.int32)
    batch = (tokens[:, :-1], tokens[:, 1:])
    # SGD: the update is linear in the gradient, so the difference stays at the
    # size of bfloat16 rounding (Adam's g / sqrt(v) would amplify it to +-lr).
    opt = optax.sgd(0.5)
    loss = jaxnet.losses.softmax_cross_entropy_with_integer_labels
    dp = jaxnet.DataParallel(fsdp=True, min_shard_size=128)
    single, multi = run_pair(
        model, loss, opt, batch, dp, policy="bfloat16", init_shape=(None, t)
    )
    p = multi[0]
    w = p["stack_1"]["mlp"]["dense_1"]["w"]
    return {
        "max_param_diff": max_diff(single[0], p),
        "param_dtypes": sorted({str(a.dtype) for a in jax.tree.leaves(p)}),
        "loss_single": single[3],
        "loss_multi": multi[3],
        "stack_w_spec": spec(w),
        "stack_w_shape": list(w.shape),
    }


def batchnorm_case():
    model = jaxnet.serial(
        jaxnet.Dense(8), jaxnet.BatchNorm(), jaxnet.Relu(), jaxnet.Dense(3)
    )
    dp = jaxnet.DataParallel()
    x, y = data(16, (5,), 3, seed=2)
    single, multi = run_pair(
        model,
        jaxnet.losses.softmax_cross_entropy_with_integer_labels,
        optax.sgd(0.1),
        (x, y),
        dp,
        init_shape=(None, 5),
        stateful=True,
    )
    return {
        "max_param_diff": max_diff(single[0], multi[0]),
        "max_state_diff": max_diff(single[2], multi[2]),
        "state_replicated": all(
            a.sharding.is_fully_replicated for a in jax.tree.leaves(multi[2])
        ),
    }


def errors():
    dp = jaxnet.DataParallel()
    out = {}
    model = jaxnet.Dense(2)
    _, params = model.init(jax.random.key(0), (None, 3))
    opt = optax.sgd(0.1)
    step = dp.step(jaxnet.make_train_step(model, jaxnet.losses.mse, opt))
    try:
        step(
            params,
            opt.init(params),
            (np.ones((10, 3), np.float32), np.ones((10, 2), np.float32)),
        )
    except jaxnet.ShapeError as exc:
        out["indivisible"] = str(exc)
    try:
        jaxnet.DataParallel(jaxnet.data_mesh(), axis="batch")
    except ValueError as exc:
        out["bad_axis"] = str(exc)
    return out


def main():
    cases = {
        "mlp_replicated": lambda: mlp_case(False),
        "mlp_fsdp": lambda: mlp_case(True),
        "gpt_bf16_fsdp": gpt_case,
        "batchnorm": batchnorm_case,
        "errors": errors,
    }
    result = {"devices": jax.device_count(), "seconds": {}}
    for name, fn in cases.items():
        t = time.perf_counter()
        result[name] = fn()
        result["seconds"][name] = round(time.perf_counter() - t, 2)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
