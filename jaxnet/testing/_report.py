"""Report rows and reports: what a gradient check says, one row per (leaf, comparison).

A row states what was compared, the worst error and where it is, the tolerance at that
point, the smallest relative error the row could have detected, and a verdict:

* ``"ok"``: every probe agrees within its tolerance;
* ``"FAIL"``: some probe disagrees by more than its tolerance: the gradient is wrong
  (or the function is not differentiable there: see the docs);
* ``"noisy"``: every probe agrees, but the reference is too noisy to tell a wrong
  gradient from a right one (the row's ``detectable`` is above
  :data:`~jaxnet.testing.NOISY`). Never reported as a failure.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..nn._layer import path_str as path_str
from ._tolerances import Tolerance

#: A row whose smallest detectable relative error is above this is ``"noisy"``.
NOISY = 0.1


@dataclasses.dataclass(frozen=True)
class GradCheckRow:
    """One comparison of one leaf, e.g. ``check="jax.grad vs central"``.

    Attributes:
      path: the leaf's path (``dense_0/w``); ``""`` for a bare array argument.
      check: ``"<under test> vs <reference>"``.
      shape, dtype: the leaf's.
      max_abs: the largest absolute difference over the probes (elements in
        exhaustive mode, directional derivatives in directional mode).
      max_rel: the relative difference at the worst probe, ``|a - r| / |r|``
        (for table-tolerance rows: ``|a - r| / (|r| + atol / rtol)``).
      worst_index: the element with the worst error: exact in exhaustive mode,
        located by bisection when a directional row fails, ``()`` otherwise.
      rtol, atol: the tolerance at the worst probe (relative and absolute). For
        ``jax.grad vs analytic`` rows they are the table's (:func:`tolerance`); for
        numerical rows they come from the measured noise of the reference.
      ok: ``verdict != "FAIL"``... see :attr:`verdict`; ``ok`` is ``verdict == "ok"``.
      verdict: ``"ok"``, ``"FAIL"`` or ``"noisy"`` (module docstring).
      mode: ``"exhaustive"`` (every element) or ``"directional"``.
      probes: how many elements or random directions were compared.
      detectable: the smallest relative error this row catches (with probability
        at least ``1 - miss`` in directional mode), as a fraction of the leaf's
        gradient norm; ``0.0`` when the gradient is exactly zero on both sides.
      method: the reference: ``"analytic"``, ``"central"``, ``"complex"``,
        ``"jvp"`` (transpose identity), ``"rev-over-rev"``, ...; with
        ``"@float64"`` when it was computed in float64 for a lower-precision leaf.
    """

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
    verdict: str = "ok"
    mode: str = "exhaustive"
    probes: int = 0
    detectable: float = 0.0
    method: str = "analytic"


@dataclasses.dataclass(frozen=True)
class GradReport:
    """The result of a check: one :class:`GradCheckRow` per (leaf, comparison).

    ``report.ok`` is True when no row failed and none was too noisy to say;
    ``report.failures()`` are the rows that FAILED (a wrong gradient);
    ``report.noisy()`` the rows whose reference could not tell.
    """

    name: str
    rows: tuple[GradCheckRow, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every row's verdict is ``"ok"``."""
        return all(r.verdict == "ok" for r in self.rows)

    def failures(self) -> tuple[GradCheckRow, ...]:
        """The rows that FAIL (a wrong gradient)."""
        return tuple(r for r in self.rows if r.verdict == "FAIL")

    def noisy(self) -> tuple[GradCheckRow, ...]:
        """The rows whose reference was too noisy to verify anything."""
        return tuple(r for r in self.rows if r.verdict == "noisy")

    def assert_ok(self, *, allow_noisy: bool = False) -> None:
        """Raise ``AssertionError`` with the table unless every row is ok.

        Args:
          allow_noisy: pass when rows whose reference is too noisy are acceptable
            (they are never failures, but nothing was verified there).
        """
        if self.failures() or (self.noisy() and not allow_noisy):
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
            "probes",
            "detects",
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
                f"{r.probes}{'' if r.mode == 'exhaustive' else ' dir'}",
                _fmt_detect(r.detectable),
                r.verdict,
            )
            for r in self.rows
        ]
        widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        bad, noisy = len(self.failures()), len(self.noisy())
        if self.ok:
            verdict = "ok"
        elif bad:
            verdict = f"FAILED ({bad} of {len(self.rows)})"
        else:
            verdict = f"not verified ({noisy} of {len(self.rows)} reference too noisy)"
        out = [f"gradient check of {self.name}: {verdict}", fmt.format(*head).rstrip()]
        out += [fmt.format(*l).rstrip() for l in lines]
        out += list(self.notes)
        return "\n".join(out)


def fn_name(f: Any, name: str | None) -> str:
    """The name a report gives the checked function: ``name``, else ``f.__name__``,
    else ``"f"``."""
    return name if name else str(getattr(f, "__name__", "f"))


