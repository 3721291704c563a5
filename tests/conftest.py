"""Test configuration: float64 available, strict dtype promotion, rank promotion raises.

The settings are entered per test (an autouse fixture) rather than globally, so that
the doctests in ``jaxnet/`` run under JAX's defaults, as a user's session would.
"""

import contextlib

import jax
import pytest


@pytest.fixture(autouse=True)
def _strict_jax():
    with contextlib.ExitStack() as stack:
        stack.enter_context(jax.enable_x64(True))
        stack.enter_context(jax.numpy_dtype_promotion("strict"))
        stack.enter_context(jax.numpy_rank_promotion("raise"))
        yield
