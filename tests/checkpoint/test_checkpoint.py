"""Tests for the pickle-free checkpoint format (jaxnet/checkpoint/)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import pytest
from helpers import rewrite_checkpoint

import jaxnet
from jaxnet._errors import CheckpointError
from jaxnet.checkpoint._format import _keypath_str
from jaxnet.checkpoint._read import inspect_checkpoint, load, load_with_metadata
from jaxnet.checkpoint._write import save

# ----------------------------------------------------------------------------- helpers


def _params():
    mlp = jaxnet.serial(jaxnet.Dense(8), jaxnet.Relu(), jaxnet.Dense(2))
    _, params = mlp.init(jax.random.key(0), (None, 3))
    return params


def _grads(params, i):
    return jax.tree.map(lambda p: jnp.sin(p * (i + 1.0)) + 0.1, params)


def _run(opt, params, state, steps, start=0):
    # optax itself mixes dtypes (``decay**count``), so it runs under standard promotion.
    with jax.numpy_dtype_promotion("standard"):
        for i in range(start, start + steps):
            updates, state = opt.update(_grads(params, i), state, params)
            params = optax.apply_updates(params, updates)
    return params, state


def _real_tree():
    params = _params()
    opt = optax.adam(1e-3)
    params, opt_state = _run(opt, params, opt.init(params), 3)
    _, bn_state = jaxnet.BatchNorm().init_state((None, 2))
    return {
        "params": params,
        "opt_state": opt_state,
        "state": {"bn": bn_state},
        "step": 7,
        "key": jax.random.key(3),
    }


def _flat(tree):
    return jax.tree_util.tree_flatten_with_path(tree)[0]


def _assert_bit_equal(a, b):
    """Same structure (types included), same dtypes and identical bytes per leaf."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        assert type(x) is type(y) or (
            isinstance(x, jax.Array) and isinstance(y, jax.Array)
        )
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert x.dtype == y.dtype
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        if isinstance(x, float):
            assert np.float64(x).tobytes() == np.float64(y).tobytes()
            continue
        xa, ya = np.asarray(x), np.asarray(y)
        assert xa.dtype == ya.dtype and xa.shape == ya.shape
        assert xa.tobytes() == ya.tobytes()


@pytest.fixture
def ck(tmp_path):
    return tmp_path / "ck.jnc"


# ----------------------------------------------------------------------------- round trips


def test_real_tree_round_trips_bit_exact_with_like(ck):
    tree = _real_tree()
    assert save(ck, tree) == ck
    restored = load(ck, like=tree)
    _assert_bit_equal(restored, tree)
    assert type(restored["opt_state"][0]) is type(tree["opt_state"][0])
    assert restored["step"] == 7 and type(restored["step"]) is int


def test_real_tree_without_like_gives_dicts_for_namedtuples(ck):
    tree = _real_tree()
    save(ck, tree)
    out = load(ck)
    adam = out["opt_state"][0]
    assert isinstance(out["opt_state"], tuple) and len(out["opt_state"]) == 2
    assert isinstance(adam, dict) and list(adam) == ["count", "mu", "nu"]
    assert int(adam["count"]) == 3
    assert out["opt_state"][1] == {}  # EmptyState() has no fields
    assert out["step"] == 7 and type(out["step"]) is int
    # Same leaves under the same paths (NamedTuple fields read as dict keys).
    orig = {_keypath_str(k): v for k, v in _flat(tree)}
    got = {_keypath_str(k): v for k, v in _flat(out)}
    assert list(got) == list(orig) and len(got) == 17
    assert "opt_state/0/mu/dense_0/w" in got and "state/bn/var" in got
    _assert_bit_equal(list(got.values()), list(orig.values()))
    w = out["params"]["dense_0"]["w"]
    assert isinstance(w, jax.Array) and w.dtype == jnp.float32 and w.shape == (3, 8)
    np.testing.assert_array_equal(w, tree["params"]["dense_0"]["w"])


