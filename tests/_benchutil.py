"""Shared by the benchmark tests: the JAX configuration the suite runs under."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from _settings import jax_settings


@contextlib.contextmanager
def bench_config(strict: bool = True) -> Iterator[None]:
    """x64 off (the suite is float32, as ``python -m benchmarks`` runs it).

    ``strict=True`` keeps the test suite's strict dtype promotion and rank checks;
    ``strict=False`` is JAX's defaults (peer libraries rely on implicit promotion).
    """
    with jax_settings(
        x64=False,
        promotion="strict" if strict else "standard",
        rank="raise" if strict else "allow",
    ):
        yield
