"""Reading checkpoints: every byte, the checksum, the header and each leaf validated
before anything is returned (no pickle, nothing evaluated)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import sys
from typing import Any, TypeGuard

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import CheckpointError
from ._format import (
    _DIGEST,
    _DTYPES,
    _KINDS,
    _MAX_DEPTH,
    _MAX_ERRORS,
    _MAX_NBYTES,
    _MAX_NDIM,
    _PREFIX,
    _SCALAR_DTYPES,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAGIC,
    _escape,
    _jaxnet_version,
    _join,
    _keypath_str,
    _pad,
    _show,
)

# ----------------------------------------------------------------------------- read


def _describe_start(data: bytes) -> str:
    """What a non-checkpoint file looks like, from its first bytes."""
    head = data[:16]
    shown = repr(head[:8])
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        kind = "a zip archive (e.g. numpy .npz, or a torch .pt file)"
    elif head.startswith(b"\x93NUMPY"):
        kind = "a numpy .npy file"
    elif head.startswith(b"\x89HDF"):
        kind = "an HDF5 file (e.g. Keras .h5)"
    elif len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        kind = "a pickle file, which jaxnet never loads (unpickling runs code)"
    elif head and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)):
        kind = "msgpack (e.g. flax.serialization.to_bytes; read it with flax)"
    elif len(data) >= 10 and data[8:10] == b'{"':
        kind = "a safetensors file"
    elif not head:
        kind = "an empty file"
    else:
        kind = "an unknown format"
    return f"it starts with {shown}, not {MAGIC!r}: it looks like {kind}"


def _read(path: str | os.PathLike, fn: str) -> bytes:
    p = os.fspath(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        mode = None  # named below
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        # Before opening: a FIFO would block open(), /dev/zero would never end.
        kind = (
            "a FIFO" if stat.S_ISFIFO(mode)
            else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file"
        )  # fmt: skip
        raise CheckpointError(
            f"{fn}('{p}'): this is {kind}, not a checkpoint file; only regular files "
            "are read. Pass the path of a file written by jaxnet.save."
        )
    try:
        with open(p, "rb") as f:
            return f.read()
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(p))
        near = ""
        if os.path.isdir(parent):
            names = sorted(n for n in os.listdir(parent) if n.endswith(".jnc"))[:5]
            if names:
                near = f" Checkpoints in '{parent}': {', '.join(names)}."
        raise FileNotFoundError(
            f"{fn}('{p}'): no such file.{near} Check the path, or create the "
            "checkpoint with jaxnet.save."
        ) from None
    except IsADirectoryError:
        raise CheckpointError(
            f"{fn}('{p}'): this is a directory, not a jaxnet checkpoint file (an "
            "Orbax checkpoint is a directory: read it with orbax)."
        ) from None


def _corrupt(fn: str, p: str, what: str) -> CheckpointError:
    return CheckpointError(
        f"{fn}('{p}'): the header is invalid: {what}. The file was not written by "
        "jaxnet.save, or was altered; restore it from a backup."
    )


def _as_shape(v: Any) -> TypeGuard[list[int]]:
    """Whether ``v`` is a list of non-negative ints (a stored shape)."""
    return isinstance(v, list) and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v
    )


def _shape_problem(shape: list[int], itemsize: int) -> str:
    """Why numpy could not build an array of ``shape`` ("" if it can)."""
    if len(shape) > _MAX_NDIM:
        return f"{len(shape)} dimensions (at most {_MAX_NDIM})"
    # numpy refuses a shape whose size in bytes, ignoring zero dims, overflows int64
    # (even when a zero dim makes the array empty).
    if math.prod(max(d, 1) for d in shape) * max(itemsize, 1) > _MAX_NBYTES:
        return f"too large for any array (over {_MAX_NBYTES} bytes)"
    return ""


def _brief(shape: list[int]) -> str:
    """A shape for a message, shortened when it has many dimensions."""
    if len(shape) <= 8:
        return str(shape)
    return f"[{', '.join(map(str, shape[:4]))}, ... ({len(shape)} dimensions)]"


def _check_leaves(header: dict, fn: str, p: str) -> list[dict]:
    payload = header.get("payload_nbytes")
    if not isinstance(payload, int) or payload < 0:
        raise _corrupt(fn, p, "payload_nbytes is missing or not a count")
    leaves = header.get("leaves")
    if not isinstance(leaves, list):
        raise _corrupt(fn, p, "'leaves' is not a list")
    cursor = 0  # where the next leaf must start: leaves tile the payload, in order
    for i, rec in enumerate(leaves):
        if not isinstance(rec, dict):
            raise _corrupt(fn, p, f"leaf {i} is not an object")
        kind, path = rec.get("kind"), rec.get("path")
        if kind not in _KINDS or not isinstance(path, str):
            raise _corrupt(fn, p, f"leaf {i} has kind {kind!r} and path {path!r}")
        shape_key, dtype_key = (
            ("data_shape", "data_dtype") if kind == "key" else ("shape", "dtype")
        )
        shape, dtype = rec.get(shape_key), rec.get(dtype_key)
        if not _as_shape(shape) or not isinstance(dtype, str) or dtype not in _DTYPES:
            raise _corrupt(fn, p, f"{path} has shape {shape!r} and dtype {dtype!r}")
        too_big = _shape_problem(shape, _DTYPES[dtype].itemsize)
        if too_big:
            raise _corrupt(fn, p, f"{path} has shape {_brief(shape)}: {too_big}")
        if kind == "key" and not (
            isinstance(rec.get("key_impl"), str)
            and _as_shape(rec.get("shape"))
            and isinstance(rec.get("dtype"), str)
        ):
            raise _corrupt(fn, p, f"the key {path} lacks key_impl, shape or dtype")
        if kind == "key" and _shape_problem(rec["shape"], 1):
            raise _corrupt(
                fn,
                p,
                f"the key {path} has shape {_brief(rec['shape'])}: "
                + _shape_problem(rec["shape"], 1),
            )
        if kind in _SCALAR_DTYPES and (shape or dtype != _SCALAR_DTYPES[kind]):
            raise _corrupt(fn, p, f"the {kind} {path} has shape {shape} and {dtype}")
        off, nbytes = rec.get("offset"), rec.get("nbytes")
        expected = math.prod(shape) * _DTYPES[dtype].itemsize
        if not (
            isinstance(off, int)
            and isinstance(nbytes, int)
            and nbytes == expected
            and 0 <= off
            and off + nbytes <= payload
        ):
            raise _corrupt(
                fn,
                p,
                f"{path} claims bytes [{off}, {off}+{nbytes}) of a {payload}-byte "
                f"payload, for {expected} bytes of data",
            )
        if off != cursor:  # an overlap would load the same bytes many times over
            raise _corrupt(
                fn,
                p,
                f"{path} starts at payload byte {off}, but the previous leaf ends at "
                f"{cursor}: leaves must tile the payload in order (no "
                f"{'overlap' if off < cursor else 'gap'})",
            )
        cursor = off + nbytes + _pad(nbytes)
    if cursor != payload:
        raise _corrupt(
            fn, p, f"the leaves cover {cursor} of the {payload} payload bytes"
        )
    return leaves


def _check_structure(
    node: Any, parts: tuple[str, ...], paths: list[str], seen: set[int], fn: str, p: str
) -> None:
    """Check every node's form and that leaf ``i`` sits at ``leaves[i]["path"]``."""
    if node is None:
        return
    if len(parts) > _MAX_DEPTH:
        raise _corrupt(
            fn,
            p,
            f"the structure is nested too deeply at {_show(_join(parts[:3]))}/...: "
            f"trees may nest at most {_MAX_DEPTH} containers deep",
        )
    if isinstance(node, int) and not isinstance(node, bool):
        if not 0 <= node < len(paths) or node in seen:
            raise _corrupt(fn, p, f"structure refers to leaf {node!r} wrongly")
        if paths[node] != _join(parts):
            raise _corrupt(
                fn, p, f"leaf {node} is at {_join(parts)} but is named {paths[node]}"
            )
        seen.add(node)
        return
    if isinstance(node, list):
        for i, v in enumerate(node):
            _check_structure(v, (*parts, str(i)), paths, seen, fn, p)
        return
    if isinstance(node, dict):
        if set(node) == {"dict"} and isinstance(node["dict"], dict):
            for k, v in node["dict"].items():
                _check_structure(v, (*parts, _escape(k)), paths, seen, fn, p)
            return
        if set(node) == {"tuple"} and isinstance(node["tuple"], list):
            for i, v in enumerate(node["tuple"]):
                _check_structure(v, (*parts, str(i)), paths, seen, fn, p)
            return
        if (
            set(node) == {"namedtuple", "fields"}
            and isinstance(node["namedtuple"], str)
            and isinstance(node["fields"], dict)
        ):
            for k, v in node["fields"].items():
                _check_structure(v, (*parts, k), paths, seen, fn, p)
            return
    raise _corrupt(fn, p, f"unknown structure node at {_show(_join(parts))}")