SPECIAL = [0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize(
    "dtype",
    ["float32", "float64", "bfloat16", "float16", "int32", "int64", "uint8", "bool"],
)
def test_array_dtypes_round_trip_bit_exact(ck, dtype):
    dt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        a = np.array([info.min, info.max, 0, 1, 7, info.max - 1], dt).reshape(2, 3)
    elif dt == np.bool_:
        a = np.array([[True, False, True], [False, False, True]])
    else:
        a = np.array(SPECIAL + [ml_dtypes.finfo(dt).tiny], dtype=dt).reshape(2, 4)
        a[0, 0] = np.array(np.nan, dt)  # a NaN payload, bit pattern must survive
    tree = {"j": jnp.asarray(a), "n": a, "empty": np.zeros((0, 3), dt)}
    save(ck, tree)
    out = load(ck)
    for name in ("j", "n"):
        assert isinstance(out[name], jax.Array)
        assert out[name].dtype == dt and out[name].shape == a.shape
        assert np.asarray(out[name]).tobytes() == a.tobytes()
    assert out["empty"].shape == (0, 3) and out["empty"].dtype == dt


def test_negative_zero_and_nan_bits_survive(ck):
    a = np.array([-0.0, 0.0, np.nan, -np.nan], np.float32)
    a = np.concatenate([a, np.array([0x7FC00001], np.uint32).view(np.float32)])
    save(ck, {"a": a, "z": -0.0, "nan": float("nan")})
    out = load(ck)
    assert np.asarray(out["a"]).view(np.uint32).tolist() == a.view(np.uint32).tolist()
    assert np.signbit(out["z"]) and out["z"] == 0.0
    assert type(out["nan"]) is float and np.isnan(out["nan"])


def test_big_endian_numpy_input_is_stored_little_endian(ck):
    a = np.array([1.5, -2.0, 3.25], dtype=">f4")
    save(ck, {"a": a})
    out = load(ck)
    assert out["a"].dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(out["a"]), a.astype("<f4"))


def test_float64_with_x64_off_comes_back_as_numpy_not_narrowed(ck):
    a = np.array([1.0 + 2.0**-40, -0.0], np.float64)
    save(ck, {"a": a, "i": np.array([2**40], np.int64), "f": jnp.ones(2, jnp.float32)})
    with jax.enable_x64(False):
        out = load(ck)
    assert type(out["a"]) is np.ndarray and out["a"].dtype == np.float64
    assert out["a"].tobytes() == a.tobytes()
    assert type(out["i"]) is np.ndarray and int(out["i"][0]) == 2**40
    assert isinstance(out["f"], jax.Array)
    out["a"][0] = 5.0  # writable, not a view of the read buffer
    out64 = load(ck)  # the fixture's x64: a jax array
    assert isinstance(out64["a"], jax.Array) and out64["a"].dtype == jnp.float64


def test_python_scalars_and_containers_round_trip(ck):
    tree = {
        "i": -(2**62),
        "f": 0.1,
        "b": True,
        "none": None,
        "list": [1, [2.5, None], ()],
        "tup": (False, {"x": 3}),
        "empty": {},
        "a/b": {"50%": 1},
        "ü": 2,
    }
    save(ck, tree)
    out = load(ck)
    assert out == tree
    assert [type(out[k]) for k in ("i", "f", "b")] == [int, float, bool]
    assert isinstance(out["tup"], tuple) and isinstance(out["list"], list)
    paths = [leaf["path"] for leaf in inspect_checkpoint(ck)["leaves"]]
    assert "a%2Fb/50%25" in paths and "list/1/0" in paths
    assert load(ck, like=tree) == tree


