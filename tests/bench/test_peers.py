"""The peers benchmark (``jaxnet/bench/peers.py``): every peer agrees before timing.

Correctness only, no timing thresholds: each importable peer (Flax NNX, Equinox,
PyTorch eager) started from jaxnet's initial weights and stepped once gives jaxnet's
loss and updated weights; a disagreeing peer is refused; the fresh-process init
measurement returns sane numbers with the imports timed apart; ``--case peers``
resolves and the report renders its tables.

The benchmark runs in float32 under JAX's defaults, as from the command line; the
in-process tests enter those defaults explicitly (x64 off, standard dtype promotion,
rank promotion allowed: the raw-JAX step adds a ``(n,)`` bias to ``(b, n)`` as users
write it, and the peers' own code is not written for conftest's strict settings).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jaxnet.bench import _report, peers
from jaxnet.bench._runner import RefusedToTime
from jaxnet.bench.cases import PEERS, SEED, families, select

from ._util import bench_config

BATCH = 2  # tiny: the agreement check, not the timing


def _bench_config():
    return bench_config(strict=False)


@pytest.fixture(scope="module")
def stepped():
    """Every importable peer built at batch 2 and verified once (one compile each)."""
    said: list[str] = []
    with _bench_config():
        built, args = peers.build(BATCH, say=said.append)
        agree = peers.verify(built, args)
        reads = {n: read() for n, (_, read) in built.items()}
    return built, args, agree, reads, said


def _check_peer(stepped, name: str) -> None:
    built, args, agree, reads, _ = stepped
    assert name in built, f"{name} importable but not built"
    assert 0.0 <= agree[name] <= 1.0, (name, agree[name])
    loss, new = reads[name]
    ref_loss, ref = reads["jaxnet"]
    # softmax cross-entropy of a 10-class MLP at init: about log(10)
    assert 1.0 < ref_loss < 5.0
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-4)
    init = jax.device_get(args[0])
    for k in peers.layer_keys():
        for leaf in ("w", "b"):
            np.testing.assert_allclose(
                new[k][leaf], ref[k][leaf], rtol=1e-4, atol=1e-6, err_msg=f"{k}.{leaf}"
            )
        # the step moved the weights (a peer that did nothing would not agree)
        assert np.max(np.abs(new[k]["w"] - init[k]["w"])) > 1e-7, k


@pytest.mark.slow
def test_raw_jax_agrees(stepped):
    _check_peer(stepped, "raw")


@pytest.mark.slow
def test_flax_nnx_agrees(stepped):
    pytest.importorskip("flax.nnx")
    _check_peer(stepped, "flax_nnx")


@pytest.mark.slow
def test_equinox_agrees(stepped):
    pytest.importorskip("equinox")
    _check_peer(stepped, "equinox")


@pytest.mark.slow
def test_torch_agrees(stepped):
    pytest.importorskip("torch")
    _check_peer(stepped, "torch")


def test_missing_peer_is_skipped_with_a_line(monkeypatch):
    monkeypatch.setattr(
        peers, "available", lambda: {"flax_nnx": None, "equinox": None, "torch": None}
    )
    said: list[str] = []
    with _bench_config():
        built, _ = peers.build(BATCH, say=said.append)
    assert set(built) == {"jaxnet", "raw"}
    assert said == [
        "flax_nnx: not importable (skipped)",
        "equinox: not importable (skipped)",
        "torch: not importable (skipped)",
    ]
    said.clear()
    got = peers.init_times(("jaxnet", "equinox"), runs=0, say=said.append)
    assert said == ["equinox: not importable (skipped)"] and "equinox" not in got


def test_verify_refuses_a_disagreeing_peer():
    """A peer whose weights are off by 1% (e.g. a wrong learning rate) is refused."""
    params = {
        "dense_0": {"w": np.ones((3, 2), np.float32), "b": np.zeros(2, np.float32)}
    }
    scaled = jax.tree.map(lambda a: a * np.float32(1.01), params)
    fake = {
        "jaxnet": (lambda: None, lambda: (2.3, params)),
        "good": (lambda: None, lambda: (2.3, params)),
        "bad": (lambda: None, lambda: (2.3, scaled)),
    }
    with pytest.raises(RefusedToTime, match=r"bad: .*x the bound"):
        peers.verify(fake, (params, None, None))
    del fake["bad"]
    assert peers.verify(fake, (params, None, None)) == {"jaxnet": 0.0, "good": 0.0}


@pytest.mark.slow
def test_init_times_are_sane():
    """One fresh child per library: positive times, imports and backend timed apart."""
    libs = ("jaxnet",) + (("torch",) if peers.available()["torch"] else ())
    got = peers.init_times(libs, runs=1)
    assert set(got) == set(libs)
    for lib, d in got.items():
        assert set(d) == {"import_s", "backend_s", "init_s", "wall_s"}, lib
        imp, back, init, wall = (
            d[k]["median"] for k in ("import_s", "backend_s", "init_s", "wall_s")
        )
        assert imp > 0 and init > 0 and back >= 0, lib
        # the parent saw the whole child: the three parts are inside it, apart
        assert imp + back + init < wall, lib
    code = peers.child_code("jaxnet")
    # the clock starts after the imports, and params are blocked on before it stops
    assert code.index("import jaxnet") < code.index("t1 = time.perf_counter()")
    assert code.index("model.init") < code.index("block_until_ready")
    assert code.index("block_until_ready") < code.index("t3 = time.perf_counter()")


def test_case_selection():
    assert select([PEERS]) == [PEERS]
    names = select(["all"])
    assert names[-2:] == [PEERS, SEED]
    assert PEERS in families()


def test_report_tables():
    s = {"median": 1e-3, "min": 0.9e-3, "max": 1.2e-3}
    r = {"median": 1.5, "min": 1.4, "max": 1.6}
    d = {"median": 0.5, "min": 0.4, "max": 0.6}
    row = {
        "case": "peers",
        "versions": {"jaxnet": "0.1.0", "equinox": "not importable (skipped)"},
        "batches": {
            "1": {
                "step_s": {"jaxnet": s, "raw": s},
                "vs_raw": {"jaxnet": r, "raw": r},
                "over_raw_ms": {"jaxnet": d, "raw": d},
            }
        },
        "compile": {
            "1": {
                "jaxnet": {"trace_s": 0.1, "compile_s": 0.4, "total_s": 0.5},
                "raw": {"trace_s": 0.1, "compile_s": 0.3, "total_s": 0.4},
            }
        },
        "init": {
            "jaxnet": {k: d for k in ("import_s", "backend_s", "init_s", "wall_s")}
        },
        "targets": {"jaxnet_fresh_init_at_most_0.3s": False},
    }
    md = _report.peers_table([row])
    assert "| jaxnet | 1 | 1.000 (0.900-1.200) | 1.500 (1.400-1.600) | 0.500" in md
    assert "| raw | 1 | 1.000 (0.900-1.200) | 1 |  |" in md
    assert "| 1 | 0.100 | 0.400 | 0.100 | 0.300 | 1.250 |" in md
    assert "Fresh-process build + init" in md and "| jaxnet | 0.500 (0.400-0.600)" in md
    assert "jaxnet_fresh_init_at_most_0.3s: NOT met" in md
    assert "equinox not importable (skipped)" in md
    full = _report.markdown([row], {"jaxnet": "0.1.0"}, None)
    assert "### Peers" in full
