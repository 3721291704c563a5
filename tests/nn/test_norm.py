"""The norm family (LayerNorm, RMSNorm, GroupNorm): equivalence with ``flax.linen``
(same weights copied in, float32 tolerance), stability at large means, the analytic
backward where the registry cannot reach (large means), and bad-input errors.

The registry cases in ``jaxnet/testing/cases/norm.py`` already run the battery and the
three-way float64 gradient check (jax.grad vs analytic vs complex step).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_trees_close, rendered, second_order

import jaxnet
from jaxnet.testing import tolerance

KEY = jax.random.key(0)
F32 = tolerance(jnp.float32, "analytic")


def _normal(
    shape: tuple[int, ...], mean: float = 0.0, seed: int = 0, std: float = 1.0
) -> jax.Array:
    """float32 normal draws made with numpy: no per-shape XLA compile in the tests."""
    rng = np.random.default_rng(seed)
    return jnp.asarray((mean + std * rng.standard_normal(shape)).astype(np.float32))


def _random_params(layer: jaxnet.Layer, shape: tuple[int, ...]) -> dict:
    """The layer's params with random values (not ones/zeros), float32."""
    shapes = jax.eval_shape(lambda k: layer.init(k, shape)[1], KEY)
    return {
        k: _normal(v.shape, 1.0, seed, std=0.5)
        for seed, (k, v) in enumerate(sorted(shapes.items()))
    }


def _flax_vars(params: dict) -> dict:
    rename = {"scale": "scale", "offset": "bias"}
    return {"params": {rename[k]: v for k, v in params.items()}}


def _flax_apply(module: nn.Module, params: dict, x: jax.Array) -> jax.Array:
    # Flax's own code relies on standard promotion / rank broadcasting.
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        return jax.jit(module.apply)(_flax_vars(params), x)


# (id, jaxnet layer, flax module (fast variance off), input shape)
PAIRS = [
    ("LayerNorm-2d", jaxnet.LayerNorm(), nn.LayerNorm, {}, (3, 7)),
    ("LayerNorm-3d", jaxnet.LayerNorm(epsilon=1e-3), nn.LayerNorm, {"epsilon": 1e-3},
     (2, 3, 8)),
    ("LayerNorm-noscale", jaxnet.LayerNorm(use_scale=False), nn.LayerNorm,
     {"use_scale": False}, (3, 7)),
    ("LayerNorm-nobias", jaxnet.LayerNorm(use_bias=False), nn.LayerNorm,
     {"use_bias": False}, (3, 7)),
    ("RMSNorm-2d", jaxnet.RMSNorm(), nn.RMSNorm, {}, (3, 7)),
    ("RMSNorm-3d", jaxnet.RMSNorm(), nn.RMSNorm, {}, (2, 3, 8)),
    ("RMSNorm-noscale", jaxnet.RMSNorm(use_scale=False), nn.RMSNorm,
     {"use_scale": False}, (3, 7)),
    ("GroupNorm-2d-spatial", jaxnet.GroupNorm(2), nn.GroupNorm, {"num_groups": 2},
     (2, 4, 5, 4)),
    ("GroupNorm-group_size", jaxnet.GroupNorm(None, group_size=3), nn.GroupNorm,
     {"num_groups": None, "group_size": 3}, (2, 5, 6)),
    ("GroupNorm-no-spatial", jaxnet.GroupNorm(4), nn.GroupNorm, {"num_groups": 4},
     (3, 8)),
]  # fmt: skip


