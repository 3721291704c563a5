"""fit's progress displays: a live ``rich`` display on a terminal, plain complete
lines anywhere else, and the dispatcher that calls them and the callbacks."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ._callbacks import BOOKKEEPING

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
