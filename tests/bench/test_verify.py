"""The verify family (``jaxnet/bench/verify.py``): every target reports a figure and a flag.

Structure only: no timing thresholds and no "met" assertions (machines are noisy, and
the family reports NOT met honestly, with the number). The family runs once at its
``TINY`` sizes (the quick targets, one bias-free Dense layer, one seed: the checker compiles a
probe per leaf, so the cost is the number of leaves and checks, not their size),
in-process, with its two fresh child processes (the MLP's and the exhaustive check's).
The row must carry every quick-mode target with a number and a met/not-met flag; the
family turns float64 on inside and leaves it off after; ``--case verify`` resolves,
prints the table and writes it to results.json / results.md.

The benchmark runs under JAX's defaults (x64 off, standard promotion), as from the
command line; the tests enter that explicitly.
"""

from __future__ import annotations

import json
import math

import jax
import pytest

from jaxnet.bench import _main as bench_main
from jaxnet.bench import verify
from jaxnet.bench.cases import DEEP, PEERS, SEED, VERIFY, families, select

from ._util import bench_config

#: The family's run (the module fixture) takes tens of seconds: the whole file is slow.
pytestmark = pytest.mark.slow

#: The quick targets, in table order (the tiny GPT, 2a and 2b, is full size only).
QUICK_IDS = [
    "1a", "1b", "1c", "3a", "3b", "3c", "3d", "3e", "4a", "4b",
    "5a", "5b", "5c", "6a", "6b", "7", "8a", "8b", "9a", "9b",
]  # fmt: skip
#: Targets whose figure is a time or a memory: finite whenever the measurement ran.
MEASURED = ["1a", "1b", "5c", "6a", "6b", "8a"]


@pytest.fixture(scope="module")
def row():
    said: list[str] = []
    with bench_config(strict=False):
        out = verify.verify_case(cfg=verify.TINY, say=said.append)
        x64_after = bool(jax.config.jax_enable_x64)
    out["_said"], out["_x64_after"] = said, x64_after
    return out


def test_every_quick_target_reports_a_number_and_a_flag(row):
    ids = [t["id"] for t in row["targets"]]
    assert ids == QUICK_IDS, ids  # no section crashed into a "not measured" row
    for t in row["targets"]:
        assert set(t) == {"id", "name", "value", "unit", "figure", "target", "met"}
        assert isinstance(t["value"], float) and not math.isnan(t["value"]), t
        assert isinstance(t["met"], bool), t
        assert t["figure"] and t["target"] and t["name"], t
    by_id = {t["id"]: t for t in row["targets"]}
    for tid in MEASURED:
        assert 0 < by_id[tid]["value"] < math.inf, by_id[tid]


def test_sections_and_children(row):
    assert row["case"] == VERIFY and row["sizes"] == "custom" and row["x64"] is True
    assert row["_x64_after"] is False  # x64 was on inside the family only
    assert set(row["section_s"]) == {
        "mlp", "gpt", "detection", "float32", "localisation", "exhaustive", "hvp",
        "taylor",
    }  # fmt: skip
    assert row["gpt"] is None  # not at these sizes
    fresh = row["mlp"]["fresh"]  # the fresh child process ran and reported back
    assert "error" not in fresh, fresh
    assert fresh["n_params"] == row["mlp"]["n_params"] == 80 * 100  # no bias
    assert 0 < fresh["check_s"] < fresh["wall_s"]
    assert set(row["mlp"]["warm"]["directions"]) == {"dense_0/w"}
    ex = row["exhaustive"]
    assert "error" not in ex, ex
    assert ex["n"] == verify.TINY.exhaustive_n and ex["modes"] == ["exhaustive"]
    assert ex["growth_bytes"] > 0 and ex["memory_method"]
    d = row["detection"]
    assert 0 < d["b_share_of_grad_norm"] <= verify.T_SHARE
    for method in ("central", "complex"):
        assert len(d[method]["detectable_b"]) == d["seeds"] == 1
    assert row["localisation"]["bound"] == 2 * math.ceil(math.log2(100 * 100)) + 2
    assert len(row["hvp"]["seeds"]) == 1
    assert len(row["taylor"]["good"]) == len(row["taylor"]["bad"]) == 1
    # progress lines name every section, in order
    assert [s for s in row["_said"] if s.startswith("  [")][0] == "  [mlp] ..."