@pytest.mark.parametrize("mean", [0.0, 1e3], ids=["mean0", "mean1e3"])
@pytest.mark.parametrize(
    "layer, module, kwargs, shape", [p[1:] for p in PAIRS], ids=[p[0] for p in PAIRS]
)
def test_matches_flax(layer, module, kwargs, shape, mean):
    params = _random_params(layer, shape)
    x = _normal(shape, mean, seed=2)
    ours = jax.jit(layer.apply)(params, x)
    ref = _flax_apply(module(use_fast_variance=False, **kwargs), params, x)
    assert ours.dtype == ref.dtype == jnp.float32
    np.testing.assert_allclose(ours, ref, rtol=F32.rtol, atol=F32.atol)
    if mean == 0.0:  # Flax's default (one-pass) variance is accurate here too
        fast = _flax_apply(module(**kwargs), params, x)
        np.testing.assert_allclose(ours, fast, rtol=F32.rtol, atol=F32.atol)


def _float64_layer_norm(x: np.ndarray, eps: float) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)


def test_large_mean_is_stable_where_one_pass_variance_cancels():
    """Mean 1e3, std 1 in float32: the two-pass variance is as accurate as float32
    allows (rounding of the mean, ~eps * |mu| / sigma), the one-pass form is not."""
    shape = (4, 64)
    x = _normal(shape, 1e3, seed=3)
    layer = jaxnet.LayerNorm(use_scale=False, use_bias=False)
    exact = _float64_layer_norm(np.asarray(x), 1e-6)
    ours = np.abs(np.asarray(jax.jit(layer.apply)({}, x)) - exact).max()
    bound = 4 * np.finfo(np.float32).eps * 1e3  # conditioning |mu| / sigma = 1e3
    assert ours < bound, ours
    one_pass = _flax_apply(nn.LayerNorm(use_scale=False, use_bias=False), {}, x)
    assert np.abs(np.asarray(one_pass) - exact).max() > 100 * bound  # it cancels


def test_low_precision_input_uses_float32_statistics():
    x = jnp.asarray(np.asarray(_normal((2, 16), 3.0, seed=4), jnp.bfloat16))
    layer = jaxnet.LayerNorm(use_scale=False, use_bias=False)
    ours = jax.jit(layer.apply)({}, x)
    ref = _flax_apply(nn.LayerNorm(use_scale=False, use_bias=False), {}, x)
    assert ours.dtype == ref.dtype == jnp.bfloat16
    bf16 = tolerance(jnp.bfloat16, "analytic")
    np.testing.assert_allclose(
        ours.astype(jnp.float32),
        ref.astype(jnp.float32),
        rtol=bf16.rtol,
        atol=bf16.atol,
    )
    # With float32 params the output is float32, as in Flax.
    with_params = jaxnet.LayerNorm()
    _, params = with_params.init(KEY, (None, 16))
    assert jax.eval_shape(with_params.apply, params, x).dtype == jnp.float32


@pytest.mark.parametrize(
    "layer, shape",
    [(jaxnet.LayerNorm(dtype=jnp.float64), (3, 6)),
     (jaxnet.GroupNorm(2, dtype=jnp.float64), (2, 2, 3, 4))],
    ids=["LayerNorm", "GroupNorm"],
)  # fmt: skip
def test_analytic_backward_at_large_mean(layer, shape):
    """jax.grad vs the hand-written backward in float64 at inputs of mean 1e3 (the
    registry draws standard normals), with random scale and offset."""
    rng = np.random.default_rng(7)
    x, g = 1e3 + rng.standard_normal(shape), rng.standard_normal(shape)
    params = {"scale": 1 + 0.5 * rng.standard_normal(shape[-1:]),
              "offset": rng.standard_normal(shape[-1:])}  # fmt: skip

    @jax.jit
    def both(params, x):
        ad = jax.grad(lambda p, x: jnp.sum(g * layer.apply(p, x)), (0, 1))(params, x)
        return ad, layer.backward(params, x, layer.apply(params, x), g)

    ad, analytic = both(params, x)
    tol = tolerance(jnp.float64, "analytic")
    for a, b in zip(jax.tree.leaves(ad), jax.tree.leaves(analytic), strict=True):
        np.testing.assert_allclose(b, a, rtol=tol.rtol, atol=tol.atol)


