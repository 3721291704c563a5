"""The deep benchmark (``jaxnet/bench/deep.py``): variants agree before anything is timed.

Correctness and structure only, no timing thresholds: the whole case on a tiny
Dense + Tanh block (two depths, one compile each; the transformer's compiles take
several seconds each on a loaded 2-core machine) returns every section (agreement, compile
sweep, memory, steady state) with sane numbers; a variant that computes something
else is refused; compile times are refused when JAX's persistent cache is on; the
report renders the deep tables and ``--case deep`` resolves.

The benchmark runs in float32 under JAX's defaults (x64 off), as from the command line;
the tests enter that explicitly, keeping strict dtype and rank promotion.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

import jaxnet
from jaxnet.bench import _report, deep
from jaxnet.bench._runner import RefusedToTime
from jaxnet.bench.cases import DEEP, SEED, families, select

from ._util import assert_png, bench_config

#: The machinery on a Dense + Tanh block: ~14 compilations of a second or less.
FAST = deep.Config(
    batch=2, seq=4, d_model=8, heads=2, depths=(1, 2), mem_depth=2, block="dense_tanh"
)
# The transformer variants' agreement itself is tests/nn/test_stack.py's
# (test_unrolled_and_rematerialised_stacks_give_the_same_numbers); the case checks it
# again at run time, at full size, before timing.


@pytest.fixture(scope="module")
def row():
    said: list[str] = []
    with bench_config():
        out = deep.deep_case(
            cfg=FAST, repeats=2, min_time=0.0, compile_repeats=1, say=said.append
        )
    out["_said"] = said
    return out


@pytest.mark.slow
def test_variants_agree_before_timing(row):
    agree = row["agreement"]
    assert agree["depth"] == 2
    assert set(agree["ratio"]) == set(deep.VARIANTS)
    assert all(0.0 <= r <= 1.0 for r in agree["ratio"].values()), agree["ratio"]
    tol = jaxnet.testing.tolerance("float32")
    assert agree["tolerance"] == {"rtol": tol.rtol, "atol": tol.atol}
    ref = agree["loss"]["scan"]
    assert ref > 0.5  # mse of tanh(...) against an independent N(0, 1) target
    for v, loss in agree["loss"].items():
        assert abs(loss - ref) <= tol.atol + tol.rtol * abs(ref), v
    # the progress lines: agreement is checked first, before any compile timing
    assert row["_said"][0].startswith("  agreement")


@pytest.mark.slow
def test_compile_sweep_structure(row):
    comp = row["compile"]
    assert comp["persistent_cache"]["enabled"] is False
    assert comp["persistent_cache_hits"] == 0
    assert set(comp["per_depth"]) == {"1", "2"}
    for n, per in comp["per_depth"].items():
        assert set(per) == {"scan", "unroll"}, n
        for v, ms in per.items():
            assert set(ms) == {"trace_s", "compile_s", "total_s"}
            for m, s in ms.items():
                assert 0 < s["min"] <= s["median"] <= s["max"], (n, v, m)
            assert ms["total_s"]["median"] == pytest.approx(
                ms["trace_s"]["median"] + ms["compile_s"]["median"]
            )
    # two depths: the slope is the difference of the medians
    for v in ("scan", "unroll"):
        want = (
            comp["per_depth"]["2"][v]["total_s"]["median"]
            - comp["per_depth"]["1"][v]["total_s"]["median"]
        )
        assert comp["slope_s_per_block"][v]["total_s"] == pytest.approx(want)
        assert comp["slope_s_per_block_from_2"][v]["total_s"] is None  # one point
    assert comp["ratio_at_depth"] == 2
    assert comp["ratio_unroll_over_scan"]["total_s"] == pytest.approx(
        comp["per_depth"]["2"]["unroll"]["total_s"]["median"]
        / comp["per_depth"]["2"]["scan"]["total_s"]["median"]
    )


@pytest.mark.slow
def test_memory_and_steady_state(row):
    mem = row["memory"]
    assert set(mem) == set(deep.VARIANTS)
    for v, m in mem.items():
        assert m["temp_bytes"] > 0 and m["argument_bytes"] > 0, v
        assert m["peak_bytes"] == (
            m["temp_bytes"]
            + m["argument_bytes"]
            + m["output_bytes"]
            - (m["alias_bytes"] or 0)
        )
        # same params, x, t in; new params and the loss out, whatever the variant
        assert m["argument_bytes"] == mem["scan"]["argument_bytes"], v
    # remat keeps only each block's input: less temporary memory than plain scan
    assert mem["scan_remat"]["temp_bytes"] < mem["scan"]["temp_bytes"]
    assert set(row["step_s"]) == set(deep.VARIANTS) | {"forward"}
    for v, t in row["step_s"].items():
        assert 0 < t["min"] <= t["median"] <= t["max"], v
    assert set(row["vs_scan"]) == {f"{v}/scan" for v in deep.VARIANTS if v != "scan"}
    assert set(row["remat_extra_forwards"]) == {"scan_remat", "scan_dots_saveable"}


def test_activation_estimate_counts_by_hand():
    e = deep.activation_estimate(deep.FULL)
    mib = 2**20
    assert e["unit_bytes"] == 8 * 128 * 256 * 4 == mib
    assert e["attention_bytes"] == 8 * 4 * 128 * 128 * 4 == 2 * mib
    assert e["per_block_bytes"] == 17 * mib + 2 * mib
    assert e["dots_saveable_per_block_bytes"] == 11 * mib + 2 * mib
    assert e["remat_per_block_bytes"] == mib


def test_refuses_a_disagreeing_variant(monkeypatch):
    """The unrolled variant's loss 0.1% off: loss and every gradient off by 1e-3."""
    real = deep.loss_fn

    def wrong(layer):
        loss = real(layer)
        if "unroll=True" not in layer.desc:
            return loss
        return lambda p, x, t: loss(p, x, t) * jnp.float32(1.001)

    monkeypatch.setattr(deep, "loss_fn", wrong)
    with bench_config(), pytest.raises(RefusedToTime, match=r"unroll: .*the bound"):
        deep.verify(FAST, 2, ("scan", "unroll"))


