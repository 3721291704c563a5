"""A battery of bad inputs over every public layer and loss.

Each set-up is a public layer with a valid construction and input; the battery feeds
it the classes of bad input users hit (wrong rank, wrong last dimension, integer and
bool dtypes, a zero-size batch, a Python list, ``None``, invalid constructor arguments)
and requires either the documented behaviour or a jaxnet error whose message names the
layer and shows the expected and the actual value. Never a raw JAX/Python error
(``logistic does not accept dtype int32``, ``axis out of bounds``,
``ZeroDivisionError``, ``'NoneType' object is not iterable``), never a silent nan.

The rules the battery enforces (one rule each, for every layer):

* **int/bool input.** A layer that computes on its input (activations, ``Dense``, conv
  and pooling, norms, attention, recurrent cells, ``Dropout``, ``FanInSum``) refuses
  integer and bool input with a :class:`jaxnet.DTypeError` that says to cast
  (``x.astype(jnp.float32)``): gradients of integers are meaningless, and ``Relu`` is
  no exception. Layers that only move data (``Flatten``, ``Reshape``, ``Identity``,
  ``FanOut``, ``FanInConcat``) accept any dtype; ``Embedding`` wants integer ids.
* **A Python list** (nested, of numbers) is converted with ``jnp.asarray``, as NumPy and
  stax do: the result equals that of the array. For a layer taking a tuple of inputs, a
  list of arrays is that tuple.
* **A zero-size batch** works: the output has batch size 0 and init's output shape.
* **strides=None** in ``Conv``/``ConvTranspose`` means all ones (as Flax and stax).
* **Constructor arguments** are checked at construction: a ``ValueError`` (a
  ``TypeError`` where a layer argument is not a layer) naming the constructor, the
  constraint, and the actual value (in the constructor call the message starts with,
  or after "got").
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import rendered

import jaxnet
from jaxnet import losses
from jaxnet._errors import JAXNET_ERRORS

KEY = jax.random.key(0)
RAW = (
    "dot_general",
    "XlaRuntimeError",
    "Incompatible shapes",
    "does not accept dtype",
    "out of bounds",
    "'NoneType' object",
    "division by zero",
    "Traced",
)
B = 2  # the batch size of the valid inputs


@dataclasses.dataclass(frozen=True)
class Setup:
    """A public layer, valid: ``make()`` and an input of shape ``shape``.

    ``kind``: "float" (refuses int/bool), "any" (dtype-agnostic), "ids" (integer ids).
    ``bad_rank``: an input shape of a rank the layer refuses (None: any rank is fine).
    ``last``: the input's last axis is tied to the params (a wider one is refused).
    ``names``: the constructor names an error may be attributed to (default: the
    layer's own, from its ``desc``).
    ``bad_args``: ``(shown, call)``: a constructor call with an invalid argument, and
    the text (the bad value as the message shows it) its error must contain.
    """

    id: str
    make: Callable[[], Any]
    shape: Any
    kind: str = "float"
    bad_rank: Any = None
    last: bool = False
    names: tuple[str, ...] = ()
    options: dict = dataclasses.field(default_factory=dict)
    bad_args: tuple[tuple[str, Callable[[], Any]], ...] = ()


def _mlp():
    return jaxnet.serial(jaxnet.Dense(3), jaxnet.Tanh(), jaxnet.Dense(2))


def _branches():
    return jaxnet.serial(
        jaxnet.FanOut(2),
        jaxnet.parallel(jaxnet.Dense(3), jaxnet.Sigmoid()),
        jaxnet.FanInConcat(),
    )


def _act(name, make, bad_args=(), bad_rank=None):
    return Setup(name, make, (B, 4), bad_rank=bad_rank, bad_args=bad_args)


SETUPS: tuple[Setup, ...] = (
    Setup(
        "Dense",
        lambda: jaxnet.Dense(3),
        (B, 4),
        bad_rank=(),
        last=True,
        bad_args=(
            ("out_dim=0", lambda: jaxnet.Dense(0)),
            ("out_dim=2.5", lambda: jaxnet.Dense(2.5)),
            ("out_dim=None", lambda: jaxnet.Dense(None)),
        ),
    ),
    _act("Relu", jaxnet.Relu),
    _act("Sigmoid", jaxnet.Sigmoid),
    _act("Tanh", jaxnet.Tanh),
    _act("Gelu", jaxnet.Gelu),
    _act("Silu", jaxnet.Silu),
    _act("Softplus", jaxnet.Softplus),
    _act("Selu", jaxnet.Selu),
    _act("LeakyRelu", jaxnet.LeakyRelu, (("'0.1'", lambda: jaxnet.LeakyRelu("0.1")),)),
    _act("Elu", jaxnet.Elu, (("alpha=None", lambda: jaxnet.Elu(None)),)),
    _act(
        "Softmax",
        jaxnet.Softmax,
        (
            ("axis=1.5", lambda: jaxnet.Softmax(axis=1.5)),
            ("axis=None", lambda: jaxnet.Softmax(axis=None)),
        ),
        bad_rank=(),
    ),
    _act(
        "LogSoftmax",
        jaxnet.LogSoftmax,
        (("axis='x'", lambda: jaxnet.LogSoftmax(axis="x")),),
        bad_rank=(),
    ),
    Setup(
        "Softmax(axis=5)",
        lambda: jaxnet.Softmax(axis=5),
        (B, 4, 3, 2, 2, 2),
        bad_rank=(B, 4),
    ),
    Setup("Flatten", jaxnet.Flatten, (B, 3, 4), kind="any", bad_rank=()),
    Setup(
        "Reshape",
        lambda: jaxnet.Reshape((3, -1)),
        (B, 6),
        kind="any",
        bad_rank=(),
        bad_args=(
            ("None", lambda: jaxnet.Reshape(None)),
            ("(-1, -1)", lambda: jaxnet.Reshape((-1, -1))),
            ("(2, -3)", lambda: jaxnet.Reshape((2, -3))),
            ("(0, -1)", lambda: jaxnet.Reshape((0, -1))),
        ),
    ),
    Setup(
        "Dropout(train)",
        lambda: jaxnet.Dropout(0.5),
        (B, 4),
        options={"train": True, "key": jax.random.key(1)},
        bad_args=(
            ("drop_rate=1.0", lambda: jaxnet.Dropout(1.0)),
            ("drop_rate=None", lambda: jaxnet.Dropout(None)),
        ),
    ),
    Setup("Identity", jaxnet.Identity, (B, 4), kind="any"),
    Setup(
        "serial",
        _mlp,
        (B, 4),
        bad_rank=(),
        last=True,
        names=("serial(", "Dense("),
        bad_args=(
            ("got none", lambda: jaxnet.serial()),
            ("function Dense", lambda: jaxnet.serial(jaxnet.Dense)),
        ),
    ),
    Setup(
        "FanOut/parallel/FanInConcat",
        _branches,
        (B, 4),
        bad_rank=(),
        last=True,
        names=("serial(", "parallel(", "Dense(", "Sigmoid(", "FanInConcat("),
        bad_args=(
            ("num=0", lambda: jaxnet.FanOut(0)),
            ("got none", lambda: jaxnet.parallel()),
        ),
    ),
    Setup(
        "FanInConcat",
        jaxnet.FanInConcat,
        ((B, 3), (B, 2)),
        kind="any",
        bad_args=(("axis=1.0", lambda: jaxnet.FanInConcat(axis=1.0)),),
    ),
    Setup(
        "FanInConcat(axis=5)",
        lambda: jaxnet.FanInConcat(axis=5),
        ((B, 1, 1, 1, 2, 3), (B, 1, 1, 1, 2, 2)),
        kind="any",
    ),
    Setup("FanInSum", jaxnet.FanInSum, ((B, 3), (B, 3))),
    Setup(
        "residual",
        lambda: jaxnet.residual(jaxnet.Dense(4), jaxnet.Tanh()),
        (B, 4),
        bad_rank=(),
        last=True,
        names=("residual(", "serial(", "Dense("),
        bad_args=(("got none", lambda: jaxnet.residual()),),
    ),
    Setup(
        "BatchNorm(train)",
        jaxnet.BatchNorm,
        (B, 4),
        bad_rank=(4,),
        last=True,
        options={"train": True},
        bad_args=(
            ("epsilon=-1.0", lambda: jaxnet.BatchNorm(epsilon=-1.0)),
            ("momentum=1.5", lambda: jaxnet.BatchNorm(momentum=1.5)),
            ("momentum=None", lambda: jaxnet.BatchNorm(momentum=None)),
        ),
    ),
    Setup("BatchNorm(eval)", jaxnet.BatchNorm, (B, 4), bad_rank=(4,), last=True),
    Setup(
        "LayerNorm",
        jaxnet.LayerNorm,
        (B, 4),
        bad_rank=(),
        last=True,
        bad_args=(("epsilon=-1.0", lambda: jaxnet.LayerNorm(epsilon=-1.0)),),
    ),
    Setup(
        "RMSNorm",
        jaxnet.RMSNorm,
        (B, 4),
        bad_rank=(),
        last=True,
        bad_args=(("epsilon=-1.0", lambda: jaxnet.RMSNorm(epsilon=-1.0)),),
    ),
    Setup(
        "GroupNorm",
        lambda: jaxnet.GroupNorm(2),
        (B, 3, 4),
        bad_rank=(),
        last=True,
        bad_args=(
            ("num_groups=0", lambda: jaxnet.GroupNorm(0)),
            ("epsilon=-1.0", lambda: jaxnet.GroupNorm(2, epsilon=-1.0)),
            ("num_groups=None", lambda: jaxnet.GroupNorm(None, group_size=None)),
        ),
    ),
    Setup(
        "Conv",
        lambda: jaxnet.Conv(3, (3, 3)),
        (B, 5, 5, 2),
        bad_rank=(B, 5, 2),
        last=True,
        bad_args=(
            ("out_channels=0", lambda: jaxnet.Conv(0, 3)),
            ("kernel_size=(0,)", lambda: jaxnet.Conv(3, 0)),
            ("strides", lambda: jaxnet.Conv(3, (3, 3), strides=0)),
            ("(1, 1, 1)", lambda: jaxnet.Conv(3, (3, 3), strides=(1, 1, 1))),
            ("dilation", lambda: jaxnet.Conv(3, (3, 3), dilation=0)),
            ("groups=0", lambda: jaxnet.Conv(3, (3, 3), groups=0)),
            ("'FULL'", lambda: jaxnet.Conv(3, (3, 3), padding="FULL")),
        ),
    ),
    Setup(
        "Conv(strides=None)",
        lambda: jaxnet.Conv(3, (3, 3), strides=None),
        (B, 5, 5, 2),
        bad_rank=(B, 5, 2),
        last=True,
    ),
    Setup(
        "ConvTranspose",
        lambda: jaxnet.ConvTranspose(2, (3, 3), strides=2),
        (B, 3, 3, 2),
        bad_rank=(B, 3, 2),
        last=True,
        bad_args=(
            ("out_channels=0", lambda: jaxnet.ConvTranspose(0, 3)),
            ("strides", lambda: jaxnet.ConvTranspose(2, (3, 3), strides=0)),
        ),
    ),
    Setup(
        "ConvTranspose(strides=None)",
        lambda: jaxnet.ConvTranspose(2, (3, 3), strides=None),
        (B, 3, 3, 2),
        bad_rank=(B, 3, 2),
        last=True,
    ),
    Setup(
        "MaxPool",
        lambda: jaxnet.MaxPool((2, 2)),
        (B, 4, 4, 2),
        bad_rank=(B, 4, 2),
        bad_args=(
            ("window=(0,)", lambda: jaxnet.MaxPool(0)),
            ("strides", lambda: jaxnet.MaxPool(2, strides=0)),
        ),
    ),
    Setup(
        "AvgPool",
        lambda: jaxnet.AvgPool((2, 2)),
        (B, 4, 4, 2),
        bad_rank=(B, 4, 2),
        bad_args=(("window=(0,)", lambda: jaxnet.AvgPool(0)),),
    ),
    Setup(
        "SumPool",
        lambda: jaxnet.SumPool(2),
        (B, 4, 2),
        bad_rank=(B, 4),
        bad_args=(("window=(-1,)", lambda: jaxnet.SumPool(-1)),),
    ),
    Setup("GlobalAvgPool", jaxnet.GlobalAvgPool, (B, 4, 4, 2), bad_rank=(B,)),
    Setup(
        "Embedding",
        lambda: jaxnet.Embedding(7, 4),
        (B, 3),
        kind="ids",
        bad_args=(
            ("num_embeddings=0", lambda: jaxnet.Embedding(0, 4)),
            ("features=-1", lambda: jaxnet.Embedding(7, -1)),
        ),
    ),
    Setup(
        "LearnedPositionalEmbedding",
        lambda: jaxnet.LearnedPositionalEmbedding(5),
        (B, 3, 4),
        bad_rank=(4,),
        last=True,
        bad_args=(("max_len=0", lambda: jaxnet.LearnedPositionalEmbedding(0)),),
    ),
    Setup(
        "SinusoidalPositionalEmbedding",
        jaxnet.SinusoidalPositionalEmbedding,
        (B, 3, 4),
        bad_rank=(4,),
        bad_args=(
            ("base=-1.0", lambda: jaxnet.SinusoidalPositionalEmbedding(base=-1.0)),
            ("base=1.0", lambda: jaxnet.SinusoidalPositionalEmbedding(base=1.0)),
        ),
    ),
    Setup(
        "RotaryEmbedding",
        jaxnet.RotaryEmbedding,
        (B, 3, 2, 4),
        bad_rank=(B, 3),
        bad_args=(("base=0.0", lambda: jaxnet.RotaryEmbedding(base=0.0)),),
    ),
    Setup(
        "MultiHeadAttention",
        lambda: jaxnet.MultiHeadAttention(2),
        (B, 3, 4),
        bad_rank=(B, 4),
        last=True,
        bad_args=(
            ("num_heads=0", lambda: jaxnet.MultiHeadAttention(0)),
            ("qkv_features=-4", lambda: jaxnet.MultiHeadAttention(2, qkv_features=-4)),
            ("qkv_features=5", lambda: jaxnet.MultiHeadAttention(2, qkv_features=5)),
            ("out_features=0", lambda: jaxnet.MultiHeadAttention(2, out_features=0)),
        ),
    ),
    Setup(
        "MultiHeadAttention(cross)",
        lambda: jaxnet.MultiHeadAttention(2, qkv_features=6, out_features=5),
        ((B, 3, 4), (B, 4, 6)),
        last=True,
    ),
    Setup(
        "TransformerBlock",
        lambda: jaxnet.TransformerBlock(2, 4, mlp_ratio=2),
        (B, 3, 4),
        bad_rank=(B, 4),
        last=True,
        names=("TransformerBlock(", "serial(", "residual(", "LayerNorm(", "Multi"),
        bad_args=(
            ("num_heads=0", lambda: jaxnet.TransformerBlock(0, 8)),
            ("num_heads=3", lambda: jaxnet.TransformerBlock(3, 8)),
            ("d_model=0", lambda: jaxnet.TransformerBlock(2, 0)),
            ("mlp_ratio=0", lambda: jaxnet.TransformerBlock(2, 8, mlp_ratio=0)),
            ("drop_rate=1.0", lambda: jaxnet.TransformerBlock(2, 8, drop_rate=1.0)),
        ),
    ),
    Setup(
        "RNN(LSTMCell)",
        lambda: jaxnet.RNN(jaxnet.LSTMCell(4)),
        (B, 3, 3),
        bad_rank=(B, 3),
        last=True,
        names=("RNN(", "LSTMCell("),
        bad_args=(
            ("hidden=0", lambda: jaxnet.LSTMCell(0)),
            ("Dense(out_dim=3)", lambda: jaxnet.RNN(jaxnet.Dense(3))),
        ),
    ),
    Setup(
        "RNN(GRUCell)",
        lambda: jaxnet.RNN(jaxnet.GRUCell(4)),
        (B, 3, 3),
        bad_rank=(B, 3),
        last=True,
        names=("RNN(", "GRUCell("),
        bad_args=(("hidden=-2", lambda: jaxnet.GRUCell(-2)),),
    ),
    Setup(
        "LSTMCell",
        lambda: jaxnet.LSTMCell(4),
        (((B, 4), (B, 4)), (B, 3)),
        last=True,
    ),
    Setup(
        "Bidirectional",
        lambda: jaxnet.Bidirectional(
            jaxnet.RNN(jaxnet.LSTMCell(4)), jaxnet.RNN(jaxnet.GRUCell(4))
        ),
        (B, 3, 3),
        bad_rank=(B, 3),
        last=True,
        names=("Bidirectional(", "RNN(", "LSTMCell(", "GRUCell("),
        bad_args=(
            (
                "got function",
                lambda: jaxnet.Bidirectional(jaxnet.RNN, jaxnet.RNN),
            ),
        ),
    ),
    Setup(
        "Stack",
        lambda: jaxnet.Stack(jaxnet.residual(jaxnet.Dense(4), jaxnet.Tanh()), 2),
        (B, 4),
        bad_rank=(),
        last=True,
        names=("Stack(", "residual(", "serial(", "Dense("),
        bad_args=(
            ("num=0", lambda: jaxnet.Stack(jaxnet.Dense(4), 0)),
            ("function Dense", lambda: jaxnet.Stack(jaxnet.Dense, 2)),
        ),
    ),
    Setup(
        "remat",
        lambda: jaxnet.remat(jaxnet.serial(jaxnet.Dense(3), jaxnet.Sigmoid())),
        (B, 4),
        bad_rank=(),
        last=True,
        names=("remat(", "serial(", "Dense("),
        bad_args=(
            (
                "'no_such_policy'",
                lambda: jaxnet.remat(jaxnet.Dense(3), "no_such_policy"),
            ),
        ),
    ),
    Setup(
        "hand_grad",
        lambda: jaxnet.hand_grad(jaxnet.Dense(3)),
        (B, 4),
        bad_rank=(),
        last=True,
        names=("hand_grad(", "Dense("),
    ),
)

_PUBLIC = re.compile(r"\b(" + "|".join(jaxnet.__all__) + r")[(:]")


def _names(setup: Setup, layer: Any) -> tuple[str, ...]:
    return setup.names or (layer.desc.split("(")[0] + "(",)


def _assert_message(text: str, names: tuple[str, ...]) -> None:
    assert not any(raw in text for raw in RAW), text
    assert any(n in text for n in names), f"names none of {names}: {text}"
    assert re.search(r"expect|must", text, re.I), f"no expected value: {text}"
    assert re.search(r"\bgot\b", text), f"no actual value: {text}"


def _jaxnet_error(fn: Callable[[], Any], names: tuple[str, ...]) -> BaseException:
    try:
        fn()
    except JAXNET_ERRORS as exc:
        _assert_message(rendered(exc), names)
        return exc
    except Exception as exc:  # noqa: BLE001 - a raw error is the failure reported
        pytest.fail(f"raw {type(exc).__name__} reached the user: {rendered(exc)}")
    pytest.fail("the bad input was accepted silently")


def _arrays(shape: Any, dtype: Any = jnp.float32, batch: int | None = None) -> Any:
    if isinstance(shape, tuple) and shape and isinstance(shape[0], tuple):
        return tuple(_arrays(s, dtype, batch) for s in shape)
    if batch is not None:
        shape = (batch,) + tuple(shape[1:])
    n = int(np.prod(shape))
    vals = (np.arange(n, dtype=np.float64) % 5 - 2.0) / 3.0
    return jnp.asarray(vals.reshape(shape), dtype)


def _ids(shape: Any, batch: int | None = None) -> Any:
    if batch is not None:
        shape = (batch,) + tuple(shape[1:])
    return jnp.asarray(np.arange(int(np.prod(shape))).reshape(shape) % 7, jnp.int32)


def _valid(setup: Setup, batch: int | None = None) -> Any:
    if setup.kind == "ids":
        return _ids(setup.shape, batch)
    return _arrays(setup.shape, batch=batch)


def _built(setup: Setup) -> tuple[Any, Any, Any]:
    layer = setup.make()
    _, params = layer.init(KEY, setup.shape)
    state = None
    if layer.stateful:
        _, state = layer.init_state(setup.shape)
    return layer, params, state


def _call(layer, params, state, x, options):
    kw = dict(options)
    if state is not None:
        kw["state"] = state
    out = layer.apply(params, x, **kw)
    return out[0] if state is not None else out


def _widen_last(shape: Any) -> Any:
    if isinstance(shape, tuple) and shape and isinstance(shape[0], tuple):
        return (_widen_last(shape[0]),) + tuple(shape[1:])
    return tuple(shape[:-1]) + (shape[-1] + 1,)


def _cells_widen(setup: Setup) -> Any:
    # A cell's input is (carry, x_t): widen x_t, the last of the pair.
    carry, x = setup.shape
    return (carry, tuple(x[:-1]) + (x[-1] + 1,))


# ---------------------------------------------------------------------------- probes


def _probe_rank_init(setup: Setup) -> None:
    layer = setup.make()
    _jaxnet_error(lambda: layer.init(KEY, setup.bad_rank), _names(setup, layer))


def _probe_rank_apply(setup: Setup) -> None:
    layer, params, state = _built(setup)
    x = _arrays(setup.bad_rank)
    _jaxnet_error(
        lambda: _call(layer, params, state, x, setup.options), _names(setup, layer)
    )


def _probe_last(setup: Setup) -> None:
    layer, params, state = _built(setup)
    shape = (
        _cells_widen(setup) if setup.id.endswith("Cell") else _widen_last(setup.shape)
    )
    x = _arrays(shape)
    _jaxnet_error(
        lambda: _call(layer, params, state, x, setup.options), _names(setup, layer)
    )


def _probe_dtype(setup: Setup, dtype: Any) -> None:
    layer, params, state = _built(setup)
    x = jax.tree.map(lambda a: a.astype(dtype), _valid(setup))
    if setup.kind == "float":
        exc = _jaxnet_error(
            lambda: _call(layer, params, state, x, setup.options), _names(setup, layer)
        )
        assert isinstance(exc, jaxnet.DTypeError), rendered(exc)
        assert "astype" in rendered(exc), rendered(exc)
    elif setup.kind == "ids":
        if jnp.issubdtype(dtype, jnp.integer):
            _call(layer, params, state, x, setup.options)
        else:
            exc = _jaxnet_error(
                lambda: _call(layer, params, state, x, setup.options),
                _names(setup, layer),
            )
            assert isinstance(exc, jaxnet.DTypeError), rendered(exc)
    else:  # dtype-agnostic: the result equals that of the float input, cast
        out = _call(layer, params, state, x, setup.options)
        ref = _call(
            layer,
            params,
            state,
            jax.tree.map(lambda a: a.astype(jnp.float32), x),
            setup.options,
        )
        jax.tree.map(
            lambda o, r: np.testing.assert_array_equal(np.asarray(o, np.float32), r),
            out,
            ref,
        )


def _probe_float_ids(setup: Setup) -> None:
    layer, params, state = _built(setup)
    x = _valid(setup).astype(jnp.float32)
    exc = _jaxnet_error(
        lambda: _call(layer, params, state, x, setup.options), _names(setup, layer)
    )
    assert isinstance(exc, jaxnet.DTypeError), rendered(exc)


def _zero_shape(shape: Any) -> Any:
    if isinstance(shape, tuple) and shape and isinstance(shape[0], tuple):
        return tuple(_zero_shape(s) for s in shape)
    return (0,) + tuple(shape[1:])


def _shape_leaves(tree: Any) -> list[tuple]:
    """The shapes in a (nested tuple) shape tree, in order."""
    if isinstance(tree, tuple) and all(d is None or isinstance(d, int) for d in tree):
        return [tree]
    return [s for t in tree for s in _shape_leaves(t)]


def _probe_zero_batch(setup: Setup) -> None:
    layer, params, state = _built(setup)
    zero_out, _ = layer.init(KEY, _zero_shape(setup.shape))
    x = _valid(setup, batch=0)
    kw = dict(setup.options, **({"state": state} if state is not None else {}))
    out = layer.apply(params, x, **kw)
    y = out[0] if state is not None else out
    got = [tuple(a.shape) for a in jax.tree.leaves(y)]
    assert got == _shape_leaves(zero_out)
    if state is not None:  # an empty batch must not poison the running statistics
        for leaf in jax.tree.leaves(out[1]):
            assert bool(jnp.all(jnp.isfinite(leaf))), out[1]


def _probe_list(setup: Setup, outer: bool) -> None:
    """Python lists for the arrays (``outer=False``), or, for a layer taking a tuple
    of inputs, a list of the input arrays in place of the tuple (``outer=True``)."""
    layer, params, state = _built(setup)
    x = _valid(setup)
    if outer:
        ref = _call(layer, params, state, x, setup.options)
        out = _call(layer, params, state, list(x), setup.options)
    else:
        as_list = jax.tree.map(lambda a: np.asarray(a).tolist(), x)
        # The reference: the values as jnp.asarray makes them (float64 under x64).
        x64 = jax.tree.map(jnp.asarray, as_list)
        ref = _call(layer, params, state, x64, setup.options)
        out = _call(layer, params, state, as_list, setup.options)
    jax.tree.map(np.testing.assert_array_equal, out, ref)


def _probe_none_init(setup: Setup) -> None:
    layer = setup.make()
    _jaxnet_error(lambda: layer.init(KEY, None), _names(setup, layer))


def _probe_none_apply(setup: Setup) -> None:
    layer, params, state = _built(setup)
    _jaxnet_error(
        lambda: _call(layer, params, state, None, setup.options), _names(setup, layer)
    )


_CONSTRAINT = re.compile(r"must|expect|allowed|at most", re.I)


def _probe_ctor(setup: Setup, i: int) -> None:
    shown, make = setup.bad_args[i]
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    text = rendered(info.value)
    assert not any(raw in text for raw in RAW), text
    assert _PUBLIC.search(text), f"names no constructor: {text}"
    assert _CONSTRAINT.search(text), f"states no expected value: {text}"
    assert shown in text, f"does not show the actual value {shown!r}: {text}"


def _is_tuple_input(shape: Any) -> bool:
    return isinstance(shape, tuple) and bool(shape) and isinstance(shape[0], tuple)


def _probes() -> list[Any]:
    out = []
    for s in SETUPS:
        rows: list[tuple[str, Callable[[], None]]] = []
        if s.bad_rank is not None:
            rows.append(("rank-init", lambda s=s: _probe_rank_init(s)))
            rows.append(("rank-apply", lambda s=s: _probe_rank_apply(s)))
        if s.last:
            rows.append(("last-dim", lambda s=s: _probe_last(s)))
        rows.append(("int32", lambda s=s: _probe_dtype(s, jnp.int32)))
        rows.append(("bool", lambda s=s: _probe_dtype(s, jnp.bool_)))
        if s.kind == "ids":
            rows.append(("float-ids", lambda s=s: _probe_float_ids(s)))
        rows.append(("zero-batch", lambda s=s: _probe_zero_batch(s)))
        rows.append(("list", lambda s=s: _probe_list(s, outer=False)))
        if _is_tuple_input(s.shape):
            rows.append(("list-of-inputs", lambda s=s: _probe_list(s, outer=True)))
        rows.append(("none-init", lambda s=s: _probe_none_init(s)))
        rows.append(("none-apply", lambda s=s: _probe_none_apply(s)))
        for i in range(len(s.bad_args)):
            rows.append((f"ctor-{i}", lambda s=s, i=i: _probe_ctor(s, i)))
        out += [pytest.param(fn, id=f"{s.id}:{kind}") for kind, fn in rows]
    return out


@pytest.mark.parametrize("probe", _probes())
def test_bad_input(probe):
    probe()


# ---------------------------------------------------------------------------- losses


def _probs(shape):
    return jax.nn.sigmoid(_arrays(shape))


LOSSES = (
    # (name, loss, predictions maker, targets maker, needs rank >= 1)
    ("squared_error", losses.squared_error, _arrays, _arrays, False),
    ("half_squared_error", losses.half_squared_error, _arrays, _arrays, False),
    ("mse", losses.mse, _arrays, _arrays, True),
    ("absolute_error", losses.absolute_error, _arrays, _arrays, False),
    ("huber", losses.huber, _arrays, _arrays, False),
    ("binary_cross_entropy", losses.binary_cross_entropy, _probs, _probs, False),
    (
        "sigmoid_binary_cross_entropy",
        losses.sigmoid_binary_cross_entropy,
        _arrays,
        _probs,
        False,
    ),
    (
        "softmax_cross_entropy",
        losses.softmax_cross_entropy,
        _arrays,
        lambda s: jax.nn.softmax(_arrays(s)),
        True,
    ),
    (
        "softmax_cross_entropy_with_integer_labels",
        losses.softmax_cross_entropy_with_integer_labels,
        _arrays,
        lambda s: jnp.asarray(np.arange(s[0]) % s[-1], jnp.int32),
        True,
    ),
)


def _loss_probes() -> list[Any]:
    out = []
    for name, loss, pred, targ, ranked in LOSSES:

        def good(batch=B, pred=pred, targ=targ):
            return pred((batch, 4)), targ((batch, 4))

        def wrong_dtype(loss=loss, name=name, good=good, dtype=jnp.int32):
            p, t = good()
            exc = _jaxnet_error(lambda: loss(p.astype(dtype), t), (name,))
            assert isinstance(exc, jaxnet.DTypeError)

        def wrong_bool(loss=loss, name=name, good=good):
            wrong_dtype(loss, name, good, jnp.bool_)

        def none_pred(loss=loss, name=name, good=good):
            _jaxnet_error(lambda: loss(None, good()[1]), (name,))

        def none_targ(loss=loss, name=name, good=good):
            _jaxnet_error(lambda: loss(good()[0], None), (name,))

        def as_list(loss=loss, good=good):
            p, t = good()
            pl, tl = np.asarray(p).tolist(), np.asarray(t).tolist()
            np.testing.assert_array_equal(
                loss(pl, tl), loss(jnp.asarray(pl), jnp.asarray(tl))
            )

        def zero(loss=loss, good=good):
            p, t = good(0)
            ref = loss(*good())
            assert loss(p, t).shape == (0,) + ref.shape[1:]

        def mismatch(loss=loss, name=name, good=good):
            p, t = good()
            _jaxnet_error(lambda: loss(p, t[:1]), (name,))

        rows = [
            ("int32", wrong_dtype),
            ("bool", wrong_bool),
            ("none-predictions", none_pred),
            ("none-targets", none_targ),
            ("list", as_list),
            ("zero-batch", zero),
            ("batch-mismatch", mismatch),
        ]
        if ranked:

            def scalar(loss=loss, name=name, targ=targ):
                _jaxnet_error(lambda: loss(jnp.float32(1.0), jnp.float32(1.0)), (name,))

            rows.append(("scalar", scalar))
        out += [pytest.param(fn, id=f"{name}:{kind}") for kind, fn in rows]
    return out


@pytest.mark.parametrize("probe", _loss_probes())
def test_bad_loss_input(probe):
    probe()


@pytest.mark.parametrize(
    "shown, bad",
    [
        ("delta=-1.0", lambda: losses.huber(jnp.ones(2), jnp.ones(2), delta=-1.0)),
        (
            "eps=-1.0",
            lambda: losses.binary_cross_entropy(jnp.ones(2) / 2, jnp.ones(2), eps=-1.0),
        ),
        (
            "eps=0.7",
            lambda: losses.binary_cross_entropy(jnp.ones(2) / 2, jnp.ones(2), eps=0.7),
        ),
    ],
    ids=["huber(delta=-1)", "bce(eps=-1)", "bce(eps=0.7)"],
)
def test_bad_loss_option(shown, bad):
    with pytest.raises(ValueError) as info:
        bad()
    text = rendered(info.value)
    assert not any(raw in text for raw in RAW), text
    assert _CONSTRAINT.search(text) and shown in text, text


# ------------------------------------------------- an axis the input does not have


@pytest.mark.parametrize(
    "make",
    [
        lambda: jaxnet.Softmax(axis=5),
        lambda: jaxnet.LogSoftmax(axis=-3),
        lambda: jaxnet.FanInConcat(axis=5),
    ],
    ids=["Softmax(axis=5)", "LogSoftmax(axis=-3)", "FanInConcat(axis=5)"],
)
@pytest.mark.parametrize("where", ["init", "apply"])
def test_axis_outside_the_input(make, where):
    layer = make()
    fan_in = layer.name == "fan_in_concat"
    shape = ((B, 3), (B, 2)) if fan_in else (B, 4)
    if where == "init":
        fn = lambda: layer.init(KEY, shape)  # noqa: E731
    else:
        fn = lambda: layer.apply({}, _arrays(shape))  # noqa: E731
    exc = _jaxnet_error(fn, (layer.desc,))
    assert isinstance(exc, jaxnet.ShapeError)
    assert "rank 2" in str(exc) and "axis=" in str(exc), str(exc)
