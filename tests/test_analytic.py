"""Hand-written gradients against ``jax.grad`` (and numerical derivatives), and the
gradient checker itself: its tolerances, its reports, and proof that it has teeth.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
import jaxnet.nn._core
from jaxnet import losses
from jaxnet.testing import (
    LAYER_CASES,
    LOSS_CASES,
    STEPS,
    TOLERANCES,
    GradCheckRow,
    LayerCase,
    Tolerance,
    check_grads,
    check_l2_penalty,
    check_layer,
    check_loss,
    layer_problem,
    tolerance,
)

CASES = LAYER_CASES + LOSS_CASES
DTYPES = [jnp.float64, jnp.float32]

# Measured on CPU (jax 0.10.2): over every registry case, jax.grad and the analytic
# formulas agree in float64 to 1.3e-15 relative, and the complex step agrees with both
# to 2.5e-15. 1e-13 leaves ~40x headroom for other BLAS/XLA orderings while still
# being 10x tighter than the table's 1e-12: a formula off by a single rounding-level
# refactoring (e.g. an algebraically equal but cancelling form) would show up here.
FLOAT64_ACHIEVED = 1e-13


def _ids(case: Any) -> str:
    return case.id


def _check(case: Any, dtype: Any, method: str | None):
    fn = check_layer if isinstance(case, LayerCase) else check_loss
    return fn(case, dtype, method)


def _expected_paths(case: Any, dtype: Any) -> set[str]:
    """The leaf paths a report on ``case`` must cover (every one, none skipped)."""
    if not isinstance(case, LayerCase):
        return {""}  # a loss is checked w.r.t. its predictions: a single array
    _, _, point = layer_problem(case, dtype)
    return {
        "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        for path, _ in jax.tree_util.tree_flatten_with_path(point)[0]
    }


# ------------------------------------------------------------- tier 1: analytic


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_jax_grad_equals_analytic(case, dtype):
    report = _check(case, dtype, None)
    report.assert_ok()
    tol = tolerance(dtype, "analytic")
    assert {r.check for r in report.rows} == {"jax.grad vs analytic"}
    assert {r.path for r in report.rows} == _expected_paths(case, dtype)
    for row in report.rows:
        assert (row.rtol, row.atol) == (tol.rtol, tol.atol)
        assert row.dtype == jnp.dtype(dtype).name
        assert row.max_rel <= tol.rtol
    if dtype == jnp.float64:
        worst = max(r.max_rel for r in report.rows)
        assert worst < FLOAT64_ACHIEVED, f"{case.id}: {worst:.2e}\n{report}"


def _tangent(point: Any, seed: int = 7) -> Any:
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda a: jnp.asarray(rng.standard_normal(a.shape), a.dtype), point
    )


@pytest.mark.parametrize("case", LAYER_CASES, ids=_ids)
def test_forward_mode_equals_the_hand_written_backward(case):
    """``jax.jvp`` runs through every built-in layer (their custom rules are
    ``custom_jvp``, never ``custom_vjp``), and its directional derivative is the
    hand-written backward's: ``<g, J v> = <J^T g, v>`` in float64."""
    f, analytic, point = layer_problem(case, jnp.float64)
    v = _tangent(point)
    _, got = jax.jvp(f, (point,), (v,))
    pairs = zip(jax.tree.leaves(analytic(point)), jax.tree.leaves(v), strict=True)
    products = [a * t for a, t in pairs]
    want = sum(float(jnp.sum(p)) for p in products)
    scale = sum(float(jnp.sum(jnp.abs(p))) for p in products)
    tol = tolerance(jnp.float64, "analytic")
    assert abs(float(got) - want) <= tol.atol + tol.rtol * scale, (
        f"{case.id}: jvp {float(got)!r} vs <backward, v> {want!r} (scale {scale:.3g})"
    )


def test_l2_penalty_three_ways():
    report = check_l2_penalty(jnp.float64)
    report.assert_ok()
    assert {r.check for r in report.rows} == {
        "jax.grad vs analytic",
        "jax.grad vs complex",
        "analytic vs complex",
    }
    assert {r.path for r in report.rows} == {
        "dense_0/w",
        "dense_0/b",
        "head/w",
        "head/b",
    }
    assert max(r.max_rel for r in report.rows) < FLOAT64_ACHIEVED


# ------------------------------------------------------------ tier 2: numerical

