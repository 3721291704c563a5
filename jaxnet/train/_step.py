"""Pure training steps on Optax, a mixed-precision policy, and fused ``lax.scan`` loops.

The pieces, from smallest to largest:

* :func:`make_train_step` builds ``step(params, opt_state, batch, *, key=None)``, a pure
  function the caller may ``jax.jit``; :func:`jit_step` jits it with buffer donation and
  refuses a batch whose shapes differ from the first (instead of silently recompiling).
* :func:`make_eval_step` and :func:`evaluate` compute the loss and metrics exactly over
  a dataset (padding plus a mask, so every example counts once).
* :func:`train_scan` runs whole epochs inside one ``lax.scan``: one dispatch for the
  whole run, with shuffling and per-step keys derived from one key and the step number.
* :class:`Policy` is a dtype policy: parameters stay in float32, the model computes in
  bfloat16, the loss is computed in float32.

Every random choice is a pure function of ``(key, global step)`` (the step's dropout key
is ``fold_in(step_key, step)``, the epoch's permutation ``fold_in(shuffle_key, epoch)``),
so a run resumed from a checkpoint replays exactly what an uninterrupted run would.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .. import _analytic
from .._errors import ShapeError, StateError
from .._types import Array, Params, PRNGKey
from ..nn._layer import Layer, fmt_shape
from ._policy import Policy

#: A metric: ``metric(outputs, targets) -> per-example values`` (averaged by the step).
Metric = Callable[[Any, Any], Array]


# --------------------------------------------------------------------------- metrics


def accuracy(outputs: Array, targets: Array) -> Array:
    """Per-example 0/1 correctness of ``argmax(outputs)``, as float32.

    Args:
      outputs: ``(..., num_classes)`` scores or logits. A single output column is read
        as a binary logit (positive means class 1).
      targets: integer class ids of shape ``outputs.shape[:-1]``, or one-hot/soft
        labels of the same shape as ``outputs`` (their argmax is the class).

    Examples:
      >>> import jax.numpy as jnp, jaxnet
      >>> jaxnet.accuracy(jnp.array([[2.0, 1.0], [0.0, 3.0]]), jnp.array([0, 0]))
      Array([1., 0.], dtype=float32)
    """
    outputs = jnp.asarray(outputs)
    targets = jnp.asarray(targets)
    if outputs.shape[-1:] == (1,):
        predicted = (outputs[..., 0] > 0).astype(jnp.int32)
        labels = (
            targets.reshape(predicted.shape)
            if targets.size == predicted.size
            else targets
        )
        return (predicted == labels.astype(jnp.int32)).astype(jnp.float32)
    predicted = jnp.argmax(outputs, axis=-1)
    if targets.shape == outputs.shape:
        targets = jnp.argmax(targets, axis=-1)
    if targets.shape != predicted.shape:
        raise ShapeError(
            f"accuracy: targets must be class ids of shape {fmt_shape(predicted.shape)} "
            f"or one-hot of shape {fmt_shape(outputs.shape)}, got "
            f"{fmt_shape(targets.shape)}."
        )
    return (predicted == targets.astype(predicted.dtype)).astype(jnp.float32)


# --------------------------------------------------------------------- the steps


class TrainState(NamedTuple):
    """Everything a training run carries from step to step (a pytree).

    Attributes:
      params: the model parameters.
      opt_state: the Optax state (moments, step counts, schedules).
      state: the model state (BatchNorm statistics), ``None`` for stateless models.
      step: the number of optimizer steps taken (a scalar int32 array).
    """

    params: Params
    opt_state: Any
    state: Any
    step: Array


def _split_batch(fn: str, batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, Mapping) and {"x", "y"} <= set(batch):
        return batch["x"], batch["y"]
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ShapeError(
        f"{fn}: a batch must be a pair (inputs, targets) or a dict with keys 'x' and "
        f"'y', got {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        + "."
    )


def _forward(
    model: Layer,
    policy: Policy | None,
    params: Params,
    x: Any,
    *,
    key: PRNGKey | None,
    state: Any,
    train: bool,
) -> tuple[Any, Any]:
    """``(outputs, new_state)`` under the policy; outputs in the output dtype."""
    if policy is not None:
        params, x = policy.cast_to_compute(params), policy.cast_to_compute(x)
    if model.stateful:
        y, new_state = model.apply(params, x, key=key, state=state, train=train)
    else:
        y, new_state = model.apply(params, x, key=key, train=train), None
    if policy is not None:
        y = policy.cast_to_output(y)
    return y, new_state


def _itemsize(dtype: Any) -> int:
    return jnp.dtype(dtype).itemsize


def _global_norm(tree: Any) -> Array:
    """sqrt of the sum of squares of every leaf, accumulated in float32 or wider."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    dt = max([jnp.dtype(jnp.float32)] + [leaf.dtype for leaf in leaves], key=_itemsize)
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf.astype(dt))) for leaf in leaves))