_TOO_DEEP = object()  # json.loads hit the recursion limit


def _depth(x: Any) -> int:
    """How deep JSON data nests lists and dicts (iteratively: no recursion limit)."""
    deepest, todo = 0, [(x, 0)]
    while todo:
        node, d = todo.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, d + 1)
            if deepest > _MAX_DEPTH:
                return deepest
            todo.extend(
                (v, d + 1) for v in (node.values() if isinstance(node, dict) else node)
            )
    return deepest


def _parse(path: str | os.PathLike, fn: str) -> tuple[dict, memoryview, int]:
    """Read, verify and parse a checkpoint: ``(header, file bytes, payload start)``."""
    p = os.fspath(path)
    data = _read(p, fn)
    n = len(data)
    if n < len(MAGIC) and MAGIC.startswith(data) and data:
        raise CheckpointError(
            f"{fn}('{p}'): the file is truncated: it is {n} bytes, shorter than the "
            f"{_PREFIX}-byte prefix. The write was interrupted; use an earlier "
            "checkpoint."
        )
    if data[: len(MAGIC)] != MAGIC:
        raise CheckpointError(
            f"{fn}('{p}'): not a jaxnet checkpoint: {_describe_start(data)}."
        )
    if n < _PREFIX:
        raise CheckpointError(
            f"{fn}('{p}'): the file is truncated: it is {n} bytes, shorter than the "
            f"{_PREFIX}-byte prefix. The write was interrupted; use an earlier "
            "checkpoint."
        )
    version = int.from_bytes(data[8:12], "little")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{fn}('{p}'): the checkpoint has format version {version}, but this "
            f"jaxnet ({_jaxnet_version()}) reads versions up to {FORMAT_VERSION}. "
            "Upgrade jaxnet (pip install -U jaxnet) to read it."
        )
    hlen = int.from_bytes(data[12:20], "little")
    view = memoryview(data)
    stored = bytes(view[-_DIGEST:]) if n >= _PREFIX + _DIGEST else b""
    actual = hashlib.sha256(view[: max(n - _DIGEST, 0)]).digest()
    checksum_ok = stored == actual
    start = _PREFIX + hlen
    header: Any = None
    payload: Any = None
    size_problem = ""
    if start + _DIGEST > n:
        size_problem = (
            f"it is {n} bytes, but its header alone declares {start + _DIGEST} "
            f"({_PREFIX}-byte prefix + {hlen}-byte header + {_DIGEST}-byte checksum)"
        )
    else:
        try:
            header = json.loads(bytes(view[_PREFIX:start]).decode("utf-8"))
        except ValueError:
            header = None
        except RecursionError:  # nested beyond what json itself can read
            header = _TOO_DEEP
        payload = header.get("payload_nbytes") if isinstance(header, dict) else None
        if isinstance(payload, int) and start + payload + _DIGEST != n:
            size_problem = (
                f"it is {n} bytes, but its header declares {start + payload + _DIGEST}"
                f" ({_PREFIX}-byte prefix + {hlen}-byte header + {payload}-byte "
                f"payload + {_DIGEST}-byte checksum)"
            )
    if not checksum_ok:
        digests = (
            f"stored sha256 {stored.hex()[:16]}..., computed {actual.hex()[:16]}..."
        )
        short = start + _DIGEST > n or (
            isinstance(payload, int) and start + payload + _DIGEST > n
        )
        if short:
            raise CheckpointError(
                f"{fn}('{p}'): the file is truncated (or corrupted): {size_problem}; "
                f"the checksum does not match ({digests}). The write was interrupted "
                "or the copy is incomplete; use an earlier checkpoint."
            )
        raise CheckpointError(
            f"{fn}('{p}'): checksum mismatch: the file is corrupted ({digests}). "
            f"{size_problem + '. ' if size_problem else ''}Some bytes changed after "
            "it was written (disk or copy error); restore it from a backup."
        )
    # The checksum matches: the bytes are as written. Still check them defensively.
    if version < 1:
        raise _corrupt(fn, p, f"format version {version} does not exist")
    if header is _TOO_DEEP:
        raise _corrupt(
            fn,
            p,
            f"the header JSON is nested too deeply to read (trees and metadata may "
            f"nest at most {_MAX_DEPTH} levels)",
        )
    if header is None:
        raise _corrupt(fn, p, "the header is not valid UTF-8 JSON")
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise _corrupt(fn, p, f"the header is not a {FORMAT_NAME} object")
    if header.get("format_version") != version:
        raise _corrupt(fn, p, "the header's format_version disagrees with the prefix")
    if size_problem:
        raise _corrupt(fn, p, size_problem)
    if not isinstance(header.get("metadata"), dict):
        raise _corrupt(fn, p, "'metadata' is not an object")
    if not isinstance(header.get("model", ""), str):
        raise _corrupt(fn, p, "'model' (the model's description) is not a string")
    if _depth(header["metadata"]) > _MAX_DEPTH:
        raise _corrupt(
            fn, p, f"the metadata is nested too deeply (at most {_MAX_DEPTH} levels)"
        )
    leaves = _check_leaves(header, fn, p)
    seen: set[int] = set()
    _check_structure(
        header.get("structure"), (), [r["path"] for r in leaves], seen, fn, p
    )
    if len(seen) != len(leaves):
        raise _corrupt(fn, p, "some leaves do not appear in the structure")
    return header, view, start


