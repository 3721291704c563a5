"""Hostile and pathological checkpoints (issue 13): crafted headers with a valid
checksum must load exactly or fail with a named :class:`CheckpointError`, and
``save`` must refuse what it cannot write with one, naming the path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import rewrite_checkpoint

from jaxnet._errors import CheckpointError
from jaxnet.checkpoint._read import inspect_checkpoint, load
from jaxnet.checkpoint._write import save


@pytest.fixture
def ck(tmp_path):
    return tmp_path / "ck.jnc"


# ------------------------------------------------------------------ item 10: load


@pytest.mark.parametrize("depth", [500, 700, 900])
def test_deeply_nested_structure_is_a_checkpoint_error(ck, depth):
    save(ck, {"w": jnp.ones(2)})

    def deep(h):
        h["structure"] = "@@"
        h["leaves"][0]["path"] = "/".join(["0"] * depth)

    nested = b"[" * depth + b"0" + b"]" * depth
    rewrite_checkpoint(ck, deep, text_edit=lambda t: t.replace(b'"@@"', nested))
    for read in (load, inspect_checkpoint):
        with pytest.raises(CheckpointError, match=r"nested .*deep.* at most 100") as e:
            read(ck)
        assert f"'{ck}'" in str(e.value)


@pytest.mark.parametrize("depth", [500, 900, 5000])
def test_deeply_nested_metadata_is_a_checkpoint_error(ck, depth):
    save(ck, {"w": jnp.ones(2)})
    deep = b"[" * depth + b"0" + b"]" * depth
    rewrite_checkpoint(
        ck,
        lambda h: h.update(metadata={"a": "@@"}),
        text_edit=lambda t: t.replace(b'"@@"', deep),
    )
    with pytest.raises(CheckpointError, match=r"metadata.*nested .*deep") as e:
        load(ck)
    assert f"'{ck}'" in str(e.value)


@pytest.mark.parametrize(
    ("shape", "expect"),
    [
        ([1] * 65, "65 dimensions"),
        ([0, 2**63], "too large"),
        ([0, 2**64], "too large"),
        ([0, 2**62, 2**62], "too large"),
        ([0, 2**61, 4], "too large"),  # 2**63 bytes of float32
    ],
)
def test_impossible_shapes_are_a_checkpoint_error(ck, shape, expect):
    save(ck, {"w": jnp.ones(0, jnp.float32)})
    rewrite_checkpoint(ck, lambda h: h["leaves"][0].update(shape=shape))
    for read in (load, inspect_checkpoint):
        with pytest.raises(CheckpointError, match="header is invalid") as e:
            read(ck)
        assert expect in str(e.value) and "w has shape" in str(e.value)


def test_large_empty_shape_still_loads_exactly(ck):
    save(ck, {"w": np.zeros((0, 2**40), np.float32)})
    assert load(ck)["w"].shape == (0, 2**40)


@pytest.mark.parametrize("dtype", [["float32"], {"name": "float32"}, 7, None])
def test_non_string_dtype_is_a_checkpoint_error(ck, dtype):
    save(ck, {"w": jnp.ones(2, jnp.float32)})
    rewrite_checkpoint(ck, lambda h: h["leaves"][0].update(dtype=dtype))
    with pytest.raises(CheckpointError, match="header is invalid") as e:
        load(ck)
    assert "w has shape [2] and dtype" in str(e.value)


def test_key_shape_disagreeing_with_its_data_is_refused(ck):
    keys = jax.random.split(jax.random.key(0), 3)  # shape (3,), data (3, 2)
    save(ck, {"k": keys})
    rewrite_checkpoint(ck, lambda h: h["leaves"][0].update(shape=[]))
    like = {"k": jax.ShapeDtypeStruct((), keys.dtype)}
    for kwargs in ({}, {"like": like}):
        with pytest.raises(CheckpointError, match=r"PRNG key at k") as e:
            load(ck, **kwargs)
        msg = str(e.value)
        assert "declares shape ()" in msg and "(3,)" in msg, msg


def test_key_impl_disagreeing_with_its_dtype_is_refused(ck):
    keys = jax.random.split(jax.random.key(0), 2)  # key<fry>, data (2, 2)
    save(ck, {"k": keys})
    rewrite_checkpoint(
        ck,
        lambda h: h["leaves"][0].update(key_impl="rbg", shape=[1], data_shape=[1, 4]),
    )
    like = {"k": jax.ShapeDtypeStruct((1,), keys.dtype)}
    for kwargs in ({}, {"like": like}):
        with pytest.raises(CheckpointError, match=r"PRNG key at k") as e:
            load(ck, **kwargs)
        assert "key<fry>" in str(e.value) and "key<rbg>" in str(e.value)


def test_valid_keys_still_round_trip_with_like(ck):
    for impl in ("threefry2x32", "rbg"):
        keys = jax.random.split(jax.random.key(0, impl=impl), 3)
        save(ck, {"k": keys})
        got = load(ck, like={"k": jax.ShapeDtypeStruct(keys.shape, keys.dtype)})["k"]
        assert got.dtype == keys.dtype and got.shape == keys.shape
        assert np.array_equal(jax.random.key_data(got), jax.random.key_data(keys))


def test_bool_bytes_other_than_0_and_1_are_refused(ck):
    save(ck, {"b": np.array([True, False, True])})
    rewrite_checkpoint(ck, payload=lambda p: bytes([1, 2, 0]) + p[3:])
    with pytest.raises(CheckpointError, match=r"the bool array at b holds the byte 2"):
        load(ck)
    save(ck, {"b": True})
    rewrite_checkpoint(ck, payload=lambda p: bytes([7]) + p[1:])
    with pytest.raises(CheckpointError, match=r"the bool at b holds the byte 7"):
        load(ck)


def test_int4_bytes_with_the_high_nibble_set_are_refused(ck):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    save(ck, {"q": np.array([-1, 7, -8], ml_dtypes.int4)})
    assert np.array_equal(load(ck)["q"], np.array([-1, 7, -8], ml_dtypes.int4))
    rewrite_checkpoint(ck, payload=lambda p: bytes([0x1F]) + p[1:])
    with pytest.raises(CheckpointError, match=r"int4 array at q holds the byte 31"):
        load(ck)


# ------------------------------------------------------------------ item 11: save


def _deep_list(depth):
    node = [1]
    for _ in range(depth - 1):
        node = [node]
    return node


def _circular_dict():
    d = {"a": 1}
    d["self"] = d
    return d


@pytest.mark.parametrize(
    ("metadata", "expect"),
    [
        ({"note": "bad \udc80 text"}, r"metadata\['note'\] is a str holding the lone"),
        ({"bad \ud800": 1}, r"metadata has the key 'bad \\ud800'.*lone surrogate"),
        ({"a": [{"b": "\udfff"}]}, r"metadata\['a'\]\[0\]\['b'\] is a str"),
        ({"x": _circular_dict()}, r"metadata\['x'\]\['self'\] contains itself"),
        ({"deep": _deep_list(5000)}, r"metadata\['deep'\]\[0\]\[0\].* nested more"),
        ({"n": 10**5000}, r"metadata\['n'\] is an int of 5001 digits"),
        ({"n": [-(10**4300)]}, r"metadata\['n'\]\[0\] is an int of 4301 digits"),
    ],
)
def test_metadata_save_can_not_write_is_refused_naming_entry(ck, metadata, expect):
    with pytest.raises(CheckpointError, match=expect) as e:
        save(ck, {"w": 1}, metadata=metadata)
    assert str(e.value).startswith("jaxnet.save: ")
    assert not ck.exists()


def test_metadata_at_the_limits_still_saves(ck):
    meta = {"n": 10**4299, "deep": _deep_list(98), "s": "caf\u00e9 \U0001f600"}
    save(ck, {"w": 1}, metadata=meta)
    assert inspect_checkpoint(ck)["metadata"] == meta


def _circular_tree():
    t = {"w": jnp.ones(2), "sub": {"b": 1}}
    t["sub"]["loop"] = t
    return t


def _deep_tree(depth):
    node = {"w": 1}
    for _ in range(depth - 1):
        node = {"x": node}
    return node


def _circular_list():
    t = [1]
    t.append({"k": t})
    return t


@pytest.mark.parametrize(
    ("make", "expect"),
    [
        (
            lambda: {"bad \udc80": jnp.ones(2)},
            r"dict at <root> has the key 'bad \\udc80'",
        ),
        (
            lambda: {"a": {"\ud800": 1}},
            r"dict at a has the key '\\ud800'.*lone surrogate",
        ),
        (_circular_tree, r"the dict at sub/loop contains itself: it is the dict at <r"),
        (_circular_list, r"the list at 1/k contains itself: it is the list at <root>"),
        (lambda: _deep_tree(5000), r"nested more than 100 .*at x/x/x/"),
        (lambda: {"n": 10**5000}, r"the leaf at n is a Python int of 5001 digits"),
    ],
)
def test_tree_save_can_not_write_is_refused_naming_path(ck, make, expect):
    with pytest.raises(CheckpointError, match=expect) as e:
        save(ck, make())
    assert str(e.value).startswith("jaxnet.save")
    assert not ck.exists()


def test_tree_at_the_depth_limit_round_trips(ck):
    tree = _deep_tree(100)
    save(ck, tree)
    assert load(ck) == tree
    with pytest.raises(CheckpointError, match="nested more than 100"):
        save(ck, _deep_tree(101))


# ------------------------------------------------------------------ item 7: temporaries


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=60)
    return proc.pid


def _temp(ck, token, pid, age_s=0.0):
    """A temporary with the name a writer (``token``, ``pid``) would give it."""
    tmp = ck.parent / f".{ck.name}.{token}.{pid}.x1y2z3.tmp"
    tmp.write_bytes(b"\0" * 4096)  # a full-size partial checkpoint, in practice
    if age_s:
        old = time.time() - age_s
        os.utime(tmp, (old, old))
    return tmp


@pytest.mark.slow
def test_save_removes_stale_temporaries_of_dead_writers_only(ck, tmp_path):
    from jaxnet.checkpoint._write import _host_token

    here = _host_token()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        dead = _temp(ck, here, _dead_pid())
        mine = _temp(ck, here, os.getpid())  # e.g. another thread saving now
        running = _temp(ck, here, live.pid)
        other_host = _temp(ck, "otherhost-4026531836", 12345)
        other_old = _temp(ck, "otherhost-4026531836", 12346, age_s=3 * 86400)
        legacy_old = ck.parent / f".{ck.name}.k2j3h4ab.tmp"  # a pre-pid-name temp
        legacy_old.write_bytes(b"\0")
        os.utime(legacy_old, (time.time() - 3 * 86400,) * 2)
        # another checkpoint's (ck.jnc.old's) temporaries are left to its own saves
        unrelated = _temp(tmp_path / "ck.jnc.old", here, _dead_pid(), age_s=3 * 86400)

        save(ck, {"w": jnp.ones(3)})
        assert not dead.exists() and not other_old.exists() and not legacy_old.exists()
        assert mine.exists() and running.exists() and other_host.exists()
        assert unrelated.exists()
        assert load(ck)["w"].shape == (3,)
    finally:
        live.kill()
        live.wait(timeout=60)


_KILLED_SAVE = """
import os, signal, sys
import numpy as np
import jaxnet
from jaxnet.checkpoint import _write as _checkpoint
_checkpoint.os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
jaxnet.save(sys.argv[1], {"w": np.ones(100_000, np.float32)})
"""


@pytest.mark.slow
def test_a_save_killed_mid_write_leaves_a_temporary_the_next_save_removes(ck):
    seen = []
    for _ in range(2):  # each killed save removes the previous one's leftover
        proc = subprocess.run(
            [sys.executable, "-c", _KILLED_SAVE, str(ck)], timeout=300
        )
        assert proc.returncode == -signal.SIGKILL
        orphans = [p.name for p in ck.parent.iterdir()]
        assert len(orphans) == 1 and orphans[0].endswith(".tmp"), orphans
        assert orphans[0].startswith(".ck.jnc.") and orphans[0] not in seen
        assert (ck.parent / orphans[0]).stat().st_size > 400_000  # full size
        seen.append(orphans[0])
    save(ck, {"w": jnp.ones(3)})
    assert sorted(p.name for p in ck.parent.iterdir()) == ["ck.jnc"]
