"""``check_vjp`` and ``check_jvp``: verify a user's ``jax.custom_vjp`` /
``jax.custom_jvp`` rule (or any function's derivative rules) before trusting it.

A custom rule is where gradients go silently wrong (jax issues 17496, 21220, 28805):
a rule that returns the right shapes but the wrong numbers trains without complaint.
Both checks run, in order: the primal against the undecorated function (when given);
the rule's output structure, shapes and dtypes against the primal's; linearity of the
rule in its cotangent / tangent (exact to rounding); and then :func:`check_grads`
against numerical derivatives with the same power (``modes=("rev", "fwd")`` for a
JVP rule, whose transpose is what ``jax.grad`` runs), and second order on request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._types import same_structure
from ._check import _is_float, check_grads
from ._probes import replace_args as _replace
from ._report import GradCheckRow, GradReport, compare, fn_name, noise_row, path_str
from ._tolerances import ROUNDING, SAFETY, tolerance


def _float_argnums(args: tuple[Any, ...]) -> tuple[int, ...]:
    return tuple(
        i
        for i, a in enumerate(args)
        if jax.tree.leaves(a) and all(_is_float(l) for l in jax.tree.leaves(a))
    )


def _structure_row(check: str, expected: Any, got: Any) -> tuple[GradCheckRow, str]:
    """A row that passes iff ``got`` has ``expected``'s structure, shapes and dtypes."""
    problem = ""
    if not same_structure(expected, got):
        problem = (
            f"{check}: structure {jax.tree.structure(got)} differs from the primal's "
            f"{jax.tree.structure(expected)}."
        )
    else:
        for (path, e), g in zip(
            jax.tree_util.tree_flatten_with_path(expected)[0], jax.tree.leaves(got)
        ):
            es, gs = (
                (jnp.shape(e), jnp.asarray(e).dtype),
                (jnp.shape(g), jnp.asarray(g).dtype),
            )
            if es != gs:
                problem = (
                    f"{check}: '{path_str(path) or '(arg)'}' is {gs[1]}{list(gs[0])}, "
                    f"the primal is {es[1]}{list(es[0])}."
                )
                break
    ok = not problem
    row = GradCheckRow(
        "", check, (), "", 0.0, 0.0, (), 0.0, 0.0, ok, "ok" if ok else "FAIL",
        "exhaustive", 1, float("nan"), "structure",
    )  # fmt: skip
    return row, problem


def _linearity_rows(
    check: str,
    lin: Callable[[Any], Any],
    t1: Any,
    t2: Any,
    alpha: float,
    beta: float,
    strip: bool = False,
) -> list[GradCheckRow]:
    """``lin(alpha t1 + beta t2)`` against ``alpha lin(t1) + beta lin(t2)``, per leaf
    (``strip``: drop the leading tuple index of a single argument's paths)."""
    comb = jax.tree.map(lambda a, b: alpha * a + beta * b, t1, t2)
    y1, y2, y = lin(t1), lin(t2), lin(comb)
    rows = []
    for (path, a), b, c in zip(
        jax.tree_util.tree_flatten_with_path(y)[0],
        jax.tree.leaves(y1),
        jax.tree.leaves(y2),
    ):
        a = np.asarray(a, np.float64)
        ref = alpha * np.asarray(b, np.float64) + beta * np.asarray(c, np.float64)
        eps = float(jnp.finfo(jnp.asarray(b).dtype).eps)
        mag = np.abs(a) + abs(alpha) * np.abs(b) + abs(beta) * np.abs(c)
        tau = SAFETY * ROUNDING * eps * (mag + np.max(mag, initial=0.0))
        scale = max(float(np.linalg.norm(ref)), float(np.linalg.norm(a)))
        t = 2.0 * float(np.linalg.norm(tau))
        detect = t / scale if scale > t else 0.0
        rows.append(
            noise_row(
                path_str(path[1:] if strip else path), check, tuple(a.shape),
                str(jnp.asarray(b).dtype),
                a, ref, tau, mode="exhaustive", detectable=detect, method="linearity",
            )
        )  # fmt: skip
    return rows