def test_group_norm_one_group_is_layer_norm_over_all_but_batch():
    x = _normal((2, 3, 4), seed=6)
    gn = jaxnet.GroupNorm(1, use_scale=False, use_bias=False)
    ln = jaxnet.LayerNorm(use_scale=False, use_bias=False)
    want = jax.jit(ln.apply)({}, x.reshape(2, 12)).reshape(x.shape)
    np.testing.assert_allclose(
        jax.jit(gn.apply)({}, x), want, rtol=F32.rtol, atol=F32.atol
    )


# ------------------------------------------------------------------------- errors


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
    "layer, init_shape, bad, fragments",
    [
        (
            jaxnet.LayerNorm(),
            (None, 4),
            (3, 5),
            ["LayerNorm(epsilon=1e-06)", "(..., 4)", "(3, 5)", "initialised for 4"],
        ),
        (
            jaxnet.RMSNorm(),
            (None, 2, 6),
            (3, 2, 5),
            ["RMSNorm(epsilon=1e-06)", "(..., 6)", "(3, 2, 5)", "re-initialise"],
        ),
        (
            jaxnet.GroupNorm(2),
            (None, 3, 4),
            (2, 3, 6),
            ["GroupNorm(num_groups=2, epsilon=1e-06)", "(..., 4)", "(2, 3, 6)"],
        ),
        (
            jaxnet.GroupNorm(2),
            (None, 3, 4),
            (4,),
            ["GroupNorm(num_groups=2, epsilon=1e-06)", "rank >= 2", "(4,)"],
        ),
        (
            jaxnet.GroupNorm(2, use_scale=False, use_bias=False),
            (None, 4),
            (2, 5),
            ["5 channels are not divisible by num_groups=2", "one of 1, 5"],
        ),
        (
            jaxnet.LayerNorm(use_bias=False),
            (None, 4),
            (),
            ["LayerNorm(epsilon=1e-06, use_bias=False)", "rank >= 1", "got shape ()"],
        ),
    ],
    ids=["LayerNorm", "RMSNorm", "GroupNorm", "GroupNorm-rank", "GroupNorm-div", "0d"],
)
def test_apply_errors(layer, init_shape, bad, fragments, jit):
    _, params = layer.init(KEY, init_shape)
    apply = jax.jit(layer.apply) if jit else layer.apply
    with pytest.raises(jaxnet.ShapeError) as info:
        apply(params, jnp.zeros(bad, jnp.float32))
    text = rendered(info.value)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in:\n{text}"


@pytest.mark.parametrize(
    "layer, shape, fragments",
    [
        (
            jaxnet.GroupNorm(3),
            (None, 8, 8, 4),
            [
                "GroupNorm(num_groups=3, epsilon=1e-06)",
                "4 channels are not divisible by num_groups=3",
                "one of 1, 2, 4",
            ],
        ),
        (
            jaxnet.GroupNorm(None, group_size=4),
            (None, 6),
            ["GroupNorm(group_size=4", "not divisible by group_size=4", "1, 2, 3, 6"],
        ),
        (jaxnet.GroupNorm(2), (None,), ["GroupNorm(num_groups=2", "rank >= 2"]),
        (
            jaxnet.LayerNorm(),
            (None, None),
            ["LayerNorm(epsilon=1e-06)", "last (feature) axis", "(None, None)"],
        ),
        (jaxnet.RMSNorm(), (), ["RMSNorm(epsilon=1e-06)", "rank >= 1"]),
    ],
    ids=["GroupNorm-div", "GroupNorm-group_size", "GroupNorm-rank", "free", "0d"],
)
def test_init_errors(layer, shape, fragments):
    with pytest.raises(jaxnet.ShapeError) as info:
        layer.init(KEY, shape)
    text = rendered(info.value)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in:\n{text}"


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"num_groups=None, group_size=4\)"):
        jaxnet.GroupNorm(group_size=4)  # num_groups defaults to 32: both given
    with pytest.raises(ValueError, match="num_groups must be an integer >= 1"):
        jaxnet.GroupNorm(0)
    with pytest.raises(ValueError, match="epsilon must be a number >= 0"):
        jaxnet.LayerNorm(epsilon=-1.0)


