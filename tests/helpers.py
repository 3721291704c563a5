"""Helpers shared by the tests: the rendered error text and the checks on it, tree
comparisons, a layer's equivalence and VJP problems, and checkpoint surgery.

Imported as ``from helpers import ...`` (pytest's ``pythonpath = ["tests"]`` puts this
folder on the path). Tolerances are ``jaxnet.testing.Tolerance`` values, from the
library's table (``jaxnet.testing.tolerance(dtype, method)``), never bare numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet
from jaxnet.checkpoint._format import MAGIC
from jaxnet.testing import Tolerance, tolerance


@contextmanager
def backend_compiles() -> Iterator[list[float]]:
    """The XLA compilations inside the block (JAX's monitoring event): a list of
    their durations, empty when nothing compiled."""
    seen: list[float] = []

    def listener(event: str, duration: float, **_: Any) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            seen.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def rendered(exc: BaseException) -> str:
    """What the user sees: ``str(exc)`` and the exception's notes, one per line."""
    return "\n".join([str(exc), *getattr(exc, "__notes__", [])])


def assert_trees_close(
    actual: Any, expected: Any, tol: Tolerance, what: str = ""
) -> None:
    """Same tree structure, and leaf by leaf the same dtype and shape and values
    within ``tol`` (``jaxnet.testing.tolerance(dtype, method)``); a failure names the
    leaf's path."""
    pa, ta = jax.tree_util.tree_flatten_with_path(actual)
    le, te = jax.tree.flatten(expected)
    assert ta == te, f"{what}: {ta} != {te}"
    for (path, a), e in zip(pa, le, strict=True):
        where = f"{what}{jax.tree_util.keystr(path)}"
        assert a.dtype == e.dtype, f"{where}: {a.dtype} != {e.dtype}"
        assert a.shape == e.shape, f"{where}: {a.shape} != {e.shape}"
        np.testing.assert_allclose(a, e, rtol=tol.rtol, atol=tol.atol, err_msg=where)


def assert_leaves_close(
    actual: Any,
    expected: Any,
    tol: Tolerance,
    what: str = "",
    *,
    same_dtype: bool = True,
) -> float:
    """Leaf by leaf in flattening order (the same number of leaves; the containers
    may differ, e.g. a peer library's tuples against jaxnet's dicts): the same shape
    and, with ``same_dtype``, the same dtype, and values within ``tol``. Returns the
    largest absolute difference (0.0 for bit-identical trees)."""
    worst = 0.0
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f"{what}: {a.shape} != {e.shape}"
        if same_dtype:
            assert a.dtype == e.dtype, f"{what}: {a.dtype} != {e.dtype}"
        np.testing.assert_allclose(a, e, rtol=tol.rtol, atol=tol.atol, err_msg=what)
        if a.size:
            diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
            worst = max(worst, float(np.max(diff)))
    return worst


def second_order(tol: Tolerance) -> Tolerance:
    """10x a first-order tolerance: second derivatives sum more rounded terms."""
    return Tolerance(rtol=10 * tol.rtol, atol=10 * tol.atol)


def assert_mentions(
    exc: BaseException, fragments: Sequence[str], absent: Sequence[str] = ()
) -> str:
    """Every fragment is in the rendered error and no ``absent`` one is (a raw
    JAX/XLA primitive name, say); returns the rendered text."""
    message = rendered(exc)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    for leak in absent:
        assert leak not in message, f"{leak!r} leaked into:\n{message}"
    return message


def assert_apply_error(
    make: Callable[[], jaxnet.Layer],
    init_shape: tuple[int | None, ...],
    bad: Any,
    fragments: Sequence[str],
    *,
    jit: bool,
    absent: Sequence[str] = (),
) -> None:
    """``make()`` initialised for ``init_shape`` and applied (eagerly or under
    ``jax.jit``) to ``bad`` raises a ShapeError mentioning every fragment."""
    layer = make()
    _, params = layer.init(jax.random.key(0), init_shape)
    apply = jax.jit(layer.apply) if jit else layer.apply
    with pytest.raises(jaxnet.ShapeError) as info:
        apply(params, bad)
    assert_mentions(info.value, fragments, absent)


def assert_init_error(
    make: Callable[[], jaxnet.Layer],
    init_shape: tuple[int | None, ...],
    fragments: Sequence[str],
) -> None:
    """``make().init`` for ``init_shape`` raises a ShapeError mentioning every
    fragment."""
    with pytest.raises(jaxnet.ShapeError) as info:
        make().init(jax.random.key(0), init_shape)
    assert_mentions(info.value, fragments)


def assert_matches_reference(
    layer: jaxnet.Layer,
    reference: Callable[[Any, jax.Array], jax.Array],
    shape: tuple[int, ...],
) -> None:
    """``layer.apply`` equals ``reference(params, x)`` on a random float32 input of
    ``shape`` (both in one jitted program), with the same dtype and shape, to the
    table's float32 analytic tolerance."""
    k_init, k_x = jax.random.split(jax.random.key(0))
    out_shape, params = layer.init(k_init, (None, *shape[1:]))
    x = jax.random.normal(k_x, shape, jnp.float32)

    @jax.jit  # one compiled program for both sides, rather than op-by-op
    def both(params: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        with jax.numpy_dtype_promotion("standard"):  # flax's avg_pool: x / int
            return layer.apply(params, x), reference(params, x)

    y, expected = both(params, x)
    assert y.dtype == expected.dtype == jnp.float32
    assert y.shape == expected.shape == (shape[0], *out_shape[1:])
    tol = tolerance(jnp.float32, "analytic")
    np.testing.assert_allclose(y, expected, rtol=tol.rtol, atol=tol.atol)


def vjp_problem(
    layer: jaxnet.Layer,
    shape: tuple[int, ...],
    draw: Callable[[tuple[int, ...]], jax.Array] | None = None,
) -> tuple[Callable[..., Any], Callable[..., Any], dict[str, Any]]:
    """``(f, analytic, point)`` for ``check_grads``: ``f`` is ``<g, layer(params, x)>``
    for a random cotangent ``g`` in float64, ``analytic`` the layer's hand-written
    backward at the point, ``point`` the params and an input of ``shape`` (random
    normal, or ``draw(shape)``)."""
    k_init, k_x, k_g = jax.random.split(jax.random.key(1), 3)
    _, params = layer.init(k_init, (None, *shape[1:]))
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    x = (
        jax.random.normal(k_x, shape, jnp.float64)
        if draw is None
        else draw(shape).astype(jnp.float64)
    )
    y = layer.apply(params, x)
    g = jax.random.normal(k_g, y.shape, jnp.float64)
    assert layer.backward is not None, f"{layer.name} has no hand-written backward"
    backward = layer.backward

    def f(point: dict[str, Any]) -> jax.Array:
        return jnp.sum(g * layer.apply(point["params"], point["x"]))

    def analytic(point: dict[str, Any]) -> dict[str, Any]:
        dp, dx = backward(point["params"], point["x"], y, g)
        return {"params": dp, "x": dx}

    return jax.jit(f), jax.jit(analytic), {"params": params, "x": x}


def rewrite_checkpoint(
    path: str | os.PathLike[str],
    edit: Callable[[dict[str, Any]], Any] | None = None,
    *,
    text_edit: Callable[[bytes], bytes] | None = None,
    payload: Callable[[bytes], bytes] | None = None,
    version: int | None = None,
) -> None:
    """Rebuild a checkpoint after ``edit(header)`` (in place), then ``text_edit`` of
    its JSON text, a new ``payload(old)`` and a new format ``version``, with a *valid*
    checksum: what anyone can do with a text editor and sha256sum."""
    data = pathlib.Path(path).read_bytes()
    hlen = int.from_bytes(data[12:20], "little")
    header = json.loads(data[20 : 20 + hlen])
    old_payload = data[20 + hlen : -32]
    if edit is not None:
        edit(header)
    text = json.dumps(header).encode()
    if text_edit is not None:
        text = text_edit(text)
    text += b" " * (-(20 + len(text)) % 64)
    ver = data[8:12] if version is None else version.to_bytes(4, "little")
    body = MAGIC + ver + len(text).to_bytes(8, "little") + text
    body += old_payload if payload is None else payload(old_payload)
    pathlib.Path(path).write_bytes(body + hashlib.sha256(body).digest())