def test_dict_insertion_order_is_kept_without_like(ck):
    save(ck, {"z": 1, "a": 2, "m": {"y": 1.0, "b": 2.0}})
    out = load(ck)
    assert list(out) == ["z", "a", "m"] and list(out["m"]) == ["y", "b"]


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
def test_typed_key_round_trip_draws_same_numbers(ck, impl):
    key = jax.random.key(3, impl=impl)
    keys = jax.random.split(key, 3)
    save(ck, {"key": key, "keys": keys, "raw": jax.random.PRNGKey(5)})
    out = load(ck)
    assert out["key"].dtype == key.dtype and out["keys"].shape == (3,)
    assert str(jax.random.key_impl(out["key"])) == impl
    a = jax.random.normal(key, (4,), jnp.float32)
    b = jax.random.normal(out["key"], (4,), jnp.float32)
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    np.testing.assert_array_equal(
        jax.random.key_data(jax.random.split(out["keys"][1])),
        jax.random.key_data(jax.random.split(keys[1])),
    )
    assert out["raw"].dtype == jnp.uint32  # an old-style raw key is a uint32 array
    like = jax.eval_shape(
        lambda: {"key": key, "keys": keys, "raw": jax.random.PRNGKey(5)}
    )
    _assert_bit_equal(load(ck, like=like), load(ck))


def test_file_layout_is_aligned_and_as_documented(ck):
    save(ck, {"a": jnp.ones(3, jnp.float32), "b": jnp.ones(5, jnp.int8), "c": 1.0})
    data = ck.read_bytes()
    assert data[:8] == b"JAXNETCK" and int.from_bytes(data[8:12], "little") == 1
    hlen = int.from_bytes(data[12:20], "little")
    assert (20 + hlen) % 64 == 0
    header = json.loads(data[20 : 20 + hlen])
    assert header["format"] == "jaxnet-checkpoint" and header["format_version"] == 1
    assert header["jax_version"] == jax.__version__
    assert [leaf["offset"] for leaf in header["leaves"]] == [0, 64, 128]
    assert len(data) == 20 + hlen + header["payload_nbytes"] + 32
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    start = 20 + hlen
    assert np.frombuffer(data, "<f4", 3, start).tolist() == [1.0, 1.0, 1.0]


# ----------------------------------------------------------------------------- optax


def test_adam_resumed_from_checkpoint_matches_uninterrupted_run(ck):
    opt = optax.adam(1e-3)
    params = _params()
    params, state = _run(opt, params, opt.init(params), 3)
    save(ck, {"params": params, "opt_state": state, "step": 3})
    like = jax.eval_shape(lambda: {"params": params, "opt_state": state, "step": 3})
    r = load(ck, like=like)
    assert isinstance(r["opt_state"][0], optax.ScaleByAdamState)
    assert isinstance(r["opt_state"][1], optax.EmptyState)
    p_resumed, s_resumed = _run(opt, r["params"], r["opt_state"], 2, start=r["step"])
    p_direct, s_direct = _run(opt, params, state, 2, start=3)
    _assert_bit_equal((p_resumed, s_resumed), (p_direct, s_direct))


def test_chain_adamw_schedule_and_multisteps_states_round_trip(ck):
    params = _params()
    sched = optax.cosine_decay_schedule(1e-3, decay_steps=10, alpha=0.1)
    chain = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(sched))
    multi = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=2)
    _, cs = _run(chain, params, chain.init(params), 2)
    _, ms = _run(multi, params, multi.init(params), 3)
    tree = {"chain": cs, "multi": ms}
    save(ck, tree)
    restored = load(ck, like=tree)
    _assert_bit_equal(restored, tree)
    assert isinstance(restored["multi"], optax.MultiStepsState)
    assert int(restored["multi"].mini_step) == 1
    plain = load(ck)
    assert set(plain["multi"]) == set(optax.MultiStepsState._fields)
    # Continuing both gives identical updates.
    _assert_bit_equal(
        _run(chain, params, restored["chain"], 1), _run(chain, params, cs, 1)
    )


# ----------------------------------------------------------------------------- like=


def test_like_shape_mismatch_is_refused_naming_path_and_shapes(ck):
    # Flax's from_bytes restores a (3, 8) kernel into a (3, 4) target without a word
    # (flax issue 2436); we refuse.
    params = _params()
    save(ck, {"params": params})
    other = jaxnet.serial(jaxnet.Dense(4), jaxnet.Relu(), jaxnet.Dense(2))
    _, small = other.init(jax.random.key(0), (None, 3))
    with pytest.raises(CheckpointError) as e:
        load(ck, like={"params": small})
    msg = str(e.value)
    assert f"jaxnet.load('{ck}')" in msg
    assert "params/dense_0/w has shape (3, 8) in the file but (3, 4) in like=" in msg
    assert "params/dense_0/b has shape (8,) in the file but (4,) in like=" in msg
    assert "params/dense_2/w has shape (8, 2) in the file but (4, 2) in like=" in msg
    assert "3 problems" in msg and "different model" in msg


