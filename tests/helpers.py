"""Helpers shared by the tests: the rendered error text and tree comparisons.

Imported as ``from helpers import ...`` (pytest's ``pythonpath = ["tests"]`` puts this
folder on the path). Tolerances are ``jaxnet.testing.Tolerance`` values, from the
library's table (``jaxnet.testing.tolerance(dtype, method)``), never bare numbers.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxnet.testing import Tolerance


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
