"""``fit``: epochs over arrays or batches, progress, validation, early stopping, checkpoints.

``fit`` is a thin loop over the pure pieces of :mod:`jaxnet.train`; it hides nothing
that a user could not write with them. For arrays, each call into XLA runs a whole
epoch (or ``steps_per_call`` steps of it) inside one ``lax.scan``; for an iterator of
batches it calls a jitted step per batch.

Exact resume: checkpoints are written at epoch ends and hold the whole
:class:`TrainState` (parameters, Optax state, model state, step count), the history and
the early-stopping record. Shuffling and dropout keys are pure functions of the run's
key and the epoch/step number, and the chunking of an epoch into calls does not depend
on where the run started, so a run killed at any point and restarted with the same
arguments replays the same programs on the same data and ends bit-identical.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._errors import ShapeError, TrainingError
from .._types import Array, Params, PRNGKey
from ..nn._layer import Layer
from ._callbacks import Callback
from ._loop import _as_state_step, _batch_size, _chunk_fn, jit_step, split_key
from ._policy import Policy
from ._progress import Hooks, make_progress
from ._step import (
    Metric,
    TrainState,
    _num_examples,
    _split_batch,
    evaluate,
    make_train_step,
)


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """Stop when a monitored value has not improved for ``patience`` epochs.

    Args:
      monitor: a history key: ``"val_loss"`` (the default), ``"loss"``, or
        ``"val_<metric>"`` / ``"<metric>"`` for a metric passed to :func:`fit`.
      patience: epochs without improvement before stopping.
      min_delta: the smallest change that counts as an improvement.
      mode: ``"min"`` (losses) or ``"max"`` (accuracies).
      restore_best: return (and checkpoint) the best epoch's parameters.
    """

    monitor: str = "val_loss"
    patience: int = 5
    min_delta: float = 0.0
    mode: str = "min"
    restore_best: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(
                f"EarlyStopping: mode must be 'min' or 'max', got {self.mode!r}."
            )
        if self.patience < 1:
            raise ValueError(
                f"EarlyStopping: patience must be >= 1, got {self.patience}."
            )

    def improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
      params, opt_state, state: the final (or, with ``EarlyStopping(restore_best=
        True)``, the best epoch's) parameters, the Optax state, the model state.
      step: optimizer steps taken in total (across resumes).
      history: one dict per epoch (``epoch``, ``step``, ``loss``, ``grad_norm``
        (the mean over the epoch's steps of the gradient's global norm), the
        metrics, ``val_*``, ``seconds``, ``examples_per_second``,
        ``compile_seconds``):
        plain Python data. For array data each program is compiled ahead of time
        and its compile time reported apart (``seconds`` excludes it); for batch
        iterators the first step's compile is inside the first epoch's ``seconds``.
      stopped_early: whether early stopping ended the run.
      best_epoch: the epoch early stopping judged best (``None`` without it).
      resumed_from: the epoch the run resumed after (0 for a fresh run).
    """

    params: Params
    opt_state: Any
    state: Any
    step: int
    history: list[dict[str, float]]
    stopped_early: bool = False
    best_epoch: int | None = None
    resumed_from: int = 0


# -------------------------------------------------------------------- checks


def _outputs(model: Layer, params: Params, x: Any, state: Any) -> int | None:
    """The model's output size (last axis) at input ``x``, or ``None`` (no axis)."""
    first = jax.tree.map(lambda a: a[:1], x)
    kw = {"state": state} if model.stateful else {}
    out = jax.eval_shape(lambda p, xx: model.apply(p, xx, **kw), params, first)
    if model.stateful:
        out = out[0]
    if not hasattr(out, "shape") or not out.shape:
        return None
    return int(out.shape[-1])


def _check_labels(
    model: Layer,
    params: Params,
    x: Any,
    y: Any,
    state: Any,
    where: str = "fit",
    outputs: int | None = None,
) -> None:
    """Integer labels must lie in ``[0, num_outputs)``, checked on the host: once for
    arrays, per batch for batches (``outputs`` given: no tracing per batch)."""
    if not (hasattr(y, "dtype") and jnp.issubdtype(y.dtype, jnp.integer)):
        return
    if outputs is None:
        outputs = _outputs(model, params, x, state)
        if outputs is None:
            return
    classes = max(outputs, 2)
    labels = np.asarray(y)
    if labels.size == 0:
        return
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= classes:
        flat = labels.reshape(-1)
        bad = int(np.flatnonzero((flat < 0) | (flat >= classes))[0])
        raise ValueError(
            f"{where}: integer labels must lie in [0, {classes}) for a model with "
            f"{outputs} output(s); got values in [{lo}, {hi}] (first bad one at "
            f"flat index {bad}: {flat[bad]}). Check the label encoding or "
            "the model's output size."
        )


