"""The compiled probes of ``check_grads``, cached across calls per function.

A probe is one measurement along one direction: the tested directional derivatives
and a numerical one (:func:`directional`), a Hessian-vector product read along a
second direction (:func:`hvp`), or one bisection step (:func:`discrepancy`).

Directions enter as data, as a list aligned with the differentiated leaves (the
flattened ``argnums`` arguments): an array for each perturbed leaf, ``None`` for the
others. ``check_grads`` uses two layouts:

* **per leaf**: the target's direction and ``None`` elsewhere. Only that leaf is
  perturbed (batched under ``vmap``), so an evaluation costs what ``f`` costs; each
  target position is its own trace (the ``None`` pattern is static), so a model with
  ``L`` leaves compiles ``L`` probes.
* **shared**: every leaf gets an array, zeros except the target. One trace serves
  every leaf, at the price of touching every parameter in every evaluation (and of
  batching all of them under ``vmap``): slower evaluations for large models, one
  compile instead of ``L`` (docs/benchmarks.md). ``check_grads`` shares when the
  differentiated leaves are small in total (:data:`SHARED_MAX` elements).

The jitted probes are kept per function object (weakly: they go when ``f`` goes), so
a second ``check_grads`` of the same ``f`` at the same shapes compiles nothing, as a
second call of a ``jax.jit`` function does. Like ``jax.jit``, the cache assumes that
``f`` is a function of its arguments: an ``f`` that reads a global that changes
between calls must be a new function object (or the global an argument).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from . import _numeric as N
from ._tolerances import step

#: Share one compiled probe across leaves when the differentiated leaves hold at most
#: this many elements in total (their zero directions cost one pass over them per
#: evaluation).
SHARED_MAX = 2**21

_CACHE: weakref.WeakKeyDictionary[Any, dict[Any, Callable[..., Any]]] = (
    weakref.WeakKeyDictionary()
)


def cached_jit(f: Callable[..., Any], body: Callable[..., Any], *static: Any) -> Any:
    """``jax.jit`` of ``lambda *a: body(f, *static, *a)``, kept per ``f``.

    ``static`` (hashable) configures the probe; the cache key is ``(body, static)``.
    ``body`` receives ``f`` through a weak reference, so the cache entry does not keep
    ``f`` (and the arrays it closes over) alive. A function that cannot be weakly
    referenced gets a fresh, uncached probe.
    """
    try:
        per = _CACHE.setdefault(f, {})
        ref = weakref.ref(f)
    except TypeError:
        return jax.jit(lambda *a: body(f, *static, *a))
    key = (body, static)
    if key not in per:
        per[key] = jax.jit(lambda *a: body(ref(), *static, *a))
    return per[key]


# --------------------------------------------------------------- the point, moved


def diff_leaves(base: tuple[Any, ...], nums: tuple[int, ...]) -> list[Any]:
    """The differentiated leaves, flattened in ``argnums`` order."""
    return jax.tree.leaves(tuple(base[i] for i in nums))


def replace_args(
    base: tuple[Any, ...], nums: tuple[int, ...], diff: Any
) -> tuple[Any, ...]:
    """``base`` with argument ``nums[j]`` replaced by ``diff[j]``."""
    full = list(base)
    for i, d in zip(nums, diff):
        full[i] = d
    return tuple(full)


def with_leaves(
    base: tuple[Any, ...], nums: tuple[int, ...], flat: list[Any]
) -> tuple[Any, ...]:
    """``base`` with its differentiated leaves replaced by ``flat``."""
    tree = jax.tree.structure(tuple(base[i] for i in nums))
    return replace_args(base, nums, jax.tree.unflatten(tree, flat))


def with_some(
    base: tuple[Any, ...], nums: tuple[int, ...], ks: list[int], xs: Any
) -> tuple[Any, ...]:
    """``base`` with differentiated leaf ``ks[j]`` replaced by ``xs[j]``."""
    new = list(diff_leaves(base, nums))
    for k, x in zip(ks, xs):
        new[k] = x
    return with_leaves(base, nums, new)


def _selected(us: list[Any]) -> list[int]:
    return [k for k, u in enumerate(us) if u is not None]


def _moved(x: jax.Array, t: jax.Array, u: jax.Array) -> jax.Array:
    """``x + t u``; complex when ``t`` is (the complex step)."""
    if jnp.iscomplexobj(t):
        c = N.complex_dtype(x.dtype)
        with jax.numpy_dtype_promotion("standard"):
            return x.astype(c) + t.astype(c) * u.astype(c)
    return x + t.astype(x.dtype) * u


def moved(
    base: tuple[Any, ...], nums: tuple[int, ...], us: list[Any], t: jax.Array
) -> tuple[Any, ...]:
    """``base`` with each perturbed leaf ``x_k`` moved to ``x_k + t u_k``."""
    flat = diff_leaves(base, nums)
    return with_leaves(
        base,
        nums,
        [x if u is None else _moved(x, t, u) for x, u in zip(flat, us)],
    )


def contract(out: Any, v: list[jax.Array] | None) -> jax.Array:
    """The output as one flat vector (``v is None``), or ``<v, out>`` as ``(1,)``."""
    leaves = jax.tree.leaves(out)
    if v is None:
        return jnp.concatenate([jnp.ravel(l) for l in leaves])
    total = sum(jnp.sum(vl * l) for vl, l in zip(v, leaves))
    return jnp.reshape(total, (1,))


def _widest(dtypes: list[Any]) -> Any:
    return max(dtypes, key=lambda d: jnp.finfo(d).bits)


def _dot(ts: list[Any], us: list[Any], acc: Any, absolute: bool = False) -> jax.Array:
    total = jnp.zeros((), acc)
    for t, u in zip(ts, us):
        if t is not None and u is not None:
            p = t.astype(acc) * u.astype(acc)
            total = total + jnp.sum(jnp.abs(p) if absolute else p)
    return total


# ------------------------------------------------------------------ first order


def call(f: Callable[..., Any], base: tuple[Any, ...]) -> Any:
    """``f(*base)``."""
    return f(*base)


def pullback(
    f: Callable[..., Any],
    nums: tuple[int, ...],
    base: tuple[Any, ...],
    v: list[jax.Array],
) -> tuple[Any, ...]:
    """``(f(*base), J^T v)``: the output and the pullback of ``v`` for every
    differentiated argument (``jax.grad`` for a scalar f)."""

    def at(*diff: Any) -> Any:
        return f(*replace_args(base, nums, diff))

    out, pull = jax.vjp(at, *(base[i] for i in nums))
    leaves, tree = jax.tree.flatten(out)
    return out, tuple(
        pull(jax.tree.unflatten(tree, [c.astype(o.dtype) for c, o in zip(v, leaves)]))
    )


def directional(
    f: Callable[..., Any],
    nums: tuple[int, ...],
    numeric: str,
    fwd: bool,
    args: tuple[Any, ...],
    ref_args: tuple[Any, ...],
    us: list[Any],
    v: list[jax.Array],
    v_ref: list[jax.Array],
    tested: list[list[Any]],
    tested_ref: list[list[Any]],
    h: jax.Array,
) -> dict[str, Any]:
    """One direction: ``<t, u>`` for each tested gradient ``t`` (and ``sum |t u|``,
    its rounding scale), the numerical ``D_u <v, f>`` with its error estimate, and,
    with ``fwd``, the forward-mode ``<v, J u>``. ``tested_ref`` (narrow leaves only):
    the same gradients at the float64 point, whose difference measures the rounding.
    """
    ref_flat = diff_leaves(ref_args, nums)
    sel = _selected(us)
    acc = _widest([ref_flat[k].dtype for k in sel])
    us_ref = [None if u is None else u.astype(x.dtype) for u, x in zip(us, ref_flat)]
    out: dict[str, Any] = {
        "a": [_dot(t, us_ref, acc) for t in tested],
        "S": [_dot(t, us_ref, acc, absolute=True) for t in tested],
        "a_ref": [_dot(t, us_ref, acc) for t in tested_ref],
        "U1": N.total(
            jnp.sum(jnp.abs(u.astype(acc)))
            for u in (us_ref[k] for k in sel)
            if u is not None  # sel picks the perturbed leaves: never None
        ),
    }

    def g(t: jax.Array) -> jax.Array:
        return contract(f(*moved(ref_args, nums, us_ref, t)), v_ref)

    if numeric == "complex":
        r = N.complex_step(g, step(acc, "complex"))
        out["r"], out["sigma"] = r[0], jnp.zeros((), acc)
    else:
        r, sig = N.central(g, h.astype(acc))
        out["r"], out["sigma"] = r[0], sig[0]
    if fwd:
        out["b"], out["Sb"] = _jvp_along(f, nums, args, us, v, acc)
        if tested_ref:
            out["b_ref"] = _jvp_along(f, nums, ref_args, us_ref, v_ref, acc)[0]
    return out


def _jvp_along(
    f: Callable[..., Any],
    nums: tuple[int, ...],
    base: tuple[Any, ...],
    us: list[Any],
    v: list[jax.Array],
    acc: Any,
) -> tuple[jax.Array, jax.Array]:
    """``<v, J u>`` by ``jax.jvp`` over the perturbed leaves, and ``sum |v J u|``."""
    flat = diff_leaves(base, nums)
    sel = _selected(us)

    def at(*xs: jax.Array) -> Any:
        return f(*with_some(base, nums, sel, xs))

    _, ju = jax.jvp(at, tuple(flat[k] for k in sel), tuple(us[k] for k in sel))
    terms = [(vl * jl).astype(acc) for vl, jl in zip(v, jax.tree.leaves(ju))]
    return N.total(jnp.sum(t) for t in terms), N.total(
        jnp.sum(jnp.abs(t)) for t in terms
    )


# ------------------------------------------------------------------ localisation


def discrepancy(
    f: Callable[..., Any],
    nums: tuple[int, ...],
    numeric: str,
    ref_args: tuple[Any, ...],
    us_ref: list[Any],
    v_ref: list[jax.Array],
    tested: list[Any],
    h: jax.Array,
) -> jax.Array:
    """``<t, u> - D_u <v, f>`` with a plain central difference (two evaluations) or
    the complex step (one): additive over a partition of ``u``'s support."""
    ref_flat = diff_leaves(ref_args, nums)
    acc = _widest([ref_flat[k].dtype for k in _selected(us_ref)])

    def g(t: jax.Array) -> jax.Array:
        return contract(f(*moved(ref_args, nums, us_ref, t)), v_ref)[0]

    if numeric == "complex":
        num = N.complex_step(g, step(acc, "complex"))
    else:
        h = h.astype(acc)
        num = (g(h) - g(-h)) / (2 * h)
    return _dot(tested, us_ref, acc) - num


