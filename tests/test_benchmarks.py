"""The benchmark suite's seed case: its implementations agree before anything is timed.

Correctness only (no timing assertions): the per-step jitted loop, the fused
``train_scan`` loop and the NumPy hand-written loop end at the same parameters to the
float32 tolerance, the case refuses to time an implementation that disagrees, and
``python -m benchmarks --quick --case seed`` runs and writes its JSON row.

The benchmark runs in float32 under JAX's defaults (x64 off), as from the command line;
the in-process tests enter that (keeping strict dtype and rank promotion) explicitly.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import losses
from jaxnet.testing import TOLERANCES

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a top-level package of the repo
    sys.path.insert(0, str(ROOT))

from benchmarks import seed  # noqa: E402

TOL = TOLERANCES["float32"]["analytic"]


@contextlib.contextmanager
def _bench_config():
    """JAX defaults for x64 (float32 benchmark), strict promotion kept."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(jax.enable_x64(False))
        stack.enter_context(jax.numpy_dtype_promotion("strict"))
        stack.enter_context(jax.numpy_rank_promotion("raise"))
        yield


def _assert_close(actual, reference, what: str) -> None:
    a = np.asarray(actual, np.float64)
    r = np.asarray(reference, np.float64)
    bound = TOL.atol + TOL.rtol * np.abs(r)
    err = np.abs(a - r)
    assert np.all(err <= bound), f"{what}: max abs diff {err.max():.3e}"


@pytest.fixture(scope="module")
def checked():
    """Every implementation run once (one build: a few compilations, shared)."""
    with _bench_config():
        fns, _, _ = seed.build()
        return fns, seed.verify(fns)


def test_data_is_the_seed_case():
    x, y = seed.seed_data(0)
    assert x.shape == (100, 2) and y.shape == (100, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert set(np.unique(y).tolist()) == {0.0, 1.0}
    # two blobs either side of x1 + x2 = 1: linearly separable by construction here
    assert np.all((x.sum(axis=1) > 1.0) == (y[:, 0] == 1.0))
    np.testing.assert_array_equal(seed.seed_data(0)[0], x)  # deterministic


def test_implementations_agree(checked):
    fns, check = checked
    assert {"loop", "fused", "fused_api", "numpy"} <= set(fns)
    ref = check["params"]["loop"]
    for name, params in check["params"].items():
        for k in ("w", "b"):
            _assert_close(params[k], ref[k], f"{name}.{k} vs loop.{k}")
        assert check["agree"][name], name
        assert check["max_abs_diff"][name] <= TOL.atol + TOL.rtol * 10.0


def test_training_happened(checked):
    """The common end point is a trained classifier, not the untouched init."""
    _, check = checked
    p = check["params"]["loop"]
    w = np.asarray(p["w"], np.float32).reshape(2, 1)
    b = np.asarray(p["b"], np.float32)
    x, y = seed.seed_data(0)
    logits = x @ w + b
    with _bench_config():
        init_loss = float(
            jnp.mean(
                losses.sigmoid_binary_cross_entropy(
                    jnp.zeros((100, 1), jnp.float32), jnp.asarray(y)
                )
            )
        )
        final_loss = float(
            jnp.mean(
                losses.sigmoid_binary_cross_entropy(jnp.asarray(logits), jnp.asarray(y))
            )
        )
    assert final_loss < 0.5 * init_loss  # log 2 at zero logits
    assert np.mean((logits > 0) == (y > 0.5)) >= 0.95


def test_numpy_step_is_the_gradient():
    """One NumPy epoch equals one SGD step along jax.grad of the mean loss."""
    x, y = seed.seed_data(1)
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((2, 1)).astype(np.float32)
    b0 = rng.standard_normal((1,)).astype(np.float32)
    lr = 0.7
    w1, b1 = seed.numpy_train(w0, b0, x, y, epochs=1, lr=lr)
    with _bench_config():

        def objective(w, b):
            z = jnp.asarray(x) @ w + b[None, :]
            return jnp.mean(losses.sigmoid_binary_cross_entropy(z, jnp.asarray(y)))

        gw, gb = jax.grad(objective, argnums=(0, 1))(jnp.asarray(w0), jnp.asarray(b0))
    _assert_close(w1, w0 - np.float32(lr) * np.asarray(gw), "numpy w after one step")
    _assert_close(b1, b0 - np.float32(lr) * np.asarray(gb), "numpy b after one step")
    assert not np.allclose(w1, w0)


def test_refuses_to_time_a_disagreeing_implementation(monkeypatch):
    original = seed.numpy_train

    def wrong(w, b, x, y, *, epochs, lr):  # half the learning rate
        return original(w, b, x, y, epochs=epochs, lr=lr / 2)

    monkeypatch.setattr(seed, "numpy_train", wrong)
    monkeypatch.setattr(
        seed, "paired", lambda *a, **k: pytest.fail("timed a disagreeing pair")
    )
    with _bench_config(), pytest.raises(SystemExit, match="refusing to time") as e:
        seed.seed_case(repeats=1, min_time=0.0)
    assert "numpy" in str(e.value) and "fused" not in str(e.value)


def test_cli_quick_seed(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--case",
            "seed",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "mlp_784" not in out  # --case seed runs only the seed case
    assert "target fused >= 4x faster than loop:" in out
    assert "target fused 100 epochs < 1 ms:" in out
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["case"] for r in rows] == ["seed_logreg_2x100_e100"]
    row = rows[0]
    assert {"loop", "fused", "fused_api", "numpy"} <= set(row["time_s"])
    ref = row["final_params"]["loop"]
    for name, params in row["final_params"].items():
        for k in ("w", "b"):
            _assert_close(params[k], ref[k], f"CLI {name}.{k}")
    for name, t in row["time_s"].items():
        assert 0 < t["min"] <= t["median"] <= t["max"], name
    assert set(row["targets"]) == {
        "fused_4x_faster_than_loop",
        "fused_100_epochs_under_1ms",
    }