# Numerical derivatives are a smoke test (tier 1 already pins jax.grad to the formulas
# at 1e-12), and this file ran ~100 s on the 2-core CI box with every case here, over
# the ~90 s budget. So this tier runs a representative subset: each numerical method
# (complex step and central differences), a smooth, a kinked (away from the kink) and a
# normalising activation, a shape layer, the stochastic layer, every combinator, and
# one loss per family. `jaxnet check` runs all of them three ways.
NUMERICAL_SUBSET = [
    "Dense",
    "Sigmoid",
    "Gelu(exact)",
    "Elu",
    "Softmax",
    "Reshape",
    "Dropout",
    "serial(MLP)",
    "FanOut/parallel/FanInConcat",
    "residual",
    "Stack(residual, 3)",  # the complex step widens the scan carry
    "mse",
    "huber(delta=0.5)",
    "binary_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]
_NUMERICAL = [c for c in CASES if c.id in NUMERICAL_SUBSET]


def test_numerical_subset_exists_and_covers_both_methods():
    assert sorted(c.id for c in _NUMERICAL) == sorted(NUMERICAL_SUBSET)
    assert {c.method for c in _NUMERICAL} == {"complex", "central"}


@pytest.mark.parametrize("case", _NUMERICAL, ids=_ids)
def test_numerical_method_agrees(case):
    report = _check(case, jnp.float64, "auto")
    report.assert_ok()
    m = case.method
    assert {r.check for r in report.rows} == {
        "jax.grad vs analytic",
        f"jax.grad vs {m}",
        f"analytic vs {m}",
    }
    assert {r.path for r in report.rows} == _expected_paths(case, jnp.float64)
    numeric = [r for r in report.rows if r.check.endswith(m)]
    # Noise-based tolerances: each row resolves errors at least as small as the
    # table's bound for its method (central 1e-6, complex step 1e-12).
    assert all(r.method == m for r in numeric)
    assert all(r.detectable <= tolerance(jnp.float64, m).rtol for r in numeric)
    if m == "complex":  # no cancellation: as exact as the analytic comparison
        assert max(r.max_rel for r in numeric) < FLOAT64_ACHIEVED


# ------------------------------------------------- whole models: value_and_grad


def _targets_int(key, n):
    return jax.random.randint(key, (n,), 0, 3)


def _targets_soft(key, n):
    return jax.nn.softmax(jax.random.normal(key, (n, 3), jnp.float64))


def _targets_real(key, n):
    return jax.random.normal(key, (n, 3), jnp.float64)


def _targets_unit(key, n):
    return jax.random.uniform(key, (n, 3), jnp.float64)


def _targets_binary(key, n):
    return jax.random.bernoulli(key, 0.5, (n, 3)).astype(jnp.float64)


# (id, loss, targets, whether the model ends in a sigmoid, reduction). "sum" only
# rescales the seed cotangent, so two losses cover it.
VG_CASES = [
    (
        "softmax_cross_entropy_with_integer_labels",
        losses.softmax_cross_entropy_with_integer_labels,
        _targets_int,
        False,
        "mean",
    ),
    (
        "softmax_cross_entropy_with_integer_labels-sum",
        losses.softmax_cross_entropy_with_integer_labels,
        _targets_int,
        False,
        "sum",
    ),
    (
        "softmax_cross_entropy",
        losses.softmax_cross_entropy,
        _targets_soft,
        False,
        "mean",
    ),
    ("mse", losses.mse, _targets_real, False, "mean"),
    ("mse-sum", losses.mse, _targets_real, False, "sum"),
    ("squared_error", losses.squared_error, _targets_real, False, "mean"),
    (
        "huber(delta=0.5)",
        functools.partial(losses.huber, delta=0.5),
        _targets_real,
        False,
        "mean",
    ),
    ("absolute_error", losses.absolute_error, _targets_real, False, "mean"),
    (
        "sigmoid_binary_cross_entropy",
        losses.sigmoid_binary_cross_entropy,
        _targets_unit,
        False,
        "mean",
    ),
    (
        "binary_cross_entropy",
        losses.binary_cross_entropy,
        _targets_binary,
        True,
        "mean",
    ),
]


def _mlp(sigmoid_head: bool, dropout: bool = False) -> jaxnet.Layer:
    # The registry MLP's shapes (4 -> 6 -> 3), so compiled kernels are shared.
    layers = [jaxnet.Dense(6, dtype=jnp.float64), jaxnet.Tanh()]
    if dropout:
        layers.append(jaxnet.Dropout(0.3))
    layers.append(jaxnet.Dense(3, dtype=jnp.float64))
    if sigmoid_head:
        layers.append(jaxnet.Sigmoid())
    return jaxnet.serial(*layers)


@pytest.mark.parametrize(
    "loss, make_targets, sigmoid_head, reduction",
    [v[1:] for v in VG_CASES],
    ids=[v[0] for v in VG_CASES],
)
def test_value_and_grad_matches_jax(loss, make_targets, sigmoid_head, reduction):
    model = _mlp(sigmoid_head)
    k_init, k_x, k_t = jax.random.split(jax.random.key(0), 3)
    _, params = model.init(k_init, (None, 4))
    x = jax.random.normal(k_x, (4, 4), jnp.float64)
    targets = make_targets(k_t, 4)
    reduce = jnp.mean if reduction == "mean" else jnp.sum

    # Both sides jitted: one compiled program each instead of dozens of eager ops
    # (the eager path of every layer and loss is covered by the registry tiers), and
    # it shows the hand-written gradient traces under jit.
    @jax.jit
    def objective(p):
        return reduce(loss(model.apply(p, x), targets))

    hand = jax.jit(jaxnet.analytic.value_and_grad(model, loss, reduction=reduction))
    value, grads = hand(params, x, targets)
    auto_value, _ = jax.value_and_grad(objective)(params)
    tol = tolerance(jnp.float64, "analytic")
    np.testing.assert_allclose(value, auto_value, rtol=tol.rtol, atol=tol.atol)
    report = check_grads(objective, params, analytic=lambda p: grads, method=None)
    report.assert_ok()
    assert [r.path for r in report.rows] == [
        "dense_0/b",
        "dense_0/w",
        "dense_2/b",
        "dense_2/w",
    ]
    assert max(r.max_rel for r in report.rows) < FLOAT64_ACHIEVED


def test_value_and_grad_through_dropout_uses_the_same_mask():
    model = _mlp(False, dropout=True)
    loss = losses.softmax_cross_entropy_with_integer_labels
    k_init, k_x, k_t, k_drop = jax.random.split(jax.random.key(1), 4)
    _, params = model.init(k_init, (None, 4))
    x = jax.random.normal(k_x, (4, 4), jnp.float64)
    y = _targets_int(k_t, 4)

    @jax.jit
    def objective(p):
        return jnp.mean(loss(model.apply(p, x, key=k_drop, train=True), y))

    hand = jax.jit(jaxnet.analytic.value_and_grad(model, loss), static_argnames="train")
    value, grads = hand(params, x, y, key=k_drop, train=True)
    tol = tolerance(jnp.float64, "analytic")
    np.testing.assert_allclose(value, objective(params), rtol=tol.rtol, atol=tol.atol)
    report = check_grads(objective, params, analytic=lambda p: grads, method=None)
    report.assert_ok()
    assert max(r.max_rel for r in report.rows) < FLOAT64_ACHIEVED
    # Another key gives another mask, hence another gradient: the key is really used
    # (the same key gives bit-identical gradients, so any difference is the mask).
    _, same = hand(params, x, y, key=k_drop, train=True)
    _, other = hand(params, x, y, key=jax.random.key(9), train=True)
    np.testing.assert_array_equal(same["dense_0"]["w"], grads["dense_0"]["w"])
    assert not np.array_equal(other["dense_0"]["w"], grads["dense_0"]["w"])


def test_value_and_grad_errors():
    model = _mlp(False)
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum'"):
        jaxnet.analytic.value_and_grad(model, losses.mse, reduction="max")
    with pytest.raises(NotImplementedError, match="has no hand-written VJP.*mse"):
        jaxnet.analytic.value_and_grad(model, lambda p, t: (p - t) ** 2)
    no_backward = jaxnet.serial(
        jaxnet.Dense(2), jaxnet.Lambda(jnp.sin, name="sine")
    )  # a Lambda without backward=
    _, params = no_backward.init(jax.random.key(0), (None, 3))
    f = jaxnet.analytic.value_and_grad(no_backward, losses.mse)
    with pytest.raises(NotImplementedError, match="layer 'sine_1'.*no hand-written"):
        f(params, jnp.ones((2, 3)), jnp.ones((2, 2)))


# ------------------------------------------------------- the checker has teeth


def _scaled_dense_vjp(eps: float):
    original = jaxnet.nn._core.dense_vjp

    def broken(params, x, g):
        grads, dx = original(params, x, g)
        return {**grads, "w": grads["w"] * (1 + eps)}, dx

    return broken


# float32 at 1e-3 (the 0.1% error jax.test_util.check_grads misses in float32) and
# float64 at 1e-6; also 1e-4 / 1e-9, closer to each table's rtol.
TEETH = [
    (jnp.float32, 1e-3),
    (jnp.float32, 1e-4),
    (jnp.float64, 1e-6),
    (jnp.float64, 1e-9),
]
TEETH_IDS = [f"{jnp.dtype(d).name}-{e:g}" for d, e in TEETH]


def _assert_caught(report, eps: float, paths: set[str]) -> None:
    assert not report.ok
    failures = report.failures()
    assert {r.path for r in failures} == paths
    assert {r.check for r in failures} == {"jax.grad vs analytic"}
    for row in failures:
        # The relative error reported is the injected one: eps |r| / (|r| + atol/rtol)
        # is at most eps (plus rounding, which the table's rtol bounds), and above
        # eps / 2 where the gradient's magnitude is ~1.
        assert eps / 2 < row.max_rel <= eps + row.rtol, row
    with pytest.raises(AssertionError) as info:
        report.assert_ok()
    message = str(info.value)
    assert message == str(report)
    assert f"FAILED ({len(failures)} of {len(report.rows)})" in message
    for p in paths:
        line = next(l for l in message.splitlines() if l.startswith(p or "(arg)"))
        assert line.endswith("FAIL")


@pytest.mark.parametrize("dtype, eps", TEETH, ids=TEETH_IDS)
def test_checker_catches_scaled_dense_vjp(dtype, eps, monkeypatch):
    monkeypatch.setattr(jaxnet.nn._core, "dense_vjp", _scaled_dense_vjp(eps))
    case = next(c for c in LAYER_CASES if c.id == "Dense")
    _assert_caught(check_layer(case, dtype, None), eps, {"params/w"})
    # Through a model: both Dense layers fail, by their full paths; b and x pass.
    mlp = next(c for c in LAYER_CASES if c.id == "serial(MLP)")
    _assert_caught(
        check_layer(mlp, dtype, None), eps, {"params/dense_0/w", "params/head/w"}
    )


@pytest.mark.parametrize("dtype, eps", TEETH, ids=TEETH_IDS)
@pytest.mark.parametrize(
    "case_id", ["mse", "softmax_cross_entropy_with_integer_labels"]
)
def test_checker_catches_scaled_loss_vjp(case_id, dtype, eps, monkeypatch):
    case = next(c for c in LOSS_CASES if c.id == case_id)
    original = jaxnet.analytic.LOSS_VJPS[case.loss]

    def broken(p, t, g):
        return original(p, t, g) * (1 + eps)

    monkeypatch.setitem(jaxnet.analytic.LOSS_VJPS, case.loss, broken)
    report = check_loss(case, dtype, None)
    _assert_caught(report, eps, {""})  # the predictions, shown as "(arg)"
    assert "(arg)" in str(report)


def test_checker_catches_one_wrong_element_in_a_million():
    # Tolerances never scale with size (jax issue 3130): one element of a 1000x1000
    # leaf off by 1e-6 relative fails exactly as it would in a scalar.
    w = jax.random.normal(jax.random.key(0), (1000, 1000), jnp.float64)
    w = w.at[123, 456].set(1.5)

    def f(params):
        return 0.5 * jnp.sum(params["w"] * params["w"])

    def analytic(params):
        return {"w": params["w"].at[123, 456].multiply(1 + 1e-6)}

    report = check_grads(f, {"w": w}, analytic=analytic, method=None)
    assert not report.ok
    (row,) = report.rows
    assert row.path == "w" and row.shape == (1000, 1000)
    assert row.worst_index == (123, 456)
    # 1.5 (1 + 1e-6) - 1.5 = 1.5e-6 up to one rounding of 1.5 (2.2e-16 absolute,
    # i.e. 1.5e-10 relative to the difference).
    np.testing.assert_allclose(row.max_abs, 1.5e-6, rtol=1e-9)
    assert row.max_rel > 1e5 * row.rtol
    # And the correct gradient passes exactly.
    exact = check_grads(f, {"w": w}, analytic=lambda p: {"w": p["w"]}, method=None)
    assert exact.ok and exact.rows[0].max_abs == 0.0


def test_jax_check_grads_misses_what_ours_catches():
    # DESIGN.md's claim: jax.test_util.check_grads (size-scaled tolerances, random
    # directions) lets a 0.1% gradient error through in float32; ours fails it.
    from jax.test_util import check_grads as jax_check_grads

    @jax.custom_vjp
    def sin(x):
        return jnp.sin(x)

    sin.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (g * jnp.cos(x) * 1.001,))
    x = jax.random.normal(jax.random.key(0), (5,), jnp.float32)
    jax_check_grads(sin, (x,), order=1, modes=["rev"])  # passes: the error is missed
    report = check_grads(
        lambda x: jnp.sum(sin(x)), x, analytic=lambda x: jnp.cos(x), method=None
    )
    assert not report.ok
    assert report.rows[0].max_rel > 40 * report.rows[0].rtol  # ~9e-4 vs 2e-5


