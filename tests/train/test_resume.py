"""Exact resume: a fit() run SIGKILLed mid-run and restarted ends bit-identical.

The kill test runs ``tests/train/_resume_worker.py`` in real subprocesses: one uninterrupted
reference run, and one run killed twice with SIGKILL at arbitrary points (after its
first and after a later checkpoint, plus a seeded random delay) and then restarted to
completion. The model has Dropout (a key per step) and BatchNorm (model state), and
trains with Adam (optimizer state), so the final parameters only match bit for bit if
the checkpoint restores everything and the restarted run replays the same keys, data
order and programs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pathlib
import random
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest

import jaxnet
from jaxnet.checkpoint import _write as _checkpoint

WORKER = pathlib.Path(__file__).resolve().parent / "_resume_worker.py"
EPOCHS = 6
SLOW = 0.15  # seconds per progress write: ~0.75 s per epoch in the slowed runs


def _worker_module():
    spec = importlib.util.spec_from_file_location("_resume_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_RUNNING: list[subprocess.Popen] = []


@pytest.fixture
def reap():
    """Kill (by handle) any worker a failing test left running."""
    yield
    while _RUNNING:
        proc = _RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.log_file.close()


def _start(ckpt: pathlib.Path, out: pathlib.Path, log: pathlib.Path, slow: float):
    cmd = [sys.executable, str(WORKER), str(ckpt), str(out), "--epochs", str(EPOCHS)]
    if slow:
        cmd += ["--slow", str(slow)]
    f = open(log, "w")  # noqa: SIM115 - closed in _finish / _kill
    proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    proc.log_file = f
    _RUNNING.append(proc)
    return proc


#: How long one wait for a worker may take in all. Generous: on a loaded machine
#: (a CI run beside, 2 cores) the workers only get slower, and a wait fails early
#: anyway if the worker dies. Waits follow progress (the checkpoint being
#: rewritten), never a short wall-clock limit.
WAIT_LIMIT = 600.0


def _log_tail(proc, lines: int = 5) -> str:
    try:
        text = pathlib.Path(proc.log_file.name).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(no output yet)"


def _finish(proc, timeout: float = WAIT_LIMIT) -> str:
    proc.wait(timeout=timeout)
    proc.log_file.close()
    text = pathlib.Path(proc.log_file.name).read_text()
    assert proc.returncode == 0, text
    return text


def _epoch_of(ckpt: pathlib.Path) -> int:
    return int(jaxnet.inspect_checkpoint(ckpt)["metadata"]["epoch"])


def _stamp(ckpt: pathlib.Path):
    """What changes whenever the checkpoint is rewritten (a rename: a new inode)."""
    try:
        st = ckpt.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _wait_for_epoch(ckpt: pathlib.Path, proc, at_least: int, limit: float = WAIT_LIMIT):
    """Wait until the worker has checkpointed an epoch >= ``at_least``.

    Waits as long as the worker is alive, up to ``limit`` seconds in all; the
    checkpoint is only read again when it has been rewritten."""
    start, seen = time.monotonic(), None
    while True:
        stamp = _stamp(ckpt)
        if stamp is not None and stamp != seen:
            seen = stamp
            if _epoch_of(ckpt) >= at_least:
                return
        assert proc.poll() is None, (
            f"the worker exited (code {proc.returncode}) before it was killed; its "
            f"last output:\n{_log_tail(proc)}"
        )
        waited = time.monotonic() - start
        if waited > limit:
            raise AssertionError(
                f"no checkpoint of epoch >= {at_least} after {waited:.0f} s, with the "
                f"worker still running; its last output:\n{_log_tail(proc)}"
            )
        time.sleep(0.05)


def _kill(proc) -> str:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.log_file.close()
    return pathlib.Path(proc.log_file.name).read_text()


def _payload(path: pathlib.Path) -> bytes:
    """The file's leaf bytes (the header holds a creation time, so it may differ)."""
    data = path.read_bytes()
    header_len = int.from_bytes(data[12:20], "little")
    return data[20 + header_len : -32]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_is_bit_identical(tmp_path, reap):
    rng = random.Random(20260101)
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "killed"
    ref_dir.mkdir()
    run_dir.mkdir()
    reference = _start(ref_dir / "ck.jnc", ref_dir / "out.jnc", ref_dir / "log", 0.0)

    ckpt, out = run_dir / "ck.jnc", run_dir / "out.jnc"
    killed_at = []
    for attempt, at_least in enumerate((1, 0)):
        proc = _start(ckpt, out, run_dir / f"log{attempt}", SLOW)
        # the second run resumes; wait until it has written a checkpoint of its own
        at_least = at_least or killed_at[-1] + 1
        _wait_for_epoch(ckpt, proc, at_least)
        time.sleep(rng.choice([0.1, 0.35, 0.6, 0.9]))
        log = _kill(proc)
        assert proc.returncode == -signal.SIGKILL, log
        epoch = _epoch_of(ckpt)
        assert at_least <= epoch < EPOCHS, log  # killed mid-run, not after the end
        assert "RESUMED_FROM" not in log and not out.exists()
        killed_at.append(epoch)
        last = re.findall(r"^PROGRESS (epoch \d+/\d+.*)$", log, re.M)
        print(f"kill {attempt}: checkpoint epoch {epoch}; last progress: {last[-1]}")

    text = _finish(_start(ckpt, out, run_dir / "log-final", 0.0))
    resumed_from = int(re.search(r"^RESUMED_FROM (\d+)$", text, re.M).group(1))
    assert resumed_from == killed_at[-1] > killed_at[0] >= 1
    assert re.search(rf"^STEP {EPOCHS * 16}$", text, re.M), text
    assert _epoch_of(ckpt) == EPOCHS

    ref_text = _finish(reference)
    assert re.search(r"^RESUMED_FROM 0$", ref_text, re.M), ref_text
    want = jaxnet.load(ref_dir / "out.jnc")
    got = jaxnet.load(out, like=want)
    paths = jax.tree_util.tree_flatten_with_path(want)[0]
    assert len(paths) == 8  # dense w/b x2, batch-norm scale/offset, mean/var
    for (path, a), b in zip(paths, jax.tree.leaves(got), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert np.array_equal(a, b), f"{jax.tree_util.keystr(path)} differs"
        assert a.tobytes() == b.tobytes(), jax.tree_util.keystr(path)
    assert _payload(out) == _payload(ref_dir / "out.jnc")
    # the run trained (BatchNorm's running mean moved off its zero init)
    assert np.abs(np.asarray(want["state"]["batch_norm_1"]["mean"])).max() > 1e-3


@pytest.fixture
def standard_promotion():
    with jax.numpy_dtype_promotion("standard"):  # optax's adam needs it
        yield


@pytest.mark.slow
def test_failed_checkpoint_write_keeps_the_previous_one(
    tmp_path, monkeypatch, standard_promotion
):
    worker = _worker_module()
    x, y = worker.data()
    ckpt = tmp_path / "ck.jnc"

    def run(epochs: int) -> jaxnet.FitResult:
        return jaxnet.fit(
            worker.model(),
            jaxnet.losses.softmax_cross_entropy_with_integer_labels,
            optax.adam(1e-2),
            (x, y),
            key=jax.random.key(7),
            epochs=epochs,
            batch_size=worker.BATCH,
            checkpoint=ckpt,
            progress=False,
        )

    first = run(2)
    assert first.step == 32 and _epoch_of(ckpt) == 2
    before = ckpt.read_bytes()

    calls = []

    def failing_replace(src, dst):
        calls.append((src, dst))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_checkpoint.os, "replace", failing_replace)
    with pytest.raises(jaxnet.CheckpointError, match="previous file, if any, is unch"):
        run(3)  # resumes after epoch 2, trains epoch 3, fails to save it
    monkeypatch.undo()

    assert len(calls) == 1 and pathlib.Path(calls[0][1]) == ckpt
    assert ckpt.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.jnc"]  # no temp left
    info = jaxnet.inspect_checkpoint(ckpt)
    assert info["metadata"]["epoch"] == 2
    assert [row["epoch"] for row in info["metadata"]["history"]] == [1, 2]
    again = run(2)  # resumes from the intact checkpoint; nothing left to train
    assert again.resumed_from == 2 and again.step == 32
    for a, b in zip(jax.tree.leaves(first.params), jax.tree.leaves(again.params)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------- tampered resume records (issue 13)


def _small_fit(ckpt, epochs, **kw):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    return jaxnet.fit(
        jaxnet.serial(jaxnet.Dense(4), jaxnet.Relu(), jaxnet.Dense(2)),
        jaxnet.losses.softmax_cross_entropy_with_integer_labels,
        optax.sgd(0.1),
        (x, y),
        key=jax.random.key(0),
        epochs=epochs,
        batch_size=8,
        checkpoint=ckpt,
        progress=False,
        **kw,
    )


def _edit_metadata(path, edit):
    """Edit a checkpoint's metadata and recompute its checksum (anyone can)."""
    data = path.read_bytes()
    hlen = int.from_bytes(data[12:20], "little")
    header = json.loads(data[20 : 20 + hlen])
    edit(header["metadata"])
    text = json.dumps(header).encode()
    text += b" " * (-(20 + len(text)) % 64)
    body = data[:12] + len(text).to_bytes(8, "little") + text + data[20 + hlen : -32]
    path.write_bytes(body + hashlib.sha256(body).digest())


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


def _set_in(key, sub, value):
    return lambda m: m[key].__setitem__(sub, value)


@pytest.mark.parametrize(
    ("edit", "field", "expect"),
    [
        (_set("epoch", -3), "'epoch'", "an int >= 1 (the epochs completed), got -3"),
        (_set("epoch", "abc"), "'epoch'", "got the str 'abc'"),
        (_set("epoch", True), "'epoch'", "got the bool True"),
        (_set("epoch", 3), "'history'", "3 rows (one per epoch completed), got 2"),
        (lambda m: m.pop("history"), "'history'", "a list of 2 rows, got nothing"),
        (_set("history", {"a": 1}), "'history'", "a list of 2 rows, got the dict"),
        (_set_in("history", 0, 5), "'history'][0]", "a dict of numbers, got 5"),
        (
            lambda m: m["history"][1].update(epoch=7),
            "'history'][1]['epoch']",
            "2 (rows in order), got 7",
        ),
        (
            lambda m: m["history"][1].update(step=99),
            "'history'][1]['step']",
            "8 (the step count saved in the checkpoint), got 99",
        ),
        (
            lambda m: m["history"][0].update(loss="x"),
            "'history'][0]['loss']",
            "a number, got the str 'x'",
        ),
        (lambda m: m.pop("early_stopping"), "'early_stopping'", "got nothing"),
        (
            _set_in("early_stopping", "wait", -1),
            "'early_stopping']['wait']",
            "an int in [0, 2], got -1",
        ),
        (
            _set_in("early_stopping", "epoch", 9),
            "'early_stopping']['epoch']",
            "None or an int in [1, 2]",
        ),
        (
            _set_in("early_stopping", "value", "low"),
            "'early_stopping']['value']",
            "None or a number",
        ),
        (_set("stopped", "no"), "'stopped'", "a bool, got the str 'no'"),
        (_set("epochs", -1), "'epochs'", "an int >= 2"),
    ],
)
def test_tampered_resume_record_is_a_checkpoint_error(tmp_path, edit, field, expect):
    ckpt = tmp_path / "run.jnc"
    first = _small_fit(ckpt, 2)
    assert first.step == 8
    _edit_metadata(ckpt, edit)
    with pytest.raises(jaxnet.CheckpointError) as e:
        _small_fit(ckpt, 4)
    msg = str(e.value)
    assert msg.startswith(f"fit: the checkpoint {str(ckpt)!r}"), msg
    assert f"metadata[{field}" in msg and expect in msg, msg
    assert "resume=False" in msg, msg


def test_untampered_resume_still_continues(tmp_path):
    ckpt = tmp_path / "run.jnc"
    _small_fit(ckpt, 2)
    resumed = _small_fit(ckpt, 4)
    assert resumed.resumed_from == 2 and len(resumed.history) == 4
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]


