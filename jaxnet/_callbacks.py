"""What ``fit`` tells the outside world: progress displays, callbacks, loggers.

Progress (``fit(progress=...)``): on a terminal a live ``rich`` display (a bar over
the whole run, the loss, examples/s, elapsed and remaining time, and one line per
finished epoch above it); anywhere else (a file, ``nohup``, a SLURM log, Jupyter's
captured stderr) plain lines, one per epoch and at most one every
``progress_interval`` seconds within an epoch, each complete with ``\\n`` (no
``\\r`` rewriting), to a stream or a :class:`logging.Logger`.

Callbacks: any object with some of the four hooks of :class:`Callback`; every hook
receives plain Python data (numbers, strings, lists of dicts), never device arrays,
except the :class:`~jaxnet.TrainState` given to ``on_epoch_end`` / ``on_train_end``
for callbacks that evaluate or save. Per-step metrics come from the outputs of the
fused ``lax.scan`` calls: the run leaves the device once per call, not per step.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

#: History keys that are bookkeeping, not metrics (left out of progress lines).
BOOKKEEPING = ("epoch", "step", "seconds", "compile_seconds", "examples_per_second")


class Callback:
    """The hooks :func:`jaxnet.fit` calls; subclass and override what you need.

    Every hook is optional (a plain object with only ``on_epoch_end`` works too).
    Hooks receive plain data:

    * ``on_train_start(info)``: ``info`` has ``epochs`` (the target), ``start_epoch``
      (0, or the epoch a resumed run continues after), ``start_step``,
      ``steps_per_epoch`` (``None`` for batch iterators), ``batch_size``,
      ``examples`` (``None`` for iterators), ``model`` (its description) and
      ``history`` (the rows a resumed run already has).
    * ``on_step_end(record)``: every ``log_every`` steps (``fit``'s argument), a dict
      with ``step`` (1-based, counted across resumes), ``epoch`` (1-based),
      ``batch`` (1-based within the epoch), ``loss`` and the training metrics of
      that one step.
    * ``on_epoch_end(row, train_state)``: ``row`` is the epoch's history row (as in
      ``FitResult.history``); ``train_state`` the current :class:`TrainState`.
      Return ``True`` to stop training after this epoch.
    * ``on_train_end(summary, train_state)``: ``summary`` has ``history``,
      ``step``, ``stopped_early``, ``best_epoch``, ``resumed_from``; also called
      when training raises, with ``summary["error"]`` the exception's text, so
      loggers close their files.
    """

    def on_train_start(self, info: Mapping[str, Any]) -> None:
        """Called once, before the first step."""

    def on_step_end(self, record: Mapping[str, Any]) -> None:
        """Called every ``log_every`` steps with that step's metrics."""

    def on_epoch_end(self, row: Mapping[str, Any], train_state: Any) -> bool | None:
        """Called after every epoch; return ``True`` to stop."""
        return None

    def on_train_end(self, summary: Mapping[str, Any], train_state: Any) -> None:
        """Called once at the end (also after an error)."""


