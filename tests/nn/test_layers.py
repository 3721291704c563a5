"""The layer battery: every case of ``jaxnet.testing.LAYER_CASES`` through one set of
checks (declared vs ``eval_shape`` shape, init from an example, dtype preservation,
jit == eager, vmap, parameter names, hashability, no retrace), plus shape errors and
the combinators' naming and key-splitting contract.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    assert_apply_error,
    assert_init_error,
    assert_trees_close,
    rendered,
)

import jaxnet
from jaxnet.testing import LAYER_CASES, LayerCase, tolerance

DTYPES = [jnp.float32, jnp.float64]
NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# Layers whose output (and, for parallel, input) is a tuple: the registry has none at
# the top level, so the battery adds them here to cover tuple shapes end to end.
TUPLE_CASES: tuple[LayerCase, ...] = (
    LayerCase("tuple:FanOut(2)", lambda dt: jaxnet.FanOut(2), (None, 3)),
    LayerCase(
        "tuple:parallel(Dense, Tanh)",
        lambda dt: jaxnet.parallel(jaxnet.Dense(2, dtype=dt), jaxnet.Tanh()),
        ((None, 4), (None, 5)),
    ),
    LayerCase(
        "tuple:serial(FanOut, parallel)",
        lambda dt: jaxnet.serial(
            jaxnet.FanOut(2),
            jaxnet.parallel(jaxnet.Dense(3, dtype=dt), jaxnet.Dense(5, dtype=dt)),
        ),
        (None, 4),
    ),
)
BATTERY = LAYER_CASES + TUPLE_CASES


def _ids(case: LayerCase) -> str:
    return case.id


def _is_shape(s: Any) -> bool:
    return isinstance(s, tuple) and all(d is None or isinstance(d, int) for d in s)


def _fill(shape: Any, batch: int) -> Any:
    """A declared shape (tree) with every free axis set to ``batch``."""
    if _is_shape(shape):
        return tuple(batch if d is None else d for d in shape)
    return tuple(_fill(s, batch) for s in shape)


def _shapes(tree: Any) -> Any:
    """The shapes of an output (array or tuple of arrays / ShapeDtypeStructs)."""
    if isinstance(tree, (tuple, list)):
        return tuple(_shapes(t) for t in tree)
    return tuple(tree.shape)


def _build(case: LayerCase, dtype: Any, seed: int = 0):
    layer = case.make(dtype)
    k_init, k_x = jax.random.split(jax.random.key(seed))
    out_shape, params = layer.init(k_init, case.input_shape)
    x = case.inputs(k_x, dtype)
    return layer, out_shape, params, x


def _param_shapes(params: Any) -> Any:
    return jax.tree.map(lambda a: tuple(a.shape), params)


def _dict_paths(tree: Any, prefix: tuple[str, ...] = ()):
    """Every (path, value) in a nested dict, sub-dicts (even empty ones) included."""
    assert isinstance(tree, dict), f"params at {'/'.join(prefix)} is {type(tree)}"
    for k, v in tree.items():
        yield prefix + (k,), v
        if isinstance(v, dict):
            yield from _dict_paths(v, prefix + (k,))


# ----------------------------------------------------------------------- the battery


def _abstract(case: LayerCase, dtype: Any) -> Any:
    """The case's input as ``jax.ShapeDtypeStruct``s (nothing is drawn or compiled).

    The dtype is the drawer's (traced, not run): float ``dtype`` for most cases,
    integer for token ids.
    """
    return jax.eval_shape(lambda k: case.inputs(k, dtype), jax.random.key(0))


def _init_abstract(layer: jaxnet.Layer, key: jax.Array, shape_or_x: Any):
    """``layer.init`` traced, not run: (declared out shape, params as structs)."""
    declared = []

    def run(k):
        out_shape, params = layer.init(k, shape_or_x)
        declared.append(out_shape)
        return params

    params = jax.eval_shape(run, key)
    return declared[0], params


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("case", BATTERY, ids=_ids)
def test_declared_shape_matches_eval_shape(case, dtype):
    layer = case.make(dtype)
    out_shape, params = _init_abstract(layer, jax.random.key(0), case.input_shape)
    opts = case.options_for(layer)
    x = _abstract(case, dtype)

    def primary(p, x):  # a stateful layer returns (y, new_state): compare y
        y = layer.apply(p, x, **opts)
        return y[0] if layer.stateful else y

    traced = jax.eval_shape(primary, params, x)
    assert _fill(out_shape, case.batch) == _shapes(traced)
    # The declared shape keeps the free batch axis free (None), not a probe size.
    first = jax.tree.leaves(out_shape, is_leaf=_is_shape)[0]  # tuples may nest
    assert first[0] is None
    # A second batch size gives the same declared shape with that size filled in.
    wide = dataclasses.replace(case, batch=case.batch + 4)
    traced = jax.eval_shape(primary, params, _abstract(wide, dtype))
    assert _fill(out_shape, wide.batch) == _shapes(traced)


@pytest.mark.parametrize("case", BATTERY, ids=_ids)
def test_init_from_example_input(case):
    layer, out_a, params_a, x = _build(case, jnp.float32)
    key = jax.random.split(jax.random.key(0))[0]  # the key _build initialised with
    out_b, params_b = layer.init(key, x)
    assert _param_shapes(params_b) == _param_shapes(params_a)
    assert out_b == _fill(out_a, case.batch)
    # Same key: the very same values, whichever way the shape was given.
    for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b)):
        np.testing.assert_array_equal(a, b)
    # -1 is accepted as a free axis too, and a ShapeDtypeStruct as an example.
    minus = jax.tree.map(
        lambda d: -1 if d is None else d, case.input_shape, is_leaf=lambda d: d is None
    )
    out_c, params_c = _init_abstract(layer, key, minus)
    assert out_c == out_a
    assert _param_shapes(params_c) == _param_shapes(params_a)
    out_d, params_d = _init_abstract(layer, key, _abstract(case, jnp.float32))
    assert out_d == out_b
    assert _param_shapes(params_d) == _param_shapes(params_a)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("case", BATTERY, ids=_ids)
def test_dtype_preserved(case, dtype):
    layer, _, params, x = _build(case, dtype)
    for leaf in jax.tree.leaves(params):
        assert leaf.dtype == dtype
    for leaf in jax.tree.leaves(x):  # integer token ids keep their own dtype
        assert leaf.dtype == dtype or jnp.issubdtype(leaf.dtype, jnp.integer)
    y = layer.apply(params, x, **case.options_for(layer))
    leaves = jax.tree.leaves(y)
    assert leaves
    for leaf in leaves:
        assert leaf.dtype == dtype
        assert np.all(np.isfinite(np.asarray(leaf)))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("case", BATTERY, ids=_ids)
def test_jit_equals_eager(case, dtype):
    layer, _, params, x = _build(case, dtype)
    opts = case.options_for(layer)
    eager = layer.apply(params, x, **opts)
    jitted = jax.jit(lambda p, x: layer.apply(p, x, **opts))(params, x)
    assert_trees_close(jitted, eager, tolerance(dtype, "analytic"))


@pytest.mark.parametrize("case", BATTERY, ids=_ids)
def test_vmap_equals_per_slice(case):
    dtype = jnp.float64
    layer, _, params, _ = _build(case, dtype)
    opts = case.options_for(layer)
    keys = jax.random.split(jax.random.key(11), 3)
    slices = [case.inputs(k, dtype) for k in keys]
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *slices)
    batched = jax.jit(jax.vmap(lambda x: layer.apply(params, x, **opts)))(stacked)
    for i, xi in enumerate(slices):
        one = layer.apply(params, xi, **opts)
        assert_trees_close(
            jax.tree.map(lambda b, i=i: b[i], batched),
            one,
            tolerance(dtype, "analytic"),
        )


@pytest.mark.parametrize("case", BATTERY, ids=_ids)
def test_param_names_readable_and_leaves_are_arrays(case):
    _, _, params, _ = _build(case, jnp.float32)
    for path, value in _dict_paths(params):
        for segment in path:
            assert NAME.match(segment), f"unreadable param key {'/'.join(path)!r}"
        # Only dicts and arrays: no Python ints, None, tuples or initialisers.
        assert isinstance(value, (dict, jax.Array)), (path, type(value))
    # The flattened leaves are exactly the arrays (None would be silently dropped by
    # jax.tree.leaves, so count the arrays found by the walk).
    arrays = [v for _, v in _dict_paths(params) if not isinstance(v, dict)]
    assert len(arrays) == len(jax.tree.leaves(params))


# The exact parameter trees (shapes by path) of the registry cases.
EXPECTED_PARAMS: dict[str, Any] = {
    "Dense": {"w": (4, 5), "b": (5,)},
    "Dense(use_bias=False)": {"w": (4, 3)},
    "serial(MLP)": {
        "dense_0": {"w": (4, 6), "b": (6,)},
        "tanh_1": {},
        "head": {"w": (6, 3), "b": (3,)},
        "log_softmax_3": {},
    },
    "FanOut/parallel/FanInConcat": {
        "fan_out_0": {},
        "parallel_1": {
            "dense_0": {"w": (3, 4), "b": (4,)},
            "identity_1": {},
            "sigmoid_2": {},
        },
        "fan_in_concat_2": {},
        "dense_3": {"w": (4 + 3 + 3, 2), "b": (2,)},
    },
    "FanInSum": {
        "fan_out_0": {},
        "parallel_1": {"dense_0": {"w": (4, 4), "b": (4,)}, "tanh_1": {}},
        "fan_in_sum_2": {},
    },
    # A residual's parameters are its branch's (no extra nesting).
    "residual": {"dense_0": {"w": (4, 4), "b": (4,)}, "tanh_1": {}},
}
PARAM_FREE = [
    "Relu",
    "Sigmoid",
    "Tanh",
    "Gelu(exact)",
    "Gelu(tanh)",
    "Silu",
    "Softplus",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Softmax",
    "LogSoftmax",
    "Flatten",
    "Reshape",
    "Dropout",
    "Lambda(square)",
    "Identity",
]
_BY_ID = {c.id: c for c in LAYER_CASES}


def _expected_tree(case):
    """A family case pins its tree in the registry; the core ones are pinned above."""
    if case.param_shapes is not None:
        return case.param_shapes
    return EXPECTED_PARAMS.get(case.id, {} if case.id in PARAM_FREE else None)


@pytest.mark.parametrize("case_id", [*EXPECTED_PARAMS, *PARAM_FREE], ids=lambda s: s)
def test_core_cases_still_registered(case_id):
    assert case_id in _BY_ID, f"registry case {case_id!r} disappeared"


@pytest.mark.parametrize("case", LAYER_CASES, ids=_ids)
def test_exact_param_tree(case):
    expected = _expected_tree(case)
    # Every registry layer has its exact tree pinned; a new case must add one.
    assert expected is not None, f"pin the parameter tree of {case.id!r}"
    _, _, params, _ = _build(case, jnp.float32)
    assert _param_shapes(params) == expected


@pytest.mark.parametrize("case", BATTERY, ids=_ids)
def test_layer_hashable_and_frozen(case):
    layer, _, params, x = _build(case, jnp.float32)
    opts = case.options_for(layer)
    assert hash(layer) == hash(layer)
    assert {layer: 1}[layer] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.name = "renamed"  # type: ignore[misc]
    assert repr(layer) == layer.desc and layer.desc
    # No arrays live in the layer record itself.
    for field in dataclasses.fields(layer):
        assert not isinstance(getattr(layer, field.name), jax.Array)
    # The shorthand call is the same as apply.
    assert_trees_close(
        layer(params, x, **opts),
        layer.apply(params, x, **opts),
        tolerance(jnp.float32, "analytic"),
    )


@pytest.mark.parametrize("case", BATTERY, ids=_ids)
def test_static_layer_no_retrace_on_second_call(case):
    layer, _, params, x1 = _build(case, jnp.float32)
    x2 = case.inputs(jax.random.key(99), jnp.float32)
    opts = case.options_for(layer)
    traces = []

    def run(lay, p, x):
        traces.append(jax.tree.map(jnp.shape, x))
        return lay.apply(p, x, **opts)

    # The layer is a static (hashed) argument, params and x are traced.
    f = jax.jit(run, static_argnums=0)
    assert_trees_close(
        f(layer, params, x1),
        layer.apply(params, x1, **opts),
        tolerance(jnp.float32, "analytic"),
    )
    y2 = f(layer, params, x2)
    assert len(traces) == 1
    # The second call really ran on the new values (not a stale result).
    assert_trees_close(
        y2, layer.apply(params, x2, **opts), tolerance(jnp.float32, "analytic")
    )
    # A new batch size is a new shape: exactly one more trace, then none.
    wide = jax.tree.map(
        lambda a, b: np.concatenate([np.asarray(a), np.asarray(b)[:2]]), x1, x2
    )
    f(layer, params, wide)
    f(layer, params, jax.tree.map(lambda a: a[::-1], wide))
    assert len(traces) == 2
    assert traces[1] != traces[0]


# -------------------------------------------------------------------- shape errors


def _z(*shape: int) -> np.ndarray:
    # NumPy, not jax: the tables below are built at import, outside the x64 fixture.
    return np.zeros(shape, np.float64)


# (id, layer, init shape, bad input, fragments the rendered message must contain)
APPLY_SHAPE_ERRORS = [
    (
        "Dense",
        lambda: jaxnet.Dense(5),
        (None, 4),
        _z(3, 7),
        [
            "Dense(out_dim=5)",
            "expected input of shape (..., 4)",
            "got (3, 7)",
            "in_dim=4",
        ],
    ),
    (
        "Reshape",
        lambda: jaxnet.Reshape((2, 3)),
        (None, 6),
        _z(3, 7),
        ["Reshape(shape=(2, 3))", "expected 6 elements per example, got 7"],
    ),
    (
        "Reshape(-1)",
        lambda: jaxnet.Reshape((4, -1)),
        (None, 8),
        _z(3, 6),
        [
            "Reshape(shape=(4, -1))",
            "cannot reshape 6 elements per example into (4, -1)",
        ],
    ),
    (
        "Flatten",
        lambda: jaxnet.Flatten(),
        (None, 2, 3),
        _z(),
        ["Flatten()", "expected input of rank >= 1, got a scalar"],
    ),
    (
        "serial",
        lambda: jaxnet.serial(jaxnet.Dense(5), jaxnet.Tanh()),
        (None, 4),
        _z(3, 7),
        ["Dense(out_dim=5)", "(..., 4)", "(3, 7)", "(in serial layer 'dense_0')"],
    ),
    (
        "serial(named second layer)",
        lambda: jaxnet.serial(jaxnet.Tanh(), ("proj", jaxnet.Dense(5))),
        (None, 4),
        _z(3, 2),
        ["Dense(out_dim=5)", "(..., 4)", "(3, 2)", "(in serial layer 'proj')"],
    ),
    (
        "parallel(count)",
        lambda: jaxnet.parallel(jaxnet.Dense(2), jaxnet.Dense(3)),
        ((None, 4), (None, 5)),
        (_z(3, 4), _z(3, 5), _z(3, 5)),
        [
            "parallel(Dense(out_dim=2), Dense(out_dim=3))",
            "expected a tuple of 2 inputs, got tuple of length 3",
        ],
    ),
    (
        "parallel(branch)",
        lambda: jaxnet.parallel(jaxnet.Dense(2), jaxnet.Dense(3)),
        ((None, 4), (None, 5)),
        (_z(3, 4), _z(3, 6)),
        ["Dense(out_dim=3)", "(..., 5)", "(3, 6)", "(in parallel layer 'dense_1')"],
    ),
    (
        "FanInSum",
        lambda: jaxnet.FanInSum(),
        ((None, 3), (None, 3)),
        (_z(2, 3), _z(2, 4)),
        ["FanInSum()", "all inputs must have the same shape", "(2, 3), (2, 4)"],
    ),
    (
        "FanInConcat",
        lambda: jaxnet.FanInConcat(),
        ((None, 3), (None, 5)),
        (_z(2, 3), _z(4, 5)),
        [
            "FanInConcat(axis=-1)",
            "inputs must agree on every axis but -1",
            "(2, 3), (4, 5)",
        ],
    ),
    (
        "residual",
        lambda: jaxnet.residual(jaxnet.Dense(4), jaxnet.Tanh()),
        (None, 4),
        _z(3, 5),
        [
            "Dense(out_dim=4)",
            "(..., 4)",
            "(3, 5)",
            "(in serial layer 'dense_0')",
            "(in residual layer 'serial')",
        ],
    ),
]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize(
    "make, init_shape, bad, fragments",
    [e[1:] for e in APPLY_SHAPE_ERRORS],
    ids=[e[0] for e in APPLY_SHAPE_ERRORS],
)
def test_apply_shape_error_message(make, init_shape, bad, fragments, jit):
    absent = ("dot_general", "Incompatible shapes")
    assert_apply_error(make, init_shape, bad, fragments, jit=jit, absent=absent)


INIT_SHAPE_ERRORS = [
    (
        "Dense(free last axis)",
        lambda: jaxnet.Dense(5),
        (None, None),
        ["Dense(out_dim=5)", "last axis of the input must be known", "(None, None)"],
    ),
    (
        "Dense(tuple of shapes)",
        lambda: jaxnet.Dense(5),
        ((None, 3), (None, 3)),
        ["Dense(out_dim=5)", "expected a single input shape", "parallel(...)"],
    ),
    (
        "Flatten(free inner axis)",
        lambda: jaxnet.Flatten(),
        (None, None, 3),
        ["Flatten()", "only the first (batch) axis may be free", "(None, None, 3)"],
    ),
    (
        "Reshape",
        lambda: jaxnet.Reshape((2, 3)),
        (None, 7),
        ["Reshape(shape=(2, 3))", "expected 6 elements per example, got 7"],
    ),
    (
        "serial(nested)",
        lambda: jaxnet.serial(
            jaxnet.Relu(), ("block", jaxnet.serial(jaxnet.Dense(2), jaxnet.Flatten()))
        ),
        (None, None),
        [
            "Dense(out_dim=2)",
            "(None, None)",
            "(in serial layer 'dense_0')\n(in serial layer 'block')",
        ],
    ),
    (
        "parallel(count)",
        lambda: jaxnet.parallel(jaxnet.Dense(2), jaxnet.Dense(3)),
        (None, 4),
        ["parallel(Dense(out_dim=2), Dense(out_dim=3))", "tuple of 2 input shapes"],
    ),
    (
        "FanInSum(single input)",
        lambda: jaxnet.FanInSum(),
        (None, 3),
        ["FanInSum()", "expected a tuple of input shapes", "FanOut(n)"],
    ),
    (
        "FanInConcat(mismatch)",
        lambda: jaxnet.FanInConcat(),
        ((None, 3), (None, 2, 5)),
        ["FanInConcat(axis=-1)", "(None, 3), (None, 2, 5)"],
    ),
    (
        "residual(width change)",
        lambda: jaxnet.residual(jaxnet.Dense(3)),
        (None, 4),
        [
            "residual(Dense(out_dim=3))",
            "the branch maps (None, 4) to (None, 3)",
            "x + f(x) needs equal shapes",
        ],
    ),
    (
        "negative size",
        lambda: jaxnet.Dense(5),
        (None, -3),
        ["invalid shape (None, -3)", "sizes must be >= 0"],
    ),
]


@pytest.mark.parametrize(
    "make, init_shape, fragments",
    [e[1:] for e in INIT_SHAPE_ERRORS],
    ids=[e[0] for e in INIT_SHAPE_ERRORS],
)
def test_init_shape_error_message(make, init_shape, fragments):
    assert_init_error(make, init_shape, fragments)


def test_shape_error_is_a_value_error_with_design_doc_message():
    layer = jaxnet.serial(jaxnet.Dense(16))
    _, params = layer.init(jax.random.key(0), (None, 3))
    with pytest.raises(ValueError) as info:
        layer.apply(params, _z(8, 4))
    assert isinstance(info.value, jaxnet.ShapeError)
    assert rendered(info.value) == (
        "Dense(out_dim=16): expected input of shape (..., 3), got (8, 4). "
        "The layer was initialised for in_dim=3.\n(in serial layer 'dense_0')"
    )


def test_dense_rejects_integer_input():
    layer = jaxnet.Dense(2)
    _, params = layer.init(jax.random.key(0), (None, 3))
    with pytest.raises(jaxnet.DTypeError, match=r"Dense\(out_dim=2\).*int32.*\(2, 3\)"):
        layer.apply(params, jnp.zeros((2, 3), jnp.int32))


def test_params_mismatch_names_missing_and_extra():
    model = jaxnet.serial(jaxnet.Dense(2), jaxnet.Relu())
    _, params = model.init(jax.random.key(0), (None, 3))
    bad = {"dense_0": params["dense_0"], "relu_9": {}}
    with pytest.raises(jaxnet.ParamsError) as info:
        model.apply(bad, _z(1, 3))
    message = str(info.value)
    assert "missing ['relu_1']" in message and "unexpected ['relu_9']" in message


# --------------------------------------------------------------------- combinators


def test_duplicate_names_error():
    with pytest.raises(ValueError) as info:
        jaxnet.serial(("a", jaxnet.Dense(2)), jaxnet.Relu(), ("a", jaxnet.Tanh()))
    assert str(info.value) == (
        "serial: duplicate layer name 'a' at positions 0 and 2; parameter names must "
        "be unique. Rename one of them."
    )
    # A user name may collide with a generated one.
    with pytest.raises(ValueError, match="duplicate layer name 'dense_0' at positions"):
        jaxnet.parallel(jaxnet.Dense(2), ("dense_0", jaxnet.Dense(3)))


@pytest.mark.parametrize(
    "spec, message",
    [
        (("", "relu"), "must be a non-empty string without '/'"),
        (("a/b", "relu"), "must be a non-empty string without '/'"),
        ((), "expected at least one layer"),
    ],
    ids=["empty", "slash", "no layers"],
)
def test_bad_names_rejected(spec, message):
    layers = [(spec[0], jaxnet.Relu())] if spec else []
    with pytest.raises(ValueError, match=re.escape(message)):
        jaxnet.serial(*layers)


def test_uncalled_constructor_rejected_with_hint():
    with pytest.raises(TypeError, match=r"write jaxnet.Relu\(\), not jaxnet.Relu"):
        jaxnet.serial(jaxnet.Dense(2), jaxnet.Relu)


def test_user_given_names():
    model = jaxnet.serial(
        ("hidden", jaxnet.Dense(8)),
        jaxnet.Relu(),
        ("branches", jaxnet.FanOut(2)),
        jaxnet.parallel(("left", jaxnet.Dense(3)), jaxnet.Dense(5)),
        jaxnet.FanInConcat(),
        ("out", jaxnet.Dense(2)),
    )
    out_shape, params = _init_abstract(model, jax.random.key(0), (None, 4))
    assert out_shape == (None, 2)
    assert _param_shapes(params) == {
        "hidden": {"w": (4, 8), "b": (8,)},
        "relu_1": {},
        "branches": {},
        "parallel_3": {
            "left": {"w": (8, 3), "b": (3,)},
            "dense_1": {"w": (8, 5), "b": (5,)},
        },
        "fan_in_concat_4": {},
        "out": {"w": (8, 2), "b": (2,)},
    }
    # The names are the keys apply reads.
    x = jax.ShapeDtypeStruct((7, 4), jnp.float32)
    assert jax.eval_shape(model.apply, params, x).shape == (7, 2)
    renamed = {("output" if k == "out" else k): v for k, v in params.items()}
    with pytest.raises(
        jaxnet.ParamsError, match=r"missing \['out'\], unexpected \['output'\]"
    ):
        jax.eval_shape(model.apply, renamed, x)


def test_residual_is_x_plus_branch():
    block = jaxnet.residual(jaxnet.Dense(4, dtype=jnp.float64), jaxnet.Tanh())
    _, params = block.init(jax.random.key(0), (None, 4))
    x = jax.random.normal(jax.random.key(1), (3, 4), jnp.float64)
    w, b = params["dense_0"]["w"], params["dense_0"]["b"]
    expected = x + jnp.tanh(x @ w + b[None, :])
    assert_trees_close(
        block.apply(params, x), expected, tolerance(jnp.float64, "analytic")
    )


def test_residual_apply_shape_error():
    # A branch that changes the width is caught at apply time too (init would catch
    # it earlier; apply is called directly here with the branch's empty params).
    block = jaxnet.residual(jaxnet.Lambda(lambda x: x[..., :2], name="crop"))
    with pytest.raises(jaxnet.ShapeError) as info:
        block.apply({}, _z(3, 4))
    message = rendered(info.value)
    assert "residual(Lambda(fn=<lambda>))" in message
    assert "the branch maps (3, 4) to (3, 2)" in message


def _dropout_model():
    return jaxnet.serial(
        jaxnet.Dense(6, dtype=jnp.float64),
        jaxnet.Dropout(0.5),
        jaxnet.Dense(3, dtype=jnp.float64),
    )


def test_dropout_in_serial_key_splitting_is_deterministic():
    model = _dropout_model()
    _, params = model.init(jax.random.key(0), (None, 4))
    x = jax.random.normal(jax.random.key(1), (10, 4), jnp.float64)
    k1, k2 = jax.random.key(2), jax.random.key(3)
    a = model.apply(params, x, train=True, key=k1)
    b = model.apply(params, x, train=True, key=k1)
    c = model.apply(params, x, train=True, key=k2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # serial hands layer i the sub-key jax.random.split(key, n)[i]: rebuild the mask.
    sub = jax.random.split(k1, 3)[1]
    h = jaxnet.analytic.dense(params["dense_0"], x)
    mask = jaxnet.analytic.dropout_mask(sub, 0.5, h.shape)
    h = jnp.where(mask, h / 0.5, jnp.zeros_like(h))
    assert_trees_close(
        a,
        jaxnet.analytic.dense(params["dense_2"], h),
        tolerance(jnp.float64, "analytic"),
    )


def test_dropout_eval_is_identity():
    model = _dropout_model()
    _, params = model.init(jax.random.key(0), (None, 4))
    x = jax.random.normal(jax.random.key(1), (10, 4), jnp.float64)
    plain = jaxnet.analytic.dense(
        params["dense_2"], jaxnet.analytic.dense(params["dense_0"], x)
    )
    # train=False (the default) needs no key and ignores one.
    np.testing.assert_array_equal(model.apply(params, x), plain)
    np.testing.assert_array_equal(
        model.apply(params, x, train=False, key=jax.random.key(4)), plain
    )
    np.testing.assert_array_equal(jaxnet.Dropout(0.9).apply({}, x, train=False), x)


def test_dropout_rate_is_the_drop_probability():
    x = jnp.ones((100_000,), jnp.float64)
    y = jaxnet.Dropout(0.2).apply({}, x, train=True, key=jax.random.key(0))
    zeroed = float(np.mean(np.asarray(y) == 0))
    # Binomial(1e5, 0.2): standard deviation 0.0013, so 0.01 is > 7 sigma; keep-rate
    # semantics (stax) would give 0.8.
    assert abs(zeroed - 0.2) < 0.01
    # Survivors are scaled by 1 / (1 - 0.2), keeping the mean.
    kept = np.asarray(y)[np.asarray(y) != 0]
    np.testing.assert_allclose(kept, 1.25, rtol=tolerance(jnp.float64).rtol)


def test_missing_key_error_shows_the_right_call():
    model = _dropout_model()
    _, params = model.init(jax.random.key(0), (None, 4))
    with pytest.raises(jaxnet.MissingKeyError) as info:
        model.apply(params, _z(2, 4), train=True)
    message = rendered(info.value)
    assert "Dropout(drop_rate=0.5): training mode needs a PRNG key" in message
    assert "model.apply(params, x, train=True, key=jax.random.key(0))" in message
    assert "train=False" in message
    assert "(in serial layer 'dropout_1')" in message