def _check_finite_data(where: str, tree: Any) -> None:
    """Floating inputs and targets must be finite (a nan would give ``nan`` metrics
    silently)."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        a = np.asarray(leaf)
        if np.issubdtype(a.dtype, np.inexact) and not np.all(np.isfinite(a)):
            idx = np.unravel_index(int(np.argmax(~np.isfinite(a))), a.shape)
            name = jax.tree_util.keystr(path)
            raise ValueError(
                f"{where}: {'x' if name.startswith('[0]') else 'y'}"
                f"{name[3:]} holds a non-finite value ({a[idx]} at index "
                f"{tuple(int(i) for i in idx)}); the validation metrics would be nan. "
                "Clean or drop those examples."
            )


def _give_back(
    source: Callable[[int], Iterable[Any]], epoch0: Iterable[Any]
) -> Callable[[int], Iterable[Any]]:
    """``source`` whose epoch 0 is the iterator the first batch was peeked from."""
    return lambda epoch: epoch0 if epoch == 0 else source(epoch)


def _check_checkpoint_path(path: str | os.PathLike[str] | None) -> str | None:
    if path is None:
        return None
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"fit: checkpoint directory {directory!r} does not exist; create it first "
            "(os.makedirs(directory, exist_ok=True)). Checked before training so that "
            "no work is lost."
        )
    if not os.access(directory, os.W_OK):
        raise PermissionError(
            f"fit: cannot write checkpoints to {directory!r} (no write permission). "
            "Choose a writable directory."
        )
    return path


def _epoch_source(data: Any, epochs: int) -> Callable[[int], Iterable[Any]]:
    if callable(data):
        return data
    if data is None or not isinstance(data, Iterable):
        raise TypeError(
            f"fit: data must be (x, y) arrays, a {{'x': ..., 'y': ...}} dict, a list "
            "of batches, an iterator of batches or a callable epoch -> iterable of "
            f"batches; got {type(data).__name__}."
        )
    if iter(data) is data and epochs > 1:
        raise TypeError(
            "fit: the training data are a one-shot iterator (a generator?), which "
            f"would be exhausted after the first of {epochs} epochs. Pass a list of "
            "batches, a callable epoch -> iterable of batches, or (x, y) arrays."
        )
    return lambda epoch: data


def _is_arrays(data: Any) -> bool:
    if isinstance(data, Mapping):
        return {"x", "y"} <= set(data)
    if isinstance(data, tuple) and len(data) == 2:
        return all(hasattr(leaf, "shape") for leaf in jax.tree.leaves(data))
    return False


# ------------------------------------------------------------------------ fit


def fit(
    model: Layer,
    loss: Callable[..., Array],
    optimizer: optax.GradientTransformation,
    data: Any,
    *,
    key: PRNGKey,
    epochs: int = 1,
    batch_size: int | None = 32,
    params: Params | None = None,
    opt_state: Any = None,
    state: Any = None,
    validation_data: tuple[Any, Any] | None = None,
    metrics: Mapping[str, Metric] | None = None,
    policy: Policy | str | None = None,
    gradients: str = "autodiff",
    shuffle: bool = True,
    steps_per_call: int | None = None,
    progress: bool | None = None,
    stream: TextIO | logging.Logger | None = None,
    progress_interval: float = 30.0,
    callbacks: Sequence[Callback] = (),
    log_every: int = 1,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 1,
    resume: bool = True,
    early_stopping: EarlyStopping | None = None,
    stop_on_nan: bool = True,
    eval_batch_size: int = 1024,
) -> FitResult:
    """Train ``model`` on ``data`` with ``optimizer``; return parameters and history.

    Args:
      model, loss, optimizer: as for :func:`make_train_step`.
      data: ``(x, y)`` arrays (shuffled on device from ``key``, each epoch fused into
        ``lax.scan`` calls), or batches: a list / re-iterable of ``(x, y)`` pairs or a
        callable ``epoch -> iterable of batches`` (the caller shuffles; every batch
        must have the first batch's shape).
      key: the run's PRNG key: parameter init, shuffling and dropout all derive from it.
      epochs: total epochs (a resumed run continues up to this number).
      batch_size: examples per step for array data; ``None`` for full batch. The last
        ``n % batch_size`` examples of each epoch's permutation are skipped that epoch.
      params, opt_state, state: start from these instead of initialising.
      validation_data: ``(x, y)`` evaluated after every epoch (``val_*`` entries).
      metrics: ``name -> metric(outputs, targets)``, e.g. ``{"accuracy":
        jaxnet.accuracy}``, on training batches and validation data.
      policy: a :class:`Policy` or a compute dtype such as ``"bfloat16"``.
      gradients: ``"autodiff"`` or ``"analytic"`` (see :func:`make_train_step`).
      shuffle: permute array data every epoch.
      steps_per_call: for array data, steps per XLA call (progress and per-step
        callbacks see each call's steps when it returns); default: a whole epoch
        per call.
      progress: ``True`` or ``None`` (default): on a terminal a live display (a
        ``rich`` bar with loss, examples/s, elapsed time and ETA, and a line per
        epoch); anywhere else (a file, ``nohup``, SLURM, a notebook's captured
        stderr) plain lines: one when training starts, one per epoch and at most
        one every ``progress_interval`` seconds within an epoch. ``False``: silent.
      stream: where progress goes: a text stream (default ``sys.stderr``) or a
        :class:`logging.Logger` (lines at INFO level).
      progress_interval: the least seconds between two plain lines within an epoch
        (``0``: one after every call into XLA).
      callbacks: objects with some of :class:`Callback`'s hooks (e.g.
        :class:`CSVLogger`, :class:`JSONLinesLogger`), called with plain data.
      log_every: steps between two ``on_step_end`` calls (a step's own loss and
        metrics, taken from the scan's outputs: no extra device round trips).
      checkpoint: a file path; the run is saved there atomically every
        ``checkpoint_every`` epochs and at the end.
      resume: if ``checkpoint`` exists, continue from it (same key and settings give
        the same result as never stopping). A run that early stopping ended stays
        ended (a fresh run would stop at the same epoch); resuming it with more
        ``epochs`` than it was given warns, as does a checkpoint already past
        ``epochs``.
      early_stopping: an :class:`EarlyStopping` rule.
      stop_on_nan: raise :class:`TrainingError` naming the step when the loss becomes
        nan or inf (checked after each call, so at most ``steps_per_call`` late).
      eval_batch_size: batch size for validation.

    Returns:
      A :class:`FitResult`.

    Raises:
      TrainingError: non-finite loss (with ``stop_on_nan``).
      ShapeError, ValueError, FileNotFoundError, PermissionError: bad data or
        checkpoint path, before any training.
      CheckpointError: a checkpoint to resume from that does not match the run, or
        whose resume record (epoch, history, early stopping) fit cannot have
        written; naming the field, the expected and the actual value.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, jaxnet
      >>> x = jax.random.normal(jax.random.key(0), (64, 3))
      >>> y = (x[:, 0] > 0).astype(jnp.int32)
      >>> model = jaxnet.serial(jaxnet.Dense(8), jaxnet.Relu(), jaxnet.Dense(2))
      >>> loss = jaxnet.losses.softmax_cross_entropy_with_integer_labels
      >>> result = jaxnet.fit(model, loss, optax.adam(0.05), (x, y), key=jax.random.key(1),
      ...                     epochs=20, batch_size=16, metrics={"accuracy": jaxnet.accuracy})
      >>> len(result.history), result.step, result.history[-1]["accuracy"] > 0.9
      (20, 80, True)
    """
    progress_out = make_progress(progress, stream, progress_interval)
    hooks = Hooks(callbacks, log_every)
    checkpoint = _check_checkpoint_path(checkpoint)
    if checkpoint_every < 1:
        raise ValueError(
            f"fit: checkpoint_every must be >= 1 epoch, got {checkpoint_every}."
        )
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}.")
    init_key, shuffle_key, step_key = split_key(key)
    train = _TrainingData.of(data, batch_size, epochs)
    ts = _initial_state(model, optimizer, train, params, state, opt_state, init_key)
    if train.arrays:
        _check_labels(model, ts.params, train.x, train.y, ts.state)
    if validation_data is not None:
        vx, vy = _split_batch("fit (validation_data)", validation_data)
        _num_examples("fit (validation_data)", vx, vy)
        _check_labels(model, ts.params, vx, vy, ts.state, "fit (validation_data)")
        _check_finite_data("fit (validation_data)", (vx, vy))
    step = make_train_step(
        model, loss, optimizer, metrics=metrics, policy=policy, gradients=gradients
    )
    run = _Run(
        model=model,
        loss=loss,
        step=step,
        train=train,
        key=key,
        shuffle_key=shuffle_key,
        step_key=step_key,
        epochs=epochs,
        shuffle=bool(shuffle),
        steps_per_call=steps_per_call,
        validation_data=validation_data,
        eval_batch_size=eval_batch_size,
        metrics=metrics,
        policy=policy,
        early_stopping=early_stopping,
        stop_on_nan=stop_on_nan,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        progress=progress_out,
        hooks=hooks,
        ts=ts,
    )
    if checkpoint is not None and resume and os.path.exists(checkpoint):
        run.restore(checkpoint)
    info = run.start_info()
    progress_out.start(info)
    hooks.train_start(info)
    try:
        for epoch in range(run.start_epoch, epochs):
            if run.stopped:
                break
            run.train_epoch(epoch)
    except BaseException as exc:  # close displays and loggers, then re-raise
        progress_out.close(None)
        hooks.train_end(
            {"history": run.history, "step": int(run.ts.step), "error": repr(exc)},
            run.ts,
        )
        raise
    result = run.result()
    summary = {
        "history": [dict(r) for r in result.history],
        "step": result.step,
        "stopped_early": result.stopped_early,
        "best_epoch": result.best_epoch,
        "resumed_from": result.resumed_from,
    }
    progress_out.close(summary)
    hooks.train_end(summary, run.ts)
    return result


@dataclasses.dataclass(frozen=True)
class _TrainingData:
    """What ``fit`` trains on: ``(x, y)`` arrays split into ``steps_per_epoch``
    batches of ``batch_size``, or ``batches(epoch)``, an iterable of batches."""

    arrays: bool
    sample_x: Any  # an input with the batch's shape, for init
    x: Any = None
    y: Any = None
    examples: int | None = None
    batch_size: int | None = None
    steps_per_epoch: int | None = None
    batches: Callable[[int], Iterable[Any]] | None = None

    @classmethod
    def of(cls, data: Any, batch_size: int | None, epochs: int) -> _TrainingData:
        """Check and wrap ``fit``'s ``data``."""
        if _is_arrays(data):
            x, y = _split_batch("fit", data)
            x, y = jax.tree.map(jnp.asarray, (x, y))
            n = _num_examples("fit", x, y)
            bs = _batch_size("fit", batch_size, n)
            return cls(True, x, x, y, n, bs, n // bs)
        source = _epoch_source(data, epochs)
        # Peek at the first batch for the shapes, then give it back: epoch 0 runs on
        # the same iterator, so a one-shot iterator loses nothing and a callable is
        # called once for that epoch, not twice.
        it0 = iter(source(0))
        first = next(it0, None)
        if first is None:
            raise ShapeError("fit: the training data yield no batches.")
        sample_x, _ = _split_batch("fit", first)
        batches = _give_back(source, itertools.chain([first], it0))
        return cls(False, sample_x, batches=batches)


def _initial_state(
    model: Layer,
    optimizer: optax.GradientTransformation,
    train: _TrainingData,
    params: Params | None,
    state: Any,
    opt_state: Any,
    init_key: PRNGKey,
) -> TrainState:
    """The run's first :class:`TrainState`: the given values, the rest initialised."""
    shape = (None,) + tuple(jax.tree.leaves(train.sample_x)[0].shape[1:])
    if params is None:
        _, params = model.init(init_key, shape)
    if model.init_state is not None and state is None:
        _, state = model.init_state(shape)
    if opt_state is None:
        opt_state = optimizer.init(params)
    return TrainState(params, opt_state, state, jnp.zeros((), jnp.int32))


@dataclasses.dataclass
class _Totals:
    """One epoch's running sums (metric sums over steps, examples, compile time)."""

    sums: dict[str, float] = dataclasses.field(default_factory=dict)
    steps: int = 0
    examples: int = 0
    compile_seconds: float = 0.0

    def add(self, metrics: Mapping[str, np.ndarray]) -> None:
        for name, v in metrics.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(
                np.sum(v, dtype=np.float64)
            )


@dataclasses.dataclass
class _Run:
    """One call of :func:`fit`: its settings, then the state that changes as it
    trains (the train state, history, early-stopping record)."""

    model: Layer
    loss: Callable[..., Array]
    step: Callable[..., Any]
    train: _TrainingData
    key: PRNGKey
    shuffle_key: PRNGKey
    step_key: PRNGKey
    epochs: int
    shuffle: bool
    steps_per_call: int | None
    validation_data: tuple[Any, Any] | None
    eval_batch_size: int
    metrics: Mapping[str, Metric] | None
    policy: Policy | str | None
    early_stopping: EarlyStopping | None
    stop_on_nan: bool
    checkpoint: str | None
    checkpoint_every: int
    progress: Any
    hooks: Hooks
    ts: TrainState
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    best: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {
            "value": None,
            "epoch": None,
            "wait": 0,
            "params": None,
        }
    )
    start_epoch: int = 0
    stopped: bool = False
    run_steps: int = 0  # steps taken by this call of fit (for the ETA)
    compiled: dict[int, Any] = dataclasses.field(default_factory=dict)  # k -> program
    n_out: int | None = None  # the model's output size, for the per-batch label check
    batch_step: Callable[..., Any] | None = None
    resumed_from: int = 0

    @property
    def keep_best(self) -> bool:
        return self.early_stopping is not None and self.early_stopping.restore_best

    def restore(self, checkpoint: str) -> None:
        """Continue from ``checkpoint``: its train state, history and early-stopping
        record, after checking it belongs to this run."""
        from ..checkpoint._read import load_with_metadata

        like = {"train": self.ts, "best": self.ts.params if self.keep_best else None}
        tree, meta = load_with_metadata(checkpoint, like=like)
        if isinstance(meta.get("history"), list):
            meta["history"] = [_decode_row(row) for row in meta["history"]]
        _check_resume(checkpoint, meta, self.key, self.train.batch_size)
        _check_resume_record(checkpoint, meta, int(tree["train"].step))
        self.ts = tree["train"]
        self.history = [dict(row) for row in meta["history"]]
        self.start_epoch = meta["epoch"]
        self.best.update(meta["early_stopping"])
        self.best["params"] = tree["best"] if self.keep_best else None
        self.resumed_from = self.start_epoch
        # A run that early stopping ended stays ended: rerunning the same call
        # returns its result instead of training on. That is also the right result
        # for a larger epochs=: a fresh run with that many epochs stops at the same
        # epoch (same key, same data), and resuming must equal never stopping; and
        # training on past exhausted patience would disown the best epoch early
        # stopping chose. But a user who asks for more epochs than the stopped run
        # had probably expects training, so say so instead of returning silently.
        self.stopped = meta.get("stopped", False)
        asked = meta.get("epochs")
        start, epochs = self.start_epoch, self.epochs
        if self.stopped and epochs > (start if asked is None else asked):
            warnings.warn(
                f"fit: early stopping ended this run at epoch {start} (best "
                f"epoch {self.best['epoch']}), so resuming it from {checkpoint!r} with "
                f"epochs={epochs} trains nothing and returns the stopped run"
                + (f" (it was asked for epochs={asked})" if asked is not None else "")
                + ": a fresh run with these arguments would stop at the same epoch. "
                "To train further, start a new run (resume=False, or another "
                "checkpoint= path) from result.params, e.g. with a larger "
                "EarlyStopping patience.",
                UserWarning,
                stacklevel=3,
            )
        elif epochs < start:
            warnings.warn(
                f"fit: the checkpoint {checkpoint!r} already holds {start} "
                f"epochs, more than epochs={epochs}; returning its {start} "
                "epochs without training (a checkpoint is never rolled back). Pass "
                f"resume=False to train a new run of {epochs} epochs.",
                UserWarning,
                stacklevel=3,
            )

    def start_info(self) -> dict[str, Any]:
        """What progress displays and callbacks get at the start."""
        return {
            "epochs": self.epochs,
            "start_epoch": self.start_epoch,
            "start_step": int(self.ts.step),
            "steps_per_epoch": self.train.steps_per_epoch,
            "batch_size": self.train.batch_size,
            "examples": self.train.examples,
            "model": self.model.desc,
            "history": [dict(r) for r in self.history],
        }

    def train_epoch(self, epoch: int) -> None:
        """One epoch: the steps, then its history row, early stopping, callbacks
        and checkpoint."""
        t0 = time.perf_counter()
        if self.train.arrays:
            totals = self._array_epoch(epoch, t0)
        else:
            totals = self._batch_epoch(epoch, t0)
        row = self._row(
            epoch, totals, time.perf_counter() - t0 - totals.compile_seconds
        )
        self.history.append(row)
        self.progress.end_epoch(row)
        self._early_stopping(epoch, row)
        if self.hooks.epoch_end(row, self.ts):  # a callback asked to stop
            self.stopped = True
        last = self.stopped or epoch + 1 == self.epochs
        if self.checkpoint is not None and (
            (epoch + 1) % self.checkpoint_every == 0 or last
        ):
            _save_run(
                self.checkpoint,
                {
                    "train": self.ts,
                    "best": self.best["params"] if self.keep_best else None,
                },
                epoch + 1,
                self.history,
                self.best,
                self.key,
                self.train.batch_size,
                self.stopped,
                self.epochs,
                self.model,
            )

    def _array_epoch(self, epoch: int, t0: float) -> _Totals:
        """An epoch over arrays: ``lax.scan`` calls of ``k`` steps each (the whole
        epoch, or ``steps_per_call``), each compiled once ahead of time."""
        spe, bs = self.train.steps_per_epoch, self.train.batch_size
        assert spe is not None and bs is not None  # set for arrays
        k_call = (
            spe
            if self.steps_per_call is None
            else max(1, min(int(self.steps_per_call), spe))
        )
        totals = _Totals()
        b = 0
        while b < spe:
            k = min(k_call, spe - b)
            args = (
                self.ts,
                self.train.x,
                self.train.y,
                self.shuffle_key,
                self.step_key,
                np.int32(epoch),
                np.int32(b),
            )
            if k not in self.compiled:  # ahead of time, so that it is timed apart
                tc = time.perf_counter()
                fn = _chunk_fn(
                    self.step, self.model.stateful, k, bs, self.shuffle, True
                )
                self.compiled[k] = fn.lower(*args).compile()
                totals.compile_seconds += time.perf_counter() - tc
            step0 = int(self.ts.step)
            self.ts, m = self.compiled[k](*args)
            m = {name: np.asarray(v) for name, v in m.items()}
            if self.stop_on_nan:
                _check_finite(
                    m["loss"], step0, epoch, b, spe, self.history, self.checkpoint
                )
            self.hooks.steps(step0, epoch + 1, b, m)  # the scan's per-step outputs
            totals.add(m)
            b += k
            totals.steps += k
            self.run_steps += k
            totals.examples += k * bs
            elapsed = time.perf_counter() - t0 - totals.compile_seconds
            rate = totals.examples / max(elapsed, 1e-9)
            loss_now = float(m["loss"][-1])
            self.progress.update(epoch + 1, b, self.run_steps, loss_now, rate)
        return totals

    def _batch_epoch(self, epoch: int, t0: float) -> _Totals:
        """An epoch over the given batches: one jitted step per batch, each batch's
        labels checked against the model's output size."""
        assert self.train.batches is not None  # set for batches
        if self.batch_step is None:
            jitted = jit_step(self.step, donate=True)
            self.batch_step = _as_state_step(jitted, self.model.stateful)
        totals = _Totals()
        for i, batch in enumerate(self.train.batches(epoch)):
            bx, by = _split_batch("fit", batch)
            if self.n_out is None:
                self.n_out = (
                    _outputs(self.model, self.ts.params, bx, self.ts.state) or 0
                )
            if self.n_out:
                where = f"fit (batch {i + 1} of epoch {epoch + 1})"
                _check_labels(
                    self.model, self.ts.params, bx, by, self.ts.state, where, self.n_out
                )
            step0 = int(self.ts.step)
            skey = jax.random.fold_in(self.step_key, step0)
            self.ts, m = self.batch_step(self.ts, batch, skey)
            m = {name: np.asarray(v) for name, v in m.items()}
            if self.stop_on_nan:
                _check_finite(
                    m["loss"][None],
                    step0,
                    epoch,
                    i,
                    None,
                    self.history,
                    self.checkpoint,
                )
            self.hooks.steps(step0, epoch + 1, i, {k: v[None] for k, v in m.items()})
            totals.add(m)
            totals.steps += 1
            self.run_steps += 1
            totals.examples += jax.tree.leaves(bx)[0].shape[0]
            rate = totals.examples / max(time.perf_counter() - t0, 1e-9)
            loss_now = float(m["loss"])
            self.progress.update(
                epoch + 1, totals.steps, self.run_steps, loss_now, rate
            )
        return totals

    def _row(self, epoch: int, totals: _Totals, seconds: float) -> dict[str, float]:
        """The epoch's history row: mean metrics, validation, timings."""
        steps = max(totals.steps, 1)
        sums = dict(totals.sums)
        row: dict[str, float] = {"epoch": epoch + 1, "step": int(self.ts.step)}
        row["loss"] = sums.pop("loss") / steps
        row.update({k: v / steps for k, v in sorted(sums.items())})
        if self.validation_data is not None:
            val = evaluate(
                self.model,
                self.loss,
                self.ts.params,
                self.validation_data,
                batch_size=self.eval_batch_size,
                metrics=self.metrics,
                state=self.ts.state,
                policy=self.policy,
            )
            row.update({f"val_{k}": v for k, v in val.items()})
        row["seconds"] = seconds
        row["compile_seconds"] = totals.compile_seconds
        row["examples_per_second"] = totals.examples / max(seconds, 1e-9)
        return row

    def _early_stopping(self, epoch: int, row: Mapping[str, float]) -> None:
        """Update the early-stopping record with the epoch's monitored value."""
        rule = self.early_stopping
        if rule is None:
            return
        if rule.monitor not in row:
            raise KeyError(
                f"fit: EarlyStopping monitors {rule.monitor!r}, which is "
                f"not in the history; available: {sorted(row)}. Pass "
                "validation_data for val_* entries."
            )
        value = float(row[rule.monitor])
        if rule.improved(value, self.best["value"]):
            self.best.update(value=value, epoch=epoch + 1, wait=0)
            if self.keep_best:
                self.best["params"] = jax.tree.map(jnp.copy, self.ts.params)
        else:
            self.best["wait"] += 1
            self.stopped = self.best["wait"] >= rule.patience

    def result(self) -> FitResult:
        """The :class:`FitResult` (the best epoch's params with ``restore_best``)."""
        params_out = self.ts.params
        if self.keep_best and self.best["params"] is not None:
            params_out = self.best["params"]
        return FitResult(
            params=params_out,
            opt_state=self.ts.opt_state,
            state=self.ts.state,
            step=int(self.ts.step),
            history=self.history,
            stopped_early=self.stopped,
            best_epoch=self.best["epoch"],
            resumed_from=self.resumed_from,
        )


def _check_finite(
    losses: np.ndarray,
    step0: int,
    epoch: int,
    batch0: int,
    spe: int | None,
    history: list[dict[str, float]],
    checkpoint: str | None,
) -> None:
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size == 0:
        return
    i = int(bad[0])
    where = f"epoch {epoch + 1}, batch {batch0 + i + 1}" + (f" of {spe}" if spe else "")
    before = (
        f"the loss before it was {float(losses[i - 1]):.6g}"
        if i > 0
        else (
            f"the previous epoch's mean loss was {history[-1]['loss']:.6g}"
            if history
            else "it was the first step"
        )
    )
    saved = (
        f" The last checkpoint, {checkpoint!r}, was written before this and is intact."
        if checkpoint is not None and os.path.exists(checkpoint)
        else ""
    )
    raise TrainingError(
        f"fit: the loss became {float(losses[i])} at step {step0 + i} ({where}); "
        f"{before}. Lower the learning rate, clip gradients "
        "(optax.clip_by_global_norm), or check the data for nan/inf; pass "
        f"stop_on_nan=False to continue anyway.{saved}"
    )


def _key_fingerprint(key: PRNGKey) -> list[int]:
    data = (
        jax.random.key_data(key)
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        else key
    )
    return [int(v) for v in np.asarray(data).reshape(-1)]


_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _encode_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A history row for JSON metadata: a nan or inf (``stop_on_nan=False``) is
    written as the string ``"nan"`` / ``"inf"`` / ``"-inf"`` (JSON has no such
    numbers); :func:`_decode_row` reads it back."""
    return {
        k: str(v) if isinstance(v, float) and not math.isfinite(v) else v
        for k, v in row.items()
    }


def _decode_row(row: Any) -> Any:
    if not isinstance(row, dict):
        return row  # the resume record's check names it
    return {
        k: _NON_FINITE[v] if isinstance(v, str) and v in _NON_FINITE else v
        for k, v in row.items()
    }


def _save_run(
    path: str,
    tree: Any,
    epoch: int,
    history: list[dict[str, float]],
    best: dict[str, Any],
    key: PRNGKey,
    batch_size: int | None,
    stopped: bool,
    epochs: int,
    model: Layer | None = None,
) -> None:
    from ..checkpoint._write import save

    meta = {
        "kind": "jaxnet.fit",
        "epoch": epoch,
        "epochs": epochs,
        "history": [_encode_row(row) for row in history],
        "early_stopping": {k: best[k] for k in ("value", "epoch", "wait")},
        "key": _key_fingerprint(key),
        "batch_size": batch_size,
        "stopped": stopped,
    }
    save(path, tree, metadata=meta, model=model)


def _check_resume(
    path: str, meta: Mapping[str, Any], key: PRNGKey, batch_size: int | None
) -> None:
    if meta.get("kind") != "jaxnet.fit":
        raise ValueError(
            f"fit: {path!r} is a jaxnet checkpoint but was not written by fit(); resume "
            "needs fit's own checkpoint. Pass a different checkpoint= path, or load it "
            "with jaxnet.load and pass params=/opt_state=."
        )
    if meta.get("key") != _key_fingerprint(key):
        raise ValueError(
            f"fit: {path!r} was written by a run with a different key; resuming with "
            "another key would shuffle and drop out differently and not reproduce the "
            "run. Pass the original key, or resume=False to start over."
        )
    if meta.get("batch_size") != batch_size:
        raise ValueError(
            f"fit: {path!r} was written with batch_size={meta.get('batch_size')}, this "
            f"call uses {batch_size}. Pass the original batch_size, or resume=False."
        )


def _actual(v: Any) -> str:
    """A metadata value for an error message: its type and (short) value."""
    if v is _MISSING:
        return "nothing (the field is missing)"
    if _is_number(v):
        return repr(v)
    shown = repr(v)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"the {type(v).__name__} {shown}"


_MISSING = object()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_resume_record(path: str, meta: Mapping[str, Any], step: int) -> None:
    """Refuse a resume record that ``fit`` cannot have written.

    The checksum only proves the bytes are as last written, and anyone can rewrite
    them and recompute it; so the record's types, ranges and consistency (one
    history row per epoch, in order, ending at the saved step count) are checked
    before any of it is used. ``step`` is the step count of the saved train state.
    """
    from .._errors import CheckpointError

    def bad(field: str, expected: str, value: Any) -> CheckpointError:
        return CheckpointError(
            f"fit: the checkpoint {path!r} has an invalid resume record: "
            f"metadata{field} should be {expected}, got {_actual(value)}. fit did "
            "not write this (the file was edited, or is damaged); restore the "
            "checkpoint from a backup, or pass resume=False to start over."
        )

    epoch = meta.get("epoch", _MISSING)
    if not _is_int(epoch) or epoch < 1:
        raise bad("['epoch']", "an int >= 1 (the epochs completed)", epoch)
    history = meta.get("history", _MISSING)
    if not isinstance(history, list):
        raise bad("['history']", f"a list of {epoch} rows", history)
    if len(history) != epoch:
        raise bad(
            "['history']", f"{epoch} rows (one per epoch completed)", len(history)
        )
    previous = 0
    for i, row in enumerate(history):
        where = f"['history'][{i}]"
        if not isinstance(row, dict):
            raise bad(where, "a dict of numbers", row)
        for name in ("epoch", "step", "loss"):
            if name not in row:
                raise bad(f"{where}[{name!r}]", "a number", _MISSING)
        for name, v in row.items():
            if not _is_number(v):
                raise bad(f"{where}[{name!r}]", "a number", v)
        if row["epoch"] != i + 1 or not _is_int(row["epoch"]):
            raise bad(f"{where}['epoch']", f"{i + 1} (rows in order)", row["epoch"])
        if i + 1 == epoch and (row["step"] != step or not _is_int(row["step"])):
            raise bad(
                f"{where}['step']",
                f"{step} (the step count saved in the checkpoint)",
                row["step"],
            )
        if not _is_int(row["step"]) or not previous <= row["step"] <= step:
            raise bad(
                f"{where}['step']", f"an int in [{previous}, {step}]", row["step"]
            )
        previous = row["step"]
    record = meta.get("early_stopping", _MISSING)
    if not isinstance(record, dict) or set(record) != {"value", "epoch", "wait"}:
        raise bad(
            "['early_stopping']", "a dict with the keys value, epoch and wait", record
        )
    value, best, wait = record["value"], record["epoch"], record["wait"]
    if value is not None and not _is_number(value):
        raise bad("['early_stopping']['value']", "None or a number", value)
    if best is not None and (not _is_int(best) or not 1 <= best <= epoch):
        raise bad(
            "['early_stopping']['epoch']", f"None or an int in [1, {epoch}]", best
        )
    if (value is None) != (best is None):
        raise bad(
            "['early_stopping']['epoch']", "None exactly when value is None", best
        )
    if not _is_int(wait) or not 0 <= wait <= epoch:
        raise bad("['early_stopping']['wait']", f"an int in [0, {epoch}]", wait)
    stopped = meta.get("stopped", False)  # absent in older checkpoints
    if not isinstance(stopped, bool):
        raise bad("['stopped']", "a bool", stopped)
    asked = meta.get("epochs")  # absent in checkpoints of older jaxnet versions
    if asked is not None and (not _is_int(asked) or asked < epoch):
        raise bad("['epochs']", f"an int >= {epoch} (the epochs asked for)", asked)