def test_like_missing_extra_and_dtype_mismatch_collected(ck):
    save(ck, {"w": jnp.ones(2, jnp.float32), "extra": 1, "k": jax.random.key(0)})
    like = {
        "w": jax.ShapeDtypeStruct((2,), jnp.bfloat16),
        "missing": jnp.zeros(1),
        "k": jax.ShapeDtypeStruct((), jnp.float32),
    }
    with pytest.raises(CheckpointError) as e:
        load(ck, like=like)
    msg = str(e.value)
    assert "w has dtype float32 in the file but bfloat16 in like=" in msg
    assert "missing is in like= but not in the file" in msg
    assert "extra is in the file (shape (), int64) but not in like=" in msg
    assert "k has dtype key<fry> in the file but float32 in like=" in msg
    assert "4 problems" in msg


def test_like_python_scalar_kinds(ck):
    save(ck, {"step": 7, "lr": 0.5, "n": jnp.array(3, jnp.int32)})
    out = load(
        ck, like={"step": 0, "lr": jax.ShapeDtypeStruct((), jnp.float32), "n": 0}
    )
    assert out == {"step": 7, "lr": 0.5, "n": 3} and type(out["step"]) is int
    with pytest.raises(CheckpointError, match="step is a Python int in the file but a"):
        load(ck, like={"step": 0.0, "lr": 0.5, "n": 0})
    with pytest.raises(
        CheckpointError, match="n is a int32 array in the file but a Py"
    ):
        load(ck, like={"step": 0, "lr": 0.5, "n": 1.0})


def test_like_error_lists_at_most_ten(ck):
    save(ck, {f"p{i:02d}": jnp.zeros(2, jnp.float32) for i in range(14)})
    with pytest.raises(CheckpointError) as e:
        load(ck, like={f"p{i:02d}": jnp.zeros(3, jnp.float32) for i in range(14)})
    msg = str(e.value)
    assert "14 problems" in msg and "... and 4 more" in msg
    assert "p09 has shape" in msg and "p10 has shape" not in msg


def test_like_can_rebuild_namedtuple_from_file_saved_as_tuple_paths(ck):
    # The file's structure is only a description: like= decides the returned types.
    state = optax.ScaleByAdamState(
        count=jnp.array(2, jnp.int32), mu={"w": jnp.ones(2)}, nu={"w": jnp.ones(2)}
    )
    save(ck, {"count": state.count, "mu": state.mu, "nu": state.nu})
    out = load(ck, like=state)
    assert isinstance(out, optax.ScaleByAdamState) and int(out.count) == 2


# ----------------------------------------------------------------------------- metadata


def test_metadata_round_trip_and_inspect(ck):
    meta = {
        "epoch": 3,
        "cfg": {"lr": 1e-3, "layers": [8, 2], "name": "mlp"},
        "ok": None,
    }
    save(
        ck, {"w": jnp.ones((2, 3), jnp.bfloat16), "k": jax.random.key(1)}, metadata=meta
    )
    tree, got = load_with_metadata(ck)
    assert got == meta and tree["w"].dtype == jnp.bfloat16
    info = inspect_checkpoint(ck)
    assert info["metadata"] == meta and info["format_version"] == 1
    assert info["jaxnet_version"] == jaxnet.__version__
    assert info["jax_version"] == jax.__version__ and info["created"].startswith("20")
    assert info["leaves"] == [
        {"path": "w", "shape": (2, 3), "dtype": "bfloat16", "kind": "array"},
        {
            "path": "k",
            "shape": (),
            "dtype": "key<fry>",
            "kind": "key",
            "key_impl": "threefry2x32",
        },
    ]