class _FileLogger(Callback):
    """Shared by the file loggers: open at train start, flush every write, close at
    the end; a resumed run keeps the rows up to where it resumes and appends."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self._file: TextIO | None = None

    def _keep(self, start_step: int, start_epoch: int) -> list[str]:
        """The lines of an existing file that belong before the resume point."""
        return []

    def on_train_start(self, info: Mapping[str, Any]) -> None:
        kept: list[str] = []
        if info.get("start_epoch", 0) and os.path.exists(self.path):
            kept = self._keep(int(info["start_step"]), int(info["start_epoch"]))
        self._file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._file.writelines(kept)
        self._file.flush()

    def _write(self, text: str) -> None:
        if self._file is None:
            raise RuntimeError(
                f"{type(self).__name__}({self.path!r}): written before on_train_start; "
                "pass it to fit(callbacks=[...]), which opens it."
            )
        self._file.write(text)
        self._file.flush()

    def on_train_end(self, summary: Mapping[str, Any], train_state: Any) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _finite(value: Any) -> Any:
    """JSON has no nan or inf: write them as the strings ``"nan"``, ``"inf"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class JSONLinesLogger(_FileLogger):
    """Write the run as JSON lines: one ``{"event": "step", ...}`` object every
    ``log_every`` steps and one ``{"event": "epoch", ...}`` per epoch (the history
    row), flushed as written (``tail -f`` follows it; a killed run loses nothing).

    ``nan`` and ``inf`` are written as the strings ``"nan"`` and ``"inf"`` (JSON has
    no such numbers). A resumed run keeps the lines up to its checkpoint and
    appends; lines a killed run wrote after its last checkpoint are dropped, so
    every step appears once.

    Args:
      path: the file (overwritten by a fresh run).

    Examples:
      >>> import json, os, pathlib, tempfile, jax, optax, jaxnet
      >>> x = jax.random.normal(jax.random.key(0), (32, 3)); y = x[:, :1]
      >>> path = os.path.join(tempfile.mkdtemp(), "run.jsonl")
      >>> _ = jaxnet.fit(jaxnet.Dense(1), jaxnet.losses.mse, optax.sgd(0.1), (x, y),
      ...                key=jax.random.key(1), epochs=2, batch_size=16,
      ...                progress=False, callbacks=[jaxnet.JSONLinesLogger(path)])
      >>> lines = pathlib.Path(path).read_text().splitlines()
      >>> [(r["event"], r["step"]) for r in map(json.loads, lines)]
      [('step', 1), ('step', 2), ('epoch', 2), ('step', 3), ('step', 4), ('epoch', 4)]
    """

    def _keep(self, start_step: int, start_epoch: int) -> list[str]:
        kept = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill
                    continue
                if int(rec.get("step", 0)) <= start_step:
                    kept.append(line if line.endswith("\n") else line + "\n")
        return kept

    def _record(self, event: str, data: Mapping[str, Any]) -> None:
        rec = {"event": event, **{k: _finite(v) for k, v in data.items()}}
        self._write(json.dumps(rec) + "\n")

    def on_step_end(self, record: Mapping[str, Any]) -> None:
        self._record("step", record)

    def on_epoch_end(self, row: Mapping[str, Any], train_state: Any) -> None:
        self._record("epoch", row)


class CSVLogger(_FileLogger):
    """Write one CSV row per epoch (the history rows; ``every="epoch"``, the
    default) or per logged step (``every="step"``: ``step, epoch, batch, loss`` and
    the metrics), flushed as written. The header comes from the first row. A
    resumed run keeps the rows up to its checkpoint and appends.

    Args:
      path: the file (overwritten by a fresh run).
      every: ``"epoch"`` or ``"step"``.
    """

    def __init__(self, path: str | os.PathLike[str], every: str = "epoch"):
        if every not in ("epoch", "step"):
            raise ValueError(
                f"CSVLogger: every must be 'epoch' or 'step', got {every!r}."
            )
        super().__init__(path)
        self.every = every
        self._fields: list[str] | None = None

    def _keep(self, start_step: int, start_epoch: int) -> list[str]:
        with open(self.path, encoding="utf-8", newline="") as f:
            lines = f.readlines()
        if not lines:
            return []
        header = next(csv.reader([lines[0]]))
        self._fields = header
        kept = [lines[0]]
        for line in lines[1:]:
            row = next(csv.reader([line]), None)
            if not row or len(row) != len(header):
                continue
            rec = dict(zip(header, row, strict=True))
            try:
                if int(float(rec.get("step", "0"))) <= start_step:
                    kept.append(line if line.endswith("\n") else line + "\n")
            except ValueError:
                continue
        return kept

    def _row(self, data: Mapping[str, Any]) -> None:
        if self._fields is None:
            self._fields = list(data)
            self._write(_csv_line(self._fields))
        self._write(_csv_line([data.get(k, "") for k in self._fields]))

    def on_step_end(self, record: Mapping[str, Any]) -> None:
        if self.every == "step":
            self._row(record)

    def on_epoch_end(self, row: Mapping[str, Any], train_state: Any) -> None:
        if self.every == "epoch":
            self._row(row)


