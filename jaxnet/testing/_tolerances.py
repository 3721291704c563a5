"""The one per-dtype tolerance table used by the gradient checker and the tests.

A comparison of a gradient ``a`` against a reference ``r`` passes when, elementwise,

    |a - r| <= atol + rtol * |r|

Tolerances never scale with the size of the array (the flaw of
``jax.test_util.check_grads``, jax issue 3130): a wrong gradient in one element of a
million-element leaf is caught exactly as in a scalar.

Columns (``method``):

* ``"analytic"``: ``jax.grad`` against a hand-written formula. Both are exact up to
  rounding, so the tolerance is a few hundred ulps (float64 ~1e-12).
* ``"central"``: against central differences, ``(f(x + h) - f(x - h)) / 2h``. Error
  ``O(h^2)`` truncation plus ``O(eps |f| / h)`` cancellation, minimised near
  ``h = eps^(1/3)``: a smoke test (float64 ~1e-6 relative).
* ``"complex"``: against the complex step, ``Im f(x + ih) / h``, for real-analytic
  ``f``. No subtraction, hence no cancellation: ``h = 1e-20`` gives a derivative
  exact to rounding.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """Relative and absolute tolerance of one comparison."""

    rtol: float
    atol: float


#: ``TOLERANCES[dtype name][method]``.
TOLERANCES: dict[str, dict[str, Tolerance]] = {
    "float64": {
        "analytic": Tolerance(rtol=1e-12, atol=1e-13),
        "central": Tolerance(rtol=1e-6, atol=1e-7),
        "complex": Tolerance(rtol=1e-12, atol=1e-13),
    },
    "float32": {
        "analytic": Tolerance(rtol=2e-5, atol=2e-6),
        "central": Tolerance(rtol=2e-2, atol=5e-3),
        "complex": Tolerance(rtol=2e-5, atol=2e-6),
    },
    "bfloat16": {
        "analytic": Tolerance(rtol=2e-2, atol=2e-2),
        "central": Tolerance(rtol=2e-1, atol=2e-1),
        "complex": Tolerance(rtol=2e-2, atol=2e-2),
    },
    "float16": {
        "analytic": Tolerance(rtol=5e-3, atol=5e-3),
        "central": Tolerance(rtol=1e-1, atol=1e-1),
        "complex": Tolerance(rtol=5e-3, atol=5e-3),
    },
}

#: Step of each numerical method by dtype. Central steps are relative to
#: ``max(1, |x|)``; ``eps^(1/3)`` balances truncation against cancellation.
STEPS: dict[str, dict[str, float]] = {
    "float64": {"central": 2.0**-17, "complex": 1e-20},  # eps^(1/3) ~ 6e-6
    "float32": {"central": 2.0**-7, "complex": 1e-20},  # eps^(1/3) ~ 5e-3
    "bfloat16": {"central": 2.0**-3, "complex": 1e-20},
    "float16": {"central": 2.0**-4, "complex": 1e-6},
}

METHODS = ("analytic", "central", "complex")

#: The noise model of the numerical checks (``docs/verification.md`` has the argument
#: and the measurements it rests on). A probe (an element, or a random direction)
#: passes when ``|a - r| <= SAFETY * (noise of r + noise of a)``:
#:
#: * central differences (Richardson, steps ``h`` and ``h/2``): the noise of ``r`` is
#:   the measured ``|D(h/2) - D(h)| / 3`` (the truncation error of ``D(h/2)``, an
#:   over-estimate of the extrapolated ``r``'s), floored at the rounding bound
#:   ``3 eps max|f| / h``;
#: * the complex step and the gradient under test (``a``): ``ROUNDING * eps *
#:   sum_i |g_i u_i|``, a rounding bound on the directional derivative ``<g, u>``.
SAFETY = 10.0
ROUNDING = 4.0


def _dtype_name(dtype: Any) -> str:
    d = jnp.dtype(dtype)
    if jnp.issubdtype(d, jnp.complexfloating):
        d = jnp.finfo(d).dtype
    return str(d)


def tolerance(dtype: Any, method: str = "analytic") -> Tolerance:
    """Look up the tolerance for comparing gradients of ``dtype`` by ``method``.

    Examples:
      >>> import jax.numpy as jnp, jaxnet
      >>> jaxnet.testing.tolerance(jnp.float64, "analytic")
      Tolerance(rtol=1e-12, atol=1e-13)
    """
    name = _dtype_name(dtype)
    if name not in TOLERANCES:
        raise ValueError(
            f"tolerance: no entry for dtype {name}; known: {sorted(TOLERANCES)}."
        )
    if method not in METHODS:
        raise ValueError(f"tolerance: method must be one of {METHODS}, got {method!r}.")
    return TOLERANCES[name][method]


def step(dtype: Any, method: str) -> float:
    """The numerical-derivative step for ``dtype`` and ``method``."""
    return STEPS[_dtype_name(dtype)][method]
