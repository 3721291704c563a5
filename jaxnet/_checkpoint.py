"""Pickle-free checkpoints: :func:`save`, :func:`load`, :func:`inspect_checkpoint`.

A checkpoint is one file holding a pytree of arrays and scalars (params, optimizer
state, model state, step counter, PRNG key). Loading never imports, instantiates or
evaluates anything named in the file (that is what makes pickle unsafe): the file
is JSON plus raw bytes, and the reader only ever builds dicts, lists, tuples,
Python scalars and arrays of a fixed list of dtypes.

File layout (all integers little-endian)::

    offset  size  content
    0       8     magic b"JAXNETCK"
    8       4     format version, uint32 (= 1)
    12      8     header length H in bytes, uint64
    20      H     header: UTF-8 JSON, padded with spaces so that the payload starts
                  at a multiple of 64 bytes
    20+H    P     payload: the raw little-endian bytes of each leaf (C order), each
                  leaf starting at a multiple of 64 bytes (gaps are zero bytes)
    20+H+P  32    sha256 digest of every byte before it

The header is a JSON object::

    {"format": "jaxnet-checkpoint", "format_version": 1,
     "jaxnet_version": "0.1.0", "jax_version": "0.10.2",
     "created": "2026-01-01T12:00:00+00:00",
     "payload_nbytes": P,
     "structure": <the tree, see below>,
     "leaves": [{"path": "params/dense_0/w", "kind": "array", "shape": [3, 8],
                 "dtype": "float32", "offset": 0, "nbytes": 96}, ...],
     "metadata": {...}}                       # the user's JSON metadata

``offset`` is relative to the payload start. ``kind`` is ``"array"`` (a jax or
numpy array, or numpy scalar), ``"key"`` (a typed PRNG key array, stored as its
``jax.random.key_data``; the entry adds ``"key_impl"`` such as ``"threefry2x32"``
and ``"data_shape"``/``"data_dtype"``, while ``shape``/``dtype`` describe the key
array itself, e.g. ``[]`` and ``"key<fry>"``), or ``"int"``/``"float"``/``"bool"``
(Python scalars, stored as int64/float64/bool).

``structure`` rebuilds the tree without a skeleton: a leaf is its integer index into
``leaves``; ``null`` is ``None``; a JSON array is a list; ``{"dict": {...}}`` is a
dict (insertion order kept); ``{"tuple": [...]}`` a tuple; and
``{"namedtuple": "ScaleByAdamState", "fields": {...}}`` a NamedTuple, which without
``like=`` comes back as a plain dict of its fields (the class name is informative
only and is never looked up).

Leaf paths join dict keys, sequence indices and NamedTuple field names with ``/``
(the components of ``jax.tree_util.tree_flatten_with_path``); a ``%`` or ``/``
inside a dict key is written ``%25`` / ``%2F`` so that paths stay unambiguous.

Round trips are bit-exact. Arrays come back as jax arrays of the saved dtype, with
one exception: a 64-bit array (float64, int64, ...) loaded while
``jax_enable_x64`` is off comes back as a numpy array, rather than being silently
narrowed to 32 bits. Python scalars come back as Python scalars. With ``like=``,
the tree comes back with ``like``'s structure (so optax states are real NamedTuples
again) after every path, shape and dtype has been checked.

Limits, checked on save and on load: trees and metadata nest at most 100 containers
deep, text must be valid UTF-8 (no lone surrogates), metadata ints have at most 4300
digits, and shapes are ones numpy can build. A file whose checksum matches but whose
header breaks a rule (it was edited) is refused with a :class:`CheckpointError`,
never loaded as something other than what it declares.

Writes are atomic: the file is written to a temporary file in the same directory,
flushed, ``fsync``-ed, and renamed over the target, so a crash leaves either the
old file or the new one, never a mix. The temporary is named
``.<name>.<host>.<pid>.<random>.tmp``; a crash leaves it behind, and the next save
of the same file removes it once its writer is dead (same host, pid gone), or once
it is a day old otherwise, never a file that a live writer is still using. The
whole file is read into memory to load it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import pathlib
import re
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from ._errors import CheckpointError

MAGIC = b"JAXNETCK"
FORMAT_VERSION = 1
FORMAT_NAME = "jaxnet-checkpoint"
_PREFIX = 20  # magic (8) + version (4) + header length (8)
_DIGEST = 32  # sha256
_ALIGN = 64
_MAX_ERRORS = 10
#: How deep a tree or the metadata may nest containers. Real trees (optax states,
#: nested models) stay far below it; the limit keeps every reader and writer far from
#: Python's recursion limit, so a crafted file cannot raise ``RecursionError``.
_MAX_DEPTH = 100
_MAX_NDIM = 64  # numpy's limit
_MAX_NBYTES = 2**63 - 1  # numpy's limit on an array's size in bytes (dims > 0)

_STANDARD_DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
)
_ML_DTYPES = (
    "bfloat16",
    "float8_e4m3fn",
    "float8_e4m3fnuz",
    "float8_e4m3b11fnuz",
    "float8_e5m2",
    "float8_e5m2fnuz",
    "int4",
    "uint4",
)
#: The only dtypes a checkpoint may hold, by name (the file's dtype strings are looked
#: up here and nowhere else).
_DTYPES: dict[str, np.dtype] = {n: np.dtype(n) for n in _STANDARD_DTYPES}
_DTYPES.update(
    {n: np.dtype(getattr(ml_dtypes, n)) for n in _ML_DTYPES if hasattr(ml_dtypes, n)}
)
_SCALAR_DTYPES = {"int": "int64", "float": "float64", "bool": "bool"}
_KINDS = ("array", "key", "int", "float", "bool")


# ----------------------------------------------------------------------------- paths


def _escape(key: str) -> str:
    return key.replace("%", "%25").replace("/", "%2F")


def _join(parts: tuple[str, ...]) -> str:
    return "/".join(parts)


def _keypath_str(keypath: tuple[Any, ...]) -> str:
    """A ``tree_flatten_with_path`` key path in the checkpoint's ``a/0/mu`` form."""
    parts = []
    for k in keypath:
        if isinstance(k, jax.tree_util.DictKey):
            parts.append(_escape(k.key) if isinstance(k.key, str) else repr(k.key))
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        elif isinstance(k, jax.tree_util.GetAttrKey):
            parts.append(k.name)
        elif isinstance(k, jax.tree_util.FlattenedIndexKey):
            parts.append(str(k.key))
        else:  # pragma: no cover - future key types
            parts.append(str(k))
    return _join(tuple(parts))


