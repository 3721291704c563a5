"""The benchmark suite: implementations agree before anything is timed.

Correctness only (no timing assertions): the seed case's per-step jitted loop, fused
``train_scan`` loop and NumPy hand-written loop end at the same parameters to the
float32 tolerance; the runner refuses to time a disagreeing pair; ``jaxnet bench
--quick`` (the CI smoke test) runs every quick case and writes JSON and markdown.

The benchmark runs in float32 under JAX's defaults (x64 off), as from the command line;
the in-process tests enter that (keeping strict dtype and rank promotion) explicitly.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnet import losses
from jaxnet.bench import _report, _runner, seed
from jaxnet.bench._case import Case, sgd
from jaxnet.bench.cases import mlp as cases_mlp
from jaxnet.testing import TOLERANCES

from ._util import assert_png, bench_config

REPO = Path(__file__).resolve().parents[2]

TOL = TOLERANCES["float32"]["analytic"]


def _bench_config():
    return bench_config()


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


# ----------------------------------------------------------------- the suite runner

BOUND = 10 * TOL.rtol  # the runner's refusal bound


def _check_seed_row(row):
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


@pytest.mark.slow
def test_cli_bench_quick(tmp_path):
    """The CI smoke test: ``jaxnet bench --quick`` runs every quick case, each pair
    proven to agree (no timing assertions)."""
    """``jaxnet bench`` runs the runner end to end and writes JSON and markdown."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxnet",
            "bench",
            "--quick",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # not the repo root: the harness ships with the package
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "matmul peak" in proc.stdout
    assert "mlp_b128 done in" in proc.stderr  # the live progress lines
    assert "target fused >= 4x faster than loop:" in proc.stdout
    rows = {r["case"]: r for r in json.loads((tmp_path / "results.json").read_text())}
    quick = {"dense_b128", "dense_b1024", "mlp_b128", "layernorm", "layernorm_dx"}
    assert quick | {"conv2d", "seed_logreg_2x100_e100"} <= set(rows)
    for name, r in rows.items():
        if "agreement" in r:  # every timed pair was proven to agree first
            assert set(r["agreement"]) >= {"autodiff", "hand", "raw"}, name
            assert all(0 <= v <= 1 for v in r["agreement"].values()), name
    _check_seed_row(rows.pop("seed_logreg_2x100_e100"))
    row = rows["mlp_b128"]
    for key in ("backend", "device", "jax", "jaxlib", "jaxnet", "cpu", "cpu_threads"):
        assert row[key] not in (None, ""), key
    assert row["dtype"] == "float32"
    assert row["shapes"]["x"] == [128, 784] and row["shapes"]["w2"] == [512, 512]
    assert set(row["max_rel_grad_diff"]) == {"autodiff", "hand", "raw"}
    assert all(0 <= d < BOUND for d in row["max_rel_grad_diff"].values())
    assert set(row["time_s"]) == {"forward", "autodiff", "hand", "raw", "matmuls_only"}
    for name, t in row["time_s"].items():
        assert 0 < t["min"] <= t["median"] <= t["max"], name
    assert {"autodiff/hand", "autodiff/raw", "grad/forward"} <= set(row["ratios"])
    assert "autodiff/matmuls_only" in row["ratios"]
    assert "matmuls_only" not in row["memory"]
    assert row["flops"]["step"] == cases_mlp.mlp_flops(128, (784, 512, 512, 10))["step"]
    assert (
        row["peak"]["sizes"] == [512, 1024, 2048] and row["peak"]["gflops"]["peak"] > 0
    )
    mem = row["memory"]["autodiff"]
    if mem["peak_bytes"] is not None:  # at least the params, x and the new params
        assert mem["peak_bytes"] >= 2 * 4 * 669_706
    md = (tmp_path / "results.md").read_text()
    assert "| mlp_b128 |" in md and "autodiff/hand" in md and "matmul peak" in md
    assert "| case | matmuls alone ms |" in md and "(+matmuls_only)" not in md
    _check_plots(tmp_path, proc.stdout, ["ratios.png", "fraction_of_peak.png"])