# ------------------------------------------------------- checker behaviour


def _sum_sin(p):
    return jnp.sum(jnp.sin(p["a"]))


def test_non_finite_argument_names_path_and_index():
    bad = {"a": jnp.array([1.0, jnp.nan, 2.0], jnp.float64)}
    with pytest.raises(
        ValueError, match=r"'a' holds a non-finite value \(nan at index \(1,\)\)"
    ):
        check_grads(_sum_sin, bad, method=None)

    def g(params, x):
        return jnp.sum(params["dense"]["w"] * x)

    params = {"dense": {"w": jnp.ones((2, 2), jnp.float64)}}
    x = jnp.ones((2, 2), jnp.float64).at[0, 1].set(jnp.inf)
    with pytest.raises(
        ValueError, match=r"'x' holds a non-finite value \(inf at index \(0, 1\)\)"
    ):
        check_grads(g, params, x, argnums=(0, 1), names=("params", "x"), method=None)
    params["dense"]["w"] = params["dense"]["w"].at[1, 0].set(-jnp.inf)
    with pytest.raises(
        ValueError, match=r"'params/dense/w' holds .*-inf at index \(1, 0\)"
    ):
        check_grads(g, params, x, argnums=(0, 1), names=("params", "x"), method=None)


def test_non_finite_f_rejected_and_vector_f_accepted():
    p = {"a": jnp.ones(3, jnp.float64)}
    with pytest.raises(ValueError, match="is inf at this point"):
        check_grads(lambda p: jnp.sum(p["a"]) / 0.0, p, method=None)
    with pytest.raises(ValueError, match="output 'y' is nan at this point"):
        check_grads(lambda p: {"y": jnp.log(-p["a"])}, p)
    with pytest.raises(ValueError, match="analytic= needs a scalar"):
        check_grads(lambda p: jnp.sin(p["a"]), p, analytic=lambda p: p)
    # A vector output is checked through its Jacobian, not refused.
    report = check_grads(lambda p: jnp.sin(p["a"]), p, method=None)
    assert [r.check for r in report.rows] == ["jax.grad vs complex"]
    assert report.rows[0].shape == (3, 3) and report.ok


