"""The public surface: every exported name resolves and is documented, the command
line works, and the README's quickstart runs as written.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import jaxnet
from jaxnet.testing import tolerance

ROOT = Path(__file__).resolve().parent.parent
NAMESPACES = {
    "jaxnet": jaxnet,
    "jaxnet.losses": jaxnet.losses,
    "jaxnet.analytic": jaxnet.analytic,
    "jaxnet.testing": jaxnet.testing,
}
# Data constants: a dict or tuple instance cannot carry its own docstring (its
# __doc__ is the builtin type's).
NO_DOCSTRING = {
    "LOSS_VJPS", "TOLERANCES", "STEPS", "LAYER_CASES", "LOSS_CASES",
    "NOISY", "SAFETY", "ROUNDING", "EXHAUSTIVE_MAX", "JACOBIAN_MAX",
}  # fmt: skip
PUBLIC = [(ns, name) for ns, mod in NAMESPACES.items() for name in mod.__all__]


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_all_is_unique_and_namespace_documented(namespace):
    names = NAMESPACES[namespace].__all__
    assert len(names) == len(set(names))
    assert NAMESPACES[namespace].__doc__.strip()


@pytest.mark.parametrize("namespace, name", PUBLIC, ids=[f"{n}.{m}" for n, m in PUBLIC])
def test_public_name_resolves_and_is_documented(namespace, name):
    obj = getattr(NAMESPACES[namespace], name)
    if name in NO_DOCSTRING:
        assert isinstance(obj, (dict, tuple, int, float)) and obj, (
            f"{name} is not plain data"
        )
        return
    doc = obj.__doc__
    assert doc and doc.strip(), f"{namespace}.{name} has no docstring"
    if isinstance(obj, type):
        # A dataclass without a docstring gets an auto-generated "Name(field, ...)".
        assert not doc.startswith(f"{obj.__name__}("), f"{name}: generated docstring"
    if isinstance(obj, types.ModuleType):
        assert obj.__name__ == f"jaxnet.{name}"


def test_exemptions_are_minimal():
    exported = {name for _, name in PUBLIC}
    assert NO_DOCSTRING <= exported
    for name in NO_DOCSTRING:
        ns = next(n for n, m in NAMESPACES.items() if name in m.__all__)
        assert not callable(getattr(NAMESPACES[ns], name))


def test_star_import_matches_all():
    scope: dict = {}
    exec("from jaxnet import *", scope)
    assert set(scope) - {"__builtins__"} == set(jaxnet.__all__)


# ---------------------------------------------------------------- subprocesses
# Each subprocess starts JAX afresh (seconds each): they are launched together, once
# per module, and the tests below wait on their results.


def _python(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _quickstart(heading: str = "## Quickstart") -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"README has no ```python block under {heading}"
    return match.group(1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    (tmp / "quickstart.py").write_text(_quickstart())
    procs = {
        "version": _python("-m", "jaxnet", "version", cwd=tmp),
        "dense": _python(
            "-m",
            "jaxnet",
            "check",
            "--only",
            "Dense",
            "--json",
            str(tmp / "dense.json"),
            cwd=tmp,
        ),
        "tanh": _python("-m", "jaxnet", "check", "--only", "Tanh", cwd=tmp),
        "quickstart": _python(str(tmp / "quickstart.py"), cwd=tmp),
    }
    results = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=300)
            results[name] = (proc.returncode, out, err)
    finally:  # on a timeout, leave no process behind
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return tmp, results


def _columns(line: str) -> list[str]:
    """Split a table row on the two-space column gaps (cells like "(3, 5)" stay)."""
    return re.split(r"\s{2,}", line.strip())


@pytest.mark.slow
def test_cli_version(runs):
    _, results = runs
    rc, out, err = results["version"]
    assert rc == 0, err
    import jax

    assert out.strip().startswith(f"jaxnet {jaxnet.__version__}, jax {jax.__version__}")


@pytest.mark.slow
def test_cli_check_dense(runs):
    tmp, results = runs
    rc, out, err = results["dense"]
    assert rc == 0, out + err
    lines = out.splitlines()
    assert lines[0].startswith("jaxnet ") and "float64" in lines[0]
    header = next(l for l in lines if l.startswith("kind"))
    assert _columns(header) == [
        "kind", "case", "leaf", "shape", "method", "ad~analytic", "ad~numeric",
        "analytic~numeric", "detects",
    ]  # fmt: skip
    rows = [_columns(l) for l in lines if l.startswith("layer ")]
    # Dense: params/b, params/w, x; Dense(use_bias=False): params/w, x.
    assert [tuple(r[1:4]) for r in rows] == [
        ("Dense", "params/b", "(5,)"),
        ("Dense", "params/w", "(4, 5)"),
        ("Dense", "x", "(3, 4)"),
        ("Dense(use_bias=False)", "params/w", "(4, 3)"),
        ("Dense(use_bias=False)", "x", "(3, 2, 4)"),
    ]
    for r in rows:
        assert r[-1] == "ok" and r[4] == "complex"
        # The three max-rel columns are real numbers within float64's tolerance.
        tol = tolerance("float64", "complex")
        assert all(float(v) <= tol.rtol for v in r[5:8])
        assert float(r[8]) <= tol.rtol  # the smallest error this leaf's check catches
    assert "2 layers and losses, 5 leaves: all agree" in out
    records = json.loads((tmp / "dense.json").read_text())
    assert len(records) == 5 * 3 and all(r["ok"] for r in records)
    assert {r["case"] for r in records} == {"Dense", "Dense(use_bias=False)"}


@pytest.mark.slow
def test_cli_check_tanh(runs):
    _, results = runs
    rc, out, err = results["tanh"]
    assert rc == 0, out + err
    rows = [l for l in out.splitlines() if l.startswith("layer ")]
    assert len(rows) == 1
    assert "Tanh" in rows[0] and rows[0].endswith("ok")
    assert "1 layers and losses, 1 leaves: all agree" in out


# The README's other examples moved into the docs pages: tests/test_docs.py runs them.


@pytest.mark.slow
def test_readme_quickstart_runs(runs):
    _, results = runs
    rc, out, err = results["quickstart"]
    assert rc == 0, out + err
    match = re.search(r"loss ([\d.]+), accuracy ([\d.]+)", out)
    assert match, out
    # The toy problem is separable: 200 Adam steps reach (near) perfect accuracy
    # (measured 1.00, loss 0.001).
    assert float(match.group(2)) >= 0.9
    assert float(match.group(1)) < 0.1
    assert "gradient check of loss_fn: ok" in out
    assert out.splitlines()[0] == "(None, 3) {'b': (32,), 'w': (4, 32)}"
