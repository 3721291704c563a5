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
import math
import os
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