def _restore_leaf(rec: dict, view: memoryview, start: int, fn: str, p: str) -> Any:
    kind = rec["kind"]
    shape_key, dtype_key = (
        ("data_shape", "data_dtype") if kind == "key" else ("shape", "dtype")
    )
    dtype, shape = _DTYPES[rec[dtype_key]], tuple(rec[shape_key])
    if dtype.itemsize > 1 and sys.byteorder == "big":  # pragma: no cover
        dtype = dtype.newbyteorder("<")
    if rec["nbytes"]:
        a = np.frombuffer(
            view, dtype, count=math.prod(shape), offset=start + rec["offset"]
        ).reshape(shape)
    else:
        a = np.zeros(shape, dtype)
    _check_canonical(a, rec, fn, p)
    if kind in _SCALAR_DTYPES:
        return {"int": int, "float": float, "bool": bool}[kind](a.item())
    if kind == "key":
        try:
            key = jax.random.wrap_key_data(jnp.asarray(a), impl=rec["key_impl"])
        except Exception as e:
            raise CheckpointError(
                f"{fn}('{p}'): the PRNG key at {rec['path']} uses the implementation "
                f"{rec['key_impl']!r} with data {a.dtype}{list(a.shape)}, which this "
                f"jax ({jax.__version__}) cannot rebuild ({e})."
            ) from e
        # like= was checked against the declared shape and dtype: the key built from
        # the data must be exactly that, or like= would have checked something else.
        declared = (tuple(rec["shape"]), rec["dtype"])
        if (key.shape, str(key.dtype)) != declared:
            raise CheckpointError(
                f"{fn}('{p}'): the PRNG key at {rec['path']} declares shape "
                f"{declared[0]} and dtype {declared[1]}, but its data "
                f"({a.dtype}{list(a.shape)}, key_impl {rec['key_impl']!r}) make a key "
                f"of shape {key.shape} and dtype {key.dtype}. The header was altered; "
                "restore the file from a backup."
            )
        return key
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        return a.copy()  # 64-bit data with x64 off: keep it exact, as numpy
    return jnp.asarray(a)