def _primal_rows(
    f: Callable[..., Any], reference: Callable[..., Any] | None, args: tuple[Any, ...]
) -> list[GradCheckRow]:
    if reference is None:
        return []
    rows = []
    for (path, a), r in zip(
        jax.tree_util.tree_flatten_with_path(f(*args))[0],
        jax.tree.leaves(reference(*args)),
    ):
        dt = jnp.asarray(a).dtype
        rows.append(
            dataclasses.replace(
                compare(path_str(path), "primal vs reference", a, r, tolerance(dt)),
                method="reference",
            )
        )
    return rows


def _random_like(tree: Any, rng: np.random.Generator) -> Any:
    return jax.tree.map(
        lambda a: jnp.asarray(rng.standard_normal(jnp.shape(a)), jnp.asarray(a).dtype),
        tree,
    )


def check_vjp(
    f: Callable[..., Any],
    *args: Any,
    reference: Callable[..., Any] | None = None,
    argnums: int | tuple[int, ...] | None = None,
    order: int = 1,
    seed: int = 0,
    name: str | None = None,
    **options: Any,
) -> GradReport:
    """Verify ``f``'s reverse-mode rule (a ``jax.custom_vjp`` or any JAX function).

    Checks, as rows of one report: ``primal vs reference`` (``f(*args)`` against the
    undecorated ``reference(*args)``, per output leaf, when given); ``cotangent
    structure`` (the VJP's output has the primals' structure, shapes and dtypes);
    ``vjp linearity`` (``vjp(a v1 + b v2) = a vjp(v1) + b vjp(v2)``, exact to
    rounding); then :func:`check_grads` in reverse mode with random cotangents
    (``order=2`` adds Hessian-vector products).

    Args:
      f: the function with the rule; any pytree output.
      *args: the point.
      reference: optional undecorated implementation with the same signature.
      argnums: the differentiated arguments (default: every floating-point one).
      order: 1 or 2.
      seed: seeds the cotangents and directions.
      name: the function's name in the report.
      **options: passed to :func:`check_grads` (``method``, ``mode``, ``detect``...).

    Returns:
      A :class:`GradReport`.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> @jax.custom_vjp
      ... def square(x):
      ...     return x * x
      >>> square.defvjp(lambda x: (x * x, x), lambda x, g: (3 * x * g,))  # wrong: 2x
      >>> report = jaxnet.testing.check_vjp(square, jnp.array([0.5, -1.0, 2.0]),
      ...                                   reference=lambda x: x * x)
      >>> report.ok, [r.check for r in report.failures()]
      (False, ['jax.grad vs complex'])
    """
    fname = fn_name(f, name)
    nums = _nums(argnums, args)
    rng = np.random.default_rng([seed, 4242])
    rows = _primal_rows(f, reference, args)
    notes: list[str] = []

    def at(*diff: Any) -> Any:
        return f(*_replace(args, nums, diff))

    primals = tuple(args[i] for i in nums)
    out, pullback = jax.vjp(at, *primals)
    v1, v2 = _random_like(out, rng), _random_like(out, rng)
    try:
        ct = pullback(v1)
        row, problem = _structure_row("cotangent structure", primals, ct)
    except Exception as exc:  # noqa: BLE001 - jax refuses a malformed rule here
        row, problem = _structure_row("cotangent structure", primals, None)
        problem = f"cotangent structure: the rule raised {type(exc).__name__}: {exc}"
    rows.append(row)
    if problem:
        notes.append(problem)
        return GradReport(fname, tuple(rows), tuple(notes))
    rows += _linearity_rows(
        "vjp linearity", pullback, v1, v2, 0.7, -1.3, strip=len(nums) == 1
    )
    grads = check_grads(
        f, *args, argnums=nums if len(nums) > 1 else nums[0], order=order, seed=seed,
        name=fname, **options,
    )  # fmt: skip
    return GradReport(fname, tuple(rows) + grads.rows, tuple(notes) + grads.notes)