def _reduce(per_example: Array, reduction: str, axis: int | None = None) -> Array:
    if reduction == "mean":
        return jnp.mean(per_example, axis=axis)
    return jnp.sum(per_example, axis=axis)


def _check_state_arg(fn: str, model: Layer, state: Any) -> None:
    if model.stateful and state is None:
        raise StateError(
            f"{fn}: {model.desc} is stateful (it holds running statistics) and needs "
            "state=. Build it with `_, state = model.init_state(input_shape)` and pass "
            "the state the previous step returned."
        )
    if not model.stateful and state is not None:
        raise StateError(
            f"{fn}: {model.desc} has no stateful layers, so it takes no state=; "
            "drop the argument."
        )


def _per_example_fn(
    fn: str,
    model: Layer,
    loss: Callable[..., Array],
    policy: Policy | None,
    train: bool,
) -> Callable[..., tuple[Array, Params, Any]]:
    """``run(params, x, y, key) -> (losses (n,), grads (n, ...), outputs (n, ...))``.

    Each example runs as a batch of one under ``jax.vmap`` (so layers that need a batch
    axis work unchanged), with its own key (``jax.random.split(key, n)``): dropout
    draws each example's mask independently, as in the batched step."""
    if model.stateful and train:
        raise ValueError(
            f"{fn}: {model.desc} keeps batch statistics (BatchNorm): in training they "
            "mix the examples of a batch, so a per-example gradient is not defined "
            "(the reason DP-SGD libraries refuse BatchNorm). Use LayerNorm or "
            "GroupNorm, or compute with train=False."
        )

    def one(params: Params, xi: Any, yi: Any, ki: Any) -> tuple[Array, Any, Any]:
        def objective(p: Params) -> tuple[Array, Any]:
            xb, yb = jax.tree.map(lambda a: a[None], (xi, yi))
            out, _ = _forward(model, policy, p, xb, key=ki, state=None, train=train)
            return loss(out, yb)[0], jax.tree.map(lambda a: a[0], out)

        (value, out), grads = jax.value_and_grad(objective, has_aux=True)(params)
        return value, grads, out

    def run(params: Params, x: Any, y: Any, key: PRNGKey | None) -> Any:
        n = _num_examples(fn, x, y)
        keys = None if key is None else jax.random.split(key, n)
        return jax.vmap(one, in_axes=(None, 0, 0, None if key is None else 0))(
            params, x, y, keys
        )

    return run


def per_example_grads(
    model: Layer,
    loss: Callable[..., Array],
    *,
    train: bool = True,
    policy: Policy | str | None = None,
) -> Callable[..., tuple[Array, Params]]:
    """Per-example losses and gradients of any jaxnet model and loss.

    ``grads[k][i]`` is the gradient of example ``i``'s loss alone, ``loss(model(x[i]),
    y[i])``: ``jax.vmap`` of ``jax.grad`` over the batch, each example run as a batch
    of one with its own PRNG key (``jax.random.split(key, n)``). This is what DP-SGD
    clips (``optax.contrib.dpsgd``), and what influence and gradient-noise studies
    need. Stateful models (BatchNorm) are refused in training: their batch statistics
    mix examples, so no per-example gradient exists.

    Args:
      model: any stateless jaxnet model.
      loss: ``loss(outputs, targets) -> per-example losses``.
      train: run the model in training mode (dropout on; needs ``key=``).
      policy: a :class:`Policy` or compute dtype, as in :func:`make_train_step`.

    Returns:
      ``fn(params, x, y, *, key=None) -> (losses, grads)``, ``losses`` of shape
      ``(n,)`` and ``grads`` shaped like ``params`` with a leading axis ``n`` on every
      leaf. Pure: jit it.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> model = jaxnet.Dense(1, w_init=jax.nn.initializers.ones)
      >>> _, params = model.init(jax.random.key(0), (None, 2))
      >>> fn = jaxnet.per_example_grads(model, jaxnet.losses.mse)
      >>> x, y = jnp.array([[1.0, 0.0], [0.0, 2.0]]), jnp.zeros((2, 1))
      >>> losses, grads = fn(params, x, y)
      >>> losses, grads["w"].shape        # (w.x)^2 per example; d/dw = 2 (w.x) x
      (Array([1., 4.], dtype=float32), (2, 2, 1))
      >>> grads["w"][:, :, 0]
      Array([[2., 0.],
             [0., 8.]], dtype=float32)
    """
    run = _per_example_fn("per_example_grads", model, loss, Policy.of(policy), train)

    def fn(params: Params, x: Any, y: Any, *, key: PRNGKey | None = None) -> Any:
        losses, grads, _ = run(params, x, y, key)
        return losses, grads

    return fn


