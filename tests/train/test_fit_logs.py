"""fit's progress (live on a terminal, plain lines elsewhere), callbacks and the
built-in CSV / JSON-lines loggers."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnet

XENT = jaxnet.losses.softmax_cross_entropy_with_integer_labels
N, BATCH = 64, 16  # 4 steps per epoch


def _data(n=N, seed=0):
    kx, kw = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (n, 3), jnp.float64)
    w = jax.random.normal(kw, (3, 3), jnp.float64)
    return x, jnp.argmax(x @ w, axis=-1).astype(jnp.int32)


def _model():
    return jaxnet.serial(jaxnet.Dense(8), jaxnet.Tanh(), jaxnet.Dense(3))


def _fit(data=None, **kw):
    args = dict(key=jax.random.key(3), epochs=3, batch_size=BATCH, progress=False)
    args.update(kw)
    return jaxnet.fit(_model(), XENT, optax.sgd(0.1), data or _data(), **args)


class Recorder(jaxnet.Callback):
    """Every hook's arguments, as received."""

    def __init__(self, stop_after=None):
        self.calls, self.stop_after = [], stop_after

    def on_train_start(self, info):
        self.calls.append(("start", dict(info)))

    def on_step_end(self, record):
        self.calls.append(("step", dict(record)))

    def on_epoch_end(self, row, train_state):
        self.calls.append(("epoch", dict(row), int(train_state.step)))
        return self.stop_after is not None and row["epoch"] >= self.stop_after

    def on_train_end(self, summary, train_state):
        self.calls.append(("end", dict(summary)))

    def of(self, kind):
        return [c[1] for c in self.calls if c[0] == kind]


class Terminal(io.StringIO):
    def isatty(self):
        return True


# ------------------------------------------------------------------- progress


def test_off_a_terminal_progress_is_plain_lines_by_default():
    """The default (progress=None) is not silent off a terminal: one line at the
    start, one per epoch, one at the end; each complete, no carriage returns."""
    out = io.StringIO()
    _fit(progress=None, stream=out, metrics={"accuracy": jaxnet.accuracy})
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 5, text  # start, 3 epochs (interval 30 s: no batch lines), end
    assert lines[0].startswith(
        "fit: serial(Dense(out_dim=8), Tanh(), Dense(out_dim=3))"
    )
    assert "3 epochs, 4 steps each (batch 16)" in lines[0]
    for e, line in enumerate(lines[1:4], start=1):
        assert line.startswith(f"epoch {e}/3  step {4 * e}  loss ")
        assert "accuracy" in line and "ex/s" in line and "ETA" in line
    assert lines[4].startswith("fit: done: 3 epochs, 12 steps in ")


def test_lines_within_an_epoch_follow_the_interval():
    """progress_interval=0: a line after every call into XLA but the epoch's last
    (the epoch line follows it), with the batch, loss, rate, elapsed time and ETA."""
    out = io.StringIO()
    _fit(stream=out, progress=True, progress_interval=0, steps_per_call=1, epochs=2)
    lines = out.getvalue().splitlines()
    batch = [ln for ln in lines if "  batch " in ln]
    assert [ln.split("  ")[1] for ln in batch] == [
        "batch 1/4",
        "batch 2/4",
        "batch 3/4",
    ] * 2
    assert all("ex/s  elapsed " in ln and "  ETA " in ln for ln in batch)
    assert len(lines) == 1 + 2 * 4 + 1


def test_progress_to_a_logger_and_silence():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("jaxnet-test-fit")
    logger.setLevel(logging.INFO)
    handler = Keep()
    logger.addHandler(handler)
    try:
        _fit(progress=True, stream=logger, epochs=2)
    finally:
        logger.removeHandler(handler)
    assert [r.levelno for r in records] == [logging.INFO] * 4
    assert records[1].getMessage().startswith("epoch 1/2  step 4  loss ")
    quiet = io.StringIO()
    _fit(progress=False, stream=quiet)
    assert quiet.getvalue() == ""