def _check_plots(out_dir, stdout: str, names: list[str]) -> None:
    """With matplotlib (the ``bench`` extra) every plot is a real PNG; without it the
    run says it skipped them and writes none."""
    written = sorted(p.name for p in out_dir.glob("*.png"))
    if importlib.util.find_spec("matplotlib") is None:
        assert "plots skipped: matplotlib is not installed" in stdout
        assert written == []
        return
    assert written == sorted(names)
    for name in names:
        assert_png(out_dir / name)


def _tiny_case(hand_scale: float) -> Case:
    """Linear least squares on 3 features; ``hand`` is autodiff's gradient scaled."""
    params = {
        "w": jnp.arange(3.0, dtype=jnp.float32) / 3,
        "b": jnp.zeros((), jnp.float32),
    }
    x = jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(4, 3)
    y = jnp.arange(4.0, dtype=jnp.float32)

    def forward(p, x, y):
        return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)

    grad = jax.grad(forward)

    def hand(p, x, y):
        return jax.tree.map(lambda g: hand_scale * g, grad(p, x, y))

    def step(g):
        return lambda p, x, y: (sgd(0.1)(p, g(p, x, y)), forward(p, x, y))

    return Case(
        name="tiny",
        family="tiny",
        description="least squares, 3 features",
        dtype="float32",
        shapes={"x": (4, 3)},
        args=(params, x, y),
        forward=forward,
        steps={"autodiff": step(grad), "hand": step(hand), "raw": step(grad)},
        grads={"autodiff": grad, "hand": hand},  # "raw": checked through its update
        flops={"forward": 40, "step": 100},
    )


def test_runner_refuses_a_wrong_hand_gradient(monkeypatch):
    monkeypatch.setattr(
        _runner, "paired", lambda *a, **k: pytest.fail("timed a disagreeing pair")
    )
    with _bench_config():
        assert _runner.check_agreement(_tiny_case(1.0)) == {
            "autodiff": 0.0,
            "hand": 0.0,
            "raw": 0.0,
        }
        with pytest.raises(_runner.RefusedToTime, match="refusing to time") as e:
            _runner.run_case(_tiny_case(1.0 + 50 * BOUND), repeats=1, min_time=0.0)
    msg = str(e.value)
    assert "tiny" in msg and "hand" in msg and "raw" not in msg


def test_max_rel_diff_is_per_leaf_relative():
    a = {"w": np.array([1.0, 2.0]), "b": np.array([0.0])}
    b = {"w": np.array([1.0, 4.0]), "b": np.array([1e-3])}
    assert _runner.max_rel_diff(a, b) == 1.0  # b: |0 - 1e-3| / 1e-3
    assert _runner.max_rel_diff(b, b) == 0.0
    with pytest.raises(_runner.RefusedToTime, match="trees differ"):
        _runner.max_rel_diff({"w": a["w"]}, b)


@pytest.mark.slow
def test_mlp_flops_match_xla_cost_analysis():
    """The hand count and XLA's count agree to 0.1% (measured: XLA +0.066%).

    Both count a matmul as ``2 m k n`` (99.5% of the step); XLA counts a few more
    elementwise ops (e.g. compare and select for ReLU and its mask, the one-hot) than
    the convention of ``jaxnet/bench/cases/mlp.py``, so its total is slightly higher.
    Counting an input gradient for the first layer ("backward = 2 x forward") would
    overcount by 2 B 784 512 FLOPs, 25% here: the XLA count rules that out.
    """
    with _bench_config():
        case = cases_mlp.CASES["mlp_b128"](True)
        compiled = jax.jit(case.steps["autodiff"]).trace(*case.args).lower().compile()
        xla = _runner.xla_flops(compiled)
    assert xla is not None
    ours = case.flops["step"]
    assert ours == cases_mlp.mlp_flops(128, (784, 512, 512, 10))["step"]
    assert 0.0 <= xla / ours - 1.0 < 1e-3, (xla, ours)
    naive = (
        3 * case.flops["forward"]
        + cases_mlp.mlp_flops(128, (784, 512, 512, 10))["update"]
    )
    assert naive / xla - 1.0 > 0.2  # "backward = 2 x forward" is off by > 20%