def _check_aggregated(
    optimizer: optax.GradientTransformation, grads: Params, opt_state: Any, params: Any
) -> None:
    """Per-example gradients must be aggregated by the optimizer (DP-SGD does):
    otherwise it fails on the batch axis, or ``apply_updates`` broadcasts the batch
    axis into the params. Checked on shapes alone (``jax.eval_shape``)."""
    hint = (
        "it did not aggregate the per-example gradients. Put an aggregating "
        "transformation first, e.g. optax.contrib.dpsgd(...) or optax.chain(optax."
        "contrib.differentially_private_aggregate(...), ...)."
    )
    try:
        updates, _ = jax.eval_shape(optimizer.update, grads, opt_state, params)
    except Exception as exc:  # noqa: BLE001 - re-raised with the likely cause
        raise ShapeError(
            f"train step (per_example=True): the optimizer failed on gradients with "
            f"a leading batch axis ({type(exc).__name__}: {str(exc)[:200]}); {hint}"
        ) from exc
    ups = jax.tree_util.tree_flatten_with_path(updates)[0]
    for (path, u), p in zip(ups, jax.tree.leaves(params), strict=True):
        if tuple(u.shape) != tuple(jnp.shape(p)):
            raise ShapeError(
                f"train step (per_example=True): the optimizer returned an update of "
                f"shape {tuple(u.shape)} for params{jax.tree_util.keystr(path)} of "
                f"shape {tuple(jnp.shape(p))}: {hint}"
            )


