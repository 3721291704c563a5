"""Per-example gradients: the vmapped step against a loop over examples and the
ordinary batch step (time, compile time and XLA memory side by side).

Case ``per_example_b{B}``: the MLP ``64-128-10`` (ReLU; the digits MLP of
``examples/digits_dpsgd.py``), softmax cross-entropy with integer labels, one SGD
step (lr 0.01), float32. Implementations:

* ``autodiff``: the ordinary step, ``jax.grad`` of the batch-mean loss (no
  per-example gradients at all): the floor.
* ``per_example_vmap``: :func:`jaxnet.per_example_grads` (``jax.vmap`` of
  ``jax.grad``), each example's gradient clipped to L2 norm ``CLIP`` and the clipped
  gradients averaged: DP-SGD's work without its noise.
* ``per_example_map``: the same, the examples one after another inside the program
  (``jax.lax.map``): a loop on the device.
* ``per_example_loop``: the same, a Python ``for`` loop over the examples (what one
  writes without ``vmap``), unrolled when the step is jitted: its compile time grows
  with the batch, so it is built up to batch ``LOOP_MAX`` only.

``CLIP`` is larger than every example's gradient norm here, so clipping is computed
but never binds and all four give the batch-mean gradient: the agreement gate checks
that before anything is timed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import jaxnet
from jaxnet import losses

from .._case import Case, sgd

LR = 1e-2
DIMS = (64, 128, 10)
CLIP = 1e6
#: The largest batch the unrolled loop is built for (its compile grows with it).
LOOP_MAX = 32


def _clipped_mean(grads: Any, clip: float = CLIP) -> Any:
    """Clip each example's gradient (leading axis) to L2 norm ``clip``, then average."""
    norms = jnp.sqrt(
        sum(
            jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1)
            for g in jax.tree.leaves(grads)
        )
    )
    scale = jnp.minimum(1.0, clip / jnp.maximum(norms, 1e-30))
    return jax.tree.map(
        lambda g: jnp.mean(g * scale.reshape((-1,) + (1,) * (g.ndim - 1)), axis=0),
        grads,
    )


def _build(batch: int, quick: bool) -> Case:
    model = jaxnet.serial(jaxnet.Dense(DIMS[1]), jaxnet.Relu(), jaxnet.Dense(DIMS[2]))
    _, params = model.init(jax.random.key(0), (None, DIMS[0]))
    x = jax.random.normal(jax.random.key(1), (batch, DIMS[0]), jnp.float32)
    y = jax.random.randint(jax.random.key(2), (batch,), 0, DIMS[2], jnp.int32)
    loss = losses.softmax_cross_entropy_with_integer_labels
    update = sgd(LR)

    def objective(p: Any, x: Any, y: Any) -> Any:
        return jnp.mean(loss(model.apply(p, x), y))

    def one(p: Any, xi: Any, yi: Any) -> Any:
        """One example's loss and gradient, as a batch of one."""
        return jax.value_and_grad(objective)(p, xi[None], yi[None])

    grads_vmap = jaxnet.per_example_grads(model, loss, train=False)

    def grads_map(p: Any, x: Any, y: Any) -> Any:
        return jax.lax.map(lambda xy: one(p, *xy), (x, y))

    def grads_loop(p: Any, x: Any, y: Any) -> Any:
        rows = [one(p, x[i], y[i]) for i in range(x.shape[0])]
        return (
            jnp.stack([v for v, _ in rows]),
            jax.tree.map(lambda *g: jnp.stack(g), *[g for _, g in rows]),
        )

    def stepper(per_example: Callable[..., Any]) -> Callable[..., Any]:
        def step(p: Any, x: Any, y: Any) -> Any:
            values, grads = per_example(p, x, y)
            return update(p, _clipped_mean(grads)), jnp.mean(values)

        return step

    def reducer(per_example: Callable[..., Any]) -> Callable[..., Any]:
        return lambda p, x, y: _clipped_mean(per_example(p, x, y)[1])

    def step_autodiff(p: Any, x: Any, y: Any) -> Any:
        value, g = jax.value_and_grad(objective)(p, x, y)
        return update(p, g), value

    ways = {"per_example_vmap": grads_vmap, "per_example_map": grads_map}
    if batch <= LOOP_MAX:  # unrolled: a program (and a compile) per example
        ways["per_example_loop"] = grads_loop
    return Case(
        name=f"per_example_b{batch}",
        family="per_example",
        description=(
            f"per-example gradients, MLP {'-'.join(map(str, DIMS))} ReLU, batch {batch}"
        ),
        dtype="float32",
        shapes={"x": (batch, DIMS[0]), "y": (batch,)},
        args=(params, x, y),
        forward=objective,
        steps={"autodiff": step_autodiff, **{k: stepper(f) for k, f in ways.items()}},
        grads={
            "autodiff": jax.grad(objective),
            **{k: reducer(f) for k, f in ways.items()},
        },
        quick=quick,
        notes=(
            f"per-example clip {CLIP:g} (never binds: all agree with the batch "
            "gradient); per_example_loop is unrolled at trace time"
        ),
    )


def per_example(batch: int, *, quick: bool) -> Callable[[bool], Case]:
    """The per-example case at ``batch``."""

    def build(quick_run: bool = False) -> Case:
        return _build(batch, quick)

    return build


#: ``name -> build(quick) -> Case``.
CASES: dict[str, Callable[[bool], Case]] = {
    "per_example_b32": per_example(32, quick=False),  # ~1 min to compile the loop
    "per_example_b256": per_example(256, quick=False),
}