def test_mlp_matmuls_only_is_exactly_the_counted_matmuls():
    """The matmuls-only function of the MLP cases does exactly the step's matrix
    products: XLA counts the hand-counted ``flops["matmul"]`` for it, to the FLOP,
    and the same number of dots as the autodiff step (3 forward, 3 dW, 2 dx)."""
    with _bench_config():
        case = cases_mlp.CASES["mlp_b128"](True)
        lowered = jax.jit(case.matmuls).trace(*case.args).lower()
        xla = _runner.xla_flops(lowered.compile())
        step_hlo = jax.jit(case.steps["autodiff"]).trace(*case.args).lower().as_text()
    assert (
        xla
        == case.flops["matmul"]
        == cases_mlp.mlp_flops(128, (784, 512, 512, 10))["matmul"]
    )
    n_dots = lowered.as_text().count("stablehlo.dot_general")
    assert n_dots == step_hlo.count("stablehlo.dot_general") == 8


def test_matmul_table_rows():
    rows = [
        {
            "case": "c",
            "time_s": {
                "autodiff": {"median": 0.01},
                "matmuls_only": {"median": 0.009},
            },
            "gflops": {"autodiff": {"median": 90.0}, "matmuls_only": {"median": 99.0}},
            "fraction_of_peak": {
                "autodiff": {"median": 0.9},
                "matmuls_only": {"median": 0.99},
            },
            "flops": {"step": 1000, "matmul": 995},
            "ratios": {
                "autodiff/matmuls_only": {"median": 1.11, "min": 1.0, "max": 1.2}
            },
        }
    ]
    table = _report.matmul_table(rows)
    assert (
        "| c | 9.000 | 99.0 | 99.0 | 90.0 | 90.0 | 99.5 | 1.11 (1.00-1.20) |" in table
    )
    assert _report.matmul_table([{**rows[0], "time_s": {}}]) == ""


def test_fraction_above_the_peak_is_flagged_not_reported():
    """--quick once printed 139% of peak with no warning; a step cannot beat the best
    matmul rate measured in the same run, so such a fraction is a measurement error."""
    from jaxnet.bench import _peak

    row = {
        "case": "mlp_b128",
        "time_s": {"autodiff": {"median": 0.01}, "matmuls_only": {"median": 0.009}},
        "gflops": {"autodiff": {"median": 76.0}, "matmuls_only": {"median": 99.0}},
        "fraction_of_peak": {
            "autodiff": {"median": 1.39},
            "matmuls_only": {"median": 0.9},
        },
        "flops": {"step": 1000, "matmul": 995},
        "ratios": {"autodiff/matmuls_only": {"median": 1.1, "min": 1.0, "max": 1.2}},
    }
    table = _report.matmul_table([row])
    assert "139.0" not in table and "error (139% > peak)" in table
    assert "| 90.0 |" in table  # the fraction below the peak is reported
    assert _report.over_peak([row]) == ["mlp_b128/autodiff"]
    assert "WARNING: measurement error: mlp_b128/autodiff" in (
        _report.over_peak_warning(_report.over_peak([row]))
    )
    assert _peak.fmt_fraction(0.875) == "87.5" and _peak.fmt_fraction(None) == ""


def test_matmul_peak_is_the_best_round_over_sizes():
    from jaxnet.bench import _peak

    p = _peak.matmul_peak((64, 128), repeats=3, min_time=0.0)
    rounds = [r for s in p["per_size"] for r in s["gflops_rounds"]]
    assert len(rounds) == 6 and p["gflops"]["peak"] == max(rounds)
    assert p["gflops"]["min"] == min(rounds)
    assert p["n"] in (64, 128) and p["flops"] == 2 * p["n"] ** 3
    assert "GFLOP/s at n = " in _peak.peak_line(p)


@pytest.mark.slow
def test_cli_bench_needs_no_source_checkout(tmp_path):
    """``jaxnet bench`` runs from any directory with the repository off ``sys.path``:
    the harness is ``jaxnet.bench``, nothing is looked up beside the package."""
    code = (
        "import importlib.util, sys\n"
        f"sys.path[:] = [p for p in sys.path if p not in ('', {str(REPO)!r})]\n"
        "assert importlib.util.find_spec('benchmarks') is None, 'benchmarks/ found'\n"
        "from jaxnet import _cli\n"
        "sys.exit(_cli.main(['bench', '--list']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = proc.stdout.split()
    assert {"dense_b128", "mlp_b1024", "gpt_block", "peers", "seed"} <= set(listed)
    assert "source checkout" not in proc.stdout + proc.stderr