def test_wrong_hessian_construction_has_an_exact_gradient():
    """The wrong-Hessian function of target 8: values and gradient exact, Hessian
    diagonal off by exactly ``1 + 1e-4``."""
    with bench_config(strict=False), jax.enable_x64(True):
        x = jax.numpy.linspace(-2.0, 2.0, 7)
        f = verify.sum_sin_wrong_hessian
        assert float(f(x)) == pytest.approx(float(jax.numpy.sum(jax.numpy.sin(x))))
        g = jax.grad(f)(x)
        assert jax.numpy.allclose(g, jax.numpy.cos(x), rtol=0, atol=1e-15)
        h = jax.numpy.diag(jax.hessian(f)(x))
        want = -jax.numpy.sin(x) * (1 + verify.T_HVP_ERROR)
        assert jax.numpy.allclose(h, want, rtol=1e-14, atol=1e-15)


def test_table_and_selection(row, tmp_path, monkeypatch, capsys):
    clean = {k: v for k, v in row.items() if not k.startswith("_")}
    text = verify.format_verify(clean)
    for t in clean["targets"]:
        assert f"| {t['id']} |" in text
    assert "targets met" in text and "2a, 2b" in text
    assert select([VERIFY]) == [VERIFY]
    assert VERIFY in families()
    chosen = select(["all"])
    assert chosen.index(DEEP) < chosen.index(VERIFY) < chosen.index(PEERS)
    assert chosen[-2:] == [PEERS, SEED]
    # --case verify --quick --out: the family runs (named), prints, writes both files
    calls = []

    def fake(quick, say=None):
        calls.append(quick)
        return clean

    monkeypatch.setattr(verify, "verify_case", fake)
    assert bench_main.main(["--case", VERIFY, "--quick", "--out", str(tmp_path)]) == 0
    assert calls == [True]
    out = capsys.readouterr().out
    assert "### Gradient checker verification targets" in out
    assert "| 1a |" in out
    md = (tmp_path / "results.md").read_text()
    assert "### Gradient checker verification targets" in md and "| 9b |" in md
    (saved,) = json.loads((tmp_path / "results.json").read_text())
    assert saved["case"] == VERIFY and len(saved["targets"]) == len(QUICK_IDS)
    # not in --quick unless named
    calls.clear()
    monkeypatch.setattr(bench_main, "select", lambda names: [VERIFY])
    assert bench_main.main(["--quick"]) == 0
    assert calls == []


def test_packaged_tiny_gpt_is_the_examples():
    """``jaxnet/bench/_tiny_gpt.py`` (installed; examples/ is not) gives what
    ``examples/tiny_gpt.py`` gives: the same text ids, windows, model and loss."""
    import importlib.util
    from pathlib import Path

    import jax.numpy as jnp
    import numpy as np

    from jaxnet.bench import _tiny_gpt as ours

    path = Path(__file__).resolve().parents[2] / "examples" / "tiny_gpt.py"
    spec = importlib.util.spec_from_file_location("_tiny_gpt_example", path)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    text = ours.load_text()
    assert text == ex.load_text() and ours.make_vocab(text) == ex.make_vocab(text)
    vocab = ours.make_vocab(text)
    ids = ours.encode(text, vocab)
    np.testing.assert_array_equal(ids, ex.encode(text, vocab))
    starts = ours.eval_starts(len(ids), 16, 3)
    np.testing.assert_array_equal(starts, ex.eval_starts(len(ids), 16, 3))
    xs, ys = ours.windows(ids, starts, 16)
    np.testing.assert_array_equal(xs, ex.windows(ids, starts, 16)[0])
    with bench_config():
        a, b = (m.make_model(len(vocab), 16, 1, 2, 16) for m in (ours, ex))
        _, pa = a.init(jax.random.key(0), (None, 16))
        _, pb = b.init(jax.random.key(0), (None, 16))
        la = ours.char_loss(a.apply(pa, jnp.asarray(xs)), jnp.asarray(ys))
        lb = ex.char_loss(b.apply(pb, jnp.asarray(xs)), jnp.asarray(ys))
    np.testing.assert_array_equal(la, lb)