# -------------------------------------------------- resuming a stopped run (issue 13)


def _stopping_fit(ckpt, epochs):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    return _small_fit(
        ckpt,
        epochs,
        validation_data=(x, 1 - y),  # flipped labels: val_loss rises, it stops
        early_stopping=jaxnet.EarlyStopping(patience=2),
    )


def test_resuming_an_early_stopped_run_with_more_epochs_warns(tmp_path):
    ckpt = tmp_path / "run.jnc"
    first = _stopping_fit(ckpt, 30)
    assert first.stopped_early and len(first.history) < 30
    again = _stopping_fit(ckpt, 30)  # the same call: its result, no warning
    assert again.stopped_early and len(again.history) == len(first.history)
    n = len(first.history)
    with pytest.warns(
        UserWarning, match=rf"fit: early stopping ended this run at epoch {n}"
    ) as w:
        more = _stopping_fit(ckpt, 45)
    msg = str(w[0].message)
    assert "epochs=45" in msg and "epochs=30" in msg and str(ckpt) in msg, msg
    assert "resume=False" in msg, msg
    assert more.stopped_early and len(more.history) == n and more.step == first.step


def test_resuming_with_fewer_epochs_than_saved_warns(tmp_path):
    ckpt = tmp_path / "run.jnc"
    _small_fit(ckpt, 3)
    with pytest.warns(UserWarning, match=r"fit: the checkpoint .* already holds 3 ep"):
        r = _small_fit(ckpt, 2)
    assert r.resumed_from == 3 and len(r.history) == 3


