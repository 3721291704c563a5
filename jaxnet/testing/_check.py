"""``check_grads``: reverse mode, forward mode and second order against numerical
derivatives, per parameter leaf, exhaustively or along random directions.

Unlike ``jax.test_util.check_grads`` it reports *per leaf* (path, worst error and
where, tolerance, the smallest error it could have detected); random directions are
restricted to one leaf at a time, so no leaf is masked by a larger one; tolerances
come from the measured noise of the numerical reference, never from the array's size;
and a correct gradient is never reported wrong: a reference too noisy to tell says so
(verdict ``"noisy"``). ``docs/verification.md`` has the statistical argument.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._types import same_treedef
from . import _numeric as N
from . import _probes as P
from ._report import (
    GradCheckRow,
    GradReport,
    compare,
    fn_name,
    noise_row,
    path_str,
)
from ._tolerances import ROUNDING, SAFETY, Tolerance, tolerance

#: ``mode="auto"`` checks leaves up to this many elements exhaustively.
EXHAUSTIVE_MAX = 64
#: Vector outputs up to this many elements get a full Jacobian in exhaustive mode.
JACOBIAN_MAX = 16
MODES = ("rev", "fwd")

__all__ = ["GradCheckRow", "GradReport", "check_grads", "compare", "path_str"]


# ----------------------------------------------------------------------- the point


@dataclasses.dataclass(frozen=True)
class _Leaf:
    argnum: int
    pos: int
    path: str
    shape: tuple[int, ...]
    dtype: Any
    flat: int = 0  # position among all differentiated leaves (argnums order)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _get(args: tuple[Any, ...], leaf: _Leaf) -> jax.Array:
    return jax.tree.leaves(args[leaf.argnum])[leaf.pos]


def _is_float(x: Any) -> bool:
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)


def _widen(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Every floating leaf of every argument in float64 (x64 must be on)."""
    return jax.tree.map(
        lambda a: jnp.asarray(a, jnp.float64) if _is_float(a) else a, args
    )


def _first_nonfinite(x: np.ndarray) -> tuple[str, tuple[int, ...]]:
    bad = ~np.isfinite(x)
    idx = np.unravel_index(int(np.argmax(bad)), x.shape) if x.ndim else ()
    return str(x[idx]), tuple(int(i) for i in idx)


def _require_finite(where: str, tree: Any, fname: str = "check_grads") -> None:
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            value, idx = _first_nonfinite(arr)
            name = "/".join(filter(None, [where, path_str(path)]))
            raise ValueError(
                f"{fname}: '{name}' holds a non-finite value ({value} at index "
                f"{idx}); gradients are only checked at finite points. Pass finite "
                "inputs (an edge point such as inf is tested with its own assertion)."
            )


def _erfinv(y: float) -> float:
    """Inverse of ``math.erf`` on ``[0, 1)`` by bisection (no SciPy needed)."""
    lo, hi = 0.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid) < y else (lo, mid)
    return (lo + hi) / 2


def directions_needed(tau_rel: float, detect: float, miss: float, cap: int) -> int:
    """Random directions so that a relative error ``detect`` is missed w.p. <= miss.

    For a Gaussian direction ``u`` and an error ``e`` in a leaf's gradient ``g`` with
    ``|e| = detect |g|``, ``<e, u> ~ N(0, |e|^2)``; a probe misses it when ``|<e, u>|``
    is within twice the probe's tolerance ``tau = tau_rel |g|`` (the noise may cancel up
    to ``tau``), with probability ``q = erf(sqrt(2) tau_rel / detect)``. ``K``
    independent directions miss it with probability ``q^K``.
    """
    q = math.erf(math.sqrt(2.0) * tau_rel / detect)
    if q <= 0.0:
        return 1
    if q >= 1.0:
        return cap
    return int(min(cap, max(1, math.ceil(math.log(miss) / math.log(q)))))


def detectable_at(tau_rel: Any, k: int | None = None, miss: float = 1e-6) -> float:
    """The smallest relative error caught w.p. >= 1 - miss by the directions.

    ``tau_rel`` is one direction's tolerance over the gradient norm (then ``k``
    directions with that tolerance) or a sequence of them, one per direction: the
    ``rho`` with ``prod_k erf(sqrt(2) tau_k / rho) = miss``.
    """
    taus = [float(tau_rel)] * int(k or 1) if np.ndim(tau_rel) == 0 else list(tau_rel)
    if not taus or max(taus) <= 0.0:
        return 0.0

    def p_miss(rho: float) -> float:
        return math.prod(math.erf(math.sqrt(2.0) * t / rho) for t in taus)

    lo, hi = 1e-300, 1e300
    for _ in range(2000):  # bisection in log space
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if p_miss(mid) > miss else (lo, mid)
        if hi / lo < 1 + 1e-12:
            break
    return hi


# ------------------------------------------------------------------ the function