@pytest.mark.parametrize(
    ("meta", "expect"),
    [
        ({"cfg": {"lr": np.float32(0.1)}}, "metadata['cfg']['lr'] is a float32"),
        ({"tags": [1, {2, 3}]}, "metadata['tags'][1] is a set"),
        ({"loss": float("nan")}, "metadata['loss'] is nan"),
        ({"a": {1: "x"}}, "metadata['a'] has the key 1 of type int"),
        ({"w": jnp.ones(2)}, "metadata['w'] is a ArrayImpl"),
    ],
)
def test_non_json_metadata_is_refused_naming_entry(ck, meta, expect):
    with pytest.raises(CheckpointError, match="jaxnet.save") as e:
        save(ck, {"x": 1}, metadata=meta)
    assert expect in str(e.value)
    assert not ck.exists()


# ----------------------------------------------------------------------------- save errors


class _Thing:
    pass


@pytest.mark.parametrize(
    ("leaf", "expect"),
    [
        (np.array([1, "a"], dtype=object), "a/1 is an array of dtype object"),
        ("hello", "a/1 is a builtins.str"),
        (_Thing(), f"a/1 is a {__name__}._Thing"),
        (2**70, "a/1 is the Python int 1180591620717411303424, outside the int64"),
        (1 + 2j, "a/1 is a builtins.complex"),
    ],
)
def test_unsupported_leaves_fail_before_writing(tmp_path, ck, leaf, expect):
    with pytest.raises(CheckpointError) as e:
        save(ck, {"a": [jnp.ones(2), leaf]})
    assert expect in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_non_str_dict_key_is_refused(ck):
    with pytest.raises(CheckpointError, match=r"at p has the key 0 of type int.*str"):
        save(ck, {"p": {0: jnp.ones(2)}})


def test_missing_directory_is_not_created(tmp_path):
    target = tmp_path / "nope" / "ck.jnc"
    with pytest.raises(CheckpointError) as e:
        save(target, {"x": 1})
    msg = str(e.value)
    assert f"'{tmp_path / 'nope'}' does not exist" in msg and "os.makedirs(" in msg
    assert not (tmp_path / "nope").exists()


