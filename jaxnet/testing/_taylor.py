"""``taylor_test``: the convergence order of ``f(x + h u) - f(x) - h <grad, u>``.

For a correct gradient the remainder is ``O(h^2)``; for a wrong one it is ``h |<e, u>|``
for small ``h``, order 1. The test evaluates the remainder over a geometric ladder of
steps, keeps the steps where it stands well above rounding, and reads the order off
the slope in the smallest-step window where the slope is steady.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _probes as P
from ._check import _is_float, _Problem, _require_finite
from ._report import fn_name

#: Steps are ``h0 2^-j`` for ``j = 0 .. LADDER - 1``.
LADDER = 40
#: A remainder counts when it is above this many times its rounding floor.
ABOVE_FLOOR = 100.0
#: Consecutive slopes form a window when they lie within this of each other.
STEADY = 0.2


@dataclasses.dataclass(frozen=True)
class TaylorResult:
    """What :func:`taylor_test` saw.

    Attributes:
      name: the function's name.
      steps, remainders: the ladder ``h`` and ``|f(x + h u) - f(x) - h <g, u>|``.
      floor: the rounding floor of the remainders (``ABOVE_FLOOR`` times it counts).
      order: the observed order in the window (2 for a correct gradient, 1 for a
        wrong one), or ``None`` when no valid window exists.
      window: ``(h_small, h_large)`` of that window, or ``None``.
      ok: ``order`` is within 0.1 of 2 (or the remainder is at rounding level at
        every step: ``f`` is linear along ``u`` and the gradient exact).
      message: one line saying what was found.
    """

    name: str
    steps: tuple[float, ...]
    remainders: tuple[float, ...]
    floor: float
    order: float | None
    window: tuple[float, float] | None
    ok: bool
    message: str

    def __str__(self) -> str:
        return f"taylor test of {self.name}: {self.message}"


def taylor_test(
    f: Callable[..., Any],
    *args: Any,
    argnums: int | tuple[int, ...] = 0,
    direction: Any = None,
    grad: Any = None,
    seed: int = 0,
    name: str | None = None,
) -> TaylorResult:
    """The Taylor test of a gradient: the observed order of the first-order remainder.

    ``r(h) = |f(x + h u) - f(x) - h <g, u>|`` is ``O(h^2)`` when ``g`` is the gradient
    and ``~ h |<g - grad f, u>|`` when it is not. ``r`` is evaluated at ``h = h0 2^-j``
    (``h0 = max(1, rms(x))``), in float64 when ``jax_enable_x64`` is on and ``f``
    accepts it; steps whose remainder is within ``ABOVE_FLOOR`` times the rounding
    floor ``eps (|f(x)| + |f(x + h u)|)`` are dropped, and the order is the median
    slope of ``log r`` against ``log h`` in the smallest-step window of at least three
    steady slopes (spread below ``STEADY``).

    Args:
      f: a function returning a real scalar (a vector output is contracted with a
        random cotangent).
      *args: the point.
      argnums: the argument(s) ``x`` to perturb.
      direction: ``u``, shaped like ``args[argnums]``; default a random normal one.
      grad: the gradient ``g`` under test, shaped like ``args[argnums]`` (default
        ``jax.grad``, i.e. the test checks autodiff).
      seed: seeds the random direction and cotangent.
      name: the function's name in the result.

    Returns:
      A :class:`TaylorResult`; ``result.order``, ``result.ok``, ``print(result)``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> with jax.enable_x64(True):  # float64: a wide window above rounding
      ...     x = jnp.array([0.3, -1.2, 2.0], jnp.float64)
      ...     res = jaxnet.testing.taylor_test(lambda x: jnp.sum(jnp.sin(x)), x)
      ...     bad = jaxnet.testing.taylor_test(lambda x: jnp.sum(jnp.sin(x)), x,
      ...                                      grad=1.01 * jnp.cos(x))
      >>> res.ok, round(res.order, 1)
      (True, 2.0)
      >>> bad.ok, round(bad.order, 1)
      (False, 1.0)
    """
    fname = fn_name(f, name)
    nums = argnums if isinstance(argnums, tuple) else (argnums,)
    for i in nums:
        _require_finite("", args[i], "taylor_test")
    prob = _Problem(f, args, fname)
    v = prob.cotangent(0, seed)
    x = tuple(args[i] for i in nums)
    rng = np.random.default_rng([seed, 31337])
    if direction is None:
        u = jax.tree.map(
            lambda a: jnp.asarray(
                rng.standard_normal(jnp.shape(a)), jnp.asarray(a).dtype
            ),
            x,
        )
    else:
        u = direction if isinstance(argnums, tuple) else (direction,)
    base = prob.ref_args
    wide = jax.tree.map(lambda a: jnp.asarray(a).dtype, tuple(base[i] for i in nums))

    def at(h: jax.Array, xs: tuple[Any, ...], us: tuple[Any, ...]) -> jax.Array:
        moved = [
            jax.tree.map(lambda a, b: a + h.astype(a.dtype) * b, xi, ui)
            for xi, ui in zip(xs, us)
        ]
        full = P.replace_args(base, nums, moved)
        return P.contract(prob.f(*full), [c.astype(jnp.result_type(h)) for c in v])[0]

    xs_w = tuple(base[i] for i in nums)
    us_w = jax.tree.map(lambda b, d: jnp.asarray(b, d), u, wide)
    if grad is None:

        def s(*xs: Any) -> jax.Array:
            return P.contract(prob.f(*P.replace_args(args, nums, xs)), v)[0]

        g = jax.grad(s, argnums=tuple(range(len(nums))))(*x)
    else:
        g = grad if isinstance(argnums, tuple) else (grad,)
    gu = float(
        sum(
            jnp.sum(
                jnp.asarray(
                    a, jnp.float64 if jax.config.read("jax_enable_x64") else None
                )
                * b
            )
            for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(us_w))
            if _is_float(a)
        )
    )
    leaves = [jnp.asarray(l) for l in jax.tree.leaves(xs_w)]
    rms = math.sqrt(
        sum(float(jnp.sum(jnp.square(l))) for l in leaves)
        / max(1, sum(l.size for l in leaves))
    )
    h0 = max(1.0, rms)
    dt = jnp.asarray(leaves[0]).dtype
    ev = jax.jit(at)
    f0 = float(ev(jnp.asarray(0.0, dt), xs_w, us_w))
    steps = [h0 * 2.0**-j for j in range(LADDER)]
    vals = [float(ev(jnp.asarray(h, dt), xs_w, us_w)) for h in steps]
    eps = float(jnp.finfo(dt).eps)
    rem = [abs(fv - f0 - h * gu) for h, fv in zip(steps, vals)]
    floors = [eps * (abs(f0) + abs(fv) + abs(h * gu)) for h, fv in zip(steps, vals)]
    floor = max(floors)
    valid = [r > ABOVE_FLOOR * fl and math.isfinite(r) for r, fl in zip(rem, floors)]
    slopes = []
    for j in range(LADDER - 1):
        if valid[j] and valid[j + 1]:
            slopes.append((j, math.log2(rem[j] / rem[j + 1])))
    window = _smallest_steady_window(slopes)
    last = max((j for j in range(LADDER) if valid[j]), default=None)
    vanishes = (
        last is not None
        and last < LADDER - 1
        and rem[last] > 1e4 * floors[last]
        and not any(valid[last + 1 :])
    )
    if vanishes:  # the remainder drops from far above rounding to rounding at once
        assert last is not None  # implied by vanishes
        ok, order, win = True, None, None
        message = (
            f"the remainder vanishes below h = {steps[last]:.1e}: f is linear along "
            "the direction near x (piecewise linear, e.g. relu) and the gradient "
            "exact there; larger steps cross kinks, so no order is read off them"
        )
    elif not any(valid):
        ok, order, win = True, None, None
        message = (
            "the remainder is at rounding level at every step: f is linear along the "
            "direction and the gradient exact there (nothing more to learn)"
        )
    elif window is None:
        ok, order, win = False, None, None
        message = (
            "no valid window: the remainder never settles into a steady slope above "
            "rounding (f may be non-smooth near x, or too noisy in this precision; "
            "try float64 or another point)"
        )
    else:
        js = window
        order = float(np.median([s for j, s in slopes if j in js]))
        win = (steps[max(js) + 1], steps[min(js)])
        ok = abs(order - 2.0) <= 0.1
        message = f"order {order:.2f} over h in [{win[0]:.1e}, {win[1]:.1e}] " + (
            "(2: the gradient is right)"
            if ok
            else "(expected 2: the gradient is wrong)"
        )
    return TaylorResult(fname, tuple(steps), tuple(rem), floor, order, win, ok, message)


def _smallest_steady_window(slopes: list[tuple[int, float]]) -> set[int] | None:
    """The run of >= 3 consecutive slopes within ``STEADY`` of each other that reaches
    the smallest step (the asymptotic regime), or ``None``."""
    best: set[int] | None = None
    for start in range(len(slopes)):
        run = [slopes[start]]
        for k in range(start + 1, len(slopes)):
            if slopes[k][0] != run[-1][0] + 1:
                break
            vals = [s for _, s in run] + [slopes[k][1]]
            if max(vals) - min(vals) > STEADY:
                break
            run.append(slopes[k])
        if len(run) >= 3:
            cand = {j for j, _ in run}
            if best is None or max(cand) > max(best):
                best = cand
    return best