def test_on_a_terminal_the_display_is_live():
    """A terminal gets rich's live bar (redrawn in place) and the epoch lines."""
    out = Terminal()
    _fit(progress=None, stream=out, epochs=2)
    text = out.getvalue()
    assert "epoch 1/2  loss" in text and "epoch 2/2  loss" in text
    assert "\x1b[" in text  # the terminal's control sequences: redrawn, not appended
    assert "8/8" in text  # the bar counts the run's steps


@pytest.mark.slow
def test_nohup_log_file_is_readable(tmp_path):
    """The run of the issue: ``nohup python train.py > log 2>&1``. The log holds
    readable lines, no control characters."""
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import jax, jax.numpy as jnp, optax, jaxnet
            x = jax.random.normal(jax.random.key(0), (64, 3))
            y = (x[:, 0] > 0).astype(jnp.int32)
            model = jaxnet.serial(jaxnet.Dense(8), jaxnet.Relu(), jaxnet.Dense(2))
            jaxnet.fit(model, jaxnet.losses.softmax_cross_entropy_with_integer_labels,
                       optax.sgd(0.1), (x, y), key=jax.random.key(1), epochs=3,
                       batch_size=16)
            """
        )
    )
    log = tmp_path / "log"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    with open(log, "w") as f:
        subprocess.run(
            [sys.executable, str(script)],
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
            check=True,
            timeout=300,
        )
    lines = log.read_text().splitlines()
    epochs = [ln for ln in lines if ln.startswith("epoch ")]
    assert [ln.split("  ")[0] for ln in epochs] == [
        "epoch 1/3",
        "epoch 2/3",
        "epoch 3/3",
    ]
    assert any(ln.startswith("fit: done: 3 epochs, 12 steps") for ln in lines)
    raw = log.read_bytes()  # bytes: text mode would turn \r\n into \n
    assert b"\r" not in raw and b"\x1b" not in raw


def test_bad_progress_arguments_are_named():
    with pytest.raises(TypeError, match="progress must be True, False or None"):
        _fit(progress="yes")
    with pytest.raises(ValueError, match="progress_interval must be >= 0"):
        _fit(progress=True, progress_interval=-1)
    with pytest.raises(ValueError, match="log_every must be an int >= 1, got 0"):
        _fit(log_every=0)
    with pytest.raises(TypeError, match="has none of the hooks"):
        _fit(callbacks=[object()])


# ------------------------------------------------------------------ callbacks


def test_callbacks_get_plain_data_and_per_step_metrics_from_the_scan():
    """Each step's loss comes from the fused scan's outputs; their epoch means are
    the history's losses (the same numbers, summed in float64)."""
    rec = Recorder()
    result = _fit(
        callbacks=[rec], steps_per_call=3, metrics={"accuracy": jaxnet.accuracy}
    )
    (start,) = rec.of("start")
    assert start["epochs"] == 3 and start["steps_per_epoch"] == 4
    assert start["start_epoch"] == 0 and start["history"] == []
    steps = rec.of("step")
    assert [s["step"] for s in steps] == list(range(1, 13))
    assert [(s["epoch"], s["batch"]) for s in steps[:5]] == [
        (1, 1),
        (1, 2),
        (1, 3),
        (1, 4),
        (2, 1),
    ]
    assert all(type(s["loss"]) is float and "accuracy" in s for s in steps)
    for row in result.history:
        mine = [s["loss"] for s in steps if s["epoch"] == row["epoch"]]
        assert np.mean(mine) == pytest.approx(row["loss"], rel=1e-12)
    epochs = [c for c in rec.calls if c[0] == "epoch"]
    assert [c[2] for c in epochs] == [4, 8, 12]  # the train state after each epoch
    assert [c[1] for c in epochs] == result.history
    (end,) = rec.of("end")
    assert end["step"] == 12 and end["history"] == result.history
    json.dumps(rec.calls)  # all plain data


def test_log_every_and_iterator_data():
    x, y = _data()
    batches = [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, N, BATCH)]
    rec = Recorder()
    _fit(batches, callbacks=[rec], log_every=3)
    assert [s["step"] for s in rec.of("step")] == [3, 6, 9, 12]
    assert [s["batch"] for s in rec.of("step")] == [3, 2, 1, 4]
    assert rec.of("start")[0]["steps_per_epoch"] is None