def test_save_to_directory_path_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory"):
        save(tmp_path, {"x": 1})


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root ignores directory permissions",
)
def test_unwritable_directory_names_path(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        with pytest.raises(CheckpointError) as e:
            save(d / "ck.jnc", {"x": 1})
        assert f"'{d / 'ck.jnc'}'" in str(e.value) and "writable" in str(e.value)
    finally:
        d.chmod(0o700)


def test_cannot_create_temp_file_names_path(ck, monkeypatch):
    # Runs as root too (where chmod cannot make a directory unwritable).
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(CheckpointError) as e:
        save(ck, {"x": 1})
    assert f"jaxnet.save('{ck}')" in str(e.value)
    assert "Permission denied" in str(e.value) and "writable" in str(e.value)
    assert not ck.exists()


def test_tracer_leaf_is_refused(ck):
    def inside(x):
        save(ck, {"x": x})
        return x

    with pytest.raises(CheckpointError, match="the leaf at x is a .*outside jax.jit"):
        jax.jit(inside)(jnp.ones(2))


def test_root_leaf_round_trips(ck):
    save(ck, jnp.arange(3, dtype=jnp.int32))
    assert inspect_checkpoint(ck)["leaves"][0]["path"] == ""
    np.testing.assert_array_equal(load(ck, like=jnp.zeros(3, jnp.int32)), [0, 1, 2])
    with pytest.raises(CheckpointError, match=r"<root> has shape \(3,\) in the file"):
        load(ck, like=jnp.zeros(4, jnp.int32))


def test_file_mode_follows_umask_not_mkstemp(ck):
    old = os.umask(0o027)
    try:
        save(ck, {"x": 1})
    finally:
        os.umask(old)
    assert ck.stat().st_mode & 0o777 == 0o640


# ----------------------------------------------------------------------------- atomicity


def test_crash_before_rename_keeps_previous_file_and_no_temp(tmp_path, ck, monkeypatch):
    save(ck, {"w": jnp.ones(3, jnp.float32)})
    good = ck.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save(ck, {"w": jnp.zeros(3, jnp.float32)})
    assert ck.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.jnc"]


def test_write_error_is_wrapped_and_previous_file_kept(tmp_path, ck, monkeypatch):
    save(ck, {"w": jnp.ones(3, jnp.float32)})
    good = ck.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device.*unchanged"):
        save(ck, {"w": jnp.zeros(3, jnp.float32)})
    monkeypatch.undo()
    assert ck.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.jnc"]
    np.testing.assert_array_equal(load(ck)["w"], np.ones(3, np.float32))


def test_overwrite_replaces_content(ck):
    save(ck, {"w": jnp.ones(3, jnp.float32)})
    save(ck, {"v": 2})
    assert load(ck) == {"v": 2}


# ----------------------------------------------------------------------------- load errors


def test_missing_file(tmp_path):
    (tmp_path / "other.jnc").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as e:
        load(tmp_path / "ck.jnc")
    msg = str(e.value)
    assert f"jaxnet.load('{tmp_path / 'ck.jnc'}'): no such file" in msg
    assert "other.jnc" in msg


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(CheckpointError, match="directory.*Orbax"):
        load(tmp_path)


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"hello world, not a checkpoint", "an unknown format"),
        (b"", "an empty file"),
        (b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00", "a pickle file"),
        (b"\x93NUMPY\x01\x00v\x00", "a numpy .npy file"),
        (b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":1}', "a safetensors file"),
    ],
)
def test_not_a_checkpoint(ck, content, expect):
    ck.write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        load(ck)
    msg = str(e.value)
    assert "not a jaxnet checkpoint" in msg and expect in msg
    assert f"starts with {content[:8]!r}" in msg


def test_npz_and_flax_msgpack_are_recognised(tmp_path):
    import flax.serialization

    np.savez(tmp_path / "a.npz", w=np.ones(2))
    with pytest.raises(CheckpointError, match=r"zip archive \(e\.g\. numpy \.npz"):
        load(tmp_path / "a.npz")
    raw = flax.serialization.to_bytes({"params": {"w": np.ones(2, np.float32)}})
    (tmp_path / "f.msgpack").write_bytes(raw)
    with pytest.raises(CheckpointError, match="msgpack.*flax.serialization"):
        load(tmp_path / "f.msgpack")


def test_newer_format_version(ck):
    save(ck, {"x": 1})
    rewrite_checkpoint(ck, version=2)
    with pytest.raises(CheckpointError) as e:
        load(ck)
    msg = str(e.value)
    assert "format version 2" in msg and "versions up to 1" in msg
    assert "Upgrade jaxnet" in msg


def test_truncation_anywhere_is_detected(ck):
    save(ck, {"w": jnp.arange(40, dtype=jnp.float32), "k": jax.random.key(0)})
    data = ck.read_bytes()
    hlen = int.from_bytes(data[12:20], "little")
    n = len(data)
    cuts = [3, 8, 10, 19, 20, 40, 20 + hlen // 2, 20 + hlen, 20 + hlen + 70, n - 32]
    cuts += [n - 20, n - 1]
    for cut in cuts:
        ck.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated") as e:
            load(ck)
        assert f"'{ck}'" in str(e.value), cut
    ck.write_bytes(data)
    assert load(ck)["w"].shape == (40,)


def test_any_altered_byte_fails_checksum(ck):
    save(ck, {"w": jnp.arange(40, dtype=jnp.float32)}, metadata={"a": 1})
    data = ck.read_bytes()
    hlen = int.from_bytes(data[12:20], "little")
    true_digest = data[-32:].hex()[:16]
    for pos in [13, 25, 20 + hlen - 1, 20 + hlen + 5, len(data) - 40, len(data) - 1]:
        bad = bytearray(data)
        bad[pos] ^= 0x01
        ck.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError) as e:
            load(ck)
        msg = str(e.value)
        assert f"'{ck}'" in msg and "checksum" in msg and "computed" in msg, pos
        if pos < len(data) - 32 and pos != 13:
            assert "checksum mismatch" in msg and f"stored sha256 {true_digest}" in msg
    # inspect_checkpoint verifies too.
    with pytest.raises(CheckpointError, match="checksum"):
        inspect_checkpoint(ck)