# ----------------------------------------------------------------- second order


def hvp(
    f: Callable[..., Any],
    nums: tuple[int, ...],
    args: tuple[Any, ...],
    ref_args: tuple[Any, ...],
    us: list[Any],
    ws: list[Any],
    onehot: jax.Array,
    v: list[jax.Array],
    v_ref: list[jax.Array],
    h: jax.Array,
) -> dict[str, Any]:
    """``<w, H u>`` of ``<v, f>`` over the perturbed leaves: forward-over-reverse,
    reverse-over-reverse (``<u, H w>``) and central differences of the gradient along
    ``u`` (float64 point), with ``sum |w H u|``-type rounding scales. ``onehot``
    weighs the perturbed leaves for ``norm``, the norm of the target's block of
    ``H u``."""
    sel = _selected(us)
    flat, ref_flat = diff_leaves(args, nums), diff_leaves(ref_args, nums)
    acc = _widest([ref_flat[k].dtype for k in sel])
    u = [us[k] for k in sel]
    w = [ws[k] for k in sel]

    def grad_of(base: tuple[Any, ...], vv: list[jax.Array]) -> Callable[..., Any]:
        return jax.grad(lambda xs: contract(f(*with_some(base, nums, sel, xs)), vv)[0])

    gl = grad_of(args, v)
    xs = [flat[k] for k in sel]
    out: dict[str, Any] = {}
    try:
        _, hu = jax.jvp(gl, (xs,), (u,))
        out["fwd"] = _dot(w, hu, acc)
        out["Sf"] = _dot(w, hu, acc, absolute=True)
        out["norm"] = jnp.sqrt(
            sum(
                onehot[i] * jnp.sum(jnp.square(hk.astype(acc)))
                for i, hk in enumerate(hu)
            )
        )
    except Exception:  # noqa: BLE001 - jvp of a custom_vjp: no forward mode
        out["fwd"] = out["Sf"] = out["norm"] = jnp.asarray(jnp.nan, acc)
    hw = jax.grad(lambda val: _dot(gl(val), w, acc))(xs)
    out["rev"] = _dot(u, hw, acc)
    out["Sr"] = _dot(u, hw, acc, absolute=True)
    glr = grad_of(ref_args, v_ref)
    x_ref = [ref_flat[k] for k in sel]
    u_ref = [a.astype(x.dtype) for a, x in zip(u, x_ref)]
    w_ref = [a.astype(x.dtype) for a, x in zip(w, x_ref)]
    h = h.astype(acc)
    r, sig = N.central(
        lambda t: jnp.reshape(
            _dot(glr([_moved(x, t, d) for x, d in zip(x_ref, u_ref)]), w_ref, acc),
            (1,),
        ),
        h,
    )
    out["r"], out["sigma"] = r[0], sig[0]
    # The difference of <w, grad f> rounds like its terms: eps sum|w_i g_i| / h.
    out["round"] = (
        3 * jnp.finfo(acc).eps * _dot(w_ref, glr(x_ref), acc, absolute=True) / h
    )
    return out


