"""Writing checkpoints: atomic (temporary file, fsync, rename), with stale temporaries
of dead writers cleaned up. The format is described in :mod:`jaxnet.checkpoint._format`."""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import socket
import stat
import tempfile
import time
from typing import Any

from .._errors import CheckpointError
from ._format import FORMAT_VERSION, MAGIC, _build, _model_desc, _pad


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

    Examples:
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
