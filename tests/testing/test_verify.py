"""The verification tools on injected faults with known answers, and their controls.

Every fault below is planted in a ``jax.custom_vjp`` / ``jax.custom_jvp`` rule or a
layer's ``backward``, so ``jax.grad`` really runs the wrong numbers; each has a
correct control that must pass (a correct gradient is never reported wrong). Shapes
stay small: the big ones (10M parameters, 1M-element localisation, 1e5 exhaustive)
live in ``jaxnet bench --case verify``.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import backend_compiles

import jaxnet
from jaxnet.testing import (
    NOISY,
    check_grads,
    check_jvp,
    check_model,
    check_vjp,
    taylor_test,
    tolerance,
)
from jaxnet.testing._check import detectable_at, directions_needed

F32, F64 = jnp.float32, jnp.float64


def _scaled(scale_w: float = 1.0, scale_b: float = 1.0):
    """``sum(tanh(x @ w + b) * c)`` whose VJP scales the w and b gradients."""

    @jax.custom_vjp
    def layer(w, b, x):
        return jnp.tanh(x @ w + b[None, :])

    def fwd(w, b, x):
        y = jnp.tanh(x @ w + b[None, :])
        return y, (w, x, y)

    def bwd(res, g):
        w, x, y = res
        dz = g * (1 - y**2)
        return (x.T @ dz) * scale_w, jnp.sum(dz, 0) * scale_b, dz @ w.T

    layer.defvjp(fwd, bwd)
    return layer


def _point(dtype=F64, n_in=64, n_out=96, batch=8):
    k = jax.random.split(jax.random.key(0), 4)
    params = {
        "w": jax.random.normal(k[0], (n_in, n_out), dtype) / math.sqrt(n_in),
        "b": 0.1 * jax.random.normal(k[1], (n_out,), dtype),
    }
    x = jax.random.normal(k[2], (batch, n_in), dtype)
    c = jax.random.normal(k[3], (batch, n_out), dtype)
    return params, x, c


def _loss(layer, x, c):
    return lambda p: jnp.sum(layer(p["w"], p["b"], x) * c)


# ---------------------------------------------------------------- the statistics


def test_direction_count_follows_noise_and_power():
    # Per direction, a 10x-noise error is missed w.p. erf(sqrt(2)/10) = 0.159:
    # eight directions miss it w.p. 0.159^8 = 4e-7 <= 1e-6; seven would not.
    assert directions_needed(1e-8, 1e-7, 1e-6, 64) == 8
    assert math.erf(math.sqrt(2) / 10) ** 7 > 1e-6 >= math.erf(math.sqrt(2) / 10) ** 8
    # detectable_at inverts it: the error caught w.p. 1 - miss by k directions.
    for k in (1, 3, 7, 20):
        rho = detectable_at(1e-8, k, 1e-6)
        assert math.isclose(
            math.erf(math.sqrt(2) * 1e-8 / rho) ** k, 1e-6, rel_tol=1e-6
        )
    assert directions_needed(1e-8, 1e-3, 1e-6, 64) <= 2  # far above the noise
    assert directions_needed(1.0, 1e-3, 1e-6, 64) == 64  # hopeless: capped


# ------------------------------------------------------ injected scale errors


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, caught, missed",
    [("central", [1e-2, 1e-4, 1e-6], []), ("complex", [1e-6, 1e-8, 1e-10], [])],
)
def test_a_scaled_small_leaf_is_caught_and_named(method, caught, missed):
    # b holds well under 2% of the gradient norm: a mixed direction would hide it.
    params, x, c = _point()
    g = jax.grad(_loss(_scaled(), x, c))(params)
    share = float(
        jnp.linalg.norm(g["b"]) / jnp.sqrt(sum(jnp.sum(v**2) for v in g.values()))
    )
    assert share < 0.2
    for e in caught:
        report = check_grads(_loss(_scaled(scale_b=1 + e), x, c), params, method=method)
        bad = report.failures()
        assert [r.path for r in bad] == ["b"], (e, report)
        assert bad[0].mode == "directional" and bad[0].detectable < e
        assert bad[0].check == f"jax.grad vs {method}"
    control = check_grads(_loss(_scaled(), x, c), params, method=method)
    assert control.ok, control
    assert max(r.detectable for r in control.rows) < min(caught)


def test_directional_rows_report_their_power():
    params, x, c = _point()
    report = check_grads(_loss(_scaled(), x, c), params, method="central", detect=1e-7)
    for row in report.rows:
        assert row.verdict == "ok" and row.probes >= 1
        assert row.detectable <= 1e-7, row  # the requested power was reached
        assert row.method == "central"


def test_sigmoid_off_by_one_part_in_a_million_fails_by_default():
    # The old fixed rtol of 1e-6 let this through; the measured noise is ~1e-9.
    @jax.custom_vjp
    def sig(x):
        return jax.nn.sigmoid(x)

    sig.defvjp(
        lambda x: (sig(x), x),
        lambda x, g: (g * jax.nn.sigmoid(x) * (1 - jax.nn.sigmoid(x)) * (1 + 1e-6),),
    )
    x = jax.random.normal(jax.random.key(1), (5,), F64)
    bad = check_grads(lambda x: jnp.sum(sig(x) ** 2), x, method="central")
    assert not bad.ok and bad.failures()[0].check == "jax.grad vs central"
    good = check_grads(lambda x: jnp.sum(jax.nn.sigmoid(x) ** 2), x, method="central")
    assert good.ok, good


# ------------------------------------------------------------ structural faults


def test_transposed_square_weight_gradient_fails():
    n = 96

    @jax.custom_vjp
    def mm(w, x):
        return jnp.tanh(x @ w)

    def bwd(res, g):
        w, x, y = res
        dz = g * (1 - y**2)
        return (x.T @ dz).T, dz @ w.T  # dw transposed: right shape, wrong numbers

    mm.defvjp(lambda w, x: (jnp.tanh(x @ w), (w, x, jnp.tanh(x @ w))), bwd)
    w = jax.random.normal(jax.random.key(0), (n, n), F64) / math.sqrt(n)
    x = jax.random.normal(jax.random.key(1), (4, n), F64)
    report = check_grads(lambda w: jnp.sum(mm(w, x) ** 2), w)
    assert [r.path for r in report.failures()] == [""]
    assert report.failures()[0].max_rel > 1e-2


def test_dropped_bias_gradient_fails_and_names_b():
    params, x, c = _point()
    report = check_grads(_loss(_scaled(scale_b=0.0), x, c), params)
    assert [r.path for r in report.failures()] == ["b"]


def test_one_wrong_element_of_a_large_leaf_is_located():
    # 1000 x 1000 = 1e6 elements: bisection over directional derivatives finds it.
    w = jax.random.normal(jax.random.key(0), (1000, 1000), F64)

    @jax.custom_vjp
    def f(w):
        return jnp.sum(jnp.sin(w))

    def bwd(w, g):
        return (g * jnp.cos(w).at[123, 456].multiply(1.05),)

    f.defvjp(lambda w: (f(w), w), bwd)
    report = check_grads(f, w, mode="directional", method="central")
    (row,) = report.failures()
    assert row.worst_index == (123, 456)
    (note,) = [n for n in report.notes if "bisection" in n]
    evals = int(note.split(" in ")[1].split()[0])
    assert evals <= 2 * math.ceil(math.log2(1e6)) + 2
    control = check_grads(lambda w: jnp.sum(jnp.sin(w)), w, mode="directional")
    assert control.ok, control


def test_exhaustive_mode_locates_exactly_and_builds_no_one_hot():
    w = jax.random.normal(jax.random.key(0), (30, 20), F64)

    @jax.custom_vjp
    def f(w):
        return jnp.sum(jnp.sin(w) * w)

    f.defvjp(
        lambda w: (f(w), w),
        lambda w, g: (g * (jnp.cos(w) * w + jnp.sin(w)).at[7, 11].add(1e-5),),
    )
    report = check_grads(f, w, mode="exhaustive", method="central")
    (row,) = report.failures()
    assert row.worst_index == (7, 11) and row.mode == "exhaustive" and row.probes == 600


# ----------------------------------------------------------------- float32


def test_float32_sum_of_a_32k_leaf_is_not_a_false_alarm():
    w = jax.random.normal(jax.random.key(0), (256, 128), F32)

    def f(p):
        return jnp.sum(jnp.log1p(p["w"] ** 2))

    report = check_grads(
        f, {"w": w}, analytic=lambda p: {"w": 2 * p["w"] / (1 + p["w"] ** 2)}
    )
    assert report.ok, report
    numeric = [r for r in report.rows if r.method.endswith("@float64")]
    assert numeric and all(r.detectable < 1e-3 for r in numeric)


def test_float32_error_of_one_part_in_a_thousand_is_caught():
    w = jax.random.normal(jax.random.key(0), (256, 128), F32)

    @jax.custom_vjp
    def f(w):
        return jnp.sum(jnp.log1p(w**2))

    f.defvjp(lambda w: (f(w), w), lambda w, g: (g * 2 * w / (1 + w**2) * (1 + 1e-3),))
    report = check_grads(f, w)
    (row,) = report.failures()
    assert row.check.startswith("jax.grad vs") and row.method.endswith("@float64")


def test_float32_only_bug_fails_the_float64_comparison():
    # A rule that is right in float64 but loses a term in float32.
    @jax.custom_vjp
    def f(w):
        return jnp.sum(jnp.sin(w))

    def bwd(w, g):
        d = jnp.cos(w)
        return (g * (d * (1 + 1e-3) if w.dtype == jnp.float32 else d),)

    f.defvjp(lambda w: (f(w), w), bwd)
    w = jax.random.normal(jax.random.key(0), (300,), F32)
    report = check_grads(f, w)
    assert "jax.grad vs jax.grad@float64" in [r.check for r in report.failures()]


def test_reference_too_noisy_is_its_own_verdict():
    # f insists on float32 inside: no float64 reference; central differences of a
    # 32k-term float32 sum are rounding noise. Not a failure: "noisy".
    w = jax.random.normal(jax.random.key(0), (256, 128), F32)

    def f(w):
        return jnp.sum(jnp.log1p(w.astype(F32) ** 2)).astype(F32)

    report = check_grads(lambda w: f(w.astype(F32)), w, method="central")
    assert not report.failures()
    assert [r.verdict for r in report.rows] == ["noisy"]
    assert report.rows[0].detectable > NOISY
    assert "not verified" in str(report) and "float64" in report.notes[0]
    with pytest.raises(AssertionError):
        report.assert_ok()
    report.assert_ok(allow_noisy=True)


def test_one_sided_steps_at_a_domain_edge():
    # log near 0: x - h leaves the domain, so differences go one-sided and the step
    # is refined; never a false alarm (at worst "noisy" where 1e-7 cannot be resolved).
    x = jnp.asarray([3e-6, 0.5, 2.0], F64)
    report = check_grads(lambda x: jnp.sum(jnp.log(x)), x, method="central")
    assert report.ok, report
    edge = check_grads(
        lambda x: jnp.sum(jnp.log(x)), jnp.asarray([1e-7, 0.5]), method="central"
    )
    assert not edge.failures(), edge


# ------------------------------------------------------------ vector outputs


def test_vector_output_is_not_summed():
    # jnp.sum(LayerNorm(x)) has an identically zero dx: a wrong dx would pass a sum.
    ln = jaxnet.LayerNorm()
    _, params = ln.init(jax.random.key(0), (None, 8))
    x = jax.random.normal(jax.random.key(1), (4, 8), F64)
    assert (
        float(jnp.max(jnp.abs(jax.grad(lambda x: jnp.sum(ln.apply(params, x)))(x))))
        < 1e-12
    )

    @jax.custom_vjp
    def bad_ln(x):
        return ln.apply(params, x)

    def bwd(x, g):
        _, vjp = jax.vjp(lambda x: ln.apply(params, x), x)
        return (vjp(g)[0] + 1e-3 * g,)  # wrong dx, but its sum over outputs is too

    bad_ln.defvjp(lambda x: (bad_ln(x), x), bwd)
    assert check_grads(lambda x: ln.apply(params, x), x).ok
    report = check_grads(bad_ln, x)
    assert not report.ok and report.failures()[0].check.startswith("jax.grad vs")


def test_small_vector_output_compares_the_full_jacobian():
    x = jnp.asarray([0.3, -1.2, 2.0], F64)
    report = check_grads(
        lambda x: {"s": jnp.sin(x), "t": jnp.sum(x**2)}, x, modes=("rev", "fwd")
    )
    assert report.ok, report
    assert {r.shape for r in report.rows} == {(3, 4)}  # 3 inputs x 4 outputs


# -------------------------------------------------------- forward mode, order 2


def test_forward_mode_and_the_transpose_identity():
    params, x, c = _point(n_in=40, n_out=50)

    def f(p):
        return jnp.sum(jnp.tanh(x @ p["w"] + p["b"][None, :]) * c)

    report = check_grads(f, params, modes=("rev", "fwd"))
    assert report.ok, report
    transpose = [r for r in report.rows if r.check == "jvp vs jax.grad"]
    assert len(transpose) == 2 and max(r.max_rel for r in transpose) <= 1e-13
    with pytest.raises(ValueError, match="has no forward mode"):
        check_grads(_loss(_scaled(), x, c), params, modes=("rev", "fwd"))


@pytest.mark.slow
def test_wrong_custom_jvp_fails_check_jvp_and_check_vjp():
    @jax.custom_jvp
    def softplus(x):
        return jnp.logaddexp(x, 0.0)

    softplus.defjvps(lambda t, y, x: t * jax.nn.sigmoid(x) * 1.001)
    x = jnp.linspace(-2.0, 2.0, 100, dtype=F64)
    jvp_report = check_jvp(softplus, x, reference=lambda x: jnp.logaddexp(x, 0.0))
    assert {"jvp vs central", "jax.grad vs central"} <= {
        r.check for r in jvp_report.failures()
    }
    vjp_report = check_vjp(softplus, x)  # jax.grad transposes the wrong JVP
    assert [r.check for r in vjp_report.failures()] == ["jax.grad vs central"]

    @jax.custom_jvp
    def good(x):
        return jnp.logaddexp(x, 0.0)

    good.defjvps(lambda t, y, x: t * jax.nn.sigmoid(x))
    for dtype in (F32, F64):
        assert check_jvp(good, x.astype(dtype)).ok
        assert check_vjp(good, x.astype(dtype)).ok


def test_check_vjp_rows_and_structure():
    @jax.custom_vjp
    def double(x):
        return 2 * x

    double.defvjp(lambda x: (2 * x, None), lambda r, g: (g[:2] * 2,))
    report = check_vjp(double, jnp.ones(3, F64))
    assert [r.check for r in report.failures()] == ["cotangent structure"]
    assert "shapes do not match" in report.notes[0]

    @jax.custom_vjp
    def square(x):
        return x * x

    square.defvjp(lambda x: (x * x, x), lambda x, g: (2 * x * g,))
    report = check_vjp(
        square, jnp.asarray([0.5, -1.0, 2.0], F64), reference=lambda x: x * x
    )
    assert report.ok and [r.check for r in report.rows][:3] == [
        "primal vs reference",
        "cotangent structure",
        "vjp linearity",
    ]


@pytest.mark.slow
def test_jaxnet_custom_rules_pass_check_jvp_and_check_vjp():
    x = jax.random.normal(jax.random.key(0), (3, 8), F64)
    for layer in (jaxnet.LayerNorm(), jaxnet.RMSNorm()):
        _, params = layer.init(jax.random.key(1), (None, 8))
        params = jax.tree.map(lambda a: a.astype(F64), params)
        report = check_jvp(layer.apply, params, x)
        assert report.ok, report
    block = jaxnet.hand_grad(jaxnet.serial(jaxnet.Dense(6), jaxnet.Tanh()))
    _, params = block.init(jax.random.key(2), (None, 8))
    params = jax.tree.map(lambda a: a.astype(F64), params)
    report = check_vjp(block.apply, params, x)
    assert report.ok, report


@pytest.mark.slow
def test_hvp_rows_and_a_wrong_second_derivative():
    params, x, c = _point(n_in=40, n_out=70)
    report = check_grads(_loss(_scaled(), x, c), params, order=2)
    hvp = [r for r in report.rows if r.check.startswith("hvp")]
    assert report.ok, report
    # jax.grad of a custom_vjp is its (plain JAX) bwd: forward-over-reverse works.
    assert {r.check for r in hvp} == {
        "hvp rev-over-rev vs central(grad)",
        "hvp fwd-over-rev vs central(grad)",
        "hvp fwd-over-rev vs rev-over-rev",
    }

    def f(p):
        return jnp.sum(jnp.tanh(x @ p["w"] + p["b"][None, :]) * c)

    full = check_grads(f, params, order=2)
    assert full.ok and {r.check for r in full.rows if r.check.startswith("hvp")} == {
        "hvp rev-over-rev vs central(grad)",
        "hvp fwd-over-rev vs central(grad)",
        "hvp fwd-over-rev vs rev-over-rev",
    }

    # A first derivative that is right at every point but whose own derivative is
    # not: d/dx[x^3] = 3x^2 coded as 3x^2 + 1e-4 (x - x0)^1 would move the value;
    # instead scale a term that vanishes at first order: g * 3 x^2 evaluated through
    # a custom_jvp whose tangent of the gradient is off by 1e-4.
    @jax.custom_jvp
    def dcube(x):
        return 3 * x**2

    dcube.defjvps(lambda t, y, x: t * 6 * x * (1 + 1e-4))

    @jax.custom_vjp
    def cube(x):
        return x**3

    cube.defvjp(lambda x: (x**3, x), lambda x, g: (g * dcube(x),))
    z = jax.random.normal(jax.random.key(3), (200,), F64)
    r2 = check_grads(lambda z: jnp.sum(cube(z)), z, order=2)
    assert not any(r.check.startswith("jax.grad") for r in r2.failures())
    assert "hvp rev-over-rev vs central(grad)" in {r.check for r in r2.failures()}


# ---------------------------------------------------------------- Taylor test


def test_taylor_orders():
    x = jax.random.normal(jax.random.key(0), (50,), F64)

    def f(x):
        return jnp.sum(jnp.sin(x) * jnp.exp(0.1 * x))

    good = taylor_test(f, x)
    assert good.ok and abs(good.order - 2.0) <= 0.05, good
    bad = taylor_test(f, x, grad=1.01 * jax.grad(f)(x))
    assert not bad.ok and abs(bad.order - 1.0) <= 0.1, bad
    assert bad.window is not None and bad.window[0] < bad.window[1]
    flat = taylor_test(lambda x: jnp.sum(3.0 * x), x)
    assert flat.ok and flat.order is None and "linear" in flat.message
    relu = taylor_test(lambda x: jnp.sum(jax.nn.relu(x)), x)
    assert relu.ok and relu.order is None and "vanishes" in relu.message


# ------------------------------------------------------------------ check_model


def _scaled_tanh(bad: bool) -> jaxnet.Layer:
    def init(key, shape):
        return shape, {"a": jnp.ones((), F64)}

    def apply(p, x, **kw):
        return p["a"] * jnp.tanh(x)

    def backward(p, x, y, g, **kw):
        t = jnp.tanh(x)
        dx = g * p["a"] * (1 - t**2) * (1.5 if bad else 1.0)
        return {"a": jnp.sum(g * t)}, dx

    return jaxnet.Layer("scaled_tanh", init, apply, backward, "ScaledTanh()")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
def test_check_model_names_the_faulty_middle_layer(dtype):
    def model(bad):
        return jaxnet.serial(
            jaxnet.Dense(5, dtype=dtype),
            _scaled_tanh(bad),
            jaxnet.Dense(2, dtype=dtype),
        )

    _, params = model(False).init(jax.random.key(0), (None, 3))
    params = jax.tree.map(lambda a: a.astype(dtype), params)
    x = jax.random.normal(jax.random.key(1), (4, 3), dtype)
    good = check_model(model(False), params, x)
    assert good.ok, good
    bad = check_model(model(True), params, x)
    assert bad.blame() == ("scaled_tanh_1",), bad
    rows = bad.report_of("scaled_tanh_1").failures()
    assert {r.path for r in rows} == {"x"} and "blame scaled_tanh_1" in str(bad)


@pytest.mark.slow
def test_check_model_on_a_transformer_block_with_dropout():
    block = jaxnet.TransformerBlock(2, 8, mlp_ratio=2, causal=True, drop_rate=0.1)
    _, params = block.init(jax.random.key(0), (None, 4, 8))
    params = jax.tree.map(lambda a: a.astype(F64), params)
    x = jax.random.normal(jax.random.key(1), (2, 4, 8), F64)
    report = check_model(block, params, x, key=jax.random.key(2), train=True)
    assert report.ok, report
    assert len(report.layers) > 5  # every sub-layer, not just the block


# ---------------------------------------------------------------- CLI, user cases


def test_jaxnet_check_runs_a_user_module(tmp_path, capsys):
    from jaxnet._cli import main

    (tmp_path / "my_cases.py").write_text(
        "import jaxnet\n"
        "from jaxnet.testing import LayerCase\n"
        "LAYER_CASES = (LayerCase('MyDense', lambda dt: jaxnet.Dense(3, dtype=dt), "
        "(None, 2), 'complex'),)\n"
    )
    out = tmp_path / "report.json"
    code = main(
        [
            "check",
            "--module",
            str(tmp_path / "my_cases.py"),
            "--no-builtin",
            "--json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and "MyDense" in text and "1 layers and losses" in text
    records = json.loads(out.read_text())
    assert {r["case"] for r in records} == {"MyDense"}
    assert all(r["verdict"] == "ok" for r in records)
    with pytest.raises(SystemExit, match="cannot import it"):
        main(["check", "--module", "no_such_module_here", "--no-builtin"])


def test_jaxnet_check_only_without_a_match_names_close_cases():
    from jaxnet._cli import main

    with pytest.raises(SystemExit, match=r"no case matches --only 'Densee'.*Dense"):
        main(["check", "--only", "Densee"])


@pytest.mark.slow
def test_jaxnet_check_in_process_leaves_the_callers_precision_alone():
    """``main(["check"])`` once switched float64 on for the whole process (a global
    ``jax.config.update``), and every later float32 doctest in that worker printed
    float64. Run in a fresh interpreter: the suite's fixture holds x64 on here."""
    import subprocess
    import sys

    code = (
        "import jax.numpy as jnp\n"
        "from jaxnet._cli import main\n"
        "assert main(['check', '--only', 'Dense']) == 0\n"
        "print(jnp.ones(1).dtype)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "float32"


def test_analytic_rows_keep_the_table_tolerance():
    w = jax.random.normal(jax.random.key(0), (8,), F32)
    report = check_grads(
        lambda w: jnp.sum(jnp.sin(w)), w, analytic=jnp.cos, method=None
    )
    (row,) = report.rows
    t = tolerance(F32, "analytic")
    assert (row.rtol, row.atol, row.detectable) == (t.rtol, t.atol, t.rtol)
    assert np.isfinite(row.max_rel)


@pytest.mark.parametrize("mode", ["exhaustive", "directional"])
def test_auto_falls_back_to_central_where_the_complex_step_is_wrong(mode):
    """``abs`` breaks the complex step (|x + ih| has no imaginary part): the complex
    reference disagrees with jax.grad, central differences side with jax.grad, and
    auto reports central, with no false alarm; a real error is still caught."""
    x = jnp.linspace(-1.5, 2.0, 40, dtype=F64).reshape(5, 8)

    def f(x):
        return jnp.sum(jnp.abs(x) * x)

    good = check_grads(f, x, mode=mode)
    assert good.ok, good
    assert {r.check for r in good.rows} == {"jax.grad vs central"}
    bad = check_grads(f, x, mode=mode, analytic=lambda x: 2 * jnp.abs(x) * 1.01)
    assert not bad.ok and "analytic vs central" in {r.check for r in bad.failures()}


def test_a_second_check_of_the_same_function_compiles_nothing():
    """Probes are cached per function (weakly): the second call of check_grads on
    the same f and shapes compiles nothing, and the cache does not keep f alive."""
    import gc
    import weakref

    params, x, c = _point()
    f = _loss(_scaled(), x, c)
    check_grads(f, params)
    with backend_compiles() as compiles:
        report = check_grads(f, params)
    assert report.ok, report
    assert compiles == []
    ref = weakref.ref(f)
    del f
    gc.collect()
    assert ref() is None