def _csv_line(values: Sequence[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


# ------------------------------------------------------------------- progress


def _fmt_seconds(s: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 01 min``."""
    if not math.isfinite(s):
        return "?"
    s = max(0.0, s)
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _metrics_text(row: Mapping[str, Any]) -> str:
    return "  ".join(
        f"{k} {v:.4g}"
        for k, v in row.items()
        if k not in BOOKKEEPING and isinstance(v, int | float)
    )


class _Clock:
    """Elapsed time and ETA over the steps of this run (resumed steps excluded)."""

    def __init__(self, epochs: int, start_epoch: int, spe: int | None):
        self.t0 = time.perf_counter()
        self.epochs, self.start_epoch, self.spe = epochs, start_epoch, spe
        self.done = 0  # steps this run

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def total(self) -> int | None:
        if self.spe is None:
            return None
        return (self.epochs - self.start_epoch) * self.spe

    def eta(self) -> float:
        total = self.total()
        if total is None or self.done == 0:
            return math.nan
        return self.elapsed() / self.done * (total - self.done)


class _Progress:
    """Silent base: what fit calls after every call into XLA and every epoch."""

    def start(self, info: Mapping[str, Any]) -> None:
        pass

    def update(
        self, epoch: int, batch: int, steps: int, loss: float, rate: float
    ) -> None:
        """After a call: ``batch`` done of this epoch, ``steps`` done this run."""

    def end_epoch(self, row: Mapping[str, Any]) -> None:
        pass

    def close(self, summary: Mapping[str, Any] | None) -> None:
        pass


class _LineProgress(_Progress):
    """Plain lines, each complete: for files, pipes, ``nohup`` and loggers."""

    def __init__(self, out: TextIO | logging.Logger, interval: float):
        self.out, self.interval = out, interval
        self._last = -math.inf
        self.clock: _Clock | None = None

    def _line(self, text: str) -> None:
        if isinstance(self.out, logging.Logger):
            self.out.info(text)
        else:
            self.out.write(text + "\n")
            self.out.flush()

    def start(self, info: Mapping[str, Any]) -> None:
        spe = info.get("steps_per_epoch")
        self.clock = _Clock(info["epochs"], info["start_epoch"], spe)
        self.epochs = info["epochs"]
        per = f", {spe} steps each" if spe else ""
        batch = f" (batch {info['batch_size']})" if info.get("batch_size") else ""
        resumed = (
            f", resuming after epoch {info['start_epoch']}"
            if info["start_epoch"]
            else ""
        )
        self._line(f"fit: {info['model']}: {self.epochs} epochs{per}{batch}{resumed}")
        self._last = time.perf_counter()

    def update(
        self, epoch: int, batch: int, steps: int, loss: float, rate: float
    ) -> None:
        assert self.clock is not None
        self.clock.done = steps
        now = time.perf_counter()
        spe = self.clock.spe
        if now - self._last < self.interval or (spe is not None and batch >= spe):
            return  # throttled, or the epoch line follows at once
        self._last = now
        of = f"/{spe}" if spe else ""
        self._line(
            f"epoch {epoch}/{self.epochs}  batch {batch}{of}  loss {loss:.4g}  "
            f"{rate:,.0f} ex/s  elapsed {_fmt_seconds(self.clock.elapsed())}  "
            f"ETA {_fmt_seconds(self.clock.eta())}"
        )

    def end_epoch(self, row: Mapping[str, Any]) -> None:
        assert self.clock is not None
        if self.clock.spe is None:  # iterators: the first epoch tells its length
            done = int(row["epoch"]) - self.clock.start_epoch
            self.clock.spe = max(1, round(self.clock.done / max(done, 1)))
        compile_s = row.get("compile_seconds")
        self._line(
            f"epoch {row['epoch']}/{self.epochs}  step {row['step']}  "
            f"{_metrics_text(row)}  {row['examples_per_second']:,.0f} ex/s  "
            f"{row['seconds']:.2f} s"
            + (f" (+{compile_s:.2f} s compile)" if compile_s else "")
            + f"  elapsed {_fmt_seconds(self.clock.elapsed())}"
            + f"  ETA {_fmt_seconds(self.clock.eta())}"
        )
        self._last = time.perf_counter()

    def close(self, summary: Mapping[str, Any] | None) -> None:
        if summary is None or self.clock is None:
            return
        how = ", stopped early" if summary.get("stopped_early") else ""
        self._line(
            f"fit: done: {len(summary['history'])} epochs, {summary['step']} steps "
            f"in {_fmt_seconds(self.clock.elapsed())}{how}"
        )


class _LiveProgress(_Progress):
    """A live ``rich`` display on a terminal; epoch lines scroll above the bar."""

    def __init__(self, stream: TextIO):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  {task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self.task: Any = None
        self.epochs = 0

    def start(self, info: Mapping[str, Any]) -> None:
        spe = info.get("steps_per_epoch")
        self.epochs = info["epochs"]
        total = None if spe is None else (info["epochs"] - info["start_epoch"]) * spe
        self.bar.start()
        self.task = self.bar.add_task(
            f"epoch {info['start_epoch'] + 1}/{self.epochs}",
            total=total,
            loss="-",
            rate="",
        )

    def update(
        self, epoch: int, batch: int, steps: int, loss: float, rate: float
    ) -> None:
        self.bar.update(
            self.task,
            completed=steps,
            description=f"epoch {epoch}/{self.epochs}",
            loss=f"{loss:.4g}",
            rate=f"{rate:,.0f} ex/s",
        )

    def end_epoch(self, row: Mapping[str, Any]) -> None:
        compile_s = row.get("compile_seconds")
        self.bar.console.print(
            f"epoch {row['epoch']}/{self.epochs}  {_metrics_text(row)}  "
            f"({row['seconds']:.2f} s, {row['examples_per_second']:,.0f} ex/s"
            + (f", compile {compile_s:.2f} s)" if compile_s else ")"),
            highlight=False,
        )

    def close(self, summary: Mapping[str, Any] | None) -> None:
        self.bar.stop()


def make_progress(
    progress: bool | None,
    stream: TextIO | logging.Logger | None,
    interval: float,
) -> _Progress:
    """The display for ``fit(progress=, stream=, progress_interval=)``: nothing for
    ``False``; else live on a terminal, plain lines anywhere else."""
    if progress is False:
        return _Progress()
    if progress is not None and progress is not True:
        raise TypeError(
            f"fit: progress must be True, False or None, got {progress!r}; to send "
            "progress elsewhere pass stream= (a text stream or a logging.Logger)."
        )
    if interval < 0:
        raise ValueError(f"fit: progress_interval must be >= 0 s, got {interval}.")
    out = sys.stderr if stream is None else stream
    if isinstance(out, logging.Logger):
        return _LineProgress(out, interval)
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty():
        return _LiveProgress(out)
    return _LineProgress(out, interval)


class Hooks:
    """The callbacks of one run, called with plain data; step records every
    ``log_every`` steps."""

    def __init__(self, callbacks: Sequence[Any], log_every: int):
        if (
            not isinstance(log_every, int)
            or isinstance(log_every, bool)
            or log_every < 1
        ):
            raise ValueError(f"fit: log_every must be an int >= 1, got {log_every!r}.")
        names = ("on_train_start", "on_step_end", "on_epoch_end", "on_train_end")
        for cb in callbacks:
            if not any(callable(getattr(cb, n, None)) for n in names):
                raise TypeError(
                    f"fit: callback {cb!r} has none of the hooks {', '.join(names)}; "
                    "subclass jaxnet.Callback and override the ones you need."
                )
        self.callbacks = list(callbacks)
        self.log_every = log_every
        self.wants_steps = any(
            callable(getattr(cb, "on_step_end", None)) for cb in self.callbacks
        )

    def _call(self, name: str, *args: Any) -> list[Any]:
        out = []
        for cb in self.callbacks:
            hook = getattr(cb, name, None)
            if callable(hook):
                out.append(hook(*args))
        return out

    def train_start(self, info: Mapping[str, Any]) -> None:
        self._call("on_train_start", info)

    def steps(
        self, step0: int, epoch: int, batch0: int, metrics: Mapping[str, Any]
    ) -> None:
        """Step records for the steps ``step0 + 1 ...`` of one call; ``metrics``
        holds a 1-D numpy array (one value per step) per name."""
        if not self.wants_steps:
            return
        n = len(metrics["loss"])
        for j in range(n):
            step = step0 + j + 1
            if step % self.log_every:
                continue
            record: dict[str, Any] = {
                "step": step,
                "epoch": epoch,
                "batch": batch0 + j + 1,
            }
            record.update({k: float(v[j]) for k, v in metrics.items()})
            self._call("on_step_end", record)

    def epoch_end(self, row: Mapping[str, Any], train_state: Any) -> bool:
        return any(r is True for r in self._call("on_epoch_end", row, train_state))

    def train_end(self, summary: Mapping[str, Any], train_state: Any) -> None:
        self._call("on_train_end", summary, train_state)