def test_analytic_structure_and_shape_checked():
    p = {"a": jnp.ones(3, jnp.float64)}
    with pytest.raises(ValueError, match="analytic gradient's structure"):
        check_grads(_sum_sin, p, analytic=lambda p: {"b": jnp.cos(p["a"])}, method=None)
    with pytest.raises(
        ValueError, match=r"gradient of 'a' has shape \(2,\), jax.grad's has \(3,\)"
    ):
        check_grads(_sum_sin, p, analytic=lambda p: {"a": jnp.ones(2)}, method=None)
    with pytest.raises(
        ValueError, match="method must be 'auto', 'central', 'complex' or None"
    ):
        check_grads(_sum_sin, p, method="forward")


def test_complex_step_is_exact_to_rounding():
    # A real-analytic function written with complex-safe ops, two leaves, f64.
    p = {
        "a": jax.random.normal(jax.random.key(0), (4, 3), jnp.float64),
        "b": jnp.array([0.3, -1.2, 2.0], jnp.float64),
    }

    def f(p):
        return jnp.sum(jnp.sin(p["a"]) * jnp.exp(p["b"])[None, :]) + jnp.sum(
            p["b"] ** 3
        )

    def analytic(p):
        e = jnp.exp(p["b"])
        return {
            "a": jnp.cos(p["a"]) * e[None, :],
            "b": jnp.sum(jnp.sin(p["a"]), axis=0) * e + 3 * p["b"] ** 2,
        }

    report = check_grads(f, p, analytic=analytic, method="complex")
    report.assert_ok()
    assert len(report.rows) == 6
    # Measured ~2e-16: the complex step has no cancellation, unlike differences.
    assert max(r.max_rel for r in report.rows) < 1e-14
    central = check_grads(f, p, analytic=analytic, method="central")
    central.assert_ok()
    numeric = [r for r in central.rows if r.check.endswith("central")]
    # Central differences carry truncation error the complex step does not.
    assert max(r.max_rel for r in numeric) > max(r.max_rel for r in report.rows)