# ------------------------------------------------ waiting on a slow worker (issue 13)


class _FakeTime:
    """A clock for ``_wait_for_epoch`` in which each sleep lasts 10 s: a worker on a
    heavily loaded machine. ``events`` are ``(time, action)`` pairs run on the way."""

    def __init__(self, events=()):
        self.now = 0.0
        self.events = sorted(events, key=lambda e: e[0])

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += 10.0
        while self.events and self.events[0][0] <= self.now:
            self.events.pop(0)[1]()


class _FakeWorker:
    def __init__(self, log, alive=True):
        self.log_file = open(log, "w")  # noqa: SIM115 - closed by the test
        self.log_file.write("PROGRESS epoch 1/6 [====....] 4/16\n")
        self.log_file.flush()
        self.returncode = None if alive else 1

    def poll(self):
        return self.returncode


def test_waiting_for_a_checkpoint_follows_a_slow_worker(tmp_path, monkeypatch):
    """A run that failed on a loaded machine: its wait gave up after 60 s while the
    worker was still training."""
    ckpt = tmp_path / "ck.jnc"
    worker = _FakeWorker(tmp_path / "log")

    def checkpoint(epoch):
        return lambda: jaxnet.save(ckpt, {"w": 1}, metadata={"epoch": epoch})

    clock = _FakeTime([(90.0, checkpoint(0)), (200.0, checkpoint(1))])
    monkeypatch.setitem(globals(), "time", clock)
    try:
        _wait_for_epoch(ckpt, worker, 1)
        assert 200.0 <= clock.now < 220.0
        # never reaching the epoch: gives up only after the generous limit
        clock = _FakeTime()
        monkeypatch.setitem(globals(), "time", clock)
        with pytest.raises(AssertionError, match="epoch >= 2 after 6.. s") as e:
            _wait_for_epoch(ckpt, worker, 2)
        assert clock.now >= WAIT_LIMIT >= 600 and "PROGRESS epoch 1/6" in str(e.value)
        # a worker that died: fails at once, with its output
        dead = _FakeWorker(tmp_path / "log2", alive=False)
        clock = _FakeTime()
        monkeypatch.setitem(globals(), "time", clock)
        with pytest.raises(AssertionError, match="exited .code 1.") as e:
            _wait_for_epoch(tmp_path / "none.jnc", dead, 1)
        assert clock.now == 0.0 and "PROGRESS epoch 1/6" in str(e.value)
        dead.log_file.close()
    finally:
        worker.log_file.close()
