"""jaxnet.summary: paths, output shapes and parameter counts, computed without running."""

import jax
import jax.numpy as jnp

import jaxnet


def _rows(text):
    lines = text.splitlines()
    return [line.split() for line in lines[2:-1]], lines[-1]


def test_mlp_rows_shapes_and_counts():
    model = jaxnet.serial(jaxnet.Dense(512), jaxnet.Relu(), jaxnet.Dense(10))
    rows, total = _rows(jaxnet.summary(model, (None, 784)))
    assert [r[0] for r in rows] == ["(model)", "dense_0", "relu_1", "dense_2"]
    assert rows[1][-3:] == ["(None,", "512)", "401,920"]  # 784 * 512 + 512
    assert rows[3][-1] == "5,130"  # 512 * 10 + 10
    assert total == "total: 407,050 parameters in 4 arrays"
    _, params = model.init(jax.random.key(0), (None, 784))
    assert sum(p.size for p in jax.tree.leaves(params)) == 407_050


def test_nested_paths_mirror_params_and_depth_limits_rows():
    model = jaxnet.serial(
        ("block", jaxnet.residual(jaxnet.Dense(4), jaxnet.BatchNorm())),
        jaxnet.FanOut(2),
        jaxnet.parallel(jaxnet.Dense(3), jaxnet.Identity()),
        jaxnet.FanInConcat(),
    )
    text = jaxnet.summary(model, (None, 4))
    rows, total = _rows(text)
    names = [r[0] for r in rows]
    # The residual's branch shares the residual's path (its params are not nested).
    assert names == [
        "(model)", "block", "dense_0", "batch_norm_1", "fan_out_1", "parallel_2",
        "dense_0", "identity_1", "fan_in_concat_3",
    ]  # fmt: skip
    assert "residual(serial(" in text and "((None, 4), (None, 4))" in text
    assert total == "total: 43 parameters in 6 arrays"  # 20 + 8 + 15
    shallow, _ = _rows(jaxnet.summary(model, (None, 4), depth=1))
    assert [r[0] for r in shallow] == [
        "(model)", "block", "fan_out_1", "parallel_2", "fan_in_concat_3",
    ]  # fmt: skip


def test_summary_runs_nothing_and_accepts_an_example():
    calls = []

    def spy(x):
        calls.append(1)
        return x

    model = jaxnet.serial(jaxnet.Dense(3), jaxnet.Lambda(spy, name="spy"))
    a = jaxnet.summary(model, jnp.zeros((2, 5)))
    assert "(2, 3)" in a and "spy_1" in a
    assert calls == [1]  # traced once by eval_shape for the shape, never run on data
