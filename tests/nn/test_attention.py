"""Multi-head attention (``jaxnet/nn/_attention.py``).

The registry cases (``jaxnet/testing/cases/attention.py``) already run the battery and
the analytic-vs-jax.grad check (tests/nn/test_layers.py, tests/test_analytic.py). Here:
equivalence with Flax linen (same weights copied in), masks (padding, causal, fully
masked rows), the float32 fast path against the written formula, and the error
messages.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_init_error, assert_leaves_close

import jaxnet
from jaxnet import analytic
from jaxnet.testing import check_grads, tolerance

F32 = tolerance(jnp.float32, "analytic")
F64 = tolerance(jnp.float64, "analytic")


# ------------------------------------------------------------------------ attention


def _flax_to_ours(fp: dict) -> dict:
    """Flax DenseGeneral kernels (d, heads, hd) / (heads, hd, out) to 2-D ``w``."""
    out = {}
    for name in ("query", "key", "value"):
        k = fp[name]["kernel"]
        out[name] = {
            "w": k.reshape(k.shape[0], -1),
            "b": fp[name]["bias"].reshape(-1),
        }
    k = fp["out"]["kernel"]
    out["out"] = {"w": k.reshape(-1, k.shape[-1]), "b": fp["out"]["bias"]}
    return out


PAD = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)  # batch 2, kv_len 4

MHA_FLAX = [
    ("self", dict(), False, None),
    ("causal", dict(causal=True), False, None),
    ("padding", dict(), False, "pad"),
    ("causal+padding", dict(causal=True), False, "pad"),
    ("cross", dict(qkv_features=6, out_features=5), True, None),
    ("cross+padding", dict(qkv_features=6, out_features=5), True, "pad"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "kw, cross, mask", [m[1:] for m in MHA_FLAX], ids=[m[0] for m in MHA_FLAX]
)
def test_attention_matches_flax(kw, cross, mask):
    kq, kkv, ki = jax.random.split(jax.random.key(0), 3)
    xq = jax.random.normal(kq, (2, 4 if not cross else 3, 8), jnp.float32)
    xkv = jax.random.normal(kkv, (2, 4, 6), jnp.float32) if cross else xq
    causal = kw.get("causal", False)
    module = nn.MultiHeadDotProductAttention(
        num_heads=2,
        qkv_features=kw.get("qkv_features"),
        out_features=kw.get("out_features"),
    )
    fmask = None
    with jax.numpy_dtype_promotion("standard"):
        if causal:
            fmask = nn.make_causal_mask(jnp.ones((2, 4)))
        if mask == "pad":
            pad = jnp.asarray(PAD)[:, None, None, :]
            fmask = pad if fmask is None else nn.combine_masks(fmask, pad)
        variables = module.init(ki, xq, xkv)
        expected = module.apply(variables, xq, xkv, mask=fmask)
    layer = jaxnet.MultiHeadAttention(2, **kw)
    params = _flax_to_ours(variables["params"])
    _, ours = layer.init(ki, ((None,) + xq.shape[1:], (None,) + xkv.shape[1:]))
    assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, params)
    x = (xq, xkv) if cross else xq
    opts = {"mask": jnp.asarray(PAD)[:, None, None, :]} if mask == "pad" else {}
    y = layer.apply(params, x, **opts)
    diff = assert_leaves_close(y, expected, F32)
    print(f"max abs diff vs flax: {diff:.2e}")


def _mha_problem(causal: bool, mask):
    layer = jaxnet.MultiHeadAttention(2, causal=causal, dtype=jnp.float64)
    _, params = layer.init(jax.random.key(0), (None, 4, 4))
    x = jax.random.normal(jax.random.key(1), (2, 4, 4), jnp.float64)
    g = jax.random.normal(jax.random.key(2), (2, 4, 4), jnp.float64)
    return layer, params, x, g


@pytest.mark.parametrize("causal", [False, True], ids=["pad", "causal+pad"])
def test_attention_batch_padding_mask_gradients(causal):
    # A per-example mask (batch 2, different lengths): the registry's mask is shared
    # across the batch so that vmap and batch-size battery checks apply.
    mask = jnp.asarray(PAD)[:, None, None, :]
    layer, params, x, g = _mha_problem(causal, mask)

    def f(point):
        return jnp.sum(g * layer.apply(point["params"], point["x"], mask=mask))

    def an(point):
        y = layer.apply(point["params"], point["x"], mask=mask)
        dp, dx = layer.backward(point["params"], point["x"], y, g, mask=mask)
        return {"params": dp, "x": dx}

    check_grads(f, {"params": params, "x": x}, analytic=an, method=None).assert_ok()
    # Masked keys have no influence: changing a padded position's input changes no
    # output row of that example (in self-attention its own query row does change).
    x2 = x.at[1, 3].add(10.0)
    y1, y2 = layer.apply(params, x, mask=mask), layer.apply(params, x2, mask=mask)
    assert_leaves_close(y1[1, :3], y2[1, :3], F64)


def test_attention_fully_masked_row_stays_finite_and_matches_autodiff():
    mask = jnp.zeros((1, 1, 1, 4), bool).at[..., 0].set(True)
    mask = jnp.concatenate([mask, jnp.zeros_like(mask)])  # example 1: all masked
    layer, params, x, g = _mha_problem(False, mask)
    y = layer.apply(params, x, mask=mask)
    assert np.all(np.isfinite(y))
    dp, dx = layer.backward(params, x, y, g, mask=mask)
    auto = jax.grad(
        lambda p, x: jnp.sum(g * layer.apply(p, x, mask=mask)), argnums=(0, 1)
    )(params, x)
    for a, b in zip(jax.tree.leaves((dp, dx)), jax.tree.leaves(auto)):
        assert_leaves_close(a, b, F64)


def test_attention_core_float32_path_matches_written_formula():
    # float32 goes through jax.nn.dot_product_attention; float64 through the formula.
    q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 4, 2, 3), jnp.float32)
    mask = jnp.asarray(np.tril(np.ones((4, 4), bool)))[None, None]
    mask = jnp.broadcast_to(mask, (2, 2, 4, 4))
    fast = analytic.attention_core(q, k, v, mask)
    written = jnp.einsum("bnts,bsnh->btnh", analytic.attention_weights(q, k, mask), v)
    assert_leaves_close(fast, written, F32)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_attention_bad_mask_shape_error(jit):
    layer = jaxnet.MultiHeadAttention(2)
    _, params = layer.init(jax.random.key(0), (None, 4, 4))
    apply = jax.jit(layer.apply) if jit else layer.apply
    with pytest.raises(jaxnet.ShapeError) as info:
        apply(params, jnp.zeros((2, 4, 4)), mask=jnp.ones((2, 1, 3), bool))
    assert str(info.value) == (  # (under jit JAX appends a traceback note)
        "MultiHeadAttention(num_heads=2, causal=False): mask of shape (2, 1, 3) is not "
        "broadcastable to (batch, heads, q_len, kv_len) = (2, 2, 4, 4). A padding mask "
        "is (batch, 1, 1, kv_len)."
    )
    with pytest.raises(jaxnet.DTypeError, match="expected a boolean mask"):
        apply(params, jnp.zeros((2, 4, 4)), mask=jnp.ones((2, 1, 1, 4)))


def test_attention_input_errors():
    layer = jaxnet.MultiHeadAttention(2)
    _, params = layer.init(jax.random.key(0), (None, 4, 4))
    with pytest.raises(jaxnet.ShapeError) as info:
        layer.apply(params, jnp.zeros((2, 4, 6)))
    assert (
        "MultiHeadAttention(num_heads=2, causal=False): expected query input of shape "
        "(batch, seq, 4), got (2, 4, 6)." in str(info.value)
    )
    with pytest.raises(jaxnet.ShapeError, match=r"expected query input of shape \("):
        layer.apply(params, jnp.zeros((4, 4)))


def test_init_errors():
    assert_init_error(
        lambda: jaxnet.MultiHeadAttention(3),
        (None, 3, 4),
        ["MultiHeadAttention(num_heads=3, causal=False)", "qkv_features=4"],
    )


# ------------------------------------------------------- implementation="xla"/"cudnn"


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_xla_implementation_matches_the_default_and_the_hand_backward(causal):
    """``implementation="xla"`` is jax.nn.dot_product_attention with plain autodiff:
    same forward and gradients as the default rule, and the shared hand-written
    backward agrees with its jax.grad (float32 tolerance)."""
    x = jax.random.normal(jax.random.key(0), (2, 5, 8), jnp.float32)
    mask = jnp.asarray(np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool))
    mask = mask[:, None, None, :]
    base = jaxnet.MultiHeadAttention(2, causal=causal)
    fast = jaxnet.MultiHeadAttention(2, causal=causal, implementation="xla")
    assert fast.desc.endswith("implementation='xla')")
    _, params = base.init(jax.random.key(1), (None, 5, 8))
    g = jax.random.normal(jax.random.key(2), (2, 5, 8), jnp.float32)

    def loss(layer):
        return lambda p, x: jnp.sum(g * layer.apply(p, x, mask=mask))

    assert_leaves_close(
        fast.apply(params, x, mask=mask), base.apply(params, x, mask=mask), F32
    )
    want = jax.grad(loss(base), argnums=(0, 1))(params, x)
    got = jax.grad(loss(fast), argnums=(0, 1))(params, x)
    y = fast.apply(params, x, mask=mask)
    hand = fast.backward(params, x, y, g, mask=mask)
    for a, b, c in zip(*(jax.tree.leaves(t) for t in (got, want, hand))):
        assert_leaves_close(a, b, F32)
        assert_leaves_close(c, a, F32)


def test_transformer_block_passes_the_attention_implementation():
    block = jaxnet.TransformerBlock(2, 8, attention_implementation="xla")
    plain = jaxnet.TransformerBlock(2, 8)
    x = jax.random.normal(jax.random.key(0), (2, 4, 8), jnp.float32)
    _, params = plain.init(jax.random.key(1), (None, 4, 8))
    assert "MultiHeadAttention(num_heads=2, causal=False, implementation='xla')" in (
        block.desc
    )
    assert_leaves_close(block.apply(params, x), plain.apply(params, x), F32)


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="cuDNN may be present")
def test_cudnn_implementation_off_gpu_names_the_layer_and_the_fix():
    layer = jaxnet.MultiHeadAttention(2, implementation="cudnn")
    _, params = layer.init(jax.random.key(0), (None, 4, 8))
    with pytest.raises(RuntimeError) as info:
        layer.apply(params, jnp.zeros((1, 4, 8), jnp.float32))
    msg = str(info.value)
    assert msg.startswith("MultiHeadAttention(num_heads=2, causal=False, ")
    assert "NVIDIA GPU" in msg and "float32 on cpu" in msg
    assert "implementation=None" in msg


def test_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match=r"implementation='flash'.*one of.*cudnn"):
        jaxnet.MultiHeadAttention(2, implementation="flash")
