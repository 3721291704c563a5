"""Shared by the benchmark tests: the JAX configuration the suite runs under."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

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


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: str | Path) -> None:
    """``path`` is a real PNG plot: the PNG signature and more than 10 kB."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000, path
