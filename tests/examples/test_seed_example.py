"""The seed example (``examples/seed_single_layer.py``): it runs, and its claims hold.

The script is run once as a subprocess (exit code and printed markers), and its pure
functions are imported and checked for real numbers under the suite's strict JAX
settings (x64, strict dtype promotion, rank promotion "raise").
"""

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import pytest

from jaxnet import losses

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "seed_single_layer.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("seed_single_layer", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


seed = _load_example()


@pytest.fixture(scope="module")
def script() -> subprocess.CompletedProcess:
    """The example run once, as a user would: ``python examples/seed_single_layer.py``."""
    return subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=EXAMPLE.parent.parent,
    )


@pytest.fixture(scope="module")
def run_output(script) -> str:
    return script.stdout


@pytest.fixture
def case():
    """The script's default run: its float64 neuron at the random initial point."""
    return seed.seed_case(0)


def _section(output: str, title: str) -> str:
    start = output.index(title)
    end = output.find("\n== ", start + 1)
    return output[start : end if end != -1 else None]


def _rows(report_text: str, check: str) -> dict[str, str]:
    """{path: verdict} for the table rows of one comparison in a printed report."""
    pattern = rf"^(dense_0/[wb])\s+{re.escape(check)}\s.*\s(ok|FAIL)$"
    return dict(re.findall(pattern, report_text, flags=re.MULTILINE))


# ----------------------------------------------------------------- the script's run


def test_script_exits_zero_with_every_expectation(script, run_output):
    assert script.returncode == 0, script.stdout + script.stderr
    assert "all expectations hold" in run_output
    expectations = _section(run_output, "== Expectations ==")
    assert "[FAILED]" not in expectations
    assert len(re.findall(r"^\[ok\] ", expectations, flags=re.MULTILINE)) == 7


def test_script_prints_accuracies(run_output):
    training = _section(run_output, "== 1. Training")
    rnd = float(re.search(r"random labels .* accuracy ([0-9.]+)", training).group(1))
    sep = float(re.search(r"separable set .* accuracy ([0-9.]+)", training).group(1))
    assert 0.35 <= rnd <= 0.65
    assert sep >= 0.95


def test_script_flags_the_textbook_formula_for_squared_error(run_output):
    part = _section(run_output, "== 2c.")
    wrong, corrected = part.split("Corrected:")
    assert "FAILED (4 of 6)" in wrong
    # Autodiff and numerics agree; the hand formula disagrees with both, per leaf.
    assert _rows(wrong, "jax.grad vs analytic") == {
        "dense_0/b": "FAIL",
        "dense_0/w": "FAIL",
    }
    assert _rows(wrong, "analytic vs central") == {
        "dense_0/b": "FAIL",
        "dense_0/w": "FAIL",
    }
    assert _rows(wrong, "jax.grad vs central") == {"dense_0/b": "ok", "dense_0/w": "ok"}
    assert "gradient check of mean 1/2 (sigmoid(x w + b) - y)^2: ok" in corrected
    assert "FAIL" not in corrected


def test_script_passes_the_formulas_that_hold(run_output):
    assert "gradient check of sum_of_sigmoid: ok" in _section(run_output, "== 2a.")
    part_b = _section(run_output, "== 2b.")
    assert "binary_cross_entropy(sigmoid(x w + b), y): ok" in part_b
    assert "FAIL" not in part_b


def test_script_explains_the_keras_trap(run_output):
    part = _section(run_output, "== 3.")
    linear = float(
        re.search(r"linear output .* -> ([0-9.]+)\s+accuracy", part).group(1)
    )
    logits = float(re.search(r"logits .* -> ([0-9.]+)\s+accuracy", part).group(1))
    assert linear > 2.0
    assert abs(logits - math.log(2)) < 0.1
    assert "-log(1e-7) = 16.12" in part


# ------------------------------------------------------------ the functions, direct