class _Problem:
    """``f`` at the point, in the gradient's own precision and in the reference's."""

    def __init__(
        self,
        f: Callable[..., Any],
        args: tuple[Any, ...],
        fname: str,
        nums: tuple[int, ...] | None = None,
        seed: int = 0,
    ):
        """With ``nums``, also ``self.grads0``: ``J^T v`` at direction 0's cotangent,
        computed with the output in one compiled call (no separate forward)."""
        self.f, self.args, self.fname = f, args, fname
        shapes = jax.eval_shape(f, *args)
        leaves = jax.tree.leaves(shapes)
        if not leaves or not all(jnp.issubdtype(l.dtype, jnp.floating) for l in leaves):
            raise ValueError(
                f"check_grads: {fname} must return real floating-point arrays (a "
                f"scalar or any pytree of them), got "
                f"{[str(l.dtype) for l in leaves]}."
            )
        self.out_tree = jax.tree.structure(shapes)
        self.out_shapes = [(tuple(l.shape), l.dtype) for l in leaves]
        self.scalar = len(leaves) == 1 and leaves[0].shape == ()
        if nums is None:
            out = P.cached_jit(f, P.call)(args)
        else:
            v0 = self.cotangent(0, seed)
            out, self.grads0 = P.cached_jit(f, P.pullback, nums)(args, v0)
        for path, leaf in jax.tree_util.tree_flatten_with_path(out)[0]:
            arr = np.asarray(leaf)
            if not np.all(np.isfinite(arr)):
                where = f" output '{path_str(path)}'" if path else ""
                value = float(arr) if arr.ndim == 0 else _first_nonfinite(arr)[0]
                raise ValueError(
                    f"check_grads: {fname}{where} is {value} at this point."
                )
        self.out_size = sum(math.prod(s) for s, _ in self.out_shapes)
        self.ref_args, self.note = self._reference_args(out)

    def _reference_args(self, out: Any) -> tuple[tuple[Any, ...], str]:
        narrow = [
            l
            for l in jax.tree.leaves(self.args) + jax.tree.leaves(out)
            if _is_float(l) and jnp.finfo(jnp.asarray(l).dtype).bits < 64
        ]
        if not narrow:
            return self.args, ""
        if not jax.config.read("jax_enable_x64"):
            return self.args, (
                "note: the numerical reference is in the inputs' precision; enable "
                "float64 (jax.config.update('jax_enable_x64', True)) for a float64 "
                "reference of lower-precision leaves."
            )
        wide = _widen(self.args)
        try:
            out64 = jax.eval_shape(self.f, *wide)
            ok = all(l.dtype == jnp.float64 for l in jax.tree.leaves(out64))
        except Exception:  # noqa: BLE001 - f does not accept float64: say so below
            ok = False
        if not ok:
            return self.args, (
                f"note: {self.fname} does not compute in float64 when given float64 "
                "inputs; the numerical reference is in the inputs' own precision."
            )
        return wide, ""

    def cotangent(self, k: int, seed: int) -> list[jax.Array]:
        """Direction ``k``'s output cotangent: ``[1.0]`` for a scalar ``f``."""
        if self.scalar:
            return [jnp.ones((), self.out_shapes[0][1])]
        rng = np.random.default_rng([seed, 7919, k])
        return [jnp.asarray(rng.standard_normal(s), dt) for s, dt in self.out_shapes]


# ----------------------------------------------------------------- the checker


def _tested_grads(
    prob: _Problem,
    nums: tuple[int, ...],
    v: list[jax.Array],
    base: tuple[Any, ...] | None = None,
) -> tuple[Any, ...]:
    """``J^T v`` for every differentiated argument (``jax.grad`` for a scalar f),
    compiled once per function (module :mod:`._probes`)."""
    fn = P.cached_jit(prob.f, P.pullback, nums)
    return fn(prob.args if base is None else base, v)[1]


def _leaf_of(tree: Any, pos: int) -> jax.Array:
    return jax.tree.leaves(tree)[pos]