def _check_canonical(a: np.ndarray, rec: dict, fn: str, p: str) -> None:
    """Refuse bytes that ``save`` never writes and that would not load exactly: a
    bool byte other than 0/1 (numpy and jax disagree on its sum), or an int4/uint4
    byte with its high nibble set (ignored, so the value would not round-trip)."""
    name = a.dtype.name
    if name == "bool":
        raw, allowed, what = a.view(np.uint8), 1, "0 or 1"
    elif name in ("int4", "uint4"):
        raw, allowed, what = a.view(np.uint8), 15, "0 to 15 (the high nibble zero)"
    else:
        return
    bad = np.flatnonzero(raw.reshape(-1) > allowed)
    if bad.size:
        i = int(bad[0])
        noun = "bool" if rec["kind"] == "bool" else f"{name} array"
        at = "" if rec["kind"] == "bool" else f" at flat index {i}"
        raise CheckpointError(
            f"{fn}('{p}'): the {noun} at {_show(rec['path'])} holds the byte "
            f"{int(raw.reshape(-1)[i])}{at} ({bad.size} such byte(s)); jaxnet.save "
            f"writes only {what}. The file was altered; restore it from a backup."
        )


def _decode(node: Any, leaves: list[Any]) -> Any:
    if node is None:
        return None
    if isinstance(node, int):
        return leaves[node]
    if isinstance(node, list):
        return [_decode(v, leaves) for v in node]
    if "dict" in node:
        return {k: _decode(v, leaves) for k, v in node["dict"].items()}
    if "tuple" in node:
        return tuple(_decode(v, leaves) for v in node["tuple"])
    return {k: _decode(v, leaves) for k, v in node["fields"].items()}


