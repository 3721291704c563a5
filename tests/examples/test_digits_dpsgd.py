"""The DP-SGD example: private training reaches its target, and with the privacy
turned off (no noise, a clip no gradient reaches) it is the ordinary step."""

from __future__ import annotations

import importlib.util
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet.testing import tolerance

pytestmark = pytest.mark.slow

pytest.importorskip("sklearn")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "digits_dpsgd.py"


def _example():
    spec = importlib.util.spec_from_file_location("digits_dpsgd", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dpsgd_example_trains_privately_and_reports_both(capsys):
    with jax.numpy_dtype_promotion("standard"):  # optax's noise and sgd need it
        code = _example().main(["--epochs", "8", "--target", "0.8"])
    out = capsys.readouterr().out
    assert code == 0, out
    plain = float(re.search(r"non-private: test accuracy ([\d.]+)", out).group(1))
    private = float(re.search(r"DP-SGD \(clip .*test accuracy ([\d.]+)", out).group(1))
    assert plain >= 0.9 and private >= 0.8, out


def test_dpsgd_without_noise_or_clipping_is_the_ordinary_step():
    """Noise 0 and a clip above every gradient's norm: the aggregate is the batch
    mean, so both runs follow the same path: measured 7e-8 relative apart after 44
    steps (float32 summation order), inside the float32 analytic tolerance."""
    example = _example()
    data = example.load(0)
    kw = dict(epochs=2, batch=64, lr=0.5, clip=1e6, noise=0.0, seed=0)
    with jax.numpy_dtype_promotion("standard"):
        plain = example.run(data, private=False, **kw)
        private = example.run(data, private=True, **kw)
    tol = tolerance(jnp.float32, "analytic")
    np.testing.assert_allclose(private["test_loss"], plain["test_loss"], rtol=tol.rtol)
    assert private["test_accuracy"] == plain["test_accuracy"]
