"""Recurrent layers: LSTM and GRU cells, ``RNN`` over time, and ``Bidirectional``.

Each cell's hand-written backward (VJP) sits beside its forward; ``RNN``'s backward is
backpropagation through time (BPTT): a forward ``lax.scan`` that stores every step's
input carry, then a reverse ``lax.scan`` that calls the cell's backward step by step,
carrying the carry's cotangent backwards and summing the parameter gradients. No
``jax.vjp`` or ``jax.grad`` anywhere.

**The cell protocol.** A cell is a :class:`Cell`, i.e. a :class:`~jaxnet.Layer` for one
time step plus ``carry_shape``::

    (carry_shapes, y_shape), params = cell.init(key, (carry_shapes, x_shape))
    new_carry, y_t = cell.apply(params, (carry, x_t))
    dparams, (dcarry, dx_t) = cell.backward(params, (carry, x_t), (new_carry, y_t),
                                            (g_new_carry, g_y_t))
    carry_shapes = cell.carry_shape(batch_dims)   # e.g. ((None, 4), (None, 4))

Carries follow Flax: an LSTM's carry is ``(c, h)``, a GRU's is ``h``; the initial carry
of ``RNN`` is zeros (as ``flax.linen`` ``initialize_carry``). Any layer with this
signature and a ``carry_shape`` composes with :func:`RNN`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from .._errors import ShapeError
from .._types import Array, Params, PRNGKey, ShapeTree, same_structure
from . import _init as initializers
from ._checks import as_inputs, float_input
from ._combinators import _backward_of
from ._layer import (
    Layer,
    _is_shape,
    compute_dtype,
    constructor,
    fmt_shape,
    in_sublayer,
    require_params,
    union_options,
)


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # Layer's repr and equality
class Cell(Layer):
    """A recurrent cell: a :class:`~jaxnet.Layer` for one time step, plus its carry.

    ``apply(params, (carry, x_t)) -> (new_carry, y_t)``; ``init(key, (carry_shapes,
    x_shape)) -> ((carry_shapes, y_shape), params)``; ``backward(params, (carry, x_t),
    (new_carry, y_t), (g_new_carry, g_y_t)) -> (dparams, (dcarry, dx_t))``.

    Args:
      carry_shape: ``carry_shape(batch_dims) -> shape tree`` of the carry, e.g.
        ``((None, 4), (None, 4))`` for ``LSTMCell(4)`` and ``batch_dims=(None,)``.
      (the other fields are :class:`~jaxnet.Layer`'s.)

    Examples:
      >>> import jaxnet
      >>> jaxnet.LSTMCell(4).carry_shape((None,))
      ((None, 4), (None, 4))
    """

    carry_shape: Callable[[tuple[int | None, ...]], ShapeTree] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.carry_shape is None:
            raise ValueError(f"Cell {self.desc}: carry_shape is required.")


def _bias(b: Array, ndim: int) -> Array:
    """A bias reshaped to full rank (no implicit rank promotion)."""
    return b.reshape((1,) * (ndim - 1) + b.shape)


def _flat(a: Array) -> Array:
    return a.reshape(-1, a.shape[-1])


def _dtype(params: Params, *arrays: Array) -> Any:
    return compute_dtype(
        *(a.dtype for a in arrays), *(p.dtype for p in jax.tree.leaves(params))
    )


# ------------------------------------------------------------------------- LSTMCell


def _lstm_gates(params: Params, c: Array, h: Array, x: Array):
    dt = _dtype(params, c, h, x)
    c, h, x = c.astype(dt), h.astype(dt), x.astype(dt)
    z = (
        jnp.dot(x, params["input"]["w"].astype(dt))
        + jnp.dot(h, params["hidden"]["w"].astype(dt))
        + _bias(params["hidden"]["b"].astype(dt), x.ndim)
    )
    ai, af, ag, ao = jnp.split(z, 4, axis=-1)
    i, f, g, o = (
        jax.nn.sigmoid(ai),
        jax.nn.sigmoid(af),
        jnp.tanh(ag),
        jax.nn.sigmoid(ao),
    )
    new_c = f * c + i * g
    tc = jnp.tanh(new_c)
    return (i, f, g, o), c, h, x, new_c, tc


def lstm_cell(params: Params, carry: tuple[Array, Array], x: Array):
    """One LSTM step (Flax's ``LSTMCell`` equations), gates stacked ``i, f, g, o``::

        z = x @ W_in + h @ W_hid + b_hid       (..., 4 H), split into a_i, a_f, a_g, a_o
        i = sigmoid(a_i)  f = sigmoid(a_f)  g = tanh(a_g)  o = sigmoid(a_o)
        c' = f * c + i * g
        h' = o * tanh(c')

    Args:
      params: ``{"input": {"w": (in, 4H)}, "hidden": {"w": (H, 4H), "b": (4H,)}}``.
      carry: ``(c, h)``, each ``(..., H)``.
      x: ``(..., in)``.

    Returns:
      ``((c', h'), h')``.
    """
    (_, _, _, o), _, _, _, new_c, tc = _lstm_gates(params, carry[0], carry[1], x)
    new_h = o * tc
    return (new_c, new_h), new_h


def lstm_cell_vjp(params: Params, carry: tuple[Array, Array], x: Array, g: Any):
    """Backward of :func:`lstm_cell`; ``g = ((g_c', g_h'), g_y)``.

    With ``dh = g_h' + g_y`` (the output is ``h'``) and ``tc = tanh(c')``::

        dc = g_c' + dh * o * (1 - tc^2)        do = dh * tc
        di = dc * g     dg = dc * i     df = dc * c     dc_prev = dc * f
        da_i = di i (1 - i)   da_f = df f (1 - f)   da_g = dg (1 - g^2)
        da_o = do o (1 - o)   dz = [da_i, da_f, da_g, da_o]
        dW_in = x^T dz   dW_hid = h^T dz   db_hid = sum dz
        dx = dz W_in^T   dh_prev = dz W_hid^T

    Returns:
      ``(dparams, ((dc_prev, dh_prev), dx))``, each shaped (and typed) like its primal.
    """
    (i, f, gg, o), c, h, xx, _, tc = _lstm_gates(params, carry[0], carry[1], x)
    (gc, gh), gy = g
    dt = c.dtype
    dh = gh.astype(dt) + gy.astype(dt)
    dc = gc.astype(dt) + dh * o * (1 - tc * tc)
    do = dh * tc
    dz = jnp.concatenate(
        [
            dc * gg * i * (1 - i),
            dc * c * f * (1 - f),
            dc * i * (1 - gg * gg),
            do * o * (1 - o),
        ],
        axis=-1,
    )
    wi, wh, bh = params["input"]["w"], params["hidden"]["w"], params["hidden"]["b"]
    dz2 = _flat(dz)
    dparams = {
        "input": {"w": jnp.dot(_flat(xx).T, dz2).astype(wi.dtype)},
        "hidden": {
            "w": jnp.dot(_flat(h).T, dz2).astype(wh.dtype),
            "b": jnp.sum(dz2, axis=0).astype(bh.dtype),
        },
    }
    dx = jnp.dot(dz, wi.T.astype(dt)).astype(x.dtype)
    dh_prev = jnp.dot(dz, wh.T.astype(dt)).astype(carry[1].dtype)
    return dparams, (((dc * f).astype(carry[0].dtype), dh_prev), dx)


# -------------------------------------------------------------------------- GRUCell


def _gru_gates(params: Params, h: Array, x: Array):
    dt = _dtype(params, h, x)
    h, x = h.astype(dt), x.astype(dt)
    zi = jnp.dot(x, params["input"]["w"].astype(dt)) + _bias(
        params["input"]["b"].astype(dt), x.ndim
    )
    zh = jnp.dot(h, params["hidden"]["w"].astype(dt))
    ir, iz, in_ = jnp.split(zi, 3, axis=-1)
    hr, hz, hn = jnp.split(zh, 3, axis=-1)
    hn = hn + _bias(params["hidden"]["b"].astype(dt), x.ndim)
    r = jax.nn.sigmoid(ir + hr)
    z = jax.nn.sigmoid(iz + hz)
    n = jnp.tanh(in_ + r * hn)
    new_h = (1 - z) * n + z * h
    return (r, z, n, hn), h, x, new_h


def gru_cell(params: Params, carry: Array, x: Array):
    """One GRU step (Flax's ``GRUCell`` equations), gates stacked ``r, z, n``::

        [a_r, a_z, a_n] = x @ W_in + b_in          [u_r, u_z, u_n] = h @ W_hid
        r = sigmoid(a_r + u_r)     z = sigmoid(a_z + u_z)
        n = tanh(a_n + r * (u_n + b_hid))
        h' = (1 - z) * n + z * h

    Args:
      params: ``{"input": {"w": (in, 3H), "b": (3H,)}, "hidden": {"w": (H, 3H),
        "b": (H,)}}`` (the hidden bias is the ``n`` gate's only, as Flax's ``hn``).
      carry: ``h``, ``(..., H)``.
      x: ``(..., in)``.

    Returns:
      ``(h', h')``.
    """
    _, _, _, new_h = _gru_gates(params, carry, x)
    return new_h, new_h


def gru_cell_vjp(params: Params, carry: Array, x: Array, g: Any):
    """Backward of :func:`gru_cell`; ``g = (g_h', g_y)``.

    With ``dh' = g_h' + g_y`` and ``hn = u_n + b_hid``::

        dn = dh' (1 - z)     dz = dh' (h - n)     dh_prev = dh' z + ...
        da_n = dn (1 - n^2)  dr = da_n * hn       dhn = da_n * r
        da_r = dr r (1 - r)  da_z = dz z (1 - z)
        dW_in = x^T [da_r, da_z, da_n]    db_in = sum [da_r, da_z, da_n]
        dW_hid = h^T [da_r, da_z, dhn]    db_hid = sum dhn
        dx = [da_r, da_z, da_n] W_in^T    dh_prev = dh' z + [da_r, da_z, dhn] W_hid^T

    Returns:
      ``(dparams, (dh_prev, dx))``, each shaped (and typed) like its primal.
    """
    (r, z, n, hn), h, xx, _ = _gru_gates(params, carry, x)
    gh, gy = g
    dt = h.dtype
    dnew = gh.astype(dt) + gy.astype(dt)
    dan = dnew * (1 - z) * (1 - n * n)
    dar = dan * hn * r * (1 - r)
    daz = dnew * (h - n) * z * (1 - z)
    dhn = dan * r
    dzi = jnp.concatenate([dar, daz, dan], axis=-1)
    dzh = jnp.concatenate([dar, daz, dhn], axis=-1)
    wi, bi = params["input"]["w"], params["input"]["b"]
    wh, bh = params["hidden"]["w"], params["hidden"]["b"]
    dzi2, dzh2 = _flat(dzi), _flat(dzh)
    dparams = {
        "input": {
            "w": jnp.dot(_flat(xx).T, dzi2).astype(wi.dtype),
            "b": jnp.sum(dzi2, axis=0).astype(bi.dtype),
        },
        "hidden": {
            "w": jnp.dot(_flat(h).T, dzh2).astype(wh.dtype),
            "b": jnp.sum(_flat(dhn), axis=0).astype(bh.dtype),
        },
    }
    dx = jnp.dot(dzi, wi.T.astype(dt)).astype(x.dtype)
    dh_prev = dnew * z + jnp.dot(dzh, wh.T.astype(dt))
    return dparams, (dh_prev.astype(carry.dtype), dx)


# ------------------------------------------------------------------- cell builders


def _orthogonal_blocks(key: PRNGKey, hidden: int, n: int, dtype: Any) -> Array:
    """``n`` independent orthogonal ``(H, H)`` blocks side by side (Flax: per gate)."""
    keys = initializers.split(key, n)
    init = initializers.orthogonal()
    return initializers.concatenate([init(k, (hidden, hidden), dtype) for k in keys])


def _make_cell(
    kind: str,
    hidden: int,
    n_gates: int,
    carry_shape: Callable[[tuple], ShapeTree],
    step: Callable,
    step_vjp: Callable,
    input_bias: bool,
    hidden_bias: int,
    dtype: Any,
) -> Cell:
    if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
        raise ValueError(f"{kind}(hidden={hidden!r}): hidden must be an integer >= 1.")
    desc = f"{kind}(hidden={hidden})"
    carry_doc = "(c, h)" if kind == "LSTMCell" else "h"
    w_init = initializers.lecun_normal()

    def bad_structure(what: Any) -> ShapeError:
        return ShapeError(
            f"{desc}: expected the input (carry, x_t) with carry = {carry_doc}, each of "
            f"shape (..., {hidden}), got {what}. To run the cell over a sequence, wrap "
            f"it: jaxnet.RNN({desc})."
        )

    def check(carry_shapes: Any, x_shape: Any, in_dim: int | None) -> None:
        expected = carry_shape(tuple(x_shape[:-1])) if _is_shape(x_shape) else None
        shapes = jax.tree.leaves(carry_shapes, is_leaf=_is_shape)
        if (
            expected is None
            or not _is_shape(x_shape)
            or len(x_shape) < 1
            or not same_structure(carry_shapes, expected, is_leaf=_is_shape)
            or any(not _is_shape(s) for s in shapes)
        ):
            raise bad_structure(f"shapes {carry_shapes!r} and {x_shape!r}")
        if any(
            tuple(s) != tuple(e)
            for s, e in zip(shapes, jax.tree.leaves(expected, is_leaf=_is_shape))
        ):
            raise ShapeError(
                f"{desc}: expected carry {carry_doc} of shape "
                f"{fmt_shape(tuple(x_shape[:-1]) + (hidden,))} for x_t of shape "
                f"{fmt_shape(x_shape)}, got {', '.join(fmt_shape(s) for s in shapes)}. "
                "The carry's leading (batch) axes must equal x_t's."
            )
        if in_dim is not None and x_shape[-1] != in_dim:
            raise ShapeError(
                f"{desc}: expected x_t of shape (..., {in_dim}), got "
                f"{fmt_shape(x_shape)}. The cell was initialised for {in_dim} input "
                "features."
            )

    def split_input(inp: Any) -> tuple[Any, Any]:
        if not isinstance(inp, (tuple, list)) or len(inp) != 2:
            if hasattr(inp, "shape"):
                got = f"a single array of shape {tuple(inp.shape)}"
            elif isinstance(inp, (tuple, list)):
                got = f"a {type(inp).__name__} of length {len(inp)}"
            else:
                got = type(inp).__name__
            raise bad_structure(got)
        return inp[0], inp[1]

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        carry_shapes, x_shape = split_input(input_shape)
        check(carry_shapes, x_shape, None)
        in_dim = x_shape[-1]
        if in_dim is None:
            raise ShapeError(
                f"{desc}: the last axis of x_t must be known, got "
                f"{fmt_shape(x_shape)}. Only batch axes may be None."
            )
        ki, kh = initializers.split(key)
        inp = {"w": w_init(ki, (in_dim, n_gates * hidden), dtype)}
        if input_bias:
            inp["b"] = initializers.zeros(ki, (n_gates * hidden,), dtype)
        params = {
            "input": inp,
            "hidden": {
                "w": _orthogonal_blocks(kh, hidden, n_gates, dtype),
                "b": initializers.zeros(kh, (hidden_bias,), dtype),
            },
        }
        out = tuple(x_shape[:-1]) + (hidden,)
        return (carry_shape(tuple(x_shape[:-1])), out), params

    def check_apply(params: Params, inp: Any) -> tuple[Any, Array]:
        require_params(desc, params, ["input", "hidden"])
        carry, x = split_input(inp)
        x = float_input(desc, x, "x_t")
        carry = jax.tree.map(
            lambda a: float_input(desc, a, "carry"), as_inputs(desc, carry, "carry")
        )
        shapes = jax.tree.map(lambda a: tuple(a.shape), carry)
        check(shapes, tuple(x.shape), params["input"]["w"].shape[0])
        return carry, x

    def apply(params: Params, inp: Any, **_: Any) -> Any:
        carry, x = check_apply(params, inp)
        return step(params, carry, x)

    def backward(params: Params, inp: Any, y: Any, g: Any, **_: Any):
        carry, x = check_apply(params, inp)
        return step_vjp(params, carry, x, g)

    return Cell(
        kind.replace("Cell", "").lower() + "_cell",
        init,
        apply,
        backward,
        desc,
        carry_shape=carry_shape,
    )


@constructor
def LSTMCell(hidden: int, *, dtype: Any = jnp.float32) -> Cell:
    """A long short-term memory cell (one time step), equal to ``flax.linen.LSTMCell``.

    ``apply(params, ((c, h), x_t)) -> ((c', h'), h')`` with, gates stacked in the order
    ``i, f, g, o`` along the last axis of the weights::

        [a_i, a_f, a_g, a_o] = x_t @ W_in + h @ W_hid + b_hid
        i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);   g = tanh(a_g)
        c' = f * c + i * g;   h' = o * tanh(c')

    Flax's per-gate ``ii, if, ig, io`` kernels are the column blocks of ``W_in``
    (``input/w``), ``hi, hf, hg, ho`` those of ``W_hid`` (``hidden/w``), and their
    biases the blocks of ``hidden/b``. Backward: :func:`~jaxnet.analytic.lstm_cell_vjp`.

    Args:
      hidden: the size ``H`` of ``c`` and ``h``.
      dtype: parameter dtype (default float32). Initialisers as Flax: LeCun normal for
        ``W_in``, an orthogonal ``(H, H)`` block per gate for ``W_hid``, zero bias.

    Returns:
      A :class:`Cell` named ``"lstm_cell"`` with params ``{"input": {"w": (in, 4H)},
      "hidden": {"w": (H, 4H), "b": (4H,)}}``; carry ``(c, h)``.

    Raises:
      ShapeError: when the input is not ``((c, h), x_t)`` with ``c, h: (..., H)`` and
        ``x_t: (..., in)``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> cell = jaxnet.LSTMCell(4)
      >>> shapes, params = cell.init(jax.random.key(0), (((None, 4), (None, 4)), (None, 3)))
      >>> shapes
      (((None, 4), (None, 4)), (None, 4))
      >>> carry = (jnp.zeros((2, 4)), jnp.zeros((2, 4)))
      >>> (c, h), y = cell.apply(params, (carry, jnp.ones((2, 3))))
      >>> y.shape
      (2, 4)
    """
    return _make_cell(
        "LSTMCell",
        hidden,
        4,
        lambda batch: (tuple(batch) + (hidden,), tuple(batch) + (hidden,)),
        lstm_cell,
        lstm_cell_vjp,
        input_bias=False,
        hidden_bias=4 * hidden,
        dtype=dtype,
    )


@constructor
def GRUCell(hidden: int, *, dtype: Any = jnp.float32) -> Cell:
    """A gated recurrent unit cell (one time step), equal to ``flax.linen.GRUCell``.

    ``apply(params, (h, x_t)) -> (h', h')`` with gates stacked ``r, z, n``::

        [a_r, a_z, a_n] = x_t @ W_in + b_in;   [u_r, u_z, u_n] = h @ W_hid
        r = sigmoid(a_r + u_r);   z = sigmoid(a_z + u_z)
        n = tanh(a_n + r * (u_n + b_hid))
        h' = (1 - z) * n + z * h

    Flax's ``ir, iz, in`` (with bias) are the blocks of ``input/w`` and ``input/b``,
    ``hr, hz, hn`` those of ``hidden/w``, and ``hn``'s bias is ``hidden/b`` (Flax's
    ``hr``, ``hz`` have none). Backward: :func:`~jaxnet.analytic.gru_cell_vjp`.

    Args:
      hidden: the size ``H`` of ``h``.
      dtype: parameter dtype (default float32); initialisers as :func:`LSTMCell`.

    Returns:
      A :class:`Cell` named ``"gru_cell"`` with params ``{"input": {"w": (in, 3H),
      "b": (3H,)}, "hidden": {"w": (H, 3H), "b": (H,)}}``; carry ``h``.

    Raises:
      ShapeError: when the input is not ``(h, x_t)`` with ``h: (..., H)`` and
        ``x_t: (..., in)``.

    Examples:
      >>> import jax, jaxnet
      >>> cell = jaxnet.GRUCell(4)
      >>> cell.init(jax.random.key(0), ((None, 4), (None, 3)))[0]
      ((None, 4), (None, 4))
    """
    return _make_cell(
        "GRUCell",
        hidden,
        3,
        lambda batch: tuple(batch) + (hidden,),
        gru_cell,
        gru_cell_vjp,
        input_bias=True,
        hidden_bias=hidden,
        dtype=dtype,
    )


# ----------------------------------------------------------------------------- RNN


def _time_major(x: Array, reverse: bool) -> Array:
    xs = jnp.moveaxis(x, 1, 0)
    return jnp.flip(xs, 0) if reverse else xs


def _batch_major(ys: Any, reverse: bool) -> Any:
    return jax.tree.map(
        lambda a: jnp.moveaxis(jnp.flip(a, 0) if reverse else a, 0, 1), ys
    )


def rnn_bptt(
    cell: Cell,
    params: Params,
    xs: Array,
    carry0: Any,
    g_ys: Array,
    g_carry: Any,
    **options: Any,
) -> tuple[Params, Any, Array]:
    """Backpropagation through time for a cell scanned over a time-major sequence.

    Forward ``lax.scan`` storing each step's input carry ``carry_t`` and output
    ``(carry_{t+1}, y_t)``, then a reverse ``lax.scan``::

        dcarry_T = g_carry
        for t = T-1 .. 0:
            dp_t, (dcarry_t, dx_t) = cell.backward(params, (carry_t, x_t),
                                                   (carry_{t+1}, y_t),
                                                   (dcarry_{t+1}, g_y_t))
        dparams = sum_t dp_t

    Args:
      cell: a :class:`Cell`.
      params: the cell's params.
      xs: inputs, time-major ``(time, batch, in)``.
      carry0: the initial carry (``(batch, H)`` leaves).
      g_ys: cotangent of the outputs, ``(time, batch, H)``.
      g_carry: cotangent of the final carry (zeros when it is not an output).
      **options: passed to the cell.

    Returns:
      ``(dparams, dcarry0, dxs)``.
    """

    def fwd(carry: Any, x_t: Array):
        new_carry, y_t = cell.apply(params, (carry, x_t), **options)
        return new_carry, (carry, new_carry, y_t)

    _, (carries, new_carries, ys) = lax.scan(fwd, carry0, xs)
    cell_backward = _backward_of("rnn_bptt", cell.name, cell)

    def bwd(acc: Any, inp: Any):
        dparams, dcarry = acc
        carry_t, new_carry_t, y_t, x_t, gy_t = inp
        dp, (dcarry_prev, dx_t) = cell_backward(
            params, (carry_t, x_t), (new_carry_t, y_t), (dcarry, gy_t), **options
        )
        return (jax.tree.map(jnp.add, dparams, dp), dcarry_prev), dx_t

    zeros = jax.tree.map(jnp.zeros_like, params)
    (dparams, dcarry0), dxs = lax.scan(
        bwd, (zeros, g_carry), (carries, new_carries, ys, xs, g_ys), reverse=True
    )
    return dparams, dcarry0, dxs


def _require_seq(desc: str, shape: Any, in_dim: int | None = None) -> None:
    if not _is_shape(shape) or len(shape) != 3:
        got = fmt_shape(shape) if _is_shape(shape) else repr(shape)
        raise ShapeError(
            f"{desc}: expected input of shape (batch, time, features), got {got}. "
            "Add the missing axis (a single sequence: x[None]; a single step: use "
            "the cell directly)."
        )
    if in_dim is not None and shape[-1] != in_dim:
        raise ShapeError(
            f"{desc}: expected input of shape (batch, time, {in_dim}), got "
            f"{fmt_shape(shape)}. The layer was initialised for {in_dim} input features."
        )


@constructor
def RNN(cell: Cell, *, reverse: bool = False, return_carry: bool = False) -> Layer:
    """Run a cell over the time axis of ``x: (batch, time, features)`` with ``lax.scan``.

    ``carry_0 = 0`` (or ``apply(..., initial_carry=carry)``), then for each step
    ``carry_{t+1}, y_t = cell(carry_t, x_t)``; the output stacks ``y_t`` along time.
    With ``reverse=True`` the steps run from the last time index to the first and the
    outputs stay aligned with the inputs (Flax's ``reverse=True, keep_order=True``):
    ``RNN(cell, reverse=True)(x) == flip(RNN(cell)(flip(x)))`` along time.

    Backward: backpropagation through time, :func:`~jaxnet.analytic.rnn_bptt`. The
    initial carry, when given, is treated as a constant (no gradient is returned).

    Args:
      cell: a :class:`Cell`, e.g. :func:`LSTMCell` or :func:`GRUCell`.
      reverse: run from the end of the sequence to the start.
      return_carry: return ``(final_carry, outputs)`` instead of ``outputs``.

    Returns:
      A :class:`~jaxnet.Layer` named ``"rnn"`` whose params are the cell's (no extra
      nesting); output ``(batch, time, H)``. ``apply`` accepts ``initial_carry=`` (the
      cell's carry, leaves ``(batch, H)``); inside ``serial`` it reaches every RNN.

    Raises:
      ShapeError: when the input is not ``(batch, time, in)`` or the initial carry
        does not fit.
      TypeError: when ``cell`` is not a :class:`Cell`.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> rnn = jaxnet.RNN(jaxnet.GRUCell(4))
      >>> out_shape, params = rnn.init(jax.random.key(0), (None, 5, 3))
      >>> out_shape
      (None, 5, 4)
      >>> rnn.apply(params, jnp.ones((2, 5, 3))).shape
      (2, 5, 4)
    """
    if not isinstance(cell, Cell):
        raise TypeError(
            f"RNN: expected a recurrent cell such as jaxnet.LSTMCell(8), got "
            f"{getattr(cell, 'desc', type(cell).__name__)}."
        )
    opts = [cell.desc]
    if reverse:
        opts.append("reverse=True")
    if return_carry:
        opts.append("return_carry=True")
    desc = f"RNN({', '.join(opts)})"
    carry_shape = cell.carry_shape
    assert carry_shape is not None  # Cell.__post_init__ requires one

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        _require_seq(desc, input_shape)
        b, t, f = input_shape
        with in_sublayer("RNN", cell.name):
            (carry_shapes, y_shape), params = cell.init(
                key, (carry_shape((b,)), (b, f))
            )
        out = (b, t) + tuple(y_shape[1:])
        return ((carry_shapes, out) if return_carry else out), params

    def prepare(params: Params, x: Any, initial_carry: Any):
        x = float_input(desc, x)
        _require_seq(desc, tuple(x.shape))
        expected = carry_shape((x.shape[0],))
        dt = compute_dtype(x.dtype, *(p.dtype for p in jax.tree.leaves(params)))
        if initial_carry is None:
            carry0 = jax.tree.map(
                lambda s: jnp.zeros(s, dt), expected, is_leaf=_is_shape
            )
        else:
            got = jax.tree.map(lambda a: tuple(jnp.shape(a)), initial_carry)
            if not same_structure(got, expected, is_leaf=_is_shape) or got != expected:
                raise ShapeError(
                    f"{desc}: expected initial_carry of shape {expected} for input "
                    f"{fmt_shape(tuple(x.shape))}, got {got}."
                )
            carry0 = jax.tree.map(lambda a: jnp.asarray(a).astype(dt), initial_carry)
        # Check the step once, at trace time, so a bad feature size names this RNN.
        try:
            jax.eval_shape(
                lambda p, c, xt: cell.apply(p, (c, xt)), params, carry0, x[:, 0]
            )
        except ShapeError as exc:
            raise ShapeError(
                f"{desc}: input of shape {fmt_shape(tuple(x.shape))} (batch, time, "
                f"features) does not fit the cell: {exc}"
            ) from None
        return x, carry0

    def apply(params: Params, x: Any, *, initial_carry: Any = None, **options: Any):
        x, carry0 = prepare(params, x, initial_carry)

        def step(carry: Any, x_t: Array):
            return cell.apply(params, (carry, x_t), **options)

        carry, ys = lax.scan(step, carry0, _time_major(x, reverse))
        y = _batch_major(ys, reverse)
        return (carry, y) if return_carry else y

    def backward(
        params: Params, x: Any, y: Any, g: Any, *, initial_carry: Any = None, **options
    ):
        x, carry0 = prepare(params, x, initial_carry)
        if return_carry:
            g_carry, g_y = g
            g_carry = jax.tree.map(
                lambda a, c: jnp.asarray(a).astype(c.dtype), g_carry, carry0
            )
        else:
            g_y = g
            g_carry = jax.tree.map(jnp.zeros_like, carry0)
        dparams, _, dxs = rnn_bptt(
            cell,
            params,
            _time_major(x, reverse),
            carry0,
            _time_major(g_y, reverse),
            g_carry,
            **options,
        )
        return dparams, _batch_major(dxs, reverse)

    return Layer("rnn", init, apply, backward, desc, options=cell.options)


@constructor
def Bidirectional(forward_rnn: Layer, backward_rnn: Layer) -> Layer:
    """Run one sequence layer forwards and another backwards; concatenate features.

    ``y = concat([fwd(x), flip(bwd(flip(x)))], axis=-1)`` with ``flip`` along time:
    ``backward_rnn`` reads the time-reversed sequence and its outputs are flipped back
    into input order (as ``flax.linen.Bidirectional``). Pass a plain ``RNN(cell)`` as
    ``backward_rnn``; an ``RNN(cell, reverse=True)`` there would run forwards again.

    Backward: ``dx = dx_fwd + flip(dx_bwd)`` with each part's cotangent the matching
    feature slice of ``g`` (flipped for the backward layer).

    Args:
      forward_rnn: a layer ``(batch, time, in) -> (batch, time, F1)``, e.g.
        ``RNN(LSTMCell(8))``.
      backward_rnn: likewise, ``-> (batch, time, F2)``.

    Returns:
      A :class:`~jaxnet.Layer` named ``"bidirectional"`` with params ``{"forward":
      ..., "backward": ...}`` and output ``(batch, time, F1 + F2)``. ``apply``
      accepts ``initial_carry=(forward_carry, backward_carry)``.

    Raises:
      ShapeError: for an input that is not ``(batch, time, in)`` or a direction whose
        output is not a single ``(batch, time, F)`` array (e.g. ``return_carry=True``).

    Examples:
      >>> import jax, jaxnet
      >>> bi = jaxnet.Bidirectional(jaxnet.RNN(jaxnet.LSTMCell(4)),
      ...                           jaxnet.RNN(jaxnet.GRUCell(2)))
      >>> bi.init(jax.random.key(0), (None, 5, 3))[0]
      (None, 5, 6)
    """
    for name, layer in (("forward_rnn", forward_rnn), ("backward_rnn", backward_rnn)):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Bidirectional: {name} must be a jaxnet.Layer such as "
                f"jaxnet.RNN(jaxnet.LSTMCell(8)), got {type(layer).__name__}."
            )
    desc = f"Bidirectional({forward_rnn.desc}, {backward_rnn.desc})"
    parts = (("forward", forward_rnn), ("backward", backward_rnn))

    def init(key: PRNGKey, input_shape: ShapeTree) -> tuple[ShapeTree, Params]:
        _require_seq(desc, input_shape)
        params, outs = {}, []
        for k, (name, layer) in zip(initializers.split(key), parts):
            with in_sublayer("Bidirectional", name):
                out, params[name] = layer.init(k, input_shape)
            if not _is_shape(out) or len(out) != 3:
                raise ShapeError(
                    f"{desc}: the {name} layer must map (batch, time, in) to (batch, "
                    f"time, F), got output {out!r}. Use RNN(cell) without "
                    "return_carry=True."
                )
            outs.append(out)
        return tuple(input_shape[:2]) + (outs[0][-1] + outs[1][-1],), params

    def carries(initial_carry: Any) -> tuple[dict, dict]:
        if initial_carry is None:
            return {}, {}
        if not isinstance(initial_carry, (tuple, list)) or len(initial_carry) != 2:
            raise ShapeError(
                f"{desc}: expected initial_carry=(forward_carry, backward_carry), got "
                f"{type(initial_carry).__name__}."
            )
        return {"initial_carry": initial_carry[0]}, {"initial_carry": initial_carry[1]}

    def run(params: Params, x: Any, initial_carry: Any, options: dict):
        require_params(desc, params, ["forward", "backward"])
        x = float_input(desc, x)
        _require_seq(desc, tuple(x.shape))
        cf, cb = carries(initial_carry)
        xr = jnp.flip(x, 1)
        with in_sublayer("Bidirectional", "forward"):
            yf = forward_rnn.apply(params["forward"], x, **cf, **options)
        with in_sublayer("Bidirectional", "backward"):
            yb = backward_rnn.apply(params["backward"], xr, **cb, **options)
        return x, xr, yf, yb, cf, cb

    def apply(params: Params, x: Any, *, initial_carry: Any = None, **options: Any):
        _, _, yf, yb, _, _ = run(params, x, initial_carry, options)
        return jnp.concatenate([yf, jnp.flip(yb, 1)], axis=-1)

    def backward(
        params: Params, x: Any, y: Any, g: Any, *, initial_carry: Any = None, **options
    ):
        x, xr, yf, yb, cf, cb = run(params, x, initial_carry, options)
        nf = yf.shape[-1]
        gf, gb = g[..., :nf], jnp.flip(g[..., nf:], 1)
        forward_backward = _backward_of("Bidirectional", "forward", forward_rnn)
        backward_backward = _backward_of("Bidirectional", "backward", backward_rnn)
        dpf, dxf = forward_backward(params["forward"], x, yf, gf, **cf, **options)
        dpb, dxb = backward_backward(params["backward"], xr, yb, gb, **cb, **options)
        return {"forward": dpf, "backward": dpb}, dxf + jnp.flip(dxb, 1)

    return Layer(
        "bidirectional",
        init,
        apply,
        backward,
        desc,
        options=union_options(forward_rnn, backward_rnn),
    )