def test_invalid_header_json_with_valid_checksum(ck):
    save(ck, {"x": 1})
    rewrite_checkpoint(ck, text_edit=lambda t: b'{"format": "jaxnet-checkpoint", ')
    with pytest.raises(
        CheckpointError, match="header is invalid: .*not valid UTF-8 JSON"
    ):
        load(ck)


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        (lambda h: h["leaves"][0].update(offset=10**6), "claims bytes"),
        (lambda h: h["leaves"][0].update(offset=-64), "claims bytes"),
        (lambda h: h["leaves"][0].update(shape=[1000]), "claims bytes"),
        (lambda h: h["leaves"][0].update(dtype="object"), "dtype 'object'"),
        (lambda h: h["leaves"][0].update(dtype="os.system"), "dtype 'os.system'"),
        (lambda h: h.update(structure={"dict": {"w": 5}}), "refers to leaf 5"),
        (lambda h: h.update(structure={"dict": {"v": 0}}), "is at v but is named w"),
        (lambda h: h.update(structure={"class": "os.system"}), "unknown structure"),
        (lambda h: h.update(structure=None), "do not appear in the structure"),
        (lambda h: h.update(payload_nbytes=8), "it is"),
        (lambda h: h.update(format="pickle"), "not a jaxnet-checkpoint object"),
        (lambda h: h.update(format_version=7), "disagrees with the prefix"),
    ],
)
def test_defensive_header_checks(ck, edit, expect):
    save(ck, {"w": jnp.ones(4, jnp.float32)})
    rewrite_checkpoint(ck, edit)
    with pytest.raises(CheckpointError, match="header is invalid") as e:
        load(ck)
    assert expect in str(e.value)


def test_leaves_must_tile_the_payload(ck):
    """256 leaves all at offset 0 once loaded as 256 copies of the same bytes (a 4 MiB
    file as 1 GiB); an overlap or a gap is now a named error."""
    save(ck, {f"w{i}": jnp.full((16,), i, jnp.float32) for i in range(8)})

    def overlap(h):
        for rec in h["leaves"]:
            rec["offset"] = 0

    rewrite_checkpoint(ck, overlap)
    with pytest.raises(CheckpointError, match=r"starts at payload byte 0.*no overlap"):
        load(ck)
    save(ck, {"a": jnp.ones(16, jnp.float32), "b": jnp.ones(16, jnp.float32)})

    def gap(h):
        h["leaves"][1]["offset"] += 64
        h["payload_nbytes"] += 64

    rewrite_checkpoint(
        ck, gap
    )  # the payload itself is one leaf short of the gap: refused
    with pytest.raises(CheckpointError, match="header is invalid"):
        load(ck)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_non_regular_files_are_refused_before_reading(tmp_path):
    fifo = tmp_path / "pipe.jnc"
    os.mkfifo(fifo)  # open() would block forever
    with pytest.raises(CheckpointError, match="is a FIFO, not a checkpoint file"):
        load(fifo)
    if os.path.exists("/dev/zero"):  # read() would never end
        with pytest.raises(CheckpointError, match="character device"):
            load("/dev/zero")
        with pytest.raises(CheckpointError, match="character device"):
            inspect_checkpoint("/dev/zero")


def test_unknown_key_impl_is_a_clear_error(ck):
    save(ck, {"k": jax.random.key(0)})
    rewrite_checkpoint(ck, lambda h: h["leaves"][0].update(key_impl="no_such_impl"))
    assert inspect_checkpoint(ck)["leaves"][0]["key_impl"] == "no_such_impl"
    with pytest.raises(CheckpointError, match="'no_such_impl'.*cannot rebuild"):
        load(ck)