def test_multiple_argnums_are_labelled():
    def f(w, x):
        return jnp.sum(jnp.tanh(w["k"] @ x))

    w = {"k": jax.random.normal(jax.random.key(0), (2, 3), jnp.float64)}
    x = jax.random.normal(jax.random.key(1), (3,), jnp.float64)
    report = check_grads(f, w, x, argnums=(0, 1), names=("w", "x"), method="complex")
    report.assert_ok()
    assert [r.path for r in report.rows] == ["w/k", "x"]
    assert report.name == "f"


def test_to_records_returns_plain_dicts():
    case = next(c for c in LAYER_CASES if c.id == "Dense")
    report = check_layer(case, jnp.float64, None)
    records = report.to_records()
    assert isinstance(records, list) and len(records) == len(report.rows) == 3
    fields = set(GradCheckRow.__dataclass_fields__)
    for rec, row in zip(records, report.rows):
        assert type(rec) is dict and set(rec) == fields
        assert rec["path"] == row.path and rec["max_rel"] == row.max_rel
        assert type(rec["max_rel"]) is float and type(rec["ok"]) is bool
        assert all(type(i) is int for i in rec["worst_index"])
    decoded = json.loads(json.dumps(records))
    assert [r["path"] for r in decoded] == ["params/b", "params/w", "x"]