def check_grads(
    f: Callable[..., Any],
    *args: Any,
    analytic: Callable[..., Any] | None = None,
    method: str | None = "auto",
    argnums: int | tuple[int, ...] = 0,
    names: Sequence[str] | None = None,
    tol: dict[str, Tolerance] | None = None,
    name: str | None = None,
    mode: str = "auto",
    modes: Sequence[str] = ("rev",),
    order: int = 1,
    detect: float | None = None,
    miss: float = 1e-6,
    seed: int = 0,
    exhaustive_max: int = EXHAUSTIVE_MAX,
    max_directions: int = 64,
    locate: bool = True,
) -> GradReport:
    """Check ``jax.grad(f)`` (and ``jax.jvp``, and second order) against numerical
    derivatives and an optional analytic gradient, leaf by leaf.

    Each differentiated leaf is checked **exhaustively** (every element, the default
    for leaves of at most ``exhaustive_max`` elements) or along **random directions
    restricted to that leaf** (``mode="directional"``, the default above): the
    reverse-mode directional derivative ``<J^T v, u>``, the forward-mode ``<v, J u>``
    and a numerical one are compared, per direction. A vector-valued ``f`` is
    contracted with random cotangents ``v`` (never a plain sum); with at most
    ``JACOBIAN_MAX`` outputs, exhaustive mode compares the full Jacobian.

    Tolerances come from the measured noise of the numerical reference (module
    :mod:`jaxnet.testing._numeric`): Richardson error estimates for central
    differences, rounding bounds for the complex step. For float32 (and bfloat16)
    leaves the reference is computed in float64 when ``jax_enable_x64`` is on and
    ``f`` accepts float64 inputs. The number of directions per leaf follows from the
    measured noise and the requested power (``detect``, ``miss``) and each row
    prints it, with the smallest relative error it could have detected. When a
    directional row fails, the worst element is located by bisection (group testing
    on directional derivatives: ``2 ceil(log2 n) + 2`` evaluations) and reported as
    the row's ``worst_index``.

    Rows (``check``): ``jax.grad vs analytic`` (elementwise, the table tolerance),
    ``jax.grad vs <method>``, ``analytic vs <method>``; with ``"fwd"`` in ``modes``:
    ``jvp vs <method>`` and ``jvp vs jax.grad`` (the transpose identity
    ``<J u, v> = <u, J^T v>``, exact to rounding); with ``order=2``:
    ``hvp vs central(grad)`` (finite differences of gradients) and ``hvp fwd-over-rev
    vs rev-over-rev``.

    Args:
      f: a function of ``args`` returning a real scalar or any pytree of real arrays.
      *args: the point; ``args[argnums]`` may be any pytree of float arrays.
      analytic: optional ``analytic(*args)`` returning the gradient of a scalar ``f``
        with the structure of ``jax.grad(f, argnums)(*args)``.
      method: the numerical reference: ``"auto"`` (the complex step where ``f``
        accepts complex input and agrees with central differences on a first
        direction, else central differences), ``"central"``, ``"complex"`` (for
        real-analytic ``f`` written with complex-safe ops: no ``abs``, ``max`` or
        comparisons), or ``None`` (the analytic comparison alone).
      argnums: which argument(s) to differentiate.
      names: labels of the differentiated arguments in paths (default ``arg0``...);
        with a single ``argnums`` paths are the leaf paths alone.
      tol: optional override of the table tolerance of the analytic comparison,
        ``{"analytic": Tolerance(...)}``.
      name: the function's name in the report header.
      mode: ``"auto"``, ``"exhaustive"`` or ``"directional"``.
      modes: ``("rev",)`` or ``("rev", "fwd")``.
      order: 1, or 2 to also check Hessian-vector products per leaf.
      detect: the relative gradient error (a fraction of the leaf's gradient norm)
        that directional mode must catch with probability ``>= 1 - miss``; default:
        ten times the noise floor of one direction.
      miss: the allowed probability of missing an error of size ``detect``.
      seed: seeds the random directions and cotangents.
      exhaustive_max: the largest leaf checked element by element in ``"auto"``.
      max_directions: the most directions per leaf.
      locate: bisect failing directional rows to their worst element.

    Returns:
      A :class:`GradReport`: ``report.ok``, ``report.failures()``, ``report.noisy()``,
      ``report.assert_ok()``, ``print(report)``, ``report.to_records()``.

    Raises:
      ValueError: for non-finite arguments, a non-finite or non-float ``f``, an
        analytic gradient whose structure or shapes differ from ``jax.grad``'s, or an
        unknown ``method``/``mode``/``modes``/``order``.

    Examples:
      >>> import jax.numpy as jnp, jaxnet
      >>> def f(w):
      ...     return jnp.sum(jnp.sin(w["a"]))
      >>> report = jaxnet.testing.check_grads(
      ...     f, {"a": jnp.array([0.5, 1.0])}, analytic=lambda w: {"a": jnp.cos(w["a"])})
      >>> report.ok, [r.check for r in report.rows]
      (True, ['jax.grad vs analytic', 'jax.grad vs complex', 'analytic vs complex'])
    """
    fname = fn_name(f, name)
    multi = isinstance(argnums, tuple)
    nums: tuple[int, ...] = argnums if isinstance(argnums, tuple) else (argnums,)
    labels = list(names) if names is not None else [f"arg{i}" for i in nums]
    if len(labels) != len(nums):
        raise ValueError(f"check_grads: {len(nums)} argnums but {len(labels)} names.")
    if method not in (None, "auto", "central", "complex"):
        raise ValueError(
            "check_grads: method must be 'auto', 'central', 'complex' or None, got "
            f"{method!r}."
        )
    if mode not in ("auto", "exhaustive", "directional"):
        raise ValueError(
            "check_grads: mode must be 'auto', 'exhaustive' or 'directional', got "
            f"{mode!r}."
        )
    modes = tuple(modes)
    if not modes or any(m not in MODES for m in modes):
        raise ValueError(
            f"check_grads: modes must be a non-empty subset of {MODES}, got {modes!r}."
        )
    if order not in (1, 2):
        raise ValueError(f"check_grads: order must be 1 or 2, got {order!r}.")
    for i, label in zip(nums, labels):
        _require_finite(label if multi else "", args[i])
    prob = _Problem(f, args, fname, nums, seed)
    if analytic is not None and not prob.scalar:
        raise ValueError(
            f"check_grads: analytic= needs a scalar {fname}; for a vector output "
            "check its VJP with jaxnet.testing.check_vjp."
        )
    if not prob.scalar and method is None and analytic is None:
        method = "auto"

    leaves: list[_Leaf] = []
    for argnum, label in zip(nums, labels):
        for pos, (path, leaf) in enumerate(
            jax.tree_util.tree_flatten_with_path(args[argnum])[0]
        ):
            p = "/".join(filter(None, [label if multi else "", path_str(path)]))
            if not _is_float(leaf):
                raise ValueError(
                    f"check_grads: '{p or label}' is {jnp.asarray(leaf).dtype}; only "
                    "floating-point leaves are differentiated. Move integer inputs "
                    "(token ids, labels) to an argument outside argnums."
                )
            leaves.append(
                _Leaf(argnum, pos, p, tuple(jnp.shape(leaf)), leaf.dtype, len(leaves))
            )

    grads0 = prob.grads0
    an = analytic(*args) if analytic is not None else None
    an_t: Any = None
    if an is not None:
        an_t = an if multi else (an,)
        s_auto, s_an = jax.tree.structure(grads0), jax.tree.structure(tuple(an_t))
        if not same_treedef(s_auto, s_an):
            raise ValueError(
                f"check_grads: the analytic gradient's structure {s_an} differs from "
                f"jax.grad's {s_auto}."
            )
    ctx = _Context(prob, nums, seed, miss, detect, max_directions, locate, modes)
    ctx.analytic, ctx.multi = analytic, multi
    ctx._grads[0] = grads0
    ctx.shared = len(leaves) >= 2 and sum(l.size for l in leaves) <= P.SHARED_MAX
    # The gradient's overall scale: an element's rounding is at least eps times the
    # terms summed into it, which a zero-by-cancellation leaf does not show.
    ctx.gscale = max(
        (float(np.max(np.abs(l))) for l in jax.tree.leaves(grads0) if l.size),
        default=0.0,
    )
    try:
        rows = _rows(
            ctx, leaves, method, mode, order, exhaustive_max, grads0, an, an_t, tol
        )
    except TypeError as exc:
        if "fwd" in modes and "forward-mode" in str(exc):
            raise ValueError(
                f"check_grads: modes includes 'fwd' but {fname} has no forward mode "
                "(a jax.custom_vjp function cannot be differentiated forward). Check "
                "it with modes=('rev',) (or check_vjp), or give it a custom_jvp."
            ) from None
        raise
    notes = (prob.note,) if prob.note else ()
    return GradReport(fname, tuple(rows), notes + tuple(ctx.notes))