def _fmt_detect(x: float) -> str:
    if x == 0.0:
        return "zero"
    return "-" if not math.isfinite(x) else f"{x:.0e}"


def verdict_of(ratio: float, detectable: float) -> str:
    """``"FAIL"`` past the tolerance, else ``"noisy"`` when nothing could be seen."""
    if not ratio <= 1.0:  # nan is a failure too
        return "FAIL"
    return "noisy" if not detectable <= NOISY else "ok"


def compare(
    path: str, check: str, actual: Any, reference: Any, tol: Tolerance
) -> GradCheckRow:
    """Compare two arrays elementwise against a table tolerance ``tol``.

    Passes iff ``|a - r| <= atol + rtol |r|`` everywhere; non-finite mismatches fail.
    """
    if np.iscomplexobj(actual):
        raise TypeError(f"check_grads: gradient of '{path}' is complex; expected real.")
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        raise ValueError(
            f"check_grads: '{path}' ({check}): gradient shapes differ, "
            f"{a.shape} vs reference {r.shape}."
        )
    dtype = str(jnp.asarray(actual).dtype)
    if a.size == 0:
        return GradCheckRow(
            path, check, a.shape, dtype, 0.0, 0.0, (), tol.rtol, tol.atol, True
        )
    same = (a == r) | (np.isnan(a) & np.isnan(r))
    err = np.where(same, 0.0, np.abs(a - r))
    err = np.where(np.isnan(err), np.inf, err)
    rel = err / (np.abs(np.where(np.isfinite(r), r, 0.0)) + tol.atol / tol.rtol)
    worst = np.unravel_index(int(np.argmax(rel)), a.shape) if a.ndim else ()
    max_rel = float(rel.max())
    ok = bool(max_rel <= tol.rtol)
    return GradCheckRow(
        path=path,
        check=check,
        shape=tuple(a.shape),
        dtype=dtype,
        max_abs=float(err.max()),
        max_rel=max_rel,
        worst_index=tuple(int(i) for i in worst),
        rtol=tol.rtol,
        atol=tol.atol,
        ok=ok,
        verdict="ok" if ok else "FAIL",
        mode="exhaustive",
        probes=int(a.size),
        detectable=tol.rtol,
        method=check.split(" vs ")[-1],
    )


def noise_row(
    path: str,
    check: str,
    shape: tuple[int, ...],
    dtype: str,
    actual: np.ndarray,
    reference: np.ndarray,
    tau: np.ndarray,
    *,
    mode: str,
    detectable: float,
    method: str,
    worst_index: tuple[int, ...] | None = None,
    unresolved: np.ndarray | None = None,
) -> GradCheckRow:
    """A row whose per-probe tolerances ``tau`` come from the measured noise.

    A probe in ``unresolved`` (its reference's error estimate is a sizeable fraction
    of its value, even after step refinement) can make the row ``"noisy"`` but never
    ``"FAIL"``: the reference cannot be trusted there.
    """
    a, r, t = (np.asarray(v, np.float64).reshape(-1) for v in (actual, reference, tau))
    if a.size == 0:
        return GradCheckRow(
            path, check, shape, dtype, 0.0, 0.0, (), 0.0, 0.0, True, "ok", mode, 0,
            0.0, method,
        )  # fmt: skip
    err = np.abs(a - r)
    err = np.where(np.isnan(err), np.inf, err)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / t)
    if unresolved is not None:
        un = np.asarray(unresolved, bool).reshape(-1)
        trusted = np.where(un, 0.0, ratio)
        if np.any(un & ~(ratio <= 1.0)) and np.all(trusted <= 1.0):
            detectable = math.inf  # only untrustworthy probes disagree: "noisy"
        ratio = np.where(un & ~(ratio <= 1.0), 0.0, ratio)
    k = int(np.argmax(ratio))
    worst_ratio = float(ratio[k])
    verdict = verdict_of(worst_ratio, detectable)
    if worst_index is None:
        worst_index = (
            tuple(int(i) for i in np.unravel_index(k, shape))
            if mode == "exhaustive" and shape
            else ()
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = float(err[k] / abs(r[k])) if r[k] != 0 else float(np.inf * err[k])
        rtol = float(t[k] / abs(r[k])) if r[k] != 0 else float("inf")
    return GradCheckRow(
        path=path,
        check=check,
        shape=shape,
        dtype=dtype,
        max_abs=float(err.max()),
        max_rel=0.0 if math.isnan(rel) else rel,
        worst_index=worst_index,
        rtol=rtol,
        atol=float(t[k]),
        ok=verdict == "ok",
        verdict=verdict,
        mode=mode,
        probes=int(a.size) if mode == "directional" else int(np.prod(shape)),
        detectable=detectable,
        method=method,
    )