def test_a_callback_can_stop_and_is_told_of_errors():
    rec = Recorder(stop_after=2)
    result = _fit(callbacks=[rec], epochs=5)
    assert result.stopped_early and len(result.history) == 2
    assert rec.of("end")[0]["stopped_early"] is True

    class Boom(jaxnet.Callback):
        def on_epoch_end(self, row, train_state):
            raise RuntimeError("evaluation failed")

    rec = Recorder()
    with pytest.raises(RuntimeError, match="evaluation failed"):
        _fit(callbacks=[rec, Boom()])
    (end,) = rec.of("end")
    assert "evaluation failed" in end["error"] and len(end["history"]) == 1


# -------------------------------------------------------------------- loggers


def test_csv_and_json_lines_loggers(tmp_path):
    epochs_csv, steps_csv = tmp_path / "epochs.csv", tmp_path / "steps.csv"
    jsonl = tmp_path / "run.jsonl"
    x, y = _data()
    result = _fit(
        validation_data=(x[:16], y[:16]),
        callbacks=[
            jaxnet.CSVLogger(epochs_csv),
            jaxnet.CSVLogger(steps_csv, every="step"),
            jaxnet.JSONLinesLogger(jsonl),
        ],
        log_every=2,
    )
    with open(epochs_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for r, h in zip(rows, result.history, strict=True):
        assert float(r["val_loss"]) == h["val_loss"] and float(r["loss"]) == h["loss"]
    with open(steps_csv, newline="") as f:
        steps = list(csv.DictReader(f))
    assert [int(s["step"]) for s in steps] == [2, 4, 6, 8, 10, 12]
    assert set(steps[0]) == {"step", "epoch", "batch", "loss", "grad_norm"}
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [e["event"] for e in events].count("epoch") == 3
    assert [e["step"] for e in events if e["event"] == "step"] == [2, 4, 6, 8, 10, 12]
    assert events[-1] == {"event": "epoch", **result.history[-1]}


def test_loggers_continue_a_resumed_run_without_repeats(tmp_path):
    """A killed run may have logged steps past its last checkpoint; the resumed run
    drops them, so every step is logged once, in order."""
    ck, jsonl, steps_csv = (
        tmp_path / "run.jnc",
        tmp_path / "run.jsonl",
        tmp_path / "s.csv",
    )

    def loggers():
        return [
            jaxnet.JSONLinesLogger(jsonl),
            jaxnet.CSVLogger(steps_csv, every="step"),
        ]

    _fit(epochs=2, checkpoint=ck, callbacks=loggers())
    with open(jsonl, "a") as f:  # what a run killed in epoch 3 had written
        f.write(json.dumps({"event": "step", "step": 9, "loss": 1.0}) + "\n")
        f.write('{"event": "step", "st')  # cut mid-line by the kill
    with open(steps_csv, "a") as f:
        f.write("9,3,1,1.0,0.5\n")
    result = _fit(epochs=4, checkpoint=ck, callbacks=loggers())
    assert result.resumed_from == 2
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(1, 17))
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2, 3, 4]
    with open(steps_csv, newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, 17))


def test_json_lines_writes_non_finite_values_as_strings(tmp_path):
    path = tmp_path / "run.jsonl"
    logger = jaxnet.JSONLinesLogger(path)
    logger.on_train_start({"start_epoch": 0})
    logger.on_step_end({"step": 1, "loss": float("nan"), "grad_norm": float("inf")})
    logger.on_train_end({}, None)
    assert json.loads(pathlib.Path(path).read_text()) == {
        "event": "step",
        "step": 1,
        "loss": "nan",
        "grad_norm": "inf",
    }
    with pytest.raises(RuntimeError, match="before on_train_start"):
        logger.on_step_end({"step": 2})
    with pytest.raises(ValueError, match="every must be 'epoch' or 'step'"):
        jaxnet.CSVLogger(path, every="batch")
