"""Fused training loops (whole epochs in one ``lax.scan``) and the shape-checked jitted
step."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ShapeError
from .._types import Array, Params, PRNGKey
from ..nn._layer import fmt_shape
from ._step import TrainState, _check_state_arg, _num_examples, _split_batch, _take

# ------------------------------------------------------------------ fused loops


def _as_state_step(step: Callable[..., Any], stateful: bool) -> Callable[..., Any]:
    """Adapt a public step to ``(TrainState, batch, key) -> (TrainState, metrics)``."""

    def ts_step(ts: TrainState, batch: Any, key: PRNGKey) -> tuple[TrainState, Any]:
        if stateful:
            params, opt_state, m, state = step(
                ts.params, ts.opt_state, batch, key=key, state=ts.state
            )
        else:
            params, opt_state, m = step(ts.params, ts.opt_state, batch, key=key)
            state = None
        return TrainState(params, opt_state, state, ts.step + 1), m

    return ts_step


def split_key(key: PRNGKey) -> tuple[PRNGKey, PRNGKey, PRNGKey]:
    """``(init_key, shuffle_key, step_key)``: the three streams a run draws from."""
    k = jax.random.split(key, 3)
    return k[0], k[1], k[2]


def _run_steps(
    ts_step: Callable[..., Any],
    ts: TrainState,
    x: Any,
    y: Any,
    shuffle_key: PRNGKey,
    step_key: PRNGKey,
    epoch: Array,
    first_batch: Array,
    *,
    num_steps: int,
    batch_size: int,
    shuffle: bool,
) -> tuple[TrainState, Any]:
    """``num_steps`` consecutive batches of one epoch, in one ``lax.scan``."""
    n = jax.tree.leaves(x)[0].shape[0]
    if shuffle:
        order = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n)
    else:
        order = jnp.arange(n)

    def body(ts: TrainState, b: Array) -> tuple[TrainState, Any]:
        idx = jax.lax.dynamic_slice_in_dim(order, b * batch_size, batch_size)
        key = jax.random.fold_in(step_key, ts.step)
        return ts_step(ts, (_take(x, idx), _take(y, idx)), key)

    return jax.lax.scan(body, ts, first_batch + jnp.arange(num_steps, dtype=jnp.int32))


def train_scan(
    step: Callable[..., Any],
    params: Params,
    opt_state: Any,
    data: tuple[Any, Any],
    *,
    key: PRNGKey,
    epochs: int,
    batch_size: int | None = None,
    shuffle: bool = True,
    state: Any = None,
) -> tuple[TrainState, dict[str, Array]]:
    """Train for whole epochs inside one jitted ``lax.scan`` (data fit in memory).

    One dispatch runs the whole run: per epoch a permutation from
    ``fold_in(shuffle_key, epoch)``, then ``n // batch_size`` steps (the remainder of
    the permutation is dropped that epoch), step ``s`` drawing its key from
    ``fold_in(step_key, s)``, where ``(_, shuffle_key, step_key) = split_key(key)``.

    Args:
      step: from :func:`make_train_step` (not jitted; this jits the whole loop).
      params, opt_state: the starting point; ``state=`` for stateful models.
      data: ``(x, y)`` arrays (or pytrees of arrays) with a shared first axis.
      key: the run's key.
      epochs: number of passes.
      batch_size: examples per step; ``None`` for full-batch training.
      shuffle: permute every epoch.

    Returns:
      ``(TrainState, metrics)`` with every metric stacked as ``(epochs,
      steps_per_epoch)``.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, jaxnet
      >>> model = jaxnet.Dense(1)
      >>> _, params = model.init(jax.random.key(0), (None, 2))
      >>> opt = optax.sgd(0.5)
      >>> step = jaxnet.make_train_step(model, jaxnet.losses.mse, opt)
      >>> x = jax.random.normal(jax.random.key(1), (100, 2))
      >>> y = x @ jnp.array([[1.0], [-2.0]])
      >>> ts, m = jaxnet.train_scan(step, params, opt.init(params), (x, y),
      ...                           key=jax.random.key(2), epochs=50)
      >>> m["loss"].shape, bool(m["loss"][-1, 0] < 1e-6)
      ((50, 1), True)
    """
    x, y = _split_batch("train_scan", data)
    n = _num_examples("train_scan", x, y)
    bs = _batch_size("train_scan", batch_size, n)
    model = getattr(step, "model", None)
    stateful = bool(model is not None and model.stateful)
    if model is not None:
        _check_state_arg("train_scan", model, state)
    # Everything, the key split included, happens inside one jitted call: eager
    # dispatches outside it would cost more than 100 epochs of a small model.
    ts = TrainState(params, opt_state, state, jnp.zeros((), jnp.int32))
    fn = _train_scan_fn(step, stateful, int(epochs), bs, n // bs, bool(shuffle))
    return fn(ts, x, y, key)


def _batch_size(fn: str, batch_size: int | None, n: int) -> int:
    if n == 0:
        raise ShapeError(f"{fn}: the training data are empty.")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
    ):
        raise TypeError(
            f"{fn}: batch_size must be an int (or None for full-batch training), got "
            f"{batch_size!r} of type {type(batch_size).__name__}; it is never rounded."
        )
    bs = n if batch_size is None else int(batch_size)
    if not 1 <= bs <= n:
        raise ShapeError(
            f"{fn}: batch_size must be between 1 and the number of examples ({n}), got "
            f"{batch_size}. Use batch_size=None for full-batch training."
        )
    return bs


def _steps_fn(
    step: Callable[..., Any],
    stateful: bool,
    num_steps: int,
    batch_size: int,
    shuffle: bool,
) -> Callable[..., Any]:
    """``run(ts, x, y, shuffle_key, step_key, epoch, first_batch)``: one scan."""
    return functools.partial(
        _run_steps,
        _as_state_step(step, stateful),
        num_steps=num_steps,
        batch_size=batch_size,
        shuffle=shuffle,
    )


@functools.lru_cache(maxsize=32)
def _train_scan_fn(
    step: Callable[..., Any],
    stateful: bool,
    epochs: int,
    batch_size: int,
    steps_per_epoch: int,
    shuffle: bool,
) -> Callable[..., Any]:
    run_epoch = _steps_fn(step, stateful, steps_per_epoch, batch_size, shuffle)

    @jax.jit
    def run(ts: TrainState, x: Any, y: Any, key: Any) -> Any:
        _, shuffle_key, step_key = split_key(key)
        ts = ts._replace(step=jnp.asarray(ts.step, jnp.int32))

        def epoch_body(ts: TrainState, epoch: Array) -> Any:
            zero = jnp.zeros((), jnp.int32)
            return run_epoch(ts, x, y, shuffle_key, step_key, epoch, zero)

        return jax.lax.scan(epoch_body, ts, jnp.arange(epochs, dtype=jnp.int32))

    return run


def _chunk_fn(
    step: Callable[..., Any],
    stateful: bool,
    num_steps: int,
    batch_size: int,
    shuffle: bool,
    donate: bool,
) -> jax.stages.Wrapped:
    """A jitted run of ``num_steps`` batches of one epoch (what :func:`fit` calls).

    Not cached: ``fit`` builds a fresh step (and compiles it ahead of time) per call.
    """
    run = _steps_fn(step, stateful, num_steps, batch_size, shuffle)
    return jax.jit(run, donate_argnums=(0,) if donate else ())


# --------------------------------------------------------------- jitted steps


def _signature(tree: Any) -> tuple[Any, ...]:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(np.shape(a)), str(jnp.result_type(a))) for a in leaves)


def _describe(sig: tuple[Any, ...]) -> str:
    return ", ".join(f"{dt}{fmt_shape(shape)}" for shape, dt in sig[1])


class JittedStep:
    """A jitted train step that refuses a batch shaped unlike the first one.

    A new batch shape or dtype would make ``jax.jit`` trace and compile the step again
    (seconds, silently, every time the shape changes: e.g. a smaller last batch). This
    wrapper raises instead, naming both signatures, unless ``allow_recompile=True``.
    Parameters and optimizer state are donated (their buffers are reused for the
    outputs), so do not use the arrays you passed in after the call.
    """

    def __init__(
        self,
        step: Callable[..., Any],
        *,
        donate: bool = True,
        allow_recompile: bool = False,
    ) -> None:
        self.step = step
        self.allow_recompile = allow_recompile
        self._first: tuple[Any, ...] | None = None
        self._jitted = jax.jit(step, donate_argnums=(0, 1) if donate else ())
        functools.update_wrapper(self, step)

    def __call__(self, params: Params, opt_state: Any, batch: Any, **kw: Any) -> Any:
        sig = _signature(batch)
        if self._first is None:
            self._first = sig
        elif sig != self._first and not self.allow_recompile:
            raise ShapeError(
                f"jitted train step: this batch is {_describe(sig)} but the first batch "
                f"was {_describe(self._first)}; a new shape or dtype would silently "
                "recompile the step. Make every batch the same shape (drop or pad the "
                "last one, cast dtypes once), or pass allow_recompile=True to "
                "jit_step."
            )
        return self._jitted(params, opt_state, batch, **kw)


def jit_step(
    step: Callable[..., Any], *, donate: bool = True, allow_recompile: bool = False
) -> JittedStep:
    """Jit a train step with buffer donation and a guard against silent recompiles.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, jaxnet
      >>> model = jaxnet.Dense(1)
      >>> _, params = model.init(jax.random.key(0), (None, 2))
      >>> opt = optax.sgd(0.1)
      >>> step = jaxnet.jit_step(jaxnet.make_train_step(model, jaxnet.losses.mse, opt))
      >>> params, s, m = step(params, opt.init(params), (jnp.ones((4, 2)), jnp.ones((4, 1))))
      >>> step(params, s, (jnp.ones((3, 2)), jnp.ones((3, 1))))
      Traceback (most recent call last):
      ...
      jaxnet._errors.ShapeError: jitted train step: this batch is float32(3, 2), float32(3, 1) but the first batch was float32(4, 2), float32(4, 1); a new shape or dtype would silently recompile the step. Make every batch the same shape (drop or pad the last one, cast dtypes once), or pass allow_recompile=True to jit_step.
    """
    return JittedStep(step, donate=donate, allow_recompile=allow_recompile)
