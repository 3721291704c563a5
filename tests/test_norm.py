"""The norm family (LayerNorm, RMSNorm, GroupNorm): equivalence with ``flax.linen``
(same weights copied in, float32 tolerance), stability at large means, the analytic
backward where the registry cannot reach (large means), and bad-input errors.

The registry cases in ``jaxnet/_cases_norm.py`` already run the battery and the
three-way float64 gradient check (jax.grad vs analytic vs complex step).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet.testing import tolerance

KEY = jax.random.key(0)
F32 = tolerance(jnp.float32, "analytic")


def _rendered(exc: BaseException) -> str:
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


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
    text = _rendered(info.value)
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
    text = _rendered(info.value)
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