def _rows(ctx, leaves, method, mode, order, exhaustive_max, grads0, an, an_t, tol):
    """Every row of every leaf (the body of :func:`check_grads`)."""
    nums = ctx.nums
    rows: list[GradCheckRow] = []
    for leaf in leaves:
        k = nums.index(leaf.argnum)
        g_auto = _leaf_of(grads0[k], leaf.pos)
        g_an = _leaf_of(an_t[k], leaf.pos) if an is not None else None
        if g_an is not None:
            if jnp.shape(g_an) != jnp.shape(g_auto):
                raise ValueError(
                    f"check_grads: analytic gradient of '{leaf.path}' has shape "
                    f"{jnp.shape(g_an)}, jax.grad's has {jnp.shape(g_auto)}."
                )
            t = tol["analytic"] if tol and "analytic" in tol else None
            rows.append(
                compare(
                    leaf.path,
                    "jax.grad vs analytic",
                    g_auto,
                    g_an,
                    t or tolerance(jnp.asarray(g_auto).dtype, "analytic"),
                )
            )
        if method is None:
            continue
        exhaustive = mode == "exhaustive" or (
            mode == "auto" and leaf.size <= exhaustive_max
        )
        if exhaustive:
            rows += _exhaustive_rows(ctx, leaf, method, g_auto, g_an)
        else:
            rows += _directional_rows(ctx, leaf, method, g_an)
        if order == 2:
            rows += _hvp_rows(ctx, leaf)
    return rows