def test_params_and_dtype_errors():
    layer = jaxnet.LayerNorm()
    _, params = layer.init(KEY, (None, 4))
    with pytest.raises(jaxnet.ParamsError, match=r"missing \['offset'\]"):
        layer.apply({"scale": params["scale"]}, jnp.zeros((2, 4)))
    with pytest.raises(jaxnet.ParamsError, match=r"one size C"):
        layer.apply({**params, "offset": jnp.zeros(3)}, jnp.zeros((2, 4)))
    with pytest.raises(jaxnet.DTypeError, match="LayerNorm.*floating-point"):
        layer.apply(params, jnp.zeros((2, 4), jnp.int32))


# ------------------------------------------------- custom gradient (custom_grad=True)
# LayerNorm differentiates by default through a linear custom JVP rule whose
# transpose is the hand-written backward (benchmark issue 5: jax.grad no slower than
# the hand-written backward); custom_grad=False is plain autodiff of the forward.
# RMSNorm has the same rule opt-in (custom_grad=True; it measured no faster).

F64 = tolerance(jnp.float64, "analytic")

# (id, constructor, kwargs, input shape): every params layout of both layers.
CUSTOM = [
    ("LayerNorm", jaxnet.LayerNorm, {}, (3, 6)),
    ("LayerNorm-rank3-eps", jaxnet.LayerNorm, {"epsilon": 1e-3}, (2, 3, 5)),
    ("LayerNorm-noscale", jaxnet.LayerNorm, {"use_scale": False}, (3, 6)),
    ("LayerNorm-nobias", jaxnet.LayerNorm, {"use_bias": False}, (3, 6)),
    ("LayerNorm-bare", jaxnet.LayerNorm, {"use_scale": False, "use_bias": False},
     (3, 6)),
    ("RMSNorm", jaxnet.RMSNorm, {}, (3, 6)),
    ("RMSNorm-noscale", jaxnet.RMSNorm, {"use_scale": False}, (2, 3, 5)),
]  # fmt: skip
CUSTOM_IDS = [c[0] for c in CUSTOM]
CUSTOM_ARGS = [c[1:] for c in CUSTOM]


def _f64_problem(make, kwargs, shape, seed=11, mean=2.0):
    """(default layer, plain layer, float64 params, x, cotangent g)."""
    fast = make(dtype=jnp.float64, custom_grad=True, **kwargs)
    plain = make(dtype=jnp.float64, custom_grad=False, **kwargs)
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(lambda k: fast.init(k, shape)[1], KEY)
    params = {
        k: jnp.asarray(1.0 + 0.5 * rng.standard_normal(v.shape))
        for k, v in sorted(shapes.items())
    }
    x = jnp.asarray(mean + 1.5 * rng.standard_normal(shape))
    g = jnp.asarray(rng.standard_normal(shape))
    return fast, plain, params, x, g


def _uses_custom_rule(layer, params, x) -> bool:
    jaxpr = str(jax.make_jaxpr(layer.apply)(params, x))
    return "custom_jvp_call" in jaxpr


def test_custom_grad_defaults_flag_and_desc():
    x, params = jnp.ones((2, 4)), {"scale": jnp.ones(4), "offset": jnp.zeros(4)}
    assert _uses_custom_rule(jaxnet.LayerNorm(), params, x)
    assert not _uses_custom_rule(jaxnet.LayerNorm(custom_grad=False), params, x)
    scale = {"scale": jnp.ones(4)}
    assert _uses_custom_rule(jaxnet.RMSNorm(custom_grad=True), scale, x)
    assert not _uses_custom_rule(jaxnet.RMSNorm(), scale, x)  # opt-in for RMSNorm
    assert jaxnet.LayerNorm(custom_grad=False).desc == (
        "LayerNorm(epsilon=1e-06, custom_grad=False)"
    )
    assert jaxnet.LayerNorm().desc == "LayerNorm(epsilon=1e-06)"
    assert jaxnet.RMSNorm(custom_grad=True).desc == (
        "RMSNorm(epsilon=1e-06, custom_grad=True)"
    )
    assert jaxnet.RMSNorm().desc == "RMSNorm(epsilon=1e-06)"