def check_jvp(
    f: Callable[..., Any],
    *args: Any,
    reference: Callable[..., Any] | None = None,
    argnums: int | tuple[int, ...] | None = None,
    order: int = 1,
    seed: int = 0,
    name: str | None = None,
    **options: Any,
) -> GradReport:
    """Verify ``f``'s forward-mode rule (a ``jax.custom_jvp`` or any JAX function).

    Checks: ``primal vs reference`` (when given); ``jvp primal`` (the primal output
    of ``jax.jvp`` equals ``f(*args)``); ``tangent structure`` (the tangent output has
    the primal output's structure, shapes and dtypes); ``jvp linearity`` in the
    tangents; then :func:`check_grads` with ``modes=("rev", "fwd")``: the JVP against
    numerical derivatives, and ``jax.grad`` (which JAX derives by transposing the JVP
    rule) against them and against the JVP (the transpose identity). A wrong JVP
    rule therefore fails here and in :func:`check_vjp` of the same function.

    Args:
      f, *args, reference, argnums, order, seed, name, **options: as
        :func:`check_vjp`.

    Returns:
      A :class:`GradReport`.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> @jax.custom_jvp
      ... def softplus(x):
      ...     return jnp.logaddexp(x, 0.0)
      >>> softplus.defjvps(lambda t, y, x: t * jax.nn.sigmoid(x))
      >>> jaxnet.testing.check_jvp(softplus, jnp.array([0.5, -1.0, 2.0])).ok
      True
    """
    fname = fn_name(f, name)
    nums = _nums(argnums, args)
    rng = np.random.default_rng([seed, 2424])
    rows = _primal_rows(f, reference, args)
    notes: list[str] = []

    def at(*diff: Any) -> Any:
        return f(*_replace(args, nums, diff))

    primals = tuple(args[i] for i in nums)
    t1, t2 = _random_like(primals, rng), _random_like(primals, rng)
    value = f(*args)
    try:
        y, ty = jax.jvp(at, primals, t1)
    except Exception as exc:  # noqa: BLE001 - a malformed rule raises here
        row, _ = _structure_row("tangent structure", value, None)
        notes.append(f"tangent structure: the rule raised {type(exc).__name__}: {exc}")
        return GradReport(fname, tuple(rows) + (row,), tuple(notes))
    for (path, a), r in zip(
        jax.tree_util.tree_flatten_with_path(y)[0], jax.tree.leaves(value)
    ):
        rows.append(
            dataclasses.replace(
                compare(
                    path_str(path),
                    "jvp primal vs f",
                    a,
                    r,
                    tolerance(jnp.asarray(a).dtype),
                ),
                method="f",
            )
        )
    row, problem = _structure_row("tangent structure", value, ty)
    rows.append(row)
    if problem:
        notes.append(problem)
        return GradReport(fname, tuple(rows), tuple(notes))
    rows += _linearity_rows(
        "jvp linearity", lambda t: jax.jvp(at, primals, t)[1], t1, t2, 0.7, -1.3
    )
    options.setdefault("modes", ("rev", "fwd"))
    grads = check_grads(
        f, *args, argnums=nums if len(nums) > 1 else nums[0], order=order, seed=seed,
        name=fname, **options,
    )  # fmt: skip
    return GradReport(fname, tuple(rows) + grads.rows, tuple(notes) + grads.notes)


def _nums(
    argnums: int | tuple[int, ...] | None, args: tuple[Any, ...]
) -> tuple[int, ...]:
    if argnums is None:
        nums = _float_argnums(args)
        if not nums:
            raise ValueError(
                "check_vjp/check_jvp: no floating-point argument to differentiate; "
                "pass argnums=..."
            )
        return nums
    return argnums if isinstance(argnums, tuple) else (argnums,)
