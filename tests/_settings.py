"""The JAX settings tests run under, in one place (conftest, module fixtures, the
benchmark tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax


@contextlib.contextmanager
def jax_settings(
    *, x64: bool = True, promotion: str = "strict", rank: str = "raise"
) -> Iterator[None]:
    """Enter ``jax.enable_x64(x64)``, ``jax.numpy_dtype_promotion(promotion)`` and
    ``jax.numpy_rank_promotion(rank)`` together.

    The defaults are the suite's (``tests/conftest.py``): float64 available, strict
    dtype promotion, rank promotion raises, so the library never relies on implicit
    promotion. ``promotion="standard"`` is for code that needs it (optax's adam).
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(jax.enable_x64(x64))
        stack.enter_context(jax.numpy_dtype_promotion(promotion))
        stack.enter_context(jax.numpy_rank_promotion(rank))
        yield
