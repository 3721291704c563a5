"""The gradient checker: ``jax.grad`` against an analytic formula and a numerical one.

Unlike ``jax.test_util.check_grads`` it reports *per parameter leaf* (path, max abs and
rel error, worst index, tolerance, pass/fail), checks every element rather than random
directions, and takes its tolerances from one per-dtype table that never scales with
the array's size.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._tolerances import Tolerance, step, tolerance

_CHUNK = 256  # perturbations evaluated per vmapped batch


def path_str(path: Sequence[Any]) -> str:
    """Render a ``jax.tree_util`` key path as ``dense_0/w``."""
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


@dataclasses.dataclass(frozen=True)
class GradCheckRow:
    """One comparison of one leaf: ``check`` is e.g. ``"jax.grad vs analytic"``."""

    path: str
    check: str
    shape: tuple[int, ...]
    dtype: str
    max_abs: float
    max_rel: float
    worst_index: tuple[int, ...]
    rtol: float
    atol: float
    ok: bool


@dataclasses.dataclass(frozen=True)
class GradReport:
    """The result of :func:`check_grads`: one row per (leaf, comparison).

    ``max_rel`` is ``max |a - r| / (|r| + atol / rtol)``: the relative error, with
    reference magnitudes below ``atol / rtol`` floored there. A row passes iff
    ``|a - r| <= atol + rtol |r|`` everywhere, i.e. iff ``max_rel <= rtol``; the worst
    index is where ``max_rel`` is attained.
    """

    name: str
    rows: tuple[GradCheckRow, ...]

    @property
    def ok(self) -> bool:
        """True when every row passes."""
        return all(r.ok for r in self.rows)

    def failures(self) -> tuple[GradCheckRow, ...]:
        """The rows that fail."""
        return tuple(r for r in self.rows if not r.ok)

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` with the table as its message unless all pass."""
        if not self.ok:
            raise AssertionError(str(self))

    def to_records(self) -> list[dict[str, Any]]:
        """The rows as plain dicts (for JSON)."""
        return [dataclasses.asdict(r) for r in self.rows]

    def __str__(self) -> str:
        head = (
            "path",
            "check",
            "max abs",
            "max rel",
            "worst index",
            "rtol",
            "atol",
            "",
        )
        lines = [
            (
                r.path or "(arg)",
                r.check,
                f"{r.max_abs:.2e}",
                f"{r.max_rel:.2e}",
                str(r.worst_index),
                f"{r.rtol:.0e}",
                f"{r.atol:.0e}",
                "ok" if r.ok else "FAIL",
            )
            for r in self.rows
        ]
        widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        verdict = (
            "ok" if self.ok else f"FAILED ({len(self.failures())} of {len(self.rows)})"
        )
        out = [f"gradient check of {self.name}: {verdict}", fmt.format(*head).rstrip()]
        out += [fmt.format(*l).rstrip() for l in lines]
        return "\n".join(out)


def compare(
    path: str, check: str, actual: Any, reference: Any, tol: Tolerance
) -> GradCheckRow:
    """Compare two arrays elementwise against ``tol``; non-finite mismatches fail."""
    a = np.asarray(actual, dtype=np.float64) if not np.iscomplexobj(actual) else None
    r = np.asarray(reference, dtype=np.float64)
    if a is None:
        raise TypeError(f"check_grads: gradient of '{path}' is complex; expected real.")
    if a.shape != r.shape:
        raise ValueError(
            f"check_grads: '{path}' ({check}): gradient shapes differ, "
            f"{a.shape} vs reference {r.shape}."
        )
    same = (a == r) | (np.isnan(a) & np.isnan(r))
    err = np.where(same, 0.0, np.abs(a - r))
    err = np.where(np.isnan(err), np.inf, err)
    rel = err / (np.abs(np.where(np.isfinite(r), r, 0.0)) + tol.atol / tol.rtol)
    if a.size == 0:
        return GradCheckRow(
            path,
            check,
            a.shape,
            str(np.asarray(actual).dtype),
            0.0,
            0.0,
            (),
            tol.rtol,
            tol.atol,
            True,
        )
    worst = np.unravel_index(int(np.argmax(rel)), a.shape) if a.ndim else ()
    max_rel = float(rel.max())
    return GradCheckRow(
        path=path,
        check=check,
        shape=tuple(a.shape),
        dtype=str(jnp.asarray(actual).dtype),
        max_abs=float(err.max()),
        max_rel=max_rel,
        worst_index=tuple(int(i) for i in worst),
        rtol=tol.rtol,
        atol=tol.atol,
        ok=bool(max_rel <= tol.rtol),
    )