@dataclasses.dataclass
class _Context:
    prob: _Problem
    nums: tuple[int, ...]
    seed: int
    miss: float
    detect: float | None
    max_directions: int
    locate: bool
    modes: tuple[str, ...]
    notes: list[str] = dataclasses.field(default_factory=list)
    _grads: dict[int, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    _grads_ref: dict[int, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    analytic: Callable[..., Any] | None = None
    multi: bool = False
    gscale: float = 0.0
    _an_ref: Any = None
    shared: bool = False  # one compiled probe for every leaf (module _probes)
    _zeros: dict[bool, list[jax.Array]] = dataclasses.field(default_factory=dict)

    def place(self, leaf: _Leaf, value: jax.Array, ref: bool = False) -> list[Any]:
        """``value`` at ``leaf``'s position among the differentiated leaves; zeros
        elsewhere when the probe is shared, ``None`` (not perturbed) otherwise."""
        if not self.shared:
            out: list[Any] = [None] * self.n_leaves
        else:
            if ref not in self._zeros:
                base = self.prob.ref_args if ref else self.prob.args
                self._zeros[ref] = [
                    jnp.zeros_like(x) for x in P.diff_leaves(base, self.nums)
                ]
            out = list(self._zeros[ref])
        out[leaf.flat] = value
        return out

    @functools.cached_property
    def n_leaves(self) -> int:
        """How many differentiated leaves there are (all ``argnums``)."""
        return len(P.diff_leaves(self.prob.args, self.nums))

    def direction(self, leaf: _Leaf, k: int, salt: int = 0) -> jax.Array:
        """Direction ``k`` of ``leaf``: standard Gaussian, in the leaf's own dtype.

        Drawn with numpy on the host: ``jax.random`` would compile a sampler per
        leaf shape (about 0.5 s each on the 2-core CPU, most of a small model's
        check)."""
        rng = np.random.default_rng([self.seed, 104729, leaf.flat, k, salt])
        return jnp.asarray(rng.standard_normal(leaf.shape), leaf.dtype)

    def analytic_ref(self, leaf: _Leaf) -> jax.Array:
        """The analytic gradient at the float64 point (narrow leaves)."""
        if self._an_ref is None:
            assert self.analytic is not None  # asked for only when there is one
            an = self.analytic(*self.prob.ref_args)
            self._an_ref = an if self.multi else (an,)
        return _leaf_of(self._an_ref[self.nums.index(leaf.argnum)], leaf.pos)

    def grads(self, k: int) -> tuple[Any, ...]:
        """The gradient under test for direction ``k``'s cotangent (cached)."""
        key = 0 if self.prob.scalar else k
        if key not in self._grads:
            self._grads[key] = _tested_grads(
                self.prob, self.nums, self.prob.cotangent(key, self.seed)
            )
        return self._grads[key]

    def tested(self, leaf: _Leaf, k: int) -> jax.Array:
        return _leaf_of(self.grads(k)[self.nums.index(leaf.argnum)], leaf.pos)

    def tested_ref(self, leaf: _Leaf, k: int) -> jax.Array:
        """The same gradient at the float64 point: it measures the rounding of the
        gradient under test in its own precision (for narrow leaves only)."""
        key = 0 if self.prob.scalar else k
        if key not in self._grads_ref:
            v = self.prob.cotangent(key, self.seed)
            self._grads_ref[key] = _tested_grads(
                self.prob,
                self.nums,
                [c.astype(jnp.float64) for c in v],
                self.prob.ref_args,
            )
        return _leaf_of(self._grads_ref[key][self.nums.index(leaf.argnum)], leaf.pos)


def _eps(dtype: Any) -> float:
    return float(jnp.finfo(dtype).eps)


# -------------------------------------------------------------- exhaustive mode


def _exhaustive_rows(
    ctx: _Context,
    leaf: _Leaf,
    method: str,
    g_auto: jax.Array,
    g_an: jax.Array | None,
) -> list[GradCheckRow]:
    prob = ctx.prob
    jac = not prob.scalar and prob.out_size <= JACOBIAN_MAX
    v_ref = None if jac else prob.cotangent(0, ctx.seed)
    x_ref = _get(prob.ref_args, leaf)
    ref_dt = x_ref.dtype
    n = leaf.size
    narrow = jnp.dtype(ref_dt) != jnp.dtype(leaf.dtype)
    eps_t = _eps(leaf.dtype)
    vv = None if v_ref is None else [c.astype(ref_dt) for c in v_ref]

    def jacobian(how: str, base: tuple[Any, ...], v: Any) -> np.ndarray:
        fn = P.cached_jit(prob.f, P.jacobian, ctx.nums, leaf.flat, how)
        return np.asarray(fn(base, v), np.float64)

    # The tested derivatives, (n, m) with m = 1 (contracted) or the output size.
    if jac:
        tested = {"jax.grad": jacobian("rev", prob.args, None)}
    else:
        tested = {"jax.grad": np.asarray(g_auto, np.float64).reshape(n, 1)}
        if g_an is not None:
            tested["analytic"] = np.asarray(g_an, np.float64).reshape(n, 1)
    if "fwd" in ctx.modes:
        tested["jvp"] = jacobian(
            "fwd", prob.args, None if jac else prob.cotangent(0, ctx.seed)
        )
    wide = {}
    if narrow:  # the same derivatives at the float64 point: the measured rounding
        if jac:
            wide["jax.grad"] = jacobian("rev", prob.ref_args, None)
        else:
            wide["jax.grad"] = np.asarray(ctx.tested_ref(leaf, 0)).reshape(n, 1)
            if g_an is not None:
                wide["analytic"] = np.asarray(ctx.analytic_ref(leaf)).reshape(n, 1)
        if "fwd" in ctx.modes:
            wide["jvp"] = jacobian("fwd", prob.ref_args, vv)

    def tau_of(who: str, a: np.ndarray, sig: np.ndarray) -> np.ndarray:
        # An element's rounding scales with the terms that sum to it, which can be
        # as large as the leaf's largest element (cancellation): |a_i| + max|a|.
        mag = np.abs(a) + max(np.max(np.abs(a), initial=0.0), ctx.gscale)
        floor = ROUNDING * _eps(ref_dt) * mag
        floor = floor + (np.abs(a - wide[who]) if narrow else ROUNDING * eps_t * mag)
        return SAFETY * (sig + floor)

    def numeric(m: str, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        fn = P.cached_jit(prob.f, P.exhaustive, ctx.nums, leaf.flat, m)
        index = jnp.arange(n) if idx is None else jnp.asarray(idx)
        one = jnp.ones((), ref_dt)
        r, sig = (np.array(a, np.float64) for a in fn(prob.ref_args, vv, index, one))
        if m != "central":
            return r, sig
        for hs in N.REFINE[1:]:  # step refinement where the estimate is unresolved
            bad = np.any(sig > N.RESOLVED * np.abs(r), axis=1)
            if not bad.any():
                break
            # All elements again at the smaller step (same shapes: no recompile).
            out = fn(prob.ref_args, vv, index, hs * one)
            r2, s2 = (np.array(a, np.float64) for a in out)
            rel2 = np.max(s2 / np.maximum(np.abs(r2), 1e-300), axis=1)
            rel1 = np.max(sig / np.maximum(np.abs(r), 1e-300), axis=1)
            better = bad & (rel2 < rel1)
            r[better], sig[better] = r2[better], s2[better]
        return r, sig

    used = method
    if method in ("auto", "complex"):
        try:
            r, sig = numeric("complex")
        except Exception:  # noqa: BLE001 - f rejects complex input: use differences
            if method == "complex":
                raise
            r = None
        if method == "auto":
            # Central differences only where the complex step disagrees with a
            # tested derivative: they agree -> the gradient is wrong there (complex
            # kept); they differ -> the complex step is invalid for f (central for
            # the whole leaf, as if f had rejected complex input).
            bad = np.zeros(n, bool)
            if r is not None:
                for who, a in tested.items():
                    bad |= np.any(np.abs(a - r) > tau_of(who, a, sig), axis=1)
            if r is None or (
                bad.any() and not _complex_confirmed(numeric, r, bad, ref_dt)
            ):
                used, (r, sig) = "central", numeric("central")
            else:
                used = "complex"
    else:
        r, sig = numeric("central")
    assert r is not None  # the complex step, or central differences after it failed
    shape = leaf.shape + ((prob.out_size,) if jac else ())
    label = f"{used}@float64" if narrow else used
    rows = []
    for who, a in tested.items():
        tau = tau_of(who, a, sig)
        rows.append(
            noise_row(
                leaf.path,
                f"{who} vs {used}",
                shape,
                str(jnp.dtype(leaf.dtype)),
                _to_shape(a, leaf, jac),
                _to_shape(r, leaf, jac),
                _to_shape(tau, leaf, jac),
                mode="exhaustive",
                detectable=_exhaustive_detectable(r, a, tau),
                method=label,
                unresolved=_to_shape(sig > N.UNRESOLVED * np.abs(r), leaf, jac),
            )
        )
    if "fwd" in ctx.modes:
        a, b = tested["jax.grad"], tested["jvp"]
        mag = (
            np.abs(a) + np.abs(b) + 2 * max(np.max(np.abs(a), initial=0.0), ctx.gscale)
        )
        tau = SAFETY * ROUNDING * eps_t * mag
        if narrow:
            tau = tau + SAFETY * (
                np.abs(a - wide["jax.grad"]) + np.abs(b - wide["jvp"])
            )
        rows.append(
            noise_row(
                leaf.path,
                "jvp vs jax.grad",
                shape,
                str(jnp.dtype(leaf.dtype)),
                _to_shape(b, leaf, jac),
                _to_shape(a, leaf, jac),
                _to_shape(tau, leaf, jac),
                mode="exhaustive",
                detectable=_exhaustive_detectable(a, b, tau),
                method="transpose",
            )
        )
    if narrow and not jac:
        rows.append(_narrow_row(ctx, leaf))
    return rows


def _complex_confirmed(
    numeric: Callable[..., tuple[np.ndarray, np.ndarray]],
    r: np.ndarray,
    bad: np.ndarray,
    ref_dt: Any,
) -> bool:
    """Whether central differences at the ``bad`` elements agree with the complex
    step ``r`` there (within their own noise)."""
    idx = np.flatnonzero(bad)
    rc, sc = numeric("central", idx)
    return bool(
        np.all(
            np.abs(r[idx] - rc)
            <= SAFETY * sc + SAFETY * ROUNDING * _eps(ref_dt) * np.abs(rc)
        )
    )


def _to_shape(a: np.ndarray, leaf: _Leaf, jac: bool) -> np.ndarray:
    return a.reshape(leaf.shape + ((a.shape[1],) if jac else ()))


def _exhaustive_detectable(r: np.ndarray, a: np.ndarray, tau: np.ndarray) -> float:
    """``2 |tau| / |g|``: the norm of the smallest error vector sure to be seen.

    An error ``e`` is caught iff ``|e_i| > 2 tau_i`` for some element; the largest
    error that can hide has ``e_i = 2 tau_i`` everywhere. ``0.0`` ("zero") when the
    gradient is zero within the noise on both sides.
    """
    scale = max(float(np.linalg.norm(r)), float(np.linalg.norm(a)))
    t = 2.0 * float(np.linalg.norm(tau))
    if scale <= t:
        return 0.0 if float(np.max(np.abs(a - r), initial=0.0)) <= t else math.inf
    return t / scale


# ------------------------------------------------------------- directional mode


def _directional_rows(
    ctx: _Context, leaf: _Leaf, method: str, g_an: jax.Array | None
) -> list[GradCheckRow]:
    prob = ctx.prob
    ref_dt = _get(prob.ref_args, leaf).dtype
    narrow = jnp.dtype(ref_dt) != jnp.dtype(leaf.dtype)
    eps_t, eps_r = _eps(leaf.dtype), _eps(ref_dt)
    h0 = N.host_step(_get(prob.ref_args, leaf))
    fwd = "fwd" in ctx.modes

    def run(k: int, numeric: str) -> dict[str, Any]:
        probe = P.cached_jit(prob.f, P.directional, ctx.nums, numeric, fwd)
        v = prob.cotangent(k, ctx.seed)
        tested = [ctx.tested(leaf, k)] + ([g_an] if g_an is not None else [])
        tested_ref = []
        if narrow:
            tested_ref = [ctx.tested_ref(leaf, k)]
            if g_an is not None:
                tested_ref.append(ctx.analytic_ref(leaf))
        us = ctx.place(leaf, ctx.direction(leaf, k))
        placed = [ctx.place(leaf, t) for t in tested]
        placed_ref = [ctx.place(leaf, t, ref=True) for t in tested_ref]
        norms = [float(np.linalg.norm(np.asarray(t, np.float64))) for t in tested]
        best: tuple[float, dict[str, Any]] | None = None
        for hs in N.REFINE if numeric == "central" else (1.0,):
            out = probe(
                prob.args,
                prob.ref_args,
                us,
                v,
                [c.astype(ref_dt) for c in v],
                placed,
                placed_ref,
                h0 * hs,
            )
            out = jax.tree.map(float, jax.device_get(out))
            out["norm"] = norms
            rel = out["sigma"] / max(abs(out["r"]), 1e-300)
            if best is None or rel < best[0]:
                best = (rel, out)
            if not rel > N.RESOLVED:  # resolved (or the complex step): done
                break
        assert best is not None  # the loop runs at least once
        return best[1]

    def tau_of(o: dict[str, Any], i: int, numeric: str, a: str = "a") -> float:
        """The probe's tolerance: the reference's noise plus the tested rounding."""
        s = (o["S"][i] if a == "a" else o["Sb"]) + ctx.gscale * o["U1"]
        noise = o["sigma"] + ROUNDING * eps_r * s
        if not narrow:
            noise += ROUNDING * eps_t * s
        elif a == "a":  # measured: the same derivative at the float64 point
            noise += abs(o["a"][i] - o["a_ref"][i])
        else:
            noise += abs(o["b"] - o["b_ref"])
        return SAFETY * noise

    used = method
    if method == "auto":
        # The complex step where f allows it. A complex step that agrees with every
        # tested derivative on the first direction is taken as it is (a non-analytic
        # op that breaks the complex step and a gradient bug that matches it exactly
        # do not happen by chance); otherwise central differences decide between
        # them, and are compiled only then.
        try:
            pc = run(0, "complex")
        except Exception:  # noqa: BLE001 - f rejects complex input
            pc = None
        if pc is not None and math.isfinite(pc["r"]) and _agrees(pc, tau_of, fwd):
            used, pilot = "complex", pc
        else:
            pilot = run(0, "central")
            used = "central"
            if pc is not None and math.isfinite(pc["r"]):
                if abs(pc["r"] - pilot["r"]) <= SAFETY * pilot["sigma"] + tau_of(
                    pc, 0, "complex"
                ):
                    used, pilot = "complex", pc
    else:
        pilot = run(0, method)
    # How many directions: from the pilot's noise relative to the gradient's norm.
    norm = max(pilot["norm"][0], 1e-300)
    tau_rel = tau_of(pilot, 0, used) / norm
    target = ctx.detect if ctx.detect is not None else 10.0 * math.sqrt(2) * tau_rel
    count = directions_needed(
        tau_rel, max(target, 1e-300), ctx.miss, ctx.max_directions
    )
    outs = [pilot] + [run(k, used) for k in range(1, count)]
    # Directions noisier than the pilot: add more until the power is reached.
    while len(outs) < ctx.max_directions:
        taus = [tau_of(o, 0, used) / max(o["norm"][0], 1e-300) for o in outs]
        if detectable_at(taus, miss=ctx.miss) <= target:
            break
        outs.append(run(len(outs), used))
    who = ["jax.grad"] + (["analytic"] if g_an is not None else [])
    label = f"{used}@float64" if narrow else used
    dt = str(jnp.dtype(leaf.dtype))
    rows = []
    r = np.array([o["r"] for o in outs])
    norms = np.array([o["norm"][0] for o in outs])
    unresolved = np.array([o["sigma"] for o in outs]) > N.UNRESOLVED * np.abs(r)
    for i, w in enumerate(who):
        a = np.array([o["a"][i] for o in outs])
        tau = np.array([tau_of(o, i, used) for o in outs])
        row = noise_row(
            leaf.path, f"{w} vs {used}", leaf.shape, dt, a, r, tau,
            mode="directional",
            detectable=_directional_detectable(a, r, tau, norms, ctx.miss),
            method=label, unresolved=unresolved,
        )  # fmt: skip
        if row.verdict == "FAIL" and ctx.locate:
            with np.errstate(divide="ignore", invalid="ignore"):
                k = int(np.nanargmax(np.abs(a - r) / tau))
            index, evals = _locate(ctx, leaf, used, k, i, g_an)
            row = dataclasses.replace(row, worst_index=index)
            ctx.notes.append(
                f"{leaf.path or '(arg)'} ({w}): worst element {index} located by "
                "bisection in "
                f"{evals} evaluations of {prob.fname}."
            )
        rows.append(row)
    if "fwd" in ctx.modes:
        b = np.array([o["b"] for o in outs])
        tau_b = np.array([tau_of(o, 0, used, "b") for o in outs])
        rows.append(
            noise_row(
                leaf.path, f"jvp vs {used}", leaf.shape, dt, b, r, tau_b,
                mode="directional",
                detectable=_directional_detectable(b, r, tau_b, norms, ctx.miss),
                method=label, unresolved=unresolved,
            )
        )  # fmt: skip
        a = np.array([o["a"][0] for o in outs])
        if narrow:  # the measured float32 rounding of both sides
            tau_t = np.array(
                [
                    SAFETY * (abs(o["a"][0] - o["a_ref"][0]) + abs(o["b"] - o["b_ref"])
                    + ROUNDING * eps_r * (o["S"][0] + o["Sb"]))
                    for o in outs
                ]
            )  # fmt: skip
        else:
            tau_t = np.array(
                [
                    SAFETY
                    * ROUNDING
                    * eps_t
                    * (o["S"][0] + o["Sb"] + 2 * ctx.gscale * o["U1"])
                    for o in outs
                ]
            )
        rows.append(
            noise_row(
                leaf.path, "jvp vs jax.grad", leaf.shape, dt, b, a, tau_t,
                mode="directional",
                detectable=_directional_detectable(b, a, tau_t, norms, ctx.miss),
                method="transpose",
            )
        )  # fmt: skip
    if narrow:
        rows.append(_narrow_row(ctx, leaf))
    return rows


def _agrees(o: dict[str, Any], tau_of: Callable[..., float], fwd: bool) -> bool:
    """Every tested derivative of probe ``o`` within its tolerance of ``o["r"]``."""
    ok = all(abs(a - o["r"]) <= tau_of(o, i, "complex") for i, a in enumerate(o["a"]))
    return ok and (not fwd or abs(o["b"] - o["r"]) <= tau_of(o, 0, "complex", "b"))


def _narrow_row(ctx: _Context, leaf: _Leaf) -> GradCheckRow:
    """Elementwise: the float32 gradient against the same gradient in float64, at
    the table tolerance of float32: a bug that only shows in float32 (a constant such
    as ``1e-12`` that rounds away) fails here, not in the directional rows (whose
    tolerance includes the measured float32 rounding)."""
    a, r = ctx.tested(leaf, 0), ctx.tested_ref(leaf, 0)
    row = compare(
        leaf.path,
        "jax.grad vs jax.grad@float64",
        a,
        r,
        tolerance(leaf.dtype, "analytic"),
    )
    return dataclasses.replace(row, method="jax.grad@float64")


def _directional_detectable(
    a: np.ndarray, r: np.ndarray, tau: np.ndarray, norms: np.ndarray, miss: float
) -> float:
    norm = float(np.mean(norms))
    t = float(np.max(tau))
    if norm <= t and float(np.max(np.abs(r), initial=0.0)) <= t:
        return 0.0  # zero within the noise on both sides
    if norm == 0.0:
        return math.inf
    return detectable_at(np.asarray(tau) / norm, miss=miss)


# ------------------------------------------------------------------ localisation


def _locate(
    ctx: _Context,
    leaf: _Leaf,
    numeric: str,
    k: int,
    which: int,
    g_an: jax.Array | None,
) -> tuple[tuple[int, ...], int]:
    """Bisect direction ``k`` of a failing leaf down to its worst element.

    The discrepancy ``d(S) = <t_S, u_S> - D_{u_S}`` of a set ``S`` of elements (the
    direction restricted to ``S``) is additive over a partition, so each halving needs
    one numerical probe of one half: ``d(B) = d(S) - d(A)``. Central differences cost
    two evaluations per probe, the complex step one.
    """
    prob = ctx.prob
    n = leaf.size
    tested = ctx.tested(leaf, k) if which == 0 else g_an
    assert tested is not None  # g_an is given for the analytic half (which=1)
    v = prob.cotangent(k, ctx.seed)
    x_ref = _get(prob.ref_args, leaf)
    ref_dt = x_ref.dtype
    fn = P.cached_jit(prob.f, P.discrepancy, ctx.nums, numeric)
    u = ctx.direction(leaf, k).astype(ref_dt).reshape(-1)
    v_ref = [c.astype(ref_dt) for c in v]
    placed = ctx.place(leaf, tested)
    h = N.host_step(x_ref)
    positions = jnp.arange(n)

    def d_of(lo: int, hi: int) -> float:
        part = jnp.where((positions >= lo) & (positions < hi), u, 0).reshape(leaf.shape)
        us = ctx.place(leaf, part, ref=True)
        return float(fn(prob.ref_args, us, v_ref, placed, h))

    per = 1 if numeric == "complex" else 2
    lo, hi = 0, n
    d = d_of(lo, hi)
    evals = per
    while hi - lo > 1:
        mid = (lo + hi) // 2
        d_a = d_of(lo, mid)
        evals += per
        d_b = d - d_a
        lo, hi, d = (lo, mid, d_a) if abs(d_a) >= abs(d_b) else (mid, hi, d_b)
    index = (
        tuple(int(i) for i in np.unravel_index(lo, leaf.shape)) if leaf.shape else ()
    )
    return index, evals


# ----------------------------------------------------------------- second order


def _hvp_rows(ctx: _Context, leaf: _Leaf) -> list[GradCheckRow]:
    """Hessian-vector products of ``<v, f>`` restricted to one leaf, along random
    ``u`` and read along random ``w``: ``<w, H u>`` by forward-over-reverse, by
    reverse-over-reverse (``<u, H w>``, equal by symmetry) and by central differences
    of ``jax.grad`` along ``u``."""
    prob = ctx.prob
    ref_dt = _get(prob.ref_args, leaf).dtype
    eps_t = _eps(leaf.dtype)
    fn = P.cached_jit(prob.f, P.hvp, ctx.nums)
    h = N.host_step(_get(prob.ref_args, leaf))
    n_sel = ctx.n_leaves if ctx.shared else 1  # the probe's perturbed leaves
    onehot = jnp.zeros(n_sel, ref_dt).at[leaf.flat if ctx.shared else 0].set(1)

    def run(k: int) -> dict[str, float]:
        v = prob.cotangent(k, ctx.seed)
        us = ctx.place(leaf, ctx.direction(leaf, k, salt=17))
        ws = ctx.place(leaf, ctx.direction(leaf, k, salt=18))
        o = fn(
            prob.args,
            prob.ref_args,
            us,
            ws,
            onehot,
            v,
            [c.astype(ref_dt) for c in v],
            h,
        )
        return {key: float(val) for key, val in jax.device_get(o).items()}

    def tau(o: dict[str, float], s: str) -> float:
        return SAFETY * (max(o["sigma"], o["round"]) + ROUNDING * eps_t * o[s])

    pilot = run(0)
    fwd_ok = math.isfinite(pilot["fwd"])
    if not fwd_ok:
        pilot["norm"] = abs(pilot["rev"])
        ctx.notes.append(
            f"{leaf.path or '(arg)'}: forward-over-reverse is not defined here (a custom_vjp "
            "has no forward mode); the HVP is checked reverse-over-reverse only."
        )
    norm = max(pilot["norm"], 1e-300)
    tau_rel = tau(pilot, "Sr") / norm
    target = ctx.detect if ctx.detect is not None else 10.0 * math.sqrt(2) * tau_rel
    count = directions_needed(
        tau_rel, max(target, 1e-300), ctx.miss, ctx.max_directions
    )
    outs = [pilot] + [run(k) for k in range(1, count)]
    for o in outs:
        if not fwd_ok:
            o["norm"] = abs(o["rev"])
    r = np.array([o["r"] for o in outs])
    norms = np.array([o["norm"] for o in outs])
    rev = np.array([o["rev"] for o in outs])
    t_rev = np.array([tau(o, "Sr") for o in outs])
    dt = str(jnp.dtype(leaf.dtype))
    label = "central(grad)" + ("@float64" if ref_dt != leaf.dtype else "")
    rows = [
        noise_row(
            leaf.path, "hvp rev-over-rev vs central(grad)", leaf.shape, dt, rev, r,
            t_rev, mode="directional",
            detectable=_directional_detectable(rev, r, t_rev, norms, ctx.miss),
            method=label,
        )
    ]  # fmt: skip
    if fwd_ok:
        fw = np.array([o["fwd"] for o in outs])
        t_fw = np.array([tau(o, "Sf") for o in outs])
        t_x = np.array([SAFETY * ROUNDING * eps_t * (o["Sf"] + o["Sr"]) for o in outs])
        rows.append(
            noise_row(
                leaf.path, "hvp fwd-over-rev vs central(grad)", leaf.shape, dt, fw, r,
                t_fw, mode="directional",
                detectable=_directional_detectable(fw, r, t_fw, norms, ctx.miss),
                method=label,
            )
        )  # fmt: skip
        rows.append(
            noise_row(
                leaf.path, "hvp fwd-over-rev vs rev-over-rev", leaf.shape, dt, fw, rev,
                t_x, mode="directional",
                detectable=_directional_detectable(fw, rev, t_x, norms, ctx.miss),
                method="symmetry",
            )
        )  # fmt: skip
    return rows
