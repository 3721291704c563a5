"""Test configuration: float64 available, strict dtype promotion, rank promotion raises.

The settings are entered per test (an autouse fixture) rather than globally, so that
the doctests in ``jaxnet/`` run under JAX's defaults, as a user's session would.
"""

import pytest
from _settings import jax_settings


@pytest.fixture(autouse=True)
def _strict_jax():
    with jax_settings():
        yield