def test_textbook_formula_is_wrong_for_half_squared_error(case):
    model, params, x, y = case.model, case.params, case.x, case.y
    report = seed.check_half_se_gradient(model, params, x, y, corrected=False)
    assert not report.ok
    by = {(r.path, r.check): r for r in report.rows}
    for leaf in ("dense_0/w", "dense_0/b"):
        assert by[leaf, "jax.grad vs analytic"].max_rel > 1e-2
        assert not by[leaf, "jax.grad vs analytic"].ok
        assert not by[leaf, "analytic vs central"].ok
        assert by[leaf, "jax.grad vs central"].ok


def test_corrected_formula_holds_for_half_squared_error(case):
    model, params, x, y = case.model, case.params, case.x, case.y
    report = seed.check_half_se_gradient(model, params, x, y, corrected=True)
    assert report.ok, str(report)
    analytic = [r for r in report.rows if r.check == "jax.grad vs analytic"]
    assert {r.path for r in analytic} == {"dense_0/w", "dense_0/b"}
    assert all(r.dtype == "float64" and r.max_rel < 1e-13 for r in analytic)


def test_textbook_formula_holds_for_cross_entropy(case):
    model, params, x, y = case.model, case.params, case.x, case.y
    report = seed.check_bce_gradient(model, params, x, y)
    assert report.ok, str(report)
    analytic = [r for r in report.rows if r.check == "jax.grad vs analytic"]
    assert len(analytic) == 2
    assert all(r.max_rel < 1e-13 for r in analytic)


def test_sigmoid_derivative_formula(case):
    report = seed.check_sigmoid_derivative(case.z)
    assert report.ok, str(report)
    assert [r.check for r in report.rows] == [
        "jax.grad vs analytic",
        "jax.grad vs complex",
        "analytic vs complex",
    ]
    assert max(r.max_rel for r in report.rows) < 1e-13


def test_training_random_labels_and_separable(case):
    model, params, x, y = case.model, case.params, case.x, case.y
    xs, ys = case.xs, case.ys
    kw = dict(lr=1.0, epochs=100, threshold=0.5)
    rnd = seed.train(model, losses.binary_cross_entropy, params, x, y, **kw)
    sep = seed.train(model, losses.binary_cross_entropy, params, xs, ys, **kw)
    assert 0.35 <= rnd.accuracy <= 0.65
    assert abs(rnd.loss - math.log(2)) < 0.05  # nothing to learn: about ln 2
    assert sep.accuracy >= 0.95
    assert sep.loss < 0.5 * sep.initial_loss


def test_keras_trap_numbers(case):
    trap = seed.keras_trap(case.x, case.y, case.keras_key, lr=1.0, epochs=100)
    # The linear output escapes [0, 1]; the wrong-side clipped samples (about 16.1
    # each) make up almost all of the loss.
    assert trap.linear.loss > 2.0
    assert trap.wrong_side > 0
    assert trap.wrong_side_loss == pytest.approx(
        trap.wrong_side * -math.log(seed.KERAS_EPSILON) / trap.m, rel=2e-2
    )
    assert trap.wrong_side_loss > 0.9 * trap.linear.loss
    assert abs(trap.logits.loss - math.log(2)) < 0.1
    assert trap.linear.outputs.dtype == jnp.float32


def test_main_exits_one_when_an_expectation_fails(monkeypatch, capsys):
    expectations = [("a claim that holds", True), ("a claim that does not", False)]
    monkeypatch.setattr(seed, "_run", lambda args: expectations)
    assert seed.main([]) == 1
    out = capsys.readouterr().out
    assert "[ok] a claim that holds" in out
    assert "[FAILED] a claim that does not" in out
    assert "1 expectation(s) failed: a claim that does not" in out
    assert "all expectations hold" not in out


def test_main_exits_zero_when_all_hold(monkeypatch, capsys):
    monkeypatch.setattr(seed, "_run", lambda args: [("a claim that holds", True)])
    assert seed.main(["--epochs", "3", "--lr", "0.5", "--seed", "7"]) == 0
    assert "all expectations hold" in capsys.readouterr().out