def _show(path: str) -> str:
    return path if path else "<root>"


# ----------------------------------------------------------------------------- save


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _little_endian(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous array whose bytes are little-endian."""
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">" or (
        a.dtype.byteorder == "=" and sys.byteorder == "big"
    ):
        a = a.byteswap().view(a.dtype.newbyteorder("<"))
    return a


def _leaf_record(x: Any, path: str) -> tuple[dict[str, Any], np.ndarray]:
    """Describe one leaf and return its host bytes; raise for unsupported leaves."""
    where = f"jaxnet.save: the leaf at {_show(path)}"
    if isinstance(x, bool):
        return {"kind": "bool", "shape": [], "dtype": "bool"}, np.array(x, np.bool_)
    if isinstance(x, int):
        if not -(2**63) <= x < 2**63:
            shown = (
                f"the Python int {x}"
                if _int_digits(x) <= 40
                else f"a Python int of {_int_digits(x)} digits"
            )
            raise CheckpointError(
                f"{where} is {shown}, outside the int64 range that checkpoints "
                "store. Store it as a string in metadata= instead."
            )
        return {"kind": "int", "shape": [], "dtype": "int64"}, np.array(x, np.int64)
    if isinstance(x, float):
        return {"kind": "float", "shape": [], "dtype": "float64"}, np.array(
            x, np.float64
        )
    if _is_key(x):
        data = np.asarray(jax.random.key_data(x))
        rec = {
            "kind": "key",
            "shape": list(x.shape),
            "dtype": str(x.dtype),
            "key_impl": str(jax.random.key_impl(x)),
            "data_shape": list(data.shape),
            "data_dtype": str(data.dtype),
        }
        return rec, data
    if isinstance(x, jax.Array | np.ndarray | np.generic):
        try:
            a = np.asarray(x)
        except Exception as e:  # e.g. a tracer inside jit
            raise CheckpointError(
                f"{where} is a {type(x).__name__} that cannot be copied to the host "
                f"({type(e).__name__}: e.g. a tracer inside jax.jit, or an array "
                "sharded across hosts). Call jaxnet.save outside jax.jit / jax.grad, "
                "on concrete, fully addressable arrays."
            ) from e
        name = a.dtype.name  # "float32" also for a big-endian ">f4"
        if name not in _DTYPES or _DTYPES[name] != a.dtype.newbyteorder("="):
            raise CheckpointError(
                f"{where} is an array of dtype {a.dtype}, which checkpoints do not "
                f"store. Supported dtypes: {', '.join(_DTYPES)}. Convert it, or put "
                "non-numeric data in metadata=."
            )
        return {"kind": "array", "shape": list(a.shape), "dtype": name}, a
    raise CheckpointError(
        f"{where} is a {type(x).__module__}.{type(x).__qualname__}, which checkpoints "
        "do not store. A tree may hold dicts with str keys, lists, tuples, "
        "NamedTuples, None, jax/numpy arrays, typed PRNG keys and Python "
        "int/float/bool; convert the object to one of those (e.g. a dict of arrays), "
        "or put JSON data in metadata=."
    )


def _utf8_problem(text: str) -> str:
    """Why ``text`` cannot be written as UTF-8 ("" if it can)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return (
            f"holding the lone surrogate {text[e.start]!r} at index {e.start}, which "
            "UTF-8 cannot encode (e.g. a file name decoded with "
            "errors='surrogateescape'); re-decode it with errors='replace' or "
            "encode it as text first"
        )
    return ""


def _int_digits(x: int) -> int:
    """The number of decimal digits of ``x`` (without ``str``, which refuses huge
    ints)."""
    n = abs(x)
    if n < 10:
        return 1
    d = int(math.log10(n)) + 1
    if 10 ** (d - 1) > n:
        d -= 1
    elif 10**d <= n:
        d += 1
    return d


def _short(where: str) -> str:
    return where if len(where) <= 80 else where[:60] + "..."


def _circular(x: Any, active: dict[int, str], what: str) -> CheckpointError | None:
    """The error for ``x`` when it is a container already open above ``here``."""
    if id(x) not in active:
        return None
    return CheckpointError(
        f"jaxnet.save: {what} contains itself: it is {active[id(x)]} again (a "
        "circular reference), which a file cannot hold. Break the cycle, or save a "
        "copy without the back-reference."
    )


def _encode(
    x: Any,
    parts: tuple[str, ...],
    leaves: list[tuple[str, dict, np.ndarray]],
    active: dict[int, str] | None = None,
) -> Any:
    """The JSON structure of ``x``; appends ``(path, record, bytes)`` to ``leaves``.

    ``active`` maps the id of each container being encoded (above ``x``) to its
    description, to refuse circular trees instead of recursing forever."""
    if active is None:
        active = {}
    if x is None:
        return None
    container = _is_namedtuple(x) or isinstance(x, Mapping | tuple | list)
    if len(parts) > _MAX_DEPTH or (container and len(parts) == _MAX_DEPTH):
        raise CheckpointError(
            f"jaxnet.save: the tree is nested more than {_MAX_DEPTH} containers deep "
            f"at {_short(_join(parts))} (depth {len(parts)}); checkpoints hold trees "
            f"up to {_MAX_DEPTH} levels. Flatten it, e.g. into a dict keyed by path."
        )
    if container:
        kind = (
            "NamedTuple" if _is_namedtuple(x)
            else "dict" if isinstance(x, Mapping)
            else "tuple" if isinstance(x, tuple)
            else "list"
        )  # fmt: skip
        desc = f"the {kind} at {_show(_short(_join(parts)))}"
        err = _circular(x, active, desc)
        if err is not None:
            raise err
        active[id(x)] = desc
        try:
            return _encode_container(x, parts, leaves, active, desc)
        finally:
            del active[id(x)]
    path = _join(parts)
    record, data = _leaf_record(x, path)
    leaves.append((path, record, data))
    return len(leaves) - 1


def _encode_container(
    x: Any,
    parts: tuple[str, ...],
    leaves: list[tuple[str, dict, np.ndarray]],
    active: dict[int, str],
    desc: str,
) -> Any:
    if _is_namedtuple(x):
        return {
            "namedtuple": type(x).__name__,
            "fields": {
                f: _encode(v, (*parts, f), leaves, active)
                for f, v in zip(type(x)._fields, x)
            },
        }
    if isinstance(x, Mapping):
        out = {}
        for k, v in x.items():
            if not isinstance(k, str):
                raise CheckpointError(
                    f"jaxnet.save: {desc} has the key {k!r} of type "
                    f"{type(k).__name__}; checkpoint dict keys must be str. Convert "
                    "the keys, e.g. {str(k): v for k, v in d.items()}."
                )
            problem = _utf8_problem(k)
            if problem:
                raise CheckpointError(
                    f"jaxnet.save: {desc} has the key {k!r}, {problem}."
                )
            out[k] = _encode(v, (*parts, _escape(k)), leaves, active)
        return {"dict": out}
    items = [_encode(v, (*parts, str(i)), leaves, active) for i, v in enumerate(x)]
    return {"tuple": items} if isinstance(x, tuple) else items


#: Python (and so most JSON readers) refuse to parse longer ints: sys.int_info.
_MAX_INT_DIGITS = 4300


def _check_metadata(
    x: Any, where: str, depth: int = 0, active: dict[int, str] | None = None
) -> None:
    """Raise naming the first entry of ``metadata`` that JSON cannot hold exactly.

    ``depth`` counts the lists and dicts above ``x``; ``active`` maps the ids of
    those containers to their names, to refuse a circular metadata dict."""
    if active is None:
        active = {}
    name = f"metadata{where}"
    if x is None or isinstance(x, bool):
        return
    if isinstance(x, str):
        problem = _utf8_problem(x)
        if problem:
            raise CheckpointError(f"jaxnet.save: {_short(name)} is a str {problem}.")
        return
    if isinstance(x, int):
        digits = _int_digits(x)
        if digits > _MAX_INT_DIGITS:
            raise CheckpointError(
                f"jaxnet.save: {_short(name)} is an int of {digits} digits; JSON "
                f"readers (Python's json included) refuse ints of more than "
                f"{_MAX_INT_DIGITS} digits. Store it as a string, e.g. hex(n)."
            )
        return
    if isinstance(x, float):
        if not math.isfinite(x):
            raise CheckpointError(
                f"jaxnet.save: {_short(name)} is {x!r}, which JSON cannot hold. "
                "Store it as a string or leave it out."
            )
        return
    if isinstance(x, dict | list | tuple):
        if depth >= _MAX_DEPTH:
            raise CheckpointError(
                f"jaxnet.save: {_short(name)} is nested more than {_MAX_DEPTH} lists "
                f"and dicts deep; checkpoint metadata may nest at most {_MAX_DEPTH} "
                "levels. Flatten it, or store it as a JSON string."
            )
        err = _circular(x, active, _short(name) if where else "metadata")
        if err is not None:
            raise err
        active[id(x)] = _short(name) if where else "metadata"
        try:
            if isinstance(x, dict):
                for k, v in x.items():
                    if not isinstance(k, str):
                        raise CheckpointError(
                            f"jaxnet.save: {_short(name)} has the key {k!r} of type "
                            f"{type(k).__name__}; metadata keys must be str (JSON)."
                        )
                    problem = _utf8_problem(k)
                    if problem:
                        raise CheckpointError(
                            f"jaxnet.save: {_short(name)} has the key {k!r}, {problem}."
                        )
                    _check_metadata(v, f"{where}[{k!r}]", depth + 1, active)
            else:
                for i, v in enumerate(x):
                    _check_metadata(v, f"{where}[{i}]", depth + 1, active)
        finally:
            del active[id(x)]
        return
    hint = (
        " Convert it with float()/int()/.tolist(), or save arrays in the tree instead."
        if isinstance(x, np.generic | np.ndarray | jax.Array)
        else " Convert it to str, int, float, bool, None, a list or a dict."
    )
    raise CheckpointError(
        f"jaxnet.save: {_short(name)} is a {type(x).__name__}, which is not "
        f"JSON-serialisable.{hint}"
    )


def _jaxnet_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxnet")
    except PackageNotFoundError:  # pragma: no cover - source tree
        return "0.0.0+unknown"


def _pad(n: int) -> int:
    return -n % _ALIGN


def _model_desc(model: Any) -> str | None:
    """``model.desc`` for ``save(model=)``: a Layer (or anything with a str desc)."""
    if model is None:
        return None
    desc = getattr(model, "desc", None)
    if not isinstance(desc, str) or not desc:
        raise CheckpointError(
            f"jaxnet.save: model= must be a jaxnet Layer (its desc is stored), got "
            f"{type(model).__name__}."
        )
    _check_metadata({"model": desc}, "")  # the same text rules as metadata
    return desc


def _build(
    tree: Any, metadata: dict | None, model: str | None = None
) -> tuple[bytes, list[tuple[int, bytes]]]:
    """The header bytes and the ``(offset, bytes)`` of each leaf in the payload."""
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise CheckpointError(
            f"jaxnet.save: metadata= must be a dict (or None), got "
            f"{type(metadata).__name__}."
        )
    _check_metadata(metadata, "")
    collected: list[tuple[str, dict, np.ndarray]] = []
    structure = _encode(tree, (), collected)
    records, chunks, offset = [], [], 0
    for path, record, data in collected:
        raw = _little_endian(data).tobytes()
        records.append({"path": path, **record, "offset": offset, "nbytes": len(raw)})
        chunks.append((offset, raw))
        offset += len(raw) + _pad(len(raw))
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "jaxnet_version": _jaxnet_version(),
        "jax_version": jax.__version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "payload_nbytes": offset,
        "structure": structure,
        "leaves": records,
        "metadata": metadata,
    }
    if model is not None:
        header["model"] = model
    try:
        text = json.dumps(header, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as e:  # checked above; a last safety net
        raise CheckpointError(
            f"jaxnet.save: the header cannot be written as JSON ({type(e).__name__}: "
            f"{str(e)[:200]}). Check the tree's NamedTuple names and the metadata."
        ) from e
    text += b" " * _pad(_PREFIX + len(text))
    return text, chunks


def _default_mode() -> int:
    """``0o666`` less the process umask (read without changing it, where possible)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def _fsync_dir(directory: pathlib.Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: A temporary whose writer cannot be identified as dead on this host (another
#: host, an older jaxnet's name) is removed only once untouched this long: a live
#: writer modifies its temporary continuously and renames it within seconds.
_STALE_TEMP_AGE_S = 24 * 3600


def _host_token() -> str:
    """This host and pid namespace, as one file-name-safe token without dots.

    A temporary's name carries its writer's token and pid, so that a later save can
    tell a dead writer's leftover (same token, pid gone) from a live writer's file.
    The pid namespace is part of it because containers may share a host name (and a
    volume) but not their pids."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"
    try:
        ns = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
        host += "-" + re.sub(r"\D", "", ns)
    except OSError:
        pass
    return host


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or cannot tell: keep its file
    return True


def _remove_stale_temporaries(target: pathlib.Path) -> None:
    """Remove the temporaries that killed saves of ``target`` left behind.

    Only files named ``.<target name>.<token>.<pid>.<random>.tmp`` (or an older
    jaxnet's ``.<target name>.<random>.tmp``) are considered. One is removed when
    its writer is known dead: same host token, and no process with its pid (a pid
    reused by a new process keeps the file: the safe side); any other one only when
    it has not been modified for :data:`_STALE_TEMP_AGE_S`. Errors are ignored:
    cleaning up must never make a save fail."""
    prefix, suffix = f".{target.name}.", ".tmp"
    token, now = _host_token(), None
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        fields = name[len(prefix) : -len(suffix)].split(".")
        if len(fields) not in (1, 3):  # another target's (e.g. "ck.jnc.old")
            continue
        tmp = target.parent / name
        dead = (
            os.name == "posix"  # os.kill(pid, 0) would terminate on Windows
            and len(fields) == 3
            and fields[0] == token
            and fields[1].isdigit()
            and int(fields[1]) != os.getpid()
            and not _pid_alive(int(fields[1]))
        )
        try:
            if not dead:
                if now is None:
                    now = time.time()
                if now - tmp.lstat().st_mtime < _STALE_TEMP_AGE_S:
                    continue
            if stat.S_ISREG(tmp.lstat().st_mode):
                tmp.unlink()
        except OSError:
            continue


def save(
    path: str | os.PathLike,
    tree: Any,
    *,
    metadata: dict | None = None,
    model: Any = None,
) -> pathlib.Path:
    """Write ``tree`` to a single checkpoint file, atomically.

    Args:
      path: the file to write (by convention ending in ``.jnc``). Its directory must
        exist; an existing file is replaced only once the new one is complete.
      tree: a pytree of dicts (str keys), lists, tuples, NamedTuples (e.g. optax
        states), ``None``, jax/numpy arrays, typed PRNG keys and Python
        int/float/bool.
      metadata: optional JSON-serialisable dict stored in the header (e.g. the
        config, the epoch); read it back with :func:`load_with_metadata`. Tuples
        come back as lists.
      model: optional :class:`~jaxnet.Layer` the tree belongs to: its description
        (the constructor calls, ``model.desc``) is stored beside the metadata and
        shown by :func:`inspect_checkpoint` (text only: nothing is rebuilt or
        evaluated from it on load).

    Returns:
      The path written, as a :class:`pathlib.Path`.

    Raises:
      CheckpointError: for an unsupported leaf or dict key (naming its path), metadata
        that is not JSON (naming the entry), a missing directory, or a failed write
        (the previous file, if any, is then left unchanged).

    Example:
      >>> import os, tempfile, jax.numpy as jnp, jaxnet
      >>> with tempfile.TemporaryDirectory() as d:
      ...     p = jaxnet.save(os.path.join(d, "ck.jnc"), {"w": jnp.ones(3), "step": 7})
      ...     jaxnet.load(p)
      {'w': Array([1., 1., 1.], dtype=float32), 'step': 7}
    """
    target = pathlib.Path(os.fspath(path))
    header, chunks = _build(tree, metadata, _model_desc(model))  # before the disk
    directory = target.parent
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise CheckpointError(
            f"jaxnet.save('{target}'): the directory '{directory}' {what}. Create it "
            f"first, e.g. os.makedirs({str(directory)!r}, exist_ok=True)."
        )
    if target.is_dir():
        raise CheckpointError(
            f"jaxnet.save('{target}'): the path is a directory; give a file name such "
            f"as '{target / 'checkpoint.jnc'}'."
        )
    _remove_stale_temporaries(target)  # before writing: they may fill the disk
    try:
        fd, tmp = tempfile.mkstemp(
            dir=directory,
            prefix=f".{target.name}.{_host_token()}.{os.getpid()}.",
            suffix=".tmp",
        )
    except OSError as e:
        raise CheckpointError(
            f"jaxnet.save('{target}'): cannot create a file in '{directory}' "
            f"({e.strerror or e}). Check that the directory is writable, or save "
            "elsewhere."
        ) from e
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), _default_mode())  # mkstemp makes it 0o600
            digest = hashlib.sha256()

            def put(b: bytes) -> None:
                digest.update(b)
                f.write(b)

            put(MAGIC)
            put(FORMAT_VERSION.to_bytes(4, "little"))
            put(len(header).to_bytes(8, "little"))
            put(header)
            written = 0
            for offset, raw in chunks:
                put(b"\0" * (offset - written))
                put(raw)
                written = offset + len(raw)
            put(b"\0" * _pad(written))
            f.write(digest.digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CheckpointError(
                f"jaxnet.save('{target}'): writing failed ({e.strerror or e}). "
                "The previous file, if any, is unchanged."
            ) from e
        raise
    _fsync_dir(directory)
    return target


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


def _as_shape(v: Any) -> bool:
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

    Example:
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

    Example:
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
