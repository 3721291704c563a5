"""The public benchmark API: ``jaxnet.bench.compare``, ``Case``, ``--module``, the wheel.

Correctness only, no timing thresholds: the agreement gate refuses what disagrees
(nothing timed) and names it, where and by how much; what agrees is timed and
returned as data; a module of declared cases runs through ``jaxnet bench
--module``; the harness works from an installed wheel, outside the checkout; the GPU
script runs on the CPU in its dry-run mode.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnet.bench
from jaxnet.bench import Case, RefusedToTime, compare, sgd
from jaxnet.bench import _main as bench_main

from ._util import bench_config

REPO = Path(__file__).resolve().parents[2]
FAST = {"repeats": 3, "min_time": 0.001}


def _example():
    spec = importlib.util.spec_from_file_location(
        "bench_custom_layer", REPO / "examples" / "bench_custom_layer.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SMALL = ["--batch", "8", "--features", "16", "--hidden", "32", "--repeats", "3"]


# ------------------------------------------------------------------ compare


def _sin_fns(scale: float = 1.0):
    def f(p):
        return jnp.sum(jnp.sin(p["w"])) + jnp.sum(p["b"] ** 2)

    def hand(p):
        return {"w": scale * jnp.cos(p["w"]), "b": 2 * p["b"]}

    params = {
        "w": jnp.linspace(-2.0, 2.0, 24, dtype=jnp.float32).reshape(4, 6),
        "b": jnp.arange(3.0, dtype=jnp.float32),
    }
    return {"autodiff": jax.grad(f), "hand": hand}, (params,)


def test_compare_returns_rows_as_data_and_a_table():
    fns, args = _sin_fns()
    with bench_config():
        res = compare(fns, args, flops=1000, name="sin", **FAST)
    assert [r["name"] for r in res.rows] == ["autodiff", "hand"]
    assert res.reference == "autodiff"
    ref, hand = res["autodiff"], res["hand"]
    # the reference against itself: every pair ratio is exactly 1
    assert ref["vs_reference"] == {"median": 1.0, "min": 1.0, "max": 1.0}
    for r in res.rows:
        assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"], r["name"]
        assert r["compile_s"] > 0 and r["trace_s"] > 0
        assert r["gflops"] == pytest.approx(1000 / r["median_s"] / 1e9)
        assert (r["backend"], r["dtype"]) == (jax.default_backend(), "float32")
        assert r["device"] == jax.devices()[0].device_kind
    assert hand["agreement"] <= 1 and hand["max_rel_diff"] < 1e-6
    assert res.ratio("hand") == hand["vs_reference"]["median"]
    table = str(res)
    assert "| function | ms (min-max) | vs autodiff (min-max) |" in table
    assert "| hand |" in table and "GFLOP/s" in table
    back = json.loads(res.to_json())
    assert back["rows"][1]["name"] == "hand" and back["settings"]["repeats"] == 3
    assert back["env"]["backend"] == jax.default_backend()


def test_compare_refuses_a_ten_percent_wrong_gradient_and_times_nothing(monkeypatch):
    fns, args = _sin_fns(scale=1.1)

    def no_timing(*a, **k):
        raise AssertionError("paired() ran: a disagreeing function was timed")

    monkeypatch.setattr(jaxnet.bench._compare, "paired", no_timing)
    with bench_config(), pytest.raises(RefusedToTime) as e:
        compare(fns, args, name="sin", **FAST)
    msg = str(e.value)
    assert "compare(sin)" in msg and "'hand'" in msg and "['w']" in msg
    assert "refusing to time" in msg
    rel = float(re.search(r"max rel diff ([0-9.e+-]+)", msg).group(1))
    assert rel == pytest.approx(0.1, rel=1e-3)  # exactly the 10% put in
    # expected vs actual at the worst element: cos(w) and 1.1 cos(w)
    got = re.search(r"expected ([0-9.e+-]+), got ([0-9.e+-]+)", msg)
    assert float(got.group(2)) == pytest.approx(1.1 * float(got.group(1)), rel=1e-4)
    assert isinstance(e.value, ValueError)


def test_compare_refuses_a_different_tree_or_shape():
    x = (jnp.ones(4),)
    with pytest.raises(RefusedToTime, match=r"'b': its output tree is"):
        compare({"a": lambda x: {"w": x}, "b": lambda x: {"v": x}}, x, **FAST)
    with pytest.raises(
        RefusedToTime, match=r"has shape \(2,\), the reference's \(4,\)"
    ):
        compare({"a": lambda x: x, "b": lambda x: x[:2]}, x, **FAST)


def test_compare_tolerance_follows_the_dtype():
    """A 1e-8 relative error passes in float32 and is refused in float64."""

    def fns(dtype):
        x = jnp.linspace(0.5, 1.5, 16, dtype=dtype)
        return {"exact": lambda x: 2 * x, "off": lambda x: 2 * x * (1 + 1e-8)}, (x,)

    with bench_config():
        res = compare(*fns(jnp.float32), **FAST)
    assert res.rows[0]["name"] == "exact" and res.reference == "exact"
    assert res["off"]["agreement"] <= 1
    with jax.enable_x64(True):
        with pytest.raises(RefusedToTime, match=r"rtol 1e-12, atol 1e-13 \(float64\)"):
            compare(*fns(jnp.float64), **FAST)
        # an explicit, looser bound is the user's call
        res = compare(*fns(jnp.float64), rtol=1e-6, **FAST)
        assert res["off"]["dtype"] == "float64" and res["off"]["agreement"] < 1e-2


def test_compare_reference_and_jit_options():
    fns, args = _sin_fns()
    with bench_config():
        res = compare(fns, args, reference="hand", jit=False, **FAST)
    assert res.reference == "hand" and res["hand"]["vs_reference"]["median"] == 1.0
    assert res["autodiff"]["compile_s"] is None  # not jitted: no compile to time
    with pytest.raises(ValueError, match=r"reference 'nope' is not one of"):
        compare(fns, args, reference="nope")
    with pytest.raises(ValueError, match="no functions"):
        compare({}, args)
    with pytest.raises(KeyError, match="no function 'x'"):
        res["x"]


# ------------------------------------------------------------- the example


@pytest.mark.slow
def test_example_custom_layer_compares_three_gradients(tmp_path, capsys):
    out = tmp_path / "r.json"
    with bench_config():
        res = _example().main([*SMALL, "--min-time", "0.001", "--json", str(out)])
    assert [r["name"] for r in res.rows] == ["autodiff", "hand", "raw"]
    for r in res.rows:
        assert r["agreement"] <= 1 and r["max_rel_diff"] < 1e-5, r["name"]
        # 2 b (f h + h c) forward + 2 b f h + 4 b h c backward, b=8 f=16 h=32 c=10
        assert (
            r["flops"]
            == 2 * 8 * (16 * 32 + 32 * 10) + 2 * 8 * 16 * 32 + 4 * 8 * 32 * 10
        )
    assert json.loads(out.read_text())["rows"][2]["name"] == "raw"
    assert "| raw |" in capsys.readouterr().out


@pytest.mark.slow
def test_example_hand_backward_is_the_gradient():
    """The example's hand-written backward equals jax.grad leaf by leaf (so the
    comparison above checks the formula, not a copy of autodiff)."""
    ex = _example()
    with bench_config():
        fns, args, _ = ex.problem(4, 5, 6, 3)
        a, h = fns["autodiff"](*args), fns["hand"](*args)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(h)):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)
    assert max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(a)) > 1e-3


def test_example_ten_percent_wrong_backward_is_refused(capsys):
    with bench_config():
        assert _example().main([*SMALL, "--wrong"]) is None
    out = capsys.readouterr().out
    assert "refused, as it should be" in out
    assert "'hand'" in out and "['scaled_tanh_dense_0']['w']" in out
    assert "max rel diff 0.1," in out


# --------------------------------------------------------- --module cases

_MODULE = """
import jax, jax.numpy as jnp
from jaxnet.bench import Case, sgd