def test_refuses_compile_times_from_the_persistent_cache(monkeypatch):
    monkeypatch.setattr(
        deep, "persistent_cache", lambda: {"dir": "/tmp/x", "enabled": True}
    )
    with pytest.raises(RefusedToTime, match="persistent compilation cache is on"):
        deep.compile_sweep(FAST, 1, say=lambda _: None)


def test_cache_hits_are_counted():
    with deep.count_cache_hits() as hits:
        jax.monitoring.record_event("/jax/compilation_cache/cache_hits")
        jax.monitoring.record_event("/jax/compilation_cache/cache_misses")
    assert hits == [1]


@pytest.mark.slow
def test_report_and_selection(row, tmp_path):
    assert select(["deep"]) == [DEEP]
    assert DEEP in families()
    chosen = select(["all"])
    assert chosen.index(DEEP) < chosen.index(SEED) == len(chosen) - 1
    clean = {k: v for k, v in row.items() if k != "_said"}
    assert not _report._is_case_row(clean)  # not mistaken for a runner row
    paths = _report.write(str(tmp_path), [clean], clean)
    md = Path(paths["markdown"]).read_text()
    assert "### Deep models: scan vs unroll, remat" in md
    assert "| 2 |" in md and "| scan_dots_saveable |" in md
    (saved,) = json.loads(Path(paths["json"]).read_text())
    assert saved["case"] == "deep" and saved["config"]["depths"] == [1, 2]
    assert _report.deep_table([{"case": "deep", "refused": "x"}]) == ""
    # The plot: with matplotlib (the ``bench`` extra) a real PNG, without it none.
    if importlib.util.find_spec("matplotlib") is None:
        assert paths["plots"] is None
    else:
        assert [Path(p).name for p in paths["plots"]] == ["deep_compile.png"]
        assert_png(paths["plots"][0])