def _first_nonfinite(x: np.ndarray) -> tuple[str, tuple[int, ...]]:
    bad = ~np.isfinite(x)
    idx = np.unravel_index(int(np.argmax(bad)), x.shape) if x.ndim else ()
    return str(x[idx]), tuple(int(i) for i in idx)


def _require_finite(where: str, tree: Any) -> None:
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            value, idx = _first_nonfinite(arr)
            name = "/".join(filter(None, [where, path_str(path)]))
            raise ValueError(
                f"check_grads: '{name}' holds a non-finite value ({value} at index "
                f"{idx}); gradients are only checked at finite points. Pass finite "
                "inputs (an edge point such as inf is tested with its own assertion)."
            )


def _numerical_leaf(
    f: Callable[..., Any],
    args: tuple[Any, ...],
    argnum: int,
    leaf_path: Any,
    leaf: jax.Array,
    method: str,
) -> np.ndarray:
    """Numerical gradient of ``f`` w.r.t. one leaf, every element, in vmapped chunks."""
    treedef = jax.tree.structure(args[argnum])
    flat = [l for _, l in jax.tree_util.tree_flatten_with_path(args[argnum])[0]]
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(args[argnum])[0]]
    pos = paths.index(leaf_path)
    n = leaf.size
    h = step(leaf.dtype, method)
    x0 = leaf.reshape(-1)

    def f_at(new_leaf: jax.Array) -> jax.Array:
        leaves = list(flat)
        leaves[pos] = new_leaf.reshape(leaf.shape)
        new_arg = jax.tree.unflatten(treedef, leaves)
        return f(*args[:argnum], new_arg, *args[argnum + 1 :])

    if method == "central":
        hs = h * jnp.maximum(1.0, jnp.abs(x0))

        def one(i: jax.Array) -> jax.Array:
            e = jax.nn.one_hot(i, n, dtype=x0.dtype) * hs[i]
            return (f_at(x0 + e) - f_at(x0 - e)) / (2 * hs[i])

    elif method == "complex":
        cdtype = jnp.complex128 if jnp.finfo(x0.dtype).bits == 64 else jnp.complex64

        def one(i: jax.Array) -> jax.Array:
            e = jax.nn.one_hot(i, n, dtype=x0.dtype) * h
            z = x0.astype(cdtype) + 1j * e.astype(cdtype)
            return jnp.imag(f_at(z)) / h

    else:
        raise ValueError(
            f"check_grads: method must be 'central' or 'complex', got {method!r}."
        )

    batched = jax.jit(jax.vmap(one))
    out = []
    # The complex step mixes real constants with complex perturbations: allow the
    # implicit real -> complex promotion while tracing the probe, even where the
    # caller runs with jax_numpy_dtype_promotion="strict".
    with jax.numpy_dtype_promotion("standard"):
        for start in range(0, n, _CHUNK):
            idx = jnp.arange(start, min(start + _CHUNK, n))
            out.append(np.asarray(batched(idx), dtype=np.float64))
    return np.concatenate(out).reshape(leaf.shape) if out else np.zeros(leaf.shape)