# -------------------------------------------------------------- exhaustive mode


def _at_leaf(
    f: Callable[..., Any], nums: tuple[int, ...], k: int, base: tuple[Any, ...], v: Any
) -> Callable[[jax.Array], jax.Array]:
    """``val -> <v, f>`` (or the flat output when ``v is None``) with differentiated
    leaf ``k`` set to ``val``."""
    return lambda val: contract(f(*with_some(base, nums, [k], [val])), v)


def exhaustive(
    f: Callable[..., Any],
    nums: tuple[int, ...],
    k: int,
    numeric: str,
    base: tuple[Any, ...],
    v: Any,
    idx: jax.Array,
    hs: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """The numerical derivative along each element ``idx`` of leaf ``k``."""
    s = _at_leaf(f, nums, k, base, v)
    return N.exhaustive(s, diff_leaves(base, nums)[k], numeric, idx, hs)


def jacobian(
    f: Callable[..., Any],
    nums: tuple[int, ...],
    k: int,
    how: str,
    base: tuple[Any, ...],
    v: Any,
) -> jax.Array:
    """``(n, m)``: the Jacobian of ``<v, f>`` (or of the flat output) in leaf ``k``,
    by ``jax.jacrev`` (``how="rev"``) or ``jax.jacfwd``."""
    x = diff_leaves(base, nums)[k]
    jac = jax.jacrev if how == "rev" else jax.jacfwd
    return jac(_at_leaf(f, nums, k, base, v))(x).reshape(-1, x.size).T