def _case(name, hand_scale):
    params = {"w": jnp.linspace(-1.0, 1.0, 6, dtype=jnp.float32)}
    x = jnp.linspace(0.0, 1.0, 24, dtype=jnp.float32).reshape(4, 6)
    y = jnp.ones(4, jnp.float32)
    loss = lambda p, x, y: jnp.mean((x @ p["w"] - y) ** 2)
    grad = jax.grad(loss)
    hand = lambda p, x, y: {"w": hand_scale * 2 * x.T @ (x @ p["w"] - y) / 4}
    step = lambda g: lambda p, x, y: (sgd(0.1)(p, g(p, x, y)), loss(p, x, y))
    return Case(name=name, args=(params, x, y), forward=loss,
                steps={"autodiff": step(grad), "hand": step(hand)},
                grads={"autodiff": grad, "hand": hand},
                flops={"forward": 96, "step": 300}, description=f"{name} lsq")

CASES = [_case("my_lsq", 1.0), lambda quick: _case("my_built", 1.0)]
"""


def test_module_cases_run_through_the_suite(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_cases.py").write_text(_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "my_cases", raising=False)
    out = tmp_path / "out"
    argv = ["--module", "my_cases", "--no-peak", "--quick", "--out", str(out)]
    with bench_config():
        assert bench_main.main([*argv, "--repeats", "3"]) == 0
    printed = capsys.readouterr().out
    assert "| my_lsq |" in printed and "| my_built |" in printed
    assert "| mlp_b128 |" not in printed  # only the module's cases
    rows = {r["case"]: r for r in json.loads((out / "results.json").read_text())}
    assert set(rows) == {"my_lsq", "my_built"}
    r = rows["my_lsq"]
    assert r["family"] == "user" and r["dtype"] == "float32"
    assert r["backend"] == jax.default_backend() and r["device"]
    assert r["agreement"]["hand"] <= 1
    assert r["gflops"]["autodiff"]["median"] > 0 and r["peak_gflops"] is None


def test_module_case_with_a_wrong_gradient_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "bad_cases.py").write_text(
        _MODULE.replace(
            'CASES = [_case("my_lsq", 1.0), ', 'CASES = [_case("bad", 1.1), '
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with bench_config():
        code = bench_main.main(
            ["--module", "bad_cases", "--no-peak", "--quick", "--case", "bad"]
        )
    assert code == 1
    captured = capsys.readouterr()
    assert "bad REFUSED" in captured.err and "hand: max rel 1.00e-01" in captured.err
    assert "my_built" not in captured.err  # --case picked one of the module's cases


def test_module_errors_are_usage_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "empty_cases.py").write_text("X = 1\n")
    (tmp_path / "odd_cases.py").write_text("CASES = [42]\n")
    (tmp_path / "clash_cases.py").write_text(
        _MODULE.replace('_case("my_lsq", 1.0)', '_case("mlp_b128", 1.0)')
    )
    with pytest.raises(SystemExit, match=r"expected CASES.*found none"):
        bench_main.main(["--module", "empty_cases", "--list"])
    with pytest.raises(SystemExit, match=r"CASES\[0\] is a int; expected"):
        bench_main.main(["--module", "odd_cases", "--list"])
    with pytest.raises(SystemExit, match=r"'mlp_b128' is already taken \(a built-in"):
        bench_main.main(["--module", "clash_cases", "--list"])
    with pytest.raises(SystemExit, match=r"cannot import it \(ModuleNotFoundError"):
        bench_main.main(["--module", "no_such_cases", "--list"])


def test_case_defaults():
    c = Case(name="c", args=(), steps={}, grads={})
    assert (c.forward, c.flops, c.family, c.dtype, c.quick) == (
        None,
        {},
        "user",
        "float32",
        True,
    )
    assert jaxnet.bench.Case is Case and callable(sgd)


# ------------------------------------------------------ installed, on a GPU


@pytest.mark.slow
def test_wheel_install_runs_outside_the_checkout(tmp_path):
    """Build the wheel from a copy of the project, install it into a fresh target
    folder and, from a temporary directory with the repository off ``sys.path``, run
    ``jaxnet bench`` (a quick case), a ``--module`` case and the example's
    ``compare``. The dependencies (jax, ...) are this environment's: the point is
    that nothing comes from the checkout."""
    pip = [sys.executable, "-m", "pip"]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "jaxnet", src / "jaxnet", ignore=shutil.ignore_patterns("__pycache__")
    )
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("jaxnet-*.whl")
    site = tmp_path / "site"
    inst = subprocess.run(
        [*pip, "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert inst.returncode == 0, inst.stderr[-3000:]
    work = tmp_path / "work"
    work.mkdir()
    (work / "my_cases.py").write_text(_MODULE)
    shutil.copy(REPO / "examples" / "bench_custom_layer.py", work)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(site),
        "JAX_PLATFORMS": "cpu",
        "HOME": str(tmp_path),
    }

    def run(*argv: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=300, cwd=work, env=env
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        return proc

    where = run(
        sys.executable,
        "-c",
        "import importlib.util, jaxnet.bench; print(jaxnet.bench.__file__); "
        "print(importlib.util.find_spec('benchmarks'))",
    ).stdout.split()
    assert where[0].startswith(str(site)) and where[1] == "None"
    script = site / "bin" / "jaxnet"
    bench = [sys.executable, str(script), "bench", "--quick", "--no-peak"]
    quick = run(*bench, "--case", "dense_b128", "--out", "out")
    assert "| dense_b128 |" in quick.stdout
    row = json.loads((work / "out" / "results.json").read_text())[0]
    assert row["case"] == "dense_b128" and row["agreement"]["hand"] <= 1
    user = run(*bench, "--module", "my_cases")
    assert "| my_lsq |" in user.stdout and "| my_built |" in user.stdout
    ex = run(sys.executable, "bench_custom_layer.py", *SMALL, "--min-time", "0.001")
    assert "| hand |" in ex.stdout and "| raw |" in ex.stdout


@pytest.mark.slow
def test_gpu_script_dry_run_on_the_cpu(tmp_path):
    """``benchmarks/gpu.sh --dry-run``: no venv, no CUDA install, the CPU; it writes
    its results where a GPU run would, named after the device and the date."""
    script = REPO / "benchmarks" / "gpu.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert 'pip" install -q -U "jax[cuda12]"' in text and "--case all" in text
    proc = subprocess.run(
        ["bash", str(script), "--dry-run", "--results", str(tmp_path)]
        + ["--", "--case", "dense_b128", "--no-peak"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "dry run on the CPU" in proc.stdout and "--quick" in proc.stdout
    (out,) = tmp_path.glob("cpu-*")
    assert re.fullmatch(r"cpu-\d{4}-\d{2}-\d{2}", out.name)
    rows = json.loads((out / "results.json").read_text())
    assert [r["case"] for r in rows] == ["dense_b128"]
    assert (rows[0]["backend"], rows[0]["device"], rows[0]["dtype"]) == (
        "cpu",
        "cpu",
        "float32",
    )
    assert "| dense_b128 |" in (out / "log.txt").read_text()
    bad = subprocess.run(["bash", str(script), "--frobnicate"], capture_output=True)
    assert bad.returncode == 2 and b"unknown option --frobnicate" in bad.stderr