def test_report_table_format():
    case = next(c for c in LAYER_CASES if c.id == "Tanh")
    text = str(check_layer(case, jnp.float64, "complex"))
    lines = text.splitlines()
    assert lines[0] == "gradient check of Tanh: ok"
    assert lines[1].split() == [
        "path", "check", "max", "abs", "max", "rel", "worst", "index", "rtol", "atol",
        "probes", "detects",
    ]  # fmt: skip
    assert len(lines) == 2 + 3 and all(l.endswith("ok") for l in lines[2:])


# ------------------------------------------------------- the tolerance table


def test_tolerance_lookup():
    assert tolerance(jnp.float64) == Tolerance(rtol=1e-12, atol=1e-13)
    assert tolerance(jnp.float64, "analytic") is TOLERANCES["float64"]["analytic"]
    assert tolerance(jnp.float32, "central") is TOLERANCES["float32"]["central"]
    assert tolerance("bfloat16", "complex") is TOLERANCES["bfloat16"]["complex"]
    assert tolerance(np.dtype("float16")) is TOLERANCES["float16"]["analytic"]
    # A complex dtype uses its real part's row (complex-step probes).
    assert tolerance(jnp.complex128) is TOLERANCES["float64"]["analytic"]
    assert tolerance(jnp.complex64, "central") is TOLERANCES["float32"]["central"]


def test_tolerance_table_is_ordered():
    for name, row in TOLERANCES.items():
        assert set(row) == {"analytic", "central", "complex"}
        # Differences are a smoke test: never tighter than the exact comparisons.
        assert row["central"].rtol > row["analytic"].rtol
        assert set(STEPS[name]) == {"central", "complex"}
    assert (
        TOLERANCES["float64"]["analytic"].rtol < TOLERANCES["float32"]["analytic"].rtol
    )


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_, "float8_e4m3fn"])
def test_tolerance_unknown_dtype(dtype):
    with pytest.raises(ValueError, match=r"no entry for dtype .*; known: \['bfloat16'"):
        tolerance(dtype)


def test_tolerance_unknown_method():
    with pytest.raises(ValueError, match="method must be one of"):
        tolerance(jnp.float64, "forward")
