"""Numerical derivatives with a measured noise estimate, along elements or directions.

Every numerical reference here returns ``(r, sigma)``: the derivative and an estimate
of its error, so that a comparison's tolerance comes from the measured noise of the
reference, never from a fixed table or the size of the array.

* **Central differences with one Richardson step.** With ``D(h) = (g(h) - g(-h)) /
  2h`` (``g(t) = s(x + t u)``), ``r = (4 D(h/2) - D(h)) / 3`` has truncation error
  ``O(h^4)``; ``sigma = |D(h/2) - D(h)| / 3`` is the truncation error of ``D(h/2)``,
  an over-estimate of ``r``'s, floored at the rounding bound ``3 eps max|g| / h``.
  Four evaluations per probe.
* **One-sided differences** where ``x - h u`` leaves the function's domain (a
  non-finite value on one side only): ``r = 2 D+(h/2) - D+(h)`` from the finite side.
* **The complex step**, ``Im s(x + i h u) / h`` with ``h = 1e-20``: no subtraction,
  hence no cancellation; its error is rounding only (the caller bounds it).

The probed function ``s`` maps one leaf to a flat vector of outputs (a Jacobian
column) or, contracted with a cotangent, to one number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._tolerances import step

#: Bytes of perturbed copies of a leaf alive at once in exhaustive mode.
EXHAUSTIVE_BYTES = 64 * 2**20


def total(terms: Iterable[jax.Array]) -> jax.Array:
    """``sum(terms)``, left to right from 0 as the builtin does, typed as an array."""
    out: Any = 0
    for t in terms:
        out = out + t
    return jnp.asarray(out)


def _finite(v: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(v))


def central(
    g: Callable[[jax.Array], jax.Array], h: jax.Array, g0: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Richardson-extrapolated central difference of ``g(t)`` at ``t = 0``.

    ``g(t)`` is the probed function along a line, e.g. ``s(x + t u)``. Falls back to
    one-sided differences when one side is not finite (a domain edge such as ``log``
    near 0). ``g0``: ``g(0)`` when the caller has it (exhaustive mode: the same for
    every element). Returns ``(r, sigma)`` shaped like ``g(0)``; both are nan when
    neither side is finite.
    """
    eps = jnp.finfo(h.dtype).eps
    ts = jnp.stack([h, -h, h / 2, -h / 2])
    gs = jax.vmap(g)(ts)
    g0 = g(jnp.zeros_like(h)) if g0 is None else g0
    gp, gm, gp2, gm2 = gs[0], gs[1], gs[2], gs[3]
    d1 = (gp - gm) / (2 * h)
    d2 = (gp2 - gm2) / h
    # One-sided, forward or backward: D+(h) = (g(h) - g(0)) / h, error O(h).
    f1, f2 = (gp - g0) / h, (gp2 - g0) * 2 / h
    b1, b2 = (g0 - gm) / h, (g0 - gm2) * 2 / h
    both = _finite(gp) & _finite(gm) & _finite(gp2) & _finite(gm2)
    plus = _finite(gp) & _finite(gp2)
    minus = _finite(gm) & _finite(gm2)
    r = jnp.where(both, (4 * d2 - d1) / 3, jnp.where(plus, 2 * f2 - f1, 2 * b2 - b1))
    sig = jnp.where(
        both,
        jnp.abs(d2 - d1) / 3,
        jnp.where(plus, jnp.abs(f2 - f1), jnp.abs(b2 - b1)),
    )
    scale = jnp.max(jnp.abs(jnp.where(jnp.isfinite(gs), gs, 0.0)), axis=0)
    scale = jnp.maximum(scale, jnp.abs(g0))
    floor = jnp.where(both, 3.0, 6.0) * eps * scale / h
    ok = both | plus | minus
    nan = jnp.full_like(r, jnp.nan)
    return jnp.where(ok, r, nan), jnp.where(ok, jnp.maximum(sig, floor), nan)


def complex_step(g: Callable[[jax.Array], jax.Array], h: float) -> jax.Array:
    """``Im g(i h) / h``, where ``g(it)`` evaluates the function at ``x + i t u``."""
    with jax.numpy_dtype_promotion("standard"):
        return jnp.imag(g(jnp.asarray(1j * h))) / h


def complex_dtype(dtype: Any) -> Any:
    """The complex dtype of a real one's width."""
    return jnp.complex128 if jnp.finfo(dtype).bits == 64 else jnp.complex64


def host_step(x: jax.Array) -> jax.Array:
    """The central-difference step along a unit-variance direction in leaf ``x``,
    ``h max(1, rms(x))``: a scalar of ``x``'s dtype, computed with numpy on the host
    (no compile per leaf shape)."""
    h = step(x.dtype, "central")
    a = np.asarray(x, np.float64)
    rms = float(np.sqrt(np.mean(np.square(a)))) if a.size else 0.0
    return jnp.asarray(h * max(1.0, rms), x.dtype)


def exhaustive(
    s: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    method: str,
    indices: jax.Array | None = None,
    hscale: float | jax.Array = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """The derivative of ``s`` along every element of ``x`` (or those in ``indices``):
    ``(r, sigma)``, each of shape ``(len(indices),) + s(x).shape``; ``sigma`` is zero
    for the complex step. ``hscale`` shrinks the central step (step refinement).

    Elements are probed in batches (``jax.lax.map``) sized so that at most
    :data:`EXHAUSTIVE_BYTES` of perturbed copies of ``x`` exist at once; each copy is
    ``x.at[i].add(t)``: no ``n x n`` or ``chunk x n`` one-hot matrix is built.
    """
    n = x.size
    flat = x.reshape(-1)
    per = 4 if method == "central" else 2
    itemsize = jnp.dtype(x.dtype).itemsize
    batch = int(max(1, min(256, EXHAUSTIVE_BYTES // max(1, per * n * itemsize))))
    base = step(x.dtype, method)
    g0 = s(x) if method == "central" else None

    def one(i: jax.Array) -> tuple[jax.Array, jax.Array]:
        if method == "central":
            h = (hscale * base * jnp.maximum(1.0, jnp.abs(flat[i]))).astype(x.dtype)
            return central(lambda t: s(flat.at[i].add(t).reshape(x.shape)), h, g0)
        c = complex_dtype(x.dtype)
        with jax.numpy_dtype_promotion("standard"):
            r = complex_step(
                lambda t: s(flat.astype(c).at[i].add(t).reshape(x.shape)), base
            )
        return r, jnp.zeros_like(r)

    idx = jnp.arange(n) if indices is None else indices
    return jax.lax.map(one, idx, batch_size=batch)


#: A central estimate is resolved when its error estimate is below this fraction of
#: its value; unresolved ones are retried with the step shrunk by REFINE (twice), and
#: a probe that stays unresolved can say "noisy" but never "FAIL".
RESOLVED = 1e-3
REFINE = (1.0, 2.0**-4, 2.0**-8)
UNRESOLVED = 0.1