def check_grads(
    f: Callable[..., Any],
    *args: Any,
    analytic: Callable[..., Any] | None = None,
    method: str | None = "central",
    argnums: int | tuple[int, ...] = 0,
    names: Sequence[str] | None = None,
    tol: dict[str, Tolerance] | None = None,
    name: str | None = None,
) -> GradReport:
    """Check ``jax.grad(f)`` against an analytic gradient and a numerical derivative.

    Every element of every differentiated leaf is compared; tolerances come from
    :data:`jaxnet.testing.TOLERANCES` by the leaf's dtype and never scale with size.
    With ``analytic`` and a ``method`` there are three comparisons per leaf:
    ``jax.grad vs analytic``, ``jax.grad vs <method>`` and ``analytic vs <method>``.

    Args:
      f: a scalar-valued function of ``args``.
      *args: the point; ``args[argnums]`` may be any pytree of float arrays.
      analytic: optional ``analytic(*args)`` returning the gradient with the same
        structure as ``jax.grad(f, argnums)(*args)``.
      method: ``"central"`` (central differences, a smoke test), ``"complex"``
        (complex step: exact to rounding, for real-analytic ``f`` written with ops
        that accept complex input: no ``abs``, ``max`` or comparisons), or ``None``
        (analytic only).
      argnums: which argument(s) to differentiate.
      names: labels of the differentiated arguments in paths (default ``arg0``...);
        with a single ``argnums`` paths are the leaf paths alone.
      tol: optional per-method override ``{"analytic": Tolerance(...), ...}``.
      name: the function's name in the report header.

    Returns:
      A :class:`GradReport`; ``report.ok``; ``report.assert_ok()``.

    Raises:
      ValueError: for non-finite arguments, a non-scalar or non-finite ``f``, or an
        analytic gradient whose structure or shapes differ from ``jax.grad``'s.

    Examples:
      >>> import jax.numpy as jnp, jaxnet
      >>> def f(w):
      ...     return jnp.sum(jnp.sin(w["a"]))
      >>> report = jaxnet.testing.check_grads(
      ...     f, {"a": jnp.array([0.5, 1.0])}, analytic=lambda w: {"a": jnp.cos(w["a"])})
      >>> report.ok, [r.check for r in report.rows]
      (True, ['jax.grad vs analytic', 'jax.grad vs central', 'analytic vs central'])
    """
    fname = name or getattr(f, "__name__", "f")
    multi = isinstance(argnums, tuple)
    nums = argnums if multi else (argnums,)
    labels = list(names) if names is not None else [f"arg{i}" for i in nums]
    if len(labels) != len(nums):
        raise ValueError(f"check_grads: {len(nums)} argnums but {len(labels)} names.")
    if method not in (None, "central", "complex"):  # before any work, not a KeyError
        raise ValueError(
            f"check_grads: method must be 'central', 'complex' or None, got {method!r}."
        )
    for i, label in zip(nums, labels):
        _require_finite(label if multi else "", args[i])
    value = f(*args)
    if jnp.shape(value) != () or not jnp.issubdtype(
        jnp.asarray(value).dtype, jnp.floating
    ):
        raise ValueError(
            f"check_grads: {fname} must return a real scalar, got "
            f"{jnp.asarray(value).dtype} of shape {jnp.shape(value)}. Reduce it first, "
            "e.g. jnp.sum(...) or jnp.mean(...)."
        )
    if not math.isfinite(float(value)):
        raise ValueError(f"check_grads: {fname} is {float(value)} at this point.")

    auto = jax.grad(f, argnums)(*args)
    auto_t = auto if multi else (auto,)
    an = analytic(*args) if analytic is not None else None
    if an is not None:
        an_t = an if multi else (an,)
        s_auto, s_an = jax.tree.structure(auto_t), jax.tree.structure(tuple(an_t))
        if s_auto != s_an:
            raise ValueError(
                f"check_grads: the analytic gradient's structure {s_an} differs from "
                f"jax.grad's {s_auto}."
            )

    def tol_for(dtype: Any, m: str) -> Tolerance:
        return tol[m] if tol and m in tol else tolerance(dtype, m)

    rows: list[GradCheckRow] = []
    for k, (argnum, label) in enumerate(zip(nums, labels)):
        auto_leaves = jax.tree_util.tree_flatten_with_path(auto_t[k])[0]
        an_leaves = (
            jax.tree.leaves(an_t[k]) if an is not None else [None] * len(auto_leaves)
        )
        arg_leaves = dict(jax.tree_util.tree_flatten_with_path(args[argnum])[0])
        for (path, g_auto), g_an in zip(auto_leaves, an_leaves):
            p = "/".join(filter(None, [label if multi else "", path_str(path)]))
            dt = jnp.asarray(g_auto).dtype
            if g_an is not None:
                if jnp.shape(g_an) != jnp.shape(g_auto):
                    raise ValueError(
                        f"check_grads: analytic gradient of '{p}' has shape "
                        f"{jnp.shape(g_an)}, jax.grad's has {jnp.shape(g_auto)}."
                    )
                rows.append(
                    compare(
                        p, "jax.grad vs analytic", g_auto, g_an, tol_for(dt, "analytic")
                    )
                )
            if method is not None:
                num = _numerical_leaf(f, args, argnum, path, arg_leaves[path], method)
                t = tol_for(dt, method)
                rows.append(compare(p, f"jax.grad vs {method}", g_auto, num, t))
                if g_an is not None:
                    rows.append(compare(p, f"analytic vs {method}", g_an, num, t))
    return GradReport(fname, tuple(rows))