def make_train_step(
    model: Layer,
    loss: Callable[..., Array],
    optimizer: optax.GradientTransformation,
    *,
    reduction: str = "mean",
    metrics: Mapping[str, Metric] | None = None,
    policy: Policy | str | None = None,
    gradients: str = "autodiff",
    per_example: bool = False,
) -> Callable[..., tuple[Any, ...]]:
    """A pure train step: forward, loss, gradient, Optax update.

    Args:
      model: any jaxnet layer or model.
      loss: ``loss(outputs, targets) -> per-example losses`` (e.g. a function from
        :mod:`jaxnet.losses`).
      optimizer: any Optax ``GradientTransformation`` (chains with clipping, schedules,
        ``optax.MultiSteps`` for gradient accumulation, ...).
      reduction: ``"mean"`` or ``"sum"`` of the per-example losses.
      metrics: extra ``name -> metric(outputs, targets)`` returning per-example values
        (e.g. ``{"accuracy": jaxnet.accuracy}``), averaged over the batch.
      policy: a :class:`Policy` or a compute dtype such as ``"bfloat16"``.
      gradients: ``"autodiff"`` (``jax.value_and_grad``) or ``"analytic"`` (the
        hand-written backward of :mod:`jaxnet.analytic`; built-in layers and losses
        only, no policy).
      per_example: give the optimizer per-example gradients (a leading batch axis on
        every leaf, see :func:`per_example_grads`) instead of the batch's: what
        ``optax.contrib.dpsgd`` (DP-SGD: clip each example's gradient, add noise,
        average) expects. The optimizer must aggregate them (else a ``ShapeError``
        at trace time); ``grad_norm`` is then the norm of the batch gradient (the
        mean, or the sum for ``reduction="sum"``, of the per-example ones).

    Returns:
      ``step(params, opt_state, batch, *, key=None) -> (params, opt_state, metrics)``
      where ``batch`` is ``(x, y)`` (or ``{"x": x, "y": y}``), ``key`` is this step's
      PRNG key (for dropout) and ``metrics`` holds ``loss``, ``grad_norm`` (the global
      norm of the gradient before the optimizer) and the extra metrics. For a
      stateful model (BatchNorm) the step takes ``state=`` and returns
      ``(params, opt_state, metrics, state)``. The step is pure: jit it
      (``jax.jit(step)``) or use :func:`jit_step`.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, jaxnet
      >>> model = jaxnet.serial(jaxnet.Dense(1))
      >>> _, params = model.init(jax.random.key(0), (None, 2))
      >>> opt = optax.sgd(0.1)
      >>> step = jax.jit(jaxnet.make_train_step(model, jaxnet.losses.mse, opt))
      >>> x, y = jnp.ones((4, 2)), jnp.zeros((4, 1))
      >>> params, opt_state, m = step(params, opt.init(params), (x, y))
      >>> sorted(m)
      ['grad_norm', 'loss']
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(
            f"make_train_step: reduction must be 'mean' or 'sum', got {reduction!r}."
        )
    if gradients not in ("autodiff", "analytic"):
        raise ValueError(
            "make_train_step: gradients must be 'autodiff' or 'analytic', got "
            f"{gradients!r}."
        )
    if not hasattr(optimizer, "update") or not hasattr(optimizer, "init"):
        raise TypeError(
            "make_train_step: optimizer must be an optax.GradientTransformation "
            f"(e.g. optax.adam(1e-3)), got {type(optimizer).__name__}."
        )
    policy = Policy.of(policy)
    if gradients == "analytic" and policy is not None:
        raise ValueError(
            "make_train_step: a dtype policy needs gradients='autodiff'; the analytic "
            "path computes in the parameters' dtype."
        )
    if per_example and gradients != "autodiff":
        raise ValueError(
            "make_train_step: per_example=True needs gradients='autodiff' (jax.vmap "
            "of jax.grad)."
        )
    extra = dict(metrics or {})
    per_ex = (
        _per_example_fn("make_train_step", model, loss, policy, True)
        if per_example
        else None
    )
    analytic_vg = (
        _analytic.value_and_grad(model, loss, reduction=reduction)
        if gradients == "analytic"
        else None
    )

    def objective(params: Params, x: Any, y: Any, key: Any, state: Any) -> Any:
        out, new_state = _forward(
            model, policy, params, x, key=key, state=state, train=True
        )
        return _reduce(loss(out, y), reduction), (out, new_state)

    def step(
        params: Params,
        opt_state: Any,
        batch: Any,
        *,
        key: PRNGKey | None = None,
        state: Any = None,
    ) -> tuple[Any, ...]:
        _check_state_arg("train step", model, state)
        x, y = _split_batch("train step", batch)
        batch_grads = None  # per_example: the gradient of the batch, for grad_norm
        if per_ex is not None:
            losses, grads, out = per_ex(params, x, y, key)
            value, new_state = _reduce(losses, reduction), None
            _check_aggregated(optimizer, grads, opt_state, params)
            batch_grads = jax.tree.map(lambda g: _reduce(g, reduction, 0), grads)
        elif analytic_vg is None:
            (value, (out, new_state)), grads = jax.value_and_grad(
                objective, has_aux=True
            )(params, x, y, key, state)
        else:
            options = {"train": True} | ({"state": state} if model.stateful else {})
            value, grads = analytic_vg(params, x, y, key=key, **options)
            new_state = None
            if model.stateful:
                value, new_state = value
            out = None
            if extra:  # the hand-written path returns no outputs: one more forward
                out, _ = _forward(
                    model, None, params, x, key=key, state=state, train=True
                )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        norm = _global_norm(grads if batch_grads is None else batch_grads)
        m = {"loss": value.astype(jnp.float32), "grad_norm": norm}
        for name, fn in extra.items():
            m[name] = jnp.mean(fn(out, y)).astype(jnp.float32)
        if model.stateful:
            return params, opt_state, m, new_state
        return params, opt_state, m

    step.model = model  # type: ignore[attr-defined]
    step.optimizer = optimizer  # type: ignore[attr-defined]
    return step


def make_eval_step(
    model: Layer,
    loss: Callable[..., Array],
    *,
    metrics: Mapping[str, Metric] | None = None,
    policy: Policy | str | None = None,
) -> Callable[..., dict[str, Array]]:
    """A pure evaluation step: ``eval_step(params, batch, *, state=None) -> metrics``.

    Runs the model with ``train=False`` (dropout off, BatchNorm on its running
    statistics) and returns per-example ``loss`` and metric values; see
    :func:`evaluate` for the dataset mean. Per-example values (not means) let a caller
    mask padded examples exactly.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> model = jaxnet.Dense(2)
      >>> _, params = model.init(jax.random.key(0), (None, 3))
      >>> ev = jaxnet.make_eval_step(model, jaxnet.losses.mse)
      >>> ev(params, (jnp.ones((5, 3)), jnp.zeros((5, 2))))["loss"].shape
      (5,)
    """
    policy = Policy.of(policy)
    extra = dict(metrics or {})

    def eval_step(params: Params, batch: Any, *, state: Any = None) -> dict[str, Array]:
        _check_state_arg("eval step", model, state)
        x, y = _split_batch("eval step", batch)
        out, _ = _forward(model, policy, params, x, key=None, state=state, train=False)
        per = loss(out, y)
        n = jax.tree.leaves(x)[0].shape[0]
        m = {"loss": per.reshape(n, -1).mean(axis=1).astype(jnp.float32)}
        for name, fn in extra.items():
            m[name] = fn(out, y).reshape(n, -1).mean(axis=1).astype(jnp.float32)
        return m

    return eval_step


# ------------------------------------------------------------------ data handling


def _num_examples(fn: str, x: Any, y: Any) -> int:
    sizes = {tuple(a.shape[:1]) for a in jax.tree.leaves((x, y))}
    if len(sizes) != 1 or () in sizes:
        shapes = [fmt_shape(a.shape) for a in jax.tree.leaves((x, y))]
        raise ShapeError(
            f"{fn}: inputs and targets must share their first (example) axis, got "
            f"shapes {', '.join(shapes)}."
        )
    return sizes.pop()[0]


def _take(tree: Any, idx: Array) -> Any:
    return jax.tree.map(lambda a: jnp.take(a, idx, axis=0), tree)


def evaluate(
    model: Layer,
    loss: Callable[..., Array],
    params: Params,
    data: tuple[Any, Any],
    *,
    batch_size: int = 256,
    metrics: Mapping[str, Metric] | None = None,
    state: Any = None,
    policy: Policy | str | None = None,
) -> dict[str, float]:
    """Mean loss and metrics over a whole dataset, every example counted once.

    The data are cut into ``batch_size`` batches, the last one padded and masked, and
    the batches run in one jitted ``lax.scan``.

    Returns:
      ``{"loss": ..., **metrics}`` as Python floats.
    """
    x, y = _split_batch("evaluate", data)
    n = _num_examples("evaluate", x, y)
    if n == 0:
        raise ShapeError("evaluate: the dataset is empty.")
    fn = _evaluate_fn(model, loss, tuple(sorted((metrics or {}).items())), policy)
    batch_size = max(1, min(int(batch_size), n))
    out = fn(params, state, x, y, batch_size)
    return {k: float(v) for k, v in out.items()}


@functools.lru_cache(maxsize=64)
def _evaluate_fn(
    model: Layer, loss: Any, metrics: tuple[tuple[str, Metric], ...], policy: Any
) -> Callable[..., Any]:
    eval_step = make_eval_step(model, loss, metrics=dict(metrics), policy=policy)

    @functools.partial(jax.jit, static_argnums=4)
    def run(params: Params, state: Any, x: Any, y: Any, batch_size: int) -> Any:
        n = jax.tree.leaves(x)[0].shape[0]
        nb = -(-n // batch_size)
        idx = jnp.arange(nb * batch_size)
        mask = (idx < n).astype(jnp.float32).reshape(nb, batch_size)
        idx = jnp.minimum(idx, n - 1).reshape(nb, batch_size)

        def body(total: Any, inputs: Any) -> Any:
            i, w = inputs
            per = eval_step(params, (_take(x, i), _take(y, i)), state=state)
            return jax.tree.map(lambda t, v: t + jnp.sum(v * w), total, per), None

        zeros = jax.tree.map(
            lambda s: jnp.zeros((), jnp.float32),
            jax.eval_shape(
                lambda: eval_step(
                    params, (_take(x, idx[0]), _take(y, idx[0])), state=state
                )
            ),
        )
        total, _ = jax.lax.scan(body, zeros, (idx, mask))
        return jax.tree.map(lambda t: t / n, total)

    return run
