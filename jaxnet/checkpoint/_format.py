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
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from .._errors import CheckpointError

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
