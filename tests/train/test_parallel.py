"""Data parallelism: 8 simulated devices, 2 real processes, placement rules, errors.

Multi-device runs need ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before
JAX is imported, so they run in subprocesses (tests/train/_sharded_worker.py,
tests/train/_multihost_worker.py); the pytest process itself has one CPU device.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnet
from jaxnet.testing import tolerance

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
F32 = tolerance(jnp.float32)
BF16 = tolerance(jnp.bfloat16)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_"))}
    return env | {"PYTHONHASHSEED": "0"} | extra


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- 8 devices


@pytest.fixture(scope="module")
def eight():
    proc = subprocess.run(
        [sys.executable, str(HERE / "_sharded_worker.py")],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _within(diff, tol, scale=1.0):
    return diff <= tol.atol + tol.rtol * scale


def test_eight_devices_replicated_equals_one_device(eight):
    assert eight["devices"] == 8
    r = eight["mlp_replicated"]
    assert _within(r["max_param_diff"], F32) and _within(r["max_opt_diff"], F32)
    np.testing.assert_allclose(r["loss_multi"], r["loss_single"], rtol=F32.rtol)
    assert r["loss_multi"][-1] < r["loss_multi"][0]  # it trains
    # Replicated: every device holds the whole weight; the batch is split 8 ways.
    assert r["w0_spec"] == [] and r["w0_devices"] == 8
    assert r["w0_shard_shapes"] == [[16, 64]]
    assert r["batch_spec"] == ["data"] and r["batch_shard_shapes"] == [[4, 16]]


def test_eight_devices_fsdp_shards_params_and_adam_state(eight):
    r = eight["mlp_fsdp"]
    assert _within(r["max_param_diff"], F32) and _within(r["max_opt_diff"], F32)
    # dense_0/w (16, 64): split along its 64 columns, 8 per device; Adam's mu too.
    assert r["w0_spec"] == [None, "data"] and r["w0_shard_shapes"] == [[16, 8]]
    assert r["mu_w0_spec"] == [None, "data"]
    assert r["b0_spec"] == []  # 64 elements < min_shard_size: replicated


def test_eight_devices_bfloat16_scanned_transformer(eight):
    r = eight["gpt_bf16_fsdp"]
    assert r["param_dtypes"] == ["float32"]  # bf16 compute, f32 parameters
    assert _within(r["max_param_diff"], BF16)
    np.testing.assert_allclose(r["loss_multi"], r["loss_single"], rtol=BF16.rtol)
    assert r["loss_multi"][-1] < r["loss_multi"][0]
    # The stacked (2 blocks, 16, 64) weight is split along its 64 columns.
    assert r["stack_w_shape"] == [2, 16, 64]
    assert r["stack_w_spec"] == [None, None, "data"]


def test_eight_devices_batchnorm_statistics_are_global(eight):
    r = eight["batchnorm"]
    assert _within(r["max_param_diff"], F32) and _within(r["max_state_diff"], F32)
    assert r["state_replicated"]


def test_eight_devices_errors(eight):
    e = eight["errors"]
    assert "global batch of 10 examples" in e["indivisible"]
    assert "8 devices" in e["indivisible"] and "8 or 16" in e["indivisible"]
    assert "axes ('data',), not 'batch'" in e["bad_axis"]


# -------------------------------------------------------------- 2 processes


def test_two_processes_equal_the_single_process_run(tmp_path):
    """2 processes x 2 CPU devices on localhost (gloo collectives), FSDP, dropout."""
    port = _free_port()
    worker = str(HERE / "_multihost_worker.py")
    out = str(tmp_path / "run")
    procs = [
        subprocess.Popen(
            [sys.executable, worker, out, "2", str(pid), str(port), "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for pid in (0, 1)
    ]
    ref = subprocess.run(
        [sys.executable, worker, str(tmp_path / "ref"), "1", "0", "0", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    for p in procs:
        try:
            _, err = p.communicate(timeout=600)
        finally:
            p.kill()
        assert p.returncode == 0, err[-3000:]
    expected, meta_ref = jaxnet.load_with_metadata(tmp_path / "ref.0")
    assert meta_ref["process_count"] == 1 and meta_ref["device_count"] == 1
    for pid in (0, 1):
        got, meta = jaxnet.load_with_metadata(tmp_path / f"run.{pid}")
        assert meta["process_count"] == 2 and meta["device_count"] == 4
        assert meta["local_device_count"] == 2
        assert meta["rows"] == [8 * pid, 8 * pid + 8]  # each process fed its half
        # dense_0/w (8, 32) split over all 4 devices: 2 local shards of 8 columns.
        assert meta["w_spec"] == [None, "data"] and meta["w_devices"] == 4
        assert meta["w_local_shards"] == [[8, 8], [8, 8]]
        np.testing.assert_allclose(meta["losses"], meta_ref["losses"], rtol=F32.rtol)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(a, b, rtol=F32.rtol, atol=F32.atol)


# ------------------------------------------------------ one device, in-process


def _one_device(**kw):
    """A one-device DataParallel whatever XLA_FLAGS this process started with."""
    return jaxnet.DataParallel(jaxnet.data_mesh(jax.devices()[:1]), **kw)


def test_one_device_step_equals_the_jitted_step():
    model = jaxnet.serial(jaxnet.Dense(4), jaxnet.Tanh(), jaxnet.Dense(2))
    _, params = model.init(jax.random.key(0), (None, 3))
    opt = optax.sgd(0.1)
    step = jaxnet.make_train_step(model, jaxnet.losses.mse, opt)
    x = jax.random.normal(jax.random.key(1), (6, 3))
    y = jax.random.normal(jax.random.key(2), (6, 2))
    ref = jax.jit(step)(params, opt.init(params), (x, y))
    dp = _one_device()
    got = dp.step(step, donate=False)(params, opt.init(params), (x, y))
    tol = tolerance(jnp.float64)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=tol.rtol, atol=tol.atol)
    assert got[0]["dense_0"]["w"].sharding.is_fully_replicated


def test_fsdp_placement_rule():
    dp = _one_device(fsdp=True, min_shard_size=8)
    spec = lambda a: tuple(dp.param_sharding(a).spec)  # noqa: E731
    assert spec(jnp.zeros((3, 5))) == (None, "data")  # the largest axis
    assert spec(jnp.zeros((6, 2))) == ("data",)
    assert spec(jnp.zeros((7,))) == ()  # under min_shard_size: replicated
    assert spec(jnp.zeros(())) == ()
    assert spec(jax.random.split(jax.random.key(0), 16)) == ()  # keys stay whole
    assert tuple(_one_device().param_sharding(jnp.zeros((3, 5))).spec) == ()
    assert _one_device().process_slice(12) == slice(0, 12)


def test_bad_mesh_arguments():
    with pytest.raises(TypeError, match=r"mesh must be a jax.sharding.Mesh"):
        jaxnet.DataParallel(mesh="data")
    with pytest.raises(ValueError, match=r"has axes \('data',\), not 'model'"):
        jaxnet.DataParallel(jaxnet.data_mesh(), axis="model")
    with pytest.raises(ValueError, match=r"empty device list"):
        jaxnet.data_mesh([])


# ----------------------------------------------------------- distributed init


def test_unreachable_coordinator_fails_fast_with_the_address():
    port = _free_port()  # nothing listens there
    t = time.monotonic()
    with pytest.raises(jaxnet.DistributedError) as info:
        jaxnet.initialize_distributed(f"localhost:{port}", 2, 1, timeout=1.0)
    assert time.monotonic() - t < 10
    msg = str(info.value)
    assert f"localhost:{port}" in msg and "within 1 s" in msg
    assert "process 1 of 2" in msg and "same coordinator address" in msg
    assert not jax.distributed.is_initialized()


def test_coordinator_port_taken():
    with socket.socket() as s:
        s.bind(("", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(
            jaxnet.DistributedError, match=rf"port {port}, which is not free"
        ):
            jaxnet.initialize_distributed(f"localhost:{port}", 2, 0, timeout=1.0)


def test_distributed_arguments_from_the_environment(monkeypatch):
    port = _free_port()
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", f"127.0.0.1:{port}")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "3")
    monkeypatch.setenv("JAX_PROCESS_ID", "2")
    with pytest.raises(
        jaxnet.DistributedError, match=rf"process 2 of 3 .* 127.0.0.1:{port}"
    ):
        jaxnet.initialize_distributed(timeout=0.5)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("localhost:1", 2, None), r"give all of coordinator_address"),
        (("localhost", 2, 0), r"must be 'host:port'"),
        (("localhost:1", 2, 2), r"0 <= process_id < num_processes"),
        (("localhost:1", "two", 0), r"must be integers"),
    ],
)
def test_bad_distributed_arguments(args, match, monkeypatch):
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(jaxnet.DistributedError, match=match):
        jaxnet.initialize_distributed(*args, timeout=1.0)


def test_fresh_params_do_not_make_the_second_step_recompile():
    """A fresh init's arrays (SingleDeviceSharding) are re-placed on the mesh, so the
    step's own outputs (NamedSharding) hit the same compiled program next call."""
    model, opt = jaxnet.Dense(2), optax.sgd(0.1)
    _, params = model.init(jax.random.key(0), (None, 3))
    dp = _one_device()
    step = dp.step(jaxnet.make_train_step(model, jaxnet.losses.mse, opt))
    opt_state = opt.init(params)
    batch = (jnp.ones((4, 3)), jnp.ones((4, 2)))
    for _ in range(3):
        params, opt_state, _ = step(params, opt_state, batch)
    (jitted,) = step._cache.values()
    assert jitted._cache_size() == 1
