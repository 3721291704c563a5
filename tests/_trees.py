"""Tree comparisons shared by the tests, with tolerances from the library's table."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxnet.testing import Tolerance


def assert_trees_close(
    actual: Any, expected: Any, tol: Tolerance, what: str = ""
) -> None:
    """Same tree structure, and leaf by leaf the same dtype and shape and values
    within ``tol`` (``jaxnet.testing.tolerance(dtype, method)``)."""
    la, ta = jax.tree.flatten(actual)
    le, te = jax.tree.flatten(expected)
    assert ta == te, f"{what}: {ta} != {te}"
    for a, e in zip(la, le, strict=True):
        assert a.dtype == e.dtype, f"{what}: {a.dtype} != {e.dtype}"
        assert a.shape == e.shape, f"{what}: {a.shape} != {e.shape}"
        np.testing.assert_allclose(a, e, rtol=tol.rtol, atol=tol.atol, err_msg=what)


def second_order(tol: Tolerance) -> Tolerance:
    """10x a first-order tolerance: second derivatives sum more rounded terms."""
    return Tolerance(rtol=10 * tol.rtol, atol=10 * tol.atol)