def _like_spec(x: Any) -> tuple[tuple[int, ...], str, str] | None:
    """``(shape, dtype name, category)`` of a ``like`` leaf, or None if unusable."""
    if isinstance(x, bool):
        return (), "bool", "bool"
    if isinstance(x, int):
        return (), "int", "int"
    if isinstance(x, float):
        return (), "float", "float"
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        return None
    dt = x.dtype
    if jnp.issubdtype(dt, jax.dtypes.prng_key):
        return tuple(x.shape), str(dt), "key"
    dt = np.dtype(dt)
    return tuple(x.shape), str(dt), _category(dt)


def _category(dt: np.dtype) -> str:
    if dt == np.bool_:
        return "bool"
    if jnp.issubdtype(dt, np.integer):
        return "int"
    return "float" if jnp.issubdtype(dt, np.inexact) else "other"


def _file_spec(rec: dict) -> tuple[tuple[int, ...], str, str]:
    kind = rec["kind"]
    if kind in _SCALAR_DTYPES:
        return (), kind, kind
    if kind == "key":
        return tuple(rec["shape"]), rec["dtype"], "key"
    return tuple(rec["shape"]), rec["dtype"], _category(_DTYPES[rec["dtype"]])


def _match(like: Any, leaves: list[dict], fn: str, p: str) -> tuple[list[int], Any]:
    """Indices of the file leaves in ``like``'s leaf order, and ``like``'s treedef."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(like)
    by_path = {rec["path"]: i for i, rec in enumerate(leaves)}
    problems, order = [], []
    like_paths = set()
    for keypath, x in flat:
        path = _keypath_str(keypath)
        like_paths.add(path)
        i = by_path.get(path)
        if i is None:
            problems.append(f"{_show(path)} is in like= but not in the file")
            continue
        order.append(i)
        want, have = _like_spec(x), _file_spec(leaves[i])
        if want is None:
            problems.append(
                f"{_show(path)} is a {type(x).__name__} in like=; like= leaves must be "
                "arrays, jax.ShapeDtypeStructs or Python scalars"
            )
        elif want[0] != have[0]:
            problems.append(
                f"{_show(path)} has shape {have[0]} in the file but {want[0]} in like="
            )
        elif "python" in (_origin(want), _origin(have)):
            if want[2] != have[2]:
                problems.append(
                    f"{_show(path)} is {_kind_text(have)} in the file but "
                    f"{_kind_text(want)} in like="
                )
        elif want[1] != have[1]:
            problems.append(
                f"{_show(path)} has dtype {have[1]} in the file but {want[1]} in like="
            )
    for rec in leaves:
        if rec["path"] not in like_paths:
            problems.append(
                f"{_show(rec['path'])} is in the file (shape {tuple(rec['shape'])}, "
                f"{rec['dtype']}) but not in like="
            )
    if problems:
        shown = "\n  - ".join(problems[:_MAX_ERRORS])
        more = (
            f"\n  ... and {len(problems) - _MAX_ERRORS} more"
            if len(problems) > _MAX_ERRORS
            else ""
        )
        lead = (
            problems[0] + "."
            if len(problems) == 1
            else f"the file does not match like= ({len(problems)} problems):\n  - "
            f"{shown}{more}\n"
        )
        raise CheckpointError(
            f"{fn}('{p}'): {lead} The checkpoint was saved from a different model or "
            "optimizer, or like= was built with other settings (dtype, x64). Build "
            "like= from the same model (e.g. jax.eval_shape of its init), or call "
            f"{fn}(path) without like= to get the saved tree as dicts and lists "
            "(jaxnet.inspect_checkpoint(path) lists its leaves)."
        )
    return order, treedef


def _origin(spec: tuple[Any, str, str]) -> str:
    return "python" if spec[1] in ("int", "float", "bool") else "array"


def _kind_text(spec: tuple[Any, str, str]) -> str:
    return f"a Python {spec[1]}" if _origin(spec) == "python" else f"a {spec[1]} array"


def _load(path: str | os.PathLike, like: Any, fn: str) -> tuple[Any, dict]:
    p = os.fspath(path)
    header, view, start = _parse(p, fn)
    leaves = header["leaves"]
    if like is not None:
        order, treedef = _match(like, leaves, fn, p)
        values = [_restore_leaf(leaves[i], view, start, fn, p) for i in order]
        return jax.tree_util.tree_unflatten(treedef, values), header["metadata"]
    values = [_restore_leaf(rec, view, start, fn, p) for rec in leaves]
    return _decode(header["structure"], values), header["metadata"]


def load(path: str | os.PathLike, like: Any = None) -> Any:
    """Read a checkpoint written by :func:`save`.

    Args:
      path: the checkpoint file.
      like: optional tree with the expected structure, e.g. the live state or
        ``jax.eval_shape`` of the code that builds it (leaves may be arrays,
        ``jax.ShapeDtypeStruct`` or Python scalars). Every path, shape and dtype is
        checked, and the tree comes back with ``like``'s structure, so NamedTuples
        (optax states) are rebuilt as their real classes. Without it, NamedTuples
        come back as dicts of their fields.

    Returns:
      The tree. Arrays are jax arrays of the saved dtype, except 64-bit arrays
      loaded with ``jax_enable_x64`` off, which come back as numpy arrays rather
      than being narrowed. PRNG keys are typed keys; Python scalars stay Python
      scalars.

    Raises:
      FileNotFoundError: if there is no file at ``path``.
      CheckpointError: if the file is not a jaxnet checkpoint, has a newer format
        version, is truncated or corrupted (checksum), or does not match ``like``
        (every mismatched path, with both values).

    Examples:
      >>> import os, tempfile, jax, jax.numpy as jnp, jaxnet
      >>> like = {"b": jax.ShapeDtypeStruct((3,), jnp.float32)}
      >>> with tempfile.TemporaryDirectory() as d:
      ...     p = jaxnet.save(os.path.join(d, "ck.jnc"), {"b": jnp.zeros(2)})
      ...     try:
      ...         jaxnet.load(p, like=like)
      ...     except jaxnet.CheckpointError as e:
      ...         print(str(e).split("): ", 1)[1].split(".")[0])
      b has shape (2,) in the file but (3,) in like=
    """
    return _load(path, like, "jaxnet.load")[0]


def load_with_metadata(path: str | os.PathLike, like: Any = None) -> tuple[Any, dict]:
    """Like :func:`load`, also returning the ``metadata=`` dict given to :func:`save`.

    Args:
      path: the checkpoint file.
      like: optional expected tree, as for :func:`load`.

    Returns:
      ``(tree, metadata)``.

    Raises:
      FileNotFoundError, CheckpointError: as :func:`load`.
    """
    return _load(path, like, "jaxnet.load_with_metadata")


def inspect_checkpoint(path: str | os.PathLike) -> dict:
    """Verify a checkpoint and describe it, without building any array.

    Args:
      path: the checkpoint file.

    Returns:
      A dict with ``format_version``, ``jaxnet_version``, ``jax_version``,
      ``created``, ``model`` (the description ``save(model=)`` or :func:`~jaxnet.fit`
      stored, else ``None``), ``metadata``, ``nbytes`` (of the payload) and
      ``leaves``: one
      ``{"path", "shape", "dtype", "kind"}`` dict per leaf (plus ``"key_impl"`` for
      PRNG keys), shapes as tuples.

    Raises:
      FileNotFoundError, CheckpointError: as :func:`load` (the checksum is verified).

    Examples:
      >>> import os, tempfile, jax.numpy as jnp, jaxnet
      >>> with tempfile.TemporaryDirectory() as d:
      ...     p = jaxnet.save(os.path.join(d, "ck.jnc"), {"w": jnp.ones((2, 3))})
      ...     jaxnet.inspect_checkpoint(p)["leaves"]
      [{'path': 'w', 'shape': (2, 3), 'dtype': 'float32', 'kind': 'array'}]
    """
    header, _, _ = _parse(path, "jaxnet.inspect_checkpoint")
    leaves = []
    for rec in header["leaves"]:
        entry = {
            "path": rec["path"],
            "shape": tuple(rec["shape"]),
            "dtype": rec["dtype"],
            "kind": rec["kind"],
        }
        if rec["kind"] == "key":
            entry["key_impl"] = rec["key_impl"]
        leaves.append(entry)
    return {
        "format_version": header["format_version"],
        "jaxnet_version": header.get("jaxnet_version"),
        "jax_version": header.get("jax_version"),
        "created": header.get("created"),
        "nbytes": header["payload_nbytes"],
        "leaves": leaves,
        "model": header.get("model"),
        "metadata": header["metadata"],
    }