@pytest.mark.parametrize("make, kwargs, shape", CUSTOM_ARGS, ids=CUSTOM_IDS)
def test_custom_grad_equals_analytic_backward_float64(make, kwargs, shape):
    """jax.grad through the custom rule == the hand-written backward == plain
    autodiff, float64 "analytic" tolerance; w.r.t. (params, x), params only and x
    only (the rule's symbolic-zero branches), under jit. The forward is unchanged."""
    fast, plain, params, x, g = _f64_problem(make, kwargs, shape)

    @jax.jit
    def grads(params, x):
        out = {}
        for name, layer in (("fast", fast), ("plain", plain)):

            def loss(p, x, layer=layer):
                return jnp.sum(g * layer.apply(p, x))

            out[name] = (
                jax.grad(loss, (0, 1))(params, x),
                jax.grad(loss, 0)(params, x),
                jax.grad(loss, 1)(params, x),
                layer.apply(params, x),
            )
        out["hand"] = fast.backward(params, x, fast.apply(params, x), g)
        return out

    out = grads(params, x)
    (both, p_only, x_only, y_fast), (both_p, _, _, y_plain) = out["fast"], out["plain"]
    hand_params, hand_x = out["hand"]
    np.testing.assert_array_equal(y_fast, y_plain)
    assert_trees_close(both, (hand_params, hand_x), F64, "grad (params, x)")
    assert_trees_close(p_only, hand_params, F64, "grad params")
    assert_trees_close(x_only, hand_x, F64, "grad x")
    assert_trees_close(both, both_p, F64, "custom vs plain")
    assert float(jnp.max(jnp.abs(hand_x))) > 1e-2  # not vacuous


@pytest.mark.parametrize(
    "make, kwargs, shape",
    [c[1:] for c in CUSTOM if c[0] in ("LayerNorm", "LayerNorm-nobias", "RMSNorm")],
    ids=["LayerNorm", "LayerNorm-nobias", "RMSNorm"],
)
def test_custom_grad_keeps_forward_mode_and_higher_order(make, kwargs, shape):
    """jax.jvp, jax.hessian (forward over reverse), jacfwd and reverse over reverse
    through the custom rule equal plain autodiff's, float64."""
    fast, plain, params, x, g = _f64_problem(make, kwargs, shape, seed=12)
    rng = np.random.default_rng(13)
    dparams = jax.tree.map(lambda a: jnp.asarray(rng.standard_normal(a.shape)), params)
    dx = jnp.asarray(rng.standard_normal(shape))

    @jax.jit
    def derivatives(params, x):
        out = []
        for layer in (fast, plain):

            def scalar(p, x, layer=layer):
                return jnp.sum(g * jnp.sin(layer.apply(p, x)))

            out.append(
                (
                    jax.jvp(layer.apply, (params, x), (dparams, dx)),
                    jax.hessian(scalar, (0, 1))(params, x),
                    jax.jacfwd(layer.apply, (0, 1))(params, x),
                    jax.jacrev(jax.grad(scalar, 1), 0)(params, x),
                )
            )
        return out

    fast_out, plain_out = derivatives(params, x)
    # Second derivatives sum more terms: compare at 10x the first-order tolerance.
    tol2 = second_order(F64)
    names = ["jvp", "hessian", "jacfwd", "jacrev(grad)"]
    for name, a, b, tol in zip(names, fast_out, plain_out, [F64, tol2, F64, tol2]):
        assert_trees_close(a, b, tol, name)
    hess_xx = fast_out[1][1][1]
    assert hess_xx.shape == shape + shape and float(jnp.max(jnp.abs(hess_xx))) > 1e-2


