"""Shared by the benchmark tests: the JAX configuration the suite runs under."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax


@contextlib.contextmanager
def bench_config(strict: bool = True) -> Iterator[None]:
    """x64 off (the suite is float32, as ``python -m benchmarks`` runs it).

    ``strict=True`` keeps the test suite's strict dtype promotion and rank checks;
    ``strict=False`` is JAX's defaults (peer libraries rely on implicit promotion).
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(jax.enable_x64(False))
        stack.enter_context(
            jax.numpy_dtype_promotion("strict" if strict else "standard")
        )
        stack.enter_context(jax.numpy_rank_promotion("raise" if strict else "allow"))
        yield