def test_custom_grad_under_vmap_matches_per_example():
    """vmap of the custom-rule gradient over examples (shared params) equals each
    example's gradient, and the per-example params gradients sum to the batch's."""
    fast, plain, params, x, g = _f64_problem(jaxnet.LayerNorm, {}, (4, 3, 6), seed=14)

    def loss(p, x, g):
        return jnp.sum(g * fast.apply(p, x))

    per_example = jax.jit(jax.vmap(jax.grad(loss, (0, 1)), (None, 0, 0)))
    dp, dx = per_example(params, x, g)
    assert dx.shape == x.shape and dp["scale"].shape == (4, 6)
    dp_all, dx_all = jax.jit(jax.grad(loss, (0, 1)))(params, x, g)
    np.testing.assert_allclose(dx, dx_all, rtol=F64.rtol, atol=F64.atol)
    assert_trees_close(jax.tree.map(lambda a: a.sum(0), dp), dp_all, F64, "vmap")
    hand_p, hand_x = fast.backward(params, x[1], None, g[1])
    assert_trees_close(
        (jax.tree.map(lambda a: a[1], dp), dx[1]), (hand_p, hand_x), F64, "ex 1"
    )


def test_custom_grad_bfloat16_input():
    """bfloat16 input, float32 params: the custom rule's gradients have the plain
    version's dtypes (dx bfloat16, dparams float32) and agree with the float64
    hand-written backward to bfloat16 tolerance."""
    rng = np.random.default_rng(15)
    x = jnp.asarray((3.0 + rng.standard_normal((4, 16))).astype(jnp.bfloat16))
    g = jnp.asarray(rng.standard_normal((4, 16)).astype(jnp.bfloat16))
    params = {"scale": jnp.asarray(1 + 0.5 * rng.standard_normal(16), jnp.float32),
              "offset": jnp.asarray(rng.standard_normal(16), jnp.float32)}  # fmt: skip

    @jax.jit
    def grads(params, x):
        out = []
        for layer in (jaxnet.LayerNorm(), jaxnet.LayerNorm(custom_grad=False)):

            def loss(p, x, layer=layer):
                return jnp.sum(g.astype(jnp.float32) * layer.apply(p, x))

            out.append(jax.grad(loss, (0, 1))(params, x))
        return out

    fast, plain = grads(params, x)
    assert fast[1].dtype == plain[1].dtype == jnp.bfloat16
    assert fast[0]["scale"].dtype == plain[0]["scale"].dtype == jnp.float32
    p64 = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    ref = jaxnet.analytic.layer_norm_vjp(
        p64, x.astype(jnp.float64), g.astype(jnp.float64)
    )
    bf16 = tolerance(jnp.bfloat16, "analytic")
    for a, r in zip(jax.tree.leaves(fast), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(
            np.asarray(a, np.float64), r, rtol=bf16.rtol, atol=bf16.atol
        )


def test_array_epsilon_keeps_its_gradient():
    """The custom rule treats epsilon as a constant: an array epsilon (here traced by
    jax.grad) must take plain autodiff, not get a silent zero gradient."""
    x = jnp.asarray(np.arange(6.0).reshape(2, 3))
    params = {"scale": jnp.ones(3), "offset": jnp.zeros(3)}

    def d_eps(custom_grad):
        def f(eps):
            y = jaxnet.analytic.layer_norm(
                params, x, epsilon=eps, custom_grad=custom_grad
            )
            return jnp.sum(y * y)

        return float(jax.grad(f)(jnp.float64(0.1)))

    # sum(xhat^2) = N var / (var + eps) per row; var = 2/3, N = 3, two rows.
    want = -2 * 3 * (2 / 3) / (2 / 3 + 0.1) ** 2
    np.testing.assert_allclose(d_eps(True), want, rtol=F64.rtol)
    np.testing.assert_allclose(d_eps(False), want, rtol=F64.rtol)
